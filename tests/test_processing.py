"""Weight processing: folding norms, centring, value-bias folding leave the logits unchanged (or shift them per row)."""

from __future__ import annotations

import pytest
import torch

from circuits.analysis.weights.processing import folded_weights, process_weights
from weights_helpers import randomized

CONFIGS = {
    "layernorm-mlp": dict(),
    "rmsnorm": dict(normalization="rmsnorm"),
    "rotary-attn-only": dict(attn_only=True, positional="rotary", rotary_dim=4),
    "alibi-gqa": dict(positional="alibi", n_kv_heads=1),
    "sinusoidal-tied": dict(positional="sinusoidal", tied_embeddings=True),
    "no-bias": dict(use_bias=False),
    "smear-token-types": dict(smear_key=True, n_token_types=2),
    "swiglu-rms-gqa": dict(act_fn="swiglu", normalization="rmsnorm", n_kv_heads=1),
    "no-norm-shortformer": dict(attn_only=True, normalization="none", positional="shortformer"),
    "vocab-out": dict(d_vocab_out=17),
}


def _logits(model, tokens):
    kwargs = {"token_type_ids": tokens % 2} if model.config.n_token_types else {}
    return model(tokens, **kwargs)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_processing_preserves_logits(name, tokens):
    model = randomized(seed=1, **CONFIGS[name])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    logits = _logits(model, tokens)

    same = process_weights(model, center_unembed=False)
    torch.testing.assert_close(_logits(same, tokens), logits, atol=1e-5, rtol=1e-5)

    centred = process_weights(model)
    # centring the unembedding subtracts, per position, the mean logit over the vocabulary: nothing else
    torch.testing.assert_close(_logits(centred, tokens), logits - logits.mean(-1, keepdim=True), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(
        _logits(centred, tokens).log_softmax(-1), logits.log_softmax(-1), atol=1e-5, rtol=1e-5
    )
    # the input model is untouched
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_processing_does_fold():
    """The processed model really moved the norms into the weights (so the test above is not vacuous)."""
    model = randomized(seed=2)
    processed = process_weights(model)
    for block in processed.blocks:
        assert torch.equal(block.ln1.w, torch.ones_like(block.ln1.w))
        assert torch.equal(block.ln1.b, torch.zeros_like(block.ln1.b))
        assert block.attn.b_V.abs().max() == 0
        # LayerNorm readers and writers are centred over d_model
        assert block.attn.W_Q.mean(1).abs().max() < 1e-6
        assert block.attn.W_O.mean(-1).abs().max() < 1e-6
    assert processed.W_U.mean(-1).abs().max() < 1e-6  # centred unembedding
    assert processed.W_E.mean(-1).abs().max() < 1e-6
    assert not torch.allclose(processed.W_Q, model.W_Q)


def test_resetting_norms_without_folding_changes_logits(tokens):
    """Negative control: dropping the gains without folding them changes the logits, so the preservation test can fail."""
    model = randomized(seed=3)
    logits = model(tokens)
    broken = randomized(seed=3)
    with torch.no_grad():
        for block in broken.blocks:
            block.ln1.w.fill_(1.0)
    assert (broken(tokens) - logits).abs().max() > 1e-2


def test_use_bias_false_gains_biases_when_folding_needs_them(tokens):
    model = randomized(seed=4, use_bias=False)
    processed = process_weights(model, center_unembed=False)
    assert processed.config.use_bias  # ln biases became b_Q/b_K/b_V/b_in/b_U
    torch.testing.assert_close(processed(tokens), model(tokens), atol=1e-5, rtol=1e-5)


def test_tied_embeddings_are_untied():
    model = randomized(seed=5, tied_embeddings=True)
    processed = process_weights(model)
    assert processed.config.tied_embeddings is False
    assert not torch.allclose(processed.W_U, processed.W_E.T)


def test_post_norm_processing_without_folding(tokens):
    """Post-norm: fold_ln is undefined, but centring writes (every write enters a LayerNorm) and the rest are exact."""
    model = randomized(seed=6, norm_position="post")
    with pytest.raises(ValueError, match="post-norm"):
        process_weights(model)
    processed = process_weights(model, fold_ln=False)
    logits = model(tokens)
    torch.testing.assert_close(processed(tokens), logits - logits.mean(-1, keepdim=True), atol=1e-5, rtol=1e-5)


def test_processing_errors():
    with pytest.raises(ValueError, match="shortformer"):
        process_weights(randomized(positional="shortformer"))
    with pytest.raises(ValueError, match="W_gate"):
        process_weights(randomized(act_fn="swiglu"))  # LayerNorm with a non-zero ln2.b
    with pytest.raises(ValueError, match="LayerNorm"):
        process_weights(randomized(normalization="rmsnorm"), center_writing_weights=True)
    with pytest.raises(TypeError, match="Transformer"):
        process_weights(torch.nn.Linear(2, 2))
    with pytest.raises(TypeError, match="fold_ln"):
        process_weights(randomized(), fold_ln="yes")
    with pytest.raises(ValueError, match="post-norm"):
        folded_weights(randomized(norm_position="post"))


@pytest.mark.parametrize("name", ["layernorm-mlp", "rmsnorm", "alibi-gqa", "no-norm-shortformer"])
def test_folded_weights_match_processed_model(name):
    """folded_weights (used by every circuit) equals the stacked weights of the processed model."""
    model = randomized(seed=7, **CONFIGS[name])
    folded = folded_weights(model)
    processed = process_weights(model, center_unembed=False)
    for attr in ("W_Q", "W_K", "W_V", "W_O", "W_U"):
        torch.testing.assert_close(getattr(folded, attr), getattr(processed, attr), atol=1e-6, rtol=1e-6)


def test_folded_weights_shortformer_with_layernorm_keeps_raw_position_readers():
    model = randomized(seed=8, positional="shortformer")
    folded = folded_weights(model)
    assert torch.equal(folded.W_Q_pos, model.W_Q.detach())
    gain = torch.stack([b.ln1.w for b in model.blocks]).detach()
    expected = gain[:, None, :, None] * model.W_Q.detach()
    torch.testing.assert_close(folded.W_Q, expected - expected.mean(2, keepdim=True))


def test_folded_weights_no_norm_is_the_model():
    model = randomized(seed=9, normalization="none", attn_only=True)
    folded = folded_weights(model)
    assert torch.equal(folded.W_Q, model.W_Q) and torch.equal(folded.W_U, model.W_U) and torch.equal(folded.W_O, model.W_O)
