"""Small helpers shared by the model's modules (internal)."""

from __future__ import annotations

from transformer_lens.hook_points import HookPoint


def is_hooked(*points: HookPoint) -> bool:
    """True when any of the hook points has a forward or backward hook attached.

    The model uses this to pick between a fused kernel (nothing observes the intermediate
    activations) and an explicit computation that passes them through their hook points.
    Both give the same result to float rounding; tests check they agree.
    """
    return any(p._forward_hooks or p._backward_hooks for p in points)
