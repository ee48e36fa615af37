"""The MLP sublayer: ``mlp_out = act(x W_in + b_in) W_out + b_out``, or gated (SwiGLU).

Hooks: ``hook_pre`` (pre-activation; for the gated MLP the gate's pre-activation),
``hook_pre_linear`` (gated only: the linear branch), ``hook_post`` (after the nonlinearity).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn

from circuits.config import TransformerConfig
from circuits.model._hooks import affine, is_hooked
from circuits.model.cache import CacheableHookPoint, DerivableHookPoint


def gelu_new(x: Tensor) -> Tensor:
    """GPT-2's tanh approximation of GELU, ``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))``.

    PyTorch's fused kernel for the same formula: one pass over the tensor instead of seven
    (the written-out formula made GPT-2's forward about 5% slower); the two agree to ~1e-7.
    """
    return F.gelu(x, approximate="tanh")


ACTIVATIONS = {"gelu": F.gelu, "gelu_new": gelu_new, "relu": F.relu, "silu": F.silu}


class MLP(nn.Module):
    W_in: Float[Tensor, "d_model d_mlp"]
    W_out: Float[Tensor, "d_mlp d_model"]

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.act = ACTIVATIONS[cfg.act_fn]
        self.W_in = nn.Parameter(torch.empty(cfg.d_model, cfg.d_mlp_))
        self.W_out = nn.Parameter(torch.empty(cfg.d_mlp_, cfg.d_model))
        self.b_in = nn.Parameter(torch.zeros(cfg.d_mlp_)) if cfg.use_bias else None
        self.b_out = nn.Parameter(torch.zeros(cfg.d_model)) if cfg.use_bias else None
        self.hook_pre = CacheableHookPoint()  # [batch, pos, d_mlp]
        self.hook_post = DerivableHookPoint()  # [batch, pos, d_mlp]

    def forward(self, x: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_model"]:
        pre = self.hook_pre(affine(x, self.W_in, self.b_in))
        if is_hooked(self.hook_post):
            post = self.hook_post(self.act(pre))
        else:  # run_with_cache recomputes act(pre) on first access instead of keeping it
            post = self.act(pre)
            self.hook_post.defer(self.act, pre)
        return affine(post, self.W_out, self.b_out)


class GatedMLP(nn.Module):
    """SwiGLU: ``mlp_out = (silu(x W_gate) * (x W_in)) W_out``."""

    W_gate: Float[Tensor, "d_model d_mlp"]
    W_in: Float[Tensor, "d_model d_mlp"]
    W_out: Float[Tensor, "d_mlp d_model"]

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.W_gate = nn.Parameter(torch.empty(cfg.d_model, cfg.d_mlp_))
        self.W_in = nn.Parameter(torch.empty(cfg.d_model, cfg.d_mlp_))
        self.W_out = nn.Parameter(torch.empty(cfg.d_mlp_, cfg.d_model))
        self.b_in = nn.Parameter(torch.zeros(cfg.d_mlp_)) if cfg.use_bias else None
        self.b_out = nn.Parameter(torch.zeros(cfg.d_model)) if cfg.use_bias else None
        self.hook_pre = CacheableHookPoint()  # [batch, pos, d_mlp] gate pre-activation
        self.hook_pre_linear = CacheableHookPoint()  # [batch, pos, d_mlp]
        self.hook_post = DerivableHookPoint()  # [batch, pos, d_mlp]

    def forward(self, x: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_model"]:
        pre = self.hook_pre(x @ self.W_gate)
        pre_linear = self.hook_pre_linear(affine(x, self.W_in, self.b_in))
        if is_hooked(self.hook_post):
            post = self.hook_post(swiglu(pre, pre_linear))
        else:  # run_with_cache recomputes it on first access instead of keeping it
            post = swiglu(pre, pre_linear)
            self.hook_post.defer(swiglu, pre, pre_linear)
        return affine(post, self.W_out, self.b_out)


def swiglu(pre: Float[Tensor, "batch pos d_mlp"], pre_linear: Float[Tensor, "batch pos d_mlp"]) -> Float[Tensor, "batch pos d_mlp"]:
    """The gated MLP's ``silu(gate) * linear``."""
    return F.silu(pre) * pre_linear


def make_mlp(cfg: TransformerConfig) -> nn.Module:
    return GatedMLP(cfg) if cfg.act_fn == "swiglu" else MLP(cfg)
