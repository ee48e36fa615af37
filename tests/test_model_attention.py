"""Attention by hand, masks, grouped-query sharing, rotary and ALiBi properties, fused vs explicit paths."""

from __future__ import annotations

import math

import pytest
import torch

from circuits import Transformer, TransformerConfig
from circuits.model.positional import alibi_slopes
from tests.conftest import PRIME_SIZES, tiny_model


def _pattern(model, tokens, layer=0, **kwargs):
    _, cache = model.run_with_cache(tokens, names_filter=f"blocks.{layer}.attn.hook_pattern", **kwargs)
    return cache[f"blocks.{layer}.attn.hook_pattern"]


def test_hand_computed_two_token_one_head():
    """1 layer, 1 head, d_model = d_head = 2, identity-like weights: every number checked by hand."""
    cfg = TransformerConfig(
        n_layers=1, d_model=2, n_heads=1, d_vocab=2, n_ctx=2, attn_only=True,
        normalization="none", positional="none", use_bias=False,
    )
    model = Transformer(cfg).eval()
    with torch.no_grad():
        model.embed.W_E.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0]]))
        attn = model.blocks[0].attn
        attn.W_Q.copy_(torch.eye(2)[None])
        attn.W_K.copy_(torch.eye(2)[None])
        attn.W_V.copy_(torch.tensor([[[1.0, 1.0], [0.0, 1.0]]]))
        attn.W_O.copy_(torch.eye(2)[None])
        model.unembed.W_U.copy_(torch.eye(2))
    tokens = torch.tensor([[0, 1]])
    logits, cache = model.run_with_cache(tokens)
    # token 0 -> x0 = (1, 0); token 1 -> x1 = (0, 2). Scores / sqrt(2): q1.k0 = 0, q1.k1 = 4.
    s = 4 / math.sqrt(2)
    p1 = torch.tensor([1 / (1 + math.exp(s)), math.exp(s) / (1 + math.exp(s))])
    expected_pattern = torch.tensor([[1.0, 0.0], p1.tolist()])
    assert torch.allclose(cache["blocks.0.attn.hook_pattern"][0, 0], expected_pattern, atol=1e-6)
    assert cache["blocks.0.attn.hook_attn_scores"][0, 0, 0, 1] == float("-inf")
    assert cache["blocks.0.attn.hook_attn_scores"][0, 0, 1, 1] == pytest.approx(s, abs=1e-6)
    # v0 = x0 W_V = (1, 1); v1 = (0, 2). z1 = p1[0] v0 + p1[1] v1; W_O = I, W_U = I.
    v0, v1 = torch.tensor([1.0, 1.0]), torch.tensor([0.0, 2.0])
    expected_logits = torch.stack([torch.tensor([1.0, 0.0]) + v0, torch.tensor([0.0, 2.0]) + p1[0] * v0 + p1[1] * v1])
    assert torch.allclose(logits[0], expected_logits, atol=1e-6)


def test_causal_rows_sum_to_one_with_zeros_above_diagonal(model, tokens):
    pattern = _pattern(model, tokens)
    assert torch.allclose(pattern.sum(-1), torch.ones_like(pattern.sum(-1)), atol=1e-6)
    upper = torch.ones(7, 7, dtype=torch.bool).triu(1)
    assert pattern[..., upper].abs().max() == 0
    assert pattern[..., ~upper].min() > 0


def test_bidirectional_attends_to_the_future(tokens):
    causal = _pattern(tiny_model(), tokens)
    bidirectional = _pattern(tiny_model(mask="bidirectional"), tokens)
    upper = torch.ones(7, 7, dtype=torch.bool).triu(1)
    assert bidirectional[..., upper].min() > 0
    assert not torch.allclose(causal, bidirectional)


def test_sliding_window_zeros_beyond_the_window(tokens):
    pattern = _pattern(tiny_model(mask="sliding_window", window=3), tokens)
    q = torch.arange(7)[:, None]
    k = torch.arange(7)[None, :]
    outside = (q - k >= 3) | (k > q)
    assert pattern[..., outside].abs().max() == 0
    assert pattern[..., ~outside].min() > 0


