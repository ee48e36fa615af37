"""The grokking section: its verdicts on hand-made numbers, its Result's JSON round trip, the task through circuits.train,
a quick run end to end, and (slow) the calibrated run."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from experiment_helpers import check_section, quick_zoo  # noqa: F401  (fixture)

from circuits.experiments import grokking as exp
from circuits.experiments import grokking_claims as verdicts
from circuits.experiments.base import build_section
from circuits.training.modular import ModularAddition, ModularAdditionTask, grokking_configs, last_position_logits, train_modular

CLAIMS = {"grokking_phases", "grokking_progress_measures", "grokking_sparse_fourier", "grokking_needs_weight_decay"}
FIGURES = {"grokking_loss", "grokking_progress", "grokking_embedding_fourier", "grokking_periodicity", "grokking_weight_decay"}


def round_trip(result: exp.Result) -> exp.Result:
    """``result`` as the runner's cache gives it back (strict JSON: no NaN), checked to be stable."""
    data = json.loads(json.dumps(result.to_json(), allow_nan=False))
    back = exp.Result.from_json(data)
    assert back.to_json() == data
    return back


# ---- verdicts ----------------------------------------------------------------------------------
@pytest.mark.parametrize(("memorised", "grokked", "at_memorised", "holds"), [
    (100, 350, 0.3, True),
    (100, 200, 0.3, True),  # exactly the delay factor
    (100, 150, 0.3, False),  # generalised too soon after memorising
    (100, 350, 0.6, False),  # already generalising when it memorised
    (100, None, 0.3, False),  # never grokked
    (None, None, None, False),  # never memorised
])
def test_delayed_generalisation_verdict(memorised, grokked, at_memorised, holds):
    assert verdicts.delayed_generalisation_holds(memorised, grokked, at_memorised, 2.0) is holds


@pytest.mark.parametrize(("restricted", "excluded", "cleanup", "holds"), [
    (150, 120, 220, True), (150, 230, 220, False), (230, 120, 220, False), (220, 120, 220, False), (None, 120, 220, False),
    (150, 120, None, False),
])
def test_measures_lead_verdict(restricted, excluded, cleanup, holds):
    assert verdicts.measures_lead_holds(restricted, excluded, cleanup) is holds


@pytest.mark.parametrize(("n_keys", "share", "holds"), [(5, 0.8, True), (3, 0.5, True), (2, 0.9, False), (7, 0.9, False), (4, 0.4, False)])
def test_sparse_fourier_verdict(n_keys, share, holds):
    assert verdicts.sparse_fourier_holds(n_keys, share, (3, 6), 0.5) is holds


@pytest.mark.parametrize(("grokked", "train", "test", "holds"), [
    (True, 1.0, 0.22, True), (True, 1.0, 0.995, False), (True, 0.9, 0.2, False), (False, 1.0, 0.2, None),
])
def test_weight_decay_verdict(grokked, train, test, holds):
    assert verdicts.weight_decay_needed_holds(grokked, train, test, 0.99) is holds


# ---- a hand-made result ------------------------------------------------------------------------
def curve(steps, test_accuracy, train_accuracy=None) -> exp.Curve:
    n = len(steps)
    return exp.Curve(step=tuple(steps), train_loss=np.linspace(4, 0.01, n), test_loss=np.linspace(4, 0.05, n),
                     train_accuracy=np.array(train_accuracy if train_accuracy is not None else [1.0] * n, dtype=float),
                     test_accuracy=np.array(test_accuracy, dtype=float))


def hand_made(**overrides) -> exp.Result:
    steps = (0, 100, 200, 300, 400)
    progress = exp.Progress(step=steps, **{f: np.linspace(1.0, 0.1, 5) for f in (
        "train_loss", "test_loss", "train_accuracy", "test_accuracy", "restricted_loss", "excluded_loss", "gini_embed", "gini_neuron_logits",
        "weight_norm")})
    fields = dict(
        quick=False, p=7, train_fraction=0.3, n_train=15, d_model=8, n_heads=2, d_mlp=16, lr=1e-2, weight_decay=1.0, epochs=400,
        curve=curve(steps, [0.0, 0.3, 0.6, 0.995, 1.0], [0.0, 1.0, 1.0, 1.0, 1.0]), progress=progress, memorised=100, cleanup_start=220,
        cleanup_end=320, grokked=300, restricted_onset=150, excluded_onset=120, test_accuracy_at_memorised=0.3, key_freqs=(1, 3),
        embed_power=np.array([5.0, 0.1, 4.0]), embed_power_init=np.ones(3), key_share=0.98, neuron_freq=np.array([1.0, 3.0, 0.0]),
        neuron_fraction=np.array([0.9, 0.95, np.nan]), logit_alpha=np.array([2.0, 1.5]), logit_explained=0.9, attention_a=np.ones((2, 7)) / 3,
        neuron_examples=np.zeros((2, 7)), neuron_example_freqs=(1, 3), neuron_example_b=(0, 2), control=curve((0, 450, 900), [0.0, 0.2, 0.21]), control_epochs=900,
        control_multiple=3.0, accuracy_threshold=0.99, delay_factor=2.0, key_range=(3, 6), min_key_share=0.5,
    )
    return exp.Result(**{**fields, **overrides})


