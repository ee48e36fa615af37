"""Two-layer attention-only model: previous-token heads, induction heads and the K-composition between them.

Framework paper, two-layer section, and ARENA's reproduction: on the trained ``attn-only-2l``
preset we find the previous-token head (layer 0, on corpus text) and the induction heads
(layer 1, on repeated random tokens), show their attention patterns, measure Q/K/V-composition
against the random baseline, place every layer-1 head on the eigenvalue "corner" plot, ablate each
layer-0 head, measure how well the induction heads' OV circuits copy, split the loss by path order
(term importance), and compare the loss on the first and second repeat of random tokens. The
analysis itself (picking heads, composition, ablations, summed OV) is
:mod:`circuits.analysis.induction_circuit`; the claims and their verdicts are
:mod:`circuits.experiments.two_layer_claims`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from circuits.analysis.activations.paths import term_importance
from circuits.analysis.activations.scores import induction_scores, previous_token_scores, repeated_tokens_loss
from circuits.analysis.induction_circuit import ablated_induction_scores, first_order_by_layer, mechanism, summed_ov_accuracy, top_heads_in_layer
from circuits.analysis.tasks import repeated_tokens
from circuits.analysis.weights.composition import COMPOSITION_KINDS as KINDS
from circuits.analysis.weights.eigen import copying_scores, diagonal_accuracy, induction_qk_positivity
from circuits.experiments import base
from circuits.experiments.base import Figure, Table
from circuits.experiments.plots import bar_charts, bars, box_bands, head_heatmaps, heatmap_row, labelled_points, lines, pattern_heatmaps, wrap_title
from circuits.experiments.two_layer_claims import ablation_numbers, best_single_ov, claims, label, min_or_nan  # noqa: F401  (claims: re-exported)
from circuits.experiments.util import eval_tokens, fmt, training_data_note
from circuits.training.zoo import Zoo

NAME = "two_layer"
TITLE = "Two-layer attention-only model: induction heads"
Head = tuple[int, int]


@dataclass(frozen=True, kw_only=True)
class Config:
    """Settings of the two-layer analysis (defaults: the full report)."""

    preset: str = "attn-only-2l"  #: the zoo model analysed
    eval_windows: int = 32  #: validation windows of corpus text (previous-token scores)
    seq_len: int = 50  #: length T of the random sequence R in [BOS] + R + R (capped at (n_ctx - 1) // 2)
    n_sequences: int = 10  #: number of repeated random sequences (ARENA: 10)
    pattern_seq_len: int = 15  #: T of the single sequence whose attention patterns are plotted
    induction_threshold: float = 0.3  #: a head in layer >= 1 with at least this induction score counts as an induction head
    previous_token_threshold: float = 0.4  #: ARENA's detector threshold for a previous-token head
    baseline_samples: int = 1000  #: random head pairs for the composition baseline
    term_windows: int = 2  #: validation windows for term importance (its path expansion is d_vocab-wide per term)
    term_len: int = 64  #: tokens per term-importance window
    seed: int = 0  #: seed of the random tokens and the baseline

    @classmethod
    def quick(cls) -> "Config":
        return cls(eval_windows=4, seq_len=20, n_sequences=4, pattern_seq_len=8, baseline_samples=100, term_windows=1, term_len=24)


# ---- the typed result --------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class Composition(base.Result):
    """One kind of composition (Q, K or V) between the layers: every pair's raw score and the random baseline."""

    scores: np.ndarray  #: [l1, h1, l2, h2], writer L{l1}H{h1} into reader L{l2}H{h2}
    baseline_mean: float  #: mean score of random head pairs of this shape
    baseline_std: float
    pair: float  #: previous-token head -> top induction head
    z: float  #: (pair - baseline_mean) / baseline_std


@dataclass(frozen=True, kw_only=True)
class OVAccuracy(base.Result):
    """Diagonal accuracy of the full OV circuits ``W_E W_OV W_U``: every head, and summed over sets of heads."""

    top1: np.ndarray  #: [layer, head]
    top5: np.ndarray  #: [layer, head]
    summed_top1: float  #: summed OV of the induction heads
    summed_top5: float
    top2_heads: tuple[Head, ...]  #: the two heads of the induction head's layer with the highest induction scores
    top2_top1: float  #: summed OV of those two heads
    top2_top5: float


@dataclass(frozen=True, kw_only=True)
class PathTerm(base.Result):
    """One path term's effect on the loss, in nats (positive: the term helps)."""

    label: str
    order: int
    term_added: float  #: loss reduction when added alone to all lower-order terms
    term_removed: float  #: loss increase when removed from the full sum


