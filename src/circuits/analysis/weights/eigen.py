"""Eigenvalue and diagonal statistics of the full circuits: copying, same-matching, the induction eigen-corner.

Positivity of a square matrix ``M`` is ``sum(eigenvalues) / sum(|eigenvalues|)`` in ``[-1, 1]``
(Framework paper, "Detecting Copying Behavior"): +1 when every eigenvalue is positive (the
matrix maps each token set onto itself: copying for OV, same-matching for QK), about 0 for
random matrices, -1 for anti-copying. It is ``nan`` for a zero matrix (0/0).

Nothing here forms a ``d_vocab x d_vocab`` matrix: the non-zero eigenvalues of ``AB`` are those
of ``BA`` (Framework paper, "Working with Low-Rank Matrices"), so for the full OV circuit
``W_E W_V W_O W_U`` we take the eigenvalues of the ``d_head x d_head`` matrix
``W_O (W_U W_E) W_V``, with the ``d_model x d_model`` product ``W_U W_E`` computed once for all
heads. Every statistic uses the folded weights of :func:`circuits.analysis.weights.processing.folded_weights`
(norm gains folded in automatically; biases and the normalization scale left out).

Diagonal accuracy is the fraction of rows whose own entry is among the top ``k`` of the row
(ties are misses; ``nan`` for a dead head, whose circuit prefers no token, or a non-finite one),
computed over chunks of rows so that at most about ``2**24`` entries exist at once.

Eigenvalues go through :func:`circuits.model.finite.checked_eigvals`: a NaN or inf in the weights
raises ``ValueError`` naming the head and the parameter (LAPACK would crash the process).
"""

from __future__ import annotations

import torch
from jaxtyping import Complex, Float
from torch import Tensor

from circuits.model import Transformer
from circuits.model.finite import checked_eigvals
from circuits.analysis.weights.processing import FoldedWeights, folded_weights
from circuits.analysis.weights.qkov import head_index, head_ranges, require_token_qk

__all__ = [
    "eigenvalue_positivity",
    "ov_eigenvalues",
    "qk_eigenvalues",
    "copying_scores",
    "qk_positivity",
    "diagonal_accuracy",
    "induction_qk_positivity",
    "prefix_matching_qk_trace",
]

#: Largest number of circuit entries diagonal_accuracy materialises at once.
_CHUNK_ELEMENTS = 2**24


def eigenvalue_positivity(eigenvalues: Complex[Tensor, "*batch n"]) -> Float[Tensor, "*batch"]:
    """``sum(lambda) / sum(|lambda|)`` over the last axis (real; the imaginary parts cancel for real matrices)."""
    eigenvalues = eigenvalues.to(torch.complex128)
    return (eigenvalues.sum(-1).real / eigenvalues.abs().sum(-1)).to(torch.float64)


def ov_eigenvalues(model: Transformer, layer: int | None = None, head: int | None = None) -> Complex[Tensor, "*selection d_head"]:
    """Eigenvalues of the full OV circuit ``W_E W_OV W_U``: those of ``W_O (W_U W_E) W_V`` (the other ``d_vocab - d_head`` are 0).

    Needs ``d_vocab_out == d_vocab`` (a square circuit); raises ``ValueError`` otherwise.
    """
    head_ranges(model, layer, head)
    _check_square(model, "ov_eigenvalues")
    w = folded_weights(model)
    idx = head_index(model, layer, head)
    middle = w.W_U @ w.W_E  # [d_model, d_model]
    return _eigvals((w.W_O[idx] @ middle) @ w.W_V[idx], model, "ov_eigenvalues", _head_namer(model, layer, head, "OV circuit"))


def qk_eigenvalues(model: Transformer, layer: int | None = None, head: int | None = None) -> Complex[Tensor, "*selection d_head"]:
    """Eigenvalues of the full QK circuit ``W_E W_QK W_E^T``: those of ``W_K^T (W_E^T W_E) W_Q``."""
    head_ranges(model, layer, head)
    require_token_qk(model, "qk_eigenvalues")
    w = folded_weights(model)
    idx = head_index(model, layer, head)
    middle = w.W_E.T @ w.W_E
    return _eigvals((w.W_K[idx].transpose(-2, -1) @ middle) @ w.W_Q[idx], model, "qk_eigenvalues", _head_namer(model, layer, head, "QK circuit"))


def copying_scores(model: Transformer) -> Float[Tensor, "layer head"]:
    """OV copying score of every head: positivity of the eigenvalues of the full OV circuit ``W_E W_OV W_U``.

    Paper form: ``sum(lambda)/sum(|lambda|)`` of ``W_U W_OV W_E`` (same eigenvalues). +1 for a
    head that maps every token onto itself, about 0 at random initialisation, -1 for a negated
    copier. Folded weights (norm gains included automatically); ``[n_layers, n_heads]``, labels
    from :func:`circuits.analysis.weights.qkov.head_label_grid`.
    """
    return eigenvalue_positivity(ov_eigenvalues(model)).to(model.W_E.dtype)


