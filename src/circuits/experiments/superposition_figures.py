"""The figures of the superposition section (drawn with the shared builders of :mod:`circuits.experiments.plots`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from circuits.analysis.superposition import PHASES, STICKY_FRACTIONS, feature_norms
from circuits.experiments import plots
from circuits.experiments.base import Figure
from circuits.experiments.superposition_claims import phase_scores, sticky_stats

if TYPE_CHECKING:
    from circuits.experiments.superposition import Result

#: colours of the phases: grey (not represented), blue (dedicated), red (superposition), as in the paper
PHASE_COLOURS = ("#c8c8c8", "#1f77b4", "#d62728")
STICKY_LABELS = ("1", "3/4", "2/3", "1/2", "2/5", "3/8")


def figures(result: "Result") -> list[Figure]:
    return [pentagon_figure(result), phase_figure(result), dimensionality_figure(result)]


def pentagon_figure(result: "Result") -> Figure:
    panels = {
        f"S = {s:g}<br>1/(1-S) = {1 / (1 - s):.3g}": result.pentagon_W[k].T for k, s in enumerate(result.pentagon_sparsities)
    }
    labels = [f"feature {i} (I = {v:.2f})" for i, v in enumerate(result.importance)]
    return Figure(
        key="pentagon",
        title="5 features in 2 dimensions across sparsity",
        caption=(
            "Each feature's direction W_i in the 2-D hidden space of the lowest-loss model at each sparsity S (importance 0.9^i). "
            f"Features represented (||W_i|| >= {result.norm_threshold}) at S = {', '.join(f'{s:g}' for s in result.pentagon_sparsities)}: "
            f"{', '.join(str(int(k)) for k in (feature_norms(result.pentagon_W) >= result.norm_threshold).sum(-1))} of 5."
        ),
        fig=plots.vectors_2d_panels(panels, title="Feature directions W_i in 2 dimensions", labels=labels, n_cols=3),
    )


def phase_figure(result: "Result") -> Figure:
    dense, sparse, n = phase_scores(result.phase, result.phase_density, result.phase_importance, result.phase_sparse_density)
    x = [f"{1 / d:.3g}" for d in result.phase_density]
    y = [f"{r:.2g}" for r in result.phase_importance]
    return Figure(
        key="phase_diagram",
        title="Phase diagram: 2 features in 1 dimension",
        caption=(
            "Phase of feature 2 (feature 1 has importance 1) by feature density and relative importance: not represented (||W_2|| < "
            f"{result.norm_threshold}), a dedicated dimension, or in superposition with feature 1 (antipodal). {n} phases; densest column "
            f"{100 * dense:.0f}% and sparse cells {100 * sparse:.0f}% as in the paper."
        ),
        fig=plots.category_heatmap(
            result.phase.T, x, y, PHASES, title="2 features in 1 dimension: phase of feature 2", x_title="1/(1-S)",
            y_title="relative importance of feature 2", colours=PHASE_COLOURS,
        ),
    )


def dimensionality_figure(result: "Result") -> Figure:
    share, base, n = sticky_stats(result)
    inv = 1 / result.dims_density
    rep = result.dims_norm >= result.norm_threshold
    xs = np.repeat(inv[:, None], result.dims_D.shape[1], 1)[rep]
    labels = [f"feature {i}" for i in np.nonzero(rep)[1]]
    fig = plots.scatter(
        {"D_i of a represented feature": (xs, result.dims_D[rep], labels)}, title=f"Feature dimensionality, {result.dims_features} features in {result.dims_hidden} dimensions",
        x_title="1/(1-S)", y_title="dimensions per feature", log_x=True,
    )
    fig.add_scatter(x=inv.tolist(), y=result.dims_per_feature.tolist(), mode="lines+markers", name="m / ||W||_F^2", line=dict(color="#222"))
    for label, value in zip(STICKY_LABELS, STICKY_FRACTIONS):
        fig.add_hline(y=value, line_dash="dot", line_color="#999", annotation_text=label, annotation_position="right")
    return Figure(
        key="dimensionality",
        title="Feature dimensionality against 1/(1-S)",
        caption=(
            "Dots: each represented feature's D_i = ||W_i||^2 / sum_j (Ŵ_i·W_j)^2; line: the model's dimensions per feature m / ||W||_F^2; "
            f"dotted: the paper's sticky fractions. {100 * share:.0f}% of the {n} dots lie within {result.sticky_tolerance} of one "
            f"(an even spread would give {100 * base:.0f}%)."
        ),
        fig=fig,
    )
