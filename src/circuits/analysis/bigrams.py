"""Bigram statistics of a token stream, the references a zero-layer model is measured against (Framework paper, "Zero-Layer Transformers").

A zero-layer model predicts the next token from the current one alone, so its loss is at least
the conditional entropy ``H(next | current)`` of its training bigrams and at most (if it learns
anything) the unigram entropy ``H(next)``. These functions take the ``[d_vocab, d_vocab_out]``
count tables of :func:`circuits.analysis.activations.paths.bigram_counts` (row = current token,
column = next token) and return numbers in nats; the model side is
:func:`circuits.analysis.activations.paths.zero_layer_bigram_comparison`.
"""

from __future__ import annotations

import math

from jaxtyping import Float, Real
from torch import Tensor

__all__ = [
    "entropy",
    "conditional_probabilities",
    "add_one_unigram",
    "smoothed_bigram_cross_entropy",
    "unigram_cross_entropy",
    "top1_agreement",
    "entropy_gap_closed",
]


def entropy(counts: Real[Tensor, "d_vocab"]) -> float:
    """Shannon entropy (nats) of the distribution ``counts / counts.sum()`` (zero counts contribute nothing)."""
    p = counts.double() / counts.sum()
    p = p[p > 0]
    return float(-(p * p.log()).sum())


def conditional_probabilities(counts: Real[Tensor, "d_vocab d_vocab_out"]) -> Float[Tensor, "d_vocab d_vocab_out"]:
    """The empirical ``P(next | current)``: each row of ``counts`` over its sum (rows never seen stay all zero)."""
    return counts.double() / counts.double().sum(1, keepdim=True).clamp_min(1)


def add_one_unigram(counts: Real[Tensor, "d_vocab d_vocab_out"]) -> Float[Tensor, "d_vocab_out"]:
    """The next-token distribution of ``counts`` with add-one smoothing, so that every token has mass."""
    counts = counts.double()
    return (counts.sum(0) + 1) / (counts.sum() + counts.shape[1])


def smoothed_bigram_cross_entropy(train: Real[Tensor, "d_vocab d_vocab_out"], val: Real[Tensor, "d_vocab d_vocab_out"], beta: float) -> float:
    """Cross-entropy on the ``val`` bigrams of the ``train`` table smoothed towards its unigram.

    ``P(b | a) = (c(a, b) + beta P(b)) / (c(a) + beta)`` with ``P`` the :func:`add_one_unigram` of
    ``train``: a Dirichlet prior of strength ``beta``, the held-out reference for a bigram model.
    """
    if not math.isfinite(beta) or beta <= 0:
        raise ValueError(f"beta={beta!r} must be a finite number > 0 (the Dirichlet prior's strength, e.g. 10.0; 0 leaves unseen bigrams at log 0)")
    train, val = train.double(), val.double()
    probs = (train + beta * add_one_unigram(train)[None, :]) / (train.sum(1, keepdim=True) + beta)
    return float(-(val * probs.log()).sum() / val.sum())


def unigram_cross_entropy(train: Real[Tensor, "d_vocab d_vocab_out"], val: Real[Tensor, "d_vocab d_vocab_out"]) -> float:
    """Cross-entropy on the ``val`` bigrams of a model that ignores the current token (the :func:`add_one_unigram` of ``train``)."""
    return float(-(val.sum(0).double() * add_one_unigram(train).log()).sum() / val.sum())


def top1_agreement(log_probs: Float[Tensor, "d_vocab d_vocab_out"], counts: Real[Tensor, "d_vocab d_vocab_out"]) -> float:
    """Share of the current tokens in ``counts`` (weighted by frequency) whose most likely next token under ``log_probs`` is the corpus's."""
    if log_probs.shape != counts.shape:
        raise ValueError(f"log_probs has shape {tuple(log_probs.shape)} but counts {tuple(counts.shape)}; both are [d_vocab, d_vocab_out]")
    current = counts.sum(1)
    agrees = (current > 0) & (log_probs.argmax(-1).to(current.device) == conditional_probabilities(counts).argmax(-1))
    return float(current[agrees].sum()) / float(current.sum())


def entropy_gap_closed(unigram_entropy: float, conditional_entropy: float, model_loss: float) -> float:
    """Fraction of the gap from ``H(next)`` down to ``H(next | current)`` that a model with ``model_loss`` closes.

    1 at the bigram floor, 0 for a model no better than the unigram, negative when worse; NaN
    when there is no gap (``H(next) <= H(next | current)``).
    """
    gap = unigram_entropy - conditional_entropy
    return (unigram_entropy - model_loss) / gap if gap > 0 else float("nan")
