"""Q-, K- and V-composition scores between heads of different layers, and their random baseline.

Framework paper, "Three kinds of composition", as corrected in its errata (the true product,
not the cyclic permutation ``||W_K^{h2} W_O^{h1} W_V^{h1} W_Q^{h2 T}||`` the original figure
used). For a writer head ``h1`` in layer ``l1`` and a reader head ``h2`` in layer ``l2 > l1``::

    score = ||L R||_F / (||L||_F ||R||_F)        L = W_OV^{h1} = W_V^{h1} W_O^{h1}

    kind  R (here, row vectors)   paper (column vectors)
    Q     W_QK^{h2}               ||W_QK^{h2 T} W_OV^{h1}|| / (||W_QK^{h2}|| ||W_OV^{h1}||)
    K     (W_QK^{h2})^T           ||W_QK^{h2}   W_OV^{h1}|| / (...)
    V     W_OV^{h2}               ||W_OV^{h2}   W_OV^{h1}|| / (...)

(``W_QK = W_Q W_K^T``, ``W_OV = W_V W_O``; transposes do not change Frobenius norms.) Q: the
writer's output is read by the reader's queries (``x W_OV1 W_QK2 y^T``); K: by its keys
(``x W_QK2 (y W_OV1)^T``); V: by its values (``x W_OV1 W_OV2``). This is what TransformerLens's
``utilities.composition_scores(OV, QK | QK.T | OV)`` computes; scores are raw (no baseline
subtracted) and use the folded weights of :func:`circuits.analysis.weights.processing.folded_weights`.

Computation: ``||L R||_F^2 = <L^T L, R R^T>_F``. Each head's ``d_model x d_model`` Gram matrix
is formed once from its factors, its upper triangle packed, and all pairs are one matrix
product: ``d_model^2`` work per pair instead of the ``d_model d_head^2`` of multiplying
collapsed factors, and no ``[pairs, d_head, d_head]`` intermediate.
"""

from __future__ import annotations

import re

import torch
from jaxtyping import Float
from torch import Tensor

from circuits.model import Transformer
from circuits.analysis.weights.processing import FoldedWeights, folded_weights
from circuits.analysis.weights.qkov import head_ranges

__all__ = ["composition_scores", "composition_score", "composition_baseline", "COMPOSITION_KINDS"]

COMPOSITION_KINDS = ("Q", "K", "V")


def composition_scores(model: Transformer, kind: str) -> Float[Tensor, "layer head layer head"]:
    """Raw ``kind``-composition scores ``[l1, h1, l2, h2]`` of writer ``L{l1}H{h1}`` into reader ``L{l2}H{h2}``.

    ``kind`` is ``"Q"``, ``"K"`` or ``"V"`` (see the module docstring for the formulas). Entries
    with ``l1 >= l2`` are 0 (a head cannot read what a head of its own or a later layer writes).
    Compare with :func:`composition_baseline` (about ``1/sqrt(d_model)`` for random weights).
    Labels: ``circuits.analysis.weights.qkov.head_label_grid(model)`` for both head axes.
    """
    _check_kind(kind)
    head_ranges(model, None, None)
    w = folded_weights(model)
    cfg = model.config
    L, H, D = cfg.n_layers, cfg.n_heads, cfg.d_model
    dtype = w.W_E.dtype
    out = torch.zeros(L, H, L, H, dtype=dtype, device=w.W_E.device)
    if L < 2:
        return out
    rows, cols = torch.triu_indices(D, D, device=w.W_E.device)
    flat = rows * D + cols
    weight = torch.where(rows == cols, 1.0, 2.0).to(dtype)  # off-diagonal entries count twice in <G, H>_F

    writer_A, writer_B = w.W_V[:-1], w.W_O[:-1]  # writers: layers 0 .. L-2
    G = torch.stack([_packed_gram_left(writer_A[l], writer_B[l], flat) for l in range(L - 1)]) * weight  # [l1, h1, P]
    norm_L = torch.stack([_norm_sq(writer_A[l], writer_B[l]) for l in range(L - 1)])  # [l1, h1]
    for l2 in range(1, L):
        A, B = _reader_factors(w, l2, kind)
        Hm = _packed_gram_right(A, B, flat)  # [h2, P]
        norm_R = _norm_sq(A, B)  # [h2]
        prod = G[:l2].reshape(l2 * H, -1) @ Hm.T  # [l1 * h1, h2] = ||L R||^2
        score_sq = prod.reshape(l2, H, H).clamp_min(0) / (norm_L[:l2, :, None] * norm_R[None, None, :])
        out[:l2, :, l2] = score_sq.sqrt()
    return out


def composition_score(model: Transformer, kind: str, writer: str | tuple[int, int], reader: str | tuple[int, int]) -> float:
    """The ``kind``-composition score of one pair, e.g. ``composition_score(model, "K", "L0H1", "L1H2")`` (virtual head ``L0H1->L1H2``).

    Heads are labels ``"L{layer}H{head}"`` or ``(layer, head)`` tuples. Raises ``ValueError`` unless
    the writer's layer is earlier than the reader's (heads of one layer read the same residual
    stream and cannot compose).
    """
    _check_kind(kind)
    l1, h1 = _parse_head(model, writer, "writer")
    l2, h2 = _parse_head(model, reader, "reader")
    if l1 >= l2:
        raise ValueError(
            f"composition_score: writer L{l1}H{h1} is not in an earlier layer than reader L{l2}H{h2}; heads compose only "
            "across layers (a head reads the residual stream before its own layer writes to it)"
        )
    w = folded_weights(model)
    A2, B2 = _reader_factors(w, l2, kind)
    return float(_pair_scores(w.W_V[l1, h1], w.W_O[l1, h1], A2[h2], B2[h2]))


