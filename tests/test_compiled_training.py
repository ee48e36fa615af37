"""``circuits.train(compiled=True)``: close to eager, bitwise reproducible and resumable as a compiled run, modes not mixed.

Compiled kernels round differently from eager ones, so the two modes agree to a tolerance, not
bitwise. Compiled runs happen in fresh interpreters: the test session wraps every function of
``circuits`` in jaxtyping's runtime shape checks, which dynamo cannot trace into one graph. The
first compile in a fresh inductor cache takes tens of seconds; later ones reuse the on-disk cache.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from circuits import train

from fault_helpers import assert_same_run, killed_at, metrics, needs_fork, snapshot
from training_helpers import tiny_model_config, tiny_train_config, write_corpus

#: Eager and compiled losses of the tiny run agree to this (measured: 3e-8; float32 rounding over 12 steps).
LOSS_TOLERANCE = 1e-5

TESTS = Path(__file__).resolve().parent
SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
import torch
torch.set_num_threads(1)
import circuits.training.task as task_module
from circuits import train
from fault_helpers import die_at_call
from training_helpers import tiny_model_config, tiny_train_config
if {kill_at}:
    die_at_call(task_module, "sample_windows", {kill_at})
train(tiny_model_config(), tiny_train_config(), out_dir={out!r}, corpus={corpus!r}, cache_dir={cache!r}, progress=False,
      device="cpu", resume={resume}, compiled=True)
"""


def train_compiled(out: Path, corpus: Path, cache: Path, resume: bool = True, kill_at: int = 0) -> subprocess.CompletedProcess:
    """A compiled run in a fresh interpreter (killed by SIGKILL at the ``kill_at``-th step if given)."""
    code = SCRIPT.format(tests=str(TESTS), kill_at=kill_at, out=str(out), corpus=str(corpus), cache=str(cache), resume=resume)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900, check=False)


def train_eager(out: Path, corpus: Path, cache: Path, resume: bool = True):
    return train(tiny_model_config(), tiny_train_config(), out_dir=out, corpus=corpus, cache_dir=cache, progress=False,
                 device="cpu", resume=resume)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def compiled_reference(tmp_path_factory, corpus, cache) -> Path:
    out = tmp_path_factory.mktemp("compiled") / "run"
    done = train_compiled(out, corpus, cache, resume=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def test_compiled_and_eager_losses_agree(tmp_path, corpus, cache, compiled_reference):
    train_eager(tmp_path / "eager", corpus, cache, resume=False)
    eager, compiled = metrics(tmp_path / "eager"), metrics(compiled_reference)
    assert [(line["kind"], line["step"]) for line in eager] == [(line["kind"], line["step"]) for line in compiled]
    for a, b in zip(eager, compiled):
        for key in ("train_loss", "val_loss"):
            if key in a:
                assert abs(a[key] - b[key]) <= LOSS_TOLERANCE, (a["step"], key, a[key], b[key])
    assert json.loads((compiled_reference / "run.json").read_text())["compiled"] is True
    assert "compiled" not in json.loads((tmp_path / "eager" / "run.json").read_text())  # eager runs record as before


def test_two_compiled_runs_are_bitwise_identical(tmp_path, corpus, cache, compiled_reference):
    done = train_compiled(tmp_path / "again", corpus, cache, resume=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert_same_run(tmp_path / "again", compiled_reference)


def test_a_compiled_run_resumes_bitwise_after_kill(tmp_path, corpus, cache, compiled_reference):
    killed = train_compiled(tmp_path / "run", corpus, cache, resume=False, kill_at=7)  # after checkpoint 5
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    done = train_compiled(tmp_path / "run", corpus, cache)
    assert done.returncode == 0, done.stderr[-3000:]
    assert_same_run(tmp_path / "run", compiled_reference)


@needs_fork
def test_resuming_in_the_other_mode_is_refused_and_changes_nothing(tmp_path, corpus, cache, compiled_reference):
    out = tmp_path / "run"
    assert killed_at("step", 7, lambda: train_eager(out, corpus, cache, resume=False))  # an unfinished eager run
    before = snapshot(out)
    with pytest.raises(ValueError, match="trained eager and would resume compiled"):  # refused before anything compiles
        train(tiny_model_config(), tiny_train_config(), out_dir=out, corpus=corpus, cache_dir=cache, progress=False, resume=True, compiled=True)
    assert snapshot(out) == before
    with pytest.raises(ValueError, match="trained compiled and would resume eager"):
        train_eager(compiled_reference, corpus, cache)