def qk_positivity(model: Transformer) -> Float[Tensor, "layer head"]:
    """Same-matching score of every head: positivity of the eigenvalues of the full QK circuit ``W_E W_QK W_E^T``."""
    return eigenvalue_positivity(qk_eigenvalues(model)).to(model.W_E.dtype)


def diagonal_accuracy(
    model: Transformer, k: int = 1, *, circuit: str = "ov", layer: int | None = None, head: int | None = None
) -> Float[Tensor, "*selection"]:
    """Fraction of input tokens whose own entry is in the top ``k`` of their row of the full circuit.

    ``circuit="ov"``: rows of ``W_E W_OV W_U`` (does attending to token ``a`` raise ``a``'s own
    logit most?); ``"qk"``: rows of ``W_E W_QK W_E^T`` (does a query on ``a`` attend most to a key
    on ``a``?). Ties count against the token (rank = number of *other* entries ``>=`` its own), so a
    row whose entries are all equal is a miss. ``nan`` (no answer) for a circuit whose every row is
    constant (a dead head, e.g. ``W_V = 0``: it prefers no token) or that has a NaN/inf entry
    (non-finite weights; :func:`circuits.model.finite.check_finite` names them). ``k`` must be in
    ``1 .. d_vocab`` (``ValueError`` otherwise). Rows are processed in chunks (never the whole
    ``d_vocab x d_vocab`` matrix). Chance level is ``k / d_vocab``.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"diagonal_accuracy: k must be a positive int, got {k!r}")
    if k > model.config.d_vocab:
        raise ValueError(
            f"diagonal_accuracy: k={k} exceeds d_vocab={model.config.d_vocab}, so every token would be in its own top k; "
            f"choose k <= {model.config.d_vocab} (k=1 asks whether the token's own entry is the largest)"
        )
    if circuit not in ("ov", "qk"):
        raise ValueError(f"diagonal_accuracy: circuit must be 'ov' or 'qk', got {circuit!r}")
    head_ranges(model, layer, head)
    w = folded_weights(model)
    idx = head_index(model, layer, head)
    if circuit == "ov":
        _check_square(model, "diagonal_accuracy(circuit='ov')")
        left, right = w.W_E @ w.W_V[idx], w.W_O[idx] @ w.W_U  # [*, d_vocab, d_head], [*, d_head, d_vocab]
    else:
        require_token_qk(model, "diagonal_accuracy(circuit='qk')")
        left, right = w.W_E @ w.W_Q[idx], w.W_K[idx].transpose(-2, -1) @ w.W_E.T
    d_vocab = left.shape[-2]
    n_circuits = left[..., 0, 0].numel()
    chunk = max(1, _CHUNK_ELEMENTS // max(1, n_circuits * right.shape[-1]))
    hits = torch.zeros(left.shape[:-2], dtype=torch.long, device=left.device)
    finite = torch.ones(left.shape[:-2], dtype=torch.bool, device=left.device)
    varies = torch.zeros_like(finite)  # some row has two different entries
    for start in range(0, d_vocab, chunk):
        rows = torch.arange(start, min(start + chunk, d_vocab), device=left.device)
        block = left[..., rows, :] @ right  # [*, chunk, d_vocab]
        own = block[..., torch.arange(len(rows)), rows]  # [*, chunk]
        rank = (block >= own[..., None]).sum(-1) - 1  # other entries at least as large: ties are misses
        hits += (rank < k).sum(-1)
        finite &= torch.isfinite(block).flatten(-2).all(-1)
        varies |= (block.amax(-1) > block.amin(-1)).any(-1)
    accuracy = hits.to(model.W_E.dtype) / d_vocab
    return torch.where(finite & varies, accuracy, torch.full_like(accuracy, float("nan")))


def induction_qk_positivity(model: Transformer) -> Float[Tensor, "layer head layer head"]:
    """The induction eigen-corner's QK axis: entry ``[l1, h1, l2, h2]`` is the positivity of the K-composition term

    ``W_E W_QK^{h2} (W_OV^{h1})^T W_E^T`` ``[query_token, key_token]`` (paper
    ``W_E^T W_QK^{h2} W_OV^{h1} W_E``): how much head ``h2`` attends to a key *whose previous
    token* (moved there by a previous-token head ``h1``) matches the query token. Induction heads
    score near +1 with their previous-token head. Computed from the ``d_head x d_head`` matrix
    ``W_K2^T W_O1^T W_V1^T (W_E^T W_E) W_Q2``. ``nan`` where ``l1 >= l2`` (no such term).
    Rotary models raise ``ValueError`` (the term depends on the offset).
    """
    head_ranges(model, None, None)
    require_token_qk(model, "induction_qk_positivity")
    w = folded_weights(model)
    cfg = model.config
    L, H = cfg.n_layers, cfg.n_heads
    out = torch.full((L, H, L, H), float("nan"), dtype=torch.float64, device=model.W_E.device)
    E = w.W_E.T @ w.W_E
    for l2 in range(1, L):
        # writers: all heads of layers < l2, readers: the heads of l2
        W_O1, W_V1 = w.W_O[:l2], w.W_V[:l2]  # [l1, h1, d_head, d_model], [l1, h1, d_model, d_head]
        OK = torch.einsum("ahdm,gme->ahgde", W_O1, w.W_K[l2])  # W_O1 W_K2 [l1, h1, h2, d, e]
        VEQ = torch.einsum("ahmd,mn,gne->ahgde", W_V1, E, w.W_Q[l2])  # W_V1^T E W_Q2
        small = OK.transpose(-2, -1) @ VEQ  # W_K2^T W_O1^T W_V1^T E W_Q2
        describe = _composition_namer(l2)
        out[:l2, :, l2] = eigenvalue_positivity(_eigvals(small, model, "induction_qk_positivity", describe))
    return out.to(model.W_E.dtype)


def prefix_matching_qk_trace(model: Transformer, previous_token_scores: Float[Tensor, "layer head"]) -> Float[Tensor, "layer head"]:
    """The In-context Learning paper's weight-based prefix-matching score ("trace of QK eigenvalues").

    For head ``h2`` in layer ``l2``: ``trace(sum_{l1 < l2, h1} s[l1, h1] W_E W_QK^{h2} (W_OV^{h1})^T W_E^T)``,
    the sum of eigenvalues of the K-composition terms weighted by each earlier head's
    previous-token score ``s`` (``previous_token_scores [n_layers, n_heads]``, e.g. from
    ``circuits.previous_token_scores``). Unnormalized (a raw trace, comparable between heads of
    one model); ``nan`` for layer 0, which has no earlier heads. Computed as
    ``<S, W_E^T W_E W_QK^{h2}>_F`` with ``S = sum s W_OV^{h1}``, never in vocabulary space.
    """
    head_ranges(model, None, None)
    require_token_qk(model, "prefix_matching_qk_trace")
    cfg = model.config
    if not isinstance(previous_token_scores, Tensor) or tuple(previous_token_scores.shape) != (cfg.n_layers, cfg.n_heads):
        shape = tuple(previous_token_scores.shape) if isinstance(previous_token_scores, Tensor) else type(previous_token_scores).__name__
        raise ValueError(
            f"previous_token_scores must be a tensor [n_layers, n_heads] = [{cfg.n_layers}, {cfg.n_heads}] "
            f"(one score per head, e.g. circuits.previous_token_scores(...)), got {shape}"
        )
    if not previous_token_scores.dtype.is_floating_point or not bool(torch.isfinite(previous_token_scores).all()):
        raise ValueError("previous_token_scores must hold finite floating-point values")
    w = folded_weights(model)
    s = previous_token_scores.to(device=w.W_E.device, dtype=w.W_E.dtype)
    E = w.W_E.T @ w.W_E
    out = torch.full((cfg.n_layers, cfg.n_heads), float("nan"), dtype=w.W_E.dtype, device=w.W_E.device)
    for l2 in range(1, cfg.n_layers):
        S = torch.einsum("ah,ahmd,ahdn->mn", s[:l2], w.W_V[:l2], w.W_O[:l2])  # weighted sum of OV [d_model, d_model]
        # trace(W_E QK2 S^T W_E^T) = trace(W_K2^T S^T E W_Q2)
        out[l2] = _trace_scores(E, S, w, l2)
    return out


def _trace_scores(E: Tensor, S: Tensor, w: FoldedWeights, l2: int) -> Tensor:
    """``trace(W_K^T S^T E W_Q)`` for each head of layer ``l2``."""
    SE = S.T @ E  # [d_model, d_model]
    return torch.einsum("gmd,mn,gnd->g", w.W_K[l2], SE, w.W_Q[l2])


def _eigvals(small: Tensor, model: Transformer, what: str, describe) -> Tensor:
    """Eigenvalues in float64; ``ValueError`` naming the head (not a crash inside LAPACK) if a matrix is not finite."""
    return checked_eigvals(small, describe, what, model)


def _head_namer(model: Transformer, layer: int | None, head: int | None, circuit: str):
    """``batch index -> "the OV circuit of head L{l}H{h}"`` for a ``(layer, head)`` selection of :func:`head_index`."""

    def describe(index: tuple[int, ...]) -> str:
        rest = list(index)
        l = layer if layer is not None else (rest.pop(0) if rest else 0)
        h = head if head is not None else (rest.pop(0) if rest else 0)
        return f"the {circuit} of head L{l}H{h}"

    return describe


def _composition_namer(l2: int):
    """``(l1, h1, h2) -> "the K-composition term L{l1}H{h1} -> L{l2}H{h2}"``."""
    return lambda index: f"the K-composition term L{index[0]}H{index[1]} -> L{l2}H{index[2]}"


def _check_square(model: Transformer, what: str) -> None:
    cfg = model.config
    if cfg.d_vocab_out_ != cfg.d_vocab:
        raise ValueError(
            f"{what}: the full OV circuit is {cfg.d_vocab} x {cfg.d_vocab_out_} (d_vocab_out != d_vocab), so it has no "
            "diagonal or eigenvalues; copying statistics need the same input and output vocabulary"
        )
