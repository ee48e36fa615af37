"""The Fourier basis of Z_p and the readings of Nanda et al. (2023) that use it, on plain arrays.

Basis (rows of :func:`fourier_basis`, orthonormal over ``x = 0 .. p-1``): the constant
``1/sqrt(p)``, then for each frequency ``k = 1 .. (p-1)/2`` the pair ``cos(w_k x)``, ``sin(w_k x)``
scaled to unit norm, with ``w_k = 2 pi k / p`` (and, for an even ``p``, ``cos(pi x)`` last).
Row ``0`` is the constant, rows ``2k-1`` and ``2k`` are frequency ``k``.

What each function measures:

- :func:`frequency_power`: how much of a ``[p, d]`` matrix (the embedding ``W_E`` of the
  numbers, or ``W_L = W_out W_U`` read along its output) lies along each frequency: the squared
  norm of its cos and sin components.
- :func:`key_frequencies`: the few frequencies that stand out, found as the largest ratio gap in
  the sorted power (no threshold to tune; an exactly two-frequency matrix gives those two).
- :func:`neuron_frequencies`: each MLP neuron's activation over the ``p x p`` inputs, 2D Fourier
  transformed; the frequency whose terms (``cos/sin(w_k a)``, ``cos/sin(w_k b)`` and their
  products) explain most of its variance, and that share.
- :func:`logit_fit`: the logits over ``(a, b, c)`` fitted by ``sum_k alpha_k cos(w_k (a + b - c))``
  over the key frequencies; the share of the logits' variance (centred over ``c``) it explains.
- :func:`restricted_logits` / :func:`excluded_logits`: the logits with only the constant and the
  key frequencies' ``cos/sin(w_k (a + b))`` components over ``(a, b)`` kept, or with those
  components removed; :func:`cross_entropy` turns either into the restricted / excluded loss.
- :func:`gini`: the Gini coefficient of a non-negative vector (0 spread evenly, ``1 - 1/n`` all in one entry).

Pure numpy (float64); :mod:`circuits.analysis.grokking.readout` reads the arrays off a model.
"""

from __future__ import annotations

from dataclasses import dataclass

import einops
import numpy as np
from jaxtyping import Float, Int

__all__ = [
    "fourier_basis", "basis_names", "n_frequencies", "frequency_rows", "FrequencyPower", "frequency_power", "key_frequencies",
    "fourier_2d", "NeuronFrequencies", "neuron_frequencies", "LogitFit", "logit_fit", "sum_directions", "restricted_logits",
    "excluded_logits", "split_logits", "cross_entropy", "accuracy", "gini",
]


def _check_p(p: object) -> int:  # p: object, so a wrong type reaches this message
    if isinstance(p, bool) or not isinstance(p, (int, np.integer)) or p < 2:
        raise ValueError(f"p={p!r} must be an int >= 2 (the size of Z_p)")
    return int(p)


def n_frequencies(p: object) -> int:
    """The frequencies ``1 .. (p-1)/2`` that have a cos and a sin row (an even ``p`` adds ``p/2``, cos only)."""
    return (_check_p(p) - 1) // 2


def fourier_basis(p: object) -> Float[np.ndarray, "p x"]:
    """The orthonormal Fourier basis of functions on Z_p, one basis vector per row (see the module docstring)."""
    p = _check_p(p)
    x = np.arange(p)
    rows = [np.ones(p)]
    for k in range(1, n_frequencies(p) + 1):
        rows += [np.cos(2 * np.pi * k * x / p), np.sin(2 * np.pi * k * x / p)]
    if p % 2 == 0:
        rows.append(np.cos(np.pi * x))
    basis = np.stack(rows)
    return basis / np.linalg.norm(basis, axis=1, keepdims=True)


def basis_names(p: int) -> list[str]:
    """``["const", "cos 1", "sin 1", ...]``, the label of each row of :func:`fourier_basis`."""
    names = ["const"] + [f"{f} {k}" for k in range(1, n_frequencies(p) + 1) for f in ("cos", "sin")]
    return names + ([f"cos {p // 2}"] if p % 2 == 0 else [])


