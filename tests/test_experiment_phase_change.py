"""The phase-change experiment: its detectors on synthetic curves, and a smoke test on the quick zoo."""

from __future__ import annotations

import numpy as np
from experiment_helpers import check_section, finite_json, quick_zoo  # noqa: F401

from circuits.experiments import phase_change as exp

CLAIMS = {"icl_phase_change", "icl_co_timing", "icl_1l_control", "icl_smeared_key", "icl_ablation", "icl_before_after", "icl_loss_by_log_index"}
FIGURES = {"phase_change_icl", "phase_change_prefix_matching", "phase_change_loss", "phase_change_pca", "phase_change_loss_by_index",
           "phase_change_loss_by_log_index", "phase_change_ablation"}


def test_rise_steps_find_the_window_of_a_sigmoid():
    steps = np.arange(0, 1001, 10)
    values = 0.4 / (1 + np.exp(-(steps - 500) / 20))
    rise = exp.rise_steps(steps, values)
    assert rise["t10"] < rise["t50"] < rise["t90"]
    assert abs(rise["t50"] - 500) <= 10 and 400 < rise["t10"] < 500 < rise["t90"] < 600
    flat = exp.rise_steps(steps, np.zeros_like(steps, dtype=float))
    assert flat["t10"] is None


def test_rise_steps_ignore_a_one_checkpoint_transient_and_start_after_the_trough():
    steps = np.arange(0, 1001, 10)
    values = 0.4 / (1 + np.exp(-(steps - 500) / 20)) - 0.02 * np.exp(-((steps - 250) / 60) ** 2)  # a small dip before the rise
    values[3] = 0.9  # one transient spike early on (above the final value)
    rise = exp.rise_steps(steps, values)
    assert 200 <= rise["lo_step"] <= 260  # the dip, not the spike
    assert 400 < rise["t10"] < rise["t50"] < rise["t90"] < 600, rise
    assert abs(rise["t50"] - 500) <= 20


def test_bump_finds_a_steeper_fall_and_not_in_a_convex_curve():
    steps = np.arange(0, 1001, 20)
    convex = 3 + 2 * np.exp(-steps / 200)
    bumped = convex - 0.5 / (1 + np.exp(-(steps - 600) / 15))
    b = exp.bump(steps, bumped, 50)
    assert 540 <= b["step"] <= 660
    c = exp.bump(steps, convex, 50)
    assert c["score"] <= 1e-9 < b["score"]


def test_pivot_and_log_index_slope():
    steps = np.arange(10)
    coords = np.array([[i, 0.0] for i in range(5)] + [[4.0, i] for i in range(1, 6)])
    assert exp.pivot(coords, steps, 0)["step"] == 4
    idx = np.arange(1, 101)
    assert abs(exp.log_index_slope(5 - 0.3 * np.log(idx), 10) + 0.3) < 1e-9


def test_phase_change_quick(quick_zoo):
    cfg = exp.Config.quick()
    results = finite_json(exp.compute(cfg, quick_zoo))
    assert set(results["models"]) == set(cfg.presets)
    m = results["models"][cfg.main]
    n = len(m["steps"])
    assert n >= 3 and len(m["icl"]) == n and len(m["pca"]) == n and len(m["prefix_matching"][0]) == 2
    section = exp.build(results, cfg, quick_zoo)
    check_section(section, "phase_change", FIGURES, CLAIMS)
    assert any("scaled" in note for note in section.notes)
