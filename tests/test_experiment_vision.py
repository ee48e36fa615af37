"""The vision experiment: verdicts on hand-made numbers, the Result's JSON round trip, and quick mode on the quick zoo."""

from __future__ import annotations

import numpy as np
import pytest

from experiment_helpers import check_section, quick_zoo  # noqa: F401

from circuits.experiments import base
from circuits.experiments import vision as exp

FIGURES = {
    "example_attention", "average_attention", "positional_scores", "head_attribution", "patch_attribution", "patching", "embedding_components",
}
CLAIMS = {"vision_positional_head", "vision_content_heads_later", "vision_accuracy", "vision_attribution_complete"}


@pytest.mark.parametrize("scores,holds", [([0.3, 0.65, 0.3], True), ([0.5, 0.1], True), ([0.49, 0.2], False)])
def test_positional_head_verdict(scores, holds):
    assert exp.positional_head_holds(np.array(scores), 0.5) is holds


@pytest.mark.parametrize(
    "scores,holds", [([[0.7, 0.6], [0.3, 0.4]], True), ([[0.3, 0.3], [0.3, 0.3]], False), ([[0.2, 0.3], [0.6, 0.1]], False), ([[0.9, 0.9]], False)]
)
def test_later_layer_less_positional_verdict(scores, holds):
    assert exp.later_layer_less_positional_holds(np.array(scores)) is holds


@pytest.mark.parametrize("accuracy,holds", [(0.978, True), (0.97, True), (0.969, False)])
def test_accuracy_verdict(accuracy, holds):
    assert exp.accuracy_holds(accuracy, 0.97) is holds


@pytest.mark.parametrize("error,holds", [(3e-6, True), (1e-4, True), (2e-3, False)])
def test_attribution_verdict(error, holds):
    assert exp.attribution_complete_holds(error, 1e-4) is holds


def hand_made(quick: bool = True) -> exp.Result:
    rng = np.random.default_rng(0)
    return exp.Result(
        quick=quick, steps=60, test_accuracy=0.9, n_test=359, grid=4, positional=np.array([[0.9, 0.5], [0.3, 0.2]]),
        entropy=np.array([[1.5, 2.0], [2.5, 2.7]]), n_ctx=17, initial_positional=np.array([[0.7, 0.8], [0.75, 0.7]]),
        positional_threshold=0.5, min_accuracy=0.97, max_attribution_error=1e-4, average_attention=rng.random((2, 2, 4, 4)),
        class_token_share=rng.random((2, 2)), example_images=rng.random((2, 8, 8)), example_labels=(3, 7),
        example_attention=rng.random((2, 2, 2, 4, 4)), head_attribution=rng.random((2, 2)),
        other_attribution={"embed": 0.1, "mlp0": 1.5}, patch_attribution=rng.random((10, 4, 4)), attribution_error=2e-6,
        patching=rng.normal(size=(2, 4, 4)), components=rng.normal(size=(3, 8, 8)), explained=np.array([0.3, 0.2, 0.1]),
    )


def test_section_from_a_hand_made_result():
    result = hand_made()
    back = exp.Result.from_json(result.to_json())
    assert back.to_json() == result.to_json() and back.example_labels == (3, 7)
    section = base.build_section(exp, back)
    check_section(section, "vision", FIGURES, CLAIMS)
    verdicts = {c.key: c.holds for c in section.claims}
    assert verdicts == {
        "vision_positional_head": True, "vision_content_heads_later": True, "vision_accuracy": False, "vision_attribution_complete": True,
    }
    assert "L0H0: 0.900" in section.claims[0].measured and "Quick mode" in section.notes[-1]
    assert [row[2] for row in section.tables[0].rows] == ["positional", "positional", "content", "content"]  # 0.5 is at the threshold


def test_vision_quick(quick_zoo):
    cfg = exp.Config.quick()
    result = exp.compute(cfg, quick_zoo)
    back = exp.Result.from_json(result.to_json())
    assert back.to_json() == result.to_json()
    section = base.build_section(exp, back)
    check_section(section, "vision", FIGURES, CLAIMS)
    assert back.quick and back.steps == 60 and back.attribution_error < 1e-4
    assert back.average_attention.shape == (2, 4, 4, 4) and back.patching.shape == (2, 4, 4)
    assert back.example_attention.shape == (cfg.n_examples, 2, 4, 4, 4) and back.components.shape == (cfg.n_components, 8, 8)
    np.testing.assert_allclose(back.average_attention.sum(axis=(-1, -2)) + back.class_token_share, 1.0, atol=1e-4)  # rows sum to 1
    assert ((back.positional > 0) & (back.positional <= 1 + 1e-6)).all()
