"""Calibrate the presets: train them, time them, and check whether induction heads formed.

    python benchmarks/calibrate_presets.py                       # every preset, default sizes
    python benchmarks/calibrate_presets.py attn-only-1l attn-only-2l --trajectory
    python benchmarks/calibrate_presets.py attn-only-2l --model d_model=96 --train steps=800,lr=2e-3
    python benchmarks/calibrate_presets.py attn-only-2l-corpus --train steps=20000 --trajectory   # the corpus alone

For each preset it prints wall time, training tokens/s, final losses and, on ``BOS + R + R``
(``T = (n_ctx - 1) // 2``) and on ``BOS + natural text + R + R`` (``T = (n_ctx - 1) // 3``, the
repeats at a random offset after a validation-text prefix: the ``prefixed_*`` fields), with ``R``
drawn from the ``--probe-tokens`` most frequent training tokens (256 by default; 0: uniform over
the vocabulary, whose rarely seen tokens have untrained embeddings), the best induction score
(mean attention from each second-copy token to the token after its first copy), the best
previous-token score on validation text (mean attention ``i -> i - 1``), and the mean loss on the
first and the second repeat. ``--seed`` trains another seed; ``--train repeat_fraction=0`` the
corpus alone (or the ``attn-only-2l-corpus`` preset). ``--trajectory`` also prints the induction score and the
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


def probe_batch(d_vocab: int, n_ctx: int, bos: int, n_seqs: int, gen: torch.Generator, pool: torch.Tensor | None = None,
                val_windows: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, int]:
    """``n_seqs`` probes ``BOS + R + R`` (``val_windows`` None) or ``BOS + natural text + R + R`` (the text prefix
    from ``val_windows``, its length drawn per sequence: the repeats start at a random offset); ``R`` uniform
    over ``pool`` (token ids) or over the vocabulary. Returns ``(tokens, first-copy start per row, T)``."""
    T = (n_ctx - 1) // 2 if val_windows is None else (n_ctx - 1) // 3
    candidates = pool if pool is not None else torch.tensor([t for t in range(d_vocab) if t != bos])
    R = candidates[torch.randint(0, len(candidates), (n_seqs, T), generator=gen)]
    if val_windows is None:
        starts = torch.ones(n_seqs, dtype=torch.long)
        return torch.cat([torch.full((n_seqs, 1), bos), R, R], dim=1), starts, T
    tokens = val_windows[torch.randint(0, len(val_windows), (n_seqs,), generator=gen)].clone()
    starts = torch.randint(2, n_ctx - 2 * T + 1, (n_seqs,), generator=gen)  # at least one natural token after BOS
    for row, start in enumerate(starts.tolist()):
        tokens[row, start : start + T] = R[row]
        tokens[row, start + T : start + 2 * T] = R[row]
    return tokens, starts, T


@torch.no_grad()
def head_scores(model, val_windows: torch.Tensor, n_seqs: int = 16, seed: int = 0, pool: torch.Tensor | None = None, prefixed: bool = False) -> dict:
    cfg = model.config
    gen = torch.Generator().manual_seed(seed)
    bos = model.tokenizer.bos_id if model.tokenizer is not None else 0
    tokens, starts, T = probe_batch(cfg.d_vocab, cfg.n_ctx, bos, n_seqs, gen, pool, val_windows if prefixed else None)
    rows = torch.arange(n_seqs)[:, None]
    i = torch.arange(1, T)[None, :]
    query, key = starts[:, None] + T + i, starts[:, None] + i + 1  # second-copy token R[i] -> the token after R[i]'s first copy
    names = [f"blocks.{layer}.attn.hook_pattern" for layer in range(cfg.n_layers)]
    result = {"T": T, "probe": ("text prefix + R + R" if prefixed else "BOS + R + R") + (f", R from {len(pool)} tokens" if pool is not None else "")}
    loss = model(tokens, return_type="per_token_loss")  # entry j predicts token j + 1
    result["loss_first_repeat"] = float(loss[rows, starts[:, None] + i - 1].mean())  # predicting R[1:] inside the first copy
    result["loss_second_repeat"] = float(loss[rows, query - 1].mean())  # predicting R[1:] inside the second copy
    if not names:
        return result
    _, cache = model.run_with_cache(tokens, names_filter=names)
    induction = [cache[name][rows, :, query, key].mean(dim=(0, 1)) for name in names]  # [head] per layer
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


def frequent_tokens(stream, k: int, bos: int) -> torch.Tensor:
    """The ``k`` most frequent token ids of a training stream (``BOS`` excluded): probes drawn from tokens the model has seen."""
    import numpy as np

    counts = np.bincount(np.asarray(stream[: 5_000_000], dtype=np.int64))
    counts[bos] = 0
    return torch.from_numpy(np.argsort(-counts, kind="stable")[:k].copy())


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
    parser.add_argument("--probe-tokens", type=int, default=256,
                        help="draw the probes' R from the K most frequent training tokens (0: uniform over the vocabulary; default 256)")
    parser.add_argument("--seed", type=int, help="model and training seed (default: the preset's)")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    args = parser.parse_args()
    model_changes, train_changes = parse_overrides(args.model), parse_overrides(args.train)

    t = time.perf_counter()
    corpus = find_corpus()
    discover_s = time.perf_counter() - t
    print(f"corpus: {len(corpus.files)} files, {corpus.n_bytes:,} bytes, discovered in {discover_s:.1f} s", flush=True)
    for name in args.presets:
        preset = PRESETS[name]
        model_cfg = preset.model.replace(**model_changes)
        if "steps" in train_changes and "warmup_steps" not in train_changes:
            train_changes = {**train_changes, "warmup_steps": train_changes["steps"] // 20}
        train_cfg = preset.train.replace(**train_changes)
        if args.seed is not None:
            model_cfg, train_cfg = model_cfg.replace(seed=args.seed), train_cfg.replace(seed=args.seed)
        out = Path(args.out) / name
        if out.exists() and not args.keep:
            shutil.rmtree(out)
        t, c = time.perf_counter(), time.process_time()
        result = train(model_cfg, train_cfg, out_dir=out, corpus=corpus, resume=args.keep, progress=False, device=args.device)
        wall, cpu = time.perf_counter() - t, time.process_time() - c
        model, tokenizer = load(out)
        tokens = get_tokens(corpus, tokenizer, val_fraction=train_cfg.val_fraction)
        windows = eval_windows(tokens.val, model_cfg.n_ctx, 16, tokenizer.bos_id)
        train_tokens = tokens.train
        pool = frequent_tokens(train_tokens, args.probe_tokens, tokenizer.bos_id) if args.probe_tokens else None
        scores = head_scores(model, windows, pool=pool)
        prefixed = head_scores(model, windows, pool=pool, prefixed=True)
        final = json.loads((result.checkpoint / "config.json").read_text())["metrics"]
        line = {
            "preset": name,
            "model": model_changes,
            "train": train_changes,
            "seed": train_cfg.seed,
            "repeat_fraction": train_cfg.repeat_fraction,
            "steps": train_cfg.steps,
            "tokens": result.tokens_seen,
            "wall_s": round(wall, 1),
            "cpu_s": round(cpu, 1),
            "train_tokens_per_s": round(result.tokens_per_s),
            "train_loss": round(result.train_loss, 4),
            "val_loss": round(result.val_loss, 4),
            "icl": round(icl_score(final["val_loss_by_pos"]), 4),
            **{key: (round(value, 4) if isinstance(value, float) else value) for key, value in scores.items()},
            **{f"prefixed_{key}": (round(value, 4) if isinstance(value, float) else value) for key, value in prefixed.items()},
        }
        print(json.dumps(line), flush=True)
        if args.json:
            with open(args.json, "a") as handle:
                handle.write(json.dumps(line) + "\n")
        if args.trajectory:
            for step, folder in list_checkpoints(out):
                ckpt_model, _ = load(folder)
                s = head_scores(ckpt_model, windows, n_seqs=16, pool=pool)
                p = head_scores(ckpt_model, windows, n_seqs=16, pool=pool, prefixed=True)
                metrics = json.loads((folder / "config.json").read_text())["metrics"]
                print(
                    f"  step {step:5d}  val {metrics['val_loss']:.3f}  icl {icl_score(metrics['val_loss_by_pos']):+.3f}  "
                    f"ind {s.get('induction_by_layer')}  ind-after-text {p.get('induction_by_layer')}  prev {s.get('previous_by_layer')}  "
                    f"rep {s['loss_first_repeat']:.2f}->{s['loss_second_repeat']:.2f}",
                    flush=True,
                )


if __name__ == "__main__":
    sys.exit(main())
