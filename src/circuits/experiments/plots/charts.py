"""Bar, line, scatter and box builders, alone or as panels side by side."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from circuits.experiments.plots.style import LAYOUT, Values, colour_cycle, layout_for, wrap_title

__all__ = ['bars', 'lines', 'scatter', 'complex_scatter_grid', 'line_panels', 'bar_panels', 'bars_and_head_heatmap', 'bar_charts', 'box_bands', 'labelled_points']


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
    fig.update_layout(title=title, barmode="group", height=height, **LAYOUT)
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
    fig.update_layout(title=title, height=height, **LAYOUT)
    fig.update_xaxes(title=x_title, type="log" if log_x else "linear")
    fig.update_yaxes(title=y_title)
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
    fig.update_layout(title=title, height=height, **LAYOUT)
    fig.update_xaxes(title=x_title, type="log" if log_x else "linear")
    fig.update_yaxes(title=y_title, type="log" if log_y else "linear")
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
    fig.update_layout(title=title, height=max(350, n_rows * height_per_row + 80), **LAYOUT)
    fig.update_xaxes(range=[-1.1, 1.1], zeroline=False)
    fig.update_yaxes(range=[-1.1, 1.1], zeroline=False)
    return fig


def line_panels(
    panels: dict[str, dict[str, tuple[Values, Values]]], *, title: str, x_title: str, y_title: str = "",
    reference: dict[str, dict[str, float]] | None = None, height: int = 420,
) -> go.Figure:
    """Line plots side by side: ``panels[panel][series] = (x, y)``, each series with its own x; a series keeps its colour
    and one legend entry across panels; ``reference[panel] = {label: y}`` draws dotted horizontal lines in that panel."""
    from plotly.subplots import make_subplots

    colours, order = colour_cycle(), list(dict.fromkeys(s for series in panels.values() for s in series))
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=list(panels))
    for col, (panel, series) in enumerate(panels.items(), start=1):
        for name, (x, y) in series.items():
            fig.add_scatter(
                x=list(x), y=[float(v) for v in y], mode="lines+markers", name=name, legendgroup=name, showlegend=col == 1,
                line=dict(color=colours[order.index(name) % len(colours)]), row=1, col=col,
                hovertemplate=f"{name}<br>{x_title} %{{x}}<br>{panel}: %{{y:.4g}}<extra></extra>",
            )
        for label, value in (reference or {}).get(panel, {}).items():
            fig.add_hline(y=value, line_dash="dot", annotation_text=f"{label} ({value:.3g})", row=1, col=col)
        fig.update_xaxes(title_text=x_title, row=1, col=col)
        fig.update_yaxes(title_text=y_title, row=1, col=col)
    title = wrap_title(title)
    fig.update_layout(title=title, height=height, **layout_for(title, list(panels)))
    return fig


def bar_panels(
    categories: Sequence[str], panels: dict[str, Values], *, title: str, reference: dict[str, dict[str, float]] | None = None,
    height: int = 420,
) -> go.Figure:
    """One bar chart per panel over the same categories, side by side (``NaN`` bars are left out);
    ``reference[panel] = {label: y}`` draws dotted horizontal lines in that panel."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=list(panels))
    for col, (panel, values) in enumerate(panels.items(), start=1):
        fig.add_bar(x=list(categories), y=[float(v) for v in values], showlegend=False, row=1, col=col,
                    hovertemplate=f"%{{x}}<br>{panel}: %{{y:.4g}}<extra></extra>")
        for label, value in (reference or {}).get(panel, {}).items():
            fig.add_hline(y=value, line_dash="dot", annotation_text=f"{label} ({value:.3g})", row=1, col=col)
        fig.update_xaxes(type="category", row=1, col=col)
    title = wrap_title(title)
    fig.update_layout(title=title, height=height, **layout_for(title, list(panels)))
    return fig


