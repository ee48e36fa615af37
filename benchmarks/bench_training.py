"""Whole-run training throughput of ``circuits.train`` against a plain PyTorch loop, measured side by side, plus MFU.

    python benchmarks/bench_training.py                          # attn-only-2l, full 5000-step runs, 1 thread
    python benchmarks/bench_training.py --steps 1500 --rounds 5  # a cut run, more rounds
    python benchmarks/bench_training.py --variants plain eager compiled compiled-cold

A *whole run* is what a user waits for. For ``circuits.train``: the ``train()`` call (data from the
token cache, folder, model, optimizer, every step, the evaluation and checkpoint write at each of
the preset's checkpoints, and for the compiled variants the ``torch.compile`` of the step). For the
reference: what a user writes by hand (nanoGPT style) over the same batches: load the same token
cache, build the same attention-only architecture (embedding, shortformer positions added to the
query/key input, ``nn.Linear`` projections, ``F.scaled_dot_product_attention``, unembedding), the
same AdamW groups (PyTorch's default ``foreach`` kernel), warmup + cosine learning rate and
gradient clipping, and run every step; no evaluation, no checkpoint.

Variants: ``plain`` (the reference), ``eager`` (``circuits.train``), ``compiled``
(``circuits.train(compiled=True)`` with a warm inductor cache, as every run after the first of an
architecture on a machine), ``compiled-cold`` (the same with an empty inductor cache: the first run).
Each run is its own process (so process-wide state, caches and allocator included, starts fresh),
with ``--threads`` intra-op threads; rounds run the variants in rotated order so that machine load
drifts over all of them alike, and ratios are paired within a round (median and range reported).
Tokens/s counts ``steps x batch x n_ctx`` over the whole run's wall time (``step tok/s``: over the
steps alone). MFU = model FLOP/s / the best float32 (bfloat16 on GPU) 1024^3 matmul FLOP/s measured
in this process at the same thread count; model FLOPs per token = 6 x (matmul parameters,
unembedding included) + 6 x n_layers x n_ctx x n_heads x d_head (causal attention scores and mixing,
forward + backward).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from circuits import get_preset, train
from circuits.training.data import find_corpus, get_tokenizer, get_tokens, sample_windows, step_generator
from circuits.training.loop import lr_at

VARIANTS = ("plain", "eager", "compiled", "compiled-cold")


class PlainAttention(nn.Module):
    def __init__(self, d_model: int, n_heads: int, d_head: int):
        super().__init__()
        self.n_heads, self.d_head = n_heads, d_head
        self.q = nn.Linear(d_model, n_heads * d_head, bias=False)
        self.k = nn.Linear(d_model, n_heads * d_head, bias=False)
        self.v = nn.Linear(d_model, n_heads * d_head, bias=False)
        self.o = nn.Linear(n_heads * d_head, d_model, bias=False)

    def forward(self, x: torch.Tensor, qk_input: torch.Tensor) -> torch.Tensor:
        batch, pos, _ = x.shape
        split = lambda t: t.view(batch, pos, self.n_heads, self.d_head).transpose(1, 2)  # noqa: E731
        z = F.scaled_dot_product_attention(split(self.q(qk_input)), split(self.k(qk_input)), split(self.v(x)), is_causal=True)
        return self.o(z.transpose(1, 2).reshape(batch, pos, self.n_heads * self.d_head))


class PlainAttnOnly(nn.Module):
    """Attention-only transformer with shortformer positions, no norms, no biases (the presets' architecture)."""

    def __init__(self, cfg):
        super().__init__()
        self.embed = nn.Embedding(cfg.d_vocab, cfg.d_model)
        self.pos = nn.Parameter(torch.randn(cfg.n_ctx, cfg.d_model) * cfg.init_range_)
        self.layers = nn.ModuleList(PlainAttention(cfg.d_model, cfg.n_heads, cfg.d_head_) for _ in range(cfg.n_layers))
        self.unembed = nn.Linear(cfg.d_model, cfg.d_vocab, bias=False)
        for param in self.parameters():
            nn.init.normal_(param, std=cfg.init_range_)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        resid = self.embed(tokens)
        pos = self.pos[: tokens.shape[1]]
        for layer in self.layers:
            resid = resid + layer(resid, resid + pos)
        logits = self.unembed(resid)
        return F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), tokens[:, 1:].flatten())


