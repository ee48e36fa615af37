"""Progress measures of grokking over training checkpoints, and the three phases found from their curves.

:func:`progress_measures` reads one checkpoint of a modular-addition model (Nanda et al. 2023, §5.1):
train and test loss and accuracy, the **restricted loss** (only the constant and the key
frequencies' ``cos/sin(w_k (a + b))`` components of the logits kept, on every pair), the **excluded
loss** (those components removed, on the training pairs), the Gini coefficients of the Fourier
spectra of ``W_E`` and ``W_L``, and the sum of squared weights.

:func:`detect_phases` finds the phases from the curves, nothing hard-coded (§5.2):

- **memorisation** ends at the first checkpoint where train accuracy reaches ``threshold`` (0.99);
- **circuit formation** runs from there until the test loss starts falling: the 10% point of its
  fall from its (smoothed) peak to its final value, on a log scale
  (:func:`circuits.analysis.trajectory.rise_steps` of ``-log(test loss)``);
- **cleanup** runs from there to the 90% point of that fall.

It also gives the first checkpoint with test accuracy >= ``threshold`` (grokked), the onset of the
restricted loss's fall and of the excluded loss's rise (10% points, log scale, after its peak / trough).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from jaxtyping import Float

from circuits.analysis.grokking.fourier import (
    accuracy, cross_entropy, frequency_power, gini, split_logits,
)
from circuits.analysis.grokking.readout import all_logits, embedding_numbers, neuron_logit_map, weight_norm
from circuits.analysis.trajectory import rise_steps
from circuits.model import Transformer

__all__ = ["ProgressMeasures", "progress_measures", "labels_grid", "Phases", "detect_phases", "first_at_least"]


@dataclass(frozen=True)
class ProgressMeasures:
    """One checkpoint's progress measures (losses in nats, accuracies as fractions)."""

    train_loss: float
    test_loss: float
    train_accuracy: float
    test_accuracy: float
    restricted_loss: float
    excluded_loss: float
    gini_embed: float  #: Gini of the per-frequency norms of W_E (numbers)
    gini_neuron_logits: float  #: Gini of the per-frequency norms of W_L = W_out W_U along the classes
    weight_norm: float  #: sum of squared parameters


def labels_grid(p: int) -> np.ndarray:
    """``[p, p]`` labels ``(a + b) mod p``."""
    return np.add.outer(np.arange(p), np.arange(p)) % p


def progress_measures(model: Transformer, p: int, is_train: np.ndarray, key_freqs: Sequence[int]) -> ProgressMeasures:
    """The progress measures of ``model`` (one checkpoint) for modulus ``p``, train pairs ``is_train [p, p]`` and ``key_freqs``."""
    is_train = np.asarray(is_train, dtype=bool)
    if is_train.shape != (p, p):
        raise ValueError(f"is_train must be a [p, p] = [{p}, {p}] boolean grid of the training pairs, got shape {is_train.shape}")
    logits, labels = all_logits(model, p), labels_grid(p)
    w_l = neuron_logit_map(model, p) if model.config.has_mlp else None
    restricted, excluded = split_logits(logits, key_freqs)
    return ProgressMeasures(
        train_loss=cross_entropy(logits, labels, is_train),
        test_loss=cross_entropy(logits, labels, ~is_train),
        train_accuracy=accuracy(logits, labels, is_train),
        test_accuracy=accuracy(logits, labels, ~is_train),
        restricted_loss=cross_entropy(restricted, labels),
        excluded_loss=cross_entropy(excluded, labels, is_train),
        gini_embed=gini(np.sqrt(frequency_power(embedding_numbers(model, p)).power)),
        gini_neuron_logits=gini(np.sqrt(frequency_power(w_l).power)) if w_l is not None else float("nan"),
        weight_norm=weight_norm(model),
    )


def first_at_least(steps: Sequence[int] | np.ndarray, values: Sequence[float] | np.ndarray, threshold: float) -> int | None:
    """The first step whose value is at least ``threshold`` (None: never)."""
    return next((int(s) for s, v in zip(steps, values) if v >= threshold), None)


@dataclass(frozen=True)
class Phases:
    """Phase boundaries and onsets, in training steps (epochs: one full batch per step); None where not found."""

    memorised: int | None  #: end of memorisation: train accuracy first >= threshold
    cleanup_start: int | None  #: end of circuit formation: the test loss's fall reaches 10% (log scale)
    cleanup_end: int | None  #: the test loss's fall reaches 90%
    grokked: int | None  #: test accuracy first >= threshold
    restricted_onset: int | None  #: the restricted loss's fall reaches 10% (log scale)
    excluded_onset: int | None  #: the excluded loss's rise after its trough reaches 10% (log scale)


def _log(values) -> np.ndarray:
    return np.log(np.maximum(np.asarray(values, dtype=float), 1e-12))


def detect_phases(
    steps: Sequence[int] | np.ndarray, train_accuracy: Float[np.ndarray, "_ckpt"], test_accuracy: Float[np.ndarray, "_ckpt"],
    test_loss: Float[np.ndarray, "_ckpt"], restricted_loss: Float[np.ndarray, "_ckpt"], excluded_loss: Float[np.ndarray, "_ckpt"],
    threshold: float = 0.99,
) -> Phases:
    """The phases and onsets from the curves over checkpoints ``steps`` (see the module docstring)."""
    steps = np.asarray(steps)
    lengths = {len(steps), len(train_accuracy), len(test_accuracy), len(test_loss), len(restricted_loss), len(excluded_loss)}
    if len(lengths) != 1 or len(steps) < 3:
        raise ValueError(f"detect_phases needs curves of one common length >= 3 (one value per checkpoint), got lengths {sorted(lengths)}")
    test_fall = rise_steps(steps, -_log(test_loss))
    return Phases(
        memorised=first_at_least(steps, train_accuracy, threshold),
        cleanup_start=test_fall.t10,
        cleanup_end=test_fall.t90,
        grokked=first_at_least(steps, test_accuracy, threshold),
        restricted_onset=rise_steps(steps, -_log(restricted_loss)).t10,
        excluded_onset=rise_steps(steps, _log(excluded_loss)).t10,
    )
