"""The training loop: schedule, optimizer, metrics, determinism, resume after a kill, bad output folders."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from circuits import TrainConfig, load, train
from circuits.training.checkpoint import OPTIMIZER_FILE, list_checkpoints
from circuits.training.config import checkpoint_steps
from circuits.training.loop import lr_at, make_optimizer

from training_helpers import state_dicts_equal, tiny_model_config, tiny_train_config, write_corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


def run(out: Path, corpus: Path, cache: Path, model_cfg=None, train_cfg=None, **kwargs):
    kwargs.setdefault("device", "cpu")
    return train(model_cfg or tiny_model_config(), train_cfg or tiny_train_config(), out_dir=out, corpus=corpus, cache_dir=cache, progress=False, **kwargs)


# ---- schedule and config ------------------------------------------------------------------
def test_lr_schedule_warmup_then_cosine():
    cfg = TrainConfig(steps=110, batch_size=1, lr=1.0, warmup_steps=10, min_lr_ratio=0.1)
    assert lr_at(0, cfg) == pytest.approx(0.1)
    assert lr_at(9, cfg) == pytest.approx(1.0)
    assert lr_at(10, cfg) == pytest.approx(1.0)
    assert lr_at(60, cfg) == pytest.approx(0.1 + 0.9 * 0.5)  # half way through the cosine
    assert lr_at(110, cfg) == pytest.approx(0.1)
    values = [lr_at(step, cfg) for step in range(10, 110)]
    assert all(a >= b for a, b in zip(values, values[1:]))


def test_checkpoint_steps_are_log_and_linear_spaced():
    steps = checkpoint_steps(1000, n_log=24, n_linear=40)
    assert steps[0] == 0 and steps[-1] == 1000 and steps == sorted(set(steps))
    assert len(steps) >= 30
    assert {1, 2, 3, 25, 500, 975}.issubset(steps)
    gaps = [b - a for a, b in zip(steps, steps[1:])]
    assert max(gaps) <= 25  # dense through the middle of training
    assert checkpoint_steps(5, 0, 0) == [0, 5]


def test_train_config_validates_and_round_trips():
    cfg = TrainConfig(steps=10, batch_size=2, betas=(0.8, 0.95), tokenizer_train_chars=1000)
    assert TrainConfig.from_json(cfg.to_json()) == cfg
    for bad, match in [
        (dict(steps=0), "steps=0 must be >= 1"),
        (dict(lr=-1.0), "lr=-1.0 must be a positive"),
        (dict(val_fraction=0.0), "val_fraction"),
        (dict(repeat_fraction=1.5), "repeat_fraction"),
        (dict(betas=(0.9, 1.0)), "betas"),
        (dict(warmup_steps=20), "warmup_steps=20 exceeds steps=10"),
        (dict(batch_size=2.5), "batch_size must be an int"),
    ]:
        with pytest.raises(ValueError, match=match):
            TrainConfig(**{**dict(steps=10, batch_size=2), **bad})
    with pytest.raises(ValueError, match="unknown fields"):
        TrainConfig.from_dict({"steps": 1, "batch_size": 1, "learning_rate": 1.0})


def test_weight_decay_only_on_matrices():
    from circuits import Transformer

    model = Transformer(tiny_model_config(use_bias=True, smear_key=True))
    optimizer = make_optimizer(model, tiny_train_config(weight_decay=0.1))
    decayed, plain = optimizer.param_groups
    assert decayed["weight_decay"] == 0.1 and plain["weight_decay"] == 0.0
    assert all(p.ndim >= 2 for p in decayed["params"]) and all(p.ndim < 2 for p in plain["params"])
    assert len(decayed["params"]) + len(plain["params"]) == len(list(model.parameters()))


# ---- a run --------------------------------------------------------------------------------
def test_train_writes_checkpoints_metrics_and_learns(tmp_path, corpus, cache):
    result = run(tmp_path / "run", corpus, cache, train_cfg=tiny_train_config(steps=30, eval_every=4))
    assert result.step == 30 and result.checkpoint.name == "step_000030"
    assert result.tokens_seen == 30 * 4 * 7
    steps = [step for step, _ in list_checkpoints(tmp_path / "run")]
    assert steps == tiny_train_config(steps=30).checkpoint_steps
    first = json.loads((tmp_path / "run/checkpoints/step_000000/config.json").read_text())
    assert result.val_loss < first["metrics"]["val_loss"] - 0.5  # it learned something
    assert first["metrics"]["val_loss"] == pytest.approx(math.log(263), abs=0.3)  # near uniform at init

    records = [json.loads(line) for line in (tmp_path / "run/metrics.jsonl").read_text().splitlines()]
    kinds = {record["kind"] for record in records}
    assert kinds == {"train", "eval"}
    evals = [record for record in records if record["kind"] == "eval"]
    assert all(len(record["val_loss_by_pos"]) == 6 for record in evals)  # n_ctx - 1 positions
    assert {4, 8}.issubset({record["step"] for record in evals})  # eval_every
    train_steps = [record["step"] for record in records if record["kind"] == "train"]
    assert train_steps == sorted(set(train_steps)) and train_steps[-1] == 30
    assert all(record["tokens_per_s"] > 0 for record in records if record["kind"] == "train")

    # only the newest checkpoint keeps the optimizer state
    with_optimizer = [folder.name for _, folder in list_checkpoints(tmp_path / "run") if (folder / OPTIMIZER_FILE).exists()]
    assert with_optimizer == ["step_000030"]
    assert json.loads((tmp_path / "run/run.json").read_text())["complete"] is True


def test_same_seed_same_weights_bitwise(tmp_path, corpus, cache):
    a = run(tmp_path / "a", corpus, cache)
    b = run(tmp_path / "b", corpus, cache)
    model_a, _ = load(a.checkpoint)
    model_b, _ = load(b.checkpoint)
    assert state_dicts_equal(model_a.state_dict(), model_b.state_dict())
    other = run(tmp_path / "c", corpus, cache, train_cfg=tiny_train_config(seed=1))
    model_c, _ = load(other.checkpoint)
    assert not state_dicts_equal(model_a.state_dict(), model_c.state_dict())


def test_resume_of_a_finished_run_returns_it(tmp_path, corpus, cache):
    first = run(tmp_path / "run", corpus, cache)
    again = run(tmp_path / "run", corpus, cache, resume=True)
    assert again.checkpoint == first.checkpoint and again.val_loss == first.val_loss


KILLER = textwrap.dedent(
    """
    import os, signal, sys
    sys.path.insert(0, {tests!r})
    import circuits.training.checkpoint as ckpt
    from circuits import train
    from training_helpers import tiny_model_config, tiny_train_config

    real_save_file = ckpt.save_file
    calls = []

    def save_file_then_die(tensors, path, metadata=None):
        calls.append(path)
        if len(calls) == {kill_at}:  # half-write a checkpoint, then die like kill -9
            with open(path, "wb") as handle:
                handle.write(b"partial")
            os.kill(os.getpid(), signal.SIGKILL)
        real_save_file(tensors, path, metadata=metadata)

    ckpt.save_file = save_file_then_die
    train(tiny_model_config(), tiny_train_config(), out_dir={out!r}, corpus={corpus!r}, cache_dir={cache!r}, progress=False, device="cpu")
    """
)


def test_killed_run_resumes_to_the_same_weights(tmp_path, corpus, cache):
    out = tmp_path / "killed"
    script = tmp_path / "killer.py"
    # each checkpoint calls save_file twice (model, optimizer): die inside the 5th checkpoint
    script.write_text(KILLER.format(tests=str(Path(__file__).parent), kill_at=9, out=str(out), corpus=str(corpus), cache=str(cache)))
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}
    process = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=300)
    assert process.returncode == -9, process.stderr[-2000:]
    done = list_checkpoints(out)
    steps = tiny_train_config().checkpoint_steps
    assert [step for step, _ in done] == steps[:4]  # four complete checkpoints, the fifth never appeared
    assert any(child.name.startswith(".tmp-") for child in (out / "checkpoints").iterdir())  # its half-written temporary
    load(done[-1][1])  # the previous checkpoint is intact

    resumed = run(out, corpus, cache, resume=True)
    uninterrupted = run(tmp_path / "uninterrupted", corpus, cache)
    a, _ = load(resumed.checkpoint)
    b, _ = load(uninterrupted.checkpoint)
    assert state_dicts_equal(a.state_dict(), b.state_dict())
    assert not any(child.name.startswith(".tmp-") for child in (out / "checkpoints").iterdir())
    lines = (out / "metrics.jsonl").read_text().splitlines()
    reference = (tmp_path / "uninterrupted" / "metrics.jsonl").read_text().splitlines()
    strip = lambda line: {k: v for k, v in json.loads(line).items() if k not in ("tokens_per_s", "elapsed_s")}  # noqa: E731
    assert [strip(line) for line in lines] == [strip(line) for line in reference]


# ---- bad input ----------------------------------------------------------------------------
def test_output_folder_with_foreign_files_is_refused(tmp_path, corpus, cache):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match=r"holds files that are not a circuits run \(notes\.txt\)"):
        run(out, corpus, cache)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]  # nothing written


def test_existing_run_needs_resume_and_same_settings(tmp_path, corpus, cache):
    run(tmp_path / "run", corpus, cache, train_cfg=tiny_train_config(steps=4))
    with pytest.raises(ValueError, match="already holds a circuits run .*--resume"):
        run(tmp_path / "run", corpus, cache, train_cfg=tiny_train_config(steps=4))
    with pytest.raises(ValueError, match=r"different settings \(train.lr"):
        run(tmp_path / "run", corpus, cache, train_cfg=tiny_train_config(steps=4, lr=0.5), resume=True)


def test_context_longer_than_the_data_is_refused(tmp_path, corpus, cache):
    with pytest.raises(ValueError, match="n_ctx=4096 is larger than the data"):
        run(tmp_path / "run", corpus, cache, model_cfg=tiny_model_config(n_ctx=4096))
    assert not (tmp_path / "run").exists()


def test_bad_corpus_writes_nothing(tmp_path, cache):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no files"):
        run(tmp_path / "run", tmp_path / "empty", cache)
    assert not (tmp_path / "run").exists()


def test_bad_arguments(tmp_path, corpus, cache):
    with pytest.raises(TypeError, match="TrainConfig"):
        train(tiny_model_config(), {"steps": 1}, out_dir=tmp_path)
    with pytest.raises(ValueError, match="not divisible"):
        os.environ.update(WORLD_SIZE="3", RANK="0")
        try:
            run(tmp_path / "run", corpus, cache)
        finally:
            del os.environ["WORLD_SIZE"], os.environ["RANK"]
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            run(tmp_path / "run", corpus, cache, device="cuda")
    assert not (tmp_path / "run").exists()


# ---- checkpoints written in the background ------------------------------------------------
def test_training_step_is_the_models_loss_and_the_optimizer_is_fused():
    from circuits import Transformer

    model = Transformer(tiny_model_config())
    tokens = torch.randint(0, 263, (3, 7), generator=torch.Generator().manual_seed(0))
    assert torch.equal(model.next_token_loss(tokens), model(tokens, return_type="loss"))  # same operations, same bits
    assert all(group["fused"] for group in make_optimizer(model, tiny_train_config()).param_groups)


def test_checkpoint_writer_reports_a_failed_write(tmp_path, monkeypatch):
    from circuits.training import checkpoint as ckpt

    def data(name: str) -> ckpt.CheckpointData:
        return ckpt.CheckpointData(tmp_path / name, {}, {}, "", None, None, None)

    def fail(data):
        written.append(data.folder.name)
        raise OSError("disk full")

    writer, written, after = ckpt.CheckpointWriter(), [], []
    monkeypatch.setattr(ckpt, "write_checkpoint", fail)
    writer.submit(data("first"))
    with pytest.raises(OSError, match="disk full"):
        writer.submit(data("second"))  # the first write's error surfaces before the next one starts
    writer.submit(data("third"), then=lambda: after.append("pruned"))
    assert isinstance(writer.close(), OSError)
    assert written == ["first", "third"] and after == []  # what follows a failed write does not run


def test_a_failed_background_write_stops_training_with_its_error(tmp_path, corpus, cache, monkeypatch):
    from circuits.training import checkpoint as ckpt

    real, calls = ckpt.write_checkpoint, [0]

    def fail_third(data):
        calls[0] += 1
        if calls[0] == 3:
            raise OSError("disk full")
        return real(data)

    monkeypatch.setattr(ckpt, "write_checkpoint", fail_third)
    with pytest.raises(OSError, match="disk full"):
        run(tmp_path / "run", corpus, cache)
    assert [step for step, _ in list_checkpoints(tmp_path / "run")] == [0, 1]  # complete folders only
    monkeypatch.undo()
    assert run(tmp_path / "run", corpus, cache, resume=True).step == 12  # the folder was unlocked and resumes
