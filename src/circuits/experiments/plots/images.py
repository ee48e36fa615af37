"""Image builders: small pictures (digits, attention over the patch grid, per-patch values) in a grid of panels."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from circuits.experiments.plots.style import PANELS_LAYOUT, grid

__all__ = ["image_panels"]


def image_panels(
    panels: dict[str, np.ndarray], *, title: str, n_cols: int = 4, colorscale: str = "Greys", zmid: float | None = None,
    value: str = "value", shared_scale: bool = True, height_per_row: int = 190,
) -> go.Figure:
    """One small picture per panel (``[rows, cols]`` arrays, row 0 at the top), square pixels, no axes.

    ``zmid`` centres a diverging scale (use ``colorscale="RdBu"``); ``shared_scale`` gives every
    panel the same colour range (so panels compare), else each panel is scaled on its own.
    """
    from plotly.subplots import make_subplots

    names = list(panels)
    n_rows, n_cols = grid(len(names), n_cols)
    fig = make_subplots(rows=n_rows, cols=n_cols, subplot_titles=names, horizontal_spacing=0.03, vertical_spacing=0.12 / max(n_rows, 1) + 0.04)
    arrays = [np.asarray(panels[n], dtype=float) for n in names]
    low = min(float(np.nanmin(a)) for a in arrays)
    high = max(float(np.nanmax(a)) for a in arrays)
    if zmid is not None:
        reach = max(abs(low - zmid), abs(high - zmid)) or 1.0
        low, high = zmid - reach, zmid + reach
    for i, (name, z) in enumerate(zip(names, arrays)):
        row, col = i // n_cols + 1, i % n_cols + 1
        scale = dict(zmin=low, zmax=high) if shared_scale else {}
        fig.add_trace(
            go.Heatmap(
                z=z, colorscale=colorscale, showscale=shared_scale and i == 0, colorbar=dict(title=value, len=0.8), **scale,
                hovertemplate=f"{name}<br>row %{{y}}, column %{{x}}<br>{value}: %{{z:.3g}}<extra></extra>",
            ),
            row=row, col=col,
        )
        fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False, constrain="domain", row=row, col=col)
        fig.update_yaxes(
            showticklabels=False, showgrid=False, zeroline=False, autorange="reversed", scaleanchor=f"x{i + 1 if i else ''}", row=row, col=col
        )
    fig.update_layout(title=title, height=110 + height_per_row * n_rows, **PANELS_LAYOUT)
    return fig