def plain_run(model_cfg, train_cfg, cache_dir, device: torch.device) -> dict[str, float]:
    """A hand-written loop over ``train_cfg.steps`` steps; wall time from loading the token cache to the last step."""
    tick = time.perf_counter()
    corpus = find_corpus()
    tokenizer = get_tokenizer(corpus, model_cfg.d_vocab, val_fraction=train_cfg.val_fraction, max_train_chars=train_cfg.tokenizer_train_chars, cache_dir=cache_dir)
    tokens = get_tokens(corpus, tokenizer, val_fraction=train_cfg.val_fraction, cache_dir=cache_dir)
    model = PlainAttnOnly(model_cfg).to(device)
    decay = [p for p in model.parameters() if p.ndim >= 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": train_cfg.weight_decay}], lr=train_cfg.lr, betas=train_cfg.betas, eps=train_cfg.eps)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)
    steps_start = time.perf_counter()
    for step in range(train_cfg.steps):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, train_cfg)
        batch = sample_windows(tokens.train, model_cfg.n_ctx, train_cfg.batch_size, step_generator(train_cfg.seed, step), tokens.bos_id, train_cfg.repeat_fraction)
        with autocast:
            loss = model(batch.to(device))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), train_cfg.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    _sync(device)
    end = time.perf_counter()
    return {"wall_s": end - tick, "step_s": end - steps_start}


def circuits_run(model_cfg, train_cfg, cache_dir, device: torch.device, compiled: bool) -> dict[str, float]:
    """One whole ``circuits.train`` run (the preset's checkpoints and evaluations included) in a fresh folder."""
    out = Path(tempfile.mkdtemp(prefix="bench-circuits-"))
    try:
        tick = time.perf_counter()
        result = train(model_cfg, train_cfg, out_dir=out / "run", device=str(device), cache_dir=cache_dir, progress=False, compiled=compiled)
        wall = time.perf_counter() - tick
        return {"wall_s": wall, "step_s": result.tokens_seen / result.tokens_per_s, "checkpoints": len(train_cfg.checkpoint_steps)}
    finally:
        shutil.rmtree(out, ignore_errors=True)


def matmul_peak(device: torch.device, size: int = 1024, repeats: int = 10) -> float:
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    best = math.inf
    for _ in range(repeats):
        _sync(device)
        tick = time.perf_counter()
        for _ in range(4):
            a @ b
        _sync(device)
        best = min(best, (time.perf_counter() - tick) / 4)
    return 2 * size**3 / best


