"""Small dense views of the factored circuits of :mod:`circuits.analysis.weights.qkov`, for figures and tables.

A full QK or OV circuit is ``d_vocab x d_vocab`` and is kept factored; what a figure shows is a
block of it (the most frequent tokens on both axes) or, for the positional QK circuit, the
attention pattern it alone would produce. Both are computed here without forming the full matrix.
"""

from __future__ import annotations

import math

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import FactoredMatrix

from circuits.model import Transformer
from circuits.analysis.weights.qkov import positional_qk_circuit

__all__ = ["token_block", "has_position_table", "positional_attention"]


def token_block(circuit: FactoredMatrix, tokens: Int[Tensor, "n"]) -> Float[Tensor, "*selection n n"]:
    """Rows and columns ``tokens`` (the same ids, in the same order, on both axes) of a factored ``[..., d_vocab, d_vocab]`` circuit, dense.

    Row ``i``, column ``j`` is ``circuit[..., tokens[i], tokens[j]]`` (``A[..., tokens, :] @ B[..., :, tokens]``),
    so the block's diagonal is each token with itself: a copying head's positive diagonal in the full OV circuit.
    """
    if tokens.ndim != 1:
        raise ValueError(f"tokens must be a 1-D tensor of token ids, got shape {tuple(tokens.shape)}")
    n_rows, n_cols = circuit.A.shape[-2], circuit.B.shape[-1]
    if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= min(n_rows, n_cols)):
        raise ValueError(f"token ids must be in [0, {min(n_rows, n_cols)}) for a [{n_rows}, {n_cols}] circuit")
    return circuit.A[..., tokens, :] @ circuit.B[..., :, tokens]


def has_position_table(model: Transformer) -> bool:
    """True when the model has a positional QK circuit (a position table ``W_pos``), i.e. :func:`positional_attention` is defined."""
    return model.positional.positional_qk_missing is None


def positional_attention(model: Transformer, layer: int, n_pos: int) -> Float[Tensor, "head query_pos key_pos"]:
    """The attention each head of ``layer`` would pay if all tokens were equal, on the first ``n_pos`` positions.

    ``softmax(W_pos W_QK W_pos^T / sqrt(d_head))`` (paper ``W_pos^T W_QK W_pos``) under the causal
    mask, from :func:`circuits.analysis.weights.qkov.positional_qk_circuit`; a previous-token head
    shows the sub-diagonal. Defined when :func:`has_position_table` (``ValueError`` otherwise).
    """
    cfg = model.config
    if not 1 <= n_pos <= cfg.n_ctx:
        raise ValueError(f"n_pos={n_pos!r} must be in [1, n_ctx={cfg.n_ctx}]")
    circuit = positional_qk_circuit(model, layer, None)
    scores = (circuit.A[:, :n_pos] @ circuit.B[:, :, :n_pos]) / math.sqrt(cfg.d_head)
    causal = torch.ones(n_pos, n_pos, dtype=torch.bool, device=scores.device).tril()
    return scores.masked_fill(~causal, float("-inf")).softmax(-1)
