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
from circuits.experiments.estimates import Estimate

CLAIMS = {"icl_phase_change", "icl_co_timing", "icl_1l_control", "icl_smeared_key", "icl_ablation", "icl_before_after", "icl_loss_by_log_index"}
FIGURES = {"phase_change_icl", "phase_change_prefix_matching", "phase_change_loss", "phase_change_pca", "phase_change_loss_by_index",
           "phase_change_loss_by_log_index", "phase_change_ablation"}


# ---- verdicts: where each holds and where it fails ----------------------------------------------
def test_phase_change_holds_with_every_part():
    assert verdicts.phase_change_holds(0.05, 0.4, 0.8, 0.05)
    assert verdicts.phase_change_holds(0.149, 0.2, 0.751, 0.1)  # the boundaries: 0.2 and 10% count, 0.15 and 75% do not
    parts = verdicts.phase_change_parts(0.15, 0.19, 0.75, 0.11)
    assert list(parts.values()) == [False, False, False, False]
    assert not verdicts.phase_change_holds(0.2, 0.4, 0.8, 0.05)  # already above the paper's 0.15 before the window
    assert not verdicts.phase_change_holds(0.05, 0.15, 0.8, 0.05)  # far below the paper's ≈ 0.4 after
    assert not verdicts.phase_change_holds(0.05, 0.4, 0.6, 0.05)  # a slow rise: 60% in the densest quarter of training
    assert not verdicts.phase_change_holds(0.05, 0.4, 0.8, 0.3)  # no plateau: 30% more after the window
    assert not verdicts.phase_change_holds(0.05, float("nan"), 0.8, 0.05)  # unmeasured fails


def test_co_timing_holds():
    assert verdicts.co_timing_holds(0.5, 0.3, 110, 105.0, 120, 100, 120, 5.0)
    assert verdicts.co_timing_holds(0.5, 0.3, 95, 125.0, 100, 100, 120, 5.0)  # within the tolerance on both sides
    assert not verdicts.co_timing_holds(0.2, 0.3, 110, 105.0, 120, 100, 120, 5.0)  # no induction head formed: nothing to time
    assert not verdicts.co_timing_holds(0.5, 0.3, None, 105.0, 110, 100, 120, 5.0)  # prefix matching never rose
    assert not verdicts.co_timing_holds(0.5, 0.3, 110, 130.0, 110, 100, 120, 5.0)  # the bump is late
    assert not verdicts.co_timing_holds(0.5, 0.3, 110, 105.0, 94, 100, 120, 5.0)  # the PCA turn is early
    assert not verdicts.co_timing_holds(0.5, 0.3, 110, 105.0, 110, None, None, 0.0)  # no window


def test_control_holds():
    assert verdicts.control_holds(0.1, 0.1, 0.3, 0.5, 2.0)
    assert not verdicts.control_holds(0.16, 0.1, 0.3, 0.5, 2.0)  # the control reaches the paper's post-change level
    assert not verdicts.control_holds(0.1, 0.35, 0.3, 0.5, 2.0)  # the control has an induction head
    assert not verdicts.control_holds(0.1, 0.1, 0.3, 1.5, 2.0)  # the control has a bump too
    assert not verdicts.control_holds(0.1, 0.1, 0.3, None, 2.0) and not verdicts.control_holds(0.1, 0.1, 0.3, 0.5, None)


def test_smeared_key_verdicts():
    assert verdicts.smeared_one_layer_learns(0.3, 0.5, 0.3) and verdicts.smeared_one_layer_learns(0.2, 0.3, 0.3)
    assert not verdicts.smeared_one_layer_learns(0.19, 0.5, 0.3) and not verdicts.smeared_one_layer_learns(0.3, 0.2, 0.3)
    assert verdicts.rises_earlier(10, 20)
    assert not verdicts.rises_earlier(20, 20) and not verdicts.rises_earlier(None, 20) and not verdicts.rises_earlier(10, None)
    assert verdicts.smeared_key_holds(True, True) is True
    assert verdicts.smeared_key_holds(True, False) is False and verdicts.smeared_key_holds(False, True) is False
    assert verdicts.smeared_key_holds(True, None) is None  # no 2L smeared model: untested
    assert verdicts.smeared_key_holds(False, None) is False


def test_ablation_verdicts():
    assert verdicts.icl_removed(-0.4, 0.3) == pytest.approx(0.75) and math.isnan(verdicts.icl_removed(0.1, 0.3))
    assert verdicts.ablation_holds(-0.4, 0.95, [0.03, -0.04]) and verdicts.ablation_holds(-0.4, 0.9, [])
    assert not verdicts.ablation_holds(-0.4, 0.8, [])  # "most" is not "almost all"
    assert not verdicts.ablation_holds(-0.4, 0.95, [0.03, -0.05])  # another head changes it by 12.5% of it
    assert not verdicts.ablation_holds(0.1, 0.95, [])  # no ICL to remove


