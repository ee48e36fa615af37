"""A view: JSON data plus the name of its renderer; shown in Jupyter, saved as one self-contained HTML page.

Every view's data is written once, as JSON in a ``<script type="application/json">`` after its
``<div>``; the shared script (:data:`circuits.views.script.SCRIPT`, about 15 KB, our own) draws it
in the browser. A page (:func:`page`, :meth:`View.save`, the report) embeds that script once, in
its head. In Jupyter each output carries the script too (a notebook cell is not a page), but it
defines ``window.CircuitsViews`` only once, so later copies do nothing. Nothing refers to a
network address.
"""

from __future__ import annotations

import hashlib
import html
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from circuits.atomic import atomic_write_text
from circuits.views.script import SCRIPT, STYLE

__all__ = ["View", "page", "head_html", "rounded", "data_json"]


def rounded(values: Any, digits: int = 4) -> Any:
    """Nested lists of floats rounded to ``digits`` decimals (NaN and infinities to ``None``) from arrays, tensors or lists."""
    if hasattr(values, "detach"):
        values = values.detach().cpu().double().numpy()
    if isinstance(values, np.ndarray):
        values = values.tolist()
    if isinstance(values, (list, tuple)):
        return [rounded(v, digits) for v in values]
    value = float(values)
    return round(value, digits) if math.isfinite(value) else None


def data_json(data: dict) -> str:
    """``data`` as JSON safe inside a ``<script>`` element (``</`` and ``<!--`` escaped; ASCII only)."""
    return json.dumps(data, ensure_ascii=True, separators=(",", ":"), allow_nan=False).replace("</", "<\\/").replace("<!--", "<\\!--")


def head_html() -> str:
    """The style sheet and the shared script, once per page (``<head>``)."""
    return f'<style>{STYLE}</style>\n<script id="circuits-views-js">{SCRIPT}</script>'


@dataclass(frozen=True)
class View:
    """An interactive view: ``data["kind"]`` names the renderer of the shared script; ``title`` is shown above it."""

    data: dict
    title: str = ""

    @property
    def kind(self) -> str:
        return str(self.data["kind"])

    def data_json(self) -> str:
        return data_json(self.data)

    def default_id(self) -> str:
        return "cv-" + hashlib.sha1(self.data_json().encode()).hexdigest()[:12]

    def fragment(self, view_id: str | None = None) -> str:
        """The view's ``<div>`` and its data, without the shared script (a page embeds that once)."""
        view_id = view_id or self.default_id()
        title = f'<div class="cv-title"><b>{html.escape(self.title)}</b></div>' if self.title else ""
        return (f'{title}<div class="cv-view" id="{view_id}" data-kind="{html.escape(self.kind)}"></div>'
                f'<script type="application/json" id="{view_id}-data">{self.data_json()}</script>')

    def _repr_html_(self) -> str:
        return f'{head_html()}{self.fragment()}<script>window.CircuitsViews.renderAll();</script>'

    def html(self, title: str | None = None) -> str:
        """One self-contained HTML page holding this view."""
        return page([self], title=title or self.title or self.kind)

    def save(self, path: str | Path) -> Path:
        """Write :meth:`html` to ``path`` (atomically); returns the path."""
        path = Path(path)
        if path.suffix.lower() not in (".html", ".htm"):
            raise ValueError(f"save({str(path)!r}): give a file name ending in .html")
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, self.html())
        path.chmod(0o644)
        return path


def page(views: Sequence[View], title: str = "circuits views") -> str:
    """One HTML page of several views, the shared script embedded once."""
    body = "\n".join(f'<section class="cv-section">{v.fragment(f"cv-{i}-{v.default_id()[3:]}")}</section>' for i, v in enumerate(views))
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title>{head_html()}</head><body>\n<h1>{html.escape(title)}</h1>\n{body}\n</body></html>\n")
