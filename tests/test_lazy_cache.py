"""run_with_cache derives per-head results, scores, patterns, norm scales and MLP activations on first access.

The reference everywhere is the eager cache: the same run with an identity hook on every hook
point, so the modules compute every tensor in the forward pass. The lazy cache must hold the
same keys in the same order, bitwise equal values, and leave the forward's numbers unchanged.
"""

from __future__ import annotations

import pytest
import torch
from transformer_lens import ActivationCache

from circuits.model.cache import LazyActivations
from tests.conftest import tiny_model

ARCHITECTURES = {
    "gpt2": dict(),
    "llama": dict(positional="rotary", d_head=6, act_fn="swiglu", normalization="rmsnorm", use_bias=False),
    "smeared": dict(smear_key=True, positional="shortformer"),
    "bert": dict(norm_position="post", n_token_types=2, mask="bidirectional"),
    "gqa-alibi": dict(n_heads=4, d_head=4, n_kv_heads=2, positional="alibi"),
    "attn-only": dict(attn_only=True, normalization="none", positional="shortformer", use_bias=False),
}
DERIVED = ("attn.hook_attn_scores", "attn.hook_pattern", "attn.hook_result", "hook_scale", "mlp.hook_post")


def identity(tensor, hook):
    return tensor


def eager_cache(model, tokens, **kwargs):
    """run_with_cache with every hook point observed by a hook, so that nothing is left to derive."""
    with model.hooks([(lambda name: True, identity)]):
        return model.run_with_cache(tokens, **kwargs)


def assert_same_cache(lazy: ActivationCache, eager: ActivationCache) -> None:
    assert list(lazy.keys()) == list(eager.keys())
    for name in eager.keys():
        assert lazy[name].dtype == eager[name].dtype and torch.equal(lazy[name], eager[name]), name


@pytest.mark.parametrize("overrides", ARCHITECTURES.values(), ids=ARCHITECTURES.keys())
def test_lazy_cache_equals_eager_cache_key_by_key(overrides, tokens):
    model = tiny_model(**overrides)
    logits, lazy = model.run_with_cache(tokens)
    eager_logits, eager = eager_cache(model, tokens)
    assert isinstance(lazy.cache_dict, LazyActivations)
    pending = lazy.cache_dict.pending()
    assert pending and all(name.endswith(DERIVED) for name in pending)
    assert not eager.cache_dict.pending()
    assert_same_cache(lazy, eager)
    assert not lazy.cache_dict.pending()
    assert torch.equal(logits, eager_logits) and torch.equal(logits, model(tokens))  # observing changes no number


def test_derived_entries_are_computed_once_on_first_read(model, tokens):
    _, cache = model.run_with_cache(tokens)
    name = "blocks.1.attn.hook_result"
    assert name in cache.cache_dict.pending() and name in cache  # membership computes nothing
    assert name in cache.cache_dict.pending()
    first = cache[name]
    assert name not in cache.cache_dict.pending() and cache[name] is first
    assert first.shape == (2, 7, 3, 11)
    assert repr(cache.cache_dict).startswith("LazyActivations(")


@pytest.mark.parametrize(
    "options",
    [dict(pos_slice=-1), dict(pos_slice=[0, 3]), dict(device="cpu"), dict(names_filter=lambda n: n.endswith(("hook_result", "hook_pattern")))],
    ids=["pos_slice_int", "pos_slice_list", "device", "filter"],
)
def test_options_apply_to_derived_entries_as_to_stored_ones(model, tokens, options):
    _, lazy = model.run_with_cache(tokens, **options)
    _, eager = eager_cache(model, tokens, **options)
    assert_same_cache(lazy, eager)


def test_remove_batch_dim_applies_to_derived_entries(model, tokens):
    _, lazy = model.run_with_cache(tokens[:1], remove_batch_dim=True)
    _, eager = eager_cache(model, tokens[:1], remove_batch_dim=True)
    assert lazy["blocks.0.attn.hook_pattern"].shape == (3, 7, 7)
    assert_same_cache(lazy, eager)
    with pytest.raises(ValueError, match="batch of one sequence"):
        model.run_with_cache(tokens, remove_batch_dim=True)


