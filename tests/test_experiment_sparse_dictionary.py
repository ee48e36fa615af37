"""The sparse_dictionary experiment: its claim's verdict on hand-made numbers, its Result's JSON round trip, its section from a
hand-made Result, and a quick-mode run on the quick zoo."""

from __future__ import annotations

import numpy as np
import pytest

from experiment_helpers import check_section, quick_zoo  # noqa: F401

from circuits.experiments import base
from circuits.experiments import sparse_dictionary as exp

FIGURES = {"planted_recovery", "planted_training", "model_training", "feature_density", "spliced_loss", "feature_histograms"}
CLAIMS = {"sae_recovers_planted_features", "sae_recovers_toy_model_features"}


# ---- the verdict --------------------------------------------------------------------------------
@pytest.mark.parametrize("mmcs, dead, holds", [
    ([0.99, 0.97], [0.0, 0.01], True),
    ([0.99, 0.94], [0.0, 0.0], False),  # one SAE misses features
    ([0.99, 0.99], [0.0, 0.02], False),  # too many dead latents
    ([0.95], [0.0], True),
])
def test_recovery_verdict(mmcs, dead, holds):
    assert exp.recovery_holds(mmcs, dead, 0.95, 0.01) is holds


def test_recovery_verdict_is_untested_without_numbers():
    assert exp.recovery_holds([], [], 0.95, 0.01) is None
    assert exp.recovery_holds([float("nan")], [0.0], 0.95, 0.01) is None


# ---- a hand-made result -------------------------------------------------------------------------
def _curve() -> exp.Curve:
    return exp.Curve(steps=(0, 10, 20), mse=np.array([5.0, 1.0, 0.5]), l0=np.array([30.0, 8.0, 4.0]), dead_fraction=np.array([0.0, 0.0, 0.01]))


def hand_made(quick: bool = False, mmcs: float = 0.99) -> exp.Result:
    planted = tuple(
        exp.PlantedResult(source=src, architecture=a, n_features=3, d_in=2, max_cosines=np.array([0.999, 0.99, 0.98]), mean_max_cosine=mmcs, dead_fraction=0.0, l0=2.5,
                          fvu=0.1, fvu_about_zero=0.02, n_resampled=3, curve=_curve())
        for src in ("synthetic", "toy model") for a in ("standard", "topk")
    )
    page = exp.Page(
        feature=7, firing_frequency=0.02, max_activation=3.1, contexts=("a[[b]]c", "x[[b]]"), context_activations=np.array([3.1, 2.0]),
        histogram_edges=np.logspace(-3, 2, 41), histogram_counts=np.arange(40, dtype=float), promoted=(("b", 1.2), ("c", 0.5)), suppressed=(("z", -0.9),),
    )
    model_sae = exp.ModelSAEResult(
        preset="attn-only-1l", hook_name="blocks.0.hook_resid_post", data_label="stdlib corpus", d_in=4, d_sae=8, architecture="topk", k=2, l1_coefficient=1.0,
        n_train_activations=1000, train_seconds=2.0, activations_per_second=500.0, n_eval_activations=300, l0=5.0, fvu=0.3,
        fvu_about_zero=0.01, dead_fraction=0.125, dense_fraction=0.25, dense_threshold=0.1,
        log10_frequency=np.array([-1.0, -2.0, np.nan, -0.5, -3.0, -1.5, -2.5, -0.2]), ce_clean=3.0, ce_spliced=3.2, ce_zero_ablated=5.0,
        ce_recovered=0.9, curve=_curve(), pages=(page,),
    )
    return exp.Result(quick=quick, n_features=3, d_in=2, p=0.05, offset_norm=2.0, min_mean_max_cosine=0.95, max_dead_fraction=0.01,
                      planted=planted, model_sae=model_sae, seconds=12.0)


def test_result_round_trips_through_json():
    result = hand_made()
    back = exp.Result.from_json(result.to_json())
    assert back.to_json() == result.to_json()
    assert isinstance(back.planted[0], exp.PlantedResult) and isinstance(back.model_sae.pages[0], exp.Page)
    assert back.model_sae.pages[0].promoted == (("b", 1.2), ("c", 0.5))
    assert np.isnan(back.model_sae.log10_frequency[2])


def test_section_from_a_hand_made_result():
    section = base.build_section(exp, hand_made(quick=True))
    check_section(section, "sparse_dictionary", FIGURES, CLAIMS)
    claim = section.claims[0]
    assert claim.holds is True and "mean max cosine 0.990" in claim.measured and claim.value == pytest.approx(0.99)
    assert section.claims[1].holds is True and "toy model, TopK" in section.claims[1].measured
    assert [c.holds for c in base.build_section(exp, hand_made(mmcs=0.9)).claims] == [False, False]
    assert "Quick mode" in section.notes[-1] and "a factor 30.0" in section.notes[0]
    pages = next(t for t in section.tables if t.key == "feature_pages")
    assert pages.rows[0][0] == 7 and "a[[b]]c (3.10)" in pages.rows[0][3] and pages.rows[0][4] == "b +1.20, c +0.50"


# ---- quick mode on the quick zoo ----------------------------------------------------------------
def test_sparse_dictionary_quick(quick_zoo):
    result = exp.compute(exp.Config.quick(), quick_zoo)
    back = exp.Result.from_json(result.to_json())  # what the runner caches and rebuilds from
    assert back.to_json() == result.to_json()
    section = base.build_section(exp, back)
    check_section(section, "sparse_dictionary", FIGURES, CLAIMS)
    assert section.claims[0].holds is True  # the planted features are recovered even in quick mode
    assert section.claims[1].holds is not None  # the toy model's: tested (quick mode is too short to promise it holds)
    m = back.model_sae
    assert 0 < m.l0 < m.d_sae and m.fvu_about_zero < m.fvu < 1.0
    assert m.ce_clean <= m.ce_spliced < m.ce_zero_ablated and 0 < m.ce_recovered <= 1
    assert len(m.pages) == exp.Config.quick().n_pages and all("[[" in c for p in m.pages for c in p.contexts)