def frequency_rows(k: int) -> list[int]:
    """The rows of :func:`fourier_basis` holding frequency ``k`` (its cos and its sin)."""
    return [2 * k - 1, 2 * k]


def _check_freqs(freqs, p: int) -> list[int]:
    freqs = [int(k) for k in freqs]
    bad = [k for k in freqs if not 1 <= k <= n_frequencies(p)]
    if bad or not freqs:
        raise ValueError(f"frequencies {freqs} must be a non-empty list of ints in 1..{n_frequencies(p)} for p={p}")
    return freqs


# ---- one-dimensional spectra ----------------------------------------------------------------------
@dataclass(frozen=True)
class FrequencyPower:
    """Squared norm of a matrix along the constant (``constant``) and along each frequency ``k = 1..`` (``power[k - 1]``)."""

    constant: float
    power: Float[np.ndarray, "freq"]

    def share(self, freqs) -> float:
        """The fraction of the non-constant power that frequencies ``freqs`` (1-based) hold."""
        total = float(self.power.sum())
        return float(self.power[[k - 1 for k in freqs]].sum() / total) if total > 0 else float("nan")


def frequency_power(matrix: Float[np.ndarray, "p d"]) -> FrequencyPower:
    """Power per frequency of the columns of ``matrix`` read as functions on Z_p (rows: ``x = 0 .. p-1``)."""
    matrix = np.asarray(matrix, dtype=float)
    if matrix.ndim != 2:
        raise ValueError(f"frequency_power expects a [p, d] matrix (e.g. W_E of the numbers), got shape {matrix.shape}")
    p = _check_p(matrix.shape[0])
    coefficients = fourier_basis(p) @ matrix  # [basis, d]
    squared = (coefficients**2).sum(axis=1)
    power = np.array([squared[frequency_rows(k)].sum() for k in range(1, n_frequencies(p) + 1)])
    return FrequencyPower(constant=float(squared[0]), power=power)


def key_frequencies(power: FrequencyPower | Float[np.ndarray, "freq"], max_keys: int = 10) -> tuple[int, ...]:
    """The frequencies that stand out: the top ``n`` by power, ``n <= max_keys`` where the sorted power drops most (by ratio).

    Returned in increasing order (1-based). A zero after the top ``n`` counts as an infinitely large
    drop, so a matrix made of exactly ``n`` frequencies gives those ``n``.
    """
    values = np.asarray(power.power if isinstance(power, FrequencyPower) else power, dtype=float)
    if values.ndim != 1 or len(values) < 2:
        raise ValueError(f"key_frequencies needs the power of at least 2 frequencies, got shape {values.shape}")
    if max_keys < 1:
        raise ValueError(f"max_keys={max_keys} must be >= 1")
    order = np.argsort(-values, kind="stable")
    ranked = values[order]
    tiny = max(float(ranked[0]), 1e-300) * 1e-12
    ratios = ranked[:-1] / np.maximum(ranked[1:], tiny)
    n = int(np.argmax(ratios[: min(max_keys, len(ratios))])) + 1
    return tuple(sorted(int(k) + 1 for k in order[:n]))


# ---- two-dimensional: inputs (a, b) ----------------------------------------------------------------
def fourier_2d(values: Float[np.ndarray, "a b ..."]) -> Float[np.ndarray, "basis_a basis_b ..."]:
    """The 2D Fourier transform over the first two axes (both of size p): ``B values B^T`` for each trailing index."""
    values = np.asarray(values, dtype=float)
    if values.ndim < 2 or values.shape[0] != values.shape[1]:
        raise ValueError(f"fourier_2d expects [p, p, ...] values over (a, b), got shape {values.shape}")
    basis = fourier_basis(values.shape[0])
    over_a = np.tensordot(basis, values, axes=(1, 0))  # [basis_a, b, ...]: one matmul each, not a 4-fold loop
    return np.moveaxis(np.tensordot(basis, over_a, axes=(1, 1)), 0, 1)  # [basis_a, basis_b, ...]


