"""Smoke test of the two-layer experiment on the quick zoo: compute, JSON round trip, build."""

from __future__ import annotations

from experiment_helpers import check_section, finite_json, quick_zoo  # noqa: F401

from circuits.experiments import two_layer as exp

FIGURES = {
    "two_layer_head_scores", "two_layer_patterns", "two_layer_composition", "two_layer_composition_baseline", "two_layer_eigen_corner",
    "two_layer_ablation", "two_layer_ov_accuracy", "two_layer_term_importance", "two_layer_repeated_loss",
}
CLAIMS = {"fw_2l_previous_token_head", "fw_2l_induction_head", "fw_2l_k_composition", "fw_2l_eigen_corner", "fw_2l_ablation",
          "fw_2l_ov_accuracy", "fw_2l_term_importance"}


def test_two_layer_quick(quick_zoo):
    cfg = exp.Config.quick()
    results = exp.compute(cfg, quick_zoo)
    back = finite_json(results)  # strict JSON (impossible pairs, e.g. the QK corner of layer 0, are null)
    assert back["n_layers"] == 2
    section = exp.build(back, cfg, quick_zoo)  # built from the JSON round trip, as the report's cache does
    check_section(section, "two_layer", FIGURES, CLAIMS)
    # heads and scores are consistent with the results
    il, ih = results["induction_head"]
    assert il >= 1 and results["induction"][il][ih] == max(max(row) for row in results["induction"][1:])
    ablated = results["ablation"]["L{}H{}".format(*results["previous_token_head"])]
    assert len(ablated) == 2 and len(ablated[0]) == results["n_heads"]
    assert 0 <= results["summed_accuracy"]["top1"] <= 1
    assert len(results["term_importance"]["marginal_by_order"]) == 3
