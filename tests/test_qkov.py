"""Per-head QK/OV circuits: equal to the explicit dense products, and to what the model actually computes."""

from __future__ import annotations

import math

import pytest
import torch

import circuits
from circuits.analysis.weights.qkov import direct_path, head_label_grid, ov_circuit, positional_qk_circuit, qk_circuit, rotary_qk_circuit, rotation_matrix
from weights_helpers import dense_folded, randomized

CIRCUIT_CONFIGS = {
    "no-norm": dict(attn_only=True, normalization="none", positional="shortformer"),
    "layernorm": dict(),
    "rmsnorm-gqa": dict(normalization="rmsnorm", n_kv_heads=1),
    "alibi": dict(positional="alibi", attn_only=True),
    "vocab-out": dict(d_vocab_out=17),
}


@pytest.mark.parametrize("name", list(CIRCUIT_CONFIGS))
def test_full_circuits_equal_dense_products(name):
    model = randomized(seed=11, **CIRCUIT_CONFIGS[name])
    w = dense_folded(model)
    for layer in range(model.config.n_layers):
        for head in range(model.config.n_heads):
            qk = circuits.full_qk_circuit(model, layer, head)
            ov = circuits.full_ov_circuit(model, layer, head)
            dense_qk = w["E"] @ w["Q"][layer, head] @ w["K"][layer, head].T @ w["E"].T
            dense_ov = w["E"] @ w["V"][layer, head] @ w["O"][layer, head] @ w["U"]
            assert qk.shape == (model.config.d_vocab, model.config.d_vocab)
            assert ov.shape == (model.config.d_vocab, model.config.d_vocab_out_)
            torch.testing.assert_close(qk.AB, dense_qk, atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(ov.AB, dense_ov, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(direct_path(model).AB, w["E"] @ w["U"], atol=1e-5, rtol=1e-5)


def test_gqa_heads_in_a_group_share_keys_and_values():
    model = randomized(seed=12, n_kv_heads=1, normalization="none")
    raw_K = model.blocks[1].attn.W_K.detach()[0]
    for head in range(model.config.n_heads):
        qk = circuits.full_qk_circuit(model, 1, head)
        dense = model.W_E @ model.blocks[1].attn.W_Q[head] @ raw_K.T @ model.W_E.T
        torch.testing.assert_close(qk.AB, dense.detach(), atol=1e-5, rtol=1e-5)


def test_selection_keeps_axes_and_matches_single_heads():
    model = randomized(seed=13)
    every = circuits.full_ov_circuit(model, None, None)
    layer1 = circuits.full_ov_circuit(model, 1, None)
    head2 = circuits.full_qk_circuit(model, None, 2)
    assert every.shape == (2, 3, 13, 13) and layer1.shape == (3, 13, 13) and head2.shape == (2, 13, 13)
    torch.testing.assert_close(every.AB[1, 2], circuits.full_ov_circuit(model, 1, 2).AB)
    torch.testing.assert_close(layer1.AB[0], circuits.full_ov_circuit(model, 1, 0).AB)
    torch.testing.assert_close(head2.AB[0], circuits.full_qk_circuit(model, 0, 2).AB)
    assert qk_circuit(model).shape == (2, 3, 11, 11) and ov_circuit(model, 0, 1).shape == (11, 11)
    assert head_label_grid(model)[1][2] == "L1H2"


def test_one_layer_model_attention_scores_and_logits_from_circuits(tokens):
    """Ground truth: in a 1-layer attention-only model without norm, biases or positions, the circuits are the model."""
    model = randomized(seed=14, n_layers=1, attn_only=True, normalization="none", positional="none", use_bias=False)
    _, cache = model.run_with_cache(tokens, names_filter=["blocks.0.attn.hook_attn_scores", "blocks.0.attn.hook_pattern"])
    scores, pattern = cache["blocks.0.attn.hook_attn_scores"], cache["blocks.0.attn.hook_pattern"]
    qk = circuits.full_qk_circuit(model, 0, None).AB / math.sqrt(model.config.d_head_)  # [head, query_token, key_token]
    expected = qk[:, tokens[:, :, None], tokens[:, None, :]].permute(1, 0, 2, 3)  # [batch, head, query_pos, key_pos]
    causal = torch.ones(tokens.shape[1], tokens.shape[1], dtype=torch.bool).tril()
    torch.testing.assert_close(scores[..., causal], expected[..., causal], atol=1e-5, rtol=1e-5)

    ov = circuits.full_ov_circuit(model, 0, None).AB  # [head, input_token, output_token]
    direct = direct_path(model).AB[tokens]  # [batch, pos, d_vocab_out]
    from_heads = torch.einsum("bhqk,hbkv->bqv", pattern, ov[:, tokens])
    torch.testing.assert_close(model(tokens), direct + from_heads, atol=1e-5, rtol=1e-5)


def test_positional_qk_circuit_is_what_the_model_computes():
    """Shortformer model with LayerNorm and zero token embeddings: scores are the positional circuit (raw W_Q/W_K)."""
    model = randomized(seed=15, n_layers=1, attn_only=True, positional="shortformer")
    with torch.no_grad():
        model.embed.W_E.zero_()
        model.blocks[0].ln1.b.zero_()  # ln1(0) = b; zero it so the query/key input is the position alone
        model.blocks[0].attn.b_Q.zero_()
        model.blocks[0].attn.b_K.zero_()
    tokens = torch.zeros(1, model.config.n_ctx, dtype=torch.long)
    _, cache = model.run_with_cache(tokens, names_filter="blocks.0.attn.hook_attn_scores")
    pos = positional_qk_circuit(model, 0, None).AB / math.sqrt(model.config.d_head_)
    causal = torch.ones(tokens.shape[1], tokens.shape[1], dtype=torch.bool).tril()
    torch.testing.assert_close(cache["blocks.0.attn.hook_attn_scores"][0][:, causal], pos[:, causal], atol=1e-5, rtol=1e-5)


def test_positional_qk_circuit_learned_is_folded_dense_product():
    model = randomized(seed=16, positional="learned")
    w = dense_folded(model)
    W_pos = model.W_pos.detach()
    dense = W_pos @ w["Q"][1, 0] @ w["K"][1, 0].T @ W_pos.T
    torch.testing.assert_close(positional_qk_circuit(model, 1, 0).AB, dense, atol=1e-5, rtol=1e-5)


def test_rotary_qk_circuit_is_what_the_model_computes(tokens):
    model = randomized(seed=17, n_layers=1, attn_only=True, normalization="none", positional="rotary", use_bias=False, rotary_dim=4)
    _, cache = model.run_with_cache(tokens, names_filter="blocks.0.attn.hook_attn_scores")
    scores = cache["blocks.0.attn.hook_attn_scores"]
    scale = 1 / math.sqrt(model.config.d_head_)
    for q in range(tokens.shape[1]):
        for k in range(q + 1):
            circuit = rotary_qk_circuit(model, 0, None, q - k).AB * scale  # [head, query_token, key_token]
            torch.testing.assert_close(scores[:, :, q, k], circuit[:, tokens[:, q], tokens[:, k]].T, atol=1e-5, rtol=1e-5)


def test_rotation_matrix_composes_by_offsets():
    model = randomized(positional="rotary", rotary_dim=4)
    R = lambda p: rotation_matrix(model, p).double()  # noqa: E731
    torch.testing.assert_close(R(5) @ R(2).T, R(3))
    torch.testing.assert_close(R(0), torch.eye(5, dtype=torch.float64))


def test_undefined_circuits_raise_value_errors():
    with pytest.raises(ValueError, match="relative|offset"):
        circuits.full_qk_circuit(randomized(positional="rotary", rotary_dim=4), 0, 0)
    with pytest.raises(ValueError, match="ALiBi"):
        positional_qk_circuit(randomized(positional="alibi"), 0, 0)
    with pytest.raises(ValueError, match="rotary"):
        positional_qk_circuit(randomized(positional="rotary", rotary_dim=4), 0, 0)
    with pytest.raises(ValueError, match="no positional"):
        positional_qk_circuit(randomized(positional="none"), 0, 0)
    model = randomized()
    with pytest.raises(ValueError, match="layer=2 is out of range"):
        circuits.full_ov_circuit(model, 2, 0)
    with pytest.raises(ValueError, match="head=3 is out of range"):
        circuits.full_qk_circuit(model, 0, 3)
    with pytest.raises(ValueError, match="out of range"):
        circuits.full_qk_circuit(model, -1, 0)
    with pytest.raises(TypeError, match="layer"):  # our check or jaxtyping's, both name the parameter
        circuits.full_qk_circuit(model, 0.0, 0)
    with pytest.raises(ValueError, match="n_layers=0"):
        circuits.full_ov_circuit(randomized(n_layers=0), 0, 0)
    with pytest.raises(ValueError, match="not 'rotary'"):
        rotation_matrix(model, 1)
