"""Hand-built attention-only models whose heads do known things (for the activation-circuit tests).

``induction_model()``: two layers, three heads each, no norm, no biases, learned positions.
The residual stream has four one-hot subspaces: ``tok`` (the token), ``pos`` (the position),
``prev`` (the previous token, written by L0H0) and ``out`` (read by the unembedding).

- ``L0H0`` attends to the previous position (query = position ``p``, key = position ``p' + 1``)
  and writes the attended token into ``prev``: a previous-token head;
- ``L1H0`` matches the current token (query, ``tok``) against the previous token of each key
  (key, ``prev``; K-composition with L0H0) and writes the attended token into ``out``, which
  the unembedding turns into that token's logit: an induction head;
- every other head has zero weights: uniform attention over the causal keys and zero output.

``copying_prev_model()``: one layer; ``L0H0`` attends to the previous position and writes the
attended token into ``out`` (a pure copying head for the copying evaluator).
"""

from __future__ import annotations

import math

import torch

from circuits import Transformer, TransformerConfig

V, N = 11, 13  # vocabulary, context
SHARP = 40.0  # attention logit of the intended key (others get 0): softmax mass > 1 - 13 e^-40
LOGIT = 10.0


def _subspaces():
    tok = list(range(0, V))
    pos = list(range(V, V + N))
    prev = list(range(V + N, 2 * V + N))
    out = list(range(2 * V + N, 3 * V + N))
    return tok, pos, prev, out


def _config(n_layers: int) -> TransformerConfig:
    return TransformerConfig(
        n_layers=n_layers, d_model=3 * V + N, n_heads=3, d_head=N, d_vocab=V, n_ctx=N,
        attn_only=True, normalization="none", positional="learned", use_bias=False,
    )


def _previous_token_head(attn, head: int, write_to: list[int]) -> None:
    tok, pos, _, _ = _subspaces()
    c = SHARP * math.sqrt(attn.d_head)
    for p in range(N):
        attn.W_Q[head, pos[p], p] = c
        if p + 1 < N:
            attn.W_K[head, pos[p], p + 1] = 1.0
    for t in range(V):
        attn.W_V[head, tok[t], t] = 1.0
        attn.W_O[head, t, write_to[t]] = 1.0


def _embed_and_unembed(model: Transformer) -> None:
    tok, pos, _, out = _subspaces()
    for t in range(V):
        model.embed.W_E[t, tok[t]] = 1.0
        model.unembed.W_U[out[t], t] = LOGIT
    for p in range(N):
        model.pos_embed.W_pos[p, pos[p]] = 1.0


def induction_model() -> Transformer:
    model = Transformer(_config(2)).eval()
    tok, _, prev, out = _subspaces()
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        _embed_and_unembed(model)
        _previous_token_head(model.blocks[0].attn, 0, prev)
        attn = model.blocks[1].attn
        c = SHARP * math.sqrt(attn.d_head)
        for t in range(V):
            attn.W_Q[0, tok[t], t] = c
            attn.W_K[0, prev[t], t] = 1.0
            attn.W_V[0, tok[t], t] = 1.0
            attn.W_O[0, t, out[t]] = 1.0
    return model


def copying_prev_model() -> Transformer:
    model = Transformer(_config(1)).eval()
    _, _, _, out = _subspaces()
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        _embed_and_unembed(model)
        _previous_token_head(model.blocks[0].attn, 0, out)
    return model


def uniform_previous_token_score(n_pos: int) -> float:
    """Previous-token score of a head with uniform causal attention: mean over q >= 1 of 1 / (q + 1)."""
    return sum(1.0 / (q + 1) for q in range(1, n_pos)) / (n_pos - 1)
