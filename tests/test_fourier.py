"""The Fourier analysis of modular addition (circuits.analysis.grokking), the data and the last-position forward, on known cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from circuits import Transformer, TransformerConfig
from circuits.analysis.grokking import fourier as F
from circuits.analysis.grokking import readout as R
from circuits.analysis.grokking.progress import detect_phases, first_at_least, labels_grid, progress_measures
from circuits.training.modular import ModularAddition, all_pairs, check_prime, is_prime, last_position_logits, pair_tokens
from grokking_helpers import fourier_model

P, KEYS = 11, (2, 5)


def grid(p: int):
    return np.meshgrid(np.arange(p), np.arange(p), indexing="ij")


# ---- the basis --------------------------------------------------------------------------------------
@pytest.mark.parametrize("p", [2, 3, 7, 12, 113])
def test_basis_is_orthonormal(p):
    basis = F.fourier_basis(p)
    assert basis.shape == (p, p)
    np.testing.assert_allclose(basis @ basis.T, np.eye(p), atol=1e-10)
    assert len(F.basis_names(p)) == p and F.basis_names(p)[:2] == ["const", "cos 1"]


def test_basis_rows_are_the_named_waves():
    basis, x = F.fourier_basis(7), np.arange(7)
    np.testing.assert_allclose(basis[F.frequency_rows(3)[0]], np.cos(2 * np.pi * 3 * x / 7) / math.sqrt(3.5), atol=1e-12)
    np.testing.assert_allclose(basis[F.frequency_rows(3)[1]], np.sin(2 * np.pi * 3 * x / 7) / math.sqrt(3.5), atol=1e-12)


@pytest.mark.parametrize("bad", [1, 0, -3, 2.5, True])
def test_basis_refuses_bad_p(bad):
    with pytest.raises(ValueError, match="p="):
        F.fourier_basis(bad)


# ---- power and key frequencies --------------------------------------------------------------------
def test_power_of_a_single_wave():
    x = np.arange(13)
    matrix = np.stack([np.cos(2 * np.pi * 4 * x / 13 + 0.3), 2 * np.sin(2 * np.pi * 4 * x / 13)], axis=1)
    power = F.frequency_power(matrix)
    assert power.power.argmax() == 3 and power.share([4]) == pytest.approx(1.0)
    assert power.constant == pytest.approx(0.0, abs=1e-20)
    np.testing.assert_allclose(power.power.sum() + power.constant, (matrix**2).sum())  # Parseval


def test_key_frequencies_pick_the_largest_drop():
    assert F.key_frequencies(np.array([0.0, 9.0, 0.0, 0.0, 8.0, 0.0])) == (2, 5)
    assert F.key_frequencies(np.array([1.0, 50.0, 40.0, 45.0, 1.2, 0.9, 1.1])) == (2, 3, 4)
    assert F.key_frequencies(np.array([1.0, 1.0, 100.0]), max_keys=1) == (3,)
    with pytest.raises(ValueError, match="at least 2"):
        F.key_frequencies(np.array([1.0]))


# ---- neurons, logits, restricted / excluded -------------------------------------------------------
def test_neuron_frequencies_on_known_neurons():
    p = 13
    a, b = grid(p)
    w = 2 * np.pi / p
    acts = np.stack([np.cos(w * 3 * (a + b)), np.cos(w * 5 * a) + 0.5, np.zeros((p, p)), np.cos(w * 2 * a) + np.cos(w * 6 * b)], axis=-1)
    found = F.neuron_frequencies(acts)
    assert list(found.frequency[:3]) == [3, 5, 0]
    np.testing.assert_allclose(found.fraction[:2], 1.0)
    assert math.isnan(found.fraction[2]) and found.fraction[3] == pytest.approx(0.5)
    assert found.clustered(0.85) == pytest.approx(0.5)


def test_logit_fit_recovers_the_coefficients():
    p = 13
    a, b, c = np.meshgrid(np.arange(p), np.arange(p), np.arange(p), indexing="ij")
    logits = 3 * np.cos(2 * np.pi * 2 * (a + b - c) / p) + 1 * np.cos(2 * np.pi * 6 * (a + b - c) / p) + 7.0 * (a == 0)
    fit = F.logit_fit(logits, (2, 6))
    np.testing.assert_allclose(fit.alpha, [3.0, 1.0], atol=1e-10)
    assert fit.explained == pytest.approx(1.0)  # the (a == 0) term is constant over c: centred away
    assert F.logit_fit(np.random.default_rng(0).normal(size=(p, p, p)), (2,)).explained < 0.05


def test_restricted_and_excluded_split_the_logits():
    p = 13
    a, b = grid(p)
    wave = np.cos(2 * np.pi * 4 * (a + b) / p)[..., None] * np.arange(p)  # frequency 4 of a + b, for each class
    noise = np.random.default_rng(1).normal(size=(p, p, p))
    logits = wave + noise
    restricted, excluded = F.restricted_logits(logits, (4,)), F.excluded_logits(logits, (4,))
    np.testing.assert_allclose(restricted + excluded - logits.mean(axis=(0, 1), keepdims=True), logits, atol=1e-10)
    split = F.split_logits(logits, (4,))
    np.testing.assert_allclose(split[0], restricted) and np.testing.assert_allclose(split[1], excluded)
    np.testing.assert_allclose(F.restricted_logits(wave, (4,)), wave, atol=1e-10)
    np.testing.assert_allclose(F.excluded_logits(wave, (4,)), 0.0, atol=1e-10)
    with pytest.raises(ValueError, match="frequencies"):
        F.restricted_logits(logits, (7,))


def test_cross_entropy_and_accuracy_match_torch():
    logits, labels = np.random.default_rng(2).normal(size=(5, 4, 7)) * 3, np.random.default_rng(3).integers(0, 7, (5, 4))
    mask = np.random.default_rng(4).random((5, 4)) > 0.5
    expected = torch.nn.functional.cross_entropy(torch.tensor(logits[mask]), torch.tensor(labels[mask]))
    assert F.cross_entropy(logits, labels, mask) == pytest.approx(float(expected))
    assert F.accuracy(logits, labels) == pytest.approx(float((logits.argmax(-1) == labels).mean()))


def test_gini():
    assert F.gini(np.ones(5)) == pytest.approx(0.0)
    assert F.gini(np.array([0.0, 0.0, 0.0, 4.0])) == pytest.approx(0.75)
    assert F.gini(np.zeros(3)) == 0.0
    assert F.gini(np.array([1.0, 2.0, 3.0])) == pytest.approx(sum(abs(x - y) for x in (1, 2, 3) for y in (1, 2, 3)) / (2 * 3 * 6))
    with pytest.raises(ValueError, match="non-negative"):
        F.gini(np.array([1.0, -1.0]))


# ---- the hand-built Fourier model -----------------------------------------------------------------
def test_hand_built_model_computes_the_fourier_circuit():
    model = fourier_model(P, KEYS)
    a, b, c = np.meshgrid(np.arange(P), np.arange(P), np.arange(P), indexing="ij")
    expected = 5.0 * sum(np.cos(2 * np.pi * k * (a + b - c) / P) for k in KEYS)
    np.testing.assert_allclose(R.all_logits(model, P), expected, atol=1e-8)


def test_two_frequency_embedding_gives_those_key_frequencies_and_restricted_equals_full_loss():
    model = fourier_model(P, KEYS)
    power = F.frequency_power(R.embedding_numbers(model, P))
    assert F.key_frequencies(power) == KEYS and power.share(KEYS) == pytest.approx(1.0)
    logits, labels = R.all_logits(model, P), labels_grid(P)
    full = F.cross_entropy(logits, labels)
    assert F.cross_entropy(F.restricted_logits(logits, KEYS), labels) == pytest.approx(full, abs=1e-9)
    assert F.cross_entropy(F.excluded_logits(logits, KEYS), labels) == pytest.approx(math.log(P), abs=1e-9)  # nothing left
    fit = F.logit_fit(logits, KEYS)
    assert fit.explained == pytest.approx(1.0) and np.allclose(fit.alpha, 5.0)


def test_progress_measures_of_the_hand_built_model():
    model, data = fourier_model(P, KEYS), ModularAddition(p=P, train_fraction=0.3, seed=0)
    measures = progress_measures(model, P, data.is_train.numpy(), KEYS)
    assert measures.train_accuracy == measures.test_accuracy == 1.0
    assert measures.restricted_loss == pytest.approx(measures.test_loss, abs=1e-9)
    assert measures.excluded_loss == pytest.approx(math.log(P), abs=1e-9)
    assert measures.gini_embed == pytest.approx(1 - 2 / F.n_frequencies(P))  # two equal frequencies of five
    assert measures.weight_norm > 0


def test_readout_of_attention_and_neurons():
    model = fourier_model(P, KEYS)
    attention = R.attention_to_operands(model, P)
    np.testing.assert_allclose(attention[0], 1.0) and np.testing.assert_allclose(attention[1], 0.0, atol=1e-12)
    assert R.neuron_activations(model, P).shape == (P, P, P * P)
    assert R.neuron_logit_map(model, P).shape == (P, P * P)
    with pytest.raises(ValueError, match="d_vocab=14"):
        R.all_logits(model, 13)


# ---- phases from curves ---------------------------------------------------------------------------
def test_detect_phases_on_hand_made_curves():
    steps = np.arange(0, 2000, 50)
    s = steps.astype(float)
    train_acc = np.clip(s / 200, 0, 1)  # memorised at 200
    test_acc = np.where(s >= 1400, 1.0, 0.02)
    test_loss = np.where(s < 1000, 8.0, np.maximum(8.0 * np.exp(-(s - 1000) / 100), 0.01))  # falls from 1000
    restricted = np.where(s < 600, 6.0, np.maximum(6.0 * np.exp(-(s - 600) / 150), 0.02))  # falls from 600
    excluded = np.where(s < 300, 4.0 - s / 100, 1.0 + (s - 300) / 50)  # trough at 300, then rises
    phases = detect_phases(steps, train_acc, test_acc, test_loss, restricted, excluded)
    assert phases.memorised == 200 and phases.grokked == 1400
    assert 1000 < phases.cleanup_start < phases.cleanup_end < 2000
    assert 600 < phases.restricted_onset < phases.cleanup_start
    assert 300 < phases.excluded_onset < phases.cleanup_start


def test_detect_phases_without_grokking():
    steps = np.arange(0, 1000, 50)
    flat = np.full(len(steps), 0.01)
    phases = detect_phases(steps, np.ones(len(steps)), flat, np.full(len(steps), 9.0), np.full(len(steps), 5.0), np.full(len(steps), 1.0))
    assert phases.grokked is None and phases.cleanup_start is None and phases.memorised == 0
    assert first_at_least([1, 2, 3], [0.1, 0.2, 0.3], 0.5) is None
    with pytest.raises(ValueError, match="one common length"):
        detect_phases(steps, flat[:-1], flat, flat, flat, flat)


# ---- the data and the last-position forward -------------------------------------------------------
def test_split_is_seeded_disjoint_and_labelled():
    data = ModularAddition(p=13, train_fraction=0.3, seed=4)
    x_train, y_train = data.split("train")
    x_test, y_test = data.split("test")
    assert len(x_train) == round(0.3 * 169) and len(x_train) + len(x_test) == 169
    assert torch.equal(y_train, (x_train[:, 0] + x_train[:, 1]) % 13) and torch.all(x_train[:, 2] == 13)
    assert not set(map(tuple, x_train[:, :2].tolist())) & set(map(tuple, x_test[:, :2].tolist()))
    assert torch.equal(ModularAddition(p=13, train_fraction=0.3, seed=4).is_train, data.is_train)
    assert not torch.equal(ModularAddition(p=13, train_fraction=0.3, seed=5).is_train, data.is_train)
    tokens, labels = pair_tokens(all_pairs(13), 13)
    assert tokens.shape == (169, 3) and labels[13 * 5 + 9].item() == 1


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    (dict(p=1), ValueError, "p=1 must be >= 2"),
    (dict(p=7.0), TypeError, "must be an int"),
    (dict(p=11, train_fraction=0.0), ValueError, "strictly between 0 and 1"),
    (dict(p=11, train_fraction=1.0), ValueError, "strictly between 0 and 1"),
    (dict(p=11, train_fraction=float("nan")), ValueError, "strictly between 0 and 1"),
    (dict(p=2, train_fraction=0.01), ValueError, "both need at least one pair"),
])
def test_bad_data_settings_are_refused(kwargs, error, match):
    with pytest.raises(error, match=match):
        ModularAddition(**kwargs)


def test_primes():
    assert [n for n in range(20) if is_prime(n)] == [2, 3, 5, 7, 11, 13, 17, 19]
    check_prime(113)
    with pytest.raises(ValueError, match="p=12 is not prime.*p=11"):
        check_prime(12)


@pytest.mark.parametrize("overrides", [dict(), dict(n_layers=2, positional="shortformer"), dict(normalization="layernorm")])
def test_last_position_logits_match_the_full_forward(overrides):
    base = dict(n_layers=1, d_model=16, n_heads=4, d_mlp=24, d_vocab=8, d_vocab_out=7, n_ctx=3, act_fn="relu", normalization="none", seed=3)
    model = Transformer(TransformerConfig(**{**base, **overrides}))
    tokens, _ = pair_tokens(all_pairs(7), 7)
    torch.testing.assert_close(last_position_logits(model, tokens), model(tokens)[:, -1], rtol=1e-6, atol=1e-6)
