"""Positional schemes that act inside attention: rotary embeddings and ALiBi biases.

Position embeddings that are vectors (learned, sinusoidal, shortformer) live in ``embed.py``;
where they are added (residual stream or only query/key inputs) is decided when the model is
built.
"""

from __future__ import annotations

import math

import torch
from jaxtyping import Float
from torch import Tensor, nn


class Rotary(nn.Module):
    """Rotary position embedding (Su et al.), GPT-NeoX / LLaMA "rotate half" layout.

    The first ``rotary_dim`` channels of each head are split into two halves ``(x1, x2)``;
    position ``p`` rotates channel pair ``(x1[i], x2[i])`` by angle ``p * base^(-2i/rotary_dim)``.
    The remaining channels pass through unchanged. A query at position ``p`` and a key at
    position ``p'`` then interact through ``R(p - p')`` only: scores depend on relative position.
    """

    def __init__(self, rotary_dim: int, base: float, n_ctx: int):
        super().__init__()
        self.rotary_dim = rotary_dim
        self.base = base
        cos, sin = self.cos_sin(n_ctx, torch.device("cpu"))
        self.register_buffer("cos", cos, persistent=False)  # [n_ctx, rotary_dim]
        self.register_buffer("sin", sin, persistent=False)

    def cos_sin(self, n_pos: int, device: torch.device) -> tuple[Tensor, Tensor]:
        inv_freq = self.base ** (-torch.arange(0, self.rotary_dim, 2, dtype=torch.float64, device=device) / self.rotary_dim)
        angles = torch.outer(torch.arange(n_pos, dtype=torch.float64, device=device), inv_freq)
        angles = torch.cat([angles, angles], dim=-1)  # [pos, rotary_dim]
        return angles.cos().float(), angles.sin().float()

    def table(self, n_pos: int) -> tuple[Tensor, Tensor]:
        if n_pos <= self.cos.shape[0]:
            return self.cos[:n_pos], self.sin[:n_pos]
        return self.cos_sin(n_pos, self.cos.device)

    def forward(
        self, x: Float[Tensor, "batch pos head d_head"], cos: Float[Tensor, "pos rotary_dim"], sin: Float[Tensor, "pos rotary_dim"]
    ) -> Float[Tensor, "batch pos head d_head"]:
        rd = self.rotary_dim
        x_rot, x_pass = x[..., :rd], x[..., rd:]
        x1, x2 = x_rot[..., : rd // 2], x_rot[..., rd // 2 :]
        rotated = torch.cat([-x2, x1], dim=-1)
        cos = cos[:, None, :].to(x.dtype)  # [pos, 1, rotary_dim] broadcasts over batch and head
        sin = sin[:, None, :].to(x.dtype)
        out = x_rot * cos + rotated * sin
        return torch.cat([out, x_pass], dim=-1) if x_pass.shape[-1] else out


def alibi_slopes(n_heads: int) -> Float[Tensor, "head"]:
    """Press et al.'s head slopes: for ``n`` a power of two, ``2^(-8 k / n)`` for ``k = 1..n``.

    Otherwise the slopes of the closest smaller power of two ``m``, followed by every other
    slope of ``2m`` (the reference implementation's rule).
    """
    def power_of_two(n: int) -> list[float]:
        start = 2.0 ** (-8.0 / n)
        return [start ** (k + 1) for k in range(n)]

    if math.log2(n_heads).is_integer():
        slopes = power_of_two(n_heads)
    else:
        m = 2 ** math.floor(math.log2(n_heads))
        slopes = power_of_two(m) + power_of_two(2 * m)[0::2][: n_heads - m]
    return torch.tensor(slopes, dtype=torch.float32)


def alibi_bias(slopes: Float[Tensor, "head"], n_pos: int) -> Float[Tensor, "1 head query_pos key_pos"]:
    """``-slope * |query_pos - key_pos|`` (for causal masks only ``key_pos <= query_pos`` matters)."""
    pos = torch.arange(n_pos, device=slopes.device)
    distance = (pos[:, None] - pos[None, :]).abs().to(slopes.dtype)  # [query_pos, key_pos]
    return (-slopes[:, None, None] * distance).unsqueeze(0)
