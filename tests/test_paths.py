import pytest
import torch
import torch.nn.functional as F
from conftest import tiny_model

import circuits
from circuits import DecompositionError


def _tokens(batch=2, pos=7, seed=0):
    return torch.randint(0, 13, (batch, pos), generator=torch.Generator().manual_seed(seed))


def _attn_only(n_layers, positional="shortformer", normalization="none", **kw):
    model = tiny_model(n_layers=n_layers, attn_only=True, positional=positional, normalization=normalization, **kw)
    if normalization != "none" or kw.get("use_bias", True):
        _randomize_norms_and_biases(model)
    return model


def _randomize_norms_and_biases(model):
    generator = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for name, param in model.named_parameters():
            leaf = name.rsplit(".", 1)[-1]
            if leaf == "w":
                param.copy_(torch.rand(param.shape, generator=generator) + 0.5)
            elif leaf.startswith("b"):
                param.copy_(torch.randn(param.shape, generator=generator) * 0.3)


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-5), (torch.float64, 1e-10)])
@pytest.mark.parametrize("positional", ["shortformer", "learned"])
@pytest.mark.parametrize("n_layers", [0, 1, 2, 3])
def test_terms_sum_to_logits(n_layers, positional, dtype, tol):
    model = _attn_only(n_layers, positional, use_bias=False).to(dtype)
    tokens = _tokens()
    expansion = circuits.path_expansion(model, tokens)
    logits = model(tokens)
    assert expansion.terms.dtype == dtype
    assert expansion.max_error < tol
    assert (expansion.terms.sum(0) - logits).abs().max() < tol
    n_sources = 2 if positional == "learned" else 1
    assert len(expansion.labels) == n_sources * 4**n_layers + 1 == expansion.terms.shape[0]
    assert expansion.labels[0] == "direct" and expansion.labels[-1] == "bias"
    if n_layers == 3:
        assert "L0H1->L1H2->L2H0" in expansion.labels
    if positional == "learned" and n_layers:
        assert "pos_embed->L0H2" in expansion.labels


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-5), (torch.float64, 1e-10)])
@pytest.mark.parametrize(
    "overrides",
    [
        dict(normalization="layernorm"),
        dict(normalization="rmsnorm", positional="learned"),
        dict(normalization="layernorm", positional="sinusoidal", n_kv_heads=1),
        dict(normalization="none", positional="rotary", rotary_dim=4, smear_key=True),
        dict(normalization="none", positional="alibi"),
    ],
    ids=["layernorm+bias", "rmsnorm+learned", "sinusoidal+gqa", "rotary+smear", "alibi"],
)
def test_terms_sum_to_logits_other_architectures(overrides, dtype, tol):
    model = _attn_only(2, **overrides).to(dtype)
    tokens = _tokens(batch=3)
    expansion = circuits.path_expansion(model, tokens)
    assert expansion.max_error < tol
    assert (expansion.terms.sum(0) - model(tokens)).abs().max() < tol
    if overrides["normalization"] != "none":
        assert "norm scales" in expansion.frozen


def test_terms_match_hand_computed_paths():
    model = _attn_only(2, "learned", use_bias=False)
    tokens = _tokens()
    expansion = circuits.path_expansion(model, tokens)
    _, cache = model.run_with_cache(tokens, names_filter=lambda n: n.endswith("hook_pattern"))
    A0, A1 = cache["pattern", 0], cache["pattern", 1]  # [batch, head, q, k]
    x, pos = model.W_E[tokens], model.W_pos[:7].expand(2, 7, 11)
    ov = lambda l, h: model.W_V[l, h] @ model.W_O[l, h]  # noqa: E731
    torch.testing.assert_close(expansion["direct"], x @ model.W_U)
    torch.testing.assert_close(expansion["pos_embed"], pos @ model.W_U)
    torch.testing.assert_close(expansion["L1H2"], A1[:, 2] @ x @ ov(1, 2) @ model.W_U)
    torch.testing.assert_close(expansion["pos_embed->L0H1"], A0[:, 1] @ pos @ ov(0, 1) @ model.W_U)
    torch.testing.assert_close(expansion["L0H0->L1H2"], A1[:, 2] @ (A0[:, 0] @ x @ ov(0, 0)) @ ov(1, 2) @ model.W_U)
    assert expansion.orders[expansion.labels.index("L0H0->L1H2")] == 2
    assert torch.all(expansion["bias"] == 0)
    by_order = expansion.by_order()
    assert by_order.shape[0] == 3
    torch.testing.assert_close(by_order.sum(0), expansion.logits)


def test_bias_term_is_constant_over_positions_without_norm():
    model = _attn_only(2, "shortformer", use_bias=True)
    expansion = circuits.path_expansion(model, _tokens())
    bias = expansion["bias"]
    torch.testing.assert_close(bias, bias[:1, :1].expand_as(bias))
    assert bias.abs().max() > 0


def test_broken_decomposition_raises():
    model = _attn_only(2, use_bias=False)
    tokens = _tokens()
    # a hook that changes the forward pass behind the decomposition's back
    model.add_perma_hook("blocks.0.hook_resid_post", lambda resid, hook: resid + 0.1)
    try:
        with pytest.raises(DecompositionError, match="do not add up"):
            circuits.path_expansion(model, tokens)
    finally:
        model.reset_hooks(including_permanent=True)
    assert circuits.path_expansion(model, tokens).max_error < 1e-5


def test_models_without_exact_expansion_raise():
    with pytest.raises(ValueError, match="attention-only"):
        circuits.path_expansion(tiny_model(), _tokens())
    with pytest.raises(ValueError, match="post-norm"):
        circuits.path_expansion(tiny_model(attn_only=True, norm_position="post"), _tokens())


