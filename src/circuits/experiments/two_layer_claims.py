"""The claims of the two-layer section (claims 5-11 of the report), their verdicts, and the numbers they share with the figures.

Each verdict is a small pure function of plain numbers (``*_holds``), unit-tested on hand-made
values; each ``_*_claim`` function formats one claim's measurement from a
:class:`circuits.experiments.two_layer.Result`. Kept apart from :mod:`circuits.experiments.two_layer`
(which re-exports :func:`claims`) so that each module stays short.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from circuits.analysis.common import head_label
from circuits.analysis.weights.composition import COMPOSITION_KINDS
from circuits.experiments.base import Claim
from circuits.experiments.util import fmt

if TYPE_CHECKING:
    from circuits.experiments.two_layer import Result

SOURCE_FW = "Framework paper, two-layer section; ARENA 1.2"


# ---- thresholds, each from the papers' numbers or wording (never from this run) ------------------
#: "several baseline std above": more than 3 std; "at or below the baseline": not more than 3 std above its mean
COMPOSITION_Z = 3.0
#: "close to +1" per axis = at least the lowest value SLAVA's reproduction reports for an induction head (OV 0.66-0.86, QK 0.90-0.94)
EIGEN_OV_MIN, EIGEN_QK_MIN = 0.66, 0.90
#: "changes it little": ablating any other earlier head keeps more than this fraction of the clean induction score
OTHERS_KEEP = 0.5
#: "much less" / "much more": a factor of at least 10 (an order of magnitude; the paper's ratios are 5.2 / 0.3 = 17x and 4 / 0.05 = 80x)
MUCH_RATIO = 10.0
#: "well above chance": at least this many times chance (1 / d_vocab)
OV_CHANCE_FACTOR = 10.0


# ---- claim verdicts: pure functions of plain numbers ---------------------------------------------
def previous_token_head_holds(score: float, threshold: float) -> bool:
    """The top earlier-layer head's previous-token score exceeds the detector threshold."""
    return bool(score > threshold)


def induction_head_holds(score: float, median_others: float, first_loss: float, second_loss: float, threshold: float) -> bool:
    """The top induction score reaches the threshold and 3x the other heads' median, and the second repeat's loss is at most half the first's."""
    return bool(score >= threshold and score >= 3 * median_others and second_loss <= 0.5 * first_loss)


def k_composition_holds(k_z: float, q_z: float, v_z: float, z: float = COMPOSITION_Z) -> bool:
    """Claim 7: the pair's K-composition is more than ``z`` baseline std above the baseline mean; its Q and V are not."""
    return bool(k_z > z and q_z <= z and v_z <= z)


def eigen_corner_holds(
    ind_ov: Sequence[float], ind_qk: Sequence[float], other_ov: Sequence[float], other_qk: Sequence[float],
    ov_min: float = EIGEN_OV_MIN, qk_min: float = EIGEN_QK_MIN,
) -> bool:
    """Claim 8: every induction head's OV positivity is at least ``ov_min`` and its QK positivity at least ``qk_min``,
    and on each axis the induction heads' lowest value is above every other later-layer head's."""
    if not ind_ov or not ind_qk:
        return False
    close = min(ind_ov) >= ov_min and min(ind_qk) >= qk_min
    separated = (not other_ov or min(ind_ov) > max(other_ov)) and (not other_qk or min(ind_qk) > max(other_qk))
    return bool(close and separated)


def ablation_holds(clean: float, ablated_previous: float, ablated_others: Sequence[float], near_zero: float, keep: float = OTHERS_KEEP) -> bool:
    """Claims 9 and 22: ablating the previous-token head leaves at most ``near_zero`` (the score of a uniformly attending head on
    the same probe, :func:`circuits.analysis.probes.near_zero_threshold`); every other earlier head's ablation keeps more than
    ``keep`` of the clean score. A clean score itself at or below ``near_zero`` has nothing to remove: the claim fails."""
    removed = clean > near_zero and ablated_previous <= near_zero
    return bool(removed and (not ablated_others or min(ablated_others) > keep * clean))


