"""Normalization layers: LayerNorm and RMSNorm with TransformerLens hook points.

``hook_scale`` is the per-position divisor ``sqrt(mean(x^2) + eps)`` (of the centred input for
LayerNorm) with shape ``[batch, pos, 1]``; ``hook_normalized`` is the output after the gain
``w`` (and bias ``b``), as in TransformerLens. With no hook attached the fused kernels
(``F.layer_norm`` / ``F.rms_norm``) run instead; they compute the same function.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn
from transformer_lens.hook_points import HookPoint

from circuits.model._hooks import is_hooked


class LayerNorm(nn.Module):
    """``(x - mean(x)) / sqrt(var(x) + eps) * w + b`` over ``d_model``."""

    w: Float[Tensor, "d_model"]
    b: Float[Tensor, "d_model"]

    def __init__(self, d_model: int, eps: float):
        super().__init__()
        self.eps = eps
        self.w = nn.Parameter(torch.ones(d_model))
        self.b = nn.Parameter(torch.zeros(d_model))
        self.hook_scale = HookPoint()  # [batch, pos, 1]
        self.hook_normalized = HookPoint()  # [batch, pos, d_model]

    def forward(self, x: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_model"]:
        if not is_hooked(self.hook_scale, self.hook_normalized):
            return F.layer_norm(x, (x.shape[-1],), self.w, self.b, self.eps)
        x = x - x.mean(-1, keepdim=True)
        scale = self.hook_scale((x.pow(2).mean(-1, keepdim=True) + self.eps).sqrt())
        normalized = self.hook_normalized(x / scale * self.w + self.b)
        return normalized


class RMSNorm(nn.Module):
    """``x / sqrt(mean(x^2) + eps) * w`` over ``d_model`` (no centring, no bias)."""

    w: Float[Tensor, "d_model"]

    def __init__(self, d_model: int, eps: float):
        super().__init__()
        self.eps = eps
        self.w = nn.Parameter(torch.ones(d_model))
        self.hook_scale = HookPoint()  # [batch, pos, 1]
        self.hook_normalized = HookPoint()  # [batch, pos, d_model]

    def forward(self, x: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_model"]:
        if not is_hooked(self.hook_scale, self.hook_normalized):
            return F.rms_norm(x, (x.shape[-1],), self.w, self.eps)
        scale = self.hook_scale((x.pow(2).mean(-1, keepdim=True) + self.eps).sqrt())
        normalized = self.hook_normalized(x / scale * self.w)
        return normalized


def make_norm(kind: str, d_model: int, eps: float) -> nn.Module:
    """The norm module for ``TransformerConfig.normalization`` (``"none"`` gives ``nn.Identity``)."""
    if kind == "layernorm":
        return LayerNorm(d_model, eps)
    if kind == "rmsnorm":
        return RMSNorm(d_model, eps)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown normalization {kind!r}")