def test_before_after_verdicts():
    assert verdicts.before_after_holds([-0.5, -0.3], [-0.1, 0.2])
    assert verdicts.before_after_holds([-0.5], [])
    assert not verdicts.before_after_holds([-0.5, 0.1], [0.2])  # one induction head does not undo the phase change
    assert not verdicts.before_after_holds([-0.5], [-0.6, 0.1])  # another head undoes it more
    assert not verdicts.before_after_holds([], [-0.1])


def test_log_index_holds():
    assert verdicts.log_index_holds(-0.01, -0.2, -0.15, -0.05) and verdicts.log_index_holds(0.05, -0.2, -0.15, -0.01)
    assert not verdicts.log_index_holds(-0.15, -0.2, -0.15, -0.05)  # it was already falling before
    assert not verdicts.log_index_holds(0.0, -0.2, 0.01, -0.05)  # the slope after is not resolved below 0
    assert not verdicts.log_index_holds(0.0, -0.2, -0.15, 0.02)  # it flattens over the last e-fold


# ---- a hand-made result ---------------------------------------------------------------------------
STEPS = (0, 10, 20, 30, 40, 50, 60)


def est(value: float, half: float = 0.02) -> Estimate:
    return Estimate(value=value, lo=value - half, hi=value + half)


def trajectory(n_layers: int, icl_final: float, pm_final: float, t10: int | None = 20, t90: int | None = 30) -> exp.ModelTrajectory:
    n, n_pos, rng = len(STEPS), 12, np.random.default_rng(n_layers)
    icl = np.linspace(-0.01, icl_final, n)
    pm = np.full((n, n_layers, 2), 0.05)
    pm[-1, -1, 0] = pm_final
    return exp.ModelTrajectory(
        steps=STEPS, tokens_per_step=64, total_steps=60, n_layers=n_layers, n_heads=2, prefix_seq_len=6, icl=icl,
        icl_ci=np.stack([-icl - 0.1, -icl + 0.1], -1), icl_single=icl, loss=np.linspace(5.0, 3.0, n),
        per_position_loss=rng.uniform(3, 5, (n, n_pos - 1)), prefix_matching=pm, previous_token=np.full((n, n_layers, 2), 0.1),
        pm_max=pm[:, -1].max(-1), pm_ci=np.stack([pm[:, -1].max(-1) - 0.02, pm[:, -1].max(-1) + 0.02], -1), pca=rng.normal(size=(n, 2)),
        train_steps=(0, 5, 10, 60), train_loss=np.array([5.5, 5.0, 4.8, 3.0]),
        icl_rise=exp.Rise(lo=0.01, final=-icl_final, lo_step=0, t10=t10, t50=25 if t10 else None, t90=t90),
        pm_rise=exp.Rise(lo=0.05, final=pm_final, lo_step=0, t10=20, t50=25, t90=30), icl_t50_ci=(20.0, 30.0) if t10 else None,
        pm_t50_ci=(20.0, 30.0), window=(20, 30) if t10 else (0, 0),
        bump=exp.Bump(score=1.5, step=25.0, rate=np.array([0.1, 0.3, 0.1, 0.05]), rate_steps=np.array([15.0, 25.0, 35.0, 45.0])),
        pivot_step=30, pivot_angle=80.0, before_step=10, slope_before=-0.01, slope_after=-0.2, final_icl_claim=est(-icl_final),
    )


