"""Heatmap builders: labelled heatmaps, head grids, attention patterns, token-by-token circuits, numeric-axis panels."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from circuits.experiments.plots.style import LAYOUT, PANELS_LAYOUT, Values, grid, heatmap_trace, layout_for, unique_labels, wrap_title

__all__ = ['heatmap', 'heatmap_selector', 'head_heatmaps', 'pattern_heatmaps', 'head_heatmap_grid', 'pattern_heatmap_grid', 'heatmap_row', 'token_circuit_heatmaps', 'heatmap_panels']


def heatmap(
    z, x: Sequence[str], y: Sequence[str], *, title: str, x_title: str, y_title: str, value: str = "value",
    zmid: float | None = 0.0, height: int = 600, width: int | None = None,
) -> go.Figure:
    """A labelled heatmap (row ``i`` of ``z`` is ``y[i]``, drawn top to bottom); ``zmid=None`` for a sequential scale."""
    hover = f"{y_title}: %{{y}}<br>{x_title}: %{{x}}<br>{value}: %{{z:.3g}}"
    fig = go.Figure(heatmap_trace(z, x, y, zmid=zmid, hover=hover))
    fig.update_layout(title=title, height=height, width=width, **LAYOUT)
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
    fig = go.Figure([heatmap_trace(panels[n], x, y, zmid=zmid, hover=hover, name=n, visible=i == 0) for i, n in enumerate(names)])
    buttons = [
        dict(label=n, method="update", args=[{"visible": [j == i for j in range(len(names))]}, {"title.text": f"{title}: {n}"}])
        for i, n in enumerate(names)
    ]
    fig.update_layout(
        title=dict(text=f"{title}: {names[0]}", x=0.01, xanchor="left", y=0.99, yanchor="top"), height=height,
        updatemenus=[dict(type="buttons", direction="right", buttons=buttons, x=0, xanchor="left", y=1.01, yanchor="bottom", showactive=True, pad=dict(t=0, b=4))],
        **{**LAYOUT, "margin": dict(l=60, r=30, t=110, b=60)},
    )
    fig.update_xaxes(title=x_title, tickangle=-60, type="category")
    fig.update_yaxes(title=y_title, autorange="reversed", type="category")
    return fig


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


def head_heatmap_grid(
    panels: dict[str, np.ndarray], *, title: str, n_cols: int = 3, zmin: float | None = 0.0, zmax: float | None = 1.0,
    colorscale: str = "Blues", height_per_row: int = 260,
) -> go.Figure:
    """``[layer, head]`` heatmaps on a grid of ``n_cols`` columns (layers on y, heads on x), one colour scale for all."""
    from plotly.subplots import make_subplots

    n_rows, n_cols = grid(len(panels), n_cols)
    fig = make_subplots(rows=n_rows, cols=n_cols, subplot_titles=list(panels), vertical_spacing=0.14, horizontal_spacing=0.06)
    for i, (name, z) in enumerate(panels.items()):
        z = np.asarray(z, dtype=float)
        row, col = i // n_cols + 1, i % n_cols + 1
        fig.add_heatmap(
            z=z, x=[f"H{h}" for h in range(z.shape[1])], y=[f"L{l}" for l in range(z.shape[0])], zmin=zmin, zmax=zmax,
            colorscale=colorscale, showscale=i == 0, row=row, col=col, hovertemplate=f"{name}<br>%{{y}}%{{x}}: %{{z:.3f}}<extra></extra>",
        )
        fig.update_yaxes(autorange="reversed", row=row, col=col)
    title = wrap_title(title)
    fig.update_layout(title=title, height=n_rows * height_per_row + 100, **layout_for(title, list(panels)))
    return fig


def pattern_heatmap_grid(patterns: dict[str, np.ndarray], tokens: Sequence[str], *, title: str, n_cols: int = 3, height_per_row: int = 420) -> go.Figure:
    """Attention patterns ``[query_pos, key_pos]`` on a grid of ``n_cols`` columns, token strings on both axes."""
    from plotly.subplots import make_subplots

    labels = unique_labels(tokens)
    n_rows, n_cols = grid(len(patterns), n_cols)
    fig = make_subplots(rows=n_rows, cols=n_cols, subplot_titles=list(patterns), vertical_spacing=0.2, horizontal_spacing=0.1)
    for i, (name, z) in enumerate(patterns.items()):
        n, row, col = len(z), i // n_cols + 1, i % n_cols + 1
        fig.add_heatmap(
            z=np.asarray(z, dtype=float), x=labels[:n], y=labels[:n], zmin=0, zmax=1, colorscale="Blues", showscale=i == 0, row=row, col=col,
            hovertemplate=f"{name}<br>query %{{y}}<br>key %{{x}}<br>attention %{{z:.3f}}<extra></extra>",
        )
        fig.update_yaxes(autorange="reversed", tickfont=dict(size=7), row=row, col=col)
        fig.update_xaxes(tickfont=dict(size=7), row=row, col=col)
    title = wrap_title(title)
    fig.update_layout(title=title, height=n_rows * height_per_row + 60, **layout_for(title, list(patterns)))
    return fig


def heatmap_row(
    panels: dict[str, Values], x: Sequence[str], y: Sequence[str], *, title: str, x_title: str, y_title: str,
    zmin: float | None = None, zmax: float | None = None, colorscale: str = "Viridis", hover: dict[str, str] | None = None,
    height: int = 420,
) -> go.Figure:
    """Heatmaps side by side on the same axes and colour scale, values written in the cells.

    The panel names are the subplot titles: keep them short (``<br>`` breaks a line), put numbers in
    the caption or in ``hover[name]`` (shown on hover over that panel). Row ``i`` is ``y[i]``, top to bottom.
    """
    from plotly.subplots import make_subplots

    names = list(panels)
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=names, horizontal_spacing=0.08)
    for i, name in enumerate(names):
        z = np.asarray(panels[name], dtype=float)
        fig.add_heatmap(
            z=z, x=list(x), y=list(y), zmin=zmin, zmax=zmax, colorscale=colorscale, showscale=i == len(names) - 1, row=1, col=i + 1,
            text=np.vectorize(lambda v: "" if not np.isfinite(v) else f"{v:.2f}")(z), texttemplate="%{text}",
            hovertemplate=f"{(hover or {}).get(name, name)}<br>{y_title}: %{{y}}<br>{x_title}: %{{x}}<br>%{{z:.3f}}<extra></extra>",
        )
        fig.update_yaxes(autorange="reversed", title_text=y_title if i == 0 else None, row=1, col=i + 1)
        fig.update_xaxes(title_text=x_title, row=1, col=i + 1)
    title = wrap_title(title)
    fig.update_annotations(font_size=14)
    fig.update_layout(title=title, height=height, **layout_for(title, names))
    return fig


def token_circuit_heatmaps(
    panels: dict[str, np.ndarray], tokens: Sequence[str], *, title: str, x_title: str, y_title: str, value: str = "value",
    zmid: float | None = 0.0,
) -> go.Figure:
    """Token-by-token circuits (full OV, full QK, bigram tables), one panel at a time chosen with buttons, as in the papers' figures.

    ``panels[name][i, j]`` is row token ``tokens[i]``, column token ``tokens[j]``: the same tokens in the
    same order on both axes, every one labelled, square cells, so that each token with itself (a copying
    head's diagonal) runs from the top left to the bottom right.
    """
    labels, n = list(tokens), len(tokens)
    fig = heatmap_selector(panels, labels, labels, title=title, x_title=x_title, y_title=y_title, value=value, zmid=zmid,
                           height=max(650, 260 + 20 * n))
    ticks = dict(tickmode="array", tickvals=labels, ticktext=labels, categoryorder="array", categoryarray=labels,
                 tickfont=dict(size=12 if n <= 20 else 10 if n <= 40 else 8))
    fig.update_xaxes(**ticks, constrain="domain")
    fig.update_yaxes(**ticks, scaleanchor="x", scaleratio=1, constrain="domain")
    if len(panels) > 8:  # a row of buttons would run off a narrow figure (12 heads): a drop-down menu instead
        fig.update_layout(updatemenus=[dict(fig.layout.updatemenus[0].to_plotly_json(), type="dropdown", direction="down")])
    return fig


def heatmap_panels(
    panels: dict[str, tuple[np.ndarray, Values, Values]], *, title: str, x_title: str, y_title: str, value: str = "value",
    log_x: bool = False, height: int = 460,
) -> go.Figure:
    """Heatmaps side by side over numeric axes on a sequential scale: ``panels[name] = (z, x, y)``, row ``i`` of ``z`` at ``y[i]``."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=list(panels), horizontal_spacing=0.08)
    for col, (name, (z, x, y)) in enumerate(panels.items(), start=1):
        fig.add_heatmap(
            z=np.asarray(z, dtype=float), x=[float(v) for v in x], y=[float(v) for v in y], colorscale="Viridis", showscale=col == 1,
            colorbar=dict(title=value), row=1, col=col,
            hovertemplate=f"{name}<br>{y_title}: %{{y}}<br>{x_title}: %{{x}}<br>{value}: %{{z:.3f}}<extra></extra>",
        )
        fig.update_xaxes(type="log" if log_x else "linear", title_text=x_title, row=1, col=col)
        fig.update_yaxes(title_text=y_title if col == 1 else None, row=1, col=col)
    fig.update_layout(title=title, height=height, **PANELS_LAYOUT)
    return fig