@dataclass(frozen=True, kw_only=True)
class Terms(base.Result):
    """Term importance by path order (patterns frozen), in nats."""

    loss_by_order: np.ndarray  #: [order]
    marginal_by_order: np.ndarray  #: [order], loss reduction from adding all terms of that order
    first_order_by_layer: np.ndarray  #: [layer], sum of the single-head terms' effects
    full_loss: float
    uniform_loss: float
    top_terms: tuple[PathTerm, ...]  #: the 12 largest single terms by term_added
    n_tokens: int


@dataclass(frozen=True, kw_only=True)
class Result(base.Result):
    """Everything the two-layer section shows: scores, chosen heads, composition, eigen-corner, ablations, OV accuracy, terms."""

    preset: str
    n_layers: int
    n_heads: int
    d_model: int
    d_vocab: int
    seq_len: int  #: T of [BOS] + R + R, after capping to the context
    n_sequences: int
    induction_threshold: float
    previous_token_threshold: float
    quick: bool
    data_note: str | None  #: what the model was trained on (from the zoo), for the notes
    previous_token: np.ndarray  #: [layer, head] on corpus text
    induction: np.ndarray  #: [layer, head] on [BOS] + R + R
    previous_token_head: Head
    induction_head: Head  #: the top induction head (layers >= 1)
    induction_heads: tuple[Head, ...]  #: heads with induction score >= the threshold (at least the top one)
    composition: dict[str, Composition]  #: keyed "Q", "K", "V"
    max_K_into_induction: float
    max_Q_into_induction: float
    pattern_tokens: tuple[str, ...]
    induction_pattern: np.ndarray  #: [query_pos, key_pos] of the induction head on one repeated sequence
    previous_token_pattern: np.ndarray  #: [query_pos, key_pos] of the previous-token head
    ov_positivity: np.ndarray  #: [layer, head] OV copying (eigenvalue positivity of W_E W_OV W_U)
    qk_corner: np.ndarray  #: [layer, head] QK positivity of the K-composition term with the previous-token head
    ablation: dict[str, np.ndarray]  #: ablated head label -> induction scores [layer, head]
    ov_accuracy: OVAccuracy
    terms: Terms
    loss_per_repeat: np.ndarray  #: [repeat] mean loss on repeated random tokens
    loss_per_position: np.ndarray  #: [pos - 1]


