"""The positional-variants experiment: verdicts on hand-made numbers, its Result's JSON round trip, its section from a
hand-made Result, and a quick-zoo smoke test (compute, round trip, section)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from experiment_helpers import check_section, quick_zoo  # noqa: F401

from circuits.experiments import variants as exp
from circuits.experiments.base import build_section
from circuits.experiments.estimates import Estimate

FIGURES = {"variants_which", "variants_speed", "variants_mechanism", "variants_deep_layers"}


def round_trip(result: exp.Result) -> exp.Result:
    """``result`` as the runner's cache gives it back (strict JSON: no NaN), checked to be stable."""
    data = result.to_json()
    back = exp.Result.from_json(json.loads(json.dumps(data, allow_nan=False)))
    assert back.to_json() == data
    return back


def variant(n_layers: int = 2, **overrides) -> exp.Variant:
    rng = np.random.default_rng(n_layers)
    fields = dict(
        positional="shortformer", n_layers=n_layers, n_heads=4, n_kv_heads=None, data_label="corpus; augmented",
        previous_token=rng.uniform(size=(n_layers, 4)), induction=rng.uniform(size=(n_layers, 4)),
        prefix_matching=rng.uniform(size=(n_layers, 4)), icl=Estimate(value=-0.4, lo=-0.5, hi=-0.3),
        max_induction=Estimate(value=0.6, lo=0.57, hi=0.63), induction_head=(1, 2),
        previous_token_head=(0, 3), previous_token_head_exists=True, max_previous_token=0.7, K_pair=0.2, Q_pair=0.05,
        z={"Q": 1.0, "K": 8.0, "V": 0.5}, baseline={"Q": (0.05, 0.01), "K": (0.05, 0.01), "V": (0.05, 0.01)},
        max_K_into_induction=0.2, max_Q_into_induction=0.06, max_K_z=15.0, max_Q_z=1.0,
        curve_steps=(0, 100, 200), curve=np.array([0.05, 0.2, 0.6]), curve_ci=np.array([[0.04, 0.06], [0.18, 0.22], [0.57, 0.63]]),
        first_formed=200, layer_max_prefix_matching=np.array([0.1, 0.2, 0.7][:n_layers]),
        layer_max_prefix_matching_ci=np.array([[0.08, 0.12], [0.18, 0.22], [0.66, 0.74]][:n_layers]),
    )
    return exp.Variant(**{**fields, **overrides})


def hand_made(**deep_overrides) -> exp.Result:
    nan = Estimate(value=float("nan"), lo=float("nan"), hi=float("nan"))
    models = {"attn-only-2l": variant(), "attn-only-2l-learned": variant(icl=nan, max_Q_z=float("nan"), n_kv_heads=2),
              "attn-only-3l": variant(3, **deep_overrides)}
    return exp.Result(presets=("attn-only-2l-learned", "attn-only-2l", "attn-only-3l"), models=models, deep="attn-only-3l",
                      induction_threshold=0.3, previous_token_threshold=0.4, icl_note="ICL note.", probe_note="probe rule", quick=False)


# ---- verdicts ----------------------------------------------------------------------------------
def test_where_heads_form_holds_when_the_last_layer_is_highest():
    assert exp.highest_in_last_layer([0.1, 0.2, 0.7], 3) is True
    assert exp.highest_layer([0.1, 0.2, 0.7]) == 2


def test_where_heads_form_fails_otherwise():
    assert exp.highest_in_last_layer([0.1, 0.8, 0.7], 3) is False
    assert exp.highest_in_last_layer([0.5, 0.5, 0.5], 3) is False  # a tie goes to the first layer
    assert exp.highest_in_last_layer([0.1, 0.2, float("nan")], 3) is False  # a missing value counts as -1
    assert exp.highest_layer([float("nan"), -0.5]) == 1


def test_induction_heads_in_last_layer():
    assert exp.induction_heads_in_last_layer([0.01, 0.05, 0.6], 0.3) is True
    assert exp.induction_heads_in_last_layer([0.01, 0.35, 0.6], 0.3) is False  # an induction head in layer 1 too
    assert exp.induction_heads_in_last_layer([0.01, 0.05, 0.2], 0.3) is False  # the last layer is highest but holds no induction head
    assert exp.induction_heads_in_last_layer([0.01, 0.7, 0.6], 0.3) is False
    assert exp.induction_heads_in_last_layer([0.01, 0.05, float("nan")], 0.3) is False


