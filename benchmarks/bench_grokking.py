"""Grokking training throughput: ``circuits.train`` with the modular-addition task against a plain PyTorch loop, side by side.

    python benchmarks/bench_grokking.py                      # the grokking section's model, 200 epochs, 3 rounds, 1 thread
    python benchmarks/bench_grokking.py --epochs 500 --rounds 5

Both train the grokking section's calibrated model (``circuits.experiments.grokking.Config``: p = 113,
30% of the pairs, one layer, d_model 64, d_mlp 256, ReLU, no LayerNorm) full-batch on the same
training pairs with the same AdamW settings (lr, weight decay on matrices, betas (0.9, 0.98), 10-step warmup).

- ``plain``: what a user writes by hand: ``circuits.Transformer``, ``model(tokens)[:, -1]``,
  cross-entropy, PyTorch's default AdamW; no evaluation, no checkpoint.
- ``circuits``: the whole ``circuits.train(..., task=ModularAdditionTask(data))`` call as the
  section runs it (folder, lock, model, optimizer, every step, the evaluation and checkpoint write
  at each of its checkpoints), with ``n_checkpoints`` evenly spaced checkpoints.

Epochs/s = epochs / wall time of the whole run (``step epochs/s``: over the steps alone, from the
run's own log). Rounds alternate the order; the ratio is paired within a round (median and range).
Goal: ``circuits`` >= 0.95x ``plain``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from circuits import Transformer, train
from circuits.experiments.grokking import Config
from circuits.training.loop import lr_at
from circuits.training.modular import ModularAddition, ModularAdditionTask, grokking_configs


def configs(epochs: int, n_checkpoints: int):
    cfg = Config()
    data = ModularAddition(p=cfg.p, train_fraction=cfg.train_fraction, seed=cfg.seed)
    model_cfg, train_cfg = grokking_configs(data, d_model=cfg.d_model, n_heads=cfg.n_heads, d_mlp=cfg.d_mlp, lr=cfg.lr,
                                            weight_decay=cfg.weight_decay, epochs=epochs, seed=cfg.seed, n_checkpoints=n_checkpoints)
    return data, model_cfg, train_cfg


def plain_run(data: ModularAddition, model_cfg, train_cfg) -> dict[str, float]:
    tick = time.perf_counter()
    tokens, labels = data.split("train")
    model = Transformer(model_cfg)
    decay = [p for p in model.parameters() if p.ndim >= 2]
    rest = [p for p in model.parameters() if p.ndim < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": train_cfg.weight_decay}, {"params": rest, "weight_decay": 0.0}],
                                  lr=train_cfg.lr, betas=train_cfg.betas)
    start = time.perf_counter()
    for step in range(train_cfg.steps):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, train_cfg)
        loss = F.cross_entropy(model(tokens)[:, -1], labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    end = time.perf_counter()
    return {"wall_s": end - tick, "step_s": end - start}


def circuits_run(data: ModularAddition, model_cfg, train_cfg) -> dict[str, float]:
    out = Path(tempfile.mkdtemp(prefix="bench-grokking-"))
    try:
        tick = time.perf_counter()
        result = train(model_cfg, train_cfg, out_dir=out / "run", task=ModularAdditionTask(data), progress=False)
        wall = time.perf_counter() - tick
        tokens_per_epoch = data.n_train * 3
        return {"wall_s": wall, "step_s": train_cfg.steps * tokens_per_epoch / result.tokens_per_s}
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--n-checkpoints", type=int, default=12, help="evenly spaced checkpoints of the circuits run (plus 10 log-spaced)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data, model_cfg, train_cfg = configs(args.epochs, args.n_checkpoints)
    runs = {"plain": plain_run, "circuits": circuits_run}
    plain_run(data, model_cfg, train_cfg.replace(steps=5, warmup_steps=5))  # warm up the allocator and kernels once
    results: dict[str, list[dict[str, float]]] = {name: [] for name in runs}
    for round_ in range(args.rounds):
        order = list(runs) if round_ % 2 == 0 else list(reversed(runs))
        for name in order:
            results[name].append(runs[name](data, model_cfg, train_cfg))
    ratios = [p["wall_s"] / c["wall_s"] for p, c in zip(results["plain"], results["circuits"])]
    step_ratios = [p["step_s"] / c["step_s"] for p, c in zip(results["plain"], results["circuits"])]
    print(f"grokking model p={data.p}: {data.n_train} training pairs, d_model {model_cfg.d_model}, d_mlp {model_cfg.d_mlp}, "
          f"{args.epochs} epochs x {args.rounds} rounds, {args.threads} thread(s)")
    print(f"{'variant':<10} {'epochs/s':>10} {'step epochs/s':>14}")
    for name, rows in results.items():
        wall = statistics.median(r["wall_s"] for r in rows)
        step = statistics.median(r["step_s"] for r in rows)
        print(f"{name:<10} {args.epochs / wall:>10.2f} {args.epochs / step:>14.2f}")
    print(f"circuits / plain (whole run): median {statistics.median(ratios):.3f}x (range {min(ratios):.3f}-{max(ratios):.3f}; goal >= 0.95x)")
    print(f"circuits / plain (steps only): median {statistics.median(step_ratios):.3f}x")
    print(json.dumps({"ratio_whole_run": statistics.median(ratios), "ratio_steps": statistics.median(step_ratios)}))


if __name__ == "__main__":
    main()
