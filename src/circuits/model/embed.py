"""Token, position and token-type embeddings, and the unembedding.

Orientation as in TransformerLens: ``W_E [d_vocab, d_model]`` maps a token to a residual vector
(paper: ``W_E`` is ``d_model x n_vocab``, the transpose), ``W_U [d_model, d_vocab_out]`` maps the
residual stream to logits.
"""

from __future__ import annotations

import math

import einops
import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor, nn

from circuits.model._hooks import affine


class Embed(nn.Module):
    W_E: Float[Tensor, "d_vocab d_model"]

    def __init__(self, d_vocab: int, d_model: int):
        super().__init__()
        self.W_E = nn.Parameter(torch.empty(d_vocab, d_model))

    def forward(self, tokens: Int[Tensor, "batch pos"]) -> Float[Tensor, "batch pos d_model"]:
        # F.embedding, not W_E[tokens]: same values, and its backward is a dense scatter-add that
        # ran ~6x faster in training here than indexing's accumulate-put.
        return F.embedding(tokens, self.W_E)


class PosEmbed(nn.Module):
    """Learned absolute positions ``W_pos [n_ctx, d_model]``; output expanded to the batch (TransformerLens needs the batch axis)."""

    W_pos: Float[Tensor, "n_ctx d_model"]

    def __init__(self, n_ctx: int, d_model: int):
        super().__init__()
        self.W_pos = nn.Parameter(torch.empty(n_ctx, d_model))

    def forward(self, tokens: Int[Tensor, "batch pos"]) -> Float[Tensor, "batch pos d_model"]:
        batch, pos = tokens.shape
        return self.W_pos[:pos].unsqueeze(0).expand(batch, pos, -1)


class SinusoidalPosEmbed(nn.Module):
    """Fixed sinusoids of Vaswani et al.: ``W_pos[p, 2i] = sin(p / 10000^(2i/d))``, ``W_pos[p, 2i+1] = cos(...)``."""

    W_pos: Float[Tensor, "n_ctx d_model"]

    def __init__(self, n_ctx: int, d_model: int):
        super().__init__()
        self.register_buffer("W_pos", sinusoids(n_ctx, d_model), persistent=False)

    def forward(self, tokens: Int[Tensor, "batch pos"]) -> Float[Tensor, "batch pos d_model"]:
        batch, pos = tokens.shape
        return self.W_pos[:pos].unsqueeze(0).expand(batch, pos, -1)


def sinusoids(n_ctx: int, d_model: int) -> Float[Tensor, "n_ctx d_model"]:
    position = torch.arange(n_ctx, dtype=torch.float64)[:, None]
    freq = torch.exp(-math.log(10000.0) * torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)
    table = torch.zeros(n_ctx, d_model, dtype=torch.float64)
    table[:, 0::2] = torch.sin(position * freq)
    table[:, 1::2] = torch.cos(position * freq[: d_model // 2])
    return table.float()


class TokenTypeEmbed(nn.Module):
    """BERT's segment embeddings ``W_token_type [n_token_types, d_model]`` (type 0 when none is given)."""

    W_token_type: Float[Tensor, "n_token_types d_model"]

    def __init__(self, n_token_types: int, d_model: int):
        super().__init__()
        self.W_token_type = nn.Parameter(torch.empty(n_token_types, d_model))

    def forward(self, token_type_ids: Int[Tensor, "batch pos"]) -> Float[Tensor, "batch pos d_model"]:
        return self.W_token_type[token_type_ids]


class Unembed(nn.Module):
    """``logits = resid @ W_U (+ b_U)``."""

    W_U: Float[Tensor, "d_model d_vocab_out"]

    def __init__(self, d_model: int, d_vocab_out: int, use_bias: bool):
        super().__init__()
        self.W_U = nn.Parameter(torch.empty(d_model, d_vocab_out))
        self.b_U = nn.Parameter(torch.zeros(d_vocab_out)) if use_bias else None

    def forward(self, resid: Float[Tensor, "*batch d_model"]) -> Float[Tensor, "*batch d_vocab_out"]:
        return affine(resid, self.W_U, self.b_U)


class TiedUnembed(nn.Module):
    """Unembedding tied to the embedding: ``W_U = W_E^T`` (a view, not a second parameter)."""

    def __init__(self, embed: Embed, use_bias: bool):
        super().__init__()
        object.__setattr__(self, "_embed", embed)  # not a submodule: the embedding owns W_E
        self.b_U = nn.Parameter(torch.zeros(embed.W_E.shape[0])) if use_bias else None

    @property
    def W_U(self) -> Float[Tensor, "d_model d_vocab_out"]:
        return einops.rearrange(self._embed.W_E, "d_vocab d_model -> d_model d_vocab")

    def forward(self, resid: Float[Tensor, "*batch d_model"]) -> Float[Tensor, "*batch d_vocab_out"]:
        return affine(resid, self.W_U, self.b_U)
