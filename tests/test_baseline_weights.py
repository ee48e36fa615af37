"""Trained weights are bitwise those of an older circuits (the report's numbers depend on them).

Skipped unless ``CIRCUITS_BASELINE_SRC`` names the ``src`` folder of the older code, e.g.
``CIRCUITS_BASELINE_SRC=/path/to/old/src pytest tests/test_baseline_weights.py``: the same tiny
configs are trained by both (the old one in a subprocess) and every checkpoint is compared.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors.torch import load_file

from circuits import TrainConfig, TransformerConfig, train
from circuits.training.checkpoint import list_checkpoints

from training_helpers import write_corpus

BASELINE = os.environ.get("CIRCUITS_BASELINE_SRC")
pytestmark = pytest.mark.skipif(not BASELINE, reason="set CIRCUITS_BASELINE_SRC to an older circuits' src folder")

#: Model changes per architecture family, on prime sizes; two trainings each (clipping on, and off with eval_every).
RUNS = textwrap.dedent(
    """
    FW = dict(n_layers=2, d_model=11, n_heads=3, d_head=5, d_vocab=263, n_ctx=7, attn_only=True, normalization="none", use_bias=False, positional="shortformer")
    FAMILIES = {"0l": dict(n_layers=0), "smeared": dict(smear_key=True), "gqa": dict(n_heads=4, n_kv_heads=2), "rotary": dict(positional="rotary", rotary_dim=4),
                "full": dict(attn_only=False, normalization="layernorm", use_bias=True, d_mlp=13)}
    TRAINS = {"clip": dict(steps=12, batch_size=4, lr=1e-2, warmup_steps=2, n_log_checkpoints=4, n_linear_checkpoints=3, eval_windows=3, log_every=2, val_fraction=0.25),
              "noclip": dict(steps=6, batch_size=4, lr=3e-2, warmup_steps=1, grad_clip=0.0, eval_windows=3, log_every=3, val_fraction=0.25, eval_every=2)}
    """
)
SCRIPT = RUNS + textwrap.dedent(
    """
    import sys, torch
    torch.set_num_threads(1)
    from circuits import TrainConfig, TransformerConfig, train
    out, corpus, cache = sys.argv[1:4]
    for name, changes in FAMILIES.items():
        for tname, t in TRAINS.items():
            train(TransformerConfig(**{**FW, **changes}), TrainConfig(**t), out_dir=f"{out}/{name}-{tname}", corpus=corpus, cache_dir=cache, progress=False, device="cpu")
    """
)


def test_weights_and_metrics_equal_the_baseline(tmp_path):
    corpus = write_corpus(tmp_path / "corpus")
    script = tmp_path / "runs.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "PYTHONPATH": BASELINE}
    process = subprocess.run([sys.executable, str(script), str(tmp_path / "old"), str(corpus), str(tmp_path / "cache-old")], env=env,
                             capture_output=True, text=True, timeout=600)
    assert process.returncode == 0, process.stderr[-3000:]
    spec: dict = {}
    exec(RUNS, spec)  # noqa: S102 - the same table the subprocess used
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for name, changes in spec["FAMILIES"].items():
            for tname, t in spec["TRAINS"].items():
                train(TransformerConfig(**{**spec["FW"], **changes}), TrainConfig(**t), out_dir=tmp_path / "new" / f"{name}-{tname}", corpus=corpus,
                      cache_dir=tmp_path / "cache-new", progress=False, device="cpu")
    finally:
        torch.set_num_threads(threads)
    strip = lambda line: {k: v for k, v in json.loads(line).items() if k not in ("tokens_per_s", "elapsed_s")}  # noqa: E731
    for run in sorted(p.name for p in (tmp_path / "old").iterdir()):
        old, new = list_checkpoints(tmp_path / "old" / run), list_checkpoints(tmp_path / "new" / run)
        assert [s for s, _ in old] == [s for s, _ in new], run
        for (step, a), (_, b) in zip(old, new):
            x, y = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
            assert x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x), f"{run} step {step} differs from the baseline"
        lines = [strip(line) for line in (tmp_path / "old" / run / "metrics.jsonl").read_text().splitlines()]
        assert lines == [strip(line) for line in (tmp_path / "new" / run / "metrics.jsonl").read_text().splitlines()], run
