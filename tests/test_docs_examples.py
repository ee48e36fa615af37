"""The Python examples of the documentation's guide pages run as written.

Every fenced ```python block of the pages in ``PAGES`` is executed in a fresh namespace (one
pytest case per block, named after its page and line). A block can opt out with an HTML comment
on the line just before its fence (the same markers as the README's examples):

- ``<!-- docs-test: skip (reason) -->``: never run (what a test cannot launch, such as ``torchrun``);
- ``<!-- docs-test: requires MODULE -->``: skipped, with the reason, when ``MODULE`` is not
  importable (e.g. the optional MiniLM package).

``readme-test:`` works as well as ``docs-test:`` (the guide pages began as README sections).
Blocks write only under ``tempfile`` folders, which point at pytest's ``tmp_path`` here.
"""

from __future__ import annotations

import importlib.util
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
#: Pages whose examples are tested (each must hold at least one python block). Add yours.
PAGES = ("getting_started", "model", "training", "weights", "activations", "hf")

_MARKER = r"^<!--\s*(?:docs|readme)-test:\s*"
_SKIP = re.compile(_MARKER + r"skip\s*\((?P<reason>.+)\)\s*-->$")
_REQUIRES = re.compile(_MARKER + r"requires\s+(?P<module>[\w.]+)\s*-->$")
_ANY_MARKER = re.compile(_MARKER)


@dataclass(frozen=True)
class Block:
    page: str
    line: int  # line of the opening fence (1-based)
    code: str
    skip: str | None = None
    requires: str | None = None

    @property
    def id(self) -> str:
        return f"{self.page}-L{self.line}"


def parse_blocks(page: str, text: str) -> list[Block]:
    """The ```python blocks of ``text`` (page ``page``) with their markers."""
    lines, blocks, i = text.splitlines(), [], 0
    while i < len(lines):
        if lines[i].strip() != "```python":
            i += 1
            continue
        start, previous = i, lines[i - 1].strip() if i > 0 else ""
        skip = requires = None
        if (m := _SKIP.match(previous)) is not None:
            skip = m.group("reason")
        elif (m := _REQUIRES.match(previous)) is not None:
            requires = m.group("module")
        elif _ANY_MARKER.match(previous):
            raise ValueError(f"docs/{page}.md line {start}: malformed test marker {previous!r}")
        i += 1
        while i < len(lines) and lines[i].strip() != "```":
            i += 1
        if i == len(lines):
            raise ValueError(f"docs/{page}.md line {start + 1}: ```python block is never closed")
        blocks.append(Block(page, start + 1, "\n".join(lines[start + 1 : i]) + "\n", skip, requires))
        i += 1
    return blocks


BLOCKS = [block for page in PAGES for block in parse_blocks(page, (DOCS / f"{page}.md").read_text(encoding="utf-8"))]


def test_every_listed_page_has_an_example():
    assert {block.page for block in BLOCKS} == set(PAGES), f"pages without a python example: {sorted(set(PAGES) - {b.page for b in BLOCKS})}"


def test_parser_reads_markers_and_line_numbers():
    text = "\n".join(["intro", "```python", "x = 1", "```", "<!-- docs-test: skip (needs torchrun) -->", "```python", "y = 2", "```",
                      "<!-- readme-test: requires some_module -->", "```python", "z = 3", "```", "```bash", "echo no", "```"])
    a, b, c = parse_blocks("p", text)
    assert (a.line, a.code, a.skip, a.requires) == (2, "x = 1\n", None, None)
    assert (b.line, b.skip) == (6, "needs torchrun")
    assert (c.line, c.requires) == (10, "some_module")
    with pytest.raises(ValueError, match="never closed"):
        parse_blocks("p", "```python\nx = 1\n")


@pytest.mark.parametrize("block", BLOCKS, ids=[block.id for block in BLOCKS])
def test_docs_example_runs(block, tmp_path, monkeypatch):
    if block.skip is not None:
        pytest.skip(f"docs/{block.page}.md line {block.line}: {block.skip}")
    if block.requires is not None and importlib.util.find_spec(block.requires) is None:
        pytest.skip(f"docs/{block.page}.md line {block.line} needs {block.requires}, which is not installed")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # tempfile.mkdtemp() etc. land in tmp_path
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("CIRCUITS_CACHE", str(tmp_path / "cache"))
    # Pad with blank lines so tracebacks point at the page's own line numbers.
    code = compile("\n" * block.line + block.code, str(DOCS / f"{block.page}.md"), "exec")
    exec(code, {"__name__": f"docs_{block.page}"})
