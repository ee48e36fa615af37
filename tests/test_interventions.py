import pytest
import torch
from activation_models import induction_model
from conftest import tiny_model

import circuits
from circuits import Ablation
from circuits.analysis.activations.interventions import _derangement

IND = dict(seq_len=6, n_repeats=2, batch=8, seed=0, distinct=True)


@pytest.fixture(scope="module")
def hand():
    return induction_model()


def _tokens(batch=4, pos=7, seed=0):
    return torch.randint(0, 13, (batch, pos), generator=torch.Generator().manual_seed(seed))


def test_ablating_the_previous_token_head_removes_the_induction_score(hand):
    clean = circuits.induction_scores(hand, **IND)
    ablated = circuits.induction_scores(hand, **IND, hooks_for_batch=Ablation(["L0H0"]).for_model(hand))
    other = circuits.induction_scores(hand, **IND, hooks_for_batch=Ablation(["L0H1"]).for_model(hand))
    assert clean[1, 0] > 0.99
    assert ablated[1, 0] < 0.25  # uniform attention over the keys: about 1 / position
    torch.testing.assert_close(other, clean)  # L0H1 writes nothing: ablating it changes nothing


def test_pattern_preserving_ablation_keeps_patterns_but_not_values(hand):
    ablation = Ablation(["L1H0"], pattern_preserving=True)
    scores = circuits.induction_scores(hand, **IND, hooks_for_batch=ablation.for_model(hand))
    torch.testing.assert_close(scores, circuits.induction_scores(hand, **IND))
    prev = Ablation(["L0H0"], pattern_preserving=True)
    torch.testing.assert_close(  # L1H0 reads L0H0 only through its key: freezing patterns hides the ablation
        circuits.induction_scores(hand, **IND, hooks_for_batch=prev.for_model(hand)), circuits.induction_scores(hand, **IND)
    )
    clean_loss = circuits.repeated_tokens_loss(hand, **IND)
    ablated_loss = circuits.repeated_tokens_loss(hand, **IND, hooks_for_batch=ablation.for_model(hand))
    assert (clean_loss.per_position[7:] < 1e-3).all() and (ablated_loss.per_position[7:] > 1.0).all()


def test_pattern_preserving_ablation_removes_exactly_the_paths_through_the_head():
    model = tiny_model(attn_only=True, normalization="none", positional="learned", use_bias=False)
    tokens = _tokens()
    expansion = circuits.path_expansion(model, tokens)
    keep = torch.tensor(["L0H1" not in label.split("->") for label in expansion.labels])
    expected = expansion.terms[keep].sum(0)
    hooks = Ablation(["L0H1"], pattern_preserving=True).hooks(model, tokens)
    ablated = model.run_with_hooks(tokens, fwd_hooks=hooks)
    torch.testing.assert_close(ablated, expected, atol=1e-5, rtol=1e-5)
    # a full ablation also changes the later patterns, so it differs
    full = model.run_with_hooks(tokens, fwd_hooks=Ablation(["L0H1"]).hooks(model, tokens))
    assert (full - expected).abs().max() > 1e-4


def test_mean_ablation_with_own_mean_of_one_sequence_changes_nothing():
    model = tiny_model()
    tokens = _tokens(batch=1)
    means = circuits.head_means(model, tokens)
    assert set(means) == {f"L{l}H{h}" for l in range(2) for h in range(3)} and means["L1H2"].shape == (7, 5)
    ablation = Ablation(["L0H2", (1, 1)], kind="mean", means=means)
    torch.testing.assert_close(model.run_with_hooks(tokens, fwd_hooks=ablation.hooks(model, tokens)), model(tokens))
    other = circuits.head_means(model, _tokens(batch=5, seed=1), heads=["L0H2", "L1H1"])
    changed = model.run_with_hooks(tokens, fwd_hooks=Ablation(["L0H2"], kind="mean", means=other).hooks(model, tokens))
    assert (changed - model(tokens)).abs().max() > 1e-4


def test_head_means_are_means_of_z():
    model = tiny_model()
    tokens = _tokens(batch=5)
    _, cache = model.run_with_cache(tokens)
    means = circuits.head_means(model, tokens, heads=["L1H0"], batch_size=2)
    torch.testing.assert_close(means["L1H0"], cache["z", 1][:, :, 0].mean(0))


def test_resample_ablation_takes_another_sequences_output():
    model = tiny_model()
    tokens = _tokens(batch=5)
    ablation = Ablation(["L1H1"], kind="resample", seed=3)
    perm = _derangement(5, 3, tokens.device)
    assert (perm != torch.arange(5)).all() and sorted(perm.tolist()) == list(range(5))
    seen = {}
    record = ("blocks.1.attn.hook_z", lambda z, hook: seen.__setitem__("z", z.clone()))
    model.run_with_hooks(tokens, fwd_hooks=ablation.hooks(model, tokens) + [record])
    _, cache = model.run_with_cache(tokens)
    torch.testing.assert_close(seen["z"][:, :, 1], cache["z", 1][perm][:, :, 1])
    torch.testing.assert_close(seen["z"][:, :, 0], cache["z", 1][:, :, 0])


def test_ablation_effects_table(hand):
    tokens = circuits.repeated_tokens(11, 6, 2, batch=6, seed=5, distinct=True)
    effects = circuits.ablation_effects(
        hand,
        tokens,
        [Ablation(["L0H0"]), Ablation(["L1H0"], pattern_preserving=True)],
        late=12,
        early=3,
        induction=IND,
        prefix_matching=dict(seq_len=4, n_repeats=3, batch=4, seed=0, distinct=True),
    )
    assert effects.labels == ["clean", "zero(L0H0)", "pattern-preserving zero(L1H0)"]
    assert effects.scores["induction"].shape == (3, 2, 3)
    assert effects.icl[0] < -1.0  # the hand-built model predicts the second repeat
    assert (effects.delta("icl")[1:] > 1.0).all()  # either ablation removes in-context learning
    assert effects.delta("loss")[1] > 0.3  # (zeroing the induction head's output flattens all logits instead)
    assert effects.scores["induction"][1, 1, 0] < 0.25 < 0.99 < effects.scores["induction"][0, 1, 0]
    assert effects.scores["previous_token"][1, 0, 0] == effects.scores["previous_token"][0, 0, 0]
    assert effects.per_position_loss.shape == (3, 12)
    assert effects.icl_note == "indices (12, 3) as given"
    assert circuits.ablated_loss(hand, tokens, Ablation(["L1H0"])) == pytest.approx(effects.loss[2].item(), abs=1e-6)


def test_ablation_errors():
    model = tiny_model()
    tokens = _tokens()
    with pytest.raises(ValueError, match="L\\{layer\\}H\\{head\\}"):
        Ablation(["head0"]).hooks(model, tokens)
    with pytest.raises(KeyError, match="does not exist"):
        Ablation(["L2H0"]).hooks(model, tokens)
    with pytest.raises(ValueError, match="means="):
        Ablation(["L0H0"], kind="mean")
    with pytest.raises((ValueError, TypeError)):  # TypeError from the runtime type checks the tests run with
        Ablation(["L0H0"], kind="noise")
    with pytest.raises(ValueError, match="non-empty"):
        Ablation("L0H0")
    with pytest.raises(ValueError, match="at least 2"):
        Ablation(["L0H0"], kind="resample").hooks(model, tokens[:1])
    with pytest.raises(KeyError, match="no entry"):
        Ablation(["L0H1"], kind="mean", means=circuits.head_means(model, tokens, heads=["L0H0"])).hooks(model, tokens)
