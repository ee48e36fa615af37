"""Detectors over a training trajectory (one value per checkpoint): where a curve rises, where the
loss curve bends (the "bump"), where a PCA trajectory turns, and the loss-by-log-index slope.

Pure numpy; used by the phase-change experiment and tested on hand-made curves. Steps are
training steps (ints); a detector that finds nothing returns ``None`` in its step field.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from jaxtyping import Float

__all__ = [
    "Rise", "Bump", "Pivot", "rise_steps", "median3", "bump", "pivot", "log_index_slope", "index_before", "window_end",
    "within", "window_tolerance", "joint_pca", "fastest_divergence", "before_after_vector",
    "Window", "densest_window", "rise_step_interval",
]


@dataclass(frozen=True)
class Rise:
    """Where a rising curve crosses 10%, 50% and 90% of its rise from ``lo`` (at ``lo_step``) to ``final``."""

    lo: float
    final: float
    lo_step: int
    t10: int | None
    t50: int | None
    t90: int | None


@dataclass(frozen=True)
class Bump:
    """The largest increase of the loss curve's rate of decrease: ``score`` (relative to the mean rate) at ``step``.

    ``rate`` is the rate of decrease between consecutive checkpoints, at the interval midpoints ``rate_steps``.
    """

    score: float | None
    step: float | None
    rate: Float[np.ndarray, "interval"]
    rate_steps: Float[np.ndarray, "interval"]


@dataclass(frozen=True)
class Pivot:
    """The checkpoint (``step``) where a trajectory turns most, and the turn's ``angle`` in degrees."""

    angle: float | None
    step: int | None


def rise_steps(steps: np.ndarray, values: np.ndarray) -> Rise:
    """Steps where the rise of ``values`` reaches ``lo + q (final - lo)`` for q = 0.1, 0.5, 0.9, searched after the trough.

    The curve is first smoothed by a running median of 3 checkpoints, so that one noisy or
    transient checkpoint (e.g. an evaluation during warmup) neither sets the trough nor a
    crossing. ``lo`` is the smoothed minimum, ``final`` the mean of the last 3 smoothed values,
    and ``t{q}`` the first step at or after the minimum where the smoothed curve reaches the
    threshold (``None`` when there is no rise).
    """
    smooth = median3(values)
    i_lo = int(np.nanargmin(smooth))
    lo, final = float(smooth[i_lo]), float(np.nanmean(smooth[-3:]))

    def crossing(q: float) -> int | None:
        hit = np.nonzero(smooth[i_lo:] >= lo + q * (final - lo))[0]
        return int(steps[i_lo + hit[0]]) if len(hit) and final > lo else None

    return Rise(lo=lo, final=final, lo_step=int(steps[i_lo]), t10=crossing(0.1), t50=crossing(0.5), t90=crossing(0.9))


def median3(values: np.ndarray) -> np.ndarray:
    """Running median over 3 neighbours (the two ends keep their own values)."""
    values = np.asarray(values, dtype=float)
    if len(values) < 3:
        return values.copy()
    out = values.copy()
    out[1:-1] = np.median(np.stack([values[:-2], values[1:-1], values[2:]]), axis=0)
    return out


def bump(steps: np.ndarray, loss: np.ndarray, start: int) -> Bump:
    """Non-convexity of the loss curve: the largest increase of its rate of decrease between consecutive intervals.

    ``rate_i = -(loss_{i+1} - loss_i) / (step_{i+1} - step_i)`` over checkpoints from step ``start`` on;
    a convex (ever-flattening) curve has a non-increasing rate. ``score`` = max increase / mean rate.
    Fewer than 4 checkpoints from ``start`` on: no bump (``score`` and ``step`` ``None``, empty rates).
    """
    steps = np.asarray(steps)
    keep = steps >= start
    s, l = steps[keep].astype(float), np.asarray(loss)[keep]
    if len(s) < 4:
        return Bump(score=None, step=None, rate=np.zeros(0), rate_steps=np.zeros(0))
    rate = -(np.diff(l)) / np.diff(s)
    mids = (s[1:] + s[:-1]) / 2
    jumps = np.diff(rate)
    i = int(np.argmax(jumps))
    return Bump(score=float(jumps[i] / max(np.mean(np.abs(rate)), 1e-12)), step=float(mids[i + 1]), rate=rate, rate_steps=mids)


def pivot(coords: np.ndarray, steps: np.ndarray, start: int, k: int = 2) -> Pivot:
    """The checkpoint where the PCA trajectory turns most: angle between ``p_i - p_{i-k}`` and ``p_{i+k} - p_i``."""
    best, where = -1.0, None
    for i in range(k, len(coords) - k):
        if steps[i] < start:
            continue
        a, b = coords[i] - coords[i - k], coords[i + k] - coords[i]
        denom = np.linalg.norm(a) * np.linalg.norm(b)
        if denom == 0:
            continue
        angle = float(np.degrees(np.arccos(np.clip(a @ b / denom, -1, 1))))
        if angle > best:
            best, where = angle, int(steps[i])
    return Pivot(angle=best if where is not None else None, step=where)


def log_index_slope(per_position: np.ndarray, first: int) -> float:
    """Least-squares slope of loss against ln(index) over predicted-token indices ``first .. n_pos - 1`` (nats per e-fold)."""
    idx = np.arange(first, len(per_position) + 1)
    return float(np.polyfit(np.log(idx), per_position[idx - 1], 1)[0])


