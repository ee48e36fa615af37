"""Pure figure builders: numbers and labels in, a ``plotly.graph_objects.Figure`` out.

Nothing here touches disk or calls ``.show()``; the report (:mod:`circuits.report`) embeds the
figures and exports them. Token strings are shown as they are, made visible: :func:`token_label`
turns spaces, newlines and tabs into ``·``, ``⏎`` and ``⇥`` so that ``" the"`` and ``"the"``
are told apart on an axis, and duplicates get a ``#id`` suffix (plotly merges equal category labels).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

#: Numbers along one axis: a list, tuple, numpy array or 1-d tensor (anything plotly accepts).
Values = Any

import numpy as np
import plotly.graph_objects as go

__all__ = ["token_label", "token_labels", "unique_labels", "heatmap", "heatmap_selector", "bars", "complex_scatter_grid", "lines", "scatter", "head_heatmaps", "pattern_heatmaps"]

_VISIBLE = str.maketrans({" ": "·", "\n": "⏎", "\t": "⇥", "\r": "␍"})
_LAYOUT = dict(template="plotly_white", margin=dict(l=60, r=30, t=60, b=60))


def token_label(text: str, max_len: int = 14) -> str:
    """A token string with whitespace made visible and long tokens shortened with ``…``."""
    shown = text.translate(_VISIBLE)
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


def _heatmap_trace(z, x, y, *, zmid: float | None, hover: str, name: str = "", colorscale: str = "RdBu", visible: bool = True) -> go.Heatmap:
    z = np.asarray(z, dtype=float)
    bound = float(np.nanmax(np.abs(z))) if z.size and np.isfinite(z).any() else 1.0
    extra = dict(zmid=zmid, zmin=-bound, zmax=bound) if zmid is not None else {}
    return go.Heatmap(
        z=z, x=list(x), y=list(y), name=name, colorscale=colorscale if zmid is not None else "Viridis",
        reversescale=zmid is not None, hovertemplate=hover + "<extra></extra>", visible=visible, **extra,
    )


def heatmap(
    z, x: Sequence[str], y: Sequence[str], *, title: str, x_title: str, y_title: str, value: str = "value",
    zmid: float | None = 0.0, height: int = 600, width: int | None = None,
) -> go.Figure:
    """A labelled heatmap (row ``i`` of ``z`` is ``y[i]``, drawn top to bottom); ``zmid=None`` for a sequential scale."""
    hover = f"{y_title}: %{{y}}<br>{x_title}: %{{x}}<br>{value}: %{{z:.3g}}"
    fig = go.Figure(_heatmap_trace(z, x, y, zmid=zmid, hover=hover))
    fig.update_layout(title=title, height=height, width=width, **_LAYOUT)
    fig.update_xaxes(title=x_title, tickangle=-60, type="category")
    fig.update_yaxes(title=y_title, autorange="reversed", type="category")
    return fig


def heatmap_selector(
    panels: dict[str, np.ndarray], x: Sequence[str], y: Sequence[str], *, title: str, x_title: str, y_title: str,
    value: str = "value", zmid: float | None = 0.0, height: int = 650,
) -> go.Figure:
    """Several heatmaps on the same axes, one visible at a time, chosen with buttons (e.g. one per head)."""
    hover = f"{y_title}: %{{y}}<br>{x_title}: %{{x}}<br>{value}: %{{z:.3g}}"
    names = list(panels)
    fig = go.Figure([_heatmap_trace(panels[n], x, y, zmid=zmid, hover=hover, name=n, visible=i == 0) for i, n in enumerate(names)])
    buttons = [
        dict(label=n, method="update", args=[{"visible": [j == i for j in range(len(names))]}, {"title.text": f"{title}: {n}"}])
        for i, n in enumerate(names)
    ]
    fig.update_layout(
        title=dict(text=f"{title}: {names[0]}", x=0.01, xanchor="left", y=0.99, yanchor="top"), height=height,
        updatemenus=[dict(type="buttons", direction="right", buttons=buttons, x=0, xanchor="left", y=1.01, yanchor="bottom", showactive=True, pad=dict(t=0, b=4))],
        **{**_LAYOUT, "margin": dict(l=60, r=30, t=110, b=60)},
    )
    fig.update_xaxes(title=x_title, tickangle=-60, type="category")
    fig.update_yaxes(title=y_title, autorange="reversed", type="category")
    return fig


def bars(
    categories: Sequence[str], series: dict[str, Values], *, title: str, x_title: str, y_title: str,
    hover_text: dict[str, Sequence[str]] | None = None, reference: dict[str, float] | None = None, height: int = 420,
) -> go.Figure:
    """Grouped bars (one group per category, one bar per series), with optional horizontal reference lines."""
    fig = go.Figure()
    for name, values in series.items():
        text = (hover_text or {}).get(name)
        fig.add_bar(
            x=list(categories), y=[float(v) for v in values], name=name, hovertext=text,
            hovertemplate="%{x}<br>" + name + ": %{y:.4g}" + ("<br>%{hovertext}" if text else "") + "<extra></extra>",
        )
    for label, value in (reference or {}).items():
        fig.add_hline(y=value, line_dash="dash", annotation_text=f"{label} ({value:.3g})", annotation_position="top left")
    fig.update_layout(title=title, barmode="group", height=height, **_LAYOUT)
    fig.update_xaxes(title=x_title, type="category")
    fig.update_yaxes(title=y_title)
    return fig


def lines(
    x: Values, series: dict[str, Values], *, title: str, x_title: str, y_title: str,
    reference: dict[str, float] | None = None, log_x: bool = False, height: int = 420,
) -> go.Figure:
    """Line plot of several series over a shared x, with optional horizontal reference lines."""
    fig = go.Figure()
    for name, values in series.items():
        fig.add_scatter(x=list(x), y=[float(v) for v in values], mode="lines+markers", name=name,
                        hovertemplate=f"{x_title}: %{{x}}<br>{name}: %{{y:.4g}}<extra></extra>")
    for label, value in (reference or {}).items():
        fig.add_hline(y=value, line_dash="dash", annotation_text=f"{label} ({value:.3g})", annotation_position="top right")
    fig.update_layout(title=title, height=height, **_LAYOUT)
    fig.update_xaxes(title=x_title, type="log" if log_x else "linear")
    fig.update_yaxes(title=y_title)
    return fig


def complex_scatter_grid(
    panels: dict[str, dict[str, tuple[Values, Values]]], *, title: str, n_cols: int = 4, height_per_row: int = 300,
) -> go.Figure:
    """Points in the complex plane, one subplot per panel (e.g. head), several point sets per panel (e.g. trained, init)."""
    from plotly.subplots import make_subplots

    names = list(panels)
    n_cols = max(1, min(n_cols, len(names)))
    n_rows = (len(names) + n_cols - 1) // n_cols
    fig = make_subplots(rows=n_rows, cols=n_cols, subplot_titles=names, horizontal_spacing=0.06, vertical_spacing=0.12)
    colours = ["#1f77b4", "#aaaaaa", "#d62728", "#2ca02c"]
    for i, name in enumerate(names):
        row, col = i // n_cols + 1, i % n_cols + 1
        for j, (series, (re, im)) in enumerate(panels[name].items()):
            fig.add_scatter(
                x=list(re), y=list(im), mode="markers", name=series, legendgroup=series, showlegend=i == 0,
                marker=dict(color=colours[j % len(colours)], size=7, opacity=0.8), row=row, col=col,
                hovertemplate=f"{name} {series}<br>Re %{{x:.3f}}<br>Im %{{y:.3f}}<extra></extra>",
            )
        fig.add_vline(x=0, line_width=1, line_color="#888", row=row, col=col)
        fig.add_hline(y=0, line_width=1, line_color="#888", row=row, col=col)
    fig.update_layout(title=title, height=max(350, n_rows * height_per_row + 80), **_LAYOUT)
    fig.update_xaxes(range=[-1.1, 1.1], zeroline=False)
    fig.update_yaxes(range=[-1.1, 1.1], zeroline=False)
    return fig


def scatter(
    series: dict[str, tuple[Values, Values, Sequence[str]]], *, title: str, x_title: str, y_title: str,
    log_x: bool = False, log_y: bool = False, height: int = 480, diagonal: bool = False,
) -> go.Figure:
    """Labelled points: ``series[name] = (x, y, hover labels)``; ``diagonal`` draws ``y = x``."""
    fig = go.Figure()
    for name, (x, y, text) in series.items():
        fig.add_scatter(
            x=[float(v) for v in x], y=[float(v) for v in y], text=list(text), mode="markers", name=name,
            marker=dict(size=7, opacity=0.75),
            hovertemplate="%{text}<br>" + f"{x_title}: %{{x:.4g}}<br>{y_title}: %{{y:.4g}}<extra>{name}</extra>",
        )
    if diagonal:
        values = [float(v) for x, y, _ in series.values() for v in (*x, *y)]
        if values:
            lo, hi = min(values), max(values)
            fig.add_scatter(x=[lo, hi], y=[lo, hi], mode="lines", line=dict(dash="dash", color="#888"), name="y = x", hoverinfo="skip")
    fig.update_layout(title=title, height=height, **_LAYOUT)
    fig.update_xaxes(title=x_title, type="log" if log_x else "linear")
    fig.update_yaxes(title=y_title, type="log" if log_y else "linear")
    return fig


def unique_labels(strings: Sequence[str]) -> list[str]:
    """Axis labels for tokens: ``"{position} {token}"`` (plotly merges equal category labels)."""
    return [f"{i} {s}" for i, s in enumerate(strings)]


def head_heatmaps(panels: dict[str, np.ndarray], *, title: str, zmin: float | None = 0.0, zmax: float | None = None, colorscale: str = "Blues"):
    """One heatmap per panel (``[layer, head]`` arrays), layers on y and heads on x, values written in the cells."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=list(panels), horizontal_spacing=0.08)
    for i, (name, z) in enumerate(panels.items()):
        z = np.asarray(z, dtype=float)
        heads = [f"H{h}" for h in range(z.shape[1])]
        layers = [f"L{l}" for l in range(z.shape[0])]
        fig.add_trace(
            go.Heatmap(
                z=z, x=heads, y=layers, zmin=zmin, zmax=zmax, colorscale=colorscale, showscale=i == len(panels) - 1,
                text=np.vectorize(lambda v: "" if not np.isfinite(v) else f"{v:.2f}")(z), texttemplate="%{text}",
                hovertemplate=f"{name}<br>%{{y}}%{{x}}: %{{z:.3f}}<extra></extra>",
            ),
            row=1, col=i + 1,
        )
        fig.update_yaxes(autorange="reversed", row=1, col=i + 1)
    fig.update_layout(title=title, height=220 + 40 * max(np.asarray(z).shape[0] for z in panels.values()))
    return fig


def pattern_heatmaps(patterns: dict[str, np.ndarray], tokens: Sequence[str], *, title: str):
    """Attention patterns ``[query_pos, key_pos]`` side by side, token strings on both axes."""
    from plotly.subplots import make_subplots

    labels = unique_labels(tokens)
    fig = make_subplots(rows=1, cols=len(patterns), subplot_titles=list(patterns), horizontal_spacing=0.12)
    for i, (name, z) in enumerate(patterns.items()):
        n = len(z)
        fig.add_trace(
            go.Heatmap(
                z=z, x=labels[:n], y=labels[:n], zmin=0, zmax=1, colorscale="Blues", showscale=i == 0,
                hovertemplate=f"{name}<br>query %{{y}}<br>key %{{x}}<br>attention %{{z:.3f}}<extra></extra>",
            ),
            row=1, col=i + 1,
        )
        fig.update_yaxes(autorange="reversed", title_text="query (destination)", row=1, col=i + 1, tickfont=dict(size=8))
        fig.update_xaxes(title_text="key (source)", row=1, col=i + 1, tickfont=dict(size=8))
    fig.update_layout(title=title, height=560)
    return fig
