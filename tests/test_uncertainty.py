"""Bootstrap intervals over units (circuits.analysis.uncertainty) on hand-made data."""

from __future__ import annotations

import numpy as np
import pytest

from circuits.analysis import uncertainty as unc


def test_weights_are_resamples():
    w = unc.bootstrap_weights(5, n_boot=200, seed=3)
    assert w.shape == (200, 5) and np.allclose(w.sum(1), 1.0) and np.allclose((w * 5) % 1, 0)  # draw counts / n
    assert np.array_equal(w, unc.bootstrap_weights(5, n_boot=200, seed=3)) and not np.array_equal(w, unc.bootstrap_weights(5, 200, seed=4))


def test_mean_interval_has_the_normal_width_and_covers_the_mean():
    rng = np.random.default_rng(0)
    values = rng.normal(2.0, 1.0, size=(3, 2000))  # three quantities, 2000 units each
    mean, lo, hi = unc.mean_interval(values, axis=1)
    assert mean.shape == lo.shape == hi.shape == (3,)
    assert np.all(lo < mean) and np.all(mean < hi) and np.all(lo < 2.0) and np.all(2.0 < hi)
    assert np.allclose((hi - lo) / 2, 1.96 / np.sqrt(2000), rtol=0.15)
    assert [float(v) for v in unc.mean_interval(np.full(10, 0.5))] == pytest.approx([0.5, 0.5, 0.5])  # no spread, no width


def test_max_interval_resamples_the_choice_of_the_best():
    rng = np.random.default_rng(1)
    heads = np.stack([rng.normal(0.50, 0.2, 400), rng.normal(0.49, 0.2, 400), rng.normal(0.0, 0.2, 400)], axis=1)  # [unit, head]
    best, lo, hi = unc.max_interval(heads, unit_axis=0, over=(1,))
    assert best == pytest.approx(heads.mean(0).max()) and lo < best < hi
    # two nearly equal heads: the max of resampled means sits above either head's own mean on average
    one = unc.mean_interval(heads[:, 0], axis=0)
    assert lo >= one[1] - 1e-12
    curve = np.stack([heads, heads + 0.1])  # [checkpoint, unit, head]
    best2, lo2, hi2 = unc.max_interval(curve, unit_axis=1, over=(2,))
    assert best2.shape == (2,) and best2[1] == pytest.approx(best2[0] + 0.1) and np.all(lo2 < best2) and np.all(best2 < hi2)
    with pytest.raises(ValueError, match="unit_axis"):
        unc.max_interval(heads, unit_axis=0, over=(0,))


def test_joint_interval_keeps_the_pairing():
    rng = np.random.default_rng(2)
    clean = rng.normal(-0.5, 1.5, 1000)
    noise = rng.normal(0, 0.05, 1000)
    delta = -0.9 * clean + noise - noise.mean()  # each unit loses 90% of its own score: a tight ratio though noisy means
    est = unc.joint_interval(lambda d, c: d / -c, delta, clean)
    assert est.value == pytest.approx(delta.mean() / -clean.mean())
    assert est.lo < 0.9 < est.hi and est.hi - est.lo < 0.1 and "[" in est.text()
    assert est.half_width == pytest.approx((est.hi - est.lo) / 2)
    with pytest.raises(ValueError, match="same number of units"):
        unc.joint_interval(lambda a, b: a - b, np.zeros(3), np.zeros(4))


def test_errors():
    with pytest.raises(ValueError, match="at least one unit"):
        unc.bootstrap_weights(0)
    with pytest.raises(ValueError, match="NaN"):
        unc.resampled_means(np.array([1.0, np.nan]), 0)
    with pytest.raises(ValueError, match="level"):
        unc.interval(np.zeros((10, 2)), np.zeros(2), level=1.5)
