"""Model diffing: a hand-edited copy of a model shows a change in exactly the edited head."""

from __future__ import annotations

import copy

import pytest
import torch

from circuits.analysis.model_diff import (
    ModelDiff, ablation_importance, check_same_architecture, model_diff, next_token_loss_fn, pattern_change, weight_changes,
)
from weights_helpers import randomized


def edited(model, layer: int, head: int, name: str, scale: float = 0.3, seed: int = 1):
    other = copy.deepcopy(model)
    param = getattr(other.blocks[layer].attn, name)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        param[head] += scale * torch.randn(param[head].shape, generator=generator)
    return other


@pytest.fixture
def model():
    return randomized(seed=3).eval()


@pytest.fixture
def tokens():
    return torch.randint(0, 13, (6, 7), generator=torch.Generator().manual_seed(0))


def test_identical_models_have_no_change(model, tokens):
    diff = model_diff(model, copy.deepcopy(model), tokens)
    for name, change in diff.weight_change.items():
        assert torch.all(change.abs() < 1e-6), name
    assert torch.all(diff.pattern_change == 0)
    assert diff.changed_heads(1e-6) == []
    assert torch.allclose(diff.ablation_before, diff.ablation_after)


@pytest.mark.parametrize("name, circuit", [("W_V", "OV"), ("W_O", "OV"), ("W_Q", "QK"), ("W_K", "QK")])
def test_edited_head_is_found_exactly(model, tokens, name, circuit):
    after = edited(model, 1, 2, name)
    diff = model_diff(model, after, tokens)
    assert diff.changed_heads(1e-6) == ["L1H2"]
    assert float(diff.weight_change[name][1, 2]) > 0.05
    assert float(diff.weight_change[circuit][1, 2]) > 1e-3
    others = [k for k in ("W_Q", "W_K", "W_V", "W_O") if k != name]
    assert all(float(diff.weight_change[k][1, 2]) == 0 for k in others)
    assert diff.top(diff.weight_change[name], 1)[0][0] == "L1H2"


def test_full_circuit_change_matches_dense(model):
    after = edited(model, 0, 1, "W_V")
    from circuits.analysis.weights.qkov import full_ov_circuit

    dense_before = full_ov_circuit(model, 0, 1).AB.double()
    dense_after = full_ov_circuit(after, 0, 1).AB.double()
    expected = (dense_after - dense_before).norm() / dense_before.norm()
    got = weight_changes(model, after)["OV"][0, 1]
    assert torch.isclose(got, expected, rtol=1e-6)


def test_pattern_change_only_where_the_query_or_key_changed(model, tokens):
    after = edited(model, 1, 0, "W_Q")  # last layer: nothing downstream reads its pattern
    change = pattern_change(model, after, tokens)
    assert float(change[1, 0]) > 1e-3
    mask = torch.ones_like(change, dtype=torch.bool)
    mask[1, 0] = False
    assert torch.all(change[mask] == 0)
    value_edit = pattern_change(model, edited(model, 1, 0, "W_V"), tokens)  # values do not move this layer's patterns
    assert torch.all(value_edit[1] == 0)


def test_ablation_importance_of_a_silenced_head_is_zero(model, tokens):
    silenced = copy.deepcopy(model)
    with torch.no_grad():
        silenced.blocks[1].attn.W_O[2] = 0.0
    importance = ablation_importance(silenced, next_token_loss_fn(tokens), heads=["L1H2", "L0H0"])
    assert float(importance[1, 2]) == 0.0
    assert torch.isnan(importance[0, 1])  # not asked for
    assert float(importance[0, 0]) != 0.0


def test_scores_are_reported_before_and_after(model, tokens):
    diff = model_diff(model, edited(model, 0, 0, "W_Q"), tokens)
    assert isinstance(diff, ModelDiff)
    assert set(diff.scores_before) == {"previous_token", "induction", "copying"}
    assert diff.score_change("previous_token").shape == (2, 3)
    assert float(diff.score_change("copying")[1, 1]) == 0.0  # copying reads W_V, W_O only


def test_architecture_mismatch_is_a_clear_error(model, tokens):
    other = randomized(seed=3, n_heads=2).eval()
    with pytest.raises(ValueError, match="n_heads: 3 vs 2"):
        model_diff(model, other, tokens)
    with pytest.raises(ValueError, match="configs differ"):
        check_same_architecture(model, randomized(seed=0, d_mlp=19))
    check_same_architecture(model, randomized(seed=0).eval())  # another seed is the same architecture
    with pytest.raises(TypeError, match="circuits.Transformer"):
        weight_changes(model, object())
