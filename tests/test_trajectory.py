"""Curve features over training checkpoints (circuits.analysis.trajectory) on hand-made curves."""

from __future__ import annotations

import numpy as np
import pytest

from circuits.analysis import trajectory as traj


def sigmoid_steps(centre: float = 500, width: float = 20, height: float = 0.4):
    steps = np.arange(0, 1001, 10)
    return steps, height / (1 + np.exp(-(steps - centre) / width))


# ---- rise_steps and median3 ---------------------------------------------------------------------
def test_rise_steps_find_the_window_of_a_sigmoid():
    steps, values = sigmoid_steps()
    rise = traj.rise_steps(steps, values)
    assert isinstance(rise, traj.Rise)
    assert rise.t10 < rise.t50 < rise.t90
    assert abs(rise.t50 - 500) <= 10 and 400 < rise.t10 < 500 < rise.t90 < 600
    assert rise.lo_step == 0 and rise.lo == pytest.approx(values[1], abs=1e-3) and rise.final == pytest.approx(0.4, abs=1e-6)


def test_rise_steps_of_a_hand_made_step_curve():
    steps = np.array([0, 10, 20, 30, 40, 50, 60])
    values = np.array([0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0])  # the median of 3 keeps a clean step where it is
    rise = traj.rise_steps(steps, values)
    assert (rise.lo, rise.final, rise.lo_step) == (0.0, 1.0, 0)
    assert (rise.t10, rise.t50, rise.t90) == (30, 30, 30)


def test_rise_steps_is_none_without_a_rise():
    steps = np.arange(0, 101, 10)
    flat = traj.rise_steps(steps, np.zeros(len(steps)))
    assert (flat.t10, flat.t50, flat.t90) == (None, None, None)
    falling = traj.rise_steps(steps, -steps.astype(float))  # the minimum is at the end: nothing rises after it
    assert falling.t10 is None and falling.lo_step == 100


def test_rise_steps_ignore_a_one_checkpoint_transient_and_start_after_the_trough():
    steps, values = sigmoid_steps()
    values = values - 0.02 * np.exp(-((steps - 250) / 60) ** 2)  # a small dip before the rise
    values[3] = 0.9  # one transient spike early on (above the final value)
    rise = traj.rise_steps(steps, values)
    assert 200 <= rise.lo_step <= 260  # the dip, not the spike
    assert 400 < rise.t10 < rise.t50 < rise.t90 < 600, rise
    assert abs(rise.t50 - 500) <= 20


def test_median3_removes_single_spikes_and_keeps_the_ends():
    assert traj.median3(np.array([5.0, 0.0, 9.0, 0.0, 0.0, 7.0])).tolist() == [5.0, 5.0, 0.0, 0.0, 0.0, 7.0]
    assert traj.median3(np.array([1.0, 2.0])).tolist() == [1.0, 2.0]


# ---- bump ---------------------------------------------------------------------------------------
def test_bump_finds_a_steeper_fall_and_not_in_a_convex_curve():
    steps = np.arange(0, 1001, 20)
    convex = 3 + 2 * np.exp(-steps / 200)
    bumped = convex - 0.5 / (1 + np.exp(-(steps - 600) / 15))
    b = traj.bump(steps, bumped, 50)
    assert 540 <= b.step <= 660
    c = traj.bump(steps, convex, 50)
    assert c.score <= 1e-9 < b.score


def test_bump_by_hand():
    steps = np.array([0, 10, 20, 30, 40])
    loss = np.array([10.0, 9.0, 8.5, 6.5, 6.0])  # rates 0.1, 0.05, 0.2, 0.05: the rate jumps by 0.15 at the third interval
    b = traj.bump(steps, loss, 0)
    assert b.rate.tolist() == pytest.approx([0.1, 0.05, 0.2, 0.05])
    assert b.rate_steps.tolist() == [5.0, 15.0, 25.0, 35.0]
    assert b.step == 25.0 and b.score == pytest.approx(0.15 / 0.1)


def test_bump_needs_four_checkpoints_after_start():
    b = traj.bump(np.array([0, 10, 20, 30, 40]), np.array([4.0, 3.0, 2.5, 2.0, 1.0]), 15)
    assert b.score is None and b.step is None and len(b.rate) == 0 and len(b.rate_steps) == 0


# ---- pivot --------------------------------------------------------------------------------------
def test_pivot_finds_the_corner_of_an_l_shaped_trajectory():
    steps = np.arange(10)
    coords = np.array([[i, 0.0] for i in range(5)] + [[4.0, i] for i in range(1, 6)])
    p = traj.pivot(coords, steps, 0)
    assert p.step == 4 and p.angle == pytest.approx(90.0)  # k = 2: from (2, 0)->(4, 0) to (4, 0)->(4, 2)


def test_pivot_skips_checkpoints_before_start_and_straight_lines_give_zero():
    steps = np.arange(10)
    coords = np.array([[i, 0.0] for i in range(5)] + [[4.0, i] for i in range(1, 6)])
    assert traj.pivot(coords, steps, 6) == traj.Pivot(angle=0.0, step=6)  # the corner is before start; later it runs straight
    line = traj.pivot(np.array([[i, 2.0 * i] for i in range(8)], dtype=float), np.arange(8), 0)
    assert line.angle == pytest.approx(0.0, abs=1e-4)  # arccos near 1 loses precision
    assert traj.pivot(np.zeros((8, 2)), np.arange(8), 0) == traj.Pivot(angle=None, step=None)  # no movement: no turn


