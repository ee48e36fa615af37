"""Stacked weight views on the model, as TransformerLens users expect (``model.W_Q``, ``model.OV``, ...).

Each view stacks one parameter over layers: ``W_Q [layer, head, d_model, d_head]``, and so on.
Key/value weights are expanded to query heads for grouped-query attention, so that
``W_K[l, h]`` is the key weight query head ``h`` actually uses. Biases that a model does not have
(``use_bias=False``) read as zeros of the right shape: the computation is exactly the same.
"""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens import FactoredMatrix


class StackedWeightsMixin:
    """Adds the stacked views to :class:`circuits.Transformer` (the model only computes; these only read)."""

    def _stack(self, get, empty_shape: tuple[int, ...]) -> Tensor:
        items = [get(block) for block in self.blocks]
        if not items:
            ref = self.embed.W_E
            return torch.empty((0, *empty_shape), device=ref.device, dtype=ref.dtype)
        return torch.stack(items)

    def _attn_stack(self, name: str, shape: tuple[int, ...], expand: bool = False) -> Tensor:
        def get(block):
            value = getattr(block.attn, name)
            if value is None:
                value = torch.zeros(shape, device=self.embed.W_E.device, dtype=self.embed.W_E.dtype)
            elif expand:
                value = _expand_heads(block.attn, value)
            return value

        return self._stack(get, shape)

    # ---- embeddings ------------------------------------------------------------------------
    @property
    def W_E(self) -> Float[Tensor, "d_vocab d_model"]:
        return self.embed.W_E

    @property
    def W_pos(self) -> Float[Tensor, "n_ctx d_model"]:
        if self.pos_embed is None:
            raise AttributeError(
                f"this model has positional={self.config.positional!r}, which has no position embedding matrix W_pos"
            )
        return self.pos_embed.W_pos

    @property
    def W_U(self) -> Float[Tensor, "d_model d_vocab_out"]:
        return self.unembed.W_U

    @property
    def b_U(self) -> Float[Tensor, "d_vocab_out"]:
        b = self.unembed.b_U
        return torch.zeros(self.config.d_vocab_out_, device=self.W_E.device, dtype=self.W_E.dtype) if b is None else b

    # ---- attention -------------------------------------------------------------------------
    @property
    def W_Q(self) -> Float[Tensor, "layer head d_model d_head"]:
        c = self.config
        return self._attn_stack("W_Q", (c.n_heads, c.d_model, c.d_head_))

    @property
    def W_K(self) -> Float[Tensor, "layer head d_model d_head"]:
        c = self.config
        return self._attn_stack("W_K", (c.n_heads, c.d_model, c.d_head_), expand=True)

    @property
    def W_V(self) -> Float[Tensor, "layer head d_model d_head"]:
        c = self.config
        return self._attn_stack("W_V", (c.n_heads, c.d_model, c.d_head_), expand=True)

    @property
    def W_O(self) -> Float[Tensor, "layer head d_head d_model"]:
        c = self.config
        return self._attn_stack("W_O", (c.n_heads, c.d_head_, c.d_model))

    @property
    def b_Q(self) -> Float[Tensor, "layer head d_head"]:
        c = self.config
        return self._attn_stack("b_Q", (c.n_heads, c.d_head_))

    @property
    def b_K(self) -> Float[Tensor, "layer head d_head"]:
        c = self.config
        return self._attn_stack("b_K", (c.n_heads, c.d_head_), expand=True)

    @property
    def b_V(self) -> Float[Tensor, "layer head d_head"]:
        c = self.config
        return self._attn_stack("b_V", (c.n_heads, c.d_head_), expand=True)

    @property
    def b_O(self) -> Float[Tensor, "layer d_model"]:
        return self._attn_stack("b_O", (self.config.d_model,))

    @property
    def QK(self) -> FactoredMatrix:
        """``W_QK = W_Q W_K^T`` per head, ``[layer, head, d_model, d_model]`` (paper: ``W_Q^T W_K``).

        Row index = query-side residual direction, column = key-side (Framework paper,
        "Splitting attention head terms into circuits").
        """
        return FactoredMatrix(self.W_Q, self.W_K.transpose(-2, -1))

    @property
    def OV(self) -> FactoredMatrix:
        """``W_OV = W_V W_O`` per head, ``[layer, head, d_model, d_model]`` (paper: ``W_O W_V``).

        Row index = residual direction read at the source, column = direction written.
        """
        return FactoredMatrix(self.W_V, self.W_O)

    # ---- MLP -------------------------------------------------------------------------------
    def _mlp_stack(self, name: str, shape: tuple[int, ...]) -> Tensor:
        if self.config.attn_only:
            raise AttributeError(f"{name} is not defined: this model is attention-only (attn_only=True)")

        def get(block):
            value = getattr(block.mlp, name)
            return torch.zeros(shape, device=self.W_E.device, dtype=self.W_E.dtype) if value is None else value

        return self._stack(get, shape)

    @property
    def W_in(self) -> Float[Tensor, "layer d_model d_mlp"]:
        return self._mlp_stack("W_in", (self.config.d_model, self.config.d_mlp_))

    @property
    def W_out(self) -> Float[Tensor, "layer d_mlp d_model"]:
        return self._mlp_stack("W_out", (self.config.d_mlp_, self.config.d_model))

    @property
    def b_in(self) -> Float[Tensor, "layer d_mlp"]:
        return self._mlp_stack("b_in", (self.config.d_mlp_,))

    @property
    def b_out(self) -> Float[Tensor, "layer d_model"]:
        return self._mlp_stack("b_out", (self.config.d_model,))


def _expand_heads(attn, value: Tensor) -> Tensor:
    """Expand a key/value-head parameter (head axis first) to one entry per query head."""
    if attn.n_kv_heads == attn.n_heads:
        return value
    return value.repeat_interleave(attn.n_heads // attn.n_kv_heads, dim=0)