def composition_baseline(model: Transformer, kind: str, *, n_samples: int = 1000, seed: int = 0) -> tuple[float, float]:
    """``(mean, std)`` of the ``kind``-composition score between two independent random heads of this model's shapes.

    Each sample draws the writer's ``W_V [d_model, d_head]``, ``W_O [d_head, d_model]`` and the
    reader's factors from the model's initialisation (``Normal(0, init_range)``; the score is
    scale-free, so only the shapes and the Gaussian law matter), centred over ``d_model`` as
    folding centres them for LayerNorm models, and computes the score exactly as
    :func:`composition_scores` does. Deterministic in ``seed`` (a ``torch.Generator``). The
    sample standard deviation is that of single scores (the standard error of the mean is
    ``std / sqrt(n_samples)``).
    """
    _check_kind(kind)
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 2:
        raise ValueError(f"composition_baseline: n_samples must be an int >= 2, got {n_samples!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"composition_baseline: seed must be an int, got {seed!r}")
    cfg = model.config
    D, d, std = cfg.d_model, cfg.d_head_, cfg.init_range_
    centre = cfg.normalization == "layernorm"
    generator = torch.Generator(device="cpu").manual_seed(seed)
    scores = []
    for start in range(0, n_samples, 64):
        n = min(64, n_samples - start)

        def draw(*shape: int) -> Tensor:
            return torch.randn((n, *shape), generator=generator, dtype=torch.float64) * std

        def reader(x: Tensor) -> Tensor:  # [n, d_model, d_head], centred over d_model like a folded reading weight
            return x - x.mean(1, keepdim=True) if centre else x

        V1, O1 = reader(draw(D, d)), draw(d, D)
        if centre:
            O1 = O1 - O1.mean(-1, keepdim=True)
        if kind == "V":
            V2, O2 = reader(draw(D, d)), draw(d, D)
            if centre:
                O2 = O2 - O2.mean(-1, keepdim=True)
            A2, B2 = V2, O2
        else:
            Q2, K2 = reader(draw(D, d)), reader(draw(D, d))
            A2, B2 = (Q2, K2.transpose(-2, -1)) if kind == "Q" else (K2, Q2.transpose(-2, -1))
        scores.append(_pair_scores(V1, O1, A2, B2))
    all_scores = torch.cat(scores)
    return float(all_scores.mean()), float(all_scores.std())


# ---- internals -------------------------------------------------------------------------------


def _parse_head(model: Transformer, head: object, role: str) -> tuple[int, int]:
    match = re.fullmatch(r"L(\d+)H(\d+)", head) if isinstance(head, str) else None
    if match is not None:
        layer, index = int(match.group(1)), int(match.group(2))
    elif isinstance(head, tuple) and len(head) == 2 and all(isinstance(i, int) and not isinstance(i, bool) for i in head):
        layer, index = head
    else:
        raise ValueError(f"{role} must be a head label like 'L1H2' or a (layer, head) tuple, got {head!r}")
    head_ranges(model, layer, index)
    return layer, index


def _check_kind(kind: object) -> None:
    if kind not in COMPOSITION_KINDS:
        raise ValueError(f"composition kind must be one of 'Q', 'K', 'V' (which input of the later head reads), got {kind!r}")


def _reader_factors(w: FoldedWeights, layer: int, kind: str) -> tuple[Tensor, Tensor]:
    """``(A, B)`` with ``R = A B`` for the reader heads of ``layer``: ``[head, d_model, d_head]``, ``[head, d_head, d_model]``."""
    if kind == "Q":
        return w.W_Q[layer], w.W_K[layer].transpose(-2, -1)
    if kind == "K":
        return w.W_K[layer], w.W_Q[layer].transpose(-2, -1)
    return w.W_V[layer], w.W_O[layer]


def _packed_gram_left(A: Tensor, B: Tensor, flat: Tensor) -> Tensor:
    """Upper triangle of ``(AB)^T (AB) = B^T (A^T A) B`` per head, ``[head, P]``."""
    gram = B.transpose(-2, -1) @ ((A.transpose(-2, -1) @ A) @ B)
    return gram.flatten(-2)[..., flat]


def _packed_gram_right(A: Tensor, B: Tensor, flat: Tensor) -> Tensor:
    """Upper triangle of ``(AB)(AB)^T = A (B B^T) A^T`` per head, ``[head, P]``."""
    gram = A @ ((B @ B.transpose(-2, -1)) @ A.transpose(-2, -1))
    return gram.flatten(-2)[..., flat]


def _norm_sq(A: Tensor, B: Tensor) -> Tensor:
    """``||AB||_F^2 = <A^T A, B B^T>_F`` per head, from ``d_head x d_head`` matrices."""
    return ((A.transpose(-2, -1) @ A) * (B @ B.transpose(-2, -1))).sum((-2, -1))


def _pair_scores(A1: Tensor, B1: Tensor, A2: Tensor, B2: Tensor) -> Tensor:
    """``||A1 B1 A2 B2|| / (||A1 B1|| ||A2 B2||)`` for a batch of independent pairs, via ``d_head``-sized products."""
    M1 = A1.transpose(-2, -1) @ A1  # [n, d, d]
    N2 = B2 @ B2.transpose(-2, -1)
    P = B1 @ A2  # [n, d, d]
    num = ((M1 @ P) * (P @ N2)).sum((-2, -1))  # trace(M1 P N2 P^T)
    return (num.clamp_min(0) / (_norm_sq(A1, B1) * _norm_sq(A2, B2))).sqrt()