def fake_result(**changes) -> exp.Result:
    models = {"one": trajectory(1, -0.05, 0.1, None, None), "two": trajectory(2, -0.4, 0.6), "two-corpus": trajectory(2, -0.2, 0.1),
              "one-smeared": trajectory(1, -0.3, 0.5), "two-smeared": trajectory(2, -0.4, 0.6)}
    ablation = exp.AblationStudy(
        labels=("L0H0", "L0H1", "L1H0", "L1H1", "induction heads", "induction + previous-token heads"),
        icl_delta=np.array([0.02, 0.01, 0.38, -0.01, 0.38, 0.39]), icl_delta_ci=np.array([[0.0, 0.04]] * 6),
        dot=np.array([-0.7, 0.0, -0.5, 0.05, -0.5, -0.6]), clean_icl=est(-0.4), removed=est(0.95), induction_heads=((1, 0),),
        previous_token_head=(0, 0), phase_steps=(20, 30), windows=16,
    )
    phase = exp.PhaseWindow(start_step=20, end_step=30, width=0.25, icl_start=est(0.05), icl_end=est(0.38), icl_final=est(0.4),
                            formed=est(0.82, 0.05), change_after=est(0.05))
    log_index = exp.LogIndex(first=2, first_note="beyond token 2 (scaled)", last_efold=5, before_step=10, slope_before=est(-0.01),
                             slope_after=est(-0.2, 0.05), slope_after_end=est(-0.1, 0.05))
    names = ("one", "two", "two-corpus", "one-smeared", "two-smeared")
    fields = dict(
        presets=names, main="two", control="one", corpus_control="two-corpus", smeared_1l="one-smeared", smeared_2l="two-smeared",
        induction_threshold=0.3, eval_windows=4, claim_windows=16, probe_sequences=8, quick=False, data_note="trained on plain windows.",
        data_labels={n: ("corpus only" if n == "two-corpus" else "corpus; augmented") for n in names},
        probe_rule="R drawn from the 6 most frequent tokens", probe_layout="[BOS] + P + R x 4", n_pos=12, late=(10, 11), early=(2, 3),
        icl_note="scaled", band_note="bands (scaled)", pca_explained=np.array([0.6, 0.2]), models=models, phase=phase, log_index=log_index,
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
    assert isinstance(back.phase.formed, Estimate) and back.phase.formed.lo == pytest.approx(fake_result().phase.formed.lo)
    assert isinstance(back.ablation.removed, Estimate) and back.models["two"].pm_t50_ci == (20.0, 30.0)


def test_result_json_round_trip_keeps_nan_and_missing_parts():
    result = fake_result(loss_gap=None, ablation=None, data_note=None)
    nan = dataclasses.replace(result.models["two"], icl=np.array([np.nan, -0.1, -0.2, -0.3, -0.4, -0.4, -0.4]),
                              final_icl_claim=Estimate(value=0.4, lo=float("nan"), hi=float("nan")), icl_t50_ci=None)
    result = fake_result(loss_gap=None, ablation=None, data_note=None, models={**result.models, "two": nan})
    back = exp.Result.from_json(json.loads(json.dumps(result.to_json(), allow_nan=False)))
    assert back.loss_gap is None and back.ablation is None and back.data_note is None
    assert math.isnan(back.models["two"].final_icl_claim.lo) and "interval n/a" in back.models["two"].final_icl_claim.text()
    assert math.isnan(back.models["two"].icl[0]) and back.models["two"].icl[1] == -0.1


def test_section_of_a_hand_made_result():
    section = build_section(exp, fake_result())
    check_section(section, "phase_change", FIGURES, CLAIMS)
    holds = {c.key: c.holds for c in section.claims}
    assert holds["icl_phase_change"] is True  # 0.05 -> 0.4, 82% formed in steps 20-30, 5% change after
    assert holds["icl_co_timing"] is True
    assert holds["icl_1l_control"] is False  # the control's bump score equals the main model's
    assert holds["icl_smeared_key"] is False  # same t50 for the 2L smeared model
    assert holds["icl_ablation"] is True and holds["icl_loss_by_log_index"] is True
    assert holds["icl_before_after"] is True  # L1H0 -0.5 is below every head but the previous-token head L0H0 (-0.7)
    for claim in section.claims:
        assert claim.value is not None and claim.models and claim.data, claim
    by_key = {c.key: c for c in section.claims}
    assert by_key["icl_phase_change"].value == pytest.approx(0.82) and by_key["icl_phase_change"].models == ("two",)
    assert by_key["icl_1l_control"].models == ("one", "two") and by_key["icl_1l_control"].data == "corpus; augmented"
    assert "[" in by_key["icl_ablation"].measured and "90%" in by_key["icl_ablation"].statement
    assert section.notes[-1] == "trained on plain windows." and not any(n.startswith("Quick mode") for n in section.notes)
    assert any(n.startswith("What the augmentation changes") and "two-corpus (corpus only)" in n for n in section.notes)
    assert [row[0] for row in section.tables[0].rows] == ["one", "two", "two-corpus", "one-smeared", "two-smeared"]
    icl = section.figures[0].fig
    assert sum(trace.fill == "toself" for trace in icl.data) == 2  # intervals around the main model and its corpus-only twin
    titles = [f.fig.layout.title.text for f in section.figures]
    assert all(len(t) <= 60 for t in titles), titles  # the static export is 700 px wide: long titles are cut off


def test_claims_without_the_control_smeared_models_and_ablation():
    result = fake_result(presets=("two",), models={"two": fake_result().models["two"]}, loss_gap=None, ablation=None, quick=True)
    section = build_section(exp, result)
    assert [c.key for c in section.claims] == ["icl_phase_change", "icl_co_timing", "icl_loss_by_log_index"]
    assert "fastest divergence" not in section.claims[1].measured
    assert not any(n.startswith("What the augmentation changes") for n in section.notes)
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
    assert m.icl_ci.shape == (n, 2) and m.pm_ci.shape == (n, 2) and np.all(m.pm_ci[:, 0] <= m.pm_max + 1e-9)
    assert result.phase is not None and result.log_index is not None and result.claim_windows >= result.eval_windows
    assert result.data_labels[cfg.corpus_control].endswith("corpus only") and "augmented" in result.data_labels[cfg.main]
    section = build_section(exp, result)
    check_section(section, "phase_change", FIGURES, CLAIMS)
    assert any("scaled" in note for note in section.notes)
    assert not hasattr(exp, "build")
