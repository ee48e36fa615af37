"""Picking heads by role from their scores: copying heads (OV eigenvalues) and positional heads (attention by relative position).

Framework paper, one-layer section: most heads of a one-layer model copy (the full OV circuit
has mostly positive eigenvalues, :func:`circuits.analysis.weights.eigen.copying_scores`), and a
few attend mainly by position (to the previous or the current token,
:func:`circuits.analysis.activations.scores.previous_token_scores` and
:func:`~circuits.analysis.activations.scores.current_token_scores`). Scores come in per head, in
the order of ``labels``; the heads above the threshold come back as labels, in that order.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["copying_heads", "positional_heads"]


def _check(labels: Sequence[str], **scores: Sequence[float] | np.ndarray) -> None:
    for name, values in scores.items():
        if len(values) != len(labels):
            raise ValueError(f"{name} has {len(values)} scores for {len(labels)} heads ({list(labels)}); give one score per head")


def copying_heads(labels: Sequence[str], copying: Sequence[float] | np.ndarray, threshold: float) -> list[str]:
    """The heads whose copying score ``sum(eigenvalues) / sum(|eigenvalues|)`` exceeds ``threshold`` (NaN never does)."""
    _check(labels, copying=copying)
    return [h for h, c in zip(labels, np.asarray(copying, dtype=float)) if c > threshold]


def positional_heads(labels: Sequence[str], previous: Sequence[float] | np.ndarray, current: Sequence[float] | np.ndarray, threshold: float) -> list[str]:
    """The "primarily positional" heads: mean attention to the previous plus the current token above ``threshold``."""
    _check(labels, previous=previous, current=current)
    return [h for h, p, c in zip(labels, previous, current) if p + c > threshold]