# ---- slopes, window edges, tolerance -----------------------------------------------------------
def test_log_index_slope():
    idx = np.arange(1, 101)
    assert traj.log_index_slope(5 - 0.3 * np.log(idx), 10) == pytest.approx(-0.3, abs=1e-9)
    flat_after_ten = np.where(idx < 10, 5 - np.log(idx), 5 - np.log(10))
    assert traj.log_index_slope(flat_after_ten, 10) == pytest.approx(0.0, abs=1e-9)


def test_index_before_and_window_end():
    steps = np.array([0, 10, 20, 30, 40])
    assert traj.index_before(steps, 30) == 2  # step 20, the last one before the window
    assert traj.index_before(steps, 5) == 1  # nothing trained before the window: the first trained checkpoint
    assert traj.index_before(steps, None) == 1 and traj.index_before(np.array([0]), None) == 0
    assert traj.window_end(steps, 25) == 3 and traj.window_end(steps, 30) == 3 and traj.window_end(steps, None) == 4


def test_within():
    assert traj.within(12, 10, 20, 0) and traj.within(8, 10, 20, 2) and traj.within(22, 10, 20, 2)
    assert not traj.within(7.9, 10, 20, 2) and not traj.within(22.1, 10, 20, 2)
    assert not traj.within(None, 10, 20, 5) and not traj.within(15, None, 20, 5) and not traj.within(15, 10, None, 5)


def test_window_tolerance():
    steps = np.array([0, 10, 20, 60, 70, 80, 100])
    assert traj.window_tolerance(steps, 20, 60, 100) == 40.0  # the 20 -> 60 gap overlaps the window
    assert traj.window_tolerance(np.arange(0, 1001, 10), 400, 600, 1000) == 50.0  # 5% of training beats the 10-step spacing
    assert traj.window_tolerance(steps, None, None, 100) == 0.0


def test_window_tolerance_counts_every_gap_that_touches_the_window():
    steps = np.array([0, 10, 20, 60, 70, 80, 100])
    # (steps[i+1] >= t10) & (steps[i] <= t90): for [70, 80] the gaps 60-70, 70-80 and 80-100 touch it
    assert traj.window_tolerance(steps, 70, 80, 1) == 20.0


# ---- joint PCA, fastest divergence, before-and-after vector ------------------------------------
def test_joint_pca_of_two_trajectories_on_a_line():
    a = np.array([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0]])
    b = np.array([[3.0, 0.0], [4.0, 0.0]])
    (pa, pb), explained = traj.joint_pca([a, b], n_components=2)
    assert pa.shape == (3, 2) and pb.shape == (2, 2)
    assert explained[0] == pytest.approx(1.0) and explained[1] == pytest.approx(0.0)
    first = np.concatenate([pa[:, 0], pb[:, 0]])
    assert np.allclose(np.abs(first), [2, 1, 0, 1, 2])  # centred at x = 2, up to the sign of the component
    assert np.allclose(np.diff(first) * np.sign(first[-1] - first[0]), 1)


def test_fastest_divergence():
    steps = np.array([0, 10, 20, 40])
    gap = np.array([0.0, 0.1, 0.5, 0.7])  # rates 0.01, 0.04, 0.01 per step
    assert traj.fastest_divergence(steps, gap) == 15.0


def test_before_after_vector_is_the_unit_change():
    vectors = np.array([[1.0, 1.0, 1.0], [1.0, 4.0, 5.0], [0.0, 0.0, 0.0]])
    assert traj.before_after_vector(vectors, 0, 1).tolist() == pytest.approx([0.0, 0.6, 0.8])
    assert traj.before_after_vector(vectors, 0, 0).tolist() == [0.0, 0.0, 0.0]  # no change stays zero, not NaN


# ---- densest_window and rise_step_interval ------------------------------------------------------
def test_densest_window_of_a_sigmoid_holds_most_of_the_rise():
    steps, values = sigmoid_steps(centre=500, width=20, height=0.4)
    w = traj.densest_window(steps, values, width=250)
    assert isinstance(w, traj.Window) and steps[w.end] - steps[w.start] <= 250
    assert steps[w.start] < 500 < steps[w.end] and w.gain / 0.4 > 0.95


def test_densest_window_of_a_linear_rise_holds_only_its_width():
    steps = np.arange(0, 1001, 10)
    w = traj.densest_window(steps, steps / 1000.0, width=250)
    assert w.gain == pytest.approx(0.25)  # not 80% by construction, as a 10%-90% window would be
    assert (w.start, w.end) == (0, 25)  # ties go to the earliest window


def test_densest_window_of_a_flat_or_falling_curve_gains_nothing():
    steps = np.arange(0, 101, 10)
    assert traj.densest_window(steps, np.zeros(len(steps)), 30) == traj.Window(start=0, end=0, gain=0.0)
    assert traj.densest_window(steps, -steps.astype(float), 30).gain == 0.0
    with pytest.raises(ValueError, match="at least one checkpoint"):
        traj.densest_window(np.array([]), np.array([]), 10)


def test_rise_step_interval_over_resampled_curves():
    steps = np.arange(0, 1001, 10)
    curves = np.stack([sigmoid_steps(centre=c)[1] for c in (480, 490, 500, 510, 520)] * 20)  # 100 "resamples"
    lo, hi = traj.rise_step_interval(steps, curves)
    assert 470 <= lo <= 490 and 510 <= hi <= 530
    flat = np.zeros((10, len(steps)))
    assert traj.rise_step_interval(steps, flat) is None  # no resample rises: not resolved
    with pytest.raises(ValueError, match="q must be"):
        traj.rise_step_interval(steps, curves, q=0.3)
