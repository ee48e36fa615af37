"""Small helpers shared by the model's modules (internal)."""

from __future__ import annotations

import torch
from torch import Tensor
from transformer_lens.hook_points import HookPoint


def is_hooked(*points: HookPoint) -> bool:
    """True when any of the hook points has a forward or backward hook attached.

    The model uses this to pick between a fused kernel (nothing observes the intermediate
    activations) and an explicit computation that passes them through their hook points.
    Both give the same result to float rounding; tests check they agree.
    """
    return any(p._forward_hooks or p._backward_hooks for p in points)


def affine(x: Tensor, W: Tensor, b: Tensor | None) -> Tensor:
    """``x @ W + b`` over the last axis; with a bias, one fused ``addmm`` instead of a matmul and a
    second pass over the output (which, for a 50k-token unembedding, costs as much as a layer)."""
    if b is None:
        return x @ W
    return torch.addmm(b, x.reshape(-1, x.shape[-1]), W).reshape(*x.shape[:-1], W.shape[-1])
