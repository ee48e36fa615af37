import pytest
import torch
from activation_models import N, copying_prev_model, induction_model, uniform_previous_token_score
from conftest import tiny_model

import circuits
from circuits.analysis.activations.scores import attention_scores, current_token_scores, first_token_scores


@pytest.fixture(scope="module")
def hand():
    return induction_model()


@pytest.fixture(scope="module")
def random_model():
    return tiny_model(attn_only=True, normalization="none", positional="shortformer", use_bias=False)


def _tokens(batch=6, pos=7, vocab=13, seed=0):
    return torch.randint(0, vocab, (batch, pos), generator=torch.Generator().manual_seed(seed))


def _patterns(model, tokens):
    _, cache = model.run_with_cache(tokens, names_filter=lambda n: n.endswith("hook_pattern"))
    return torch.stack([cache["pattern", l] for l in range(model.config.n_layers)])  # [layer, batch, head, q, k]


# ---- hand-built heads give known scores -----------------------------------------------------
def test_hand_built_previous_token_head_scores_one(hand):
    tokens = circuits.random_tokens(11, 10, batch=4, seed=0)
    scores = circuits.previous_token_scores(hand, tokens)
    assert scores.shape == (2, 3)
    assert scores[0, 0] > 0.999
    # zero-weight heads attend uniformly: a hand-computed value
    assert scores[0, 1] == pytest.approx(uniform_previous_token_score(11), abs=1e-6)
    assert scores[1, 2] == pytest.approx(uniform_previous_token_score(11), abs=1e-6)


def test_hand_built_induction_head_scores_one(hand):
    scores = circuits.induction_scores(hand, seq_len=6, n_repeats=2, batch=8, seed=0, distinct=True)
    assert scores[1, 0] > 0.999
    assert scores[0, 0] < 0.01  # the previous-token head looks one back, not one period back
    assert scores[1, 1] < 0.2


def test_hand_built_prefix_matching_sums_over_all_earlier_copies(hand):
    # 3 repeats: the induction head splits attention between the two earlier matches, summing to ~1
    pm = circuits.prefix_matching_scores(hand, seq_len=4, n_repeats=3, batch=8, seed=0, distinct=True)
    ind = circuits.induction_scores(hand, seq_len=4, n_repeats=3, batch=8, seed=0, distinct=True)
    assert pm[1, 0] > 0.999
    assert 0.6 < ind[1, 0] < 0.9  # only the nearest copy counts for the induction score


def test_hand_built_repeated_tokens_loss(hand):
    result = circuits.repeated_tokens_loss(hand, seq_len=6, n_repeats=2, batch=8, seed=0, distinct=True)
    assert result.labels == ["repeat 0", "repeat 1"]
    assert result.per_position.shape == (12,)
    # the second repeat is predicted by induction, except its first token (nothing says the sequence restarts)
    assert (result.per_position[7:] < 1e-3).all()
    assert result.per_repeat[1] == pytest.approx(result.per_position[6:].mean().item())
    assert result.per_repeat[1] < 0.5 < 3.0 < result.per_repeat[0]


def test_copying_eval_known_values():
    model = copying_prev_model()
    seq_len = 10
    scores = circuits.copying_eval_scores(model, seq_len=seq_len, batch=4, seed=0)
    # L0H0 copies the previous token: score ~1 at every query but q = 1, whose previous token is BOS (-1)
    assert scores[0, 0] == pytest.approx((seq_len - 2) / seq_len, abs=1e-4)
    # heads with zero output raise nothing: ratio 0/0, no score (not -1, which would say anti-copying)
    assert torch.isnan(scores[0, 1])


