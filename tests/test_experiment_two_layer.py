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
    assert verdicts.COMPOSITION_Z == 3.0
    assert verdicts.k_composition_holds(19.7, -12.0, -16.7)  # the full run's z-scores
    assert verdicts.k_composition_holds(4.0, 3.0, 3.0)  # Q and V exactly 3 std above: still "at or below" by the stated rule
    assert not verdicts.k_composition_holds(3.0, 0.0, 0.0)  # K must exceed 3 std
    assert not verdicts.k_composition_holds(19.7, 3.5, 0.0)  # Q stands out too
    assert not verdicts.k_composition_holds(19.7, 0.0, 9.0)  # V stands out too
    assert not verdicts.k_composition_holds(NAN, 0.0, 0.0)


def test_eigen_corner_verdict():
    assert (verdicts.EIGEN_OV_MIN, verdicts.EIGEN_QK_MIN) == (0.66, 0.90)  # SLAVA's lowest induction-head values
    assert verdicts.eigen_corner_holds([0.997], [0.994], [0.964, 0.45, 0.53], [0.923, -0.16, -0.04])  # the full run
    assert verdicts.eigen_corner_holds([0.8, 0.7], [0.95, 0.91], [], [])  # no other heads to separate from
    assert not verdicts.eigen_corner_holds([0.6], [0.95], [0.2], [0.2])  # OV below 0.66
    assert not verdicts.eigen_corner_holds([0.8], [0.85], [0.2], [0.2])  # QK below 0.90
    assert not verdicts.eigen_corner_holds([0.8], [0.95], [0.85], [0.2])  # a non-induction head copies more (OV)
    assert not verdicts.eigen_corner_holds([0.8], [0.95], [0.2], [0.96])  # a non-induction head has a higher QK positivity
    assert not verdicts.eigen_corner_holds([0.99, 0.5], [0.99, 0.99], [0.2], [0.2])  # every induction head must be in the corner
    assert not verdicts.eigen_corner_holds([], [], [0.2], [0.2])


def test_ablation_verdict():
    near_zero = 0.024  # a uniformly attending head's score on the probe
    assert verdicts.ablation_holds(0.68, 0.01, [0.6, 0.65], near_zero)
    assert verdicts.ablation_holds(0.68, 0.024, [], near_zero)  # at the uniform level counts as about 0
    assert not verdicts.ablation_holds(0.405, 0.0917, [0.242], near_zero)  # the full run: 23% of clean is not about 0
    assert not verdicts.ablation_holds(0.68, 0.01, [0.6, 0.3], near_zero)  # another head's ablation matters too (keeps < 50%)
    assert not verdicts.ablation_holds(0.033, 0.033, [0.033], 0.03)  # ablating changes nothing
    assert not verdicts.ablation_holds(0.02, 0.01, [0.02], 0.03)  # nothing to remove: the clean score is at the uniform level


def test_ov_accuracy_verdict():
    assert verdicts.ov_accuracy_holds(0.31, 0.96, 2, 50_000) is True  # ARENA's numbers
    assert verdicts.ov_accuracy_holds(0.619, 0.619, 1, 512) is None  # one induction head: summed OV is itself, untested
    assert verdicts.ov_accuracy_holds(0.619, 0.9, 0, 512) is None
    assert verdicts.ov_accuracy_holds(0.01, 0.96, 2, 300) is False  # under 10x chance
    assert verdicts.ov_accuracy_holds(0.31, 0.31, 2, 50_000) is False  # the sum is not higher
    assert verdicts.ov_accuracy_holds(0.31, 0.2, 3, 50_000) is False


def test_term_importance_verdict():
    assert verdicts.MUCH_RATIO == 10.0
    assert verdicts.term_importance_holds(5.2, 0.3, 0.05, 4.0)  # the paper's video numbers (17x, 80x)
    assert verdicts.term_importance_holds(5.2, -0.1, 0.0, 4.0)  # virtual heads that hurt, layer 0 that does nothing
    assert not verdicts.term_importance_holds(1.64, 0.107, 0.631, 1.77)  # the full run: 15x but layer 1 only 2.8x layer 0
    assert not verdicts.term_importance_holds(1.35, 0.2, 0.05, 4.0)  # order 1 only 6.8x order 2
    assert not verdicts.term_importance_holds(0.301, 0.453, 0.166, 0.175)  # virtual heads matter more
    assert not verdicts.term_importance_holds(5.2, 0.3, 4.0, 0.05)  # layer 0 matters more
    assert not verdicts.term_importance_holds(5.2, NAN, 0.05, 4.0)  # no order-2 terms measured
    assert not verdicts.term_importance_holds(-1.0, -0.2, 0.05, 4.0)  # single heads that hurt do not "reduce the loss"


def test_stable_verdict():
    assert verdicts.stable_verdict(True, [True, True]) is True
    assert verdicts.stable_verdict(False, [False, False]) is False
    assert verdicts.stable_verdict(True, [True, False]) is None  # the halves disagree: too noisy to decide
    assert verdicts.stable_verdict(False, [True, False]) is None


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
    assert back.seq_len == min(exp.Config.quick().seq_len, (48 - 1) // 3)  # room for a natural prefix before R + R
    assert list(back.ablation_bos) == list(back.ablation) and back.induction_bos.shape == back.induction.shape
    assert 0 < back.uniform_level < back.uniform_level_bos < 1  # later queries: smaller uniform share
    assert back.detect_previous.shape == back.detect_induction.shape == back.previous_token.shape
    assert back.prefix_matching.shape == back.prefix_matching_literal.shape == back.induction.shape
    assert back.terms_halves[0].n_tokens == back.terms_halves[1].n_tokens == back.terms.n_tokens // 2
    assert "most frequent tokens of the training split" in back.probe_rule and "P drawn per sequence" in back.probe_layout
    for claim in section.claims:  # every claim names its model and data, and the number its verdict turns on
        assert claim.models == ("attn-only-2l",) and claim.data == back.data_label and claim.data
        assert claim.value is None or math.isfinite(claim.value)
    claims = {c.key: c for c in section.claims}
    assert back.probe_rule in claims["fw_2l_induction_head"].measured and "[BOS] + R + R" in claims["fw_2l_induction_head"].measured
    if len(back.induction_heads) < 2:
        assert claims["fw_2l_ov_accuracy"].holds is None and "untested" in claims["fw_2l_ov_accuracy"].measured
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
