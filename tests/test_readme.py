"""The README's Python examples run as written.

Every fenced ```python block of the sections below is executed in a fresh namespace (one pytest
case per block, named after its section and README line). A block can opt out with an HTML
comment on the line just before its fence:

- ``<!-- readme-test: skip (reason) -->``: never run (reserved for what a test cannot launch,
  such as ``torchrun``);
- ``<!-- readme-test: requires MODULE -->``: skipped, with the reason, when ``MODULE`` is not
  importable (e.g. the optional MiniLM package).

Blocks write only under ``tempfile`` folders, which point at pytest's ``tmp_path`` here.
"""

from __future__ import annotations

import importlib.util
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
#: Sections whose examples are tested (each must hold at least one python block).
SECTIONS = ("example",)  # the guide pages' examples run in tests/test_docs_examples.py

_SKIP = re.compile(r"^<!--\s*readme-test:\s*skip\s*\((?P<reason>.+)\)\s*-->$")
_REQUIRES = re.compile(r"^<!--\s*readme-test:\s*requires\s+(?P<module>[\w.]+)\s*-->$")
_ANY_MARKER = re.compile(r"^<!--\s*readme-test:")


@dataclass(frozen=True)
class Block:
    section: str
    line: int  # README line of the opening fence (1-based)
    code: str
    skip: str | None = None
    requires: str | None = None

    @property
    def id(self) -> str:
        return f"{self.section}-L{self.line}"


def section_text(text: str, name: str) -> tuple[int, str]:
    """``(README line of the body's first line, body)`` of ``<!-- section:name -->`` ... ``<!-- /section:name -->``."""
    match = re.search(rf"<!-- section:{name} -->\n(.*?)<!-- /section:{name} -->", text, re.S)
    if match is None:
        raise ValueError(f"README.md has no section {name!r} (markers <!-- section:{name} --> ... <!-- /section:{name} -->)")
    return text.count("\n", 0, match.start(1)) + 1, match.group(1)


def parse_blocks(text: str, sections: tuple[str, ...] = SECTIONS) -> list[Block]:
    blocks = []
    for name in sections:
        first_line, body = section_text(text, name)
        lines = body.splitlines()
        i = 0
        while i < len(lines):
            if lines[i].strip() != "```python":
                i += 1
                continue
            start = i
            previous = lines[start - 1].strip() if start > 0 else ""
            skip = requires = None
            if (m := _SKIP.match(previous)) is not None:
                skip = m.group("reason")
            elif (m := _REQUIRES.match(previous)) is not None:
                requires = m.group("module")
            elif _ANY_MARKER.match(previous):
                raise ValueError(f"README.md line {first_line + start - 1}: malformed readme-test marker {previous!r}")
            i += 1
            while i < len(lines) and lines[i].strip() != "```":
                i += 1
            if i == len(lines):
                raise ValueError(f"README.md line {first_line + start}: ```python block is never closed")
            code = "\n".join(lines[start + 1 : i]) + "\n"
            blocks.append(Block(name, first_line + start, code, skip, requires))
            i += 1
    return blocks


BLOCKS = parse_blocks(README.read_text(encoding="utf-8"))


def test_every_tested_section_has_an_example():
    sections = {block.section for block in BLOCKS}
    assert sections == set(SECTIONS), f"sections without a python example: {sorted(set(SECTIONS) - sections)}"


def test_parser_reads_markers_and_line_numbers():
    text = "\n".join([
        "intro",
        "<!-- section:a -->",
        "```python",
        "x = 1",
        "```",
        "<!-- readme-test: skip (needs torchrun) -->",
        "```python",
        "y = 2",
        "```",
        "<!-- readme-test: requires some_module -->",
        "```python",
        "z = 3",
        "```",
        "```bash",
        "echo not python",
        "```",
        "<!-- /section:a -->",
    ])
    a, b, c = parse_blocks(text, ("a",))
    assert (a.line, a.code, a.skip, a.requires) == (3, "x = 1\n", None, None)
    assert (b.line, b.skip) == (7, "needs torchrun")
    assert (c.line, c.requires) == (11, "some_module")
    with pytest.raises(ValueError, match="no section"):
        parse_blocks(text, ("b",))


@pytest.mark.parametrize("block", BLOCKS, ids=[block.id for block in BLOCKS])
def test_readme_example_runs(block, tmp_path, monkeypatch):
    if block.skip is not None:
        pytest.skip(f"README.md line {block.line}: {block.skip}")
    if block.requires is not None and importlib.util.find_spec(block.requires) is None:
        pytest.skip(f"README.md line {block.line} needs {block.requires}, which is not installed")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # tempfile.mkdtemp() etc. land in tmp_path
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("CIRCUITS_CACHE", str(tmp_path / "cache"))
    # Pad with blank lines so tracebacks point at the README's own line numbers.
    code = compile("\n" * block.line + block.code, str(README), "exec")
    exec(code, {"__name__": f"readme_{block.section}"})
