"""The two-layer experiment: claim verdicts on hand-made numbers, and a quick-zoo smoke test (compute, JSON round trip, section)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from experiment_helpers import check_section, quick_zoo  # noqa: F401

from circuits.experiments import two_layer as exp
from circuits.experiments import two_layer_claims as verdicts
from circuits.experiments.base import build_section

FIGURES = {
    "two_layer_head_scores", "two_layer_patterns", "two_layer_composition", "two_layer_composition_baseline", "two_layer_eigen_corner",
    "two_layer_ablation", "two_layer_ov_accuracy", "two_layer_term_importance", "two_layer_repeated_loss",
}
CLAIMS = {"fw_2l_previous_token_head", "fw_2l_induction_head", "fw_2l_k_composition", "fw_2l_eigen_corner", "fw_2l_ablation",
          "fw_2l_ov_accuracy", "fw_2l_term_importance"}
NAN = float("nan")


# ---- claim verdicts on hand-made numbers ------------------------------------------------------------
def test_previous_token_head_verdict():
    assert verdicts.previous_token_head_holds(0.6, 0.4)
    assert not verdicts.previous_token_head_holds(0.4, 0.4)  # strictly above the detector threshold
    assert not verdicts.previous_token_head_holds(0.07, 0.4)


def test_induction_head_verdict():
    assert verdicts.induction_head_holds(0.64, 0.02, 14.2, 3.7, 0.3)  # ARENA's numbers
    assert not verdicts.induction_head_holds(0.25, 0.02, 14.2, 3.7, 0.3)  # below the threshold
    assert not verdicts.induction_head_holds(0.64, 0.25, 14.2, 3.7, 0.3)  # not 3x the others' median
    assert not verdicts.induction_head_holds(0.64, 0.02, 6.68, 6.18, 0.3)  # the second repeat is not much easier
    assert not verdicts.induction_head_holds(0.64, NAN, 14.2, 3.7, 0.3)  # no other heads to compare with


def test_k_composition_verdict():
    assert verdicts.k_composition_holds(4.0, 0.112, 0.061, 0.02)
    assert not verdicts.k_composition_holds(3.0, 0.112, 0.061, 0.02)  # z must exceed 3
    assert not verdicts.k_composition_holds(4.0, 0.05, 0.061, 0.02)  # Q larger
    assert not verdicts.k_composition_holds(4.0, 0.112, 0.061, 0.2)  # V larger


def test_eigen_corner_verdict():
    assert verdicts.eigen_corner_holds(0.8, 0.9, [0.2, 0.5])
    assert verdicts.eigen_corner_holds(0.8, 0.9, [])  # no other heads to separate from
    assert not verdicts.eigen_corner_holds(0.4, 0.9, [0.2])  # OV not near +1
    assert not verdicts.eigen_corner_holds(0.8, 0.5, [0.2])  # QK not near +1
    assert not verdicts.eigen_corner_holds(0.8, 0.9, [0.95])  # another head has a higher QK positivity


def test_ablation_verdict():
    assert verdicts.ablation_holds(0.68, 0.01, [0.6, 0.65])
    assert verdicts.ablation_holds(0.68, 0.01, [])
    assert not verdicts.ablation_holds(0.68, 0.2, [0.6])  # the previous-token head's ablation leaves > 25%
    assert not verdicts.ablation_holds(0.68, 0.01, [0.6, 0.3])  # another head's ablation matters too
    assert not verdicts.ablation_holds(0.033, 0.033, [0.033])


def test_ov_accuracy_verdict():
    assert verdicts.ov_accuracy_holds(0.31, 0.96, 0.5, 50_000)
    assert verdicts.ov_accuracy_holds(0.31, 0.1, 0.31, 50_000)  # the top-2 sum can carry it
    assert not verdicts.ov_accuracy_holds(0.01, 0.96, 0.5, 300)  # under 10x chance
    assert not verdicts.ov_accuracy_holds(0.31, 0.2, 0.3, 50_000)  # no sum beats the best single head


def test_term_importance_verdict():
    assert verdicts.term_importance_holds(5.2, 0.3, 0.05, 4.0)  # the paper's video numbers
    assert not verdicts.term_importance_holds(0.301, 0.453, 0.166, 0.175)  # virtual heads matter more
    assert not verdicts.term_importance_holds(5.2, 0.3, 4.0, 0.05)  # layer 0 matters more
    assert not verdicts.term_importance_holds(5.2, NAN, 0.05, 4.0)  # no order-2 terms measured


# ---- quick zoo ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def result(quick_zoo) -> exp.Result:
    return exp.compute(exp.Config.quick(), quick_zoo)


def test_result_json_round_trip(result):
    data = result.to_json()
    text = json.dumps(data, allow_nan=False)  # strict JSON: NaN (the QK corner of layer 0) is stored as null
    back = exp.Result.from_json(json.loads(text))
    assert back.to_json() == data
    assert exp.Result.from_json(back.to_json()).to_json() == data  # stable after one round trip
    assert isinstance(back.induction, np.ndarray) and back.induction.shape == (2, back.n_heads)
    assert isinstance(back.composition["K"], exp.Composition) and back.composition["K"].scores.shape == (2, back.n_heads, 2, back.n_heads)
    assert isinstance(back.terms.top_terms[0], exp.PathTerm) and isinstance(back.ov_accuracy, exp.OVAccuracy)
    assert back.induction_head == result.induction_head and isinstance(back.induction_head, tuple)
    assert np.isnan(back.qk_corner[0]).all() and math.isnan(back.qk_corner[0, 0])
    with pytest.raises(ValueError, match="unknown fields"):
        exp.Result.from_json({**data, "extra": 1})


def test_two_layer_quick(result, quick_zoo):
    back = exp.Result.from_json(json.loads(json.dumps(result.to_json())))  # what the runner's cache gives back
    assert back.quick and back.n_layers == 2 and back.data_note
    section = build_section(exp, back)
    check_section(section, "two_layer", FIGURES, CLAIMS)
    assert section.notes[1].startswith("Quick mode") and section.notes[2] == back.data_note
    # heads and scores are consistent with one another
    il, ih = back.induction_head
    assert il >= 1 and back.induction[il, ih] == back.induction[1:].max()
    assert (il, ih) in back.induction_heads
    assert list(back.ablation) == [f"L0H{h}" for h in range(back.n_heads)]
    assert back.ablation["L{}H{}".format(*back.previous_token_head)].shape == (2, back.n_heads)
    assert 0 <= back.ov_accuracy.summed_top1 <= back.ov_accuracy.summed_top5 <= 1
    assert len(back.terms.marginal_by_order) == 3 and len(back.terms.top_terms) == 12
    assert back.loss_per_position.shape == (2 * back.seq_len,)
    # build is gone: the runner renders the typed result
    assert not hasattr(exp, "build")


def test_composition_figure_titles_are_short(result):
    """The three subplot titles used to run into each other; now each is 'X-composition' over a short baseline line."""
    fig = exp.figures(result)[2].fig
    subtitles = [a.text for a in fig.layout.annotations]
    assert [s.split("<br>")[0] for s in subtitles] == ["Q-composition", "K-composition", "V-composition"]
    assert all(max(len(line) for line in s.split("<br>")) <= 26 for s in subtitles)
    for figure in exp.figures(result):
        title = figure.fig.layout.title.text
        assert max(len(line) for line in title.split("<br>")) <= 80, f"{figure.key}: {title}"