# ---- term importance -------------------------------------------------------------------------
def _loss(logits, tokens):
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1)).item()


def _iterative_frozen_pattern_losses(model, tokens):
    """The Framework paper's procedure, with hooks: run n has the paths of order < n."""
    names = [f"blocks.{l}.attn.hook_pattern" for l in range(model.config.n_layers)]
    _, cache = model.run_with_cache(tokens, names_filter=names)
    freeze = [(name, lambda p, hook: cache[hook.name]) for name in names]
    results = [f"blocks.{l}.attn.hook_result" for l in range(model.config.n_layers)]
    previous = None
    losses = []
    for _ in range(model.config.n_layers + 1):
        saved = {}

        def swap(result, hook, previous=previous, saved=saved):
            saved[hook.name] = result.clone()
            return torch.zeros_like(result) if previous is None else previous[hook.name]

        losses.append(_loss(model.run_with_hooks(tokens, fwd_hooks=freeze + [(r, swap) for r in results]), tokens))
        previous = saved
    return losses


@pytest.mark.parametrize("n_layers", [1, 2, 3])
def test_term_importance_matches_iterative_procedure(n_layers):
    model = _attn_only(n_layers, "learned", use_bias=False)
    tokens = _tokens(batch=4)
    result = circuits.term_importance(model, tokens)
    expected = _iterative_frozen_pattern_losses(model, tokens)
    torch.testing.assert_close(result.loss_by_order, torch.tensor(expected), atol=1e-5, rtol=1e-5)
    assert result.full_loss == pytest.approx(_loss(model(tokens), tokens), abs=1e-5)
    assert result.marginal_by_order.sum().item() == pytest.approx(result.uniform_loss - result.full_loss, abs=1e-5)


def test_term_importance_per_term():
    model = _attn_only(2, "shortformer", use_bias=False)
    tokens = _tokens(batch=3)
    result = circuits.term_importance(model, tokens)
    expansion = circuits.path_expansion(model, tokens)
    assert result.labels == expansion.labels and len(result.term_added) == len(result.labels)
    i = result.labels.index("L0H1->L1H0")
    lower = sum(expansion.terms[j] for j, o in enumerate(expansion.orders) if o < 2)
    assert result.term_added[i].item() == pytest.approx(
        _loss(lower, tokens) - _loss(lower + expansion.terms[i], tokens), abs=1e-5
    )
    assert result.term_removed[i].item() == pytest.approx(
        _loss(expansion.logits - expansion.terms[i], tokens) - result.full_loss, abs=1e-5
    )
    d = result.labels.index("direct")
    assert result.term_added[d].item() == pytest.approx(result.uniform_loss - _loss(expansion["direct"], tokens), abs=1e-5)
    rows = result.table()
    assert [r["order"] for r in rows] == sorted(r["order"] for r in rows)


def test_term_importance_needs_two_positions():
    with pytest.raises(ValueError, match="at least 2 tokens"):
        circuits.term_importance(_attn_only(1), _tokens(pos=1))


# ---- zero-layer model vs bigram statistics ---------------------------------------------------
def test_bigram_counts():
    counts = circuits.bigram_counts(torch.tensor([[0, 1, 1, 2], [2, 0, 1, 1]]), 3)
    expected = torch.zeros(3, 3, dtype=torch.long)
    for a, b in [(0, 1), (1, 1), (1, 2), (2, 0), (0, 1), (1, 1)]:
        expected[a, b] += 1
    assert torch.equal(counts, expected)


def _zero_layer(d_model=13):
    return circuits.Transformer(
        circuits.TransformerConfig(n_layers=0, d_model=d_model, n_heads=1, d_vocab=13, n_ctx=7, positional="none", use_bias=False)
    ).eval()


def test_zero_layer_model_set_to_the_bigram_table_has_zero_kl():
    stream = torch.randint(0, 13, (4000,), generator=torch.Generator().manual_seed(0))
    counts = circuits.bigram_counts(stream, 13)
    model = _zero_layer()
    with torch.no_grad():
        model.embed.W_E.copy_(torch.eye(13))
        probs = (counts.double() + 1e-12) / (counts.double() + 1e-12).sum(-1, keepdim=True)
        model.unembed.W_U.copy_(probs.log().float())
    result = circuits.zero_layer_bigram_comparison(model, counts)
    assert result.kl < 1e-5
    assert result.model_loss == pytest.approx(result.conditional_entropy, abs=1e-5)
    assert 2.0 < result.conditional_entropy < 13**0.5  # about log 13 = 2.56 for uniform random text


def test_zero_layer_loss_is_entropy_plus_kl():
    counts = circuits.bigram_counts(torch.randint(0, 5, (500,), generator=torch.Generator().manual_seed(1)), 13)
    result = circuits.zero_layer_bigram_comparison(_zero_layer(d_model=7), counts)
    assert result.kl > 0.01
    assert result.model_loss == pytest.approx(result.conditional_entropy + result.kl, abs=1e-9)
    assert torch.isnan(result.kl_per_token[5:]).all()  # tokens 5.. never occur as the current token


def test_zero_layer_comparison_errors():
    counts = torch.ones(13, 13, dtype=torch.long)
    with pytest.raises(ValueError, match="zero-layer"):
        circuits.zero_layer_bigram_comparison(_attn_only(1), counts)
    with pytest.raises(ValueError, match="positional='none'"):
        circuits.zero_layer_bigram_comparison(tiny_model(n_layers=0), counts)
    with pytest.raises(ValueError, match="shape"):
        circuits.zero_layer_bigram_comparison(_zero_layer(), torch.ones(5, 5, dtype=torch.long))
