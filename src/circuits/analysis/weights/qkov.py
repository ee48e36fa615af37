"""Per-head QK and OV circuits, read straight from the weights (Framework paper, "Splitting attention head terms into circuits").

Orientation (row vectors, as TransformerLens; the paper writes the transposes):

=================== ===================================== =============================== ==========================
circuit             here                                  paper                           axes
=================== ===================================== =============================== ==========================
``W_QK``            ``W_Q W_K^T``                         ``W_Q^T W_K``                   ``[d_model, d_model]``
``W_OV``            ``W_V W_O``                           ``W_O W_V``                     ``[d_model, d_model]``
full QK             ``W_E W_QK W_E^T``                    ``W_E^T W_QK W_E``              ``[query_token, key_token]``
full OV             ``W_E W_OV W_U``                      ``W_U W_OV W_E``                ``[input_token, output_token]``
positional QK       ``W_pos W_QK W_pos^T``                ``W_pos^T W_QK W_pos``          ``[query_pos, key_pos]``
direct path         ``W_E W_U``                           ``W_U W_E``                     ``[input_token, output_token]``
=================== ===================================== =============================== ==========================

Every circuit is a ``transformer_lens.FactoredMatrix`` (never a dense ``d_vocab x d_vocab``
matrix) computed from :func:`circuits.analysis.weights.processing.folded_weights`: for models with normalization
the norm gains are folded in (and LayerNorm readers centred) automatically, the normalization
scale is left out (a per-position reweighting of paths, as in the paper), and biases are not
part of these bilinear forms. QK circuits are attention *logits before* the ``1/sqrt(d_head)``
scale (as in TransformerLens).

Selection: ``layer`` and ``head`` are ints, or ``None`` for all of them; each ``None`` keeps its
axis, so ``full_ov_circuit(model, None, None)`` is ``[layer, head, d_vocab, d_vocab_out]`` and
``full_ov_circuit(model, 1, None)`` is ``[head, d_vocab, d_vocab_out]``. Labels for the kept
axes come from :func:`head_label_grid` (``labels[layer][head]``). Grouped-query attention: ``W_K``/``W_V`` are those of the
key/value head each query head reads.

Schemes where a circuit is not one matrix raise ``ValueError`` with the reason: rotary QK
depends on the query-key offset (use :func:`rotary_qk_circuit`); ALiBi and rotary models have
no position embedding to form a positional QK circuit. With smeared keys
(``smear_key=True``) the key at position ``j`` is ``s k_j + (1 - s) k_{j-1}`` with
``s = sigmoid(alpha)``: the full QK circuit is the score before that mix.
"""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens import FactoredMatrix

from circuits.model import Transformer
from circuits.analysis.weights.processing import FoldedWeights, folded_weights

__all__ = [
    "head_label_grid",
    "qk_circuit",
    "ov_circuit",
    "full_qk_circuit",
    "full_ov_circuit",
    "positional_qk_circuit",
    "rotary_qk_circuit",
    "rotation_matrix",
    "direct_path",
    "head_ranges",
    "head_index",
    "require_token_qk",
    "require_vocabulary",
]


def head_label_grid(model: Transformer) -> list[list[str]]:
    """``labels[layer][head] == f"L{layer}H{head}"``, matching the ``[layer, head]`` axes of every per-head result."""
    cfg = model.config
    return [[f"L{l}H{h}" for h in range(cfg.n_heads)] for l in range(cfg.n_layers)]


def qk_circuit(model: Transformer, layer: int | None = None, head: int | None = None) -> FactoredMatrix:
    """``W_QK = W_Q W_K^T`` ``[*selection, d_model, d_model]`` (paper ``W_Q^T W_K``); rows read the query side."""
    w = _weights(model, layer, head)
    idx = head_index(model, layer, head)
    return FactoredMatrix(w.W_Q[idx], w.W_K[idx].transpose(-2, -1))


