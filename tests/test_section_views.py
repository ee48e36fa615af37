"""The report sections' interactive views (:mod:`circuits.experiments.section_views`), from hand-made results."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from circuits.experiments.base import View
from circuits.experiments.section_views import phase_change_views, two_layer_views

TOKENS = ("<s>", " a", " b", " a", " b")


def two_layer_result(**changes) -> SimpleNamespace:
    patterns = np.tril(np.ones((2, 2, 5, 5)))
    patterns /= patterns.sum(-1, keepdims=True)
    base = dict(text_tokens=TOKENS, text_patterns=patterns, previous_token_head=(0, 1), induction_head=(1, 0), preset="attn-only-2l",
                previous_token=np.full((2, 2), 0.5), induction=np.full((2, 2), 0.4))
    return SimpleNamespace(**(base | changes))


def test_two_layer_view_shows_every_head_with_the_induction_head_first():
    (view,) = two_layer_views(two_layer_result())
    assert isinstance(view, View) and view.key == "two_layer_text_attention"
    data = view.view.data
    assert data["labels"] == ["L0H0", "L0H1", "L1H0", "L1H1"] and data["labels"][data["selected"]] == "L1H0"
    assert data["tokens"] == list(TOKENS)
    assert "L0H1 is the previous-token head" in view.caption and "L1H0 is the top induction head" in view.caption


def test_phase_change_view_shows_the_loss_change_first():
    loss = np.array([[3.0, 3.0, 3.0, 3.0], [3.0, 3.0, 1.0, 1.0], [3.0, 2.0, 0.5, 0.5]])
    result = SimpleNamespace(text_tokens=TOKENS, text_steps=(10, 20, 40), text_loss=loss, main="attn-only-2l")
    (view,) = phase_change_views(result)
    series = view.view.data["series"]
    assert [s["name"] for s in series] == ["loss at step 20 - step 10", "loss at step 10", "loss at step 20", "loss at step 40 (last)"]
    assert series[0]["values"] == [None, 0.0, 0.0, -2.0, -2.0] and series[0]["diverging"]
    assert "mean -1 nats" in view.caption


def test_results_cached_before_the_views_give_none():
    assert two_layer_views(two_layer_result(text_tokens=(), text_patterns=None)) == []
    assert phase_change_views(SimpleNamespace(text_tokens=(), text_steps=(), text_loss=None, main="m")) == []
