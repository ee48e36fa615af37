"""The claims of the superposition section, their verdicts, and the numbers they share with the table and figures.

Each verdict is a small pure function of plain numbers (``*_holds``), unit-tested on hand-made
values. Thresholds (fields of :class:`circuits.experiments.superposition.Config`, copied into the
result) come from the paper's wording (the pentagon tolerance and the phase diagram's sparse cut
were set after a first trial run, which passes them with a wide margin; the others before any run):

- represented: ``||W_i|| >= 0.5`` (the paper's figures show norms near 1 or near 0);
- orthogonal: ``|cos| <= 0.1``; regular pentagon: each of the 5 angle gaps within 10 degrees of 72;
- in superposition: ``sum_{j != i} (Ŵ_i · W_j)^2 >= 0.5`` (an antipodal partner of norm 1 gives 1);
- phase diagram: at least 80% of its test cells in the paper's phase;
- sticky: the share of dimensionalities within 0.025 of {1, 3/4, 2/3, 1/2, 2/5, 3/8} at least twice
  the share an even spread over (0, 1] would put there (0.25).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from circuits.analysis.superposition import (
    PHASES, STICKY_FRACTIONS, angle_gaps, even_spread_fraction, feature_norms, max_abs_cosine, sticky_fraction,
)
from circuits.experiments.base import Claim

if TYPE_CHECKING:
    from circuits.experiments.superposition import Result

SOURCE = "Toy Models of Superposition (Elhage et al. 2022)"
DATA = "synthetic sparse features (present with probability 1 - S, uniform in [0, 1])"


# ---- verdicts ---------------------------------------------------------------------------------
def dense_claim_holds(norms, max_cos: float, m: int, norm_threshold: float, max_cos_threshold: float) -> bool:
    """Dense: exactly the ``m`` most important features (the first ``m``; ``norms`` in importance order) have
    ``||W_i|| >= norm_threshold``, and those ``m`` are orthogonal (``max |cos| <= max_cos_threshold``)."""
    norms = np.asarray(norms, dtype=float)
    return bool((norms[:m] >= norm_threshold).all() and (norms[m:] < norm_threshold).all() and max_cos <= max_cos_threshold)


def pentagon_holds(norms, gaps, norm_threshold: float, tolerance_deg: float) -> bool:
    """Sparse: all 5 features represented (``||W_i|| >= norm_threshold``) and the 5 angle gaps each within ``tolerance_deg`` of 72."""
    norms, gaps = np.asarray(norms, dtype=float), np.asarray(gaps, dtype=float)
    return bool(norms.size == 5 and (norms >= norm_threshold).all() and gaps.size == 5 and (np.abs(gaps - 72.0) <= tolerance_deg).all())


def phase_diagram_holds(dense_match: float, sparse_match: float, n_phases: int, agreement: float) -> bool | None:
    """The three regions in the paper's arrangement: all 3 phases occur, the densest column matches (less important
    feature 2: not represented; more important: dedicated) and the sparse cells are in superposition, each on at
    least ``agreement`` of its cells (``None`` when a share is NaN: no such cells)."""
    if not (math.isfinite(dense_match) and math.isfinite(sparse_match)):
        return None
    return bool(n_phases == 3 and dense_match >= agreement and sparse_match >= agreement)


def sticky_holds(share: float, baseline: float, ratio: float, n_features: int, min_features: int = 10) -> bool | None:
    """Dimensionalities cluster: ``share`` at the sticky fractions at least ``ratio`` times an even spread's ``baseline``
    (``None`` with fewer than ``min_features`` represented features)."""
    if n_features < min_features or not math.isfinite(share):
        return None
    return bool(share >= ratio * baseline)


# ---- the numbers the claims read --------------------------------------------------------------
def pentagon_gaps(W: np.ndarray, norm_threshold: float) -> np.ndarray:
    """Angle gaps (degrees) between consecutive represented features of one ``W [2, 5]``."""
    return angle_gaps(W, norm_threshold)


def phase_scores(phase: np.ndarray, density: np.ndarray, importance: np.ndarray, sparse_density: float) -> tuple[float, float, int]:
    """``(dense_match, sparse_match, n_phases)`` of a phase grid ``[density, importance]`` (codes into ``PHASES``).

    dense_match: in the densest column, the share of cells with relative importance <= 0.5 that are
    "not represented" and with importance >= 2 that are "dedicated dimension"; sparse_match: the share of
    cells with density <= ``sparse_density`` (every importance) in "superposition"; n_phases: distinct phases.
    """
    phase, density, importance = np.asarray(phase), np.asarray(density, dtype=float), np.asarray(importance, dtype=float)
    dense = phase[int(np.argmax(density))]
    low, high = importance <= 0.5, importance >= 2.0
    checks = np.concatenate([dense[low] == 0, dense[high] == 1])
    sparse = phase[density <= sparse_density]
    return (
        float(checks.mean()) if checks.size else float("nan"),
        float((sparse == 2).mean()) if sparse.size else float("nan"),
        int(np.unique(phase).size),
    )


def sticky_stats(result: "Result") -> tuple[float, float, int]:
    """``(share, even-spread baseline, n)`` over every represented feature of the dimensionality sweep."""
    dims = result.dims_D[result.dims_norm >= result.norm_threshold]
    share = sticky_fraction(dims, STICKY_FRACTIONS, result.sticky_tolerance)
    return share, even_spread_fraction(STICKY_FRACTIONS, result.sticky_tolerance), int(dims.size)


# ---- claims -----------------------------------------------------------------------------------
def _dense_claim(r: "Result") -> Claim:
    k = int(np.argmin(r.pentagon_sparsities))
    W = r.pentagon_W[k]
    norms = feature_norms(W)
    cos = max_abs_cosine(W, [0, 1])
    return Claim(
        key="superposition_dense",
        statement=(
            f"With dense features (S = {r.pentagon_sparsities[k]:g}), 5 features of importance 0.9^i in 2 dimensions: only the 2 most "
            f"important have ||W_i|| >= {r.norm_threshold} and they are orthogonal (|cos| <= {r.orthogonal_max_cos})"
        ),
        source=SOURCE + ", 'Demonstrating superposition'", paper_value="the m most important features, orthogonal (a PCA-like solution)",
        measured=f"||W_i|| = {', '.join(f'{v:.2f}' for v in norms)}; |cos| between features 0 and 1: {cos:.3f}",
        holds=dense_claim_holds(norms, cos, 2, r.norm_threshold, r.orthogonal_max_cos), value=cos, data=DATA,
    )


def _pentagon_claim(r: "Result") -> Claim:
    k = int(np.argmax(r.pentagon_sparsities))
    W = r.pentagon_W[k]
    norms, gaps = feature_norms(W), pentagon_gaps(W, r.norm_threshold)
    worst = float(np.abs(gaps - 72).max()) if gaps.size else float("nan")
    return Claim(
        key="superposition_pentagon",
        statement=(
            f"With sparse features (S = {r.pentagon_sparsities[k]:g}) all 5 features are represented in 2 dimensions (||W_i|| >= "
            f"{r.norm_threshold}) as a regular pentagon: each angle between neighbours within {r.pentagon_tolerance_deg:g} degrees of 72"
        ),
        source=SOURCE + ", 'Demonstrating superposition'", paper_value="a pentagon (72 degrees apart)",
        measured=(
            f"{int((norms >= r.norm_threshold).sum())}/5 represented (||W_i|| {', '.join(f'{v:.2f}' for v in norms)}); "
            f"gaps {', '.join(f'{g:.1f}' for g in gaps)} degrees (largest deviation {worst:.1f})"
        ),
        holds=pentagon_holds(norms, gaps, r.norm_threshold, r.pentagon_tolerance_deg), value=worst if math.isfinite(worst) else None, data=DATA,
    )


def _phase_claim(r: "Result") -> Claim:
    dense, sparse, n = phase_scores(r.phase, r.phase_density, r.phase_importance, r.phase_sparse_density)
    return Claim(
        key="superposition_phase_diagram",
        statement=(
            "2 features in 1 dimension: the phase diagram has all three regions in the paper's arrangement: with dense features (S = 0) the "
            "second feature is not represented when less important (relative importance <= 0.5) and takes the dimension when more important "
            f"(>= 2), and with sparse features (1 - S <= {r.phase_sparse_density:g}) it is in superposition; each on at least "
            f"{100 * r.phase_agreement:.0f}% of those cells"
        ),
        source=SOURCE + ", 'Superposition as a phase change'", paper_value="three regions: not represented, dedicated dimension, superposition",
        measured=f"{n} phases present; dense column {100 * dense:.0f}% as predicted; sparse cells {100 * sparse:.0f}% in superposition",
        holds=phase_diagram_holds(dense, sparse, n, r.phase_agreement), value=min(dense, sparse), data=DATA,
    )


def _sticky_claim(r: "Result") -> Claim:
    share, base, n = sticky_stats(r)
    fracs = "1, 3/4, 2/3, 1/2, 2/5, 3/8"
    return Claim(
        key="superposition_sticky",
        statement=(
            f"Feature dimensionalities cluster at simple fractions: of the represented features of the {r.dims_features}-in-{r.dims_hidden} "
            f"sweep, the share with D_i within {r.sticky_tolerance} of {{{fracs}}} is at least {r.sticky_ratio:g}x the share an even "
            f"spread over (0, 1] would give ({base:.2f})"
        ),
        source=SOURCE + ", 'Feature dimensionality'", paper_value="D_i sticks at 1, 3/4, 2/3, 1/2, 2/5, 3/8",
        measured=f"{100 * share:.0f}% of {n} represented features (even spread: {100 * base:.0f}%; ratio {share / base:.2f})",
        holds=sticky_holds(share, base, r.sticky_ratio, n), value=share, data=DATA,
    )


def claims(result: "Result") -> list[Claim]:
    return [_dense_claim(result), _pentagon_claim(result), _phase_claim(result), _sticky_claim(result)]


__all__ = [
    "PHASES", "dense_claim_holds", "pentagon_holds", "phase_diagram_holds", "sticky_holds", "pentagon_gaps", "phase_scores",
    "sticky_stats", "claims",
]