def bars_and_head_heatmap(
    categories: Sequence[str], values: Values, heads: np.ndarray, *, title: str, bars_title: str, heads_title: str, value: str = "value",
    zmid: float | None = 0.0, colorscale: str = "RdBu", height: int = 420,
) -> go.Figure:
    """Bars of a few components (left) next to a ``[layer, head]`` heatmap of every head (right).

    ``zmid`` centres a diverging scale (signed shares); ``zmid=None`` gives a sequential scale from 0 (e.g. ablation drops)."""
    from plotly.subplots import make_subplots

    heads = np.asarray(heads, dtype=float)
    fig = make_subplots(rows=1, cols=2, subplot_titles=[bars_title, heads_title], column_widths=[0.45, 0.55])
    fig.add_bar(x=list(categories), y=[float(v) for v in values], showlegend=False, row=1, col=1,
                hovertemplate=f"%{{x}}: {value} %{{y:.4g}}<extra></extra>")
    scale = dict(zmid=zmid) if zmid is not None else dict(zmin=0)
    fig.add_heatmap(z=heads, x=[f"H{h}" for h in range(heads.shape[1])], y=[f"L{l}" for l in range(heads.shape[0])], colorscale=colorscale,
                    row=1, col=2, hovertemplate=f"%{{y}}%{{x}}: {value} %{{z:.4f}}<extra></extra>", **scale)
    fig.update_xaxes(type="category", row=1, col=1)
    fig.update_yaxes(autorange="reversed", row=1, col=2)
    title = wrap_title(title)
    fig.update_layout(title=title, height=height, **layout_for(title, [bars_title, heads_title]))
    return fig


def bar_charts(panels: dict[str, tuple[Sequence[str], Values]], *, title: str, y_title: str, unit: str = "", height: int = 400) -> go.Figure:
    """One-series bar charts side by side, each with its own categories: ``panels[name] = (categories, values)``."""
    from plotly.subplots import make_subplots

    names = list(panels)
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=names, horizontal_spacing=0.1)
    for i, name in enumerate(names):
        categories, values = panels[name]
        fig.add_bar(x=list(categories), y=[float(v) for v in values], showlegend=False, row=1, col=i + 1,
                    hovertemplate=f"%{{x}}: %{{y:.3f}} {unit}<extra></extra>")
        fig.update_xaxes(type="category", row=1, col=i + 1)
    fig.update_yaxes(title_text=y_title, row=1, col=1)
    title = wrap_title(title)
    fig.update_annotations(font_size=14)
    fig.update_layout(title=title, height=height, **layout_for(title, names))
    return fig


def box_bands(
    series: dict[str, tuple[Values, Sequence[str]]], bands: dict[str, tuple[float, float]], *, title: str, y_title: str,
    height: int = 420,
) -> go.Figure:
    """One box per series with every point shown (``series[name] = (values, hover labels)``), over a grey band
    ``mean ± std`` and a dashed line at ``mean`` for each ``bands[name] = (mean, std)`` (e.g. a random baseline)."""
    fig = go.Figure()
    for i, (name, (values, labels)) in enumerate(series.items()):
        fig.add_box(y=[float(v) for v in values], name=name, boxpoints="all", jitter=0.5, pointpos=0, text=list(labels),
                    hovertemplate="%{text}: %{y:.3f}<extra></extra>")
        if name in bands:
            mean, std = bands[name]
            fig.add_shape(type="rect", x0=i - 0.45, x1=i + 0.45, y0=mean - std, y1=mean + std, fillcolor="grey", opacity=0.25, line_width=0)
            fig.add_shape(type="line", x0=i - 0.45, x1=i + 0.45, y0=mean, y1=mean, line=dict(color="black", dash="dash"))
    title = wrap_title(title)
    fig.update_layout(title=title, yaxis_title=y_title, height=height, **layout_for(title))
    return fig


def labelled_points(
    x: Values, y: Values, labels: Sequence[str], colour: Values, *, title: str, x_title: str, y_title: str, colour_title: str,
    x_range: tuple[float, float] | None = None, y_range: tuple[float, float] | None = None, cmin: float = 0.0, cmax: float = 1.0,
    height: int = 480,
) -> go.Figure:
    """Points with their label written above each, coloured by ``colour`` on a sequential scale from ``cmin`` to ``cmax``."""
    fig = go.Figure(go.Scatter(
        x=[float(v) for v in x], y=[float(v) for v in y], mode="markers+text", text=list(labels), textposition="top center",
        marker=dict(size=12, color=[float(v) for v in colour], colorscale="Reds", cmin=cmin, cmax=cmax, showscale=True,
                    colorbar=dict(title=colour_title), line=dict(width=1, color="#666")),
        hovertemplate=f"%{{text}}<br>{x_title}: %{{x:.3f}}<br>{y_title}: %{{y:.3f}}<extra></extra>",
    ))
    title = wrap_title(title)
    fig.update_layout(title=title, height=height, **layout_for(title))
    fig.update_xaxes(title=x_title, range=list(x_range) if x_range else None)
    fig.update_yaxes(title=y_title, range=list(y_range) if y_range else None)
    return fig
