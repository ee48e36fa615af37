"""Bootstrap intervals for scores that are means over sequences (probe rows) or evaluation windows.

Every score the report shows is a mean over independent units: the ICL score over validation
windows, an induction or prefix-matching score over random probe sequences. Resampling those
units with replacement (the nonparametric bootstrap) gives the spread a rerun on other units
would show. :func:`resampled_means` draws ``n_boot`` resamples at once as a weight matrix (row
``b`` holds how often each unit was drawn, divided by ``n``), so the means of every checkpoint
and every head come from one matrix product, with the same resamples for all of them (so that a
statistic of several means, such as the best head, is resampled consistently).
:func:`interval` turns resampled statistics into a percentile interval.

Everything is numpy and deterministic for a given ``seed``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from jaxtyping import Float

__all__ = [
    "N_BOOT", "LEVEL", "Interval", "bootstrap_weights", "resampled_means", "interval", "mean_interval", "max_interval", "joint_interval",
]

N_BOOT = 1000  #: resamples per interval
LEVEL = 0.95  #: coverage of the percentile intervals


@dataclass(frozen=True)
class Interval:
    """A point estimate (the statistic on all units) and its bootstrap percentile interval ``[lo, hi]``."""

    value: float
    lo: float
    hi: float

    @property
    def half_width(self) -> float:
        return (self.hi - self.lo) / 2

    def text(self, digits: int = 3) -> str:
        """E.g. ``"0.51 [0.48, 0.54]"``."""
        return f"{self.value:.{digits}g} [{self.lo:.{digits}g}, {self.hi:.{digits}g}]"


def bootstrap_weights(n: int, n_boot: int = N_BOOT, seed: int = 0) -> Float[np.ndarray, "n_boot n"]:
    """``n_boot`` resamples of ``n`` units with replacement, as weights (draw counts / ``n``; each row sums to 1).

    Cached per ``(n, n_boot, seed)`` (read-only): every interval of a run with the same units uses the same resamples.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"a bootstrap needs at least one unit, got n={n!r}")
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or n_boot < 1:
        raise ValueError(f"n_boot must be a positive int, got {n_boot!r}")
    return _weights(n, n_boot, seed)


@functools.lru_cache(maxsize=16)
def _weights(n: int, n_boot: int, seed: int) -> np.ndarray:
    draws = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    counts = np.bincount((draws + n * np.arange(n_boot)[:, None]).ravel(), minlength=n_boot * n).reshape(n_boot, n)
    weights = counts / n
    weights.flags.writeable = False
    return weights


def resampled_means(values: np.ndarray, axis: int, n_boot: int = N_BOOT, seed: int = 0) -> np.ndarray:
    """Means over ``axis`` of ``values`` under ``n_boot`` resamples of that axis: shape ``[n_boot, *other axes]``."""
    values = np.moveaxis(np.asarray(values, dtype=float), axis, 0)
    if not np.all(np.isfinite(values)):
        raise ValueError("values hold NaN or infinite entries: a bootstrap of their mean is undefined; drop those units first")
    weights = bootstrap_weights(values.shape[0], n_boot, seed)
    return np.tensordot(weights, values, axes=(1, 0))


def interval(samples: np.ndarray, value: float | np.ndarray, level: float = LEVEL) -> tuple[np.ndarray, np.ndarray]:
    """The ``level`` percentile interval of bootstrap ``samples`` (first axis: resamples); ``value`` only sets the shape."""
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    lo, hi = np.percentile(np.asarray(samples, dtype=float), [50 * (1 - level), 50 * (1 + level)], axis=0)
    return np.broadcast_to(lo, np.shape(value)).copy(), np.broadcast_to(hi, np.shape(value)).copy()


Stat = np.ndarray | float  #: a statistic: an array, or a float for a single one


def mean_interval(values: np.ndarray, axis: int = -1, n_boot: int = N_BOOT, level: float = LEVEL, seed: int = 0) -> tuple[Stat, Stat, Stat]:
    """``(mean, lo, hi)`` over ``axis``: the mean of all units and its bootstrap interval, for every other index."""
    values = np.asarray(values, dtype=float)
    mean = values.mean(axis)
    lo, hi = interval(resampled_means(values, axis, n_boot, seed), mean, level)
    return mean, lo, hi


def max_interval(values: np.ndarray, unit_axis: int, over: tuple[int, ...], n_boot: int = N_BOOT, level: float = LEVEL,
                 seed: int = 0) -> tuple[Stat, Stat, Stat]:
    """``(max, lo, hi)``: the largest mean over the axes ``over`` (e.g. the best head), and its interval.

    ``values`` holds one value per unit along ``unit_axis`` (e.g. ``[checkpoint, sequence, head]``
    with ``unit_axis=1, over=(2,)``); axes are numbered as in ``values``. Each resample takes the
    means of every candidate and then their maximum, so the interval includes the uncertainty of
    which candidate is best.
    """
    values = np.asarray(values, dtype=float)
    over = tuple(a % values.ndim for a in over)
    unit_axis %= values.ndim
    if unit_axis in over:
        raise ValueError(f"unit_axis {unit_axis} cannot also be reduced by the maximum (over={over})")
    best = values.mean(unit_axis).max(axis=tuple(a - (a > unit_axis) for a in over))
    samples = resampled_means(values, unit_axis, n_boot, seed)  # [n_boot, other axes without unit_axis]
    samples = samples.max(axis=tuple(1 + a - (a > unit_axis) for a in over))
    lo, hi = interval(samples, best, level)
    return best, lo, hi


def joint_interval(statistic: Callable[..., np.ndarray | float], *values: np.ndarray, n_boot: int = N_BOOT, level: float = LEVEL,
                   seed: int = 0) -> Interval:
    """``statistic`` of the means of several per-unit arrays (units on axis 0, the same units in each), with its interval.

    The units are resampled jointly, so a ratio or difference of means (e.g. the share of the ICL
    score an ablation removes: ``statistic=lambda delta, clean: delta / -clean``) keeps its pairing.
    ``statistic`` must work on arrays (it gets ``[n_boot]`` arrays of resampled means).
    """
    arrays = [np.asarray(v, dtype=float) for v in values]
    if not arrays or len({a.shape[0] for a in arrays}) != 1:
        raise ValueError(f"joint_interval needs arrays with the same number of units on axis 0, got shapes {[a.shape for a in arrays]}")
    value = float(statistic(*(a.mean(0) for a in arrays)))
    samples = np.asarray(statistic(*(resampled_means(a, 0, n_boot, seed) for a in arrays)), dtype=float)
    finite = samples[np.isfinite(samples)]
    if len(finite) < level * len(samples):
        return Interval(value=value, lo=float("nan"), hi=float("nan"))
    lo, hi = np.percentile(finite, [50 * (1 - level), 50 * (1 + level)])
    return Interval(value=value, lo=float(lo), hi=float(hi))