def test_prefix_mask_is_bidirectional_inside_the_prefix(tokens):
    model = tiny_model(mask="prefix")
    pattern = _pattern(model, tokens, prefix_len=torch.tensor([3, 5]))
    assert (pattern[0, :, 0, 2] > 0).all() and (pattern[0, :, 0, 3] == 0).all()  # row 0 sees the prefix (3), not beyond
    assert (pattern[1, :, 0, 4] > 0).all() and (pattern[1, :, 0, 5] == 0).all()
    assert (pattern[0, :, 5, 6] == 0).all()  # causal after the prefix
    with pytest.raises(ValueError, match="prefix_len"):
        model(tokens)
    with pytest.raises(ValueError, match="only 'prefix' uses it"):
        tiny_model()(tokens, prefix_len=2)


def test_padding_hides_padded_keys(tokens):
    model = tiny_model(mask="bidirectional")
    mask = torch.ones(2, 7, dtype=torch.long)
    mask[0, 4:] = 0
    pattern = _pattern(model, tokens, attention_mask=mask)
    assert pattern[0, :, :4, 4:].abs().max() == 0
    # Real tokens give the same outputs whatever the padded tokens are.
    other = tokens.clone()
    other[0, 4:] = (other[0, 4:] + 1) % PRIME_SIZES["d_vocab"]
    a = model(tokens, attention_mask=mask)[0, :4]
    b = model(other, attention_mask=mask)[0, :4]
    assert torch.allclose(a, b, atol=1e-6)


def test_padding_loss_ignores_padded_targets(tokens):
    model = tiny_model()
    mask = torch.ones(2, 7, dtype=torch.long)
    mask[1, 5:] = 0
    per_token = model(tokens, return_type="per_token_loss", attention_mask=mask)
    assert per_token.shape == (2, 6)
    assert (per_token[1, 4:] == 0).all()
    full = model(tokens, return_type="per_token_loss")
    expected = (full[0].sum() + full[1, :4].sum()) / 10
    assert model(tokens, return_type="loss", attention_mask=mask).item() == pytest.approx(expected.item(), rel=1e-5)


def test_loss_is_mean_next_token_cross_entropy(model, tokens):
    logits = model(tokens)
    log_probs = torch.log_softmax(logits[:, :-1], -1)
    expected = -log_probs.gather(-1, tokens[:, 1:, None]).mean()
    assert model(tokens, return_type="loss").item() == pytest.approx(expected.item(), rel=1e-5)


def test_gqa_heads_share_keys_and_values(tokens):
    model = tiny_model(n_heads=4, d_head=3, n_kv_heads=2)
    _, cache = model.run_with_cache(tokens)
    assert cache["blocks.0.attn.hook_k"].shape == (2, 7, 2, 3)
    assert cache["blocks.0.attn.hook_q"].shape == (2, 7, 4, 3)
    # Query heads 0 and 1 read key/value head 0: the stacked views agree.
    assert torch.equal(model.W_K[0, 0], model.W_K[0, 1])
    assert torch.equal(model.W_V[1, 2], model.blocks[1].attn.W_V[1])
    assert not torch.equal(model.W_K[0, 1], model.W_K[0, 2])
    # Multi-query: one key/value head for all query heads.
    mqa = tiny_model(n_heads=3, n_kv_heads=1)
    assert mqa.blocks[0].attn.W_K.shape == (1, 11, 5)
    assert mqa.W_K.shape == (2, 3, 11, 5)


def test_rotary_scores_depend_only_on_relative_position():
    """Shifting every position by the same offset leaves all scores unchanged."""
    model = tiny_model(positional="rotary", d_head=6, n_ctx=16, rotary_dim=4)
    attn = model.blocks[0].attn
    g = torch.Generator().manual_seed(0)
    q = torch.randn(1, 5, 3, 6, generator=g)
    k = torch.randn(1, 5, 3, 6, generator=g)

    def scores(offset):
        cos, sin = attn.rotary.table(16)
        sl = slice(offset, offset + 5)
        rq = attn.rotary(q, cos[sl], sin[sl])
        rk = attn.rotary(k, cos[sl], sin[sl])
        return torch.einsum("bqhe,bkhe->bhqk", rq, rk)

    assert torch.allclose(scores(0), scores(7), atol=1e-5)
    assert not torch.allclose(scores(0), torch.einsum("bqhe,bkhe->bhqk", q, k), atol=1e-3)


