"""Faults during training: kill -9 at seeded points then resume (bitwise), every architecture resumable,
divergence stops with a clear error and leaves only finite files, a resume that cannot proceed changes nothing.

The kills happen in forked children (see ``fault_helpers``): real processes, really killed.
"""

from __future__ import annotations

import json
import math
import random
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from circuits import train
from circuits.atomic import atomic_write_json, json_line, json_text
from circuits.training import checkpoint as ckpt
from circuits.training import loop as loop_module
from circuits.training import task as task_module
from circuits.training.loop import TrainingDivergedError

from fault_helpers import KILL_POINTS, assert_same_run, die_at_call, in_child, killed_at, metrics, needs_fork, snapshot, strict_json
from training_helpers import tiny_model_config, tiny_train_config, write_corpus

pytestmark = needs_fork

#: One tiny config per architecture family (the zoo's presets in miniature).
FAMILIES = {
    "0l": dict(n_layers=0),
    "attn-only-2l": dict(),
    "smeared": dict(n_layers=1, smear_key=True),
    "full": dict(attn_only=False, normalization="layernorm", use_bias=True, d_mlp=13),
    "gqa": dict(n_heads=4, n_kv_heads=2),
    "rotary": dict(positional="rotary", rotary_dim=4),
    "alibi": dict(positional="alibi"),
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def references(tmp_path_factory, corpus, cache):
    """Uninterrupted runs, trained once per configuration on first use."""
    root, done = tmp_path_factory.mktemp("references"), {}

    def get(family: str, **train_changes) -> Path:
        key = (family, tuple(sorted(train_changes.items())))
        if key not in done:
            done[key] = root / f"run{len(done)}"
            trainer(done[key], corpus, cache, family, **train_changes)(resume=False)
        return done[key]

    return get


def trainer(out: Path, corpus: Path, cache: Path, family: str = "attn-only-2l", **train_changes):
    def run(resume: bool = True):
        return train(tiny_model_config(**FAMILIES[family]), tiny_train_config(**train_changes), out_dir=out, corpus=corpus,
                     cache_dir=cache, progress=False, device="cpu", resume=resume)

    return run


# ---- kill -9, then resume -----------------------------------------------------------------
@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_architecture_resumes_bitwise_after_kill(tmp_path, corpus, cache, references, family):
    run = trainer(tmp_path / "run", corpus, cache, family)
    kill_step = random.Random(family).randint(3, 10)  # after a checkpoint with optimizer state (steps 1, 2, 4, 5, 8)
    assert killed_at("step", kill_step, run)
    run()
    assert_same_run(tmp_path / "run", references(family))


@pytest.mark.parametrize("seed", range(4))
def test_seeded_kills_then_resume_equal_the_uninterrupted_run(tmp_path, corpus, cache, references, seed):
    """Two or three kills at random points (a step, inside a checkpoint, between metrics lines, before the
    optimizer state of the previous checkpoint is pruned, during the resume's cleanup), each followed by a resume."""
    rng = random.Random(seed)
    run = trainer(tmp_path / "run", corpus, cache, eval_every=3)
    in_training = sorted(set(KILL_POINTS) - {"resume cleanup"})  # the first process is a new run: no cleanup to kill
    kills = [(point, rng.randint(1, 4)) for point in [rng.choice(in_training)] + rng.sample(sorted(KILL_POINTS), rng.randint(1, 2))]
    outcomes = [killed_at(point, n, run) for point, n in kills]
    assert outcomes[0], kills  # every first kill point is reached in a new run
    run()
    assert_same_run(tmp_path / "run", references("attn-only-2l", eval_every=3))


def test_a_kill_before_the_first_checkpoint_restarts_cleanly(tmp_path, corpus, cache, references):
    run = trainer(tmp_path / "run", corpus, cache)
    assert killed_at("checkpoint file", 1, run)  # inside the step-0 checkpoint: run.json written, no checkpoint yet
    assert (tmp_path / "run" / "run.json").is_file() and not ckpt.list_checkpoints(tmp_path / "run")
    run()
    assert_same_run(tmp_path / "run", references("attn-only-2l"))


def test_resume_after_the_final_checkpoint_marks_the_run_complete(tmp_path, corpus, cache, references):
    run = trainer(tmp_path / "run", corpus, cache)
    steps = tiny_train_config().checkpoint_steps
    assert killed_at("optimizer prune", len(steps), run)  # the final checkpoint is written, run.json not yet complete
    assert not json.loads((tmp_path / "run" / "run.json").read_text())["complete"]
    result = run()
    assert result.step == steps[-1]
    assert_same_run(tmp_path / "run", references("attn-only-2l"))


# ---- a resume that cannot proceed changes nothing; one that can starts from the newest usable checkpoint ----
def test_resume_without_any_optimizer_state_is_refused_and_changes_nothing(tmp_path, corpus, cache):
    out = tmp_path / "run"
    run = trainer(out, corpus, cache)
    assert killed_at("step", 7, run)
    newest = ckpt.list_checkpoints(out)[-1][1]
    (newest / ckpt.OPTIMIZER_FILE).write_bytes(b"truncated")  # a damaged newest checkpoint
    before = snapshot(out)
    with pytest.raises(ValueError, match=r"cannot resume .*none of its checkpoints .* readable optimizer state.*nothing was changed"):
        run()
    assert snapshot(out) == before
    shutil.rmtree(newest)  # the reproduction: delete the damaged checkpoint, so that none has optimizer state
    before = snapshot(out)
    with pytest.raises(ValueError, match="cannot resume"):
        run()
    assert snapshot(out) == before


def test_resume_skips_a_damaged_newest_checkpoint_when_an_older_one_has_optimizer_state(tmp_path, corpus, cache, references):
    out = tmp_path / "run"
    run = trainer(out, corpus, cache)

    def keep_every_optimizer_state_then_die():
        ckpt.prune_optimizer_states = lambda run_dir, keep: None
        die_at_call(task_module, "sample_windows", 7)
        run()

    assert in_child(keep_every_optimizer_state_then_die)
    newest = ckpt.list_checkpoints(out)[-1][1]
    assert newest.name == "step_000005"
    (newest / ckpt.OPTIMIZER_FILE).write_bytes(b"truncated")
    run()  # resumes from step 4, rewrites step 5
    assert_same_run(out, references("attn-only-2l"))


# ---- divergence -------------------------------------------------------------------------------
def assert_only_finite_json_and_weights(out: Path) -> None:
    for path in [out / "run.json", *out.rglob("config.json"), *out.rglob("training_state.json")]:
        strict_json(path.read_text())
    for line in (out / "metrics.jsonl").read_text().splitlines():
        strict_json(line)
    for _, folder in ckpt.list_checkpoints(out):
        for name in (ckpt.MODEL_FILE, ckpt.OPTIMIZER_FILE):
            if (folder / name).exists():
                assert all(torch.isfinite(t).all() for t in load_file(folder / name).values()), folder / name


@pytest.mark.parametrize("grad_clip", [1.0, 0.0])
def test_a_huge_learning_rate_stops_with_a_clear_error(tmp_path, corpus, cache, grad_clip):
    out = tmp_path / "run"
    with pytest.raises(TrainingDivergedError, match=r"training diverged at step \d+ of 12: .*lower learning rate \(--lr, now 1e\+30\)"):
        trainer(out, corpus, cache, lr=1e30, grad_clip=grad_clip)(resume=False)
    assert ckpt.list_checkpoints(out)  # the finite ones are kept
    assert json.loads((out / "run.json").read_text())["complete"] is False
    assert_only_finite_json_and_weights(out)


def test_the_first_non_finite_gradient_stops_training_before_it_is_applied(tmp_path, corpus, cache, monkeypatch):
    real_clip, calls = torch.nn.utils.clip_grad_norm_, []

    def nan_at_step_5(parameters, max_norm, *args, **kwargs):
        calls.append(1)
        norm = real_clip(parameters, max_norm, *args, **kwargs)
        return norm * math.nan if len(calls) == 5 else norm

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", nan_at_step_5)
    out = tmp_path / "run"
    with pytest.raises(TrainingDivergedError, match=r"at step 5 of 12: the loss was [\d.]+ and the gradient norm nan.*step_000004\) holds finite weights"):
        trainer(out, corpus, cache)(resume=False)
    assert [step for step, _ in ckpt.list_checkpoints(out)] == [0, 1, 2, 4]
    assert max(line["step"] for line in metrics(out)) == 4
    assert_only_finite_json_and_weights(out)


def test_json_writers_encode_non_finite_numbers_as_null(tmp_path):
    data = {"loss": math.nan, "by_pos": [1.0, math.inf, -math.inf], "nested": ({"x": 2.5},), "n": 3}
    atomic_write_json(tmp_path / "a.json", data)
    assert strict_json((tmp_path / "a.json").read_text()) == {"loss": None, "by_pos": [1.0, None, None], "nested": [{"x": 2.5}], "n": 3}
    assert strict_json(json_line(data)) == strict_json(json_text(data))
    assert json_text({"b": 1.5, "a": [1, 2]}) == json.dumps({"b": 1.5, "a": [1, 2]}, indent=2, sort_keys=True) + "\n"  # finite: unchanged


@pytest.mark.parametrize("eager", [True, False], ids=["cpu-check-every-step", "gpu-check-at-log-points"])
def test_both_divergence_checks_name_the_first_bad_step(tmp_path, corpus, cache, monkeypatch, eager):
    """On a GPU the guard keeps the first bad step on the device and checks at log points; forced here on CPU."""
    real_clip, calls = torch.nn.utils.clip_grad_norm_, []

    def inf_at_step_3(parameters, max_norm, *args, **kwargs):
        calls.append(1)
        norm = real_clip(parameters, max_norm, *args, **kwargs)
        return norm * math.inf if len(calls) == 3 else norm

    class Guard(loop_module.DivergenceGuard):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.eager = eager

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", inf_at_step_3)
    monkeypatch.setattr(loop_module, "DivergenceGuard", Guard)
    out = tmp_path / "run"
    with pytest.raises(TrainingDivergedError, match=r"at step 3 of 12: the loss was [\d.]+ and the gradient norm inf"):
        trainer(out, corpus, cache, log_every=3)(resume=False)
    assert [step for step, _ in ckpt.list_checkpoints(out)] == [0, 1, 2]
    assert max(line["step"] for line in metrics(out)) == 2