def ov_accuracy_holds(best_single: float, summed: float, n_induction_heads: int, d_vocab: int) -> bool | None:
    """Claim 10: the best induction head's top-1 OV accuracy is at least 10x chance, and the induction heads' summed OV is higher
    still. ``None`` (untested) with fewer than two induction heads: the sum would be the single head itself."""
    if n_induction_heads < 2:
        return None
    return bool(best_single >= OV_CHANCE_FACTOR / d_vocab and summed > best_single)


def term_importance_holds(order1: float, order2: float, layer0: float, layer1: float, ratio: float = MUCH_RATIO) -> bool:
    """Claim 11 on one token set: single-head terms reduce the loss at least ``ratio`` times as much as virtual-head terms,
    and layer-1 heads' single-head terms at least ``ratio`` times as much as layer-0's (both positive)."""
    return bool(order1 > 0 and order1 >= ratio * order2 and layer1 > 0 and layer1 >= ratio * layer0)


def stable_verdict(pooled: bool, halves: Sequence[bool]) -> bool | None:
    """The pooled verdict when each disjoint half of the tokens gives the same one; ``None`` (too noisy to decide) otherwise."""
    return bool(pooled) if all(bool(h) == bool(pooled) for h in halves) else None


# ---- numbers the figures and claims share --------------------------------------------------------
def label(lh: Sequence[int]) -> str:
    """``(layer, head)`` -> ``"L{layer}H{head}"``."""
    return head_label(lh[0], lh[1])


def median_others(r: Result) -> float:
    """Median induction score of every head but the top induction head (layer 0 included)."""
    others = np.array([r.induction[l, h] for l in range(r.n_layers) for h in range(r.n_heads) if (l, h) != r.induction_head])
    return float(np.median(others)) if len(others) else float("nan")


def ablation_numbers(r: Result, bos: bool = False) -> tuple[dict[str, float], float, float, list[float]]:
    """The top induction head's score with each earlier head ablated, the clean score, with the previous-token head ablated, with
    the others; on the natural-prefix probe (``bos=True``: on [BOS] + R + R)."""
    il, ih = r.induction_head
    ablation, clean = (r.ablation_bos, r.induction_bos) if bos else (r.ablation, r.induction)
    abl = {k: v[il, ih] for k, v in ablation.items()}
    prev = label(r.previous_token_head)
    return abl, clean[il, ih], abl.get(prev, float("nan")), [v for k, v in abl.items() if k != prev]


def corner_values(r: Result, values: np.ndarray, induction: bool) -> list[float]:
    """``values`` ([layer, head]) of the later-layer heads that are (``induction=True``) or are not induction heads, finite ones."""
    return [float(values[l, h]) for l in range(1, r.n_layers) for h in range(r.n_heads)
            if ((l, h) in r.induction_heads) == induction and np.isfinite(values[l, h])]


def best_single_ov(r: Result) -> float:
    """The highest single-head top-1 OV accuracy among the induction heads."""
    return max(r.ov_accuracy.top1[l, h] for l, h in r.induction_heads)


def min_or_nan(values: Sequence[float]) -> float:
    return min(values) if values else float("nan")




# ---- claims ------------------------------------------------------------------------------------
def claims(result: Result) -> list[Claim]:
    r = result
    return [_previous_token_claim(r), _induction_claim(r), _k_composition_claim(r), _eigen_corner_claim(r), _ablation_claim(r),
            _ov_accuracy_claim(r), _term_importance_claim(r)]


def _claim(r: Result, **fields) -> Claim:
    """A claim of this section: it read the section's model, trained on the data the result names."""
    return Claim(models=(r.preset,), data=r.data_label, **fields)


def _previous_token_claim(r: Result) -> Claim:
    score = r.previous_token[r.previous_token_head]
    return _claim(
        r, key="fw_2l_previous_token_head", statement="A layer-0 head of the 2L model attends to the previous token (mean A[i, i-1] > 0.4 on text).",
        source=SOURCE_FW, paper_value="a previous-token head, e.g. ARENA L0H7 (detector threshold 0.4)",
        measured=(f"{label(r.previous_token_head)}: {fmt(score)} on validation text (TransformerLens detect_head: "
                  f"{fmt(r.detect_previous[r.previous_token_head])}, which also counts position 0)"),
        holds=previous_token_head_holds(score, r.previous_token_threshold), value=float(score),
    )