def test_rotary_rotates_only_rotary_dim_channels():
    model = tiny_model(positional="rotary", d_head=6, rotary_dim=4)
    rotary = model.blocks[0].attn.rotary
    x = torch.randn(1, 7, 3, 6)
    cos, sin = rotary.table(7)
    out = rotary(x, cos, sin)
    assert torch.equal(out[..., 4:], x[..., 4:])
    assert torch.allclose(out.norm(dim=-1), x.norm(dim=-1), atol=1e-5)  # rotations preserve norms


@pytest.mark.parametrize("n_heads", [1, 2, 3, 4, 6, 8, 12, 16])
def test_alibi_slopes_match_press_et_al(n_heads):
    slopes = alibi_slopes(n_heads).tolist()
    if n_heads in (1, 2, 4, 8, 16):  # geometric sequence starting at 2^(-8/n)
        expected = [2 ** (-8 * (k + 1) / n_heads) for k in range(n_heads)]
    else:
        m = 2 ** math.floor(math.log2(n_heads))
        expected = [2 ** (-8 * (k + 1) / m) for k in range(m)]
        expected += [2 ** (-8 * (k + 1) / (2 * m)) for k in range(0, 2 * m, 2)][: n_heads - m]
    assert slopes == pytest.approx(expected)
    assert alibi_slopes(8).tolist() == pytest.approx([1 / 2 ** k for k in range(1, 9)])


def test_alibi_biases_scores_by_distance(tokens):
    model = tiny_model(positional="alibi")
    _, cache = model.run_with_cache(tokens)
    q, k = cache["blocks.0.attn.hook_q"], cache["blocks.0.attn.hook_k"]
    raw = torch.einsum("bqhe,bkhe->bhqk", q, k) / math.sqrt(5)
    distance = (torch.arange(7)[:, None] - torch.arange(7)[None, :]).float()
    expected = raw - alibi_slopes(3)[:, None, None] * distance
    scores = cache["blocks.0.attn.hook_attn_scores"]
    lower = distance >= 0
    assert torch.allclose(scores[..., lower], expected[..., lower], atol=1e-5)


SCHEMES = [
    dict(positional="learned"), dict(positional="shortformer"), dict(positional="rotary", d_head=6),
    dict(positional="alibi"), dict(positional="sinusoidal"), dict(positional="none"),
    dict(mask="bidirectional"), dict(mask="sliding_window", window=2), dict(mask="prefix"),
    dict(n_heads=4, d_head=4, n_kv_heads=2, positional="rotary"), dict(smear_key=True),
]


@pytest.mark.parametrize("overrides", SCHEMES, ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()))
@pytest.mark.parametrize("padded", [False, True], ids=["dense", "padded"])
def test_fused_and_explicit_attention_agree(overrides, padded, tokens):
    model = tiny_model(**overrides)
    kwargs = {"prefix_len": 3} if overrides.get("mask") == "prefix" else {}
    if padded:
        mask = torch.ones_like(tokens)
        mask[0, :2] = 0
        kwargs["attention_mask"] = mask
    fused = model(tokens, **kwargs)
    # A hook that returns a new tensor counts as an edit, so the explicit path computes what flows on.
    explicit = model.run_with_hooks(tokens, fwd_hooks=[(lambda n: n.endswith("hook_attn_scores"), lambda t, hook: t.clone())], **kwargs)
    with_result = model.run_with_hooks(tokens, fwd_hooks=[(lambda n: n.endswith("hook_result"), lambda t, hook: t.clone())], **kwargs)
    keep = kwargs["attention_mask"].bool() if padded else torch.ones_like(tokens, dtype=torch.bool)
    assert (fused - explicit)[keep].abs().max() < 1e-5
    assert (fused - with_result)[keep].abs().max() < 1e-5


def test_hook_result_sums_to_attn_out(model, tokens):
    _, cache = model.run_with_cache(tokens)
    result = cache["blocks.1.attn.hook_result"]
    assert result.shape == (2, 7, 3, 11)
    assert torch.allclose(result.sum(2) + model.blocks[1].attn.b_O, cache["blocks.1.hook_attn_out"], atol=1e-6)
