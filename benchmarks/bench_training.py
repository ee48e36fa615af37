"""Training throughput of ``circuits.train`` against a plain PyTorch loop, measured side by side, plus MFU.

    python benchmarks/bench_training.py                      # attn-only-2l preset, CPU
    python benchmarks/bench_training.py --preset full-2l --steps 40 --rounds 5
    python benchmarks/bench_training.py --device cuda        # bfloat16 autocast, as circuits.train does on GPU

The reference is what a user would write by hand (nanoGPT style): the same architecture as the
preset's attention-only model (embedding, shortformer positions added to the query/key input,
``nn.Linear`` projections, ``F.scaled_dot_product_attention`` with a causal mask, unembedding),
the same AdamW parameter groups, warmup + cosine learning rate, gradient clipping, and the same
random windows drawn from the same token memmap. ``circuits.train`` runs with checkpoints only at
step 0 and the end; its throughput counts the training steps only (as the plain loop's does).
Rounds alternate between the two so that both see the same machine load; the median round
is reported. MFU = achieved model FLOP/s / the best float32 (bfloat16 on GPU) matmul FLOP/s
measured in this process; model FLOPs per token = 6 x (matmul parameters, unembedding included)
+ 6 x n_layers x n_ctx x n_heads x d_head (causal attention scores and mixing, forward + backward).
"""

from __future__ import annotations

import argparse
import math
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from circuits import get_preset, train
from circuits.training.data import find_corpus, get_tokenizer, get_tokens, sample_windows, step_generator
from circuits.training.loop import lr_at


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


def plain_loop(model_cfg, train_cfg, tokens, steps: int, start: int, device: torch.device) -> float:
    """Tokens/s of a hand-written loop over ``steps`` steps (after 3 warm-up steps)."""
    model = PlainAttnOnly(model_cfg).to(device)
    decay = [p for p in model.parameters() if p.ndim >= 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": train_cfg.weight_decay}], lr=train_cfg.lr, betas=train_cfg.betas, eps=train_cfg.eps)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)

    def step(i: int) -> None:
        for group in optimizer.param_groups:
            group["lr"] = lr_at(i, train_cfg)
        batch = sample_windows(tokens.train, model_cfg.n_ctx, train_cfg.batch_size, step_generator(train_cfg.seed, i), tokens.bos_id).to(device)
        with autocast:
            loss = model(batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), train_cfg.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for i in range(3):
        step(start + i)
    _sync(device)
    tick = time.perf_counter()
    for i in range(steps):
        step(start + 3 + i)
    _sync(device)
    return steps * train_cfg.batch_size * model_cfg.n_ctx / (time.perf_counter() - tick)


def circuits_loop(model_cfg, train_cfg, corpus, steps: int, device: str, cache_dir) -> float:
    """Tokens/s of ``circuits.train`` itself (steps only; checkpoints at step 0 and the end)."""
    out = Path(tempfile.mkdtemp(prefix="bench-circuits-"))
    try:
        cfg = train_cfg.replace(steps=steps + 3, warmup_steps=min(train_cfg.warmup_steps, steps), n_log_checkpoints=0, n_linear_checkpoints=0, eval_windows=1, log_every=10**6)
        result = train(model_cfg, cfg, out_dir=out / "run", corpus=corpus, device=device, cache_dir=cache_dir, progress=False)
        return result.tokens_per_s
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="attn-only-2l")
    parser.add_argument("--steps", type=int, default=100, help="timed steps per round and loop")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--cache-dir")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    preset = get_preset(args.preset)
    model_cfg, train_cfg = preset.model, preset.train
    if args.batch_size:
        train_cfg = train_cfg.replace(batch_size=args.batch_size)
    if not (model_cfg.attn_only and model_cfg.positional == "shortformer" and model_cfg.normalization == "none" and not model_cfg.use_bias and model_cfg.n_kv_heads_ == model_cfg.n_heads and not model_cfg.smear_key):
        raise SystemExit(f"the plain reference implements the Framework attention-only architecture; {args.preset} is not one")
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else ("cpu" if args.device == "auto" else args.device))

    corpus = find_corpus()
    tokenizer = get_tokenizer(corpus, model_cfg.d_vocab, val_fraction=train_cfg.val_fraction, max_train_chars=train_cfg.tokenizer_train_chars, cache_dir=args.cache_dir)
    tokens = get_tokens(corpus, tokenizer, val_fraction=train_cfg.val_fraction, cache_dir=args.cache_dir)
    peak = matmul_peak(device)
    ours, plain = [], []
    for round_ in range(args.rounds):
        ours.append(circuits_loop(model_cfg, train_cfg, corpus, args.steps, str(device), args.cache_dir))
        plain.append(plain_loop(model_cfg, train_cfg, tokens, args.steps, 0, device))
        print(f"round {round_ + 1}: circuits {ours[-1]:,.0f} tokens/s, plain {plain[-1]:,.0f} tokens/s, ratio {ours[-1] / plain[-1]:.3f}", flush=True)
    ours_median, plain_median = statistics.median(ours), statistics.median(plain)
    per_token = flops_per_token(model_cfg)
    print(f"\npreset {args.preset}: batch {train_cfg.batch_size} x n_ctx {model_cfg.n_ctx}, device {device}, {torch.get_num_threads()} threads")
    print(f"matmul peak (measured)   {peak / 1e9:8.1f} GFLOP/s")
    print(f"model FLOPs per token    {per_token / 1e6:8.2f} MFLOP")
    print(f"circuits.train           {ours_median:10,.0f} tokens/s   MFU {ours_median * per_token / peak:6.1%}")
    print(f"plain PyTorch loop       {plain_median:10,.0f} tokens/s   MFU {plain_median * per_token / peak:6.1%}")
    print(f"ratio circuits / plain   {ours_median / plain_median:10.3f}   (median of {args.rounds} alternating rounds of {args.steps} steps)")


if __name__ == "__main__":
    main()
