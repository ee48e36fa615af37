"""Curves over training checkpoints: curves with their own x, stacked rows over a shared x, head curves, shaded windows."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from circuits.experiments.plots.style import LAYOUT, PANELS_LAYOUT, Values, series_colours

__all__ = ['add_band', 'mark_bars', 'curves', 'curve_rows', 'head_curve_panels', 'add_interval']


def add_band(fig: go.Figure, band: tuple[float, float] | None, **where) -> go.Figure:
    """Shade the x range ``band = (x0, x1)`` (e.g. a detected window) in light red; ``None`` leaves ``fig`` as it is.

    ``where`` selects subplots (``row="all", col="all"`` for every panel of a subplot grid).
    """
    if band is not None:
        fig.add_vrect(x0=float(band[0]), x1=float(band[1]), fillcolor="red", opacity=0.08, line_width=0, **where)
    return fig


def mark_bars(fig: go.Figure, marked: Sequence[bool]) -> go.Figure:
    """Colour the bars of every bar trace of ``fig`` by category: marked ones red, the others blue."""
    return fig.update_traces(marker_color=["crimson" if m else "steelblue" for m in marked], selector=dict(type="bar"))


def curves(
    series: dict[str, tuple[Values, Values]], *, title: str, x_title: str, y_title: str, colours: dict[str, str] | None = None,
    dashes: dict[str, str] | None = None, steps: dict[str, Values] | None = None,
    marks: dict[str, tuple[float, float, str]] | None = None, x_format: str = ".4g", log_x: bool = False,
    mode: str = "lines+markers", height: int = 420,
) -> go.Figure:
    """Curves with their own x each: ``series[name] = (x, y)``.

    ``steps[name]`` labels each point in the hover (the training step of a checkpoint); ``marks[name] = (x, y, text)``
    draws a cross in the series' colour at one point (e.g. where a trajectory turns); ``dashes[name]`` is a plotly
    dash style (``"dot"``); ``colours`` defaults to :func:`series_colours` of the names; ``x_format`` formats x in the hover.
    """
    colours = colours or series_colours(list(series))
    fig = go.Figure()
    for name, (x, y) in series.items():
        step = "step %{customdata}<br>" if steps and name in steps else ""
        fig.add_scatter(
            x=[float(v) for v in x], y=[float(v) for v in y], mode=mode, name=name, marker=dict(size=5),
            line=dict(color=colours[name], dash=(dashes or {}).get(name)), customdata=list(steps[name]) if step else None,
            hovertemplate=f"{name}<br>{step}{x_title}: %{{x:{x_format}}}<br>{y_title}: %{{y:.4g}}<extra></extra>",
        )
    for name, (x, y, text) in (marks or {}).items():
        fig.add_scatter(x=[float(x)], y=[float(y)], mode="markers", marker=dict(symbol="x", size=14, color=colours[name]),
                        showlegend=False, hovertemplate=f"{text}<extra></extra>")
    fig.update_layout(title=title, height=height, **LAYOUT)
    fig.update_xaxes(title=x_title, type="log" if log_x else "linear")
    fig.update_yaxes(title=y_title)
    return fig


def curve_rows(
    rows: dict[str, dict[str, tuple[Values, Values]]], *, title: str, x_title: str, colours: dict[str, str] | None = None,
    faint: dict[str, dict[str, tuple[Values, Values]]] | None = None, height_per_row: int = 230,
) -> go.Figure:
    """Curve plots stacked over a shared x: ``rows[subtitle][name] = (x, y)``, a name with one colour and one legend entry.

    ``faint[subtitle][name] = (x, y)`` adds a thin, pale curve of that name's colour behind the others of the row
    (e.g. the noisy train loss behind the validation loss).
    """
    from plotly.subplots import make_subplots

    names = [name for series in rows.values() for name in series]
    colours = colours or series_colours(names)
    fig = make_subplots(rows=len(rows), cols=1, shared_xaxes=True, vertical_spacing=0.06, subplot_titles=list(rows))
    shown: set[str] = set()
    for row, (subtitle, series) in enumerate(rows.items(), start=1):
        for name, (x, y) in (faint or {}).get(subtitle, {}).items():
            fig.add_scatter(x=[float(v) for v in x], y=[float(v) for v in y], mode="lines", legendgroup=name, showlegend=False,
                            opacity=0.35, line=dict(color=colours[name], width=1), hoverinfo="skip", row=row, col=1)
        for name, (x, y) in series.items():
            fig.add_scatter(
                x=[float(v) for v in x], y=[float(v) for v in y], mode="lines", name=name, legendgroup=name,
                showlegend=name not in shown, line=dict(color=colours[name]), row=row, col=1,
                hovertemplate=f"{name}<br>{x_title}: %{{x:,}}<br>{subtitle}: %{{y:.4g}}<extra></extra>",
            )
            shown.add(name)
    fig.update_xaxes(title_text=x_title, row=len(rows), col=1)
    fig.update_layout(title=title, height=len(rows) * height_per_row + 70, **PANELS_LAYOUT)
    return fig


def head_curve_panels(
    panels: dict[str, tuple[Values, np.ndarray]], *, title: str, x_title: str, y_title: str, height: int = 420,
) -> go.Figure:
    """One panel per model, a curve per head: ``panels[name] = (x, values[checkpoint, layer, head])``.

    Heads are coloured by layer (layer 0 blue, 1 green, 2 red, then around the colour wheel), darker to lighter by
    head; the title should say so (there is no legend: head labels show on hover).
    """
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=list(panels), shared_yaxes=True, horizontal_spacing=0.03)
    for col, (name, (x, values)) in enumerate(panels.items(), start=1):
        values = np.asarray(values, dtype=float)
        for layer in range(values.shape[1]):
            for head in range(values.shape[2]):
                fig.add_scatter(
                    x=[float(v) for v in x], y=values[:, layer, head], mode="lines", name=f"L{layer}H{head}", showlegend=False, row=1, col=col,
                    line=dict(width=1.5, color=f"hsl({(240 - 120 * layer) % 360},70%,{35 + 5 * head}%)"),
                    hovertemplate=f"{name} L{layer}H{head}<br>{x_title}: %{{x:,}}<br>{y_title}: %{{y:.3f}}<extra></extra>",
                )
        fig.update_xaxes(title_text=x_title, row=1, col=col)
    fig.update_yaxes(title_text=y_title, row=1, col=1)
    fig.update_layout(title=title, height=height, **PANELS_LAYOUT)
    return fig


def add_interval(fig: go.Figure, x: Values, lo: Values, hi: Values, *, colour: str, name: str) -> go.Figure:
    """Shade between ``lo`` and ``hi`` along ``x`` (e.g. a curve's 95% bootstrap interval) in a pale ``colour``, behind the curves."""
    xs = [float(v) for v in x]
    fig.add_scatter(x=xs + xs[::-1], y=[float(v) for v in hi] + [float(v) for v in lo][::-1], fill="toself", fillcolor=colour,
                    opacity=0.15, line=dict(width=0), mode="lines", hoverinfo="skip", showlegend=False, name=f"{name} 95% interval")
    fig.data = (fig.data[-1], *fig.data[:-1])  # drawn first: behind the curves
    return fig
