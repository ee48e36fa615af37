"""Shared fixtures: tiny seeded models with distinct prime sizes, so hidden shape assumptions fail.

``d_model=11, n_heads=3, d_head=5, d_vocab=13, n_ctx=7, d_mlp=17``: ``n_heads * d_head != d_model``.
"""

from __future__ import annotations

import pytest
import torch

from circuits import Transformer, TransformerConfig

# Tiny tensors: one intra-op thread is fastest and keeps results independent of the machine.
torch.set_num_threads(1)

PRIME_SIZES = dict(d_model=11, n_heads=3, d_head=5, d_vocab=13, n_ctx=7)


def tiny_config(**overrides) -> TransformerConfig:
    base = dict(n_layers=2, d_mlp=17, **PRIME_SIZES)
    if overrides.get("attn_only"):
        base.pop("d_mlp")
    base.update(overrides)
    return TransformerConfig(**base)


def tiny_model(**overrides) -> Transformer:
    return Transformer(tiny_config(**overrides)).eval()


@pytest.fixture
def model() -> Transformer:
    return tiny_model()


@pytest.fixture
def attn_only_model() -> Transformer:
    return tiny_model(attn_only=True, normalization="none", positional="shortformer", use_bias=False)


@pytest.fixture
def tokens() -> torch.Tensor:
    return torch.randint(0, PRIME_SIZES["d_vocab"], (2, PRIME_SIZES["n_ctx"]), generator=torch.Generator().manual_seed(0))
