"""The figures of the two-layer section (:mod:`circuits.experiments.two_layer`), drawn with the shared builders of
:mod:`circuits.experiments.plots` from a :class:`~circuits.experiments.two_layer.Result`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from circuits.analysis.weights.composition import COMPOSITION_KINDS as KINDS
from circuits.experiments.base import Figure
from circuits.experiments.plots import bar_charts, bars, box_bands, head_heatmap_grid, heatmap_row, labelled_points, lines, pattern_heatmaps, wrap_title
from circuits.experiments.two_layer_claims import ablation_numbers, best_single_ov, label, min_or_nan
from circuits.experiments.util import fmt

if TYPE_CHECKING:
    from circuits.experiments.two_layer import Result

def figures(result: Result) -> list[Figure]:
    r = result
    return [_head_scores_figure(r), _patterns_figure(r), _composition_figure(r), _composition_baseline_figure(r), _eigen_corner_figure(r),
            _ablation_figure(r), _ov_accuracy_figure(r), _term_importance_figure(r), _repeated_loss_figure(r)]


def _head_scores_figure(r: Result) -> Figure:
    (pl, ph), (il, ih) = r.previous_token_head, r.induction_head
    panels = {"previous-token (ours, text)": r.previous_token, "TL detect_head previous-token (text)": r.detect_previous,
              "TL detect_head induction (text)": r.detect_induction, "induction, natural prefix + R + R": r.induction,
              "induction, [BOS] + R + R": r.induction_bos, "prefix matching, natural prefix + R x 4": r.prefix_matching}
    return Figure(
        key="two_layer_head_scores", title="Previous-token and induction scores of every head",
        caption=(f"Previous-token score (mean attention to the previous token on validation text) beside TransformerLens's detect_head "
                 f"on the same text; induction score (mean attention to the token after the previous copy) on {r.probe_layout} and on "
                 f"{r.bos_layout}; {r.probe_rule}. Top previous-token head {label(r.previous_token_head)} = {fmt(r.previous_token[pl, ph])} "
                 f"(TL {fmt(r.detect_previous[pl, ph])}); top induction head {label(r.induction_head)} = {fmt(r.induction[il, ih])} after a "
                 f"natural prefix, {fmt(r.induction_bos[il, ih])} right after BOS; prefix matching {fmt(r.prefix_matching[il, ih])} "
                 f"(appendix's literal offset: {fmt(r.prefix_matching_literal[il, ih])})."),
        fig=head_heatmap_grid(panels, title="Head scores", n_cols=3, zmax=1.0),
    )


def _patterns_figure(r: Result) -> Figure:
    pats = {f"induction head {label(r.induction_head)}": r.induction_pattern,
            f"previous-token head {label(r.previous_token_head)}": r.previous_token_pattern}
    return Figure(
        key="two_layer_patterns", title="Attention patterns on repeated random tokens after natural text",
        caption=("On one sequence [BOS] + validation tokens + R + R, the induction head attends from each token of the second repeat "
                 "to the token after its earlier copy (the off-diagonal stripe); the previous-token head attends to the token just "
                 "before (the sub-diagonal)."),
        fig=pattern_heatmaps(pats, list(r.pattern_tokens), title="Attention patterns on [BOS] + text + R + R"),
    )


def _composition_figure(r: Result) -> Figure:
    """Q/K/V scores of the layer before the induction head's into its layer; the baseline on a second line of each subplot title."""
    il = r.induction_head[0]
    writer = il - 1 if il >= 1 else 0
    reader = il if il >= 1 else 1
    c = r.composition
    names = {k: f"{k}-composition<br>baseline {fmt(c[k].baseline_mean)} ± {fmt(c[k].baseline_std)}" for k in KINDS}
    fig = heatmap_row(
        {names[k]: c[k].scores[writer, :, reader, :] for k in KINDS},
        x=[f"L{reader}H{h}" for h in range(r.n_heads)], y=[f"L{writer}H{h}" for h in range(r.n_heads)],
        title=f"Composition scores, layer-{writer} writers into layer-{reader} readers", x_title="reader (later head)",
        y_title="writer (earlier head)", zmin=0.0, zmax=max(float(np.nanmax(c[k].scores)) for k in KINDS),
        hover={names[k]: f"{k}-composition (baseline {fmt(c[k].baseline_mean)} ± {fmt(c[k].baseline_std)})" for k in KINDS},
    )
    pair = f"{label(r.previous_token_head)} -> {label(r.induction_head)}"
    return Figure(
        key="two_layer_composition", title="Q/K/V composition scores against the random baseline",
        caption=(f"Raw scores ||W_OV W_R|| / (||W_OV|| ||W_R||); the baseline (mean ± std over random head pairs of this shape) is in "
                 f"each title. {pair}: K = {fmt(c['K'].pair)} (z = {fmt(c['K'].z)}), "
                 f"Q = {fmt(c['Q'].pair)} (z = {fmt(c['Q'].z)}), V = {fmt(c['V'].pair)} (z = {fmt(c['V'].z)})."),
        fig=fig,
    )


