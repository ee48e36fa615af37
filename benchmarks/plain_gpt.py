"""A minimal plain-PyTorch GPT (nanoGPT style) used as the speed reference in benchmarks.

Fused QKV projection, ``scaled_dot_product_attention(is_causal=True)``, ``F.layer_norm``: the
fastest straightforward implementation of the same math as ``circuits.Transformer``. Weights are
copied from a ``circuits.Transformer`` so both compute the same function (checked by the
benchmarks before timing).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from circuits import Transformer


class PlainBlock(nn.Module):
    def __init__(self, d_model: int, n_heads: int, d_head: int, d_mlp: int | None, norm: bool, bias: bool, shortformer: bool):
        super().__init__()
        self.n_heads, self.d_head, self.shortformer = n_heads, d_head, shortformer
        self.ln1 = nn.LayerNorm(d_model) if norm else nn.Identity()
        self.c_qk = nn.Linear(d_model, 2 * n_heads * d_head, bias=bias)
        self.c_v = nn.Linear(d_model, n_heads * d_head, bias=bias)
        self.c_proj = nn.Linear(n_heads * d_head, d_model, bias=bias)
        self.mlp = None
        if d_mlp is not None:
            self.ln2 = nn.LayerNorm(d_model) if norm else nn.Identity()
            self.mlp = nn.Sequential(nn.Linear(d_model, d_mlp, bias=bias), nn.GELU(approximate="tanh"), nn.Linear(d_mlp, d_model, bias=bias))

    def attn(self, x: torch.Tensor, pos: torch.Tensor | None) -> torch.Tensor:
        B, T, _ = x.shape
        if self.shortformer:
            qk, v = self.c_qk(x + pos), self.c_v(x)
        else:  # one fused matmul for q, k and v
            qkv = F.linear(x, torch.cat([self.c_qk.weight, self.c_v.weight]), None if self.c_qk.bias is None else torch.cat([self.c_qk.bias, self.c_v.bias]))
            qk, v = qkv.split([2 * self.n_heads * self.d_head, self.n_heads * self.d_head], dim=-1)
        q, k = qk.split(self.n_heads * self.d_head, dim=-1)
        q, k, v = (t.view(B, T, self.n_heads, self.d_head).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.c_proj(y.transpose(1, 2).reshape(B, T, -1))

    def forward(self, x: torch.Tensor, pos: torch.Tensor | None) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), pos)
        if self.mlp is not None:
            x = x + self.mlp(self.ln2(x))
        return x


class PlainGPT(nn.Module):
    def __init__(self, model: Transformer):
        super().__init__()
        cfg = model.config
        if cfg.positional not in ("learned", "shortformer", "none") or cfg.normalization not in ("layernorm", "none") or cfg.mask != "causal" or cfg.n_kv_heads_ != cfg.n_heads or cfg.act_fn not in ("gelu_new",) and not cfg.attn_only:
            raise ValueError("PlainGPT covers GPT-2-style and attention-only configs (learned/shortformer/no positions, LayerNorm or none, causal, gelu_new)")
        self.positional = cfg.positional
        self.wte = nn.Embedding(cfg.d_vocab, cfg.d_model)
        self.wpe = nn.Embedding(cfg.n_ctx, cfg.d_model) if cfg.positional != "none" else None
        norm = cfg.normalization == "layernorm"
        self.blocks = nn.ModuleList(
            PlainBlock(cfg.d_model, cfg.n_heads, cfg.d_head_, None if cfg.attn_only else cfg.d_mlp_, norm, cfg.use_bias, cfg.positional == "shortformer")
            for _ in range(cfg.n_layers)
        )
        self.ln_f = nn.LayerNorm(cfg.d_model) if norm else nn.Identity()
        self.lm_head = nn.Linear(cfg.d_model, cfg.d_vocab_out_, bias=cfg.use_bias)
        self.copy_from(model)

    @torch.no_grad()
    def copy_from(self, model: Transformer) -> None:
        def flat(W):  # [head, d_model, d_head] -> [head * d_head, d_model] (nn.Linear weight layout)
            return W.permute(0, 2, 1).reshape(-1, W.shape[1])

        self.wte.weight.copy_(model.W_E)
        if self.wpe is not None:
            self.wpe.weight.copy_(model.pos_embed.W_pos)
        for ours, plain in zip(model.blocks, self.blocks):
            a = ours.attn
            plain.c_qk.weight.copy_(torch.cat([flat(a.W_Q), flat(a.W_K)]))
            plain.c_v.weight.copy_(flat(a.W_V))
            plain.c_proj.weight.copy_(a.W_O.reshape(-1, a.W_O.shape[-1]).T)
            if a.b_Q is not None:
                plain.c_qk.bias.copy_(torch.cat([a.b_Q.reshape(-1), a.b_K.reshape(-1)]))
                plain.c_v.bias.copy_(a.b_V.reshape(-1))
                plain.c_proj.bias.copy_(a.b_O)
            if isinstance(plain.ln1, nn.LayerNorm):
                plain.ln1.weight.copy_(ours.ln1.w)
                plain.ln1.bias.copy_(ours.ln1.b)
            if plain.mlp is not None:
                if isinstance(plain.ln2, nn.LayerNorm):
                    plain.ln2.weight.copy_(ours.ln2.w)
                    plain.ln2.bias.copy_(ours.ln2.b)
                plain.mlp[0].weight.copy_(ours.mlp.W_in.T)
                plain.mlp[2].weight.copy_(ours.mlp.W_out.T)
                if ours.mlp.b_in is not None:
                    plain.mlp[0].bias.copy_(ours.mlp.b_in)
                    plain.mlp[2].bias.copy_(ours.mlp.b_out)
        if isinstance(self.ln_f, nn.LayerNorm):
            self.ln_f.weight.copy_(model.ln_final.w)
            self.ln_f.bias.copy_(model.ln_final.b)
        self.lm_head.weight.copy_(model.W_U.T)
        if self.lm_head.bias is not None:
            self.lm_head.bias.copy_(model.b_U)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        T = idx.shape[1]
        x = self.wte(idx)
        pos = None
        if self.wpe is not None:
            pos = self.wpe(torch.arange(T, device=idx.device))
            if self.positional == "learned":
                x = x + pos
        for block in self.blocks:
            x = block(x, pos)
        return self.lm_head(self.ln_f(x))
