"""Toy models of superposition: the model, its training loop (determinism, errors) and the analyses on hand-built ``W``."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from circuits.analysis import superposition as sp
from circuits.model.toy import ToyModel, ToyModelConfig
from circuits.training.toy import ToyTrainConfig, make_feature_probability, make_importance, sample_features, toy_loss, train_toy


def polygon(k: int, norm: float = 1.0, offset_deg: float = 10.0) -> np.ndarray:
    """``W [2, k]``: k features at the vertices of a regular k-gon."""
    angles = np.deg2rad(offset_deg + 360.0 * np.arange(k) / k)
    return norm * np.stack([np.cos(angles), np.sin(angles)])


# ---- the model --------------------------------------------------------------------------------
def test_forward_is_relu_of_WtWx_plus_b_per_instance():
    cfg = ToyModelConfig(n_features=5, d_hidden=2, n_instances=3)
    model = ToyModel(cfg, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        model.b_final.copy_(torch.randn(3, 5))
    x = torch.rand(4, 3, 5)
    out = model(x)
    for i in range(3):
        W, b = model.W[i], model.b_final[i]
        torch.testing.assert_close(out[:, i], torch.relu(x[:, i] @ W.T @ W + b))
        torch.testing.assert_close(model.hidden(x)[:, i], x[:, i] @ W.T)
    assert model.feature_directions().shape == (3, 5, 2)


def test_model_refuses_bad_shapes_and_configs():
    model = ToyModel(ToyModelConfig(n_features=5, d_hidden=2, n_instances=3))
    with pytest.raises((ValueError, TypeError)):  # a TypeError when jaxtyping checks the annotation first (pytest)
        model(torch.rand(4, 5))
    with pytest.raises(ValueError, match=r"\[batch, 3 instances, 5 features\]"):
        model._check_input(torch.rand(4, 3, 6))
    with pytest.raises(ValueError, match="n_features must be >= 1"):
        ToyModelConfig(n_features=0, d_hidden=2)
    with pytest.raises(ValueError, match="d_hidden must be >= 1"):
        ToyModelConfig(n_features=5, d_hidden=-1)
    with pytest.raises(TypeError, match="n_instances"):
        ToyModelConfig(n_features=5, d_hidden=2, n_instances=2.0)


# ---- data and training ------------------------------------------------------------------------
def test_features_are_present_with_probability_p_and_uniform():
    cfg = ToyModelConfig(n_features=4, d_hidden=2, n_instances=2)
    p = make_feature_probability(cfg, [1.0, 0.1])
    x = sample_features(20000, p, generator=torch.Generator().manual_seed(0))
    assert x.shape == (20000, 2, 4) and float(x.min()) >= 0 and float(x.max()) <= 1
    assert (x[:, 0] > 0).float().mean() == pytest.approx(1.0, abs=1e-3)
    assert (x[:, 1] > 0).float().mean() == pytest.approx(0.1, abs=0.01)
    assert x[:, 1][x[:, 1] > 0].mean() == pytest.approx(0.5, abs=0.02)


def test_importance_from_a_decay_a_list_or_a_table():
    cfg = ToyModelConfig(n_features=3, d_hidden=2, n_instances=2)
    np.testing.assert_allclose(make_importance(cfg, 0.9).numpy(), [[1, 0.9, 0.81]] * 2, rtol=1e-6)
    np.testing.assert_allclose(make_importance(cfg, [1, 2, 3]).numpy(), [[1, 2, 3]] * 2)
    assert make_importance(cfg, [[1, 1, 1], [2, 2, 2]]).shape == (2, 3)


@pytest.mark.parametrize("p, match", [(0.0, r"S=1\.0"), (1.5, "must be in"), ([0.5, 0.5, 0.5], "needs length 2"), (float("nan"), "must be in")])
def test_bad_sparsity_is_refused(p, match):
    with pytest.raises(ValueError, match=match):
        make_feature_probability(ToyModelConfig(n_features=3, d_hidden=2, n_instances=2), p)


@pytest.mark.parametrize("importance, match", [(1.5, "decay r"), (0.0, "decay r"), ([1, 2], "needs length 3"), ([1, -1, 1], "positive"), ([[1, 1]], "does not broadcast")])
def test_bad_importance_is_refused(importance, match):
    with pytest.raises(ValueError, match=match):
        make_importance(ToyModelConfig(n_features=3, d_hidden=2, n_instances=2), importance)


def test_bad_training_config_is_refused():
    with pytest.raises(ValueError, match="steps must be a positive int"):
        ToyTrainConfig(steps=0)
    with pytest.raises(ValueError, match="lr must be"):
        ToyTrainConfig(lr=-1.0)
    with pytest.raises(ValueError, match="lr_schedule"):
        ToyTrainConfig(lr_schedule="linear")


def test_loss_is_importance_weighted_squared_error():
    x, x_hat = torch.ones(2, 1, 2), torch.zeros(2, 1, 2)
    assert toy_loss(x, x_hat, torch.tensor([[1.0, 3.0]])).tolist() == [4.0]


def test_training_is_deterministic_and_learns():
    cfg = ToyModelConfig(n_features=5, d_hidden=2, n_instances=2)
    train_cfg = ToyTrainConfig(steps=150, batch_size=256, lr=1e-2, seed=3, log_every=50)
    a = train_toy(cfg, [1.0, 0.05], 0.9, train_cfg)
    b = train_toy(cfg, [1.0, 0.05], 0.9, train_cfg)
    assert torch.equal(a.model.W, b.model.W) and torch.equal(a.model.b_final, b.model.b_final)
    assert a.steps == (0, 50, 100, 149) and a.losses.shape == (4, 2) and a.final_loss.shape == (2,)
    assert (a.losses[-1] < a.losses[0]).all()
    c = train_toy(cfg, [1.0, 0.05], 0.9, ToyTrainConfig(steps=150, batch_size=256, lr=1e-2, seed=4, log_every=50))
    assert not torch.equal(a.model.W, c.model.W)


# ---- analyses on hand-built W -----------------------------------------------------------------
def test_regular_pentagon_geometry():
    W = polygon(5, norm=1.2)
    gaps = sp.angle_gaps(W)
    np.testing.assert_allclose(gaps, [72.0] * 5, atol=1e-9)
    np.testing.assert_allclose(sp.feature_norms(W), [1.2] * 5)
    # D_i = 2/5 for each vertex of a regular pentagon: |W_i|^2 / (|W|^2 (1 + 2cos^2 72 + 2cos^2 144)) = 1 / 2.5
    np.testing.assert_allclose(sp.feature_dimensionality(W), [0.4] * 5, atol=1e-12)
    np.testing.assert_allclose(sp.superposition(W), [1.44 * 1.5] * 5, atol=1e-12)
    assert sp.dimensions_per_feature(W) == pytest.approx(2 / (5 * 1.44))


def test_dimensionality_of_simple_geometries():
    dedicated = np.eye(3)  # 3 orthogonal unit features
    np.testing.assert_allclose(sp.feature_dimensionality(dedicated), [1, 1, 1])
    np.testing.assert_allclose(sp.superposition(dedicated), [0, 0, 0])
    antipodal = np.array([[1.0, -1.0, 0.0], [0.0, 0.0, 1.0]])  # a pair sharing a dimension, and a dedicated one
    np.testing.assert_allclose(sp.feature_dimensionality(antipodal), [0.5, 0.5, 1.0])
    np.testing.assert_allclose(sp.feature_dimensionality(polygon(3)), [2 / 3] * 3, atol=1e-12)
    tetra = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], dtype=float).T / np.sqrt(3)
    np.testing.assert_allclose(sp.feature_dimensionality(tetra), [0.75] * 4, atol=1e-12)
    dead = np.array([[1.0, 0.0], [0.0, 0.0]])  # feature 1 not represented
    np.testing.assert_allclose(sp.feature_dimensionality(dead), [1.0, 0.0])
    np.testing.assert_allclose(sp.superposition(dead), [0.0, 0.0])


def test_batched_W_gives_per_instance_values():
    W = np.stack([polygon(5), np.concatenate([np.eye(2), np.zeros((2, 3))], 1)])
    D = sp.feature_dimensionality(torch.tensor(W))
    assert D.shape == (2, 5)
    np.testing.assert_allclose(D[1], [1, 1, 0, 0, 0])
    np.testing.assert_array_equal(sp.represented(W)[1], [True, True, False, False, False])


def test_square_plus_missing_feature_is_not_a_pentagon():
    W = np.concatenate([polygon(4), np.zeros((2, 1))], 1)
    np.testing.assert_allclose(sp.angle_gaps(W), [90.0] * 4, atol=1e-9)
    assert sp.angle_gaps(np.array([[1.0, 0.0], [0.0, 0.0]])).size == 0


def test_cosines_and_phases():
    W = np.array([[1.0, 0.0, 0.7], [0.0, 1.0, 0.7]])
    assert sp.max_abs_cosine(W, [0, 1]) == pytest.approx(0.0)
    assert sp.max_abs_cosine(W, [0, 2]) == pytest.approx(math.cos(math.pi / 4))
    # 2 features in 1 dimension: [w_1, w_2] per cell
    cells = np.array([[[1.0, 0.0]], [[0.0, 1.0]], [[1.0, -1.0]]])
    np.testing.assert_array_equal(sp.feature_phase(cells, 1), [0, 1, 2])
    assert sp.PHASES[2] == "superposition"


def test_sticky_fraction_and_even_spread():
    assert sp.sticky_fraction([1.0, 0.5, 0.4, 0.3]) == 0.75
    assert math.isnan(sp.sticky_fraction([]))
    assert sp.even_spread_fraction((0.5,), 0.1) == pytest.approx(0.2)
    assert sp.even_spread_fraction() == pytest.approx(0.25)  # 0.025 below 1, 3 windows of 0.05, [0.35, 0.425]
    uniform = np.linspace(0, 1, 100001)
    assert sp.sticky_fraction(uniform) == pytest.approx(sp.even_spread_fraction(), abs=1e-3)


def test_angles_need_two_dimensions():
    with pytest.raises(ValueError, match="2-D hidden space"):
        sp.feature_angles(np.eye(3))
    with pytest.raises(ValueError, match="index the instance first"):
        sp.angle_gaps(np.zeros((2, 2, 5)))