def test_names_filter_semantics_are_unchanged(model, tokens):
    _, cache = model.run_with_cache(tokens, names_filter="blocks.0.attn.hook_result")
    assert list(cache.keys()) == ["blocks.0.attn.hook_result"]
    _, eager = eager_cache(model, tokens, names_filter="blocks.0.attn.hook_result")
    assert torch.equal(cache["blocks.0.attn.hook_result"], eager["blocks.0.attn.hook_result"])
    names = ["blocks.1.attn.hook_pattern", "blocks.0.ln1.hook_scale", "hook_embed"]
    _, cache = model.run_with_cache(tokens, names_filter=names)
    assert sorted(cache.keys()) == sorted(names)
    _, cache = model.run_with_cache(tokens, names_filter=lambda n: n.endswith("hook_result"))
    assert list(cache.keys()) == ["blocks.0.attn.hook_result", "blocks.1.attn.hook_result"]
    with pytest.raises(KeyError, match="did you mean"):
        model.run_with_cache(tokens, names_filter=["blocks.0.attn.hook_reslt"])
    with pytest.raises(ValueError, match="matched no hook point"):
        model.run_with_cache(tokens, names_filter=lambda n: False)


def test_hooks_on_hook_result_still_fire_and_can_edit(model, tokens):
    seen = []

    def ablate_head_1(result, hook):
        seen.append(hook.name)
        result[:, :, 1] = 0.0  # in place: the module must notice

    with model.hooks([("blocks.0.attn.hook_result", ablate_head_1)]):
        logits, cache = model.run_with_cache(tokens)
    assert seen == ["blocks.0.attn.hook_result"]
    result = cache["blocks.0.attn.hook_result"]
    assert (result[:, :, 1] == 0).all()
    attn_out = result.sum(2) + model.blocks[0].attn.b_O
    assert torch.allclose(cache["blocks.0.hook_attn_out"], attn_out, atol=1e-6)
    assert not torch.allclose(logits, model(tokens), atol=1e-4)

    def replace(result, hook):
        return torch.zeros_like(result)  # a new tensor

    def bias_only(attn_out, hook):
        return torch.zeros_like(attn_out) + model.blocks[1].attn.b_O

    edited = model.run_with_hooks(tokens, fwd_hooks=[("blocks.1.attn.hook_result", replace)])
    assert torch.equal(edited, model.run_with_hooks(tokens, fwd_hooks=[("blocks.1.hook_attn_out", bias_only)]))


def test_edits_of_scores_pattern_and_scale_take_effect(model, tokens):
    clean = model(tokens)

    def uniform(pattern, hook):
        pattern.fill_(0.0)
        pattern[..., 0] = 1.0  # every query attends to position 0 only

    with model.hooks([("blocks.0.attn.hook_pattern", uniform)]):
        _, cache = model.run_with_cache(tokens, names_filter=["blocks.0.attn.hook_v", "blocks.0.attn.hook_z"])
    v = cache["blocks.0.attn.hook_v"]
    assert torch.allclose(cache["blocks.0.attn.hook_z"], v[:, :1].expand_as(v), atol=1e-6)

    def double_scale(scale, hook):
        return scale * 2

    halved = model.run_with_hooks(tokens, fwd_hooks=[("ln_final.hook_scale", double_scale)])
    assert not torch.allclose(halved, clean, atol=1e-4)
    masked = model.run_with_hooks(tokens, fwd_hooks=[("blocks.1.attn.hook_attn_scores", lambda s, hook: s.clone())])
    assert torch.allclose(masked, clean, atol=1e-5) and not torch.equal(masked, clean)  # a new tensor: the explicit path


def test_backward_hooks_on_derivable_points_fire(model, tokens):
    grads = []
    with model.hooks(bwd_hooks=[("blocks.0.attn.hook_result", lambda g, hook: grads.append(g[0] if isinstance(g, tuple) else g))]):
        model(tokens, return_type="loss").backward()
    assert len(grads) == 1 and grads[0].shape == (2, 7, 3, 11)
    _, cache = model.run_with_cache(tokens[:, :4], incl_bwd=True, names_filter=lambda n: n.endswith("hook_pattern"), return_type="loss")
    assert not cache.cache_dict.pending()
    assert cache["blocks.0.attn.hook_pattern_grad"].shape == (2, 3, 4, 4)


