"""Multi-head attention with every intermediate exposed as a TransformerLens hook point.

Math (row-vector convention, as in TransformerLens; the paper writes the transposes)::

    q = x W_Q + b_Q        k = x W_K + b_K        v = x W_V + b_V        (per head)
    scores  = q k^T / sqrt(d_head) + bias          (bias: mask as -inf, ALiBi)
    pattern = softmax(scores)                      (over key_pos)
    z       = pattern v
    result  = z W_O                                (per head, [batch, pos, head, d_model])
    attn_out = sum_head result + b_O

So ``W_QK = W_Q W_K^T`` (paper ``W_Q^T W_K``) and ``W_OV = W_V W_O`` (paper ``W_O W_V``).

Grouped-query attention: ``W_K``/``W_V`` have ``n_kv_heads`` heads; query head ``h`` reads
key/value head ``h // (n_heads / n_kv_heads)``. ``hook_k``/``hook_v`` show the ``n_kv_heads``
heads actually computed.

When nothing is attached to ``hook_attn_scores``, ``hook_pattern`` or ``hook_result``, the
fused ``scaled_dot_product_attention`` kernel computes ``z`` and ``attn_out`` is one matmul;
otherwise the explicit path above runs so the hooks see (and may edit) each tensor.
"""

from __future__ import annotations

import math

import einops
import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn
from transformer_lens.hook_points import HookPoint

from circuits.config import TransformerConfig
from circuits.model._hooks import affine, is_hooked
from circuits.model.masks import AttentionContext
from circuits.model.positional import positional_scheme


class SmearKey(nn.Module):
    """The In-context Learning paper's smeared key: ``k_j <- sigmoid(alpha) k_j + (1 - sigmoid(alpha)) k_{j-1}``.

    One trainable ``alpha`` per key head; the first position is unchanged.
    """

    def __init__(self, n_kv_heads: int):
        super().__init__()
        self.alpha = nn.Parameter(torch.zeros(n_kv_heads))

    def forward(self, k: Float[Tensor, "batch pos kv_head d_head"]) -> Float[Tensor, "batch pos kv_head d_head"]:
        keep = torch.sigmoid(self.alpha)[:, None]  # [kv_head, 1]
        previous = torch.cat([k[:, :1], k[:, :-1]], dim=1)  # position 0 "smears" with itself
        return keep * k + (1 - keep) * previous


