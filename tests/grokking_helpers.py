"""A hand-built modular-addition model whose answer is known: the Fourier circuit of Nanda et al. written into the weights.

``fourier_model(p, freqs, alpha)`` (float64) computes exactly
``logits[a, b, c] = alpha * sum_k cos(w_k (a + b - c))`` over the key frequencies ``freqs``:

- the embedding of number ``a`` is ``cos/sin(w_k a)`` for each ``k`` of ``freqs`` (dims ``0 .. 2K-1``),
  nothing else: exactly those frequencies; ``=`` embeds to 0; positions are one-hot (dims ``D_POS + i``);
- head 0 (head 1) attends from ``=`` to position 0 (1) only (a score gap of 500) and copies ``a``'s
  (``b``'s) features to dims ``D_A ..`` (``D_B ..``);
- the MLP computes ``cos/sin(w_k (a + b))`` exactly on the ``p^2`` inputs: a piecewise-linear interpolation
  along a generic direction ``t = u . (features of a, b)`` with one ReLU per distinct value of ``t``;
- the unembedding reads ``alpha (cos(w_k (a+b)) cos(w_k c) + sin(w_k (a+b)) sin(w_k c))`` = ``alpha cos(w_k (a + b - c))``.
"""

from __future__ import annotations

import numpy as np
import torch

from circuits import Transformer, TransformerConfig

D_POS, D_A = 8, 16


def _features(x: np.ndarray, freqs, p: int) -> np.ndarray:
    return np.stack([f(2 * np.pi * k * x / p) for k in freqs for f in (np.cos, np.sin)], axis=-1)


def fourier_model(p: int = 11, freqs=(2, 5), alpha: float = 5.0, seed: int = 0) -> Transformer:
    n_feat = 2 * len(freqs)
    d_b, d_out = D_A + n_feat, D_A + 2 * n_feat
    d_model, d_head = d_out + n_feat + 2, 8
    cfg = TransformerConfig(n_layers=1, d_model=d_model, n_heads=2, d_head=d_head, d_mlp=p * p, d_vocab=p + 1, d_vocab_out=p, n_ctx=3,
                            act_fn="relu", normalization="none", positional="learned", seed=seed)
    model = Transformer(cfg).double().eval()
    state = {name: torch.zeros_like(param) for name, param in model.state_dict().items() if param.is_floating_point()}
    numbers = np.arange(p)
    state["embed.W_E"][:p, :n_feat] = torch.tensor(_features(numbers, freqs, p))
    for i in range(3):
        state["pos_embed.W_pos"][i, D_POS + i] = 1.0
    for head, (key_pos, dest) in enumerate(((0, D_A), (1, d_b))):
        state["blocks.0.attn.W_Q"][head, D_POS + 2, 0] = 500.0 * np.sqrt(d_head)
        state["blocks.0.attn.W_K"][head, D_POS + key_pos, 0] = 1.0
        state["blocks.0.attn.W_V"][head, :n_feat, :n_feat] = torch.eye(n_feat)
        state["blocks.0.attn.W_O"][head, :n_feat, dest:dest + n_feat] = torch.eye(n_feat)
    _interpolating_mlp(state, p, freqs, n_feat, d_out, seed)
    classes = _features(numbers, freqs, p)  # [c, 2K]: cos(w_k c), sin(w_k c)
    state["unembed.W_U"][d_out:d_out + n_feat, :] = torch.tensor(alpha * classes.T)
    model.load_state_dict(state, strict=False)
    return model


def _interpolating_mlp(state: dict, p: int, freqs, n_feat: int, d_out: int, seed: int) -> None:
    """Neurons ``relu(t - t_i)``, one per distinct ``t`` but the largest, whose output interpolates ``cos/sin(w_k (a + b))``."""
    a, b = np.meshgrid(np.arange(p), np.arange(p), indexing="ij")
    inputs = np.concatenate([_features(a.ravel(), freqs, p), _features(b.ravel(), freqs, p)], axis=1)  # [p^2, 2 * 2K]
    targets = _features((a + b).ravel(), freqs, p)  # [p^2, 2K]
    u = np.random.default_rng(seed).normal(size=inputs.shape[1])
    t = inputs @ u
    order = np.argsort(t)
    t, targets = t[order], targets[order]
    assert np.all(np.diff(t) > 1e-6), "pick another seed: two pairs share a value of t"
    slopes = np.diff(targets, axis=0) / np.diff(t)[:, None]  # [n - 1, 2K]
    kinks = np.concatenate([slopes[:1], np.diff(slopes, axis=0)])  # slope change at each t_i
    n = len(t) - 1
    state["blocks.0.mlp.W_in"][D_A:D_A + 2 * n_feat, :n] = torch.tensor(np.outer(u, np.ones(n)))
    state["blocks.0.mlp.b_in"][:n] = torch.tensor(-t[:n])
    state["blocks.0.mlp.W_out"][:n, d_out:d_out + n_feat] = torch.tensor(kinks)
    state["blocks.0.mlp.b_out"][d_out:d_out + n_feat] = torch.tensor(targets[0])
