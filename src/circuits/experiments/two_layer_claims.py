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


# ---- claim verdicts: pure functions of plain numbers ---------------------------------------------
def previous_token_head_holds(score: float, threshold: float) -> bool:
    """The top earlier-layer head's previous-token score exceeds the detector threshold."""
    return bool(score > threshold)


def induction_head_holds(score: float, median_others: float, first_loss: float, second_loss: float, threshold: float) -> bool:
    """The top induction score reaches the threshold and 3x the other heads' median, and the second repeat's loss is at most half the first's."""
    return bool(score >= threshold and score >= 3 * median_others and second_loss <= 0.5 * first_loss)


def k_composition_holds(k_z: float, k_pair: float, q_pair: float, v_pair: float) -> bool:
    """The pair's K-composition is more than 3 baseline std above the mean, and above its Q and V scores."""
    return bool(k_z > 3 and k_pair > q_pair and k_pair > v_pair)


def eigen_corner_holds(ov: float, qk: float, qk_others: Sequence[float]) -> bool:
    """The induction head's OV and QK positivity both exceed 0.5, and its QK positivity beats every other later-layer head's."""
    return bool(min(ov, qk) > 0.5 and (not qk_others or qk > max(qk_others)))


def ablation_holds(clean: float, ablated_previous: float, ablated_others: Sequence[float]) -> bool:
    """Ablating the previous-token head leaves under a quarter of the clean induction score; any other earlier head over half."""
    return bool(ablated_previous < 0.25 * clean and (not ablated_others or min(ablated_others) > 0.5 * clean))


def ov_accuracy_holds(best_single: float, summed: float, summed_top2: float, d_vocab: int) -> bool:
    """The best induction head's top-1 OV accuracy is at least 10x chance, and a summed OV does at least as well."""
    return bool(best_single >= 10 / d_vocab and max(summed, summed_top2) >= best_single)


def term_importance_holds(order1: float, order2: float, layer0: float, layer1: float) -> bool:
    """Order-2 terms reduce the loss less than half as much as order-1 terms, and layer-1 heads' terms more than layer-0's."""
    return bool(order2 < 0.5 * order1 and layer1 > layer0)


# ---- numbers the figures and claims share --------------------------------------------------------
def label(lh: Sequence[int]) -> str:
    """``(layer, head)`` -> ``"L{layer}H{head}"``."""
    return head_label(lh[0], lh[1])


def median_others(r: Result) -> float:
    """Median induction score of every head but the top induction head (layer 0 included)."""
    others = np.array([r.induction[l, h] for l in range(r.n_layers) for h in range(r.n_heads) if (l, h) != r.induction_head])
    return float(np.median(others)) if len(others) else float("nan")


def ablation_numbers(r: Result) -> tuple[dict[str, float], float, float, list[float]]:
    """The top induction head's score with each earlier head ablated, the clean score, with the previous-token head ablated, with the others."""
    il, ih = r.induction_head
    abl = {k: v[il, ih] for k, v in r.ablation.items()}
    prev = label(r.previous_token_head)
    return abl, r.induction[il, ih], abl.get(prev, float("nan")), [v for k, v in abl.items() if k != prev]


def qk_others(r: Result) -> list[float]:
    """QK corner positivity of the later-layer heads that are not induction heads (finite ones)."""
    qk = r.qk_corner
    return [qk[l, h] for l in range(1, r.n_layers) for h in range(r.n_heads) if (l, h) not in r.induction_heads and np.isfinite(qk[l, h])]


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


def _previous_token_claim(r: Result) -> Claim:
    score = r.previous_token[r.previous_token_head]
    return Claim(
        key="fw_2l_previous_token_head", statement="A layer-0 head of the 2L model attends to the previous token (mean A[i, i-1] > 0.4 on text).",
        source=SOURCE_FW, paper_value="a previous-token head, e.g. ARENA L0H7 (detector threshold 0.4)",
        measured=f"{label(r.previous_token_head)}: {fmt(score)}", holds=previous_token_head_holds(score, r.previous_token_threshold),
    )


def _induction_claim(r: Result) -> Claim:
    score, median, (first, second) = r.induction[r.induction_head], median_others(r), r.loss_per_repeat
    return Claim(
        key="fw_2l_induction_head",
        statement="A layer-1 head has an induction score far above the other heads, and the second repeat's loss is far below the first's.",
        source=SOURCE_FW, paper_value="ARENA: 0.64 and 0.84 vs < 0.05; loss 14.2 -> 3.7 nats (vocab 50k)",
        measured=(f"{label(r.induction_head)} = {fmt(score)} vs median of the others {fmt(median)}; "
                  f"loss {fmt(first)} -> {fmt(second)} nats (vocab {r.d_vocab})"),
        holds=induction_head_holds(score, median, first, second, r.induction_threshold),
    )