def test_copying_eval_matches_naive_reference():
    model = tiny_model(attn_only=True, positional="shortformer")  # layernorm, biases: the frozen final scale matters
    with torch.no_grad():
        model.ln_final.w.uniform_(0.5, 1.5, generator=torch.Generator().manual_seed(1))
    ours = circuits.copying_eval_scores(model, seq_len=6, batch=3, seed=0)
    tokens = circuits.random_tokens(13, 6, batch=3, seed=0)
    _, cache = model.run_with_cache(tokens)
    scale = cache["ln_final.hook_scale"]
    expected = torch.zeros(2, 3)
    for l in range(2):
        for h in range(3):
            values = []
            for b in range(3):
                for q in range(1, 7):
                    r = cache[f"blocks.{l}.attn.hook_result"][b, q, h]
                    d = ((r - r.mean()) / scale[b, q] * model.ln_final.w) @ model.W_U
                    g = torch.relu(d - d.mean())
                    raised = sum(cache["pattern", l][b, h, q, k] * g[tokens[b, k]] for k in range(1, q + 1))
                    values.append(4 * raised / (raised + g.sum()) - 1)
            expected[l, h] = torch.stack(values).mean()
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=1e-5)


# ---- streaming equals a naive cache-everything reference ------------------------------------
def test_pattern_scores_match_naive_reference(random_model):
    tokens = _tokens()
    tokens[:, 4] = tokens[:, 1]  # guarantee duplicates
    patterns = _patterns(random_model, tokens)  # [layer, batch, head, q, k]
    q = torch.arange(1, tokens.shape[1])
    expected = {
        "previous_token": patterns[..., q, q - 1].mean((1, 3)),
        "current_token": patterns[..., q, q].mean((1, 3)),
        "first_token": patterns[..., q, 0].mean((1, 3)),
    }
    same = (tokens[:, :, None] == tokens[:, None, :]) & torch.ones(7, 7, dtype=torch.bool).tril(-1)
    has = same.any(-1)  # [batch, q]
    dup = (patterns * same[None, :, None]).sum(-1)  # [layer, batch, head, q]
    expected["duplicate_token"] = (dup * has[None, :, None]).sum((1, 3)) / has.sum()
    ours = attention_scores(random_model, tokens, batch_size=4)  # two batches, one short
    for kind, value in expected.items():
        torch.testing.assert_close(ours[kind], value, atol=1e-6, rtol=1e-6, msg=kind)
    torch.testing.assert_close(circuits.previous_token_scores(random_model, tokens), expected["previous_token"])
    torch.testing.assert_close(current_token_scores(random_model, tokens), expected["current_token"])
    torch.testing.assert_close(first_token_scores(random_model, tokens), expected["first_token"])
    torch.testing.assert_close(circuits.duplicate_token_scores(random_model, tokens), expected["duplicate_token"])


def test_token_stream_iterable_equals_tensor(random_model):
    tokens = _tokens(batch=8)
    whole = circuits.previous_token_scores(random_model, tokens)
    streamed = circuits.previous_token_scores(random_model, iter([tokens[:3], tokens[3:5], tokens[5:]]))
    torch.testing.assert_close(whole, streamed)


def test_induction_and_prefix_matching_match_naive_reference(random_model):
    seq_len, reps = 2, 3
    tokens = circuits.repeated_tokens(13, seq_len, reps, batch=5, seed=3)
    patterns = _patterns(random_model, tokens)
    ind, pm_plus, pm_minus = [], [], []
    for q in range(1 + seq_len, tokens.shape[1]):
        ind.append(patterns[..., q, q - seq_len + 1])
        copies = [q - m * seq_len for m in range(1, reps) if q - m * seq_len >= 1]
        pm_plus.append(sum(patterns[..., q, c + 1] for c in copies))
        pm_minus.append(sum(patterns[..., q, c - 1] for c in copies))
    kwargs = dict(seq_len=seq_len, n_repeats=reps, batch=5, seed=3)
    torch.testing.assert_close(circuits.induction_scores(random_model, **kwargs), torch.stack(ind, -1).mean((1, 3)))
    torch.testing.assert_close(circuits.prefix_matching_scores(random_model, **kwargs), torch.stack(pm_plus, -1).mean((1, 3)))
    torch.testing.assert_close(
        circuits.prefix_matching_scores(random_model, offset=-1, **kwargs), torch.stack(pm_minus, -1).mean((1, 3))
    )


