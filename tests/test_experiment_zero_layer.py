"""The zero-layer experiment: its claim's verdict on hand-made numbers, its Result's JSON round trip, its section from a
hand-made Result, and a quick-mode smoke test on the quick zoo."""

from __future__ import annotations

import math

import numpy as np
import pytest

from experiment_helpers import check_section, quick_zoo  # noqa: F401

from circuits.experiments import base
from circuits.experiments import zero_layer as exp

FIGURES = {"losses", "training", "bigram_heatmaps", "kl_by_frequency"}
CLAIMS = {"zero_layer_bigram"}


# ---- the verdict --------------------------------------------------------------------------------
@pytest.mark.parametrize("gap, threshold, holds", [(0.9, 0.75, True), (0.75, 0.75, True), (0.5, 0.75, False), (-0.7, 0.75, False)])
def test_bigram_claim_holds_when_the_model_closes_enough_of_the_gap(gap, threshold, holds):
    assert exp.bigram_claim_holds(gap, threshold) is holds


def test_bigram_claim_is_untested_without_a_gap():
    assert exp.bigram_claim_holds(float("nan"), 0.75) is None


# ---- a hand-made result -------------------------------------------------------------------------
def hand_made(quick: bool = False, n: int = 5) -> exp.Result:
    rng = np.random.default_rng(0)
    tokens = tuple([" the", "the", "\n", ",", " the"][:n] + [f"t{i}" for i in range(n - 5)])
    losses = exp.Losses(
        n_bigrams=1000, n_val_bigrams=300, uniform=math.log(50), unigram_entropy=3.0, conditional_entropy=2.0, model_loss=2.2, kl=0.2,
        gap_closed=0.8, val_conditional_entropy=1.9, val_model_loss=2.3, val_smoothed_bigram=2.5, val_unigram_cross_entropy=3.1,
        top1_agreement=0.6,
    )
    row = exp.TopNext(token=" the", share=0.1, model_top=(("a", 0.2), ("b", 0.1)), corpus_top=(("a", 0.3), ("c", 0.1)), kl=0.12, top1_agrees=True)
    return exp.Result(
        quick=quick, preset="attn-only-0l", data_label="stdlib corpus only", d_vocab=50, d_model=16, top_k=2, min_gap_closed=0.75, losses=losses,
        heat_tokens=tokens, heat_ids=tuple(range(n)), heat_corpus=-rng.random((n, n)) * 12, heat_model=-rng.random((n, n)) * 12,
        table=(row, exp.TopNext(token="\n", share=0.05, model_top=(("x", 0.5),), corpus_top=(("y", 0.5),), kl=float("nan"), top1_agrees=False)),
        scatter_tokens=tokens, scatter_share=rng.random(n), scatter_kl=rng.random(n),
        curves=exp.Curves(steps=(0, 10, 20), train_loss=np.array([4.0, 3.0, 2.5]), eval_steps=(20,), val_loss=np.array([2.6])),
    )


def test_result_round_trips_through_json():
    result = hand_made()
    back = exp.Result.from_json(result.to_json())
    assert back.to_json() == result.to_json()
    assert isinstance(back.losses, exp.Losses) and isinstance(back.table[0], exp.TopNext) and isinstance(back.curves, exp.Curves)
    assert back.heat_ids == result.heat_ids and all(isinstance(i, int) for i in back.heat_ids)
    assert back.table[0].model_top == (("a", 0.2), ("b", 0.1))
    assert math.isnan(back.table[1].kl)  # NaN is stored as null and comes back as NaN
    np.testing.assert_allclose(back.heat_corpus, result.heat_corpus, rtol=1e-5)  # 6 significant digits


def test_section_from_a_hand_made_result():
    result = hand_made(quick=True)
    section = base.build_section(exp, result)
    check_section(section, "zero_layer", FIGURES, CLAIMS)
    assert section.claims[0].holds is True and "closes 80%" in section.claims[0].measured
    assert section.claims[0].value == pytest.approx(0.8, abs=0.01) and section.claims[0].models == ("attn-only-0l",)
    assert section.claims[0].data == "stdlib corpus only"
    assert section.tables[0].columns[2] == "model top-2" and section.tables[0].rows[0][2] == "a (0.20), b (0.10)"
    assert len(section.notes) == 2 and "Quick mode" in section.notes[1]
    assert len(base.build_section(exp, hand_made(quick=False)).notes) == 1
    training = next(f for f in section.figures if f.key == "training").fig
    assert [t.name for t in training.data] == ["train loss", "validation loss"]


def test_bigram_heatmaps_label_every_token_in_the_same_order_on_both_axes():
    result = hand_made(n=30)
    fig = next(f for f in exp.figures(result) if f.key == "bigram_heatmaps").fig
    labels = list(fig.data[0].x)
    assert len(labels) == len(set(labels)) == 30  # " the" twice: told apart by the token id
    assert list(fig.layout.xaxis.tickvals) == labels == list(fig.layout.yaxis.tickvals) == list(fig.data[0].y)
    assert list(fig.layout.xaxis.categoryarray) == labels == list(fig.layout.yaxis.categoryarray)


# ---- quick mode on the quick zoo ----------------------------------------------------------------
def test_zero_layer_quick(quick_zoo):
    cfg = exp.Config.quick()
    result = exp.compute(cfg, quick_zoo)
    back = exp.Result.from_json(result.to_json())  # what the runner caches and rebuilds from
    assert back.to_json() == result.to_json()
    section = base.build_section(exp, back)
    check_section(section, "zero_layer", FIGURES, CLAIMS)
    r = back.losses
    assert r.model_loss == pytest.approx(r.conditional_entropy + r.kl, abs=1e-4)  # loss = H(next | cur) + KL
    assert r.conditional_entropy <= r.unigram_entropy <= r.uniform + 1e-9
    assert len(back.heat_tokens) == cfg.n_heatmap and back.heat_corpus.shape == back.heat_model.shape == (cfg.n_heatmap, cfg.n_heatmap)
    assert len(back.table) == cfg.n_table and back.quick
