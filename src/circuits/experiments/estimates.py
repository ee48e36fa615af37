"""A measured number with its bootstrap interval, as a typed result field (see :mod:`circuits.analysis.uncertainty`)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from circuits.analysis.uncertainty import Interval
from circuits.experiments import base
from circuits.experiments.util import fmt

__all__ = ["Estimate"]


@dataclass(frozen=True, kw_only=True)
class Estimate(base.Result):
    """``value`` (on all units) and its 95% bootstrap interval ``[lo, hi]`` (NaN when the resamples could not resolve it)."""

    value: float
    lo: float
    hi: float

    @classmethod
    def of(cls, interval: Interval) -> "Estimate":
        return cls(value=float(interval.value), lo=float(interval.lo), hi=float(interval.hi))

    def text(self, scale: float | int = 1, digits: int = 3) -> str:
        """E.g. ``"0.33 [0.25, 0.41]"`` (all three multiplied by ``scale``, e.g. 100 for percentages)."""
        if not (math.isfinite(self.lo) and math.isfinite(self.hi)):
            return f"{fmt(scale * self.value, digits)} [interval n/a]"
        return f"{fmt(scale * self.value, digits)} [{fmt(scale * self.lo, digits)}, {fmt(scale * self.hi, digits)}]"

    @property
    def resolved_above(self) -> bool:
        """Whether the interval lies wholly above 0."""
        return math.isfinite(self.lo) and self.lo > 0

    @property
    def resolved_below(self) -> bool:
        """Whether the interval lies wholly below 0."""
        return math.isfinite(self.hi) and self.hi < 0
