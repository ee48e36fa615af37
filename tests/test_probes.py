"""circuits.analysis.probes: probe tokens, the two repeat layouts, scores on them, the uniform-attention level, TL's detector."""

import numpy as np
import pytest
import torch

import circuits
from circuits.analysis.tasks import allowed_token_ids
from circuits.analysis.probes import (
    bos_repeats,
    detect_head_scores,
    near_zero_threshold,
    prefixed_repeats,
    probe_scores,
    probe_token_ids,
    probe_token_rule,
    uniform_attention_score,
)
from conftest import tiny_model

N_CTX = 16


@pytest.fixture
def model16():
    return tiny_model(n_ctx=N_CTX, attn_only=True, normalization="none", positional="shortformer", use_bias=False)


# ---- probe tokens ---------------------------------------------------------------------------------
def test_probe_tokens_are_the_most_frequent_half_without_bos():
    stream = np.array([0, 0, 0, 0, 5, 5, 5, 2, 2, 7, 1, 3, 3, 3, 3, 3])  # counts: 3:5, 0:4 (BOS), 5:3, 2:2, 1 and 7: 1
    ids = probe_token_ids(stream, d_vocab=8, bos=0)
    assert ids.tolist() == [3, 5, 2, 1]  # d_vocab // 2 = 4; BOS left out; tie 1 vs 7 goes to the lower id
    assert probe_token_ids(torch.from_numpy(stream), 8, None, n=2).tolist() == [3, 0]
    assert "4 most frequent tokens of the training split" in probe_token_rule(4, 8)


def test_probe_token_errors():
    with pytest.raises(ValueError, match="choose 1 <= n <= 7"):
        probe_token_ids(np.zeros(4, dtype=int), 8, 0, n=8)
    with pytest.raises(ValueError, match="outside"):
        probe_token_ids(np.array([9]), 8, 0)
    with pytest.raises(ValueError, match="empty"):
        probe_token_ids(np.array([], dtype=int), 8, 0)


# ---- layouts --------------------------------------------------------------------------------------
def test_bos_layout():
    probe = bos_repeats([4, 6, 9], seq_len=3, n_repeats=2, batch=5, seed=1, bos=0)
    t = probe.tokens
    assert t.shape == (5, 7) and (t[:, 0] == 0).all() and torch.equal(t[:, 1:4], t[:, 4:7])
    assert set(t[:, 1:].unique().tolist()) <= {4, 6, 9}
    assert probe.starts.tolist() == [1] * 5 and probe.describe() == "[BOS] + R + R (T = 3)"
    assert torch.equal(bos_repeats([4, 6, 9], 3, 2, 5, 1, 0).tokens, t)  # same seed, same tokens


def test_prefixed_layout_puts_the_repeats_after_natural_text():
    text = np.arange(100, 200)
    probe = prefixed_repeats([1, 2, 3], text, seq_len=3, n_repeats=2, batch=50, seed=0, bos=0, n_ctx=N_CTX)
    t, starts = probe.tokens, probe.starts
    assert t.shape == (50, N_CTX) and (t[:, 0] == 0).all()
    assert starts.min() >= 2 and starts.max() <= N_CTX - 6  # P in 1..room, room = 16 - 1 - 6 = 9
    assert len(set(starts.tolist())) > 3  # P varies per sequence
    for row, s in zip(t, starts.tolist()):
        assert torch.equal(row[s : s + 3], row[s + 3 : s + 6]) and set(row[s : s + 6].tolist()) <= {1, 2, 3}
        assert (row[1:s] >= 100).all() and (row[s + 6 :] >= 100).all()  # natural text before and after
        assert (row[1:s].diff() == 1).all()  # consecutive stream tokens
    assert "P drawn per sequence" in probe.describe()
    with pytest.raises(ValueError, match="do not fit"):
        prefixed_repeats([1], text, 6, 2, 1, 0, 0, N_CTX, min_prefix=4)
    with pytest.raises(ValueError, match="n_repeats"):
        prefixed_repeats([1], text, 3, 1, 1, 0, 0, N_CTX)