# ---- compute -----------------------------------------------------------------------------------
@torch.no_grad()
def compute(cfg: Config, zoo: Zoo) -> Result:
    model, tok = zoo.model(cfg.preset)
    mcfg = model.config
    if mcfg.n_layers < 2:
        raise ValueError(f"two_layer needs a model with at least 2 layers, {cfg.preset} has {mcfg.n_layers}")
    seq_len = min(cfg.seq_len, (mcfg.n_ctx - 1) // 2)
    text = eval_tokens(zoo, cfg.preset, tok, cfg.eval_windows)
    rep = dict(seq_len=seq_len, batch=cfg.n_sequences, seed=cfg.seed, bos=tok.bos_id)
    previous = previous_token_scores(model, text).numpy()
    induction = induction_scores(model, **rep).numpy()
    mech = mechanism(model, previous, induction, threshold=cfg.induction_threshold, baseline_samples=cfg.baseline_samples, seed=cfg.seed)
    prev_head, ind_head = tuple(mech["previous_token_head"]), tuple(mech["induction_head"])
    ind_heads = tuple(tuple(x) for x in mech["induction_heads"])
    return Result(
        preset=cfg.preset, n_layers=mcfg.n_layers, n_heads=mcfg.n_heads, d_model=mcfg.d_model, d_vocab=mcfg.d_vocab,
        seq_len=seq_len, n_sequences=cfg.n_sequences, induction_threshold=cfg.induction_threshold,
        previous_token_threshold=cfg.previous_token_threshold, quick=bool(zoo.quick), data_note=training_data_note(zoo, cfg.preset),
        previous_token=previous.astype(float), induction=induction.astype(float),
        previous_token_head=prev_head, induction_head=ind_head, induction_heads=ind_heads,
        composition=_composition(mech), max_K_into_induction=mech["max_K_into_induction"], max_Q_into_induction=mech["max_Q_into_induction"],
        **_patterns(model, tok, min(cfg.pattern_seq_len, seq_len), cfg.seed, prev_head, ind_head),
        ov_positivity=copying_scores(model).double().numpy(), qk_corner=induction_qk_positivity(model).double().numpy()[prev_head],
        ablation={k: v.astype(float) for k, v in ablated_induction_scores(model, ind_head[0], **rep).items()},
        ov_accuracy=_ov_accuracy(model, induction, ind_head[0], ind_heads),
        terms=_terms(model, text[: cfg.term_windows, : cfg.term_len]),
        **_repeated_loss(model, rep),
    )


def _composition(mech: dict) -> dict[str, Composition]:
    """:func:`mechanism`'s scores, baselines, pair scores and z-scores, one :class:`Composition` per kind."""
    return {
        k: Composition(scores=mech["composition"][k].double().numpy(), baseline_mean=mech["baseline"][k][0], baseline_std=mech["baseline"][k][1],
                       pair=mech["pair"][k], z=mech["z"][k])
        for k in KINDS
    }


def _patterns(model, tok, pat_len: int, seed: int, prev_head: Head, ind_head: Head) -> dict:
    """Attention patterns of the two heads on one repeated sequence ``[BOS] + R + R`` (``len(R) = pat_len``)."""
    (pl, ph), (il, ih) = prev_head, ind_head
    one = repeated_tokens(model.config.d_vocab, pat_len, 2, 1, seed, bos=tok.bos_id)
    _, cache = model.run_with_cache(one, names_filter=[f"blocks.{l}.attn.hook_pattern" for l in {pl, il}])
    return {
        "pattern_tokens": tuple(tok.str_tokens(one[0])),
        "induction_pattern": cache[f"blocks.{il}.attn.hook_pattern"][0, ih].double().numpy(),
        "previous_token_pattern": cache[f"blocks.{pl}.attn.hook_pattern"][0, ph].double().numpy(),
    }


def _ov_accuracy(model, induction: np.ndarray, layer: int, ind_heads: tuple[Head, ...]) -> OVAccuracy:
    """Single-head OV accuracy of every head; summed over the induction heads and over the top two heads of ``layer``."""
    top2 = top_heads_in_layer(induction, layer, 2)
    return OVAccuracy(
        top1=diagonal_accuracy(model, 1).double().numpy(), top5=diagonal_accuracy(model, 5).double().numpy(),
        summed_top1=summed_ov_accuracy(model, list(ind_heads), 1), summed_top5=summed_ov_accuracy(model, list(ind_heads), 5),
        top2_heads=tuple(top2), top2_top1=summed_ov_accuracy(model, top2, 1), top2_top5=summed_ov_accuracy(model, top2, 5),
    )


def _terms(model, tokens: torch.Tensor) -> Terms:
    """Term importance by path order on ``tokens`` (patterns frozen), with the 12 largest single terms."""
    ti = term_importance(model, tokens)
    top = sorted(ti.table(), key=lambda row: -row["term_added"])[:12]
    return Terms(
        loss_by_order=ti.loss_by_order.double().numpy(), marginal_by_order=ti.marginal_by_order.double().numpy(),
        first_order_by_layer=np.array(first_order_by_layer(ti.labels, ti.orders, ti.term_added.tolist(), model.config.n_layers)),
        full_loss=ti.full_loss, uniform_loss=ti.uniform_loss, top_terms=tuple(PathTerm(**row) for row in top), n_tokens=int(tokens.numel()),
    )


def _repeated_loss(model, rep: dict) -> dict:
    rtl = repeated_tokens_loss(model, **rep)
    return {"loss_per_repeat": rtl.per_repeat.double().numpy(), "loss_per_position": rtl.per_position.double().numpy()}


# ---- figures -----------------------------------------------------------------------------------
def figures(result: Result) -> list[Figure]:
    r = result
    return [_head_scores_figure(r), _patterns_figure(r), _composition_figure(r), _composition_baseline_figure(r), _eigen_corner_figure(r),
            _ablation_figure(r), _ov_accuracy_figure(r), _term_importance_figure(r), _repeated_loss_figure(r)]


def _head_scores_figure(r: Result) -> Figure:
    (pl, ph), (il, ih) = r.previous_token_head, r.induction_head
    return Figure(
        key="two_layer_head_scores", title="Previous-token and induction scores of every head",
        caption=(f"Previous-token score (mean attention to the previous token on corpus text) and induction score (mean attention "
                 f"to the token after the previous copy on [BOS] + R + R, T = {r.seq_len}). Top previous-token head "
                 f"{label(r.previous_token_head)} = {fmt(r.previous_token[pl, ph])}; "
                 f"top induction head {label(r.induction_head)} = {fmt(r.induction[il, ih])}."),
        fig=head_heatmaps({"previous-token score": r.previous_token, "induction score": r.induction}, title="Head scores", zmax=1.0),
    )


def _patterns_figure(r: Result) -> Figure:
    pats = {f"induction head {label(r.induction_head)}": r.induction_pattern,
            f"previous-token head {label(r.previous_token_head)}": r.previous_token_pattern}
    return Figure(
        key="two_layer_patterns", title="Attention patterns on repeated random tokens",
        caption=("The induction head attends from each token of the second repeat to the token after its earlier copy (the "
                 "off-diagonal stripe); the previous-token head attends to the token just before (the sub-diagonal)."),
        fig=pattern_heatmaps(pats, list(r.pattern_tokens), title="Attention patterns on [BOS] + R + R"),
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
    il, prev = r.induction_head[0], label(r.previous_token_head)
    fig = bars(["clean"] + list(abl), {"induction score": [clean] + list(abl.values())}, x_title="zero-ablated head", y_title="induction score",
               title=wrap_title(f"Induction score of {label(r.induction_head)} with each layer-{il - 1 if il else 0} head zero-ablated"), height=380)
    fig.update_traces(marker_color=["grey"] + ["crimson" if k == prev else "steelblue" for k in abl])
    return Figure(
        key="two_layer_ablation", title="Ablating the previous-token head removes induction",
        caption=(f"Clean induction score {fmt(clean)}; with {prev} ablated {fmt(ablated_prev)}; with any other "
                 f"earlier head ablated at least {fmt(min_or_nan(other_abl))}."),
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
                 f"{fmt(t.full_loss)} nats on {t.n_tokens} tokens): "
                 + ", ".join(f"{n} {fmt(v)}" for n, v in zip(order_names, t.marginal_by_order)) + "."),
        fig=fig,
    )


def _repeated_loss_figure(r: Result) -> Figure:
    first, second = r.loss_per_repeat
    per_pos = r.loss_per_position
    fig = lines(list(range(1, len(per_pos) + 1)), {"loss": per_pos}, title=f"Loss per position on [BOS] + R + R (T = {r.seq_len})",
                x_title="index of the predicted token", y_title="loss (nats)", height=380)
    fig.add_vline(x=r.seq_len + 0.5, line_dash="dash", annotation_text="second repeat starts")
    return Figure(key="two_layer_repeated_loss", title="Loss on repeated random tokens",
                  caption=f"Mean loss on the first repeat {fmt(first)} nats, on the second {fmt(second)} nats.", fig=fig)


# ---- tables ------------------------------------------------------------------------------------
def tables(result: Result) -> list[Table]:
    return [_top_terms_table(result), _heads_table(result)]


def _top_terms_table(r: Result) -> Table:
    return Table(key="two_layer_top_terms", title="Largest single path terms (loss reduction when added to all lower-order terms)",
                 columns=["path", "order", "added (nats)", "removed (nats)"],
                 rows=[[t.label, t.order, fmt(t.term_added), fmt(t.term_removed)] for t in r.terms.top_terms])


def _heads_table(r: Result) -> Table:
    pl = r.previous_token_head[0]
    prev, ind, ov, qk, acc1 = r.previous_token, r.induction, r.ov_positivity, r.qk_corner, r.ov_accuracy.top1
    return Table(
        key="two_layer_heads", title="Scores of every head",
        columns=["head", "previous-token", "induction", "OV copying", f"QK corner (with {label(r.previous_token_head)})", "OV top-1 accuracy"],
        rows=[[f"L{l}H{h}", fmt(prev[l, h]), fmt(ind[l, h]), fmt(ov[l, h]), fmt(qk[l, h]) if l > pl else "", fmt(acc1[l, h])]
              for l in range(r.n_layers) for h in range(r.n_heads)],
    )


# ---- text --------------------------------------------------------------------------------------
def intro(result: Result) -> str:
    r = result
    first, second = r.loss_per_repeat
    return (
        f"The {r.preset} preset (d_model {r.d_model}, {r.n_heads} heads per layer, vocabulary {r.d_vocab}). Previous-token scores "
        f"are measured on validation text, induction scores on {r.n_sequences} random sequences repeated twice "
        f"(T = {r.seq_len}), weight circuits on the trained weights. Measured: previous-token head {label(r.previous_token_head)} "
        f"({fmt(r.previous_token[r.previous_token_head])}), induction head {label(r.induction_head)} ({fmt(r.induction[r.induction_head])}), "
        f"K-composition between them {fmt(r.composition['K'].pair)} against a baseline of {fmt(r.composition['K'].baseline_mean)}, "
        f"loss on repeated tokens {fmt(first)} -> {fmt(second)} nats."
    )


def notes(result: Result) -> list[str]:
    r = result
    out = [f"Induction heads: layer >= 1 heads with induction score >= {r.induction_threshold} "
           f"({', '.join(label(x) for x in r.induction_heads)}; the top head when none reaches it)."]
    if r.quick:
        out.append("Quick mode: tiny models trained for a few dozen steps; the claims are not expected to hold.")
    if r.data_note:
        out.append(r.data_note)
    return out
