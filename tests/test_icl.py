import pytest
import torch
from activation_models import induction_model
from conftest import tiny_model

import circuits


def _tokens(batch=5, pos=7, seed=0):
    return torch.randint(0, 13, (batch, pos), generator=torch.Generator().manual_seed(seed))


def test_icl_indices_paper_and_scaled():
    paper = circuits.icl_indices(512)
    assert (paper.late, paper.early, paper.scaled) == (500, 50, False)
    scaled = circuits.icl_indices(256)
    assert (scaled.late, scaled.early, scaled.scaled) == (250, 25, True)
    assert "scaled" in scaled.note and "(250, 25)" in scaled.note
    given = circuits.icl_indices(20, late=15, early=2)
    assert (given.late, given.early, given.scaled) == (15, 2, False)


@pytest.mark.parametrize("late, early", [(7, 2), (3, 3), (None, 2), (5, 0)])
def test_icl_indices_errors(late, early):
    with pytest.raises(ValueError):
        circuits.icl_indices(7, late=late, early=early)


def test_icl_score_matches_naive_reference():
    model = tiny_model()
    tokens = _tokens()
    per_token = model(tokens, return_type="per_token_loss")
    expected = (per_token[:, 5] - per_token[:, 1]).mean().item()  # predicted tokens 6 and 2
    assert circuits.icl_score(model, tokens, late=6, early=2, batch_size=2) == pytest.approx(expected, abs=1e-6)
    idx = circuits.icl_indices(7)
    default = (per_token[:, idx.late - 1] - per_token[:, idx.early - 1]).mean().item()
    assert circuits.icl_score(model, tokens) == pytest.approx(default, abs=1e-6)


def test_icl_score_is_negative_for_an_induction_model():
    tokens = circuits.repeated_tokens(11, 6, 2, batch=6, seed=0, distinct=True)
    assert circuits.icl_score(induction_model(), tokens, late=12, early=3) < -2.0


def test_icl_score_on_too_short_sequences_raises():
    with pytest.raises(ValueError, match="at least 501 tokens"):
        circuits.icl_score(tiny_model(), _tokens(), late=500, early=50)


def test_per_token_losses_of_fixed_pairs():
    model = tiny_model()
    tokens = _tokens(batch=6)
    pairs = circuits.sample_token_indices(6, 7, seed=0, per_example=2)
    assert pairs.shape == (12, 2) and torch.equal(pairs, circuits.sample_token_indices(6, 7, seed=0, per_example=2))
    assert int(pairs[:, 1].min()) >= 1 and int(pairs[:, 1].max()) <= 6
    per_token = model(tokens, return_type="per_token_loss")
    expected = per_token[pairs[:, 0], pairs[:, 1] - 1]
    torch.testing.assert_close(circuits.per_token_losses(model, tokens, pairs, batch_size=4), expected)
    with pytest.raises(ValueError, match="pair indices"):
        circuits.per_token_losses(model, tokens, torch.tensor([[0, 7]]))
    with pytest.raises(ValueError, match="pair examples"):
        circuits.per_token_losses(model, tokens, torch.tensor([[6, 1]]))