class Attention(nn.Module):
    W_Q: Float[Tensor, "head d_model d_head"]
    W_K: Float[Tensor, "kv_head d_model d_head"]
    W_V: Float[Tensor, "kv_head d_model d_head"]
    W_O: Float[Tensor, "head d_head d_model"]

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        h, kv, d, e = cfg.n_heads, cfg.n_kv_heads_, cfg.d_model, cfg.d_head_
        self.n_heads, self.n_kv_heads, self.d_head = h, kv, e
        self.W_Q = nn.Parameter(torch.empty(h, d, e))
        self.W_K = nn.Parameter(torch.empty(kv, d, e))
        self.W_V = nn.Parameter(torch.empty(kv, d, e))
        self.W_O = nn.Parameter(torch.empty(h, e, d))
        if cfg.use_bias:
            self.b_Q = nn.Parameter(torch.zeros(h, e))
            self.b_K = nn.Parameter(torch.zeros(kv, e))
            self.b_V = nn.Parameter(torch.zeros(kv, e))
            self.b_O = nn.Parameter(torch.zeros(d))
        else:
            self.b_Q = self.b_K = self.b_V = self.b_O = None
        self.smear = SmearKey(kv) if cfg.smear_key else None
        self.rotary = positional_scheme(cfg).rotary(cfg)  # rotary's q/k rotation, or None
        self.scale = 1.0 / math.sqrt(e)

        self.hook_q = HookPoint()  # [batch, pos, head, d_head]
        self.hook_k = HookPoint()  # [batch, pos, kv_head, d_head]
        self.hook_v = HookPoint()  # [batch, pos, kv_head, d_head]
        if self.smear is not None:
            self.hook_smeared_k = HookPoint()  # [batch, pos, kv_head, d_head]
        if self.rotary is not None:
            self.hook_rot_q = HookPoint()  # [batch, pos, head, d_head]
            self.hook_rot_k = HookPoint()  # [batch, pos, kv_head, d_head]
        self.hook_attn_scores = HookPoint()  # [batch, head, query_pos, key_pos]
        self.hook_pattern = HookPoint()  # [batch, head, query_pos, key_pos]
        self.hook_z = HookPoint()  # [batch, pos, head, d_head]
        self.hook_result = HookPoint()  # [batch, pos, head, d_model]

    def forward(self, x: Float[Tensor, "batch pos d_model"], ctx: AttentionContext) -> Float[Tensor, "batch pos d_model"]:
        qk_input = x if ctx.qk_pos is None else x + ctx.qk_pos
        q = self.hook_q(_project(qk_input, self.W_Q, self.b_Q))
        k = self.hook_k(_project(qk_input, self.W_K, self.b_K))
        v = self.hook_v(_project(x, self.W_V, self.b_V))
        if self.smear is not None:
            k = self.hook_smeared_k(self.smear(k))
        if self.rotary is not None:
            q = self.hook_rot_q(self.rotary(q, ctx.rotary_cos, ctx.rotary_sin))
            k = self.hook_rot_k(self.rotary(k, ctx.rotary_cos, ctx.rotary_sin))

        if is_hooked(self.hook_attn_scores, self.hook_pattern):
            z = self._explicit_z(q, k, v, ctx)
        else:
            z = self._fused_z(q, k, v, ctx)
        z = self.hook_z(z)

        if is_hooked(self.hook_result):
            # One head-batched matmul [head, batch*pos, d_head] @ [head, d_head, d_model]; the result is
            # a [batch, pos, head, d_model] view of it (einsum's layout would be slower by a copy).
            batch, n_pos = z.shape[:2]
            per_head = torch.bmm(einops.rearrange(z, "batch pos head d_head -> head (batch pos) d_head"), self.W_O)
            result = self.hook_result(
                einops.rearrange(per_head, "head (batch pos) d_model -> batch pos head d_model", batch=batch, pos=n_pos)
            )
            attn_out = result.sum(dim=2)
        else:
            attn_out = einops.rearrange(z, "batch pos head d_head -> batch pos (head d_head)") @ einops.rearrange(
                self.W_O, "head d_head d_model -> (head d_head) d_model"
            )
        return attn_out if self.b_O is None else attn_out + self.b_O

    def _fused_z(self, q: Tensor, k: Tensor, v: Tensor, ctx: AttentionContext) -> Float[Tensor, "batch pos head d_head"]:
        bias = ctx.bias
        if bias is not None and bias.dtype != q.dtype:
            bias = bias.to(q.dtype)
        z = F.scaled_dot_product_attention(
            q.transpose(1, 2),
            k.transpose(1, 2),
            v.transpose(1, 2),
            attn_mask=bias,
            is_causal=ctx.is_causal,
            scale=self.scale,
            enable_gqa=self.n_kv_heads != self.n_heads,
        )  # [batch, head, pos, d_head]
        return z.transpose(1, 2)

    def _explicit_z(self, q: Tensor, k: Tensor, v: Tensor, ctx: AttentionContext) -> Float[Tensor, "batch pos head d_head"]:
        k, v = self.expand_kv(k), self.expand_kv(v)
        # Scale the (small) queries rather than the [batch, head, pos, pos] scores, and add the mask
        # in place: two fewer passes over the largest tensor of the layer.
        scores = einops.einsum(
            q * self.scale, k, "batch query_pos head d_head, batch key_pos head d_head -> batch head query_pos key_pos"
        )
        bias = ctx.explicit_bias(q.device, q.dtype)
        if bias is not None:
            scores.add_(bias.to(scores.dtype))
        scores = self.hook_attn_scores(scores)
        pattern = self.hook_pattern(torch.softmax(scores, dim=-1))
        return einops.einsum(pattern, v, "batch head query_pos key_pos, batch key_pos head d_head -> batch query_pos head d_head")

    def expand_kv(self, x: Float[Tensor, "... kv_head d_head"]) -> Float[Tensor, "... head d_head"]:
        """Repeat key/value heads so that query head ``h`` lines up with its key/value head."""
        if self.n_kv_heads == self.n_heads:
            return x
        return x.repeat_interleave(self.n_heads // self.n_kv_heads, dim=-2)


def _project(
    x: Float[Tensor, "batch pos d_model"], W: Float[Tensor, "head d_model d_head"], b: Float[Tensor, "head d_head"] | None
) -> Float[Tensor, "batch pos head d_head"]:
    # One [batch*pos, d_model] @ [d_model, head*d_head] matmul (bias fused by addmm) viewed as
    # [batch, pos, head, d_head]: on 2 threads ~10% faster in training than the head-batched
    # matmul that einsum picks, and the output needs no copy. The weight copy is d_model x head*d_head.
    n_heads, _, d_head = W.shape
    W_flat = einops.rearrange(W, "head d_model d_head -> d_model (head d_head)")
    out = affine(x, W_flat, None if b is None else b.reshape(-1))
    return out.view(*x.shape[:-1], n_heads, d_head)
