"""Helpers for the weight-circuit tests: randomised tiny models and dense references written out by hand."""

from __future__ import annotations

import torch

from conftest import tiny_model


def randomized(seed: int = 0, scale: float = 0.5, **overrides):
    """A tiny model whose every parameter (norm gains and biases included) is random, so folding is not trivial."""
    model = tiny_model(**overrides)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            noise = torch.randn(param.shape, generator=generator) * scale
            if name.endswith(".w"):
                param.copy_(1.0 + noise)  # gains away from 0
            else:
                param.copy_(noise)
    return model


class StubTokenizer:
    """Stands in for circuits' Tokenizer: only ``token_str`` is used by the weight circuits."""

    def token_str(self, id: int) -> str:
        return f"t{int(id)}"


def dense_folded(model):
    """Folded weights computed the obvious way, layer by layer (the reference for folded_weights)."""
    cfg = model.config
    centre = cfg.normalization == "layernorm"
    group = cfg.n_heads // cfg.n_kv_heads_

    def c(W, dim):
        return W - W.mean(dim, keepdim=True) if centre else W

    Ws = {"Q": [], "K": [], "V": [], "O": []}
    for block in model.blocks:
        attn = block.attn
        w = block.ln1.w.detach() if cfg.normalization != "none" else torch.ones(cfg.d_model)
        for x in "QKV":
            W = getattr(attn, f"W_{x}").detach()
            if x != "Q":
                W = W.repeat_interleave(group, dim=0)
            Ws[x].append(c(w[None, :, None] * W, 1))
        Ws["O"].append(c(attn.W_O.detach(), 2))
    W_U = model.W_U.detach()
    if cfg.normalization != "none" and cfg.n_layers:
        W_U = c(model.ln_final.w.detach()[:, None] * W_U, 0)
    return {k: torch.stack(v) for k, v in Ws.items()} | {"U": W_U, "E": model.W_E.detach()}
