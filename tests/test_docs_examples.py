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

from pathlib import Path

import example_blocks
import pytest
from example_blocks import Block, run_block

DOCS = Path(__file__).resolve().parents[1] / "docs"
#: Pages whose examples are tested (each must hold at least one python block). Add yours.
PAGES = ("getting_started", "model", "training", "weights", "activations", "hf")


def parse_blocks(page: str, text: str) -> list[Block]:
    """The ```python blocks of page ``page`` with their markers."""
    return example_blocks.parse_blocks(page, text, f"docs/{page}.md")


BLOCKS = [block for page in PAGES for block in parse_blocks(page, (DOCS / f"{page}.md").read_text(encoding="utf-8"))]


def test_every_listed_page_has_an_example():
    assert {block.source for block in BLOCKS} == set(PAGES), f"pages without a python example: {sorted(set(PAGES) - {b.source for b in BLOCKS})}"


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
    run_block(block, DOCS / f"{block.source}.md", tmp_path, monkeypatch)
