"""Calibrate the presets: train them, time them, and check whether induction heads formed.

    python benchmarks/calibrate_presets.py                       # every preset, default sizes
    python benchmarks/calibrate_presets.py attn-only-1l attn-only-2l --trajectory
    python benchmarks/calibrate_presets.py attn-only-2l --model d_model=96 --train steps=800,lr=2e-3

For each preset it prints wall time, training tokens/s, final losses and, on ``BOS + R + R``
(``R`` uniform random tokens, ``T = (n_ctx - 1) // 2``), the best induction score (mean attention
from each second-repeat position ``i`` to ``i - (T - 1)``, the token after the earlier copy), the
best previous-token score on validation text (mean attention ``i -> i - 1``), and the mean loss
on the first and the second repeat. ``--trajectory`` also prints the induction score and the
in-context-learning score at every checkpoint, to see the phase change. The scores are computed
inline here (a few lines) so that this script checks the training code independently of
``circuits.analysis.activations.scores``.
"""

from __future__ import annotations

import argparse
import ast
import json
import shutil
import sys
import time
from pathlib import Path

import torch

from circuits import PRESETS, TrainConfig, load, train
from circuits.training.checkpoint import list_checkpoints
from circuits.training.data import eval_windows, find_corpus, get_tokenizer, get_tokens


def parse_overrides(text: str | None) -> dict:
    out = {}
    for item in filter(None, (text or "").split(",")):
        key, value = item.split("=", 1)
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value
    return out


@torch.no_grad()
def head_scores(model, val_windows: torch.Tensor, n_seqs: int = 16, seed: int = 0) -> dict:
    cfg = model.config
    T = (cfg.n_ctx - 1) // 2
    gen = torch.Generator().manual_seed(seed)
    bos = model.tokenizer.bos_id if model.tokenizer is not None else 0
    R = torch.randint(0, cfg.d_vocab, (n_seqs, T), generator=gen)
    R[R == bos] = (bos + 1) % cfg.d_vocab
    tokens = torch.cat([torch.full((n_seqs, 1), bos), R, R], dim=1)
    names = [f"blocks.{layer}.attn.hook_pattern" for layer in range(cfg.n_layers)]
    result = {"T": T}
    loss = model(tokens, return_type="per_token_loss")  # [batch, 2T]; entry i predicts token i + 1
    result["loss_first_repeat"] = float(loss[:, : T - 1].mean())  # predicting R[1:] inside the first copy
    result["loss_second_repeat"] = float(loss[:, T:].mean())  # predicting the second copy (after its first token)
    if not names:
        return result
    _, cache = model.run_with_cache(tokens, names_filter=names)
    induction = []
    for name in names:
        pattern = cache[name]  # [batch, head, query_pos, key_pos]
        stripe = pattern.diagonal(offset=-(T - 1), dim1=-2, dim2=-1)  # [batch, head, ...]: key = query - (T - 1)
        induction.append(stripe[..., T:].mean(dim=(0, 2)) if stripe.shape[-1] > T else stripe.mean(dim=(0, 2)))
    _, cache = model.run_with_cache(val_windows, names_filter=names)
    previous = [cache[name].diagonal(offset=-1, dim1=-2, dim2=-1).mean(dim=(0, 2)) for name in names]
    induction, previous = torch.stack(induction), torch.stack(previous)  # [layer, head]
    flat = int(induction.argmax())
    result["induction_max"] = float(induction.max())
    result["induction_head"] = f"L{flat // cfg.n_heads}H{flat % cfg.n_heads}"
    flat = int(previous.argmax())
    result["previous_max"] = float(previous.max())
    result["previous_head"] = f"L{flat // cfg.n_heads}H{flat % cfg.n_heads}"
    result["induction_by_layer"] = [round(float(row.max()), 3) for row in induction]
    result["previous_by_layer"] = [round(float(row.max()), 3) for row in previous]
    return result


def icl_score(by_pos: list[float]) -> float:
    """Loss late in the context minus loss early (indices scaled from the paper's 500 and 50 of 512)."""
    n = len(by_pos)
    late, early = round(n * 500 / 512) - 1, max(round(n * 50 / 512) - 1, 0)
    return by_pos[late] - by_pos[early]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("presets", nargs="*", default=list(PRESETS))
    parser.add_argument("--model", help="model overrides, e.g. d_model=96,n_heads=12")
    parser.add_argument("--train", help="training overrides, e.g. steps=800,lr=2e-3")
    parser.add_argument("--out", default="runs/calibration")
    parser.add_argument("--trajectory", action="store_true")
    parser.add_argument("--keep", action="store_true", help="reuse finished runs in --out instead of retraining")
    parser.add_argument("--json", help="append one JSON line per preset to this file")
    args = parser.parse_args()
    model_changes, train_changes = parse_overrides(args.model), parse_overrides(args.train)

    t = time.perf_counter()
    corpus = find_corpus()
    discover_s = time.perf_counter() - t
    print(f"corpus: {len(corpus.files)} files, {corpus.n_bytes:,} bytes, discovered in {discover_s:.1f} s", flush=True)
    for name in args.presets:
        preset = PRESETS[name]
        model_cfg = preset.model.replace(**model_changes)
        train_cfg = preset.train.replace(**train_changes)
        if "steps" in train_changes and "warmup_steps" not in train_changes:
            train_cfg = train_cfg.replace(warmup_steps=train_cfg.steps // 20)
        out = Path(args.out) / name
        if out.exists() and not args.keep:
            shutil.rmtree(out)
        t, c = time.perf_counter(), time.process_time()
        result = train(model_cfg, train_cfg, out_dir=out, corpus=corpus, resume=args.keep, progress=False, device="cpu")
        wall, cpu = time.perf_counter() - t, time.process_time() - c
        model, tokenizer = load(out)
        tokens = get_tokens(corpus, tokenizer, val_fraction=train_cfg.val_fraction)
        windows = eval_windows(tokens.val, model_cfg.n_ctx, 16, tokenizer.bos_id)
        scores = head_scores(model, windows)
        final = json.loads((result.checkpoint / "config.json").read_text())["metrics"]
        line = {
            "preset": name,
            "model": model_changes,
            "train": train_changes,
            "steps": train_cfg.steps,
            "tokens": result.tokens_seen,
            "wall_s": round(wall, 1),
            "cpu_s": round(cpu, 1),
            "train_tokens_per_s": round(result.tokens_per_s),
            "train_loss": round(result.train_loss, 4),
            "val_loss": round(result.val_loss, 4),
            "icl": round(icl_score(final["val_loss_by_pos"]), 4),
            **{key: (round(value, 4) if isinstance(value, float) else value) for key, value in scores.items()},
        }
        print(json.dumps(line), flush=True)
        if args.json:
            with open(args.json, "a") as handle:
                handle.write(json.dumps(line) + "\n")
        if args.trajectory:
            for step, folder in list_checkpoints(out):
                ckpt_model, _ = load(folder)
                s = head_scores(ckpt_model, windows, n_seqs=8)
                metrics = json.loads((folder / "config.json").read_text())["metrics"]
                print(
                    f"  step {step:5d}  val {metrics['val_loss']:.3f}  icl {icl_score(metrics['val_loss_by_pos']):+.3f}  "
                    f"ind {s.get('induction_by_layer')}  prev {s.get('previous_by_layer')}  "
                    f"rep {s['loss_first_repeat']:.2f}->{s['loss_second_repeat']:.2f}",
                    flush=True,
                )


if __name__ == "__main__":
    sys.exit(main())