def _k_composition_claim(r: Result) -> Claim:
    q, k, v = (r.composition[x] for x in COMPOSITION_KINDS)
    return Claim(
        key="fw_2l_k_composition",
        statement="K-composition of previous-token head -> induction head is several baseline std above the random baseline; its Q and V scores are not.",
        source="Framework paper, 'Analyzing a two-layer model'; ARENA", paper_value="ARENA: K 0.112 vs baseline ≈ 0.036; Q max 0.061; V 0.009-0.021",
        measured=(f"K {fmt(k.pair)} (z = {fmt(k.z)}), Q {fmt(q.pair)} (z = {fmt(q.z)}), "
                  f"V {fmt(v.pair)} (z = {fmt(v.z)}); baseline K {fmt(k.baseline_mean)} ± {fmt(k.baseline_std)}"),
        holds=k_composition_holds(k.z, k.pair, q.pair, v.pair),
    )


def _eigen_corner_claim(r: Result) -> Claim:
    (il, ih), others = r.induction_head, qk_others(r)
    ov, qk = r.ov_positivity[il, ih], r.qk_corner[il, ih]
    return Claim(
        key="fw_2l_eigen_corner",
        statement="Induction heads have OV copying positivity and QK positivity of the previous-token K-composition term close to +1, separated from other heads.",
        source="Framework paper, 'Checking the mechanistic theory'", paper_value="near (+1, +1); SLAVA: OV 0.66-0.86, QK 0.90-0.94",
        measured=f"{label(r.induction_head)}: OV {fmt(ov)}, QK {fmt(qk)}; highest QK of the other layer-{il} heads {fmt(max(others) if others else float('nan'))}",
        holds=eigen_corner_holds(ov, qk, others),
    )


def _ablation_claim(r: Result) -> Claim:
    _, clean, ablated_prev, other_abl = ablation_numbers(r)
    return Claim(
        key="fw_2l_ablation",
        statement="Ablating the previous-token head drops the induction head's induction score to about 0; ablating other layer-0 heads changes it little.",
        source="ARENA 1.2", paper_value="0.68 -> ≈ 0 for L0H7; others barely matter",
        measured=(f"{fmt(clean)} -> {fmt(ablated_prev)} with {label(r.previous_token_head)} ablated; lowest with another head ablated "
                  f"{fmt(min_or_nan(other_abl))}"),
        holds=ablation_holds(clean, ablated_prev, other_abl),
    )


def _ov_accuracy_claim(r: Result) -> Claim:
    single, acc, n = best_single_ov(r), r.ov_accuracy, len(r.induction_heads)
    return Claim(
        key="fw_2l_ov_accuracy",
        statement="The induction heads' full OV circuits copy: top-1 diagonal accuracy well above chance, higher for their summed OV.",
        source="ARENA 1.2", paper_value="31% single head vs 96% two heads summed (chance 1/50k)",
        measured=(f"best single {fmt(single)}, summed ({n} head{'s' if n > 1 else ''}) "
                  f"{fmt(acc.summed_top1)}, top-2 heads summed {fmt(acc.top2_top1)}; chance {fmt(1 / r.d_vocab)}"),
        holds=ov_accuracy_holds(single, acc.summed_top1, acc.top2_top1, r.d_vocab),
    )


def _term_importance_claim(r: Result) -> Claim:
    marg, fo = r.terms.marginal_by_order, r.terms.first_order_by_layer
    order2 = marg[2] if len(marg) > 2 else float("nan")
    return Claim(
        key="fw_2l_term_importance",
        statement="Virtual-head (2nd-order) terms reduce the loss much less than single-head terms, and layer-1 heads' direct terms matter more than layer-0's.",
        source="Framework paper, 'Term importance analysis' (video numbers, approximate)", paper_value="≈ 0.3 vs 5.2 nats; 4 vs 0.05 nats",
        measured=f"order 2 {fmt(order2)} vs order 1 {fmt(marg[1])} nats; layer-1 heads {fmt(fo[1])} vs layer-0 heads {fmt(fo[0])} nats",
        holds=term_importance_holds(marg[1], order2, fo[0], fo[1]),
    )
