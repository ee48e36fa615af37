"""The toy-scale induction section: quick mode runs end to end; the claim logic reads the curves."""

from __future__ import annotations

from experiment_helpers import check_section, finite_json

from circuits.experiments import induction_synthetic as exp

CLAIMS = {"synthetic_smeared_one_layer", "synthetic_smeared_earlier", "synthetic_previous_token_ablation"}


def test_induction_synthetic_quick():
    cfg = exp.Config.quick()
    results = finite_json(exp.compute(cfg, None))
    assert set(results["curves"]) == {"1L", "1L smeared", "2L", "2L smeared"}
    for curve in results["curves"].values():
        assert curve["step"] == [20, 40, 60]
        assert all(0 <= score <= 1 for score in curve["induction"])
    assert results["ablation"]["prev_head"].startswith("L0H") and results["ablation"]["ind_head"].startswith("L1H")
    section = exp.build(results, cfg, None)
    check_section(section, "induction_synthetic", {"induction_synthetic_curves"}, CLAIMS)
    assert "Synthetic data, not the corpus" in section.intro


def _curves(**induction):
    return {label: {"step": [50, 100, 150], "induction": scores, "loss_first": [4.2] * 3, "loss_second": [4.0] * 3, "train_loss": [4.0] * 3}
            for label, scores in induction.items()}


def test_claims_follow_the_measurements():
    cfg = exp.Config()
    ablation = {"prev_head": "L0H1", "prev_score": 0.4, "ind_head": "L1H2", "ind_score": 0.6, "ablated": 0.02, "other_ablations_min": 0.55}
    formed = _curves(**{"1L": [0.05, 0.08, 0.09], "1L smeared": [0.1, 0.5, 0.6], "2L": [0.1, 0.1, 0.5], "2L smeared": [0.1, 0.5, 0.7]})
    claims = {c.key: c for c in exp.build({"curves": formed, "ablation": ablation}, cfg).claims}
    assert all(c.holds is True for c in claims.values())
    assert "2L smeared step 100, 2L step 150" in claims["synthetic_smeared_earlier"].measured
    never = _curves(**{"1L": [0.05] * 3, "1L smeared": [0.1] * 3, "2L": [0.1] * 3, "2L smeared": [0.1] * 3})
    claims = {c.key: c for c in exp.build({"curves": never, "ablation": {**ablation, "ablated": 0.5}}, cfg).claims}
    assert claims["synthetic_smeared_one_layer"].holds is False
    assert claims["synthetic_smeared_earlier"].holds is None and "untested" in claims["synthetic_smeared_earlier"].measured
    assert claims["synthetic_previous_token_ablation"].holds is False
    assert exp.onset(formed["2L"], 0.3) == 150 and exp.onset(never["2L"], 0.3) is None