@dataclass(frozen=True)
class NeuronFrequencies:
    """Per neuron: the frequency whose terms explain most of its activation's variance (0: a dead neuron), and that share."""

    frequency: Int[np.ndarray, "neuron"]
    fraction: Float[np.ndarray, "neuron"]

    def clustered(self, threshold: float = 0.85) -> float:
        """The fraction of all neurons with more than ``threshold`` of their variance in one frequency (paper: 433/512 above 0.85)."""
        return float(np.mean(np.nan_to_num(self.fraction, nan=0.0) > threshold))


def neuron_frequencies(acts: Float[np.ndarray, "a b neuron"]) -> NeuronFrequencies:
    """For each neuron, the share of its variance over the ``p^2`` inputs explained by each frequency's terms; the best one.

    Frequency ``k``'s terms are the 2D Fourier components in rows/columns ``{const, cos k, sin k}``
    except the constant-constant one: ``cos/sin(w_k a)``, ``cos/sin(w_k b)`` and their four products.
    """
    coefficients = fourier_2d(acts) ** 2  # [basis_a, basis_b, neuron]
    p = coefficients.shape[0]
    total = coefficients.sum(axis=(0, 1)) - coefficients[0, 0]
    shares = []
    for k in range(1, n_frequencies(p) + 1):
        rows = [0, *frequency_rows(k)]
        shares.append(coefficients[np.ix_(rows, rows)].sum(axis=(0, 1)) - coefficients[0, 0])
    shares = np.stack(shares)  # [freq, neuron]
    dead = total <= 1e-12 * max(float(total.max(initial=0.0)), 1e-300)
    fraction = np.where(dead, np.nan, shares.max(axis=0) / np.where(dead, 1.0, total))
    return NeuronFrequencies(frequency=np.where(dead, 0, shares.argmax(axis=0) + 1), fraction=fraction)


def sum_directions(p: int, freqs) -> Float[np.ndarray, "direction a b"]:
    """``cos(w_k (a + b))`` and ``sin(w_k (a + b))`` for each frequency of ``freqs``, ``[2 * len(freqs), p, p]`` (orthogonal)."""
    p = _check_p(p)
    total = np.add.outer(np.arange(p), np.arange(p))
    out = []
    for k in _check_freqs(freqs, p):
        out += [np.cos(2 * np.pi * k * total / p), np.sin(2 * np.pi * k * total / p)]
    return np.stack(out)


def _projection(logits: Float[np.ndarray, "a b c"], freqs) -> Float[np.ndarray, "a b c"]:
    logits = _check_logits(logits)
    directions = sum_directions(logits.shape[0], freqs)  # each has squared norm p^2 / 2
    coefficients = einops.einsum(directions, logits, "d a b, a b c -> d c") / (logits.shape[0] ** 2 / 2)
    return einops.einsum(directions, coefficients, "d a b, d c -> a b c")


def _check_logits(logits) -> np.ndarray:
    logits = np.asarray(logits, dtype=float)
    if logits.ndim != 3 or logits.shape[0] != logits.shape[1]:
        raise ValueError(f"expected logits [p, p, classes] over every pair (a, b), got shape {logits.shape}")
    return logits


def restricted_logits(logits: Float[np.ndarray, "a b c"], freqs) -> Float[np.ndarray, "a b c"]:
    """Only the constant and the key frequencies' ``cos/sin(w_k (a + b))`` components of the logits over ``(a, b)``."""
    logits = _check_logits(logits)
    return logits.mean(axis=(0, 1), keepdims=True) + _projection(logits, freqs)


def excluded_logits(logits: Float[np.ndarray, "a b c"], freqs) -> Float[np.ndarray, "a b c"]:
    """The logits with the key frequencies' ``cos/sin(w_k (a + b))`` components over ``(a, b)`` removed."""
    return _check_logits(logits) - _projection(logits, freqs)