def _composition_baseline_figure(r: Result) -> Figure:
    pairs = [(l1, h1, l2, h2) for l1 in range(r.n_layers) for h1 in range(r.n_heads) for l2 in range(l1 + 1, r.n_layers) for h2 in range(r.n_heads)]
    labels = [f"L{l1}H{h1}->L{l2}H{h2}" for l1, h1, l2, h2 in pairs]
    c = r.composition
    fig = box_bands(
        {k: ([c[k].scores[p] for p in pairs], labels) for k in KINDS}, {k: (c[k].baseline_mean, c[k].baseline_std) for k in KINDS},
        title="All composition scores (points) vs the random baseline (dashed mean, grey ± 1 std)", y_title="score",
    )
    return Figure(key="two_layer_composition_baseline", title="Composition scores against the baseline",
                  caption="Every pair of an earlier and a later head; the previous-token -> induction K-composition should stand out above the grey band.",
                  fig=fig)


def _eigen_corner_figure(r: Result) -> Figure:
    (il, ih), prev = r.induction_head, label(r.previous_token_head)
    heads = [(l, h) for l in range(1, r.n_layers) for h in range(r.n_heads)]
    fig = labelled_points(
        [r.ov_positivity[lh] for lh in heads], [r.qk_corner[lh] for lh in heads], [label(lh) for lh in heads], [r.induction[lh] for lh in heads],
        title=f"Eigen-corner: OV copying vs QK positivity of the K-composition term with {prev}", colour_title="induction",
        x_title="OV copying (Σλ/Σ|λ| of W_E W_OV W_U)", y_title=f"QK positivity of W_E W_QK (W_OV^{prev})ᵀ W_E ᵀ",
        x_range=(-1.05, 1.05), y_range=(-1.05, 1.05),
    )
    return Figure(
        key="two_layer_eigen_corner", title="The induction eigen-corner",
        caption=(f"Each layer-{il} head by the positivity of its OV circuit's eigenvalues (copying) and of its QK circuit read "
                 f"through the previous-token head (prefix matching); colour = induction score. {label(r.induction_head)}: "
                 f"({fmt(r.ov_positivity[il, ih])}, {fmt(r.qk_corner[il, ih])})."),
        fig=fig,
    )