def _induction_claim(r: Result) -> Claim:
    score, median, (first, second) = r.induction[r.induction_head], median_others(r), r.loss_per_repeat
    first_bos, second_bos = r.loss_per_repeat_bos
    return _claim(
        r, key="fw_2l_induction_head",
        statement=(f"A layer-1 head has an induction score far above the other heads (>= {r.induction_threshold} and >= 3x their median), "
                   "and the second repeat's loss is far below the first's (at most half), on repeated random tokens after natural text."),
        source=SOURCE_FW, paper_value="ARENA: 0.64 and 0.84 vs < 0.05; loss 14.2 -> 3.7 nats (vocab 50k)",
        measured=(f"{r.probe_layout}, {r.probe_rule}: {label(r.induction_head)} = {fmt(score)} vs median of the others {fmt(median)}; "
                  f"loss {fmt(first)} -> {fmt(second)} nats (vocab {r.d_vocab}). Right after BOS ([BOS] + R + R): "
                  f"{fmt(r.induction_bos[r.induction_head])}, loss {fmt(first_bos)} -> {fmt(second_bos)} nats"),
        holds=induction_head_holds(score, median, first, second, r.induction_threshold), value=float(score),
    )


def _k_composition_claim(r: Result) -> Claim:
    q, k, v = (r.composition[x] for x in COMPOSITION_KINDS)
    return _claim(
        r, key="fw_2l_k_composition",
        statement=(f"K-composition of previous-token head -> induction head is several baseline std above the random baseline "
                   f"(z > {COMPOSITION_Z:g}); its Q and V scores are not (z <= {COMPOSITION_Z:g})."),
        source="Framework paper, 'Analyzing a two-layer model'; ARENA", paper_value="ARENA: K 0.112 vs baseline ≈ 0.036; Q max 0.061; V 0.009-0.021",
        measured=(f"K {fmt(k.pair)} (z = {fmt(k.z)}), Q {fmt(q.pair)} (z = {fmt(q.z)}), "
                  f"V {fmt(v.pair)} (z = {fmt(v.z)}); baseline K {fmt(k.baseline_mean)} ± {fmt(k.baseline_std)}"),
        holds=k_composition_holds(k.z, q.z, v.z), value=float(k.z),
    )


def _eigen_corner_claim(r: Result) -> Claim:
    il = r.induction_head[0]
    ind_ov, ind_qk = corner_values(r, r.ov_positivity, True), corner_values(r, r.qk_corner, True)
    other_ov, other_qk = corner_values(r, r.ov_positivity, False), corner_values(r, r.qk_corner, False)
    heads = ", ".join(label(x) for x in r.induction_heads)
    return _claim(
        r, key="fw_2l_eigen_corner",
        statement=(f"Induction heads have OV copying positivity and QK positivity of the previous-token K-composition term close to +1 "
                   f"(OV >= {EIGEN_OV_MIN}, QK >= {EIGEN_QK_MIN}: the lowest values SLAVA reports for induction heads), each above "
                   f"every non-induction head of the same layers."),
        source="Framework paper, 'Checking the mechanistic theory'", paper_value="near (+1, +1); SLAVA: OV 0.66-0.86, QK 0.90-0.94",
        measured=(f"induction heads ({heads}): lowest OV {fmt(min_or_nan(ind_ov))}, lowest QK {fmt(min_or_nan(ind_qk))}; other layer-{il} "
                  f"heads: highest OV {fmt(max(other_ov) if other_ov else float('nan'))}, highest QK {fmt(max(other_qk) if other_qk else float('nan'))}"),
        holds=eigen_corner_holds(ind_ov, ind_qk, other_ov, other_qk), value=min(min_or_nan(ind_ov), min_or_nan(ind_qk)),
    )