def test_checkpoint_metrics_over_models():
    models = [tiny_model(attn_only=True, seed=s) for s in range(3)]
    tokens = _tokens(batch=4)
    ind_kwargs = dict(seq_len=3, n_repeats=2, batch=4, seed=1)
    pm_kwargs = dict(seq_len=2, n_repeats=3, batch=4, seed=1)
    result = circuits.checkpoint_metrics(
        ((step, m) for step, m in zip([0, 10, 20], models)), tokens, induction=ind_kwargs, prefix_matching=pm_kwargs, batch_size=3
    )
    assert result.steps == [0, 10, 20]
    assert result.indices.scaled and result.loss_vectors.shape == (3, 4) and result.per_position_loss.shape == (3, 6)
    for i, m in enumerate(models):
        assert result.icl[i].item() == pytest.approx(circuits.icl_score(m, tokens), abs=1e-6)
        torch.testing.assert_close(result.loss_vectors[i], circuits.per_token_losses(m, tokens, result.pairs))
        torch.testing.assert_close(result.previous_token[i], circuits.previous_token_scores(m, tokens))
        torch.testing.assert_close(result.induction[i], circuits.induction_scores(m, **ind_kwargs))
        torch.testing.assert_close(result.prefix_matching[i], circuits.prefix_matching_scores(m, **pm_kwargs))
        assert result.loss[i].item() == pytest.approx(m(tokens, return_type="loss").item(), abs=1e-6)
    plain = circuits.checkpoint_metrics(models[:2], tokens, induction=ind_kwargs, prefix_matching=pm_kwargs)
    assert plain.steps == [0, 1]
    with pytest.raises(ValueError, match="empty"):
        circuits.checkpoint_metrics([], tokens)


def test_window_icl_and_log_index_slopes_are_per_window_versions_of_the_mean():
    import numpy as np

    rng = np.random.default_rng(0)
    loss = rng.uniform(1, 5, size=(2, 40, 63))  # [checkpoint, window, pos - 1]
    late, early = [59, 60, 61, 62], [5, 6, 7]
    per_window = circuits.analysis.activations.icl.window_icl(loss, late, early)
    mean = loss.mean(1)
    assert per_window.shape == (2, 40)
    np.testing.assert_allclose(per_window.mean(1), mean[:, [i - 1 for i in late]].mean(-1) - mean[:, [i - 1 for i in early]].mean(-1))
    from circuits.analysis.activations.icl import log_index_start, log_index_weights

    w = log_index_weights(64, 6)
    idx = np.arange(6, 64)
    np.testing.assert_allclose(mean[0] @ w, np.polyfit(np.log(idx), mean[0, idx - 1], 1)[0])
    np.testing.assert_allclose((loss[0] @ w).mean(), mean[0] @ w)  # linear: the mean of the windows' slopes is the slope of the mean
    np.testing.assert_allclose(log_index_weights(64, 24) @ (2.0 - 0.3 * np.log(np.arange(1, 64))), -0.3)  # an exact log-linear curve
    with pytest.raises(ValueError, match="first < last"):
        log_index_weights(64, 63)
    with pytest.raises(ValueError, match="must be in"):
        circuits.analysis.activations.icl.window_icl(loss, [64], early)
    assert log_index_start(64)[0] == 6 and "scaled" in log_index_start(64)[1]  # 64 tokens: less than an e-fold beyond 50
    assert log_index_start(137)[0] == 50 and log_index_start(136)[0] == circuits.icl_indices(136).early


def test_checkpoint_metrics_with_probes_and_window_losses():
    from circuits.analysis.activations.per_sequence import row_scores, row_targets
    from circuits.analysis.probes import bos_repeats

    models = [tiny_model(attn_only=True, seed=s) for s in range(2)]
    tokens = _tokens(batch=4)
    targets = row_targets(bos_repeats(list(range(1, 13)), seq_len=3, n_repeats=2, batch=5, seed=0, bos=0))
    result = circuits.checkpoint_metrics(models, tokens, probes={"ind": targets}, keep_window_loss=True, batch_size=3)
    assert result.induction is None and result.prefix_matching is None  # the probes replace the generated-token scores
    assert result.window_loss.shape == (2, 4, 6) and set(result.probe_rows["ind"]) == {"induction", "prefix_matching"}
    for i, m in enumerate(models):
        torch.testing.assert_close(result.window_loss[i], m(tokens, return_type="per_token_loss").float())
        torch.testing.assert_close(result.per_position_loss[i], result.window_loss[i].mean(0))
        torch.testing.assert_close(result.probe_rows["ind"]["induction"][i], row_scores(m, targets)["induction"])
    assert circuits.checkpoint_metrics(models, tokens, probes={}).window_loss is None
