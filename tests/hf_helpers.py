"""Helpers for the Hugging Face parity tests: tiny random HF models saved to a folder, and comparisons.

Nothing is downloaded. Weights are re-drawn at a larger scale than HF's 0.02 initialisation so
that activations are O(1) and an absolute tolerance of 1e-5 is a real test.
"""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
transformers = pytest.importorskip("transformers", reason="the HF parity tests need transformers (the dev extra)")

ATOL = 1e-5


def randomize_(module: torch.nn.Module, seed: int, std: float = 0.3) -> torch.nn.Module:
    """Redraw every parameter: matrices N(0, std), norm gains 1 + N(0, 0.1), biases N(0, 0.1)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in module.named_parameters():
            noise = torch.randn(param.shape, generator=generator)
            if param.ndim >= 2:
                param.copy_(noise * std)
            elif "norm" in name.lower() or name.endswith(("ln_1.weight", "ln_2.weight", "ln_f.weight")):
                param.copy_(1.0 + 0.1 * noise)
            else:
                param.copy_(0.1 * noise)
    return module


def padded_batch(d_vocab: int, n_pos: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Three sequences: full, right-padded (last 3 positions), left-padded (first 2 positions)."""
    generator = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, d_vocab, (3, n_pos), generator=generator)
    mask = torch.ones(3, n_pos, dtype=torch.long)
    mask[1, -3:] = 0
    mask[2, :2] = 0
    return tokens, mask


def max_error_on(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """Largest absolute difference, over real (mask == 1) positions when a mask is given."""
    diff = (a.float() - b.float()).abs()
    if mask is not None:
        diff = diff[mask.bool()]
    return float(diff.max())