def _ablation_claim(r: Result) -> Claim:
    _, clean, ablated_prev, other_abl = ablation_numbers(r)
    _, clean_bos, ablated_prev_bos, _ = ablation_numbers(r, bos=True)
    return _claim(
        r, key="fw_2l_ablation",
        statement=("Ablating the previous-token head drops the induction head's induction score to about 0 (at most the score of a "
                   f"head attending uniformly over the prefix); ablating other layer-0 heads changes it little (each keeps > {OTHERS_KEEP:.0%})."),
        source="ARENA 1.2", paper_value="0.68 -> ≈ 0 for L0H7; others barely matter",
        measured=(f"{r.probe_layout}, {r.probe_rule}: {fmt(clean)} -> {fmt(ablated_prev)} with {label(r.previous_token_head)} ablated (uniform attention "
                  f"scores {fmt(r.uniform_level)}); lowest with another head ablated {fmt(min_or_nan(other_abl))}. [BOS] + R + R: "
                  f"{fmt(clean_bos)} -> {fmt(ablated_prev_bos)} (uniform {fmt(r.uniform_level_bos)})"),
        holds=ablation_holds(clean, ablated_prev, other_abl, r.uniform_level), value=float(ablated_prev),
    )


def _ov_accuracy_claim(r: Result) -> Claim:
    single, acc, n = best_single_ov(r), r.ov_accuracy, len(r.induction_heads)
    holds = ov_accuracy_holds(single, acc.summed_top1, n, r.d_vocab)
    untested = " (untested: a single induction head, so its summed OV is itself)" if holds is None else ""
    return _claim(
        r, key="fw_2l_ov_accuracy",
        statement=(f"The induction heads' full OV circuits copy: top-1 diagonal accuracy well above chance (>= {OV_CHANCE_FACTOR:g}x), "
                   "higher for their summed OV."),
        source="ARENA 1.2", paper_value="31% single head vs 96% two heads summed (chance 1/50k)",
        measured=(f"best single {fmt(single)}, summed ({n} head{'s' if n > 1 else ''}) "
                  f"{fmt(acc.summed_top1)}, top-2 heads of the layer summed {fmt(acc.top2_top1)}; chance {fmt(1 / r.d_vocab)}{untested}"),
        holds=holds, value=float(acc.summed_top1 if n > 1 else single),
    )


def _term_numbers(t) -> tuple[float, float, float, float]:
    """(order 1, order 2, layer-0 heads, layer-1 heads) of a :class:`~circuits.experiments.two_layer.Terms`, in nats."""
    marg, fo = t.marginal_by_order, t.first_order_by_layer
    return float(marg[1]), float(marg[2]) if len(marg) > 2 else float("nan"), float(fo[0]), float(fo[1])


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.3g}x" if b > 0 else "n/a"


def _term_importance_claim(r: Result) -> Claim:
    o1, o2, l0, l1 = _term_numbers(r.terms)
    halves = [_term_numbers(t) for t in r.terms_halves]
    holds = stable_verdict(term_importance_holds(o1, o2, l0, l1), [term_importance_holds(*h) for h in halves])
    split = "; ".join(f"half {i + 1} ({t.n_tokens} tokens): order 1/2 {_ratio(h[0], h[1])}, layer 1/0 {_ratio(h[3], h[2])}"
                      for i, (t, h) in enumerate(zip(r.terms_halves, halves)))
    return _claim(
        r, key="fw_2l_term_importance",
        statement=(f"Virtual-head (2nd-order) terms reduce the loss much less than single-head terms, and layer-1 heads' single-head terms "
                   f"much more than layer-0's ('much' = at least {MUCH_RATIO:g}x)."),
        source="Framework paper, 'Term importance analysis' (video numbers, approximate)", paper_value="≈ 0.3 vs 5.2 nats (17x); 4 vs 0.05 nats (80x)",
        measured=(f"on {r.terms.n_tokens} validation tokens: order 2 {fmt(o2)} vs order 1 {fmt(o1)} nats ({_ratio(o1, o2)}); layer-1 heads "
                  f"{fmt(l1)} vs layer-0 heads {fmt(l0)} nats ({_ratio(l1, l0)}). Two disjoint halves: {split}"
                  + ("" if holds is not None else " (the halves disagree: untested)")),
        holds=holds, value=o1 / o2 if o2 > 0 else None,
    )
