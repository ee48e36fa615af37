"""Hooks, the activation cache, TransformerLens's tools on our model, input errors, dtypes."""

from __future__ import annotations

import pytest
import torch
from transformer_lens import ActivationCache, SVDInterpreter, head_detector, patching

from circuits import Transformer, TransformerConfig
from tests.conftest import tiny_model

EXPECTED_BLOCK_HOOKS = [
    "hook_resid_pre", "ln1.hook_scale", "ln1.hook_normalized", "attn.hook_q", "attn.hook_k", "attn.hook_v",
    "attn.hook_attn_scores", "attn.hook_pattern", "attn.hook_z", "attn.hook_result", "hook_attn_out",
    "hook_resid_mid", "ln2.hook_scale", "ln2.hook_normalized", "mlp.hook_pre", "mlp.hook_post", "hook_mlp_out",
    "hook_resid_post",
]


def test_hook_names_follow_transformerlens(model):
    expected = {"hook_embed", "hook_pos_embed", "ln_final.hook_scale", "ln_final.hook_normalized"}
    expected |= {f"blocks.{l}.{name}" for l in range(2) for name in EXPECTED_BLOCK_HOOKS}
    assert set(model.hook_dict) == expected


def test_variant_hooks_exist_only_where_they_apply():
    rotary = tiny_model(positional="rotary", d_head=6, act_fn="swiglu")
    assert {"blocks.0.attn.hook_rot_q", "blocks.0.attn.hook_rot_k", "blocks.0.mlp.hook_pre_linear"} <= set(rotary.hook_dict)
    assert "hook_pos_embed" not in rotary.hook_dict
    shortformer = tiny_model(positional="shortformer", attn_only=True, normalization="none", smear_key=True)
    assert "hook_shortformer_pos_embed" in shortformer.hook_dict and "hook_pos_embed" not in shortformer.hook_dict
    assert "blocks.0.attn.hook_smeared_k" in shortformer.hook_dict
    assert "blocks.0.hook_resid_mid" not in shortformer.hook_dict and "blocks.0.ln1.hook_scale" not in shortformer.hook_dict


@pytest.mark.parametrize(
    "overrides",
    [dict(), dict(positional="rotary", d_head=6, act_fn="swiglu", normalization="rmsnorm"), dict(smear_key=True, positional="shortformer"),
     dict(norm_position="post", n_token_types=2, mask="bidirectional")],
    ids=["gpt2", "llama", "smeared", "bert"],
)
def test_every_hook_fires_and_cache_keys_equal_hook_names(overrides, tokens):
    model = tiny_model(**overrides)
    fired = []
    model.run_with_hooks(tokens, fwd_hooks=[(lambda name: True, lambda t, hook: fired.append(hook.name))])
    assert sorted(fired) == sorted(model.hook_dict)
    _, cache = model.run_with_cache(tokens)
    assert isinstance(cache, ActivationCache)
    assert sorted(cache.keys()) == sorted(model.hook_dict)


def test_identity_hooks_change_nothing(model, tokens):
    clean = model(tokens)
    hooked = model.run_with_hooks(tokens, fwd_hooks=[(lambda name: True, lambda t, hook: t)])
    assert torch.equal(clean, hooked)  # an observing hook changes no number (the fused paths still run)


def test_hooks_can_edit_activations(model, tokens):
    def zero(t, hook):
        return torch.zeros_like(t)

    edited = model.run_with_hooks(tokens, fwd_hooks=[("blocks.1.hook_resid_post", zero)])
    assert torch.allclose(edited, model.unembed(torch.zeros(2, 7, 11)), atol=1e-6)  # ln_final(0) = b = 0 at init


def test_hooks_are_removed_even_when_forward_raises(model, tokens):
    def boom(t, hook):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        model.run_with_hooks(tokens, fwd_hooks=[("blocks.0.attn.hook_pattern", boom)])
    assert not any(hp._forward_hooks for hp in model.hook_dict.values())
    with pytest.raises(RuntimeError, match="boom"):
        with model.hooks(fwd_hooks=[("hook_embed", boom)]):
            model(tokens)
    assert not any(hp._forward_hooks for hp in model.hook_dict.values())


def test_unknown_hook_name_suggests_close_matches(model, tokens):
    with pytest.raises(KeyError, match=r"did you mean \['blocks.0.attn.hook_pattern', "):
        model.run_with_hooks(tokens, fwd_hooks=[("blocks.0.attn.hook_patern", lambda t, hook: t)])
    with pytest.raises(KeyError, match="hook_resid_pre"):
        model.run_with_cache(tokens, names_filter=["blocks.0.resid_pre"])


def test_names_filter_that_matches_nothing_is_an_error(model, tokens):
    with pytest.raises(ValueError, match="matched no hook point"):
        model.run_with_cache(tokens, names_filter=lambda name: name.endswith("hook_nothing"))
    with pytest.raises(ValueError, match="empty list"):
        model.run_with_cache(tokens, names_filter=[])


