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

import re
from pathlib import Path

import example_blocks
import pytest
from example_blocks import Block, run_block

README = Path(__file__).resolve().parents[1] / "README.md"
#: Sections whose examples are tested (each must hold at least one python block).
SECTIONS = ("example",)  # the guide pages' examples run in tests/test_docs_examples.py


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
        blocks += example_blocks.parse_blocks(name, body, "README.md", first_line)
    return blocks


BLOCKS = parse_blocks(README.read_text(encoding="utf-8"))


def test_every_tested_section_has_an_example():
    sections = {block.source for block in BLOCKS}
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
    run_block(block, README, tmp_path, monkeypatch)
