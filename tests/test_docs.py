"""The documentation site builds in strict mode, and every page and module is reachable from it.

``mkdocs build --strict`` (the same build as ``make docs``, without executing the notebooks, which
``tests/test_notebooks.py`` runs) fails on any warning: a nav entry or link to a missing page or
anchor, an unresolved API reference, a docstring mkdocstrings cannot read. Two checks MkDocs does not
make: every Markdown page under ``docs/`` is in the nav (no orphan pages), and every module of the
package is documented by some ``::: module`` directive of the API reference (a package directive
covers its submodules, ``show_submodules`` being on).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def nav_pages() -> set[str]:
    """Every ``.md``/``.ipynb`` path named in mkdocs.yml's nav (read as text: the file uses MkDocs-only YAML tags)."""
    text = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    nav = text[text.index("\nnav:"):]
    return set(re.findall(r":\s*([\w/.-]+\.(?:md|ipynb))\s*$", nav, re.M))


def test_every_page_is_in_the_nav():
    pages = {path.relative_to(DOCS).as_posix() for path in DOCS.rglob("*.md") if "hooks" not in path.parts}
    missing = sorted(pages - nav_pages())
    assert not missing, f"pages under docs/ that no nav entry of mkdocs.yml reaches: {missing}; add a line to its nav"


def documented_modules() -> set[str]:
    found = set()
    for page in (DOCS / "api").glob("*.md"):
        found.update(re.findall(r"^:::\s*([\w.]+)\s*$", page.read_text(encoding="utf-8"), re.M))
    return found


def test_every_module_is_in_the_api_reference():
    documented = documented_modules()
    src = ROOT / "src"
    missing = []
    for path in sorted((src / "circuits").rglob("*.py")):
        module = ".".join(path.relative_to(src).with_suffix("").parts)
        module = module.removesuffix(".__init__")
        if any(part.startswith("_") for part in module.split(".")):
            continue  # private modules and __main__
        if not any(module == name or (name != "circuits" and module.startswith(name + ".")) for name in documented):
            missing.append(module)
    assert not missing, f"modules no page of docs/api/ documents: {missing}; add '::: <package or module>' to a page"


def test_docs_build_strict(tmp_path):
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings")
    pytest.importorskip("mkdocs_jupyter")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "CIRCUITS_DOCS_EXECUTE": "false"}
    site = tmp_path / "site"
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    warnings = [line for line in done.stderr.splitlines() if "WARNING" in line or "ERROR" in line]
    assert done.returncode == 0, "mkdocs build --strict failed:\n" + "\n".join(warnings or done.stderr.splitlines()[-30:])
    for page in ("index.html", "getting_started.html", "api/model.html", "notebooks/induction_heads.html", "figures/variants-variants_speed.png"):
        assert (site / page).is_file(), f"the built site lacks {page}"
    assert "previous_token_scores" in (site / "api" / "activations.html").read_text(encoding="utf-8")
