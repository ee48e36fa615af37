"""Normalization layers: LayerNorm and RMSNorm with TransformerLens hook points.

``hook_scale`` is the per-position divisor ``sqrt(mean(x^2) + eps)`` (of the centred input for
LayerNorm) with shape ``[batch, pos, 1]``; ``hook_normalized`` is the output after the gain
``w`` (and bias ``b``), as in TransformerLens. The output is always the fused kernel's
(``F.layer_norm`` / ``F.rms_norm``) unless a hook edits ``hook_scale``; the scale is computed
explicitly only when a hook is attached to it, and ``run_with_cache`` derives it on first access
from the norm's input with the same function (:meth:`LayerNorm.scale_of`; see
:mod:`circuits.model.cache`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn

from circuits.model._hooks import is_hooked
from circuits.model.cache import CacheableHookPoint, DerivableHookPoint, unchanged, version_of


class LayerNorm(nn.Module):
    """``(x - mean(x)) / sqrt(var(x) + eps) * w + b`` over ``d_model``."""

    w: Float[Tensor, "d_model"]
    b: Float[Tensor, "d_model"]

    def __init__(self, d_model: int, eps: float):
        super().__init__()
        self.eps = eps
        self.w = nn.Parameter(torch.ones(d_model))
        self.b = nn.Parameter(torch.zeros(d_model))
        self.hook_scale = DerivableHookPoint()  # [batch, pos, 1]
        self.hook_normalized = CacheableHookPoint()  # [batch, pos, d_model]

    def forward(self, x: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_model"]:
        if not is_hooked(self.hook_scale):
            self.hook_scale.defer(self.scale_of, x)
            return self.hook_normalized(F.layer_norm(x, (x.shape[-1],), self.w, self.b, self.eps))
        scale = self.scale_of(x)
        version = version_of(scale)
        seen = self.hook_scale(scale)
        if unchanged(seen, scale, version, self.hook_scale):
            normalized = F.layer_norm(x, (x.shape[-1],), self.w, self.b, self.eps)
        else:
            normalized = (x - x.mean(-1, keepdim=True)) / seen * self.w + self.b
        return self.hook_normalized(normalized)

    def scale_of(self, x: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos 1"]:
        """``sqrt(var(x) + eps)`` per position (what ``hook_scale`` sees)."""
        centred = x - x.mean(-1, keepdim=True)
        return (centred.pow(2).mean(-1, keepdim=True) + self.eps).sqrt()


class RMSNorm(nn.Module):
    """``x / sqrt(mean(x^2) + eps) * w`` over ``d_model`` (no centring, no bias)."""

    w: Float[Tensor, "d_model"]

    def __init__(self, d_model: int, eps: float):
        super().__init__()
        self.eps = eps
        self.w = nn.Parameter(torch.ones(d_model))
        self.hook_scale = DerivableHookPoint()  # [batch, pos, 1]
        self.hook_normalized = CacheableHookPoint()  # [batch, pos, d_model]

    def forward(self, x: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_model"]:
        if not is_hooked(self.hook_scale):
            self.hook_scale.defer(self.scale_of, x)
            return self.hook_normalized(F.rms_norm(x, (x.shape[-1],), self.w, self.eps))
        scale = self.scale_of(x)
        version = version_of(scale)
        seen = self.hook_scale(scale)
        if unchanged(seen, scale, version, self.hook_scale):
            normalized = F.rms_norm(x, (x.shape[-1],), self.w, self.eps)
        else:
            normalized = x / seen * self.w
        return self.hook_normalized(normalized)

    def scale_of(self, x: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos 1"]:
        """``sqrt(mean(x^2) + eps)`` per position (what ``hook_scale`` sees)."""
        return (x.pow(2).mean(-1, keepdim=True) + self.eps).sqrt()


def make_norm(kind: str, d_model: int, eps: float) -> nn.Module:
    """The norm module for ``TransformerConfig.normalization`` (``"none"`` gives ``nn.Identity``)."""
    if kind == "layernorm":
        return LayerNorm(d_model, eps)
    if kind == "rmsnorm":
        return RMSNorm(d_model, eps)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown normalization {kind!r}")