def test_result_round_trips_and_builds_a_section():
    result = round_trip(hand_made())
    assert math.isnan(result.neuron_fraction[2]) and result.key_freqs == (1, 3) and result.memorised == 100
    section = build_section(exp, result)
    check_section(section, "grokking", FIGURES, CLAIMS)
    held = {c.key: c.holds for c in section.claims}
    assert held == {"grokking_phases": True, "grokking_progress_measures": True, "grokking_sparse_fourier": False,  # 2 keys < 3
                    "grokking_needs_weight_decay": True}
    control = next(c for c in section.claims if c.key == "grokking_needs_weight_decay")
    assert "for 900 epochs (3x 300)" in control.measured and "40k" in control.measured


def test_section_of_a_run_that_never_grokked():
    result = round_trip(hand_made(grokked=None, cleanup_start=None, cleanup_end=None, curve=curve((0, 200, 400), [0.0, 0.1, 0.2])))
    section = build_section(exp, result)
    held = {c.key: c.holds for c in section.claims}
    assert held["grokking_phases"] is False and held["grokking_progress_measures"] is False and held["grokking_needs_weight_decay"] is None
    assert "did not grok" in next(c for c in section.claims if c.key == "grokking_needs_weight_decay").measured


# ---- the task through circuits.train -----------------------------------------------------------
def test_task_trains_full_batch_and_a_complete_run_is_reused(tmp_path):
    data = ModularAddition(p=11, train_fraction=0.5, seed=1)
    model_cfg, train_cfg = grokking_configs(data, d_model=16, n_heads=2, d_mlp=32, lr=1e-2, epochs=12, n_checkpoints=3, eval_every=4)
    folder = train_modular(tmp_path, model_cfg, train_cfg, data)
    records = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in records if r["kind"] == "eval"]
    assert {"val_loss", "train_loss", "test_loss", "train_accuracy", "test_accuracy"} <= set(evals[-1])
    assert evals[-1]["val_loss"] == evals[-1]["test_loss"]
    assert exp.read_curve(folder).step[-1] == 12
    assert train_modular(tmp_path, model_cfg, train_cfg, data) == folder  # complete: reused, not retrained
    with pytest.raises(ValueError, match="full-batch: set TrainConfig.batch_size=60"):
        from circuits import train

        train(model_cfg, train_cfg.replace(batch_size=8), out_dir=tmp_path / "bad", task=ModularAdditionTask(data))


def test_task_refuses_models_that_cannot_read_the_data():
    task = ModularAdditionTask(p=11, train_fraction=0.5)
    model_cfg, _ = grokking_configs(ModularAddition(p=13, train_fraction=0.5))
    with pytest.raises(ValueError, match="needs d_vocab=12"):
        task.check_model(model_cfg)
    with pytest.raises(ValueError, match="not both"):
        ModularAdditionTask(ModularAddition(p=11), p=11)


def test_task_loss_is_the_last_position_cross_entropy():
    data = ModularAddition(p=11, train_fraction=0.5)
    task = ModularAdditionTask(data)
    model_cfg, train_cfg = grokking_configs(data, d_model=16, n_heads=2, d_mlp=32)
    from circuits import Transformer

    model = Transformer(model_cfg)
    tokens, labels = task.batch(0, train_cfg)
    expected = torch.nn.functional.cross_entropy(model(tokens)[:, -1], labels)
    torch.testing.assert_close(task.loss(model, (tokens, labels)), expected)
    metrics = task.evaluate(model, torch.device("cpu"))
    assert isinstance(metrics["val_loss"], float) and 0 <= metrics["test_accuracy"] <= 1
    torch.testing.assert_close(last_position_logits(model, tokens), model(tokens)[:, -1])


# ---- runs ----------------------------------------------------------------------------------------
def test_grokking_quick(quick_zoo):  # noqa: F811
    result = round_trip(exp.compute(exp.Config.quick(), quick_zoo))
    assert result.quick and result.p == 23 and len(result.embed_power) == 11 and result.curve.step[-1] == 150
    assert result.progress.step[0] == 0 and len(result.progress.step) >= 10 and result.control_epochs >= 1
    assert 1 <= len(result.key_freqs) <= 10 and 0 < result.key_share <= 1
    section = build_section(exp, result)
    check_section(section, "grokking", FIGURES, CLAIMS)
    assert any("Quick mode" in note for note in section.notes)


@pytest.mark.slow
def test_grokking_calibrated_run_groks(tmp_path):
    from circuits.training.zoo import Zoo, ZooSettings

    result = exp.compute(exp.Config(), Zoo(tmp_path, ZooSettings(quick=False), progress=False))
    assert result.curve.test_accuracy[-1] >= 0.99 and result.grokked is not None
    assert result.key_share > 0.5  # the key frequencies carry most of the embedding's power
    assert 3 <= len(result.key_freqs) <= 6