def ov_circuit(model: Transformer, layer: int | None = None, head: int | None = None) -> FactoredMatrix:
    """``W_OV = W_V W_O`` ``[*selection, d_model, d_model]`` (paper ``W_O W_V``); rows read the source, columns are written."""
    w = _weights(model, layer, head)
    idx = head_index(model, layer, head)
    return FactoredMatrix(w.W_V[idx], w.W_O[idx])


def full_qk_circuit(model: Transformer, layer: int | None, head: int | None) -> FactoredMatrix:
    """Full QK circuit ``W_E W_QK W_E^T`` ``[*selection, query_token, key_token]`` (paper ``W_E^T W_QK W_E``).

    Entry ``[a, b]`` is the attention logit (before ``1/sqrt(d_head)``) of a query on token
    ``a`` for a key on token ``b``, through the direct token path, on folded weights (see the
    module docstring). Rotary models raise ``ValueError`` (use :func:`rotary_qk_circuit`).
    """
    require_vocabulary(model, "full_qk_circuit")
    require_token_qk(model, "full_qk_circuit")
    w = _weights(model, layer, head)
    idx = head_index(model, layer, head)
    return FactoredMatrix(w.W_E @ w.W_Q[idx], w.W_K[idx].transpose(-2, -1) @ w.W_E.T)


def full_ov_circuit(model: Transformer, layer: int | None, head: int | None) -> FactoredMatrix:
    """Full OV circuit ``W_E W_OV W_U`` ``[*selection, input_token, output_token]`` (paper ``W_U W_OV W_E``).

    Entry ``[a, c]`` is how much attending to a source token ``a`` raises the logit of output
    token ``c`` (direct path through the unembedding, folded weights).
    """
    require_vocabulary(model, "full_ov_circuit")
    w = _weights(model, layer, head)
    idx = head_index(model, layer, head)
    return FactoredMatrix(w.W_E @ w.W_V[idx], w.W_O[idx] @ w.W_U)


def positional_qk_circuit(model: Transformer, layer: int | None, head: int | None) -> FactoredMatrix:
    """Positional QK circuit ``W_pos W_QK W_pos^T`` ``[*selection, query_pos, key_pos]`` (paper ``W_pos^T W_QK W_pos``).

    Defined for models with a position embedding matrix: ``learned`` and ``sinusoidal``
    (positions in the residual stream; folded ``W_Q``/``W_K``) and ``shortformer`` (positions
    added to the query/key input after ``ln1``; raw ``W_Q``/``W_K``). Other schemes raise
    ``ValueError``: rotary and ALiBi act inside attention and have no ``W_pos``.
    """
    why = model.positional.positional_qk_missing
    if why is not None:
        raise ValueError(f"positional_qk_circuit: not defined for positional={model.config.positional!r}: {why}")
    w = _weights(model, layer, head)
    idx = head_index(model, layer, head)
    return FactoredMatrix(w.W_pos @ w.W_Q_pos[idx], w.W_K_pos[idx].transpose(-2, -1) @ w.W_pos.T)


def rotation_matrix(model: Transformer, offset: int) -> Float[Tensor, "d_head d_head"]:
    """The rotary map for a query-key offset: ``rot(x, p) = x @ R(p)``, and ``R(p) R(p')^T = R(p - p')``.

    The model's layout: the first ``rotary_dim`` channels form pairs ``(i, i + rotary_dim/2)``
    rotated by ``offset * base^(-2i/rotary_dim)``; the other channels pass through.
    """
    cfg = model.config
    if not model.positional.rotates_qk:
        raise ValueError(f"rotation_matrix: the model has positional={cfg.positional!r}, not 'rotary'")
    if isinstance(offset, bool) or not isinstance(offset, int):
        raise TypeError(f"offset must be an int (query_pos - key_pos), got {offset!r}")
    rd, d_head = cfg.rotary_dim_, cfg.d_head_
    inv_freq = cfg.rotary_base ** (-torch.arange(0, rd, 2, dtype=torch.float64) / rd)
    angle = offset * inv_freq
    cos, sin = angle.cos(), angle.sin()
    R = torch.eye(d_head, dtype=torch.float64)
    half = rd // 2
    i = torch.arange(half)
    # x1' = x1 cos - x2 sin ; x2' = x2 cos + x1 sin   (x1 = channel i, x2 = channel i + half)
    R[i, i] = cos
    R[i + half, i + half] = cos
    R[i + half, i] = -sin
    R[i, i + half] = sin
    return R.to(model.W_E.dtype)


