"""circuits.analysis.induction_circuit: head picking, composition summary, ablations, summed OV accuracy, per-layer terms."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import tiny_model
from circuits.analysis.activations.interventions import Ablation
from circuits.analysis.activations.scores import induction_scores
from circuits.analysis.induction_circuit import (
    ablated_induction_scores,
    first_order_by_layer,
    mechanism,
    pick_heads,
    summed_ov_accuracy,
    top_heads_in_layer,
)
from circuits.analysis.weights.composition import composition_baseline, composition_scores


# ---- pick_heads ----------------------------------------------------------------------------------
def test_pick_heads_ignores_layer_0_and_sorts_the_induction_heads():
    induction = np.array([[0.9, 0.1, 0.1], [0.2, 0.35, 0.5]])  # layer 0's 0.9 cannot be an induction head
    previous = np.array([[0.1, 0.8, 0.2], [0.95, 0.0, 0.0]])  # layer 1's 0.95 is not before the induction head
    heads = pick_heads(previous, induction, threshold=0.3)
    assert heads == {"induction_head": [1, 2], "induction_heads": [[1, 2], [1, 1]], "previous_token_head": [0, 1]}


def test_pick_heads_falls_back_to_the_top_head_below_the_threshold():
    induction = np.array([[0.0, 0.0], [0.1, 0.2]])
    previous = np.array([[0.3, 0.6], [0.0, 0.0]])
    heads = pick_heads(previous, induction, threshold=0.5)
    assert heads["induction_heads"] == [[1, 1]] and heads["induction_head"] == [1, 1] and heads["previous_token_head"] == [0, 1]


def test_pick_heads_looks_for_the_previous_token_head_in_every_earlier_layer():
    induction = np.array([[0.0, 0.0], [0.4, 0.1], [0.2, 0.7]])
    previous = np.array([[0.2, 0.1], [0.1, 0.9], [1.0, 1.0]])
    heads = pick_heads(previous, induction, threshold=0.3)
    assert heads["induction_head"] == [2, 1] and heads["induction_heads"] == [[2, 1], [1, 0]]
    assert heads["previous_token_head"] == [1, 1]


def test_pick_heads_needs_two_layers():
    with pytest.raises(ValueError, match="at least 2 layers"):
        pick_heads(np.zeros((1, 3)), np.zeros((1, 3)), threshold=0.3)


# ---- top_heads_in_layer, first_order_by_layer -------------------------------------------------------
def test_top_heads_in_layer():
    scores = np.array([[9.0, 9.0, 9.0], [0.1, 0.5, 0.3]])
    assert top_heads_in_layer(scores, 1, 2) == [(1, 1), (1, 2)]
    assert top_heads_in_layer(scores, 0, 2) == [(0, 0), (0, 1)]  # ties keep head order
    with pytest.raises(ValueError, match="layer=2"):
        top_heads_in_layer(scores, 2, 1)


def test_first_order_by_layer_adds_single_head_terms_only():
    labels = ["direct", "L0H0", "L0H1", "L1H0", "L0H0->L1H0", "pos_embed"]
    orders = [0, 1, 1, 1, 2, 0]
    added = [5.0, 0.25, 0.5, 2.0, 7.0, 3.0]
    assert first_order_by_layer(labels, orders, added, 3) == [0.75, 2.0, 0.0]
    with pytest.raises(ValueError, match="same length"):
        first_order_by_layer(labels, orders[:2], added, 3)


# ---- summed_ov_accuracy on a model whose OV circuits are known -------------------------------------
def _ov_model(scales: list[float]):
    """d_vocab = 5 <= d_model: W_E embeds token i on axis i, W_U reads it back, and head (1, h) has W_OV = scales[h] * identity on those axes."""
    model = tiny_model(attn_only=True, normalization="none", use_bias=False, positional="shortformer", d_vocab=5)
    cfg = model.config
    eye = torch.eye(cfg.d_model)
    with torch.no_grad():
        model.embed.W_E.copy_(eye[: cfg.d_vocab])
        model.unembed.W_U.copy_(eye[:, : cfg.d_vocab])
        for h, scale in enumerate(scales):
            model.blocks[1].attn.W_V[h].copy_(eye[:, : cfg.d_head])
            model.blocks[1].attn.W_O[h].copy_(scale * eye[: cfg.d_head])
    return model


def test_summed_ov_accuracy_of_identity_and_negated_copiers():
    model = _ov_model([1.0, -1.0, -2.0])  # W_OV = I, -I, -2I on the vocabulary's axes (d_head = 5 = d_vocab)
    assert summed_ov_accuracy(model, [(1, 0)], 1) == 1.0  # the identity copies every token
    assert summed_ov_accuracy(model, [(1, 1)], 1) == 0.0  # -I puts every token's own logit last
    assert summed_ov_accuracy(model, [(1, 1)], 5) == 1.0  # ... which is still within the top d_vocab
    assert summed_ov_accuracy(model, [(1, 0), (1, 2)], 1) == 0.0  # I - 2I = -I
    assert summed_ov_accuracy(model, [(1, 0), (1, 1)], 1) == 1.0  # I - I = 0: all ties, counted in the token's favour
    with pytest.raises(ValueError, match="at least one"):
        summed_ov_accuracy(model, [], 1)


# ---- mechanism and ablations on a random tiny model --------------------------------------------------
@pytest.fixture
def random_model():
    torch.manual_seed(0)
    return tiny_model(attn_only=True, normalization="none", positional="shortformer", n_ctx=13)


def test_mechanism_summarises_the_composition_of_the_picked_heads(random_model):
    previous = np.array([[0.1, 0.7, 0.2], [0.0, 0.0, 0.0]])
    induction = np.array([[0.0, 0.0, 0.0], [0.1, 0.2, 0.6]])
    mech = mechanism(random_model, previous, induction, threshold=0.3, baseline_samples=20, seed=1)
    assert mech["previous_token_head"] == [0, 1] and mech["induction_head"] == [1, 2] and mech["induction_heads"] == [[1, 2]]
    for kind in ("Q", "K", "V"):
        scores = composition_scores(random_model, kind)
        mean, std = composition_baseline(random_model, kind, n_samples=20, seed=1)
        assert torch.equal(mech["composition"][kind], scores)
        assert mech["baseline"][kind] == [mean, std]
        assert mech["pair"][kind] == float(scores[0, 1, 1, 2])
        assert mech["z"][kind] == pytest.approx((mech["pair"][kind] - mean) / std)
    assert mech["max_K_into_induction"] == float(composition_scores(random_model, "K")[0, :, 1, 2].max())
    assert mech["max_Q_into_induction"] == float(composition_scores(random_model, "Q")[0, :, 1, 2].max())


def test_ablated_induction_scores_ablates_each_earlier_head(random_model):
    rep = dict(seq_len=4, batch=2, seed=0, bos=0)
    out = ablated_induction_scores(random_model, 1, **rep)
    assert list(out) == ["L0H0", "L0H1", "L0H2"]
    expected = induction_scores(random_model, **rep, hooks_for_batch=Ablation([(0, 1)], kind="zero").for_model(random_model)).numpy()
    np.testing.assert_array_equal(out["L0H1"], expected)
    assert out["L0H0"].shape == (2, 3)
    assert ablated_induction_scores(random_model, 0, **rep) == {}
    with pytest.raises(ValueError, match="before_layer=3"):
        ablated_induction_scores(random_model, 3, **rep)
