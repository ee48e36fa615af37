"""Calibrate the grokking section: how many full-batch epochs a setting needs to memorise and to grok, and how long they take.

    python benchmarks/calibrate_grokking.py --p 113 --frac 0.3 --d 64 --mlp 256 --lr 1e-2 --wd 1
    python benchmarks/calibrate_grokking.py --p 113 --d 64 --mlp 256 --lr 1e-2 --wd 0 --epochs 300   # the control

A plain PyTorch loop on ``circuits.Transformer`` (one layer, ReLU MLP, no LayerNorm, learned
positions): the whole training set every step, AdamW with weight decay on the matrices, betas
(0.9, 0.98), a 10-step warmup, the loss at ``=`` (the last block's MLP at that position only, as the
task does). Every ``--every`` epochs it prints the epoch, seconds so far, train loss, test loss,
train accuracy and test accuracy; it stops ``--extra`` epochs after test accuracy first reaches 99%,
or after ``--epochs``, and prints one JSON line: the settings, the first evaluated epoch with train
accuracy >= 99% (memorised) and with test accuracy >= 99% (grokked), the wall time and the load
average. README "Grokking" lists the runs that chose the section's settings.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch
import torch.nn.functional as F

from circuits import Transformer
from circuits.training.modular import ModularAddition, grokking_configs, last_position_logits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name, kind, default in (("p", int, 113), ("frac", float, 0.3), ("d", int, 64), ("mlp", int, 256), ("heads", int, 4),
                                ("lr", float, 1e-2), ("wd", float, 1.0), ("epochs", int, 3000), ("threads", int, 1), ("seed", int, 0),
                                ("every", int, 50), ("extra", int, 0)):
        parser.add_argument(f"--{name}", type=kind, default=default)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = ModularAddition(p=args.p, train_fraction=args.frac, seed=args.seed)
    model_cfg, train_cfg = grokking_configs(data, d_model=args.d, n_heads=args.heads, d_mlp=args.mlp, lr=args.lr, weight_decay=args.wd,
                                            epochs=args.epochs, seed=args.seed)
    model = Transformer(model_cfg)
    (x_train, y_train), (x_test, y_test) = data.split("train"), data.split("test")
    decay = [q for q in model.parameters() if q.ndim >= 2]
    rest = [q for q in model.parameters() if q.ndim < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": args.wd}, {"params": rest, "weight_decay": 0.0}], lr=args.lr,
                                  betas=train_cfg.betas, fused=True)
    start, memorised, grokked, stop, epoch = time.perf_counter(), None, None, args.epochs, 0
    for epoch in range(1, args.epochs + 1):
        for group in optimizer.param_groups:
            group["lr"] = args.lr * min(1.0, epoch / 10)
        loss = F.cross_entropy(last_position_logits(model, x_train), y_train)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if epoch % args.every == 0:
            with torch.no_grad():
                train_logits, test_logits = last_position_logits(model, x_train), last_position_logits(model, x_test)
                train_acc = float((train_logits.argmax(-1) == y_train).float().mean())
                test_acc = float((test_logits.argmax(-1) == y_test).float().mean())
                test_loss = float(F.cross_entropy(test_logits, y_test))
            print(epoch, round(time.perf_counter() - start, 1), round(float(loss), 4), round(test_loss, 4), round(train_acc, 4),
                  round(test_acc, 4), flush=True)
            memorised = memorised or (epoch if train_acc >= 0.99 else None)
            if grokked is None and test_acc >= 0.99:
                grokked, stop = epoch, epoch + args.extra
            if epoch >= stop:
                break
    print(json.dumps({"args": vars(args), "memorised": memorised, "grokked": grokked, "epochs_run": epoch,
                      "wall_s": round(time.perf_counter() - start, 1), "load": os.getloadavg()[0]}))


if __name__ == "__main__":
    main()