def test_later_weight_changes_do_not_change_the_cache(model, tokens):
    _, lazy = model.run_with_cache(tokens)
    _, eager = eager_cache(model, tokens)
    with torch.no_grad():
        model.blocks[0].attn.W_O.mul_(2.0)
    assert torch.equal(lazy["blocks.0.attn.hook_result"], eager["blocks.0.attn.hook_result"])


def test_the_pattern_ignores_in_place_edits_of_the_cached_scores(model, tokens):
    _, lazy = model.run_with_cache(tokens)
    _, eager = eager_cache(model, tokens)
    lazy["blocks.1.attn.hook_attn_scores"].mul_(0.0)  # the scores are computed once for both entries, then edited
    assert torch.equal(lazy["blocks.1.attn.hook_pattern"], eager["blocks.1.attn.hook_pattern"])


def test_editing_an_input_in_place_before_reading_a_derived_entry_raises(model, tokens):
    _, cache = model.run_with_cache(tokens)
    cache["blocks.0.attn.hook_z"].mul_(2.0)
    with pytest.raises(RuntimeError, match="blocks.0.attn.hook_result.*edited in place"):
        cache["blocks.0.attn.hook_result"]
    cache["blocks.0.attn.hook_pattern"]  # computed from q and k, which are untouched


def test_transformerlens_methods_agree_on_lazy_and_eager_caches(tokens):
    model = tiny_model()
    with torch.no_grad():
        model.ln_final.w.mul_(1.3)
    _, lazy = model.run_with_cache(tokens)
    _, eager = eager_cache(model, tokens)
    for method, kwargs in [
        ("stack_head_results", dict(layer=-1, incl_remainder=True, apply_ln=True)),
        ("decompose_resid", dict(layer=-1, apply_ln=True)),
        ("accumulated_resid", dict(layer=-1, incl_mid=True, apply_ln=True)),
        ("get_full_resid_decomposition", dict(expand_neurons=False)),
    ]:
        assert torch.equal(getattr(lazy, method)(**kwargs), getattr(eager, method)(**kwargs)), method
    components = lazy.stack_head_results(layer=-1, pos_slice=-1)
    attrs = lazy.logit_attrs(components, tokens=tokens[:, -1], pos_slice=-1)
    assert torch.equal(attrs, eager.logit_attrs(eager.stack_head_results(layer=-1, pos_slice=-1), tokens=tokens[:, -1], pos_slice=-1))
    sliced = lazy.apply_slice_to_batch_dim(0)
    assert torch.equal(sliced["blocks.1.attn.hook_result"], eager["blocks.1.attn.hook_result"][0])
    assert torch.equal(lazy.to("cpu")["blocks.0.hook_resid_pre"], eager["blocks.0.hook_resid_pre"])


def test_identity_hooks_anywhere_leave_every_number_bitwise_unchanged(tokens):
    for overrides in ARCHITECTURES.values():
        model = tiny_model(**overrides)
        hooked = model.run_with_hooks(tokens, fwd_hooks=[(lambda name: True, identity)])
        assert torch.equal(hooked, model(tokens))


def test_a_dropped_cache_is_freed_at_once(model, tokens):
    """No reference cycle: a GPT-2-sized cache must not wait for the cycle collector (it held the memory of several)."""
    import gc
    import weakref

    gc.disable()
    try:
        _, cache = model.run_with_cache(tokens)
        entries, derived = weakref.ref(cache.cache_dict), weakref.ref(cache.cache_dict._store["blocks.0.attn.hook_result"])
        del cache
        assert entries() is None and derived() is None
    finally:
        gc.enable()


def test_inference_mode_caches_are_the_same(model, tokens):
    with torch.inference_mode():
        logits, inference = model.run_with_cache(tokens)
        edited = model.run_with_hooks(tokens, fwd_hooks=[("blocks.0.attn.hook_result", lambda t, hook: t.mul_(0.0))])
    _, lazy = model.run_with_cache(tokens)
    assert_same_cache(inference, lazy)
    assert not torch.allclose(edited, logits)  # an in-place edit still takes effect (inference tensors have no version counter)
