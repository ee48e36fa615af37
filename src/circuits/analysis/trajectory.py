"""Detectors over a training trajectory (one value per checkpoint): where a curve rises, where the
loss curve bends (the "bump"), where a PCA trajectory turns, and the loss-by-log-index slope.

Pure numpy; used by the phase-change experiment and tested on synthetic curves.
"""

from __future__ import annotations

import numpy as np


def rise_steps(steps: np.ndarray, values: np.ndarray, fractions=(0.1, 0.5, 0.9)) -> dict:
    """Steps where the rise of ``values`` reaches ``lo + q (final - lo)``, searched after the trough.

    The curve is first smoothed by a running median of 3 checkpoints, so that one noisy or
    transient checkpoint (e.g. an evaluation during warmup) neither sets the trough nor a
    crossing. ``lo`` is the smoothed minimum, ``final`` the mean of the last 3 smoothed values,
    and ``t{q}`` the first step at or after the minimum where the smoothed curve reaches the
    threshold (``None`` when there is no rise).
    """
    values = np.asarray(values, dtype=float)
    smooth = median3(values)
    i_lo = int(np.nanargmin(smooth))
    lo, final = float(smooth[i_lo]), float(np.nanmean(smooth[-3:]))
    out = {"lo": lo, "final": final, "lo_step": int(steps[i_lo])}
    for q in fractions:
        threshold = lo + q * (final - lo)
        hit = np.nonzero(smooth[i_lo:] >= threshold)[0]
        out[f"t{int(q * 100)}"] = int(steps[i_lo + hit[0]]) if len(hit) and final > lo else None
    return out


def median3(values: np.ndarray) -> np.ndarray:
    """Running median over 3 neighbours (the two ends keep their own values)."""
    values = np.asarray(values, dtype=float)
    if len(values) < 3:
        return values.copy()
    out = values.copy()
    out[1:-1] = np.median(np.stack([values[:-2], values[1:-1], values[2:]]), axis=0)
    return out


def bump(steps: np.ndarray, loss: np.ndarray, start: int) -> dict:
    """Non-convexity of the loss curve: the largest increase of its rate of decrease between consecutive intervals.

    ``rate_i = -(loss_{i+1} - loss_i) / (step_{i+1} - step_i)`` over checkpoints from step ``start`` on;
    a convex (ever-flattening) curve has a non-increasing rate. ``score`` = max increase / mean rate.
    """
    keep = steps >= start
    s, l = steps[keep].astype(float), loss[keep]
    if len(s) < 4:
        return {"score": None, "step": None, "rate": [], "rate_steps": []}
    rate = -(np.diff(l)) / np.diff(s)
    mids = (s[1:] + s[:-1]) / 2
    jumps = np.diff(rate)
    i = int(np.argmax(jumps))
    return {"score": float(jumps[i] / max(np.mean(np.abs(rate)), 1e-12)), "step": float(mids[i + 1]), "rate": rate, "rate_steps": mids}


def pivot(coords: np.ndarray, steps: np.ndarray, start: int, k: int = 2) -> dict:
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
    return {"angle": best if where is not None else None, "step": where}


def log_index_slope(per_position: np.ndarray, first: int) -> float:
    """Least-squares slope of loss against ln(index) over predicted-token indices ``first .. n_pos - 1`` (nats per e-fold)."""
    idx = np.arange(first, len(per_position) + 1)
    return float(np.polyfit(np.log(idx), per_position[idx - 1], 1)[0])


def index_before(steps: np.ndarray, t10: int | None) -> int:
    """The last checkpoint before the window (not the initialisation), or the first trained one."""
    if t10 is None:
        return 1 if len(steps) > 1 else 0
    before = np.nonzero((steps < t10) & (steps > 0))[0]
    return int(before[-1]) if len(before) else min(1, len(steps) - 1)


def within(step, lo, hi, tol) -> bool:
    return step is not None and lo is not None and hi is not None and lo - tol <= step <= hi + tol
