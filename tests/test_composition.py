"""Composition scores against a brute-force dense computation and TransformerLens's routine; the random baseline."""

from __future__ import annotations

import pytest
import torch
from transformer_lens import FactoredMatrix
from transformer_lens.utilities import composition_scores as tl_composition_scores

import circuits
from circuits.analysis.weights.processing import folded_weights, process_weights
from conftest import tiny_model
from weights_helpers import dense_folded, randomized

CONFIGS = [
    dict(n_layers=3, attn_only=True, normalization="none", positional="shortformer"),
    dict(n_layers=3),  # LayerNorm: folded (gains in readers, centred readers and W_O)
    dict(n_layers=3, normalization="rmsnorm", n_kv_heads=1),  # GQA
]


def _brute_force(model, kind):
    """``||W_OV1 R2|| / (||W_OV1|| ||R2||)`` with dense d_model x d_model matrices, one pair at a time."""
    w = dense_folded(model)
    L, H = model.config.n_layers, model.config.n_heads
    out = torch.zeros(L, H, L, H)
    for l1 in range(L):
        for h1 in range(H):
            left = w["V"][l1, h1] @ w["O"][l1, h1]
            for l2 in range(l1 + 1, L):
                for h2 in range(H):
                    qk = w["Q"][l2, h2] @ w["K"][l2, h2].T
                    right = {"Q": qk, "K": qk.T, "V": w["V"][l2, h2] @ w["O"][l2, h2]}[kind]
                    out[l1, h1, l2, h2] = torch.linalg.norm(left @ right) / (torch.linalg.norm(left) * torch.linalg.norm(right))
    return out


@pytest.mark.parametrize("overrides", CONFIGS)
@pytest.mark.parametrize("kind", ["Q", "K", "V"])
def test_composition_equals_brute_force_and_transformer_lens(overrides, kind):
    model = randomized(seed=31, **overrides)
    ours = circuits.composition_scores(model, kind)
    assert ours.shape == (3, 3, 3, 3)
    torch.testing.assert_close(ours, _brute_force(model, kind), atol=1e-5, rtol=1e-5)

    w = folded_weights(model)
    OV = FactoredMatrix(w.W_V, w.W_O)
    QK = FactoredMatrix(w.W_Q, w.W_K.transpose(-2, -1))
    right = {"Q": QK, "K": QK.T, "V": OV}[kind]
    tl = tl_composition_scores(OV, right)  # [l1, h1, l2, h2], every pair
    mask = torch.arange(3)[:, None, None, None] < torch.arange(3)[None, None, :, None]
    torch.testing.assert_close(ours, torch.where(mask, tl, torch.zeros(())), atol=1e-5, rtol=1e-5)


def test_zero_unless_writer_layer_is_earlier():
    scores = circuits.composition_scores(randomized(seed=32, n_layers=3), "K")
    for l1 in range(3):
        for l2 in range(l1 + 1):
            assert (scores[l1, :, l2] == 0).all()
    assert (scores[0, :, 1] > 0).all()


def test_k_composition_is_not_the_errata_cyclic_permutation():
    """The original figure's bug, ||W_K2 W_O1 W_V1 W_Q2^T|| (paper convention), gives different numbers."""
    model = randomized(seed=33, n_layers=2, attn_only=True, normalization="none")
    w = dense_folded(model)
    ours = circuits.composition_scores(model, "K")[0, 0, 1, 0]
    # paper-convention matrices are our transposes: W_K(paper) = W_K^T, W_O(paper) = W_O^T, ...
    cyclic = w["K"][1, 0].T @ w["O"][0, 0].T @ w["V"][0, 0].T @ w["Q"][1, 0]
    norms = torch.linalg.norm(w["V"][0, 0] @ w["O"][0, 0]) * torch.linalg.norm(w["Q"][1, 0] @ w["K"][1, 0].T)
    assert abs(ours - torch.linalg.norm(cyclic) / norms) > 1e-3


def test_composition_invariant_under_processing():
    model = randomized(seed=34, n_layers=3)
    processed = process_weights(model)
    for kind in "QKV":
        torch.testing.assert_close(circuits.composition_scores(processed, kind), circuits.composition_scores(model, kind), atol=1e-5, rtol=1e-5)


def test_baseline_matches_scores_of_freshly_initialised_models():
    """The baseline is the law of the score at initialisation: compare with real initialised models' scores."""
    for kind in "QKV":
        mean, std = circuits.composition_baseline(tiny_model(), kind, n_samples=2000, seed=1)
        fresh = torch.cat(
            [circuits.composition_scores(tiny_model(seed=s, n_layers=2), kind)[0, :, 1].flatten() for s in range(60)]
        ).double()  # 540 pairs (pairs within one model share heads, so use a loose 5 standard-error bound)
        assert abs(fresh.mean().item() - mean) < 5 * std / fresh.numel() ** 0.5 + 5 * std / 2000**0.5
        assert fresh.std().item() == pytest.approx(std, rel=0.25)


def test_baseline_is_deterministic_and_near_inverse_sqrt_d_model():
    model = tiny_model(d_model=64, n_heads=4, d_head=16, attn_only=True, normalization="none")
    a = circuits.composition_baseline(model, "V", n_samples=200, seed=5)
    assert a == circuits.composition_baseline(model, "V", n_samples=200, seed=5)
    assert a != circuits.composition_baseline(model, "V", n_samples=200, seed=6)
    assert a[0] == pytest.approx(1 / 64**0.5, rel=0.15)  # reference notes: ~1/sqrt(d_model) for Gaussian factors
    assert 0 < a[1] < 0.05


def test_composition_errors():
    model = randomized()
    with pytest.raises(ValueError, match="'Q', 'K', 'V'"):
        circuits.composition_scores(model, "O")
    with pytest.raises(ValueError, match="'Q', 'K', 'V'"):
        circuits.composition_baseline(model, "q")
    with pytest.raises(ValueError, match="n_samples"):
        circuits.composition_baseline(model, "Q", n_samples=1)
    one_layer = circuits.composition_scores(randomized(n_layers=1), "Q")
    assert one_layer.shape == (1, 3, 1, 3) and (one_layer == 0).all()


def test_single_pair_score_and_within_layer_error():
    model = randomized(seed=35, n_layers=3)
    scores = circuits.composition_scores(model, "Q")
    from circuits.analysis.weights.composition import composition_score

    assert composition_score(model, "Q", "L0H1", "L2H0") == pytest.approx(scores[0, 1, 2, 0].item(), abs=1e-6)
    assert composition_score(model, "Q", (1, 2), (2, 1)) == pytest.approx(scores[1, 2, 2, 1].item(), abs=1e-6)
    with pytest.raises(ValueError, match="earlier layer"):
        composition_score(model, "K", "L1H0", "L1H2")
    with pytest.raises(ValueError, match="earlier layer"):
        composition_score(model, "K", "L2H0", "L1H2")
    with pytest.raises(ValueError, match="out of range"):
        composition_score(model, "K", "L0H0", "L3H0")
    with pytest.raises(ValueError, match="label"):
        composition_score(model, "K", "0.1", "L1H0")
