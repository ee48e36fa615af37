"""The claims of the one-layer section (claims 2-4 of the report) and their verdicts, pure functions of plain numbers.

Kept apart from :mod:`circuits.experiments.one_layer` (which re-exports everything here) so that each
module stays short. :data:`COPYING_THRESHOLD` is also the MiniLM copying claim's
(:mod:`circuits.experiments.real_model`): the same statistic is judged by the same rule everywhere.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from circuits.experiments.base import Claim

if TYPE_CHECKING:
    from circuits.experiments.one_layer import Result

#: a head "copies" when its OV copying score Σλ/Σ|λ| exceeds this: "clearly > 0", far outside the spread of a random
#: head (|score| about 1.5 / d_head, 0.05 for d_head 32, because the trace of a random d_head x d_head matrix is about
#: sqrt(d_head) times smaller than its summed |eigenvalues|). Used by claim 3 (1L model) and claim 23 (MiniLM).
COPYING_THRESHOLD = 0.3
#: claim 4 is tested only when the two-layer model itself shows induction: a head scoring this much ...
INDUCTION_MIN_SCORE = 0.2
#: ... and a first -> second repeat loss drop (nats) above this
INDUCTION_MIN_DROP = 0.2


# ---- verdicts ---------------------------------------------------------------------------------
def beats_bigram_holds(val_loss_1l: float, val_loss_0l: float) -> bool | None:
    """Claim 2: the one-layer model's validation loss is below the zero-layer model's (``None`` when either is missing)."""
    return bool(val_loss_1l < val_loss_0l) if math.isfinite(val_loss_0l) and math.isfinite(val_loss_1l) else None


def copying_holds(n_copying: int, n_heads: int, init_mean_abs: float, threshold: float) -> bool:
    """Claim 3: most heads copy (``n_copying > n_heads / 2``) and at initialisation the mean |copying score| is below ``threshold``."""
    return bool(n_copying > n_heads / 2 and init_mean_abs < threshold)


def shows_induction(best_score: float, loss_drop: float) -> bool:
    """The reference (two-layer) model does induction: some head's induction score and its repeat loss drop are clear."""
    return bool(best_score >= INDUCTION_MIN_SCORE and loss_drop > INDUCTION_MIN_DROP)


def no_induction_holds(best_1l: float, best_2l: float, drop_1l: float, drop_2l: float, ratio: float) -> bool | None:
    """Claim 4: the 1L's best induction score and loss drop both stay below ``ratio`` times the 2L's (``None``: the 2L shows no induction)."""
    if not shows_induction(best_2l, drop_2l):
        return None
    return bool(best_1l < ratio * best_2l and drop_1l < ratio * drop_2l)


# ---- claims -----------------------------------------------------------------------------------
def claims(result: Result) -> list[Claim]:
    return [beats_bigram_claim(result), copying_claim(result), no_induction_claim(result)]


def _data(result: Result, *indices: int) -> dict:
    """``models`` and ``data`` of a claim that read the presets at ``indices`` (0: 1L, 1: 0L, 2: 2L)."""
    labels = list(dict.fromkeys(result.data_labels[i] for i in indices))
    return {"models": tuple(result.presets[i] for i in indices), "data": "; ".join(labels)}


def beats_bigram_claim(result: Result) -> Claim:
    l0, l1 = result.val_loss_0l, result.val_loss_1l
    return Claim(
        key="one_layer_beats_bigram",
        statement="A one-layer attention-only model's loss is below the zero-layer (bigram) model's on the same data",
        source="Framework paper, one-layer section; papers.md §6 claim 2",
        paper_value="1L loss < 0L loss",
        measured=f"validation loss 1L {l1:.3f} vs 0L {l0:.3f} (same validation windows)",
        holds=beats_bigram_holds(l1, l0), value=float(l0 - l1) if math.isfinite(l0 - l1) else None, **_data(result, 0, 1),
    )


def copying_claim(result: Result) -> Claim:
    c, n_heads = result.copying, len(result.heads)
    init_mean = float(np.abs(c.scores_init).mean())
    return Claim(
        key="one_layer_copying",
        statement=(f"Most heads of a trained one-layer model copy: Σλ/Σ|λ| of W_U W_OV W_E clearly > 0 (> {result.copying_threshold}, "
                   "the copying threshold of every copying claim), against ≈ 0 at random initialisation"),
        source="Framework paper, copying matrix; papers.md §6 claim 3",
        paper_value="10 of 12 heads copy; ≈ 0 at initialisation",
        measured=(f"{result.n_copying} of {n_heads} heads > {result.copying_threshold} (scores {', '.join(f'{s:+.2f}' for s in c.scores)}); "
                  f"initialisation mean |score| {init_mean:.2f}"),
        holds=copying_holds(result.n_copying, n_heads, init_mean, result.copying_threshold), value=float(result.n_copying / n_heads),
        **_data(result, 0),
    )


def no_induction_claim(result: Result) -> Claim:
    ind = result.induction
    (best_1l, best_2l), (drop_1l, drop_2l) = (ind.scores_1l.max(), ind.scores_2l.max()), ind.drops()
    drop_1l_bos, drop_2l_bos = ind.drops(bos=True)
    untested = "" if shows_induction(best_2l, drop_2l) else " (untested: the 2L model itself shows no induction on this run)"
    return Claim(
        key="one_layer_no_induction",
        statement=("A one-layer model has no induction: on random tokens repeated after natural text its second-repeat loss drops only "
                   f"modestly, and no head's induction score is near the two-layer model's (both below {result.induction_ratio:g}x the 2L's)"),
        source="In-context Learning paper, arguments 1–2; Framework paper; papers.md §6 claim 4",
        paper_value="1L: little drop, no induction head; 2L: large drop, induction heads",
        measured=(f"{ind.layout}, {ind.probe_rule}: best induction score 1L {best_1l:.2f} vs 2L {best_2l:.2f}; loss drop first → second "
                  f"repeat 1L {drop_1l:.2f} vs 2L {drop_2l:.2f} nats{untested}. Right after BOS: best score 1L {ind.scores_1l_bos.max():.2f} "
                  f"vs 2L {ind.scores_2l_bos.max():.2f}; drop 1L {drop_1l_bos:.2f} vs 2L {drop_2l_bos:.2f} nats"),
        holds=no_induction_holds(best_1l, best_2l, drop_1l, drop_2l, result.induction_ratio), value=float(best_1l), **_data(result, 0, 2),
    )