@pytest.mark.parametrize(
    "max_induction, k_z, q_z, label",
    [
        (0.1, 10.0, 1.0, "no induction head"),
        (0.6, float("nan"), 1.0, "n/a"),
        (0.6, 10.0, 4.0, "K-composition"),
        (0.6, 4.0, 10.0, "Q-composition"),
        (0.6, 2.0, 2.5, "neither above baseline (positional/other)"),
    ],
)
def test_mechanism_label(max_induction, k_z, q_z, label):
    assert exp.mechanism_label(max_induction, k_z, q_z, threshold=0.3) == label


def test_subsample_keeps_ends():
    items = list(range(30))
    picked = exp._subsample(items, 5)
    assert picked[0] == 0 and picked[-1] == 29 and len(picked) == 5
    assert exp._subsample(items[:3], 5) == items[:3]


# ---- result and section from hand-made numbers ---------------------------------------------------
def test_result_round_trips_through_json():
    result = hand_made()
    back = round_trip(result)
    learned = back.models["attn-only-2l-learned"]
    assert np.isnan(learned.icl.value) and np.isnan(learned.max_Q_z)  # NaN is stored as null and comes back as NaN
    assert isinstance(learned.max_induction, Estimate) and learned.curve_ci.shape == (3, 2)
    assert isinstance(learned.curve, np.ndarray) and learned.curve_steps == (0, 100, 200)
    assert learned.baseline["K"] == (0.05, 0.01) and learned.induction_head == (1, 2)
    with pytest.raises(ValueError, match="unknown fields"):
        exp.Result.from_json({**result.to_json(), "extra": 1})


def test_section_from_a_hand_made_result():
    section = build_section(exp, round_trip(hand_made()))
    check_section(section, "variants", FIGURES, {"icl_where_heads_form"})
    claim = section.claims[0]
    assert claim.holds is True and "layer 2 of 3" in claim.measured and "0.7 [0.66, 0.74]" in claim.measured
    assert claim.value == pytest.approx(0.7) and claim.models == ("attn-only-3l",) and claim.data == "corpus; augmented"
    rows = {row[0]: row for row in section.tables[0].rows}
    assert rows["attn-only-2l"][-1] == "K-composition" and rows["attn-only-2l-learned"][-1] == "n/a"
    assert rows["attn-only-2l-learned"][2] == 2 and rows["attn-only-2l-learned"][4].startswith("n/a")
    assert rows["attn-only-2l"][3] == "0.6 [0.57, 0.63]" and rows["attn-only-2l"][4] == "0.4 [0.3, 0.5]"
    assert len(section.notes) == 4 and section.notes[0] == "ICL note." and "probe rule" in section.notes[1]  # not quick
    assert "2l (shortformer) 200" in section.figures[1].caption


def test_claim_fails_when_a_middle_layer_is_highest():
    result = hand_made(layer_max_prefix_matching=np.array([0.1, 0.9, float("nan")]))
    claim = exp.claims(round_trip(result))[0]
    assert claim.holds is False and "per-layer max 0.1 [0.08, 0.12], 0.9 [0.18, 0.22], -1" in claim.measured


def test_no_deep_model_no_claim():
    result = hand_made()
    result = exp.Result(**{**result.__dict__, "deep": "attn-only-4l"})
    assert exp.claims(result) == [] and len(exp.figures(result)) == 3


# ---- quick zoo ---------------------------------------------------------------------------------
def test_variants_quick(quick_zoo):
    cfg = exp.Config.quick()
    result = round_trip(exp.compute(cfg, quick_zoo))
    assert set(result.models) == set(cfg.presets) and result.quick
    for m in result.models.values():
        assert 0 <= m.max_induction.value <= 1 and m.curve_steps[0] == 0 and m.curve_ci.shape == (len(m.curve_steps), 2)
        assert m.induction_head[0] >= 1 and m.previous_token.shape == (m.n_layers, m.n_heads)
    assert len(result.models[cfg.deep].layer_max_prefix_matching) == 3
    section = build_section(exp, result)
    check_section(section, "variants", FIGURES, {"icl_where_heads_form"})
    assert section.notes[-1].startswith("Quick mode")