def index_before(steps: np.ndarray, t10: int | None) -> int:
    """The last checkpoint before the window (not the initialisation), or the first trained one."""
    steps = np.asarray(steps)
    if t10 is None:
        return 1 if len(steps) > 1 else 0
    before = np.nonzero((steps < t10) & (steps > 0))[0]
    return int(before[-1]) if len(before) else min(1, len(steps) - 1)


def window_end(steps: np.ndarray, t90: int | None) -> int:
    """The first checkpoint at or after ``t90`` (the end of the window), or the last one when there is no window."""
    steps = np.asarray(steps)
    return int(np.nonzero(steps >= t90)[0][0]) if t90 is not None else len(steps) - 1


def within(step, lo, hi, tol) -> bool:
    """``step`` lies in ``[lo - tol, hi + tol]`` (False when any of ``step``, ``lo``, ``hi`` is ``None``)."""
    return step is not None and lo is not None and hi is not None and lo - tol <= step <= hi + tol


def window_tolerance(steps: np.ndarray, t10: int | None, t90: int | None, total: int) -> float:
    """How far outside the window ``[t10, t90]`` a signal may fall and still count as inside it (steps).

    5% of training, or the largest checkpoint spacing that overlaps the window when that is larger
    (a signal cannot be located more finely than its checkpoints); 0 when there is no window.
    """
    if t10 is None:
        return 0.0
    steps = np.asarray(steps)
    gaps = np.diff(steps)
    overlapping = (steps[1:] >= t10) & (steps[:-1] <= (t90 or total))
    return max(0.05 * total, float(np.max(gaps[overlapping], initial=0)))


def joint_pca(vectors: Sequence[np.ndarray], n_components: int = 2) -> tuple[list[np.ndarray], np.ndarray]:
    """Project the rows of several ``[checkpoint, n_pairs]`` arrays on the top principal components of all rows together.

    Returns each array's ``[checkpoint, n_components]`` coordinates and the fractions of variance explained.
    """
    stacked = np.concatenate([np.asarray(v, dtype=float) for v in vectors])
    centred = stacked - stacked.mean(0)
    _, sing, vt = np.linalg.svd(centred, full_matrices=False)
    explained = (sing**2 / max((sing**2).sum(), 1e-12))[:n_components]
    bounds = np.cumsum([0] + [len(v) for v in vectors])
    return [centred[a:b] @ vt[:n_components].T for a, b in zip(bounds[:-1], bounds[1:])], explained


def fastest_divergence(steps: np.ndarray, gap: np.ndarray) -> float:
    """The interval midpoint where ``gap`` (e.g. one model's loss minus another's) grows fastest per step."""
    steps = np.asarray(steps)
    rate = np.diff(gap) / np.diff(steps)
    mids = (steps[1:] + steps[:-1]) / 2
    return float(mids[int(np.argmax(rate))])


def before_after_vector(vectors: Float[np.ndarray, "checkpoint n_pairs"], before: int, after: int) -> Float[np.ndarray, "n_pairs"]:
    """The change of the per-token loss vector from checkpoint ``before`` to ``after``, scaled to unit length."""
    v = vectors[after] - vectors[before]
    return v / max(np.linalg.norm(v), 1e-12)


@dataclass(frozen=True)
class Window:
    """The checkpoints ``start`` and ``end`` (indices into the steps) between which a curve gains most within a width."""

    start: int
    end: int
    gain: float  #: value at ``end`` minus value at ``start`` (of the median-of-3 curve)


def densest_window(steps: np.ndarray, values: np.ndarray, width: float | int) -> Window:
    """The pair of checkpoints at most ``width`` steps apart over which the median-of-3 curve gains most.

    The In-context Learning paper's phase change: "over 75% of final in-context learning forms in
    this window", a window of about a quarter of training. This finds the best such window of a
    given width (ties: the earliest), so that the share of the final value formed in it is a
    measurement and not, as in a 10%-90% window, 80% by construction.
    """
    steps, smooth = np.asarray(steps, dtype=float), median3(values)
    if len(steps) == 0:
        raise ValueError("densest_window needs at least one checkpoint")
    best = Window(start=0, end=0, gain=0.0)
    for i in range(len(steps)):
        j = int(np.nonzero(steps <= steps[i] + width)[0][-1])
        gain = float(smooth[j] - smooth[i])
        if gain > best.gain + 1e-12 * max(1.0, abs(best.gain)):  # rounding does not break a tie
            best = Window(start=i, end=j, gain=gain)
    return best


def rise_step_interval(steps: np.ndarray, resampled: np.ndarray, q: float = 0.5, level: float = 0.95) -> tuple[float, float] | None:
    """The ``level`` percentile interval of the step where each resampled curve (rows of ``resampled``) reaches ``q`` of its rise.

    Resamples with no rise are left out; ``None`` when more than ``1 - level`` of them have none
    (the step is then not resolved). ``q`` is 0.1, 0.5 or 0.9 (:func:`rise_steps`).
    """
    field = {0.1: "t10", 0.5: "t50", 0.9: "t90"}.get(q)
    if field is None:
        raise ValueError(f"q must be 0.1, 0.5 or 0.9, got {q!r}")
    found = [getattr(rise_steps(steps, row), field) for row in np.asarray(resampled, dtype=float)]
    hits = np.array([s for s in found if s is not None], dtype=float)
    if len(found) == 0 or len(hits) < level * len(found):
        return None
    lo, hi = np.percentile(hits, [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)
