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

When nothing is attached to ``hook_attn_scores`` or ``hook_pattern``, the fused
``scaled_dot_product_attention`` kernel computes ``z``; when nothing is attached to
``hook_result``, ``attn_out`` is one matmul. Otherwise the explicit path above runs so the hooks
see (and may edit) each tensor; if they leave it unchanged, the fused value is still what flows
on, so observing never changes a number (see :mod:`circuits.model.cache`). ``run_with_cache``
derives the scores, pattern (their softmax) and per-head results on first access from ``q``,
``k`` and ``z`` with the same functions (:meth:`Attention.attn_scores`, :class:`SharedScores`,
:meth:`Attention.head_results`).
"""

from __future__ import annotations

import math

import einops
import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn

from circuits.config import TransformerConfig
from circuits.model._hooks import affine, is_hooked
from circuits.model.cache import CacheableHookPoint, DerivableHookPoint, unchanged, version_of
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

        self.hook_q = CacheableHookPoint()  # [batch, pos, head, d_head]
        self.hook_k = CacheableHookPoint()  # [batch, pos, kv_head, d_head]
        self.hook_v = CacheableHookPoint()  # [batch, pos, kv_head, d_head]
        if self.smear is not None:
            self.hook_smeared_k = CacheableHookPoint()  # [batch, pos, kv_head, d_head]
        if self.rotary is not None:
            self.hook_rot_q = CacheableHookPoint()  # [batch, pos, head, d_head]
            self.hook_rot_k = CacheableHookPoint()  # [batch, pos, kv_head, d_head]
        self.hook_attn_scores = DerivableHookPoint()  # [batch, head, query_pos, key_pos]
        self.hook_pattern = DerivableHookPoint()  # [batch, head, query_pos, key_pos]
        self.hook_z = CacheableHookPoint()  # [batch, pos, head, d_head]
        self.hook_result = DerivableHookPoint()  # [batch, pos, head, d_model]

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
            z = self._observed_z(q, k, v, ctx)
        else:
            z = self._fused_z(q, k, v, ctx)
            if self.hook_attn_scores.deferring or self.hook_pattern.deferring:
                shared = SharedScores(self)  # the cache computes the scores at most once for both entries
                self.hook_attn_scores.defer(shared.attn_scores, q, k, ctx)
                self.hook_pattern.defer(shared.attn_pattern, q, k, ctx)
        z = self.hook_z(z)

        if is_hooked(self.hook_result):
            attn_out = self._observed_out(z)
        else:
            attn_out = self._fused_out(z)
            self.hook_result.defer(self.head_results, z, self.W_O)
        return attn_out if self.b_O is None else attn_out + self.b_O

    def attn_scores(self, q: Tensor, k: Tensor, ctx: AttentionContext) -> Float[Tensor, "batch head query_pos key_pos"]:
        """Pre-softmax scores ``q k^T / sqrt(d_head) + bias``, masked entries ``-inf`` (what ``hook_attn_scores`` sees)."""
        # Scale the (small) queries rather than the [batch, head, pos, pos] scores, and add the mask
        # in place: two fewer passes over the largest tensor of the layer.
        scores = einops.einsum(
            q * self.scale, self.expand_kv(k), "batch query_pos head d_head, batch key_pos head d_head -> batch head query_pos key_pos"
        )
        bias = ctx.explicit_bias(q.device, q.dtype)
        if bias is not None:
            scores.add_(bias.to(scores.dtype))
        return scores

    def head_results(
        self, z: Float[Tensor, "batch pos head d_head"], W_O: Float[Tensor, "head d_head d_model"]
    ) -> Float[Tensor, "batch pos head d_model"]:
        """Per-head outputs ``z W_O`` (what ``hook_result`` sees)."""
        # One head-batched matmul [head, batch*pos, d_head] @ [head, d_head, d_model]; the result is
        # a [batch, pos, head, d_model] view of it (einsum's layout would be slower by a copy).
        batch, n_pos = z.shape[:2]
        per_head = torch.bmm(einops.rearrange(z, "batch pos head d_head -> head (batch pos) d_head"), W_O)
        return einops.rearrange(per_head, "head (batch pos) d_model -> batch pos head d_model", batch=batch, pos=n_pos)

    def _fused_out(self, z: Tensor) -> Float[Tensor, "batch pos d_model"]:
        return einops.rearrange(z, "batch pos head d_head -> batch pos (head d_head)") @ einops.rearrange(
            self.W_O, "head d_head d_model -> (head d_head) d_model"
        )

    def _observed_out(self, z: Tensor) -> Float[Tensor, "batch pos d_model"]:
        result = self.head_results(z, self.W_O)
        version = version_of(result)
        seen = self.hook_result(result)
        if unchanged(seen, result, version, self.hook_result):
            return self._fused_out(z)
        return seen.sum(dim=2)

    def _observed_z(self, q: Tensor, k: Tensor, v: Tensor, ctx: AttentionContext) -> Float[Tensor, "batch pos head d_head"]:
        scores = self.attn_scores(q, k, ctx)
        scores_version = version_of(scores)
        seen_scores = self.hook_attn_scores(scores)
        pattern = torch.softmax(seen_scores, dim=-1)
        pattern_version = version_of(pattern)
        seen_pattern = self.hook_pattern(pattern)
        if unchanged(seen_scores, scores, scores_version, self.hook_attn_scores) and unchanged(
            seen_pattern, pattern, pattern_version, self.hook_pattern
        ):
            return self._fused_z(q, k, v, ctx)
        return einops.einsum(
            seen_pattern, self.expand_kv(v), "batch head query_pos key_pos, batch key_pos head d_head -> batch query_pos head d_head"
        )

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

    def expand_kv(self, x: Float[Tensor, "... kv_head d_head"]) -> Float[Tensor, "... head d_head"]:
        """Repeat key/value heads so that query head ``h`` lines up with its key/value head."""
        if self.n_kv_heads == self.n_heads:
            return x
        return x.repeat_interleave(self.n_heads // self.n_kv_heads, dim=-2)


class SharedScores:
    """One forward pass's attention scores, computed at most once for the cache's scores and pattern entries.

    The pattern is derived from the scores the cache returned unless they were edited in place
    since (then from ``q`` and ``k`` again), so it always equals the forward pass's.
    """

    def __init__(self, attn: Attention):
        self.attn, self.scores, self.version = attn, None, -1

    def attn_scores(self, q: Tensor, k: Tensor, ctx: AttentionContext) -> Float[Tensor, "batch head query_pos key_pos"]:
        if self.scores is None or version_of(self.scores) != self.version or self.version is None:
            self.scores = self.attn.attn_scores(q, k, ctx)
            self.version = version_of(self.scores)
        return self.scores

    def attn_pattern(self, q: Tensor, k: Tensor, ctx: AttentionContext) -> Float[Tensor, "batch head query_pos key_pos"]:
        """``softmax(scores)`` over ``key_pos``: what ``hook_pattern`` sees when no hook edits the scores."""
        return torch.softmax(self.attn_scores(q, k, ctx), dim=-1)


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
