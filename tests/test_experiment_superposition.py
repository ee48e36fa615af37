"""The superposition experiment: its verdicts on hand-made numbers (holding and failing), its section from a hand-made
Result, the JSON round trip, and quick mode (trains its own toy models in seconds)."""

from __future__ import annotations

import numpy as np
import pytest

from experiment_helpers import check_section, quick_zoo  # noqa: F401

from circuits.experiments import base
from circuits.experiments import superposition as exp
from circuits.experiments import superposition_claims as sc

FIGURES = {"pentagon", "phase_diagram", "dimensionality"}
CLAIMS = {"superposition_dense", "superposition_pentagon", "superposition_phase_diagram", "superposition_sticky"}


def polygon(k: int, norm: float = 1.0) -> np.ndarray:
    angles = np.deg2rad(5.0 + 360.0 * np.arange(k) / k)
    return norm * np.stack([np.cos(angles), np.sin(angles)])


# ---- verdicts -----------------------------------------------------------------------------------
@pytest.mark.parametrize("norms, cos, holds", [
    ([1.0, 0.98, 0.1, 0.0, 0.0], 0.02, True),
    ([1.0, 0.98, 0.1, 0.0, 0.0], 0.3, False),  # not orthogonal
    ([1.0, 0.98, 0.7, 0.0, 0.0], 0.02, False),  # a third feature represented
    ([1.0, 0.0, 0.9, 0.0, 0.0], 0.02, False),  # not the 2 most important
])
def test_dense_claim(norms, cos, holds):
    assert sc.dense_claim_holds(norms, cos, 2, 0.5, 0.1) is holds


def test_pentagon_claim_on_hand_built_W():
    W = polygon(5, 1.1)
    assert sc.pentagon_holds(np.linalg.norm(W, axis=0), sc.pentagon_gaps(W, 0.5), 0.5, 10.0) is True
    square = np.concatenate([polygon(4), np.zeros((2, 1))], 1)  # 4 features as a square, the fifth dropped
    assert sc.pentagon_holds(np.linalg.norm(square, axis=0), sc.pentagon_gaps(square, 0.5), 0.5, 10.0) is False
    skewed = polygon(5)
    skewed[:, 0] = [np.cos(np.deg2rad(20)), np.sin(np.deg2rad(20))]  # one vertex moved 15 degrees
    assert sc.pentagon_holds(np.ones(5), sc.pentagon_gaps(skewed, 0.5), 0.5, 10.0) is False
    assert sc.pentagon_holds(np.ones(5), sc.pentagon_gaps(skewed, 0.5), 0.5, 20.0) is True


def test_phase_scores_and_verdict():
    density = np.array([1.0, 0.1, 0.01])
    importance = np.array([0.1, 0.5, 1.0, 2.0, 10.0])
    paper = np.array([[0, 0, 1, 1, 1], [0, 2, 2, 2, 1], [2, 2, 2, 2, 2]])  # [density, importance]
    dense, sparse, n = sc.phase_scores(paper, density, importance, 0.03)
    assert (dense, sparse, n) == (1.0, 1.0, 3)
    assert sc.phase_diagram_holds(dense, sparse, n, 0.8) is True
    flipped = paper[:, ::-1]  # dedicated where less important: the wrong arrangement
    assert sc.phase_diagram_holds(*sc.phase_scores(flipped, density, importance, 0.03), 0.8) is False
    no_superposition = np.where(paper == 2, 1, paper)
    assert sc.phase_diagram_holds(*sc.phase_scores(no_superposition, density, importance, 0.03), 0.8) is False
    assert sc.phase_diagram_holds(float("nan"), 1.0, 3, 0.8) is None


@pytest.mark.parametrize("share, n, holds", [(0.6, 50, True), (0.5, 50, True), (0.3, 50, False), (0.9, 5, None)])
def test_sticky_claim(share, n, holds):
    assert sc.sticky_holds(share, 0.25, 2.0, n) is holds


# ---- a hand-made result -------------------------------------------------------------------------
def hand_made(quick: bool = False) -> exp.Result:
    dense = np.concatenate([np.eye(2), np.zeros((2, 3))], 1)
    pentagon_W = np.stack([dense, polygon(5, 1.1)])
    density, importance = np.array([1.0, 0.1, 0.01]), np.array([0.1, 1.0, 10.0])
    phase = np.array([[0, 1, 1], [0, 2, 2], [2, 2, 2]], dtype=float)
    dims_W = np.stack([np.eye(4), np.array([[1, -1, 0, 0], [0, 0, 1, -1.0]]).repeat(2, 0) / np.sqrt(2)])
    from circuits.analysis.superposition import dimensions_per_feature, feature_dimensionality, feature_norms

    return exp.Result(
        quick=quick, seed=0, steps=100, pentagon_steps=100, replicas=2, phase_replicas=3, pentagon_sparsities=np.array([0.0, 0.99]), importance=0.9 ** np.arange(5.0),
        pentagon_W=pentagon_W, pentagon_loss=np.array([0.2, 0.001]), phase_density=density, phase_importance=importance,
        phase_W=np.zeros((3, 3, 2)), phase=phase, dims_features=4, dims_hidden=4, dims_density=np.array([1.0, 0.1]),
        dims_D=feature_dimensionality(dims_W), dims_norm=feature_norms(dims_W), dims_per_feature=dimensions_per_feature(dims_W),
        norm_threshold=0.5, orthogonal_max_cos=0.1, pentagon_tolerance_deg=10.0, superposition_threshold=0.5, phase_agreement=0.8,
        phase_sparse_density=0.03, sticky_tolerance=0.025, sticky_ratio=2.0,
    )


def test_section_from_a_hand_made_result():
    result = hand_made(quick=True)
    back = exp.Result.from_json(result.to_json())
    assert back.to_json() == result.to_json()
    section = base.build_section(exp, back)
    check_section(section, "superposition", FIGURES, CLAIMS)
    holds = {c.key: c.holds for c in section.claims}
    assert holds["superposition_dense"] is True and holds["superposition_pentagon"] is True
    assert holds["superposition_phase_diagram"] is True
    assert holds["superposition_sticky"] is None  # 8 represented features: too few to test
    assert "Quick mode" in section.notes[-1] and len(base.build_section(exp, hand_made(False)).notes) == len(section.notes) - 1
    assert section.tables[0].rows[1][4] == 5


def test_config_is_in_the_experiment_list():
    from circuits.experiments import EXPERIMENTS, load

    assert "superposition" in EXPERIMENTS and load("superposition") is exp


# ---- quick mode ---------------------------------------------------------------------------------
def test_superposition_quick(quick_zoo):
    cfg = exp.Config.quick()
    result = exp.compute(cfg, quick_zoo)
    back = exp.Result.from_json(result.to_json())
    assert back.to_json() == result.to_json()
    check_section(base.build_section(exp, back), "superposition", FIGURES, CLAIMS)
    assert back.quick and back.pentagon_W.shape == (3, 2, 5) and back.phase.shape == (4, 5)
    assert back.dims_D.shape == (4, cfg.dims_features) and ((back.dims_D >= 0) & (back.dims_D <= 1 + 1e-9)).all()
    again = exp.compute(cfg, quick_zoo)  # deterministic
    np.testing.assert_array_equal(again.pentagon_W, result.pentagon_W)
    np.testing.assert_array_equal(again.phase, result.phase)
