"""Parity of the Transformer with a deliberately naive reference forward written here.

The reference loops over heads and positions with plain tensor ops, reading only the model's
parameters, so it shares no code with ``circuits.model``. It covers every positional scheme,
mask, norm placement, activation and grouped-query attention.
"""

from __future__ import annotations

import math

import pytest
import torch

from circuits import Transformer, TransformerConfig
from tests.conftest import PRIME_SIZES


def naive_forward(model: Transformer, tokens: torch.Tensor, attention_mask=None, prefix_len=None) -> torch.Tensor:
    cfg = model.config
    p = dict(model.named_parameters())
    batch, n = tokens.shape
    H, KV, E = cfg.n_heads, cfg.n_kv_heads_, cfg.d_head_

    def norm(x, prefix):
        if cfg.normalization == "none":
            return x
        if cfg.normalization == "layernorm":
            mu = x.mean(-1, keepdim=True)
            var = ((x - mu) ** 2).mean(-1, keepdim=True)
            return (x - mu) / torch.sqrt(var + cfg.norm_eps) * p[prefix + ".w"] + p[prefix + ".b"]
        return x / torch.sqrt((x**2).mean(-1, keepdim=True) + cfg.norm_eps) * p[prefix + ".w"]

    def act(x):
        if cfg.act_fn == "gelu":
            return 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))
        if cfg.act_fn == "gelu_new":
            return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
        if cfg.act_fn == "relu":
            return torch.clamp(x, min=0)
        return x * torch.sigmoid(x)

    def bias(name, shape):
        return p[name] if name in p else torch.zeros(shape)

    positions = torch.arange(n)
    if cfg.positional in ("learned", "shortformer"):
        pos_vec = p["pos_embed.W_pos"][:n]
    elif cfg.positional == "sinusoidal":
        pos_vec = torch.zeros(n, cfg.d_model)
        for t in range(n):
            for i in range(0, cfg.d_model, 2):
                angle = t / 10000 ** (i / cfg.d_model)
                pos_vec[t, i] = math.sin(angle)
                if i + 1 < cfg.d_model:
                    pos_vec[t, i + 1] = math.cos(angle)
    else:
        pos_vec = torch.zeros(n, cfg.d_model)

    def rotate(x):  # x [n, E], rotate-half on the first rotary_dim channels
        rd = cfg.rotary_dim_
        out = x.clone()
        for t in range(n):
            for i in range(rd // 2):
                theta = t * cfg.rotary_base ** (-2 * i / rd)
                a, b = x[t, i], x[t, i + rd // 2]
                out[t, i] = a * math.cos(theta) - b * math.sin(theta)
                out[t, i + rd // 2] = b * math.cos(theta) + a * math.sin(theta)
        return out

    def slopes():
        def pow2(k):
            start = 2 ** (-8 / k)
            return [start ** (i + 1) for i in range(k)]

        if math.log2(H).is_integer():
            return pow2(H)
        m = 2 ** math.floor(math.log2(H))
        return pow2(m) + pow2(2 * m)[0::2][: H - m]

    def allowed(b, q, k):
        ok = {
            "causal": k <= q,
            "bidirectional": True,
            "sliding_window": 0 <= q - k < (cfg.window or 0),
            "prefix": k <= q or (prefix_len is not None and k < prefix_len),
        }[cfg.mask]
        if attention_mask is not None and attention_mask[b, q] == 1:
            ok = ok and bool(attention_mask[b, k] == 1)
        return ok

    alibi_slopes = slopes()
    out = []
    for b in range(batch):
        x = p["embed.W_E"][tokens[b]]
        if cfg.positional in ("learned", "sinusoidal"):
            x = x + pos_vec
        if cfg.n_token_types:
            x = x + p["token_type_embed.W_token_type"][0]
        if cfg.norm_position == "post":
            x = norm(x, "ln_embed")
        for layer in range(cfg.n_layers):
            pre = f"blocks.{layer}."
            a_in = norm(x, pre + "ln1") if cfg.norm_position == "pre" else x
            qk_in = a_in + pos_vec if cfg.positional == "shortformer" else a_in
            attn_out = bias(pre + "attn.b_O", cfg.d_model).expand(n, -1).clone()
            for h in range(H):
                g = h // (H // KV)
                q = qk_in @ p[pre + "attn.W_Q"][h] + bias(pre + "attn.b_Q", (H, E))[h]
                k = qk_in @ p[pre + "attn.W_K"][g] + bias(pre + "attn.b_K", (KV, E))[g]
                v = a_in @ p[pre + "attn.W_V"][g] + bias(pre + "attn.b_V", (KV, E))[g]
                if cfg.smear_key:
                    s = torch.sigmoid(p[pre + "attn.smear.alpha"][g])
                    k = torch.cat([k[:1], s * k[1:] + (1 - s) * k[:-1]])
                if cfg.positional == "rotary":
                    q, k = rotate(q), rotate(k)
                raw = (q @ k.T / math.sqrt(E)).tolist()
                scores = torch.full((n, n), float("-inf"))
                for i in range(n):
                    for j in range(n):
                        if allowed(b, i, j):
                            scores[i, j] = raw[i][j] - (alibi_slopes[h] * abs(i - j) if cfg.positional == "alibi" else 0.0)
                pattern = torch.exp(scores - scores.max(-1, keepdim=True).values)
                pattern = pattern / pattern.sum(-1, keepdim=True)
                attn_out = attn_out + (pattern @ v) @ p[pre + "attn.W_O"][h]
            if cfg.norm_position == "pre":
                x = x + attn_out
            else:
                x = norm(x + attn_out, pre + "ln1")
            if not cfg.attn_only:
                m_in = norm(x, pre + "ln2") if cfg.norm_position == "pre" else x
                if cfg.act_fn == "swiglu":
                    g = m_in @ p[pre + "mlp.W_gate"]
                    hidden = g * torch.sigmoid(g) * (m_in @ p[pre + "mlp.W_in"] + bias(pre + "mlp.b_in", cfg.d_mlp_))
                else:
                    hidden = act(m_in @ p[pre + "mlp.W_in"] + bias(pre + "mlp.b_in", cfg.d_mlp_))
                mlp_out = hidden @ p[pre + "mlp.W_out"] + bias(pre + "mlp.b_out", cfg.d_model)
                x = x + mlp_out if cfg.norm_position == "pre" else norm(x + mlp_out, pre + "ln2")
        if cfg.norm_position == "pre" and cfg.n_layers > 0:
            x = norm(x, "ln_final")
        W_U = p["embed.W_E"].T if cfg.tied_embeddings else p["unembed.W_U"]
        out.append(x @ W_U + bias("unembed.b_U", cfg.d_vocab_out_))
    return torch.stack(out)


VARIANTS = {
    "gpt2-like": dict(act_fn="gelu_new"),
    "attn-only-shortformer": dict(attn_only=True, normalization="none", positional="shortformer", use_bias=False),
    "attn-only-0-layers": dict(n_layers=0, attn_only=True, normalization="none"),
    "smeared-key": dict(attn_only=True, normalization="none", positional="shortformer", smear_key=True),
    "llama-like": dict(normalization="rmsnorm", positional="rotary", d_head=6, rotary_dim=4, n_kv_heads=1, act_fn="swiglu", use_bias=False),
    "bert-like": dict(norm_position="post", mask="bidirectional", act_fn="gelu", n_token_types=2),
    "alibi-gqa": dict(positional="alibi", n_heads=4, d_head=3, n_kv_heads=2, act_fn="relu"),
    "sinusoidal-window": dict(positional="sinusoidal", mask="sliding_window", window=3, act_fn="silu", d_model=12),
    "nopos-prefix": dict(positional="none", mask="prefix"),
    "tied-rms-post": dict(tied_embeddings=True, normalization="rmsnorm", norm_position="post", attn_only=True),
}


def _build(overrides) -> Transformer:
    base = dict(n_layers=2, d_mlp=17, **PRIME_SIZES)
    if overrides.get("attn_only"):
        base.pop("d_mlp")
    base.update(overrides)
    model = Transformer(TransformerConfig(**base)).eval()
    with torch.no_grad():  # non-trivial norms and biases so that they are exercised
        g = torch.Generator().manual_seed(1)
        for name, param in model.named_parameters():
            if name.endswith((".w", ".b")) or ".b_" in name or name.endswith("alpha"):
                param.add_(0.3 * torch.randn(param.shape, generator=g))
    return model


@pytest.mark.parametrize("name", list(VARIANTS))
@pytest.mark.parametrize("padded", [False, True], ids=["dense", "padded"])
def test_matches_naive_reference(name, padded):
    model = _build(VARIANTS[name])
    tokens = torch.randint(0, PRIME_SIZES["d_vocab"], (2, 7), generator=torch.Generator().manual_seed(2))
    kwargs = {}
    if model.config.mask == "prefix":
        kwargs["prefix_len"] = 3
    mask = None
    if padded:
        mask = torch.ones(2, 7, dtype=torch.long)
        mask[1, :2] = 0  # left padding
        mask[0, 5:] = 0  # right padding
        kwargs["attention_mask"] = mask
    with torch.no_grad():
        ours = model(tokens, **kwargs)
        _, cache = model.run_with_cache(tokens, **kwargs)
        reference = naive_forward(model, tokens, attention_mask=mask, prefix_len=kwargs.get("prefix_len"))
        # A hook returning a new tensor counts as an edit: the explicit attention path computes z.
        explicit = model.run_with_hooks(tokens, fwd_hooks=[(lambda n: n.endswith("hook_pattern") or n == "hook_embed", lambda t, hook: t.clone())], **kwargs)
    keep = mask.bool() if mask is not None else torch.ones(2, 7, dtype=torch.bool)
    assert (ours - reference)[keep].abs().max() < 1e-5
    assert (explicit - reference)[keep].abs().max() < 1e-5
