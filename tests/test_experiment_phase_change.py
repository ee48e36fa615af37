"""The phase-change experiment: its claim verdicts on hand-made numbers, its typed result (JSON round trip, figures
and claims of a hand-made result), and a smoke test on the quick zoo. Curve features: tests/test_trajectory.py."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
from experiment_helpers import check_section, finite_json, quick_zoo  # noqa: F401

from circuits.experiments import phase_change as exp
from circuits.experiments import phase_change_claims as verdicts
from circuits.experiments.base import build_section

CLAIMS = {"icl_phase_change", "icl_co_timing", "icl_1l_control", "icl_smeared_key", "icl_ablation", "icl_before_after", "icl_loss_by_log_index"}
FIGURES = {"phase_change_icl", "phase_change_prefix_matching", "phase_change_loss", "phase_change_pca", "phase_change_loss_by_index",
           "phase_change_loss_by_log_index", "phase_change_ablation"}


# ---- verdicts: where each holds and where it fails ----------------------------------------------
def test_phase_change_holds():
    assert verdicts.phase_change_holds(0.3, 0.1) and verdicts.phase_change_holds(0.15, 0.3)  # the boundaries count
    assert not verdicts.phase_change_holds(0.1, 0.1)  # too little ICL
    assert not verdicts.phase_change_holds(0.3, 0.5)  # too slow a rise
    assert not verdicts.phase_change_holds(0.3, None)  # no window


def test_co_timing_holds():
    assert verdicts.co_timing_holds(110, 105.0, 120, 100, 120, 5.0)
    assert verdicts.co_timing_holds(95, 125.0, 100, 100, 120, 5.0)  # within the tolerance on both sides
    assert not verdicts.co_timing_holds(None, 105.0, 110, 100, 120, 5.0)  # prefix matching never rose
    assert not verdicts.co_timing_holds(110, 130.0, 110, 100, 120, 5.0)  # the bump is late
    assert not verdicts.co_timing_holds(110, 105.0, 94, 100, 120, 5.0)  # the PCA turn is early
    assert not verdicts.co_timing_holds(110, 105.0, 110, None, None, 0.0)  # no window


def test_control_holds():
    assert verdicts.control_holds(0.1, 0.4, 0.1, 0.3, 0.5, 2.0)
    assert not verdicts.control_holds(0.25, 0.4, 0.1, 0.3, 0.5, 2.0)  # the control learns over half the ICL
    assert not verdicts.control_holds(0.1, 0.4, 0.35, 0.3, 0.5, 2.0)  # the control has an induction head
    assert not verdicts.control_holds(0.1, 0.4, 0.1, 0.3, 1.5, 2.0)  # the control has a bump too
    assert not verdicts.control_holds(0.1, 0.4, 0.1, 0.3, None, 2.0) and not verdicts.control_holds(0.1, 0.4, 0.1, 0.3, 0.5, None)


def test_smeared_key_verdicts():
    assert verdicts.smeared_one_layer_learns(0.3, 0.4, 0.5, 0.3) and verdicts.smeared_one_layer_learns(0.2, 0.4, 0.3, 0.3)
    assert not verdicts.smeared_one_layer_learns(0.1, 0.4, 0.5, 0.3) and not verdicts.smeared_one_layer_learns(0.3, 0.4, 0.2, 0.3)
    assert verdicts.rises_earlier(10, 20)
    assert not verdicts.rises_earlier(20, 20) and not verdicts.rises_earlier(None, 20) and not verdicts.rises_earlier(10, None)
    assert verdicts.smeared_key_holds(True, True) is True
    assert verdicts.smeared_key_holds(True, False) is False and verdicts.smeared_key_holds(False, True) is False
    assert verdicts.smeared_key_holds(True, None) is None  # no 2L smeared model: untested
    assert verdicts.smeared_key_holds(False, None) is False


def test_ablation_verdicts():
    assert verdicts.icl_removed(-0.4, 0.3) == pytest.approx(0.75) and math.isnan(verdicts.icl_removed(0.1, 0.3))
    assert verdicts.ablation_holds(-0.4, 0.3, [0.05, -0.02]) and verdicts.ablation_holds(-0.4, 0.3, [])
    assert not verdicts.ablation_holds(-0.4, 0.1, [])  # only a quarter removed
    assert not verdicts.ablation_holds(-0.4, 0.3, [0.05, -0.12])  # another head matters as much (0.12 > 0.25 * 0.4)
    assert not verdicts.ablation_holds(0.1, 0.3, [])  # no ICL to remove
    assert verdicts.before_after_holds([-0.5, -0.1])
    assert not verdicts.before_after_holds([-0.5, 0.1]) and not verdicts.before_after_holds([])


def test_log_index_holds():
    assert verdicts.log_index_holds(-0.01, -0.2) and verdicts.log_index_holds(0.05, -0.2)
    assert not verdicts.log_index_holds(-0.15, -0.2)  # it was already falling before
    assert not verdicts.log_index_holds(0.0, -0.02)  # too flat after


# ---- a hand-made result ---------------------------------------------------------------------------
STEPS = (0, 10, 20, 30, 40, 50, 60)


def trajectory(n_layers: int, icl_final: float, pm_final: float, t10: int | None = 20, t90: int | None = 30) -> exp.ModelTrajectory:
    n, n_pos, rng = len(STEPS), 12, np.random.default_rng(n_layers)
    icl = np.linspace(-0.01, icl_final, n)
    pm = np.full((n, n_layers, 2), 0.05)
    pm[-1, -1, 0] = pm_final
    return exp.ModelTrajectory(
        steps=STEPS, tokens_per_step=64, total_steps=60, n_layers=n_layers, n_heads=2, prefix_seq_len=6, icl=icl, icl_single=icl,
        loss=np.linspace(5.0, 3.0, n), per_position_loss=rng.uniform(3, 5, (n, n_pos - 1)), prefix_matching=pm, induction=pm,
        previous_token=np.full((n, n_layers, 2), 0.1), pm_max=pm[:, -1].max(-1), pca=rng.normal(size=(n, 2)),
        train_steps=(0, 5, 10, 60), train_loss=np.array([5.5, 5.0, 4.8, 3.0]),
        icl_rise=exp.Rise(lo=0.01, final=-icl_final, lo_step=0, t10=t10, t50=25 if t10 else None, t90=t90),
        pm_rise=exp.Rise(lo=0.05, final=pm_final, lo_step=0, t10=20, t50=25, t90=30),
        bump=exp.Bump(score=1.5, step=25.0, rate=np.array([0.1, 0.3, 0.1, 0.05]), rate_steps=np.array([15.0, 25.0, 35.0, 45.0])),
        pivot_step=30, pivot_angle=80.0, before_step=10, slope_before=-0.01, slope_after=-0.2,
    )


def fake_result(**changes) -> exp.Result:
    models = {"one": trajectory(1, -0.05, 0.1, None, None), "two": trajectory(2, -0.4, 0.6), "one-smeared": trajectory(1, -0.3, 0.5),
              "two-smeared": trajectory(2, -0.4, 0.6)}
    ablation = exp.AblationStudy(
        labels=("L0H0", "L0H1", "L1H0", "L1H1", "induction heads", "induction + previous-token heads"),
        icl_delta=np.array([0.02, 0.01, 0.3, -0.01, 0.3, 0.35]), dot=np.array([0.1, 0.0, -0.5, 0.05, -0.5, -0.6]), clean_icl=-0.4,
        induction_heads=((1, 0),), previous_token_head=(0, 0), phase_steps=(10, 30),
    )
    fields = dict(
        presets=("one", "two", "one-smeared", "two-smeared"), main="two", control="one", smeared_1l="one-smeared", smeared_2l="two-smeared",
        induction_threshold=0.3, eval_windows=4, quick=False, data_note="trained on plain windows.", n_pos=12, late=(10, 11), early=(2, 3),
        icl_note="scaled", band_note="bands (scaled)", pca_explained=np.array([0.6, 0.2]), models=models,
        loss_gap=exp.LossGap(gap=np.zeros(len(STEPS)), fastest_step=25.0), ablation=ablation, seconds=1.5,
    )
    return exp.Result(**{**fields, **changes})


def test_result_json_round_trip_is_exact_and_typed():
    result = fake_result()
    data = json.loads(json.dumps(result.to_json(), allow_nan=False))
    back = exp.Result.from_json(data)
    assert back.to_json() == result.to_json()
    assert exp.Result.from_json(back.to_json()).to_json() == data  # stable
    two = back.models["two"]
    assert isinstance(two, exp.ModelTrajectory) and isinstance(two.icl_rise, exp.Rise) and isinstance(two.bump, exp.Bump)
    assert two.steps == STEPS and all(type(s) is int for s in two.steps) and two.icl_rise.t10 == 20
    assert isinstance(two.per_position_loss, np.ndarray) and two.per_position_loss.shape == (len(STEPS), 11)
    assert back.ablation.induction_heads == ((1, 0),) and back.ablation.previous_token_head == (0, 0)
    assert back.models["one"].icl_rise.t10 is None and back.late == (10, 11) and back.quick is False


def test_result_json_round_trip_keeps_nan_and_missing_parts():
    result = fake_result(loss_gap=None, ablation=None, data_note=None)
    nan = dataclasses.replace(result.models["two"], icl=np.array([np.nan, -0.1, -0.2, -0.3, -0.4, -0.4, -0.4]))
    result = fake_result(loss_gap=None, ablation=None, data_note=None, models={**result.models, "two": nan})
    back = exp.Result.from_json(json.loads(json.dumps(result.to_json(), allow_nan=False)))
    assert back.loss_gap is None and back.ablation is None and back.data_note is None
    assert math.isnan(back.models["two"].icl[0]) and back.models["two"].icl[1] == -0.1


def test_section_of_a_hand_made_result():
    section = build_section(exp, fake_result())
    check_section(section, "phase_change", FIGURES, CLAIMS)
    holds = {c.key: c.holds for c in section.claims}
    assert holds["icl_phase_change"] is True  # |ICL| 0.4, window 20-30 of 60 steps
    assert holds["icl_1l_control"] is False  # the control's bump score equals the main model's
    assert holds["icl_smeared_key"] is False  # same t50 for the 2L smeared model
    assert holds["icl_ablation"] is True and holds["icl_before_after"] is True and holds["icl_loss_by_log_index"] is True
    assert section.notes[-1] == "trained on plain windows." and not any(n.startswith("Quick mode") for n in section.notes)
    assert [row[0] for row in section.tables[0].rows] == ["one", "two", "one-smeared", "two-smeared"]
    titles = [f.fig.layout.title.text for f in section.figures]
    assert all(len(t) <= 60 for t in titles), titles  # the static export is 700 px wide: long titles are cut off


def test_claims_without_the_control_smeared_models_and_ablation():
    result = fake_result(presets=("two",), models={"two": fake_result().models["two"]}, loss_gap=None, ablation=None, quick=True)
    section = build_section(exp, result)
    assert [c.key for c in section.claims] == ["icl_phase_change", "icl_co_timing", "icl_loss_by_log_index"]
    assert "fastest divergence" not in section.claims[1].measured
    assert {f.key for f in section.figures} == FIGURES - {"phase_change_ablation"}
    assert any(n.startswith("Quick mode") for n in section.notes)


# ---- the quick zoo --------------------------------------------------------------------------------
def test_phase_change_quick(quick_zoo):
    cfg = exp.Config.quick()
    data = finite_json(exp.compute(cfg, quick_zoo).to_json())
    result = exp.Result.from_json(data)
    assert exp.Result.from_json(result.to_json()).to_json() == result.to_json()
    assert set(result.models) == set(cfg.presets) and result.quick
    m = result.models[cfg.main]
    n = len(m.steps)
    assert n >= 3 and len(m.icl) == n and m.pca.shape == (n, 2) and m.prefix_matching.shape[1:] == (2, m.n_heads)
    section = build_section(exp, result)
    check_section(section, "phase_change", FIGURES, CLAIMS)
    assert any("scaled" in note for note in section.notes)
    assert not hasattr(exp, "build")
