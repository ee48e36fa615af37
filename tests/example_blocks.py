"""Shared by the README and docs example tests: find the ```python blocks of a Markdown text and run one.

A block can opt out with an HTML comment on the line just before its fence (``readme-test:`` and
``docs-test:`` are the same marker):

- ``<!-- readme-test: skip (reason) -->``: never run (what a test cannot launch, such as ``torchrun``);
- ``<!-- readme-test: requires MODULE -->``: skipped, with the reason, when ``MODULE`` is not importable.
"""

from __future__ import annotations

import importlib.util
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

_MARKER = r"^<!--\s*(?:docs|readme)-test:\s*"
_SKIP = re.compile(_MARKER + r"skip\s*\((?P<reason>.+)\)\s*-->$")
_REQUIRES = re.compile(_MARKER + r"requires\s+(?P<module>[\w.]+)\s*-->$")
_ANY_MARKER = re.compile(_MARKER)


@dataclass(frozen=True)
class Block:
    source: str  # the README section or docs page the block is in
    line: int  # line of the opening fence in its file (1-based)
    code: str
    skip: str | None = None
    requires: str | None = None

    @property
    def id(self) -> str:
        return f"{self.source}-L{self.line}"


def parse_blocks(source: str, text: str, where: str, first_line: int = 1) -> list[Block]:
    """The ```python blocks of ``text`` (whose first line is line ``first_line`` of the file ``where``) with their markers."""
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
            raise ValueError(f"{where} line {first_line + start - 1}: malformed test marker {previous!r}")
        i += 1
        while i < len(lines) and lines[i].strip() != "```":
            i += 1
        if i == len(lines):
            raise ValueError(f"{where} line {first_line + start}: ```python block is never closed")
        blocks.append(Block(source, first_line + start, "\n".join(lines[start + 1 : i]) + "\n", skip, requires))
        i += 1
    return blocks


def run_block(block: Block, path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run ``block`` of the file ``path`` in a fresh namespace, its temporary files and caches under ``tmp_path``."""
    if block.skip is not None:
        pytest.skip(f"{path.name} line {block.line}: {block.skip}")
    if block.requires is not None and importlib.util.find_spec(block.requires) is None:
        pytest.skip(f"{path.name} line {block.line} needs {block.requires}, which is not installed")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # tempfile.mkdtemp() etc. land in tmp_path
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("CIRCUITS_CACHE", str(tmp_path / "cache"))
    # Pad with blank lines so tracebacks point at the file's own line numbers.
    code = compile("\n" * block.line + block.code, str(path), "exec")
    exec(code, {"__name__": f"example_{block.source}"})