def test_prefix_matching_with_two_repeats_is_the_induction_score(random_model):
    kwargs = dict(seq_len=3, n_repeats=2, batch=4, seed=1)
    torch.testing.assert_close(circuits.prefix_matching_scores(random_model, **kwargs), circuits.induction_scores(random_model, **kwargs))


# ---- TransformerLens's head_detector agrees where the definitions coincide ------------------
def test_agrees_with_transformer_lens_head_detector(random_model):
    from transformer_lens.head_detector import detect_head

    # detect_head ("mul") = attention mass on the pattern / (number of query rows = n_pos);
    # ours averages over the counted queries only.
    full = circuits.repeated_tokens(13, 3, 2, batch=1, seed=0, distinct=True)  # BOS + R + R: 7 tokens = n_ctx
    tokens = full[:, :6]  # detect_head needs seq_len < n_ctx: BOS + R + R[:2]
    n_pos = tokens.shape[1]
    seq = tokens[0]
    tl_prev = detect_head(random_model, seq, "previous_token_head")
    ours_prev = circuits.previous_token_scores(random_model, tokens)
    torch.testing.assert_close(ours_prev * (n_pos - 1) / n_pos, tl_prev, atol=1e-6, rtol=1e-5)

    tl_dup = detect_head(random_model, seq, "duplicate_token_head")
    ours_dup = circuits.duplicate_token_scores(random_model, tokens)
    n_dup_queries = 2  # positions 4, 5 repeat positions 1, 2
    torch.testing.assert_close(ours_dup * n_dup_queries / n_pos, tl_dup, atol=1e-6, rtol=1e-5)

    # induction: with distinct R the only earlier copy is one period back
    tl_ind = detect_head(random_model, seq, "induction_head")
    patterns = _patterns(random_model, tokens)
    ours_ind = torch.stack([patterns[..., q, q - 3 + 1] for q in (4, 5)], -1).mean((1, 3))
    torch.testing.assert_close(ours_ind * 2 / n_pos, tl_ind, atol=1e-6, rtol=1e-5)


# ---- bad input ------------------------------------------------------------------------------
def test_errors(random_model):
    with pytest.raises(ValueError, match="n_ctx"):
        circuits.induction_scores(random_model, seq_len=5, n_repeats=2)  # 11 tokens > n_ctx = 7
    with pytest.raises(ValueError, match="n_repeats"):
        circuits.prefix_matching_scores(random_model, seq_len=3, n_repeats=1)
    with pytest.raises(ValueError, match="at least 2 tokens"):
        circuits.previous_token_scores(random_model, torch.zeros(2, 1, dtype=torch.long))
    with pytest.raises(ValueError, match="no query position"):
        circuits.duplicate_token_scores(random_model, torch.arange(7)[None])
    with pytest.raises(ValueError, match="unknown score kinds"):
        attention_scores(random_model, _tokens(), ["induction"])
    with pytest.raises((ValueError, TypeError)):  # TypeError from the jaxtyping/beartype checks the tests run with
        circuits.prefix_matching_scores(random_model, seq_len=2, n_repeats=3, offset=2)
    with pytest.raises(TypeError):
        circuits.previous_token_scores(random_model, "some text")
    with pytest.raises(ValueError, match="per-position loss needs"):
        circuits.per_position_loss(random_model, torch.zeros(2, 1, dtype=torch.long))


def test_scores_fit_the_context(hand):
    assert hand.config.n_ctx == N
    with pytest.raises(ValueError, match="choose seq_len <= 6"):
        circuits.induction_scores(hand, seq_len=7, n_repeats=2)
