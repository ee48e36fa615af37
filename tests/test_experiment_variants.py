"""Smoke test of the positional-variants experiment on the quick zoo."""

from __future__ import annotations

from experiment_helpers import check_section, finite_json, quick_zoo  # noqa: F401

from circuits.experiments import variants as exp


def test_subsample_keeps_ends():
    items = list(range(30))
    picked = exp._subsample(items, 5)
    assert picked[0] == 0 and picked[-1] == 29 and len(picked) == 5
    assert exp._subsample(items[:3], 5) == items[:3]


def test_variants_quick(quick_zoo):
    cfg = exp.Config.quick()
    results = finite_json(exp.compute(cfg, quick_zoo))
    assert set(results["models"]) == set(cfg.presets)
    for name, m in results["models"].items():
        assert 0 <= m["max_induction"] <= 1 and m["curve_steps"][0] == 0
        assert m["induction_head"][0] >= 1
    assert len(results["models"][cfg.deep]["layer_max_prefix_matching"]) == 3
    section = exp.build(results, cfg, quick_zoo)
    check_section(section, "variants", {"variants_which", "variants_speed", "variants_mechanism", "variants_deep_layers"}, {"icl_where_heads_form"})