def test_names_filter_selects(model, tokens):
    _, cache = model.run_with_cache(tokens, names_filter=lambda n: n.endswith("hook_pattern"))
    assert sorted(cache.keys()) == ["blocks.0.attn.hook_pattern", "blocks.1.attn.hook_pattern"]
    _, cache = model.run_with_cache(tokens, names_filter="hook_embed")
    assert list(cache.keys()) == ["hook_embed"]


def test_decompose_resid_sums_to_final_residual_and_logits(attn_only_model, tokens):
    model = tiny_model(attn_only=True, normalization="none", positional="learned", use_bias=False)
    logits, cache = model.run_with_cache(tokens)
    components, labels = cache.decompose_resid(return_labels=True)
    assert labels == ["embed", "pos_embed", "0_attn_out", "1_attn_out"]
    assert torch.allclose(components.sum(0), cache["blocks.1.hook_resid_post"], atol=1e-5)
    assert torch.allclose(components.sum(0) @ model.W_U, logits, atol=1e-5)
    # Shortformer: positions are not in the residual stream, so there is no pos_embed component.
    logits, cache = attn_only_model.run_with_cache(tokens)
    components, labels = cache.decompose_resid(return_labels=True)
    assert labels == ["embed", "0_attn_out", "1_attn_out"]
    assert torch.allclose(components.sum(0) @ attn_only_model.W_U, logits, atol=1e-5)


def test_stack_head_results_and_accumulated_resid(model, tokens):
    _, cache = model.run_with_cache(tokens)
    heads, labels = cache.stack_head_results(return_labels=True)
    assert labels[:4] == ["L0H0", "L0H1", "L0H2", "L1H0"]
    assert heads.shape == (6, 2, 7, 11)
    attn_out = heads[:3].sum(0) + model.blocks[0].attn.b_O
    assert torch.allclose(attn_out, cache["blocks.0.hook_attn_out"], atol=1e-5)
    resid, labels = cache.accumulated_resid(return_labels=True)
    assert labels == ["0_pre", "1_pre", "final_post"]
    normalized = cache.apply_ln_to_stack(resid, layer=-1)
    assert normalized.shape == resid.shape


def test_logit_attrs_complete_with_trained_like_norm(tokens):
    """Sum of direct logit attributions plus the constant terms equals the logit, even with a non-trivial ln_final."""
    model = tiny_model(attn_only=True)
    with torch.no_grad():
        model.ln_final.w.mul_(1.7)
        model.ln_final.b.add_(0.3)
    logits, cache = model.run_with_cache(tokens)
    components = cache.decompose_resid(layer=-1, mode="all", return_labels=False)[:, :, -1]  # [component, batch, d_model]
    answer = tokens[:, -1]
    attrs = cache.logit_attrs(components, tokens=answer, pos_slice=-1)  # [component, batch]
    constant = (model.ln_final.b @ model.W_U + model.b_U)[answer]
    assert torch.allclose(attrs.sum(0) + constant, logits[torch.arange(2), -1, answer], atol=1e-4)


def test_transformerlens_tools_accept_the_model(model, tokens):
    corrupted = tokens.flip(-1)
    _, clean_cache = model.run_with_cache(tokens)

    def metric(logits):
        return logits[:, -1].logsumexp(-1).mean()

    resid_patch = patching.get_act_patch_resid_pre(model, corrupted, clean_cache, metric)
    assert resid_patch.shape == (2, 7)
    scores = head_detector.detect_head(model, tokens[0, :5], "previous_token_head")
    assert scores.shape == (2, 3)
    svd = SVDInterpreter(model).get_singular_vectors("OV", layer_index=1, head_index=0, num_vectors=2)
    assert svd.shape == (13, 1, 2)


def test_patching_matches_manual_patch(model, tokens):
    corrupted = tokens.flip(-1)
    _, clean_cache = model.run_with_cache(tokens)

    def metric(logits):
        return logits[0, -1, 0]

    patched = patching.get_act_patch_resid_pre(model, corrupted, clean_cache, metric)

    def put(t, hook):
        t = t.clone()
        t[:, 3] = clean_cache["blocks.1.hook_resid_pre"][:, 3]
        return t

    manual = metric(model.run_with_hooks(corrupted, fwd_hooks=[("blocks.1.hook_resid_pre", put)]))
    assert float(patched[1, 3]) == pytest.approx(float(manual), abs=1e-5)


