"""Calibrate the digits ViT: the cheapest settings reaching >= 97% held-out accuracy on 2 CPU cores.

    .venv/bin/python benchmarks/calibrate_vit.py [--out FILE.jsonl] [--seeds 0,1,2] [--only ROW] [--threads 1]

Trains each row of :data:`GRID` with ``circuits.train(..., task=ImageClassificationTask())`` (the
fixed scikit-learn digits split: 1,438 training and 359 test images) and prints one line per run:
the settings, the final test accuracy, the training wall time and the 1-minute load average when
it finished (the machine is shared; the load says how busy it was). The preset
(``circuits.training.images.VIT_PRESET``) is the cheapest row with a 4x4 patch grid that reaches
97% on every seed tried.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import torch

from circuits.config import vit_config
from circuits.training.config import TrainConfig
from circuits.training.images import ImageClassificationTask
from circuits.training.loop import train

#: (patch_size, n_layers, d_model, n_heads, steps, batch_size, lr)
GRID = [
    (4, 2, 16, 2, 200, 64, 3e-3),
    (4, 2, 32, 4, 100, 64, 3e-3),
    (4, 1, 32, 4, 200, 64, 3e-3),
    (4, 2, 32, 4, 200, 64, 3e-3),
    (2, 1, 16, 2, 200, 64, 3e-3),
    (2, 2, 16, 2, 200, 64, 3e-3),
    (2, 1, 32, 4, 300, 128, 3e-3),
    (2, 2, 32, 4, 150, 64, 3e-3),
    (2, 2, 32, 4, 200, 128, 5e-3),
    (2, 2, 32, 4, 300, 64, 3e-3),
    (2, 2, 32, 4, 300, 128, 3e-3),
]


def run(row: tuple, seed: int, folder: Path) -> dict:
    patch, n_layers, d_model, n_heads, steps, batch, lr = row
    model_cfg = vit_config(image_size=8, patch_size=patch, n_classes=10, n_layers=n_layers, d_model=d_model, n_heads=n_heads, seed=seed)
    train_cfg = TrainConfig(steps=steps, batch_size=batch, lr=lr, seed=seed, n_log_checkpoints=0, n_linear_checkpoints=0)
    shutil.rmtree(folder, ignore_errors=True)
    start = time.perf_counter()
    train(model_cfg, train_cfg, out_dir=folder, task=ImageClassificationTask(), progress=False)
    wall = time.perf_counter() - start
    final = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines() if '"eval"' in line][-1]
    return dict(
        patch_size=patch, n_layers=n_layers, d_model=d_model, n_heads=n_heads, steps=steps, batch_size=batch, lr=lr, seed=seed,
        test_accuracy=round(final["test_accuracy"], 4), train_accuracy=round(final["train_accuracy"], 4), wall_s=round(wall, 1),
        load_1min=round(os.getloadavg()[0], 1), torch_threads=torch.get_num_threads(),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="append each run as a JSON line here")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds (model init and batches)")
    parser.add_argument("--only", type=int, action="append", help="row index of GRID (repeatable)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1: steadiest on a shared machine)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = [GRID[i] for i in args.only] if args.only else GRID
    with tempfile.TemporaryDirectory() as tmp:
        for row in rows:
            for seed in (int(s) for s in args.seeds.split(",")):
                record = run(row, seed, Path(tmp) / "run")
                print(json.dumps(record), flush=True)
                if args.out:
                    args.out.parent.mkdir(parents=True, exist_ok=True)
                    with open(args.out, "a", encoding="utf-8") as handle:
                        handle.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
