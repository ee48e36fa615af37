"""Picking the heads of an ablation study, and per-token losses with and without an ablation (circuits.analysis.activations.head_picks)."""

from __future__ import annotations

import numpy as np
import torch

from circuits.analysis.activations.head_picks import induction_layers, per_token_loss, pick_induction_heads, pick_previous_token_head
from circuits.analysis.activations.interventions import Ablation


def test_induction_layers():
    assert induction_layers(1) == slice(0, None) and induction_layers(2) == slice(1, None) and induction_layers(3) == slice(1, None)


def test_pick_induction_heads_above_the_threshold_and_never_in_layer_0_of_a_deeper_model():
    pm = np.array([[0.9, 0.1, 0.2], [0.1, 0.5, 0.4]])  # L0H0 scores highest but layer 0 cannot hold induction heads
    assert pick_induction_heads(pm, 0.3) == [(1, 1), (1, 2)]
    assert pick_induction_heads(pm, 0.45) == [(1, 1)]


def test_pick_induction_heads_falls_back_to_the_best_head_and_uses_layer_0_of_a_one_layer_model():
    pm = np.array([[0.9, 0.1], [0.05, 0.2]])
    assert pick_induction_heads(pm, 0.3) == [(1, 1)]  # none above the threshold: the best candidate
    assert pick_induction_heads(np.array([[0.1, 0.4, 0.2]]), 0.3) == [(0, 1)]
    assert pick_induction_heads(np.array([[0.1, 0.25, 0.2]]), 0.3) == [(0, 1)]


def test_pick_previous_token_head_looks_before_the_first_induction_head():
    prev = np.array([[0.2, 0.7], [0.1, 0.3], [0.99, 0.0]])
    assert pick_previous_token_head(prev, [(2, 0), (1, 1)]) == (0, 1)  # layers before layer 1 only
    assert pick_previous_token_head(prev, [(2, 0)]) == (0, 1)
    assert pick_previous_token_head(np.array([[0.2, 0.1, 0.8]]), [(0, 2)]) == (0, 2)  # one layer: any head of it


def test_per_token_loss_in_chunks_matches_one_pass_and_an_ablation_changes_it(attn_only_model):
    model = attn_only_model
    tokens = torch.randint(0, model.config.d_vocab, (5, model.config.n_ctx), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        whole = model(tokens, return_type="per_token_loss").float()
    clean = per_token_loss(model, tokens, chunk=2)
    assert clean.shape == (5, model.config.n_ctx - 1)
    assert torch.allclose(clean, whole, atol=1e-6)
    ablated = per_token_loss(model, tokens, Ablation([(1, 0)], pattern_preserving=True), chunk=2)
    assert ablated.shape == clean.shape and not torch.allclose(ablated, clean)
