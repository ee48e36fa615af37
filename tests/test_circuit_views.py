"""Dense views of factored circuits (circuits.analysis.weights.circuit_views) and picking heads by role (circuits.analysis.head_roles)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from circuits.analysis.head_roles import copying_heads, positional_heads
from circuits.analysis.weights.circuit_views import has_position_table, positional_attention, token_block
from circuits.analysis.weights.qkov import full_ov_circuit, full_qk_circuit, positional_qk_circuit
from weights_helpers import randomized

ONE_LAYER = dict(n_layers=1, attn_only=True, normalization="none", positional="shortformer")


# ---- token_block --------------------------------------------------------------------------------
@pytest.mark.parametrize("circuit", [full_ov_circuit, full_qk_circuit])
def test_token_block_is_the_dense_circuit_on_the_same_tokens_on_both_axes(circuit):
    model = randomized(seed=3, **ONE_LAYER)
    tokens = torch.tensor([5, 0, 11, 3])  # any order: rows and columns follow it
    full = circuit(model, 0, None)  # [head, d_vocab, d_vocab]
    block = token_block(full, tokens)
    assert block.shape == (model.config.n_heads, 4, 4)
    torch.testing.assert_close(block, full.AB[:, tokens][:, :, tokens])
    torch.testing.assert_close(block[1].diagonal(), full.AB[1].diagonal()[tokens])  # the diagonal: each token with itself
    one_head = token_block(circuit(model, 0, 2), tokens)
    torch.testing.assert_close(one_head, block[2])


def test_token_block_refuses_bad_tokens():
    full = full_ov_circuit(randomized(**ONE_LAYER), 0, None)
    with pytest.raises((ValueError, TypeError)):  # TypeError: jaxtyping's shape check, when it is on
        token_block(full, torch.tensor([[1, 2]]))
    with pytest.raises(ValueError, match="token ids must be in"):
        token_block(full, torch.tensor([1, 13]))


# ---- positional_attention -----------------------------------------------------------------------
@pytest.mark.parametrize("positional", ["shortformer", "learned"])
def test_positional_attention_is_the_causal_softmax_of_the_positional_qk_circuit(positional):
    model = randomized(seed=5, **{**ONE_LAYER, "positional": positional})
    assert has_position_table(model)
    n = 5
    pattern = positional_attention(model, 0, n)
    scores = positional_qk_circuit(model, 0, None).AB[:, :n, :n] / math.sqrt(model.config.d_head)
    expected = scores.masked_fill(~torch.ones(n, n, dtype=torch.bool).tril(), float("-inf")).softmax(-1)
    torch.testing.assert_close(pattern, expected)
    torch.testing.assert_close(pattern.sum(-1), torch.ones(model.config.n_heads, n))
    assert (pattern.triu(1) == 0).all() and (pattern[:, 0, 0] == 1).all()  # causal: position 0 can only attend to itself


@pytest.mark.parametrize("positional", [dict(positional="alibi"), dict(positional="rotary", rotary_dim=4)])
def test_positional_attention_needs_a_position_table(positional):
    model = randomized(**{**ONE_LAYER, **positional})
    assert not has_position_table(model)
    with pytest.raises(ValueError, match="positional_qk_circuit"):
        positional_attention(model, 0, 3)


def test_positional_attention_refuses_bad_lengths():
    model = randomized(**ONE_LAYER)
    for n_pos in (0, model.config.n_ctx + 1):
        with pytest.raises(ValueError, match="n_pos"):
            positional_attention(model, 0, n_pos)


# ---- head roles ---------------------------------------------------------------------------------
HEADS = ["L0H0", "L0H1", "L0H2"]


def test_copying_heads_above_the_threshold():
    assert copying_heads(HEADS, [0.6, 0.3, -0.9], 0.3) == ["L0H0"]  # strictly above
    assert copying_heads(HEADS, np.array([0.31, float("nan"), 1.0]), 0.3) == ["L0H0", "L0H2"]
    assert copying_heads(HEADS, [0.1, 0.2, 0.0], 0.3) == []


def test_positional_heads_sum_previous_and_current_token_attention():
    assert positional_heads(HEADS, [0.45, 0.1, 0.0], [0.1, 0.1, 0.5], 0.5) == ["L0H0"]
    assert positional_heads(HEADS, [0.9, 0.0, 0.6], [0.0, 0.9, 0.0], 0.5) == HEADS


def test_head_roles_need_one_score_per_head():
    with pytest.raises(ValueError, match="one score per head"):
        copying_heads(HEADS, [0.5, 0.5], 0.3)
    with pytest.raises(ValueError, match="current has 2 scores"):
        positional_heads(HEADS, [0.5, 0.5, 0.5], [0.1, 0.1], 0.5)