def flops_per_token(cfg) -> float:
    heads = cfg.n_heads * cfg.d_head_
    kv = cfg.n_kv_heads_ * cfg.d_head_
    per_layer = cfg.d_model * (2 * heads + 2 * kv)
    if cfg.has_mlp:
        per_layer += (3 if cfg.act_fn == "swiglu" else 2) * cfg.d_model * cfg.d_mlp_
    matmul_params = cfg.n_layers * per_layer + cfg.d_model * cfg.d_vocab_out_
    return 6 * matmul_params + 6 * cfg.n_layers * cfg.n_ctx * heads


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _configs(args):
    preset = get_preset(args.preset)
    model_cfg, train_cfg = preset.model, preset.train
    if args.steps and args.steps != train_cfg.steps:
        train_cfg = train_cfg.replace(steps=args.steps, warmup_steps=args.steps // 20)
    if args.batch_size:
        train_cfg = train_cfg.replace(batch_size=args.batch_size)
    return model_cfg, train_cfg


def worker(args) -> None:
    """One run of one variant, in this process; prints its timings as one JSON line."""
    if args.threads:
        torch.set_num_threads(args.threads)
    model_cfg, train_cfg = _configs(args)
    device = torch.device(args.device)
    if args.worker == "plain":
        timings = plain_run(model_cfg, train_cfg, args.cache_dir, device)
    else:
        timings = circuits_run(model_cfg, train_cfg, args.cache_dir, device, compiled=args.worker.startswith("compiled"))
    print(json.dumps(timings))


def run_variant(args, variant: str) -> dict[str, float]:
    command = [sys.executable, __file__, "--worker", variant, "--preset", args.preset, "--device", args.device]
    for flag in ("steps", "batch_size", "threads", "cache_dir"):
        if getattr(args, flag):
            command += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
    env = dict(os.environ)
    cold = tempfile.mkdtemp(prefix="bench-inductor-") if variant == "compiled-cold" else None
    if cold:
        env["TORCHINDUCTOR_CACHE_DIR"] = cold
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    finally:
        if cold:
            shutil.rmtree(cold, ignore_errors=True)
    if done.returncode != 0:
        raise SystemExit(f"{variant} run failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def report(args, results: dict[str, list[dict]], tokens: int, peak: float, per_token: float) -> None:
    def rate(run, key):
        return tokens / run[key]

    print(f"\npreset {args.preset}: {tokens:,} tokens per run, device {args.device}, {args.threads or torch.get_num_threads()} threads, {args.rounds} rounds")
    print(f"matmul peak (measured) {peak / 1e9:.1f} GFLOP/s; model FLOPs per token {per_token / 1e6:.2f} MFLOP")
    print("| variant | whole-run tok/s | x plain (median, range) | MFU | step tok/s | steps x plain | step MFU |\n|---|---|---|---|---|---|---|")
    plain = results.get("plain")
    for variant, runs in results.items():
        whole, steps = [rate(r, "wall_s") for r in runs], [rate(r, "step_s") for r in runs]
        ratio = step_ratio = "—"
        if plain:
            paired = [w / rate(p, "wall_s") for w, p in zip(whole, plain)]
            paired_steps = [s / rate(p, "step_s") for s, p in zip(steps, plain)]
            ratio = f"{statistics.median(paired):.3f} ({min(paired):.3f}-{max(paired):.3f})"
            step_ratio = f"{statistics.median(paired_steps):.3f} ({min(paired_steps):.3f}-{max(paired_steps):.3f})"
        w, s = statistics.median(whole), statistics.median(steps)
        print(f"| {variant} | {w:,.0f} | {ratio} | {w * per_token / peak:.1%} | {s:,.0f} | {step_ratio} | {s * per_token / peak:.1%} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="attn-only-2l")
    parser.add_argument("--steps", type=int, help="steps per run (default: the preset's, 5000)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads in every run (the report's workers use 1)")
    parser.add_argument("--cache-dir")
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=["plain", "eager", "compiled"])
    parser.add_argument("--worker", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    model_cfg, train_cfg = _configs(args)
    if not (model_cfg.attn_only and model_cfg.positional == "shortformer" and model_cfg.normalization == "none" and not model_cfg.use_bias and model_cfg.n_kv_heads_ == model_cfg.n_heads and not model_cfg.smear_key):
        raise SystemExit(f"the plain reference implements the Framework attention-only architecture; {args.preset} is not one")
    torch.set_num_threads(args.threads)
    peak = matmul_peak(torch.device(args.device))
    if "compiled" in args.variants:  # warm the inductor cache, untimed, so that "compiled" measures a warm start
        run_variant(argparse.Namespace(**{**vars(args), "steps": 30}), "compiled")
    results: dict[str, list[dict]] = {variant: [] for variant in args.variants}
    for round_ in range(args.rounds):
        order = args.variants[round_ % len(args.variants):] + args.variants[: round_ % len(args.variants)]
        for variant in order:
            results[variant].append(run_variant(args, variant))
            print(f"round {round_ + 1} {variant}: {json.dumps(results[variant][-1])}", flush=True)
    report(args, results, train_cfg.steps * train_cfg.batch_size * model_cfg.n_ctx, peak, flops_per_token(model_cfg))


if __name__ == "__main__":
    main()