@pytest.mark.parametrize(
    "bad, error, message",
    [
        (torch.rand(2, 7), ValueError, "tokens must be integers"),
        (torch.zeros(7, dtype=torch.long), ValueError, r"add a batch axis"),
        (torch.zeros(1, 2, 3, dtype=torch.long), ValueError, r"shape \[batch, pos\]"),
        (torch.full((1, 3), 13), ValueError, "token id 13 is out of range for d_vocab=13"),
        (torch.full((1, 3), -1), ValueError, "token id -1 is out of range"),
        (torch.zeros(1, 8, dtype=torch.long), ValueError, "sequence length 8 exceeds n_ctx=7"),
        ([[1, 2]], TypeError, "torch integer tensor"),
    ],
)
def test_bad_tokens_raise_clear_errors(model, bad, error, message):
    with pytest.raises(error, match=message):
        model(bad)


def test_other_input_errors(model, tokens):
    with pytest.raises(ValueError, match="return_type='logit'"):
        model(tokens, return_type="logit")
    with pytest.raises(ValueError, match="attention_mask must be a tensor of shape"):
        model(tokens, attention_mask=torch.ones(2, 6))
    with pytest.raises(ValueError, match="at least 2 tokens"):
        model(tokens[:, :1], return_type="loss")
    with pytest.raises(ValueError, match="n_token_types=0"):
        model(tokens, token_type_ids=torch.zeros_like(tokens))
    with pytest.raises(TypeError, match="TransformerConfig"):
        Transformer({"n_layers": 1})  # type: ignore[arg-type]


def test_schemes_without_a_position_table_accept_long_sequences():
    model = tiny_model(positional="rotary", d_head=6)
    assert model(torch.zeros(1, 12, dtype=torch.long)).shape == (1, 12, 13)


def test_zero_layer_model_is_embed_then_unembed(tokens):
    model = tiny_model(n_layers=0, attn_only=True, normalization="none", positional="none", use_bias=False)
    assert torch.allclose(model(tokens), model.W_E[tokens] @ model.W_U, atol=1e-6)
    assert model.W_Q.shape == (0, 3, 11, 5)


def test_stacked_views_and_factored_circuits(model):
    assert model.W_Q.shape == (2, 3, 11, 5) and model.W_O.shape == (2, 3, 5, 11)
    assert model.W_in.shape == (2, 11, 17) and model.b_O.shape == (2, 11)
    qk = model.QK[1, 2].AB
    assert torch.allclose(qk, model.blocks[1].attn.W_Q[2] @ model.blocks[1].attn.W_K[2].T, atol=1e-6)
    ov = model.OV[0, 1].AB
    assert torch.allclose(ov, model.blocks[0].attn.W_V[1] @ model.blocks[0].attn.W_O[1], atol=1e-6)
    no_bias = tiny_model(use_bias=False)
    assert (no_bias.b_Q == 0).all() and no_bias.b_Q.shape == (2, 3, 5)


def test_parameter_names_and_shapes_follow_transformerlens(model):
    shapes = {name: tuple(p.shape) for name, p in model.named_parameters()}
    assert shapes["embed.W_E"] == (13, 11) and shapes["pos_embed.W_pos"] == (7, 11)
    assert shapes["blocks.0.attn.W_Q"] == (3, 11, 5) and shapes["blocks.0.attn.W_O"] == (3, 5, 11)
    assert shapes["blocks.0.attn.b_Q"] == (3, 5) and shapes["blocks.0.attn.b_O"] == (11,)
    assert shapes["blocks.1.mlp.W_in"] == (11, 17) and shapes["blocks.1.mlp.W_out"] == (17, 11)
    assert shapes["unembed.W_U"] == (11, 13) and shapes["unembed.b_U"] == (13,)
    gqa = tiny_model(n_heads=4, d_head=3, n_kv_heads=2)
    assert tuple(gqa.blocks[0].attn.W_K.shape) == (2, 11, 3)


def test_same_seed_same_weights_different_seed_different():
    a, b, c = tiny_model(seed=3), tiny_model(seed=3), tiny_model(seed=4)
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))
    assert not torch.equal(a.W_E, c.W_E)


def test_tl_config_view_reads_through(model):
    cfg = model.cfg
    assert cfg.normalization_type == "LN" and cfg.positional_embedding_type == "standard"
    assert cfg.n_key_value_heads is None and cfg.d_head == 5 and cfg.device == torch.device("cpu")
    assert cfg.n_layers == 2 and cfg.dtype == torch.float32
    assert tiny_model(normalization="rmsnorm").cfg.normalization_type == "RMS"
    with pytest.raises(AttributeError, match="read-only"):
        cfg.n_layers = 3


def test_bfloat16_forward_and_dtype_changes(tokens):
    model = tiny_model()
    reference = model(tokens)
    model = model.to(torch.bfloat16)
    logits = model(tokens)
    assert logits.dtype == torch.bfloat16
    assert (logits.float() - reference).abs().max() < 0.1
    _, cache = model.run_with_cache(tokens)
    assert cache["blocks.0.attn.hook_pattern"].dtype == torch.bfloat16
    double = tiny_model().to(torch.float64)
    assert double(tokens).dtype == torch.float64
    assert model.cfg.dtype == torch.bfloat16
