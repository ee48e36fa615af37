"""Which heads an ablation study ablates, and the per-token losses it compares.

The In-context Learning paper ablates the induction heads (heads whose prefix-matching score is
high) and the previous-token head that feeds them. These helpers pick them from score arrays
``[layer, head]`` (e.g. the last checkpoint's scores of :func:`circuits.checkpoint_metrics`) and
run a model with or without an :class:`~circuits.analysis.activations.interventions.Ablation`.
"""

from __future__ import annotations

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor

__all__ = ["induction_layers", "pick_induction_heads", "pick_previous_token_head", "per_token_loss"]


def induction_layers(n_layers: int) -> slice:
    """Layers whose heads can be induction heads: >= 1, or layer 0 of a one-layer (e.g. smeared-key) model."""
    return slice(1, None) if n_layers > 1 else slice(0, None)


def pick_induction_heads(prefix_matching: Float[np.ndarray, "layer head"], threshold: float) -> list[tuple[int, int]]:
    """Heads of :func:`induction_layers` with a prefix-matching score ``>= threshold``; else the single highest one."""
    scores = np.asarray(prefix_matching)
    n_layers, n_heads = scores.shape
    candidates = [(l, h) for l in range(n_layers)[induction_layers(n_layers)] for h in range(n_heads)]
    return [lh for lh in candidates if scores[lh] >= threshold] or [max(candidates, key=lambda lh: scores[lh])]


def pick_previous_token_head(previous_token: Float[np.ndarray, "layer head"], induction_heads: list[tuple[int, int]]) -> tuple[int, int]:
    """The head with the highest previous-token score in the layers before the first induction head (any layer of a 1L model)."""
    scores = np.asarray(previous_token)
    earlier = scores[: min(l for l, _ in induction_heads)] if scores.shape[0] > 1 else scores
    layer, head = np.unravel_index(int(np.argmax(earlier)), earlier.shape)
    return int(layer), int(head)


def per_token_loss(model, tokens: Int[Tensor, "batch pos"], ablation=None, chunk: int = 16) -> Float[Tensor, "batch pos_minus_1"]:
    """Loss of predicting every token of ``tokens``, clean (``ablation=None``) or under ``ablation``, ``chunk`` rows at a time."""
    out = []
    with torch.no_grad():
        for i in range(0, tokens.shape[0], chunk):
            rows = tokens[i : i + chunk]
            with model.hooks(fwd_hooks=ablation.hooks(model, rows) if ablation is not None else []):
                out.append(model(rows, return_type="per_token_loss").float())
    return torch.cat(out)
