"""Curves over training with named phases shaded (e.g. memorisation, circuit formation, cleanup), on log axes if asked."""

from __future__ import annotations

import math

import plotly.graph_objects as go

from circuits.experiments.plots.style import PANELS_LAYOUT, Values, series_colours, wrap_title

__all__ = ["PHASE_COLOURS", "phase_rows"]

#: Fill colours of the phase bands, in order.
PHASE_COLOURS = ("#9ecae1", "#fdd0a2", "#c7e9c0", "#dadaeb")


def phase_rows(
    rows: dict[str, dict[str, tuple[Values, Values]]], *, title: str, x_title: str, phases: dict[str, tuple[float, float]] | None = None,
    log_x: bool = False, log_y: dict[str, bool] | None = None, marks: dict[str, float | int] | None = None, height_per_row: int = 240,
) -> go.Figure:
    """Rows of curves over a shared x (``rows[subtitle][name] = (x, y)``; a name keeps one colour and one legend entry).

    ``phases[label] = (x0, x1)`` shades that x range in every row and writes ``label`` above the top row; ``marks[label] = x``
    draws a dotted vertical line in every row (e.g. an onset; say which in the caption); ``log_y[subtitle]`` puts that row
    on a log scale.
    """
    from plotly.subplots import make_subplots

    colours = series_colours([name for series in rows.values() for name in series])
    fig = make_subplots(rows=len(rows), cols=1, shared_xaxes=True, vertical_spacing=0.07, subplot_titles=list(rows))
    shown: set[str] = set()
    for row, (subtitle, series) in enumerate(rows.items(), start=1):
        for name, (x, y) in series.items():
            fig.add_scatter(
                x=[float(v) for v in x], y=[float(v) for v in y], mode="lines", name=name, legendgroup=name, showlegend=name not in shown,
                line=dict(color=colours[name]), row=row, col=1, hovertemplate=f"{name}<br>{x_title}: %{{x:,}}<br>%{{y:.4g}}<extra></extra>",
            )
            shown.add(name)
        if (log_y or {}).get(subtitle):
            fig.update_yaxes(type="log", row=row, col=1)
    # shapes take data positions on a log axis, annotations take log10 positions
    where = (lambda x: math.log10(max(float(x), 1e-9))) if log_x else float
    for i, (label, (x0, x1)) in enumerate((phases or {}).items()):
        fig.add_vrect(x0=float(x0), x1=float(x1), fillcolor=PHASE_COLOURS[i % len(PHASE_COLOURS)], opacity=0.35, line_width=0,
                      layer="below", row="all", col=1)
        fig.add_annotation(x=(where(x0) + where(x1)) / 2, y=0.98, xref="x", yref="y domain", text=label, showarrow=False,
                           font_size=11, yanchor="top")
    for x in (marks or {}).values():
        fig.add_vline(x=float(x), line_dash="dot", line_color="#555", row="all", col=1)
    fig.update_xaxes(type="log" if log_x else "linear", row=len(rows), col=1, title_text=x_title)
    if log_x:
        fig.update_xaxes(type="log")
    title = wrap_title(title)
    fig.update_layout(title=title, height=len(rows) * height_per_row + 90, **PANELS_LAYOUT)
    return fig
