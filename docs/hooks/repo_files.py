"""MkDocs hook: put files that live outside ``docs/`` into the site.

- ``notebooks/*.ipynb``, the tutorials (rendered by mkdocs-jupyter as ``notebooks/<name>.html``),
  so they are kept, executed and tested in one place (see ``tests/test_notebooks.py``);
- ``figures/*.png``, the report figures committed for the README.

Each keeps its path relative to the repository root, so a page under ``docs/`` links to
``notebooks/x.ipynb`` and a notebook links back to ``../model.md``.

Runs before the plugins' ``on_files`` (priority 50), so mkdocs-jupyter sees the notebooks.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File, Files

log = logging.getLogger("mkdocs.hooks.repo_files")
ROOT = Path(__file__).resolve().parents[2]
#: globs under the repository root
SOURCES = ("notebooks/*.ipynb", "figures/*.png")


@event_priority(50)
def on_files(files: Files, config) -> Files:
    for pattern in SOURCES:
        for path in sorted(ROOT.glob(pattern)):
            files.append(File(path.relative_to(ROOT).as_posix(), str(ROOT), config["site_dir"], config["use_directory_urls"]))
    return files


_DOCS_LINK = re.compile(r'href="\.\./docs/([\w/.-]+)\.md(#[\w-]*)?"')


def on_post_page(output: str, page, config) -> str:
    """In a rendered notebook, ``../docs/<page>.md`` (the link that works in the repository and in
    Jupyter) becomes the built page ``../<page>.html``; a link to a page that does not exist is a
    warning, so ``--strict`` fails on it as on any broken link."""
    if not page.file.src_uri.startswith("notebooks/"):
        return output

    def to_html(match: re.Match) -> str:
        target = match.group(1)
        if not (Path(config["docs_dir"]) / f"{target}.md").is_file():
            log.warning("%s links to docs/%s.md, which does not exist", page.file.src_uri, target)
        return f'href="../{target}.html{match.group(2) or ""}"'

    return _DOCS_LINK.sub(to_html, output)
