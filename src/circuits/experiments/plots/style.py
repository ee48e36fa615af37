"""Shared look of every figure: the layout template, colour cycle, grid shapes, readable titles and token labels."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio


__all__ = ['Values', 'VISIBLE', 'LAYOUT', 'PANELS_LAYOUT', 'colour_cycle', 'grid', 'layout_for', 'wrap_title', 'token_label', 'token_labels', 'unique_labels', 'series_colours', 'heatmap_trace']


#: Numbers along one axis: a list, tuple, numpy array or 1-d tensor (anything plotly accepts).
Values = Any


VISIBLE = str.maketrans({" ": "·", "\n": "⏎", "\t": "⇥", "\r": "␍"})


LAYOUT = dict(template="plotly_white", margin=dict(l=60, r=30, t=60, b=60))


PANELS_LAYOUT = {**LAYOUT, "margin": dict(l=60, r=30, t=90, b=60)}  # room for the title above the subplot titles


def colour_cycle() -> list[str]:
    """The template's colour cycle, so that a series keeps its colour from panel to panel."""
    import plotly.io as pio

    return list(pio.templates[LAYOUT["template"]].layout.colorway)


def grid(n_panels: int, n_cols: int) -> tuple[int, int]:
    n_cols = max(1, min(n_cols, n_panels))
    return (n_panels + n_cols - 1) // n_cols, n_cols


def layout_for(title: str, subtitles: Sequence[str] = ()) -> dict:
    """``LAYOUT`` with a top margin that fits a title and subplot titles of several ``<br>`` lines."""
    lines = title.count("<br>") + 1
    sub = max((s.count("<br>") + 1 for s in subtitles), default=0)
    return {**LAYOUT, "margin": dict(l=60, r=30, t=40 + 24 * lines + 18 * sub, b=60)}


def wrap_title(text: str, width: int = 70) -> str:
    """``text`` broken at spaces into lines of at most ``width`` characters, joined by ``<br>``.

    Plotly never wraps a title: a long one runs off the figure (the static export is 700 px wide).
    """
    import textwrap

    return "<br>".join(textwrap.wrap(text, width, break_long_words=False, break_on_hyphens=False)) or text


def token_label(text: str, max_len: int = 14) -> str:
    """A token string with whitespace made visible and long tokens shortened with ``…``."""
    shown = text.translate(VISIBLE)
    return shown if len(shown) <= max_len else shown[: max_len - 1] + "…"


def token_labels(texts: Sequence[str], ids: Sequence[int] | None = None, max_len: int = 14) -> list[str]:
    """Visible, unique labels for an axis (a repeated label gets its token id appended)."""
    labels = [token_label(t, max_len) for t in texts]
    seen: dict[str, int] = {}
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
    out = []
    for i, label in enumerate(labels):
        out.append(f"{label}#{ids[i] if ids is not None else i}" if seen[label] > 1 else label)
    return out


def unique_labels(strings: Sequence[str]) -> list[str]:
    """Axis labels for tokens: ``"{position} {token}"`` (plotly merges equal category labels)."""
    return [f"{i} {s}" for i, s in enumerate(strings)]


def series_colours(names: Sequence[str]) -> dict[str, str]:
    """A colour per name from the template's colour cycle, in the order given (a model keeps its colour across figures)."""
    cycle = list(pio.templates[LAYOUT["template"]].layout.colorway)
    return {name: cycle[i % len(cycle)] for i, name in enumerate(dict.fromkeys(names))}


def heatmap_trace(z, x, y, *, zmid: float | None, hover: str, name: str = "", colorscale: str = "RdBu", visible: bool = True) -> go.Heatmap:
    z = np.asarray(z, dtype=float)
    bound = float(np.nanmax(np.abs(z))) if z.size and np.isfinite(z).any() else 1.0
    extra = dict(zmid=zmid, zmin=-bound, zmax=bound) if zmid is not None else {}
    return go.Heatmap(
        z=z, x=list(x), y=list(y), name=name, colorscale=colorscale if zmid is not None else "Viridis",
        reversescale=zmid is not None, hovertemplate=hover + "<extra></extra>", visible=visible, **extra,
    )