# ---- scores ---------------------------------------------------------------------------------------
def test_bos_probe_scores_equal_the_classic_scores(model16):
    allowed = allowed_token_ids(13, 0)
    probe = bos_repeats(allowed, seq_len=5, n_repeats=3, batch=6, seed=2, bos=0)
    ours = probe_scores(model16, probe, batch_size=4)
    kw = dict(seq_len=5, n_repeats=3, batch=6, seed=2)
    # repeated_tokens draws R the same way (uniform over allowed_token_ids with the same generator)
    assert torch.equal(circuits.repeated_tokens(13, 5, 3, 6, 2), probe.tokens)
    torch.testing.assert_close(ours.induction, circuits.induction_scores(model16, **kw))
    torch.testing.assert_close(ours.prefix_matching, circuits.prefix_matching_scores(model16, **kw))
    torch.testing.assert_close(ours.prefix_matching_literal, circuits.prefix_matching_scores(model16, offset=-1, **kw))
    torch.testing.assert_close(ours.loss_per_repeat, circuits.repeated_tokens_loss(model16, **kw).per_repeat)


def test_prefixed_scores_read_each_row_at_its_own_offset(model16):
    probe = prefixed_repeats(torch.arange(1, 13), np.arange(1, 13).repeat(20), seq_len=4, n_repeats=2, batch=5, seed=3, bos=0, n_ctx=N_CTX)
    scores = probe_scores(model16, probe, batch_size=2)
    _, cache = model16.run_with_cache(probe.tokens)
    expected, loss = torch.zeros(2, 3), torch.zeros(2)
    per_token = model16(probe.tokens, return_type="per_token_loss")
    for row, s in enumerate(probe.starts.tolist()):
        for layer in range(2):
            pattern = cache[f"blocks.{layer}.attn.hook_pattern"][row]  # [head, q, k]
            expected[layer] += torch.stack([pattern[:, q, q - 3] for q in range(s + 4, s + 8)]).mean(0)
        loss += torch.stack([per_token[row, s - 1 : s + 3].mean(), per_token[row, s + 3 : s + 7].mean()])
    torch.testing.assert_close(scores.induction, expected / 5)
    torch.testing.assert_close(scores.loss_per_repeat, loss / 5)


def test_perfect_and_uniform_heads(model16):
    """A hand-set pattern: attending exactly to the induction target scores 1; uniform attention scores uniform_attention_score."""
    probe = prefixed_repeats(torch.arange(1, 13), np.arange(1, 13).repeat(20), seq_len=4, n_repeats=2, batch=3, seed=0, bos=0, n_ctx=N_CTX)
    n_pos = N_CTX

    def set_pattern(kind):
        def hook(pattern, hook):
            out = torch.zeros_like(pattern)
            for row, s in enumerate(probe.starts.tolist()):
                if kind == "uniform":
                    out[row] = torch.ones(n_pos, n_pos).tril() / torch.arange(1, n_pos + 1)[:, None]
                else:
                    out[row] = torch.eye(n_pos)
                    for q in range(s + 4, s + 8):
                        out[row, :, q] = 0
                        out[row, :, q, q - 3] = 1
            return out
        return lambda tokens: [("blocks.1.attn.hook_pattern", hook)]

    perfect = probe_scores(model16, probe, hooks_for_batch=set_pattern("perfect")).induction[1]
    uniform = probe_scores(model16, probe, hooks_for_batch=set_pattern("uniform")).induction[1]
    torch.testing.assert_close(perfect, torch.ones(3))
    level = uniform_attention_score(probe)
    torch.testing.assert_close(uniform, torch.full((3,), level))
    expected = np.mean([1 / (q + 1) for s in probe.starts.tolist() for q in range(s + 4, s + 8)])
    assert level == pytest.approx(expected) and near_zero_threshold(probe) == level


def test_uniform_level_of_the_classic_probe():
    probe = bos_repeats([1, 2], seq_len=50, n_repeats=2, batch=1, seed=0, bos=0)
    assert uniform_attention_score(probe) == pytest.approx(np.mean([1 / (q + 1) for q in range(51, 101)]))  # about 0.0137
    assert uniform_attention_score(probe, all_copies=True) == uniform_attention_score(probe)  # one earlier copy


def test_detect_head_scores_match_transformer_lens(model16):
    from transformer_lens.head_detector import detect_head

    text = torch.randint(1, 13, (3, N_CTX), generator=torch.Generator().manual_seed(0))
    ours = detect_head_scores(model16, text, "previous_token_head")
    expected = torch.stack([detect_head(model16, row[: N_CTX - 1], "previous_token_head") for row in text]).mean(0)
    torch.testing.assert_close(ours, expected)
    assert detect_head_scores(model16, text, "induction_head").shape == (2, 3)
    with pytest.raises(ValueError, match="choose one of"):
        detect_head_scores(model16, text, "induction")
