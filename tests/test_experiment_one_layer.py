"""The one-layer experiment: its claims' verdicts on hand-made numbers, its Result's JSON round trip, its section from a
hand-made Result (with readable circuit heatmaps), and a quick-mode smoke test on the quick zoo."""

from __future__ import annotations

import numpy as np
import pytest

from experiment_helpers import check_section, quick_zoo  # noqa: F401

from circuits.experiments import base
from circuits.experiments import one_layer as exp

FIGURES = {
    "path_expansion_losses", "path_expansion_heads", "ov_circuits", "qk_circuits", "ov_eigenvalues", "copying_scores",
    "attention_by_position", "repeated_tokens", "induction_scores",
}
CLAIMS = {"one_layer_beats_bigram", "one_layer_copying", "one_layer_no_induction"}


# ---- the verdicts -------------------------------------------------------------------------------
def test_beats_bigram_holds():
    assert exp.beats_bigram_holds(4.2, 5.3) is True
    assert exp.beats_bigram_holds(5.3, 5.3) is False
    assert exp.beats_bigram_holds(5.4, 5.3) is False
    assert exp.beats_bigram_holds(4.2, float("nan")) is None  # no zero-layer evaluation to compare with


@pytest.mark.parametrize("n_copying, n_heads, init_mean, holds", [
    (10, 12, 0.1, True),  # the paper: 10 of 12
    (6, 12, 0.1, False),  # half is not most
    (7, 12, 0.1, True),
    (10, 12, 0.3, False),  # initialisation already "copies" as much as the threshold
])
def test_copying_holds(n_copying, n_heads, init_mean, holds):
    assert exp.copying_holds(n_copying, n_heads, init_mean, 0.3) is holds


def test_shows_induction():
    assert exp.shows_induction(0.6, 1.5) is True
    assert exp.shows_induction(0.2, 0.21) is True
    assert exp.shows_induction(0.19, 1.5) is False
    assert exp.shows_induction(0.6, 0.2) is False


def test_no_induction_holds():
    assert exp.no_induction_holds(0.05, 0.6, 0.1, 1.5, 0.5) is True
    assert exp.no_induction_holds(0.35, 0.6, 0.1, 1.5, 0.5) is False  # a 1L head scores more than half the 2L's best
    assert exp.no_induction_holds(0.05, 0.6, 0.8, 1.5, 0.5) is False  # the 1L's loss drops more than half as much
    assert exp.no_induction_holds(0.03, 0.03, 0.34, 0.49, 0.5) is None  # the 2L shows no induction: untested


# ---- a hand-made result -------------------------------------------------------------------------
LAYOUT = "[BOS] + P validation tokens + R + R (T = 3, P drawn per sequence, 1..2 here)"


def hand_made(n_heads: int = 4, n_tokens: int = 6, positional: bool = True, quick: bool = False) -> exp.Result:
    rng = np.random.default_rng(1)
    heads = tuple(f"L0H{h}" for h in range(n_heads))
    tokens = tuple([" the", "the", "\n", " the", ",", "."][:n_tokens] + [f"tok{i}" for i in range(n_tokens - 6)])
    d_head, n_pos = 3, 5
    trigram = exp.SkipTrigram(source=" x", destination=" y", output=" x", qk=1.234, ov=2.345)
    return exp.Result(
        quick=quick, presets=("attn-only-1l", "attn-only-0l", "attn-only-2l"), data_labels=("stdlib corpus only",) * 2 + ("stdlib augmented",),
        heads=heads, d_head=d_head, n_windows=4, n_trigrams=2, copying_threshold=0.3, positional_threshold=0.5,
        induction_ratio=0.5, tokens=tokens, token_ids=tuple(range(10, 10 + n_tokens)),
        ov=rng.normal(size=(n_heads, n_tokens, n_tokens)), qk=rng.normal(size=(n_heads, n_tokens, n_tokens)),
        paths=exp.PathTerms(uniform_loss=5.7, direct_loss=5.4, full_loss=4.3, head_added=rng.random(n_heads), head_removed=rng.random(n_heads)),
        copying=exp.Copying(
            eig_re=rng.normal(size=(n_heads, d_head)), eig_im=rng.normal(size=(n_heads, d_head)), eig_init_re=rng.normal(size=(n_heads, d_head)),
            eig_init_im=np.zeros((n_heads, d_head)), scores=np.linspace(-0.2, 0.9, n_heads), scores_init=np.full(n_heads, 0.05),
            diag_top1=rng.random(n_heads), diag_top5=rng.random(n_heads),
        ),
        attention=exp.Attention(
            scheme="shortformer", n_positions=n_pos,
            patterns=np.tile(np.tril(np.ones((n_pos, n_pos))) / np.arange(1, n_pos + 1)[:, None], (n_heads, 1, 1)) if positional else np.zeros(0),
            previous_token=np.linspace(0.0, 0.9, n_heads), current_token=np.full(n_heads, 0.1), first_token=np.full(n_heads, 0.2),
        ),
        trigrams=tuple((trigram, exp.SkipTrigram(source="a", destination="b", output="c", qk=0.5, ov=0.1)) for _ in heads),
        trigram_copy_share=np.full(n_heads, 0.5), val_loss_1l=4.2, val_loss_0l=float("nan"),
        induction=exp.Induction(
            seq_len=3, layout=LAYOUT, probe_rule="R drawn uniformly from the 150 most frequent tokens", scores_1l=np.full(n_heads, 0.05),
            scores_2l=np.array([[0.0, 0.1], [0.7, 0.2]]), repeat_loss_1l=np.array([6.0, 5.9]), repeat_loss_2l=np.array([6.0, 4.0]),
            scores_1l_bos=np.full(n_heads, 0.06), scores_2l_bos=np.array([[0.0, 0.1], [0.8, 0.2]]), repeat_loss_1l_bos=np.array([6.0, 5.8]),
            repeat_loss_2l_bos=np.array([6.0, 3.5]), position_loss_1l=rng.random(6), position_loss_2l=rng.random(6),
        ),
    )