def split_logits(logits: Float[np.ndarray, "a b c"], freqs) -> tuple[Float[np.ndarray, "a b c"], Float[np.ndarray, "a b c"]]:
    """``(restricted_logits, excluded_logits)`` of ``logits``, projecting once."""
    logits = _check_logits(logits)
    projection = _projection(logits, freqs)
    return logits.mean(axis=(0, 1), keepdims=True) + projection, logits - projection


@dataclass(frozen=True)
class LogitFit:
    """``logits ~ sum_k alpha_k cos(w_k (a + b - c))``: the fitted ``alpha`` per key frequency and the variance share explained."""

    freqs: tuple[int, ...]
    alpha: Float[np.ndarray, "freq"]
    explained: float


def logit_fit(logits: Float[np.ndarray, "a b c"], freqs) -> LogitFit:
    """Least-squares fit of the logits (centred over ``c`` for each ``(a, b)``) by ``cos(w_k (a + b - c))`` terms.

    The terms of different frequencies are orthogonal over Z_p^3, so each ``alpha_k`` is a projection
    and the share explained is the sum of their squared projections over the centred logits' squared norm.
    """
    logits = _check_logits(logits)
    p, n_classes = logits.shape[0], logits.shape[2]
    freqs = _check_freqs(freqs, p)
    centred = logits - logits.mean(axis=2, keepdims=True)
    phase = np.add.outer(np.add.outer(np.arange(p), np.arange(p)), -np.arange(n_classes))  # a + b - c
    alphas, explained = [], 0.0
    for k in freqs:
        direction = np.cos(2 * np.pi * k * phase / p)
        direction -= direction.mean(axis=2, keepdims=True)
        norm2 = float((direction**2).sum())
        alphas.append(float((direction * centred).sum()) / norm2)
        explained += alphas[-1] ** 2 * norm2
    total = float((centred**2).sum())
    return LogitFit(freqs=tuple(freqs), alpha=np.array(alphas), explained=explained / total if total > 0 else float("nan"))


# ---- losses and sparsity ---------------------------------------------------------------------------
def cross_entropy(logits: Float[np.ndarray, "... c"], labels: Int[np.ndarray, "..."], mask: np.ndarray | None = None) -> float:
    """Mean cross-entropy (nats) of ``logits`` against ``labels``, over the entries where ``mask`` is True (all: None)."""
    logits = np.asarray(logits, dtype=float)
    top = logits.max(axis=-1, keepdims=True)
    log_norm = np.log(np.exp(logits - top).sum(axis=-1)) + top[..., 0]
    picked = np.take_along_axis(logits, np.asarray(labels)[..., None], axis=-1)[..., 0]
    losses = log_norm - picked
    return float(losses[mask].mean() if mask is not None else losses.mean())


def accuracy(logits: Float[np.ndarray, "... c"], labels: Int[np.ndarray, "..."], mask: np.ndarray | None = None) -> float:
    """Fraction of entries whose largest logit is the label, over ``mask`` (all: None)."""
    right = np.asarray(logits).argmax(axis=-1) == np.asarray(labels)
    return float(right[mask].mean() if mask is not None else right.mean())


def gini(values: Float[np.ndarray, "n"]) -> float:
    """Gini coefficient of non-negative ``values``: ``sum |x_i - x_j| / (2 n sum x)``; 0 when all are equal, ``1 - 1/n`` when one holds everything."""
    values = np.asarray(values, dtype=float).ravel()
    if len(values) == 0 or np.any(values < 0) or not np.all(np.isfinite(values)):
        raise ValueError("gini expects a non-empty vector of finite, non-negative values (e.g. Fourier component norms)")
    total = values.sum()
    if total == 0:
        return 0.0
    ranked = np.sort(values)
    n = len(ranked)
    return float((2 * np.arange(1, n + 1) - n - 1) @ ranked / (n * total))