def _ablation_figure(r: Result) -> Figure:
    abl, clean, ablated_prev, other_abl = ablation_numbers(r)
    abl_bos, clean_bos, ablated_prev_bos, _ = ablation_numbers(r, bos=True)
    il, prev = r.induction_head[0], label(r.previous_token_head)
    fig = bars(["clean"] + list(abl), {"natural prefix + R + R": [clean] + list(abl.values()), "[BOS] + R + R": [clean_bos] + list(abl_bos.values())},
               x_title="zero-ablated head", y_title="induction score", reference={"uniform attention (natural prefix)": r.uniform_level},
               title=wrap_title(f"Induction score of {label(r.induction_head)} with each layer-{il - 1 if il else 0} head zero-ablated"), height=380)
    return Figure(
        key="two_layer_ablation", title="Ablating the previous-token head removes induction",
        caption=(f"Natural-prefix probe: clean induction score {fmt(clean)}; with {prev} ablated {fmt(ablated_prev)}; with any other "
                 f"earlier head ablated at least {fmt(min_or_nan(other_abl))}; a uniformly attending head scores {fmt(r.uniform_level)}. "
                 f"[BOS] + R + R: {fmt(clean_bos)} -> {fmt(ablated_prev_bos)}."),
        fig=fig,
    )


def _ov_accuracy_figure(r: Result) -> Figure:
    il, acc = r.induction_head[0], r.ov_accuracy
    names = [f"L{il}H{h}" for h in range(r.n_heads)] + ["sum of induction heads", "sum of top-2 heads"]
    title = wrap_title("OV copying accuracy: fraction of tokens whose own logit is the top entry of their row of W_E W_OV W_U")
    series = {"top-1": list(acc.top1[il]) + [acc.summed_top1, acc.top2_top1], "top-5": list(acc.top5[il]) + [acc.summed_top5, acc.top2_top5]}
    fig = bars(names, series, title=title, x_title="head (or sum of heads)", y_title="fraction of vocabulary",
               reference={f"chance (top-1) = 1/{r.d_vocab}": 1 / r.d_vocab})
    fig.update_layout(margin_t=90)
    return Figure(
        key="two_layer_ov_accuracy", title="OV copying accuracy of the induction heads",
        caption=(f"Best single induction head top-1 = {fmt(best_single_ov(r))}; summed OV of the induction heads "
                 f"({', '.join(label(x) for x in r.induction_heads)}) = {fmt(acc.summed_top1)}; chance = {fmt(1 / r.d_vocab)}."),
        fig=fig,
    )


def _order_names(n: int) -> list[str]:
    return ["direct (order 0)", "single heads (order 1)", "virtual heads (order 2)", "order 3", "order 4"][:n]


def _term_importance_figure(r: Result) -> Figure:
    t = r.terms
    order_names = _order_names(len(t.marginal_by_order))
    layers = [f"layer {l} heads" for l in range(r.n_layers)]
    fig = bar_charts({"loss reduction by path order": (order_names, t.marginal_by_order),
                      "order-1 terms by layer<br>(sum of single-term effects)": (layers, t.first_order_by_layer)},
                     title="Term importance (patterns frozen)", y_title="nats", unit="nats")
    return Figure(
        key="two_layer_term_importance", title="Term importance by path order",
        caption=(f"Marginal loss reduction from adding all paths of each order (uniform loss {fmt(t.uniform_loss)} nats, full "
                 f"{fmt(t.full_loss)} nats on {t.n_tokens} validation tokens): "
                 + ", ".join(f"{n} {fmt(v)}" for n, v in zip(order_names, t.marginal_by_order)) + "."),
        fig=fig,
    )


def _repeated_loss_figure(r: Result) -> Figure:
    first, second = r.loss_per_repeat_bos
    per_pos = r.loss_per_position
    fig = lines(list(range(1, len(per_pos) + 1)), {"loss": per_pos}, title=f"Loss per position on [BOS] + R + R (T = {r.seq_len})",
                x_title="index of the predicted token", y_title="loss (nats)", height=380)
    fig.add_vline(x=r.seq_len + 0.5, line_dash="dash", annotation_text="second repeat starts")
    return Figure(key="two_layer_repeated_loss", title="Loss on repeated random tokens",
                  caption=(f"Mean loss on the first repeat {fmt(first)} nats, on the second {fmt(second)} nats ([BOS] + R + R, shown); "
                           f"after a natural prefix {fmt(r.loss_per_repeat[0])} -> {fmt(r.loss_per_repeat[1])} nats."), fig=fig)