def test_result_round_trips_through_json():
    result = hand_made()
    back = exp.Result.from_json(result.to_json())
    assert back.to_json() == result.to_json()
    assert isinstance(back.trigrams[0][0], exp.SkipTrigram) and back.trigrams[0][0].qk == 1.234
    assert back.ov.shape == result.ov.shape and back.induction.scores_2l.shape == (2, 2)
    assert np.isnan(back.val_loss_0l)  # NaN is stored as null and comes back as NaN
    assert exp.Result.from_json(hand_made(positional=False).to_json()).attention.patterns.size == 0


def test_section_from_a_hand_made_result():
    section = base.build_section(exp, hand_made(quick=True))
    check_section(section, "one_layer", FIGURES | {"positional_patterns"}, CLAIMS)
    claims = {c.key: c for c in section.claims}
    assert claims["one_layer_beats_bigram"].holds is None  # no zero-layer loss
    assert claims["one_layer_copying"].holds is False and claims["one_layer_copying"].measured.startswith("2 of 4 heads > 0.3")
    assert claims["one_layer_no_induction"].holds is True
    assert claims["one_layer_no_induction"].measured.startswith(LAYOUT) and "Right after BOS: best score 1L 0.06 vs 2L 0.80" in claims["one_layer_no_induction"].measured
    assert claims["one_layer_beats_bigram"].models == ("attn-only-1l", "attn-only-0l") and claims["one_layer_beats_bigram"].data == "stdlib corpus only"
    assert claims["one_layer_no_induction"].models == ("attn-only-1l", "attn-only-2l")
    assert claims["one_layer_no_induction"].data == "stdlib corpus only; stdlib augmented" and claims["one_layer_no_induction"].value == 0.05
    assert claims["one_layer_copying"].value == 0.5 and "> 0.3" in claims["one_layer_copying"].statement
    positional = next(f for f in section.figures if f.key == "attention_by_position")
    assert "(previous + current > 0.5): L0H2, L0H3." in positional.caption
    assert section.tables[0].rows[0] == ["L0H0", " x …  y →  x", 1.23, 2.35, True]
    assert section.notes and "Quick mode" in section.notes[0]
    assert not base.build_section(exp, hand_made(quick=False)).notes
    keys = [f.key for f in base.build_section(exp, hand_made(positional=False)).figures]
    assert "positional_patterns" not in keys and set(keys) == FIGURES


@pytest.mark.parametrize("key", ["ov_circuits", "qk_circuits"])
def test_circuit_heatmaps_label_every_token_in_the_same_order_on_both_axes(key):
    result = hand_made(n_heads=12, n_tokens=30)  # the full run's sizes
    fig = next(f for f in exp.figures(result) if f.key == key).fig
    labels = list(fig.data[0].x)
    assert len(labels) == len(set(labels)) == 30  # " the" twice: told apart by the token id
    assert list(fig.data[0].y) == labels
    for axis in (fig.layout.xaxis, fig.layout.yaxis):
        assert list(axis.tickvals) == labels and list(axis.ticktext) == labels and list(axis.categoryarray) == labels
    assert fig.layout.yaxis.scaleanchor == "x"  # square cells: the diagonal runs corner to corner
    assert len(fig.data) == 12 and len(fig.layout.updatemenus[0].buttons) == 12


# ---- quick mode on the quick zoo ----------------------------------------------------------------
def test_one_layer_quick(quick_zoo):
    cfg = exp.Config.quick()
    result = exp.compute(cfg, quick_zoo)
    back = exp.Result.from_json(result.to_json())  # what the runner caches and rebuilds from
    assert back.to_json() == result.to_json()
    section = base.build_section(exp, back)
    check_section(section, "one_layer", FIGURES, CLAIMS)
    n_heads = len(back.heads)
    assert back.ov.shape == back.qk.shape == (n_heads, cfg.n_tokens, cfg.n_tokens)
    assert back.copying.eig_re.shape == (n_heads, back.d_head) and back.induction.scores_2l.shape[0] == 2
    p = back.paths
    assert p.full_loss < p.uniform_loss and len(p.head_added) == n_heads
    if back.attention.patterns.size:  # the quick 1L has a position table: rows of a causal softmax
        np.testing.assert_allclose(back.attention.patterns.sum(-1), 1.0, atol=1e-4)
