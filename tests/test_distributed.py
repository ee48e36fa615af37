"""Data-parallel training under torchrun (gloo on CPU) equals one process with the same global batch."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from circuits import Transformer, load, train
from circuits.training.distributed import DistInfo, from_environment, resolve_device

from training_helpers import tiny_model_config, tiny_train_config, write_corpus

SCRIPT = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    from circuits import train
    from training_helpers import tiny_model_config, tiny_train_config

    train(tiny_model_config(), tiny_train_config(steps=6), out_dir={out!r}, corpus={corpus!r}, cache_dir={cache!r}, progress=False, device="cpu")
    """
)


def test_rows_split_the_global_batch():
    rows = [DistInfo(rank=r, world_size=4).rows(8) for r in range(4)]
    assert [list(range(8))[s] for s in rows] == [[0, 1], [2, 3], [4, 5], [6, 7]]
    assert DistInfo().rows(5) == slice(0, 5) and DistInfo().is_main and not DistInfo().enabled


def test_environment_and_device(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert from_environment() == DistInfo()
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert from_environment() == DistInfo(rank=1, world_size=2, local_rank=1)
    assert resolve_device("cpu", DistInfo()).type == "cpu"
    assert resolve_device("auto", DistInfo()).type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="not a torch device"):
        resolve_device("tpu-please", DistInfo())


@pytest.mark.skipif(shutil.which("torchrun") is None and not (Path(sys.executable).parent / "torchrun").exists(), reason="torchrun not installed")
def test_torchrun_two_processes_equal_one(tmp_path):
    corpus = write_corpus(tmp_path / "corpus")
    cache = tmp_path / "cache"
    single = train(tiny_model_config(), tiny_train_config(steps=6), out_dir=tmp_path / "single", corpus=corpus, cache_dir=cache, progress=False, device="cpu")

    script = tmp_path / "ddp.py"
    script.write_text(SCRIPT.format(tests=str(Path(__file__).parent), out=str(tmp_path / "ddp"), corpus=str(corpus), cache=str(cache)))
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).parent / "torchrun")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.run(
        [torchrun, "--standalone", "--nproc_per_node=2", str(script)], env=env, capture_output=True, text=True, timeout=600
    )
    assert process.returncode == 0, process.stderr[-3000:]

    a, _ = load(single.checkpoint)
    b, _ = load(tmp_path / "ddp")
    for name, tensor in a.state_dict().items():
        torch.testing.assert_close(b.state_dict()[name], tensor, rtol=1e-5, atol=1e-6)
    initial = Transformer(tiny_model_config()).state_dict()
    assert any(not torch.equal(initial[name], tensor) for name, tensor in a.state_dict().items())  # it trained
    # rank 0 alone wrote logs: one line per event, as in the single-process run
    ddp_lines = [json.loads(line) for line in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()]
    single_lines = [json.loads(line) for line in (tmp_path / "single" / "metrics.jsonl").read_text().splitlines()]
    assert [(r["kind"], r["step"]) for r in ddp_lines] == [(r["kind"], r["step"]) for r in single_lines]
    for r, s in zip(ddp_lines, single_lines):
        if r["kind"] == "train":
            assert r["train_loss"] == pytest.approx(s["train_loss"], rel=1e-5)
    config = json.loads((tmp_path / "ddp" / "checkpoints" / "step_000006" / "config.json").read_text())
    assert config["run"]["world_size"] == 2


RESUME_SCRIPT = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    from circuits import train
    from training_helpers import tiny_model_config, tiny_train_config

    train(tiny_model_config(n_layers=0), tiny_train_config(steps=6), out_dir={out!r}, corpus={corpus!r}, cache_dir={cache!r},
          progress=False, device="cpu", resume=True)
    """
)


@pytest.mark.skipif(shutil.which("torchrun") is None and not (Path(sys.executable).parent / "torchrun").exists(), reason="torchrun not installed")
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_torchrun_resumes_a_killed_zero_layer_run(tmp_path):
    """Every rank resumes from rank 0's checkpoint (weights and AdamW moments), and a parameter without gradient
    (``pos_embed.W_pos`` of a zero-layer model) does not stall DDP."""
    from fault_helpers import killed_at

    corpus = write_corpus(tmp_path / "corpus")
    cache = tmp_path / "cache"
    kwargs = dict(corpus=corpus, cache_dir=cache, progress=False, device="cpu")
    single = train(tiny_model_config(n_layers=0), tiny_train_config(steps=6), out_dir=tmp_path / "single", **kwargs)
    assert killed_at("step", 4, lambda: train(tiny_model_config(n_layers=0), tiny_train_config(steps=6), out_dir=tmp_path / "ddp", **kwargs))

    script = tmp_path / "ddp.py"
    script.write_text(RESUME_SCRIPT.format(tests=str(Path(__file__).parent), out=str(tmp_path / "ddp"), corpus=str(corpus), cache=str(cache)))
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).parent / "torchrun")
    process = subprocess.run([torchrun, "--standalone", "--nproc_per_node=2", str(script)], env={**os.environ, "OMP_NUM_THREADS": "1"},
                             capture_output=True, text=True, timeout=600)
    assert process.returncode == 0, process.stderr[-3000:]
    a, _ = load(single.checkpoint)
    b, _ = load(tmp_path / "ddp")
    for name, tensor in a.state_dict().items():
        torch.testing.assert_close(b.state_dict()[name], tensor, rtol=1e-5, atol=1e-6)
    lines = [json.loads(line) for line in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()]
    single_lines = [json.loads(line) for line in (tmp_path / "single" / "metrics.jsonl").read_text().splitlines()]
    assert [(r["kind"], r["step"]) for r in lines] == [(r["kind"], r["step"]) for r in single_lines]