def rotary_qk_circuit(model: Transformer, layer: int | None, head: int | None, offset: int) -> FactoredMatrix:
    """Full QK circuit of a rotary model at a fixed offset ``query_pos - key_pos``.

    ``W_E W_Q R(offset) W_K^T W_E^T`` ``[*selection, query_token, key_token]``: with rotary
    embeddings a query at ``p`` and a key at ``p'`` interact through ``R(p) R(p')^T = R(p - p')``,
    so there is one circuit per offset, not one matrix (hence :func:`full_qk_circuit` raises).
    """
    if not model.positional.rotates_qk:
        raise ValueError(
            f"rotary_qk_circuit: the model has positional={model.config.positional!r}; use full_qk_circuit for non-rotary models"
        )
    w = _weights(model, layer, head)
    idx = head_index(model, layer, head)
    R = rotation_matrix(model, offset)
    return FactoredMatrix(w.W_E @ (w.W_Q[idx] @ R), w.W_K[idx].transpose(-2, -1) @ w.W_E.T)


def direct_path(model: Transformer) -> FactoredMatrix:
    """The direct path ``W_E W_U`` ``[input_token, output_token]`` (paper ``W_U W_E``; zero-layer model's bigram table).

    In models with MLPs this is only the embed-to-unembed term; folded ``ln_final``.
    """
    require_vocabulary(model, "direct_path")
    w = folded_weights(model)
    return FactoredMatrix(w.W_E, w.W_U)


# ---- selection and checks, shared with eigen/composition/trigrams --------------------------------


def _weights(model: Transformer, layer: int | None, head: int | None) -> FoldedWeights:
    head_ranges(model, layer, head)  # validates before any work
    return folded_weights(model)


def _check_index(name: str, value: int | None, size: int, what: str) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int or None (all {what}s), got {value!r}")
    if not 0 <= value < size:
        raise ValueError(f"{name}={value} is out of range: the model has {size} {what}s (valid: 0..{size - 1})")


def head_ranges(model: Transformer, layer: int | None, head: int | None) -> tuple[range, range]:
    """The selected ``(layers, heads)`` as ranges (``None`` = all), after checking the model and the indices."""
    if not isinstance(model, Transformer):
        raise TypeError(f"expected a circuits.Transformer, got {type(model).__name__}")
    cfg = model.config
    if cfg.n_layers == 0:
        raise ValueError("this model has n_layers=0: it has no attention heads (use circuits.direct_path for its circuit)")
    _check_index("layer", layer, cfg.n_layers, "layer")
    _check_index("head", head, cfg.n_heads, "head")
    layers = range(cfg.n_layers) if layer is None else range(layer, layer + 1)
    heads = range(cfg.n_heads) if head is None else range(head, head + 1)
    return layers, heads


def head_index(model: Transformer, layer: int | None, head: int | None) -> tuple[int | slice, int | slice]:
    """Index into the ``[layer, head]`` axes of stacked weights for a selection (``None`` keeps the axis)."""
    return (slice(None) if layer is None else layer, slice(None) if head is None else head)


def require_token_qk(model: Transformer, what: str) -> None:
    """Raise ``ValueError`` when the model has no single token QK matrix ``W_E W_QK W_E^T`` (rotary), saying why."""
    why = model.positional.token_qk_missing
    if why is not None:
        raise ValueError(f"{what}: {why}")


def require_vocabulary(model: Transformer, what: str) -> None:
    """Raise ``ValueError`` when the model reads no token vocabulary (image patches), saying why."""
    why = model.input.vocabulary_missing
    if why is not None:
        raise ValueError(f"{what}: {why}")
