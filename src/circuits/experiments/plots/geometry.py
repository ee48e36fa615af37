"""Geometry builders: feature directions in a 2-D plane (one panel per model), categorical phase diagrams."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from circuits.experiments.plots.style import LAYOUT, colour_cycle, grid, layout_for

__all__ = ["vectors_2d_panels", "category_heatmap"]


def vectors_2d_panels(
    panels: dict[str, np.ndarray], *, title: str, labels: Sequence[str], n_cols: int = 3, height_per_row: int = 300,
) -> go.Figure:
    """Arrows from the origin, one subplot per panel: ``panels[name]`` is ``[vector, 2]``; vector ``k`` keeps colour and label ``labels[k]``."""
    from plotly.subplots import make_subplots

    names = list(panels)
    n_rows, n_cols = grid(len(names), n_cols)
    fig = make_subplots(rows=n_rows, cols=n_cols, subplot_titles=names, horizontal_spacing=0.06, vertical_spacing=0.14)
    colours = colour_cycle()
    bound = max([float(np.abs(np.asarray(v)).max()) for v in panels.values() if np.asarray(v).size] + [1e-9]) * 1.1
    for i, name in enumerate(names):
        row, col = i // n_cols + 1, i % n_cols + 1
        for k, (x, y) in enumerate(np.asarray(panels[name], dtype=float)):
            fig.add_scatter(
                x=[0.0, x], y=[0.0, y], mode="lines+markers", name=labels[k], legendgroup=labels[k], showlegend=i == 0,
                line=dict(color=colours[k % len(colours)], width=2), marker=dict(size=[0, 8]), row=row, col=col,
                hovertemplate=f"{name}<br>{labels[k]}: (%{{x:.3f}}, %{{y:.3f}})<extra></extra>",
            )
    fig.update_layout(title=title, height=max(350, n_rows * height_per_row + 100), **layout_for(title, names))
    fig.update_xaxes(range=[-bound, bound], zeroline=True, zerolinecolor="#bbb", showticklabels=False)
    fig.update_yaxes(range=[-bound, bound], zeroline=True, zerolinecolor="#bbb", showticklabels=False, scaleanchor="x", scaleratio=1)
    for i in range(2, len(names) + 1):
        fig.update_yaxes(scaleanchor=f"x{i}", row=(i - 1) // n_cols + 1, col=(i - 1) % n_cols + 1)
    return fig


def category_heatmap(
    codes: np.ndarray, x: Sequence[str], y: Sequence[str], categories: Sequence[str], *, title: str, x_title: str, y_title: str,
    colours: Sequence[str] | None = None, height: int = 480,
) -> go.Figure:
    """A heatmap of integer category codes ``codes[row, col]`` (``0 .. len(categories) - 1``), one colour and legend label per category.

    Row ``i`` is ``y[i]``, drawn bottom to top (a numeric axis, e.g. relative importance, grows upwards).
    """
    codes = np.asarray(codes, dtype=float)
    n = len(categories)
    colours = list(colours or colour_cycle())[:n]
    scale = [[v, colours[c]] for c in range(n) for v in (c / n, (c + 1) / n)]
    text = [[categories[int(v)] if np.isfinite(v) else "" for v in row] for row in codes]
    fig = go.Figure(go.Heatmap(
        z=codes, x=list(x), y=list(y), zmin=-0.5, zmax=n - 0.5, colorscale=scale, showscale=False, text=text,
        hovertemplate=f"{y_title}: %{{y}}<br>{x_title}: %{{x}}<br>%{{text}}<extra></extra>", xgap=1, ygap=1,
    ))
    for c, name in enumerate(categories):  # legend entries for the categories
        fig.add_scatter(x=[None], y=[None], mode="markers", name=name, marker=dict(size=12, symbol="square", color=colours[c]))
    fig.update_layout(title=title, height=height, **LAYOUT)
    fig.update_xaxes(title=x_title, type="category")
    fig.update_yaxes(title=y_title, type="category")
    return fig
