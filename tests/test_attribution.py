import pytest
import torch
from conftest import tiny_model

import circuits
from circuits import DecompositionError


def _tokens(batch=3, pos=7, seed=0):
    return torch.randint(0, 13, (batch, pos), generator=torch.Generator().manual_seed(seed))


def _trained_looking(model):
    """Norm gains/biases and all biases away from their init values, so folding mistakes show."""
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, param in model.named_parameters():
            leaf = name.rsplit(".", 1)[-1]
            if leaf == "w":
                param.copy_(torch.rand(param.shape, generator=generator) + 0.5)
            elif leaf.startswith("b"):
                param.copy_(torch.randn(param.shape, generator=generator) * 0.3)
    return model


@pytest.mark.parametrize(
    "overrides",
    [dict(), dict(normalization="rmsnorm", act_fn="swiglu"), dict(attn_only=True, normalization="none"), dict(n_kv_heads=1)],
    ids=["layernorm+mlp", "rmsnorm+swiglu", "attn-only-no-norm", "gqa"],
)
def test_dla_terms_sum_to_logits(overrides):
    model = _trained_looking(tiny_model(**overrides))
    tokens = _tokens()
    dla = circuits.direct_logit_attribution(model, tokens)
    assert dla.max_error < 1e-5
    torch.testing.assert_close(dla.terms.sum(0), model(tokens), atol=1e-5, rtol=1e-5)
    expected = ["embed", "pos_embed"] + [f"L{l}H{h}" for l in range(2) for h in range(3)]
    if not model.config.attn_only:
        expected = ["embed", "pos_embed", "L0H0", "L0H1", "L0H2", "mlp0", "L1H0", "L1H1", "L1H2", "mlp1"]
    assert dla.labels == expected + ["bias"]


def test_dla_head_term_by_hand():
    model = _trained_looking(tiny_model())
    tokens = _tokens()
    dla = circuits.direct_logit_attribution(model, tokens)
    _, cache = model.run_with_cache(tokens)
    r = cache["blocks.1.attn.hook_result"][:, :, 2]
    expected = (r - r.mean(-1, keepdim=True)) / cache["ln_final.hook_scale"] * model.ln_final.w @ model.W_U
    torch.testing.assert_close(dla["L1H2"], expected)
    # the contribution to the actual next token and to given targets
    torch.testing.assert_close(dla.next_token(tokens)[dla.labels.index("L1H2")], expected[:, :-1].gather(-1, tokens[:, 1:, None])[..., 0])
    torch.testing.assert_close(dla.at(tokens)[dla.labels.index("L1H2")], expected.gather(-1, tokens[..., None])[..., 0])


def test_dla_heads_agree_with_transformer_lens_logit_attrs():
    model = _trained_looking(tiny_model())
    tokens = _tokens()
    dla = circuits.direct_logit_attribution(model, tokens)
    _, cache = model.run_with_cache(tokens)
    heads, labels = cache.stack_head_results(layer=-1, return_labels=True)
    tl = cache.logit_attrs(heads, tokens=tokens)  # applies the final LayerNorm scale itself
    ours = torch.stack([dla.at(tokens)[dla.labels.index(label)] for label in labels])
    torch.testing.assert_close(ours, tl, atol=1e-5, rtol=1e-5)


def test_dla_rejects_post_norm():
    with pytest.raises(ValueError, match="post-norm"):
        circuits.direct_logit_attribution(tiny_model(norm_position="post"), _tokens())


def test_logit_lens_normalizes_each_layer_with_its_own_statistics():
    model = _trained_looking(tiny_model())
    tokens = _tokens()
    lens = circuits.logit_lens(model, tokens)
    assert lens.labels == ["resid_pre0", "resid_pre1", "final"]
    assert lens.max_error < 1e-5
    torch.testing.assert_close(lens.logits[-1], model(tokens), atol=1e-5, rtol=1e-5)
    _, cache = model.run_with_cache(tokens)
    resid = cache["blocks.1.hook_resid_pre"]
    centred = resid - resid.mean(-1, keepdim=True)
    own = centred / (centred.pow(2).mean(-1, keepdim=True) + model.config.norm_eps).sqrt()
    expected = (own * model.ln_final.w + model.ln_final.b) @ model.W_U + model.b_U
    torch.testing.assert_close(lens.logits[1], expected, atol=1e-5, rtol=1e-5)
    # normalizing with the final stream's scale instead gives something else
    wrong = (centred / cache["ln_final.hook_scale"] * model.ln_final.w + model.ln_final.b) @ model.W_U + model.b_U
    assert (lens.logits[1] - wrong).abs().max() > 1e-2
    assert lens.log_probs().shape == lens.logits.shape


def test_logit_lens_zero_layer():
    model = tiny_model(n_layers=0)
    lens = circuits.logit_lens(model, _tokens())
    assert lens.labels == ["final"] and lens.max_error == 0.0


def test_dla_completeness_failure_raises():
    broken = tiny_model()
    # attn_out gains something no head wrote (not a constant vector, which the final LayerNorm would centre away)
    broken.add_perma_hook("blocks.0.hook_attn_out", lambda out, hook: out + torch.linspace(0, 1, out.shape[-1]))
    with pytest.raises(DecompositionError, match="direct logit attribution"):
        circuits.direct_logit_attribution(broken, _tokens())
