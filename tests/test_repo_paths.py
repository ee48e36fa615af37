"""No file of the repository points at the machine it was written on, or at a folder outside the repository.

A clone must stand alone: documentation, notebooks, code and configuration may name paths inside
the repository (relative ones), paths every user has (``~/.cache/circuits``, ``runs/``), and
``tempfile`` folders made at run time, but never

- an absolute path of a development machine: ``/work/...``, ``/home/<user>/...``,
  ``/Users/<user>/...``, ``/root/...``, ``/mnt/...``, ``/tmp/...``;
- a relative path that climbs out of the repository (``../shared/...`` from the root, or
  ``../../x`` from a folder one level down), resolved from the folder of the file that holds it.

The one allowance: files under ``tests/`` may write ``/tmp/...`` and ``/mnt/...`` as fake paths
(an error message about a read-only ``/mnt/ro`` folder is tested as text, never touched); no test
may name the other roots. A path glued to a URL or to another path (``http://host/../x``,
``/../../etc/passwd`` as a request path) is not a file-system path and is not checked.
Files checked: every file git tracks, plus untracked files that are not ignored (so a new file
fails before it is committed), except binary files.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SELF = Path(__file__).resolve()

# Built from pieces so that this file does not match itself.
_MACHINE_ROOTS = ("/" + "work/", "/" + "home/", "/" + "Users/", "/" + "root/")
_SCRATCH_ROOTS = ("/" + "tmp/", "/" + "mnt/")
#: an absolute path starts a token: not preceded by a word character, a dot, a slash or a colon (URLs, relative paths)
_ABSOLUTE = re.compile(r"(?<![\w.:/~-])(" + "|".join(re.escape(r) for r in _MACHINE_ROOTS + _SCRATCH_ROOTS) + r")[\w.-]")
_CLIMB = re.compile(r"(?<![\w./:-])((?:\.\./)+)([\w.-]+)")


def repository_files() -> list[Path]:
    try:
        listed = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: the tracked files are unknown")
    files = [ROOT / name for name in listed.decode().split("\0") if name]
    return [path for path in files if path.is_file()]  # listed but deleted in the work tree: nothing to read


def text_of(path: Path) -> str | None:
    data = path.read_bytes()
    if b"\0" in data[:8192]:
        return None  # binary (images, weights)
    return data.decode("utf-8", errors="replace")


def violations(path: Path, text: str, root: Path = ROOT) -> list[str]:
    """``"file:line: what"`` for every forbidden path in ``text`` (the contents of ``path``, a file under ``root``)."""
    in_tests = path.relative_to(root).parts[:1] == ("tests",)
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        for match in _ABSOLUTE.finditer(line):
            if in_tests and match.group(1) in _SCRATCH_ROOTS:
                continue
            found.append(f"{path.relative_to(root)}:{number}: absolute machine path {line[match.start():match.start() + 40]!r}")
        for match in _CLIMB.finditer(line):
            target = (path.parent / match.group(1) / match.group(2)).resolve()
            if not target.is_relative_to(root.resolve()):
                found.append(f"{path.relative_to(root)}:{number}: {match.group(0)!r} leaves the repository")
    return found


def test_no_machine_paths_or_folders_outside_the_repository():
    found = []
    for path in repository_files():
        if path.resolve() == SELF:
            continue
        text = text_of(path)
        if text is not None:
            found.extend(violations(path, text))
    assert not found, "paths that only exist on one machine or outside the repository:\n" + "\n".join(found)


@pytest.mark.parametrize(
    "where, line, bad",
    [
        ("docs/x.md", "see " + "/" + "work/shared/DESIGN.md", True),
        ("docs/x.md", "cd " + "/" + "home/alice/circuits", True),
        ("README.md", "circuits report --out " + "/" + "tmp/fig", True),
        ("tests/test_x.py", 'OSError("' + "/" + 'mnt/ro/cache")', False),  # a fake path in a test
        ("tests/test_x.py", "open('" + "/" + "work/main/x')", True),  # tests may not name a real machine root
        ("README.md", "[notes](../shared/notes.md)", True),
        ("docs/x.md", "[notes](../../shared/notes.md)", True),
        ("docs/x.md", "[readme](../README.md)", False),
        ("notebooks/x.ipynb", "[training](../training.md)", False),
        ("docs/x.md", "a request for `/../../etc/passwd` gets 404", False),
        ("docs/x.md", "https://example.org/../x and ~/.cache/circuits and runs/attn-only-2l", False),
    ],
)
def test_rule(tmp_path, where, line, bad):
    path = tmp_path / where
    path.parent.mkdir(parents=True, exist_ok=True)
    assert bool(violations(path, line, root=tmp_path)) == bad
