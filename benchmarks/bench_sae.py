"""SAE training: throughput against a plain PyTorch loop of the same SAE, and peak memory while streaming 1M tokens.

1. **Throughput** (activations/s): :func:`circuits.training.sae.train_sae` against a plain loop written
   here with bare tensors: the same SAE (``d_in=128``, ``d_sae=1024``, ReLU + L1, decoder rows held at
   unit norm with the parallel gradient removed, Adam, per-latent firing bookkeeping), the same
   pre-made batches of 1024 activations, the same number of steps; resampling off in both (it runs
   every few hundred steps and is not part of the step). One thread; rounds alternate between the
   two and the medians are compared, in activations per second of process CPU time (the check,
   which other processes on a shared machine disturb far less) and of wall-clock time (shown).
   Must be >= 0.95x.
2. **Memory**: a fresh process streams ``--tokens`` tokens (default 2^20) of random windows of a
   one-layer attention-only model (``d_model=128``, vocabulary 512, ``n_ctx=64``) through
   :func:`~circuits.training.sae.hook_activations` into :func:`~circuits.training.sae.train_sae`
   (``d_sae=512``), recording the peak resident set size (``ru_maxrss``) after each eighth of the
   tokens. Flat means the peak after all tokens exceeds the peak after the first eighth by less
   than 32 MiB.

Run: ``python benchmarks/bench_sae.py [--rounds 5] [--steps 100] [--tokens 1048576]``; exits 1 if either check fails.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

D_IN, D_SAE, BATCH = 128, 1024, 1024
L1, LR = 1.0, 1e-3
GROWTH_LIMIT_MB = 32.0


def _batches(n: int):
    import torch

    g = torch.Generator().manual_seed(0)
    return [torch.randn(BATCH, D_IN, generator=g) * 3 + 1 for _ in range(n)]


def ours(batches, steps: int) -> tuple[float, float]:
    from circuits.model.sae import SAEConfig, SparseAutoencoder
    from circuits.training.sae import SAETrainConfig, train_sae

    sae = SparseAutoencoder(SAEConfig(d_in=D_IN, d_sae=D_SAE))
    cfg = SAETrainConfig(steps=steps, lr=LR, l1_coefficient=L1, resample_every=None, log_every=10_000)
    start, cpu = time.perf_counter(), time.process_time()
    train_sae(sae, (batches[i % len(batches)] for i in range(steps)), cfg)
    return steps * BATCH / (time.perf_counter() - start), steps * BATCH / (time.process_time() - cpu)


def plain(batches, steps: int) -> tuple[float, float]:
    """The same algorithm with bare tensors and no library code."""
    import torch

    g = torch.Generator().manual_seed(0)
    W_dec = torch.randn(D_SAE, D_IN, generator=g)
    W_dec = W_dec / W_dec.norm(dim=-1, keepdim=True)
    W_enc = W_dec.T.contiguous().requires_grad_()  # [d_in, d_sae] row-major, as the SAE stores it
    W_dec.requires_grad_()
    b_enc, b_dec = torch.zeros(D_SAE, requires_grad=True), torch.zeros(D_IN, requires_grad=True)
    opt = torch.optim.Adam([W_dec, W_enc, b_enc, b_dec], lr=LR)
    scale = D_IN**0.5 / float(batches[0].norm(dim=-1).mean())
    with torch.no_grad():
        b_dec.copy_((batches[0] * scale).mean(0))
    last_fired = torch.zeros(D_SAE, dtype=torch.long)
    start, cpu = time.perf_counter(), time.process_time()
    for step in range(steps):
        x = batches[step % len(batches)] * scale
        acts = torch.relu((x - b_dec) @ W_enc + b_enc)
        x_hat = acts @ W_dec + b_dec
        loss = (x_hat - x).pow(2).sum(-1).mean() + L1 * acts.sum(-1).mean()
        last_fired[(acts > 0).any(0)] = step
        opt.zero_grad(set_to_none=True)
        loss.backward()
        with torch.no_grad():
            W_dec.grad -= (W_dec.grad * W_dec).sum(-1, keepdim=True) * W_dec
        opt.step()
        with torch.no_grad():
            W_dec /= W_dec.norm(dim=-1, keepdim=True)
    return steps * BATCH / (time.perf_counter() - start), steps * BATCH / (time.process_time() - cpu)


def throughput(rounds: int, steps: int) -> dict:
    import torch

    torch.set_num_threads(1)
    batches = _batches(8)
    ours(batches, 10), plain(batches, 10)  # warm up
    a, b = [], []
    for _ in range(rounds):
        a.append(ours(batches, steps))
        b.append(plain(batches, steps))
    out = {}
    for i, clock in enumerate(("wall", "cpu")):
        out[clock] = {"ours": statistics.median(r[i] for r in a), "plain": statistics.median(r[i] for r in b),
                      "ours_all": [r[i] for r in a], "plain_all": [r[i] for r in b]}
    return out


def memory_child(n_tokens: int) -> dict:
    import torch

    from circuits import Transformer, TransformerConfig
    from circuits.model.sae import SAEConfig, SparseAutoencoder
    from circuits.training.sae import SAETrainConfig, hook_activations, train_sae

    torch.set_num_threads(2)
    model = Transformer(TransformerConfig(n_layers=1, d_model=128, n_heads=4, d_head=32, d_vocab=512, n_ctx=64, attn_only=True,
                                          normalization="none", use_bias=False, positional="shortformer")).eval()
    windows, n_ctx = 16, 64
    steps = n_tokens // (windows * n_ctx)
    g = torch.Generator().manual_seed(0)
    tokens = (torch.randint(0, 512, (windows, n_ctx), generator=g) for _ in range(steps))  # made lazily, like corpus windows
    peaks: list[tuple[int, float]] = []

    def record(step: int, _: dict) -> None:
        peaks.append(((step + 1) * windows * n_ctx, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0))

    sae = SparseAutoencoder(SAEConfig(d_in=128, d_sae=512, hook_name="blocks.0.hook_resid_post"))
    cfg = SAETrainConfig(steps=steps, l1_coefficient=L1, resample_every=250, log_every=max(1, steps // 8))
    start = time.perf_counter()
    log = train_sae(sae, hook_activations(model, "blocks.0.hook_resid_post", tokens), cfg, progress=record)
    return {"tokens": steps * windows * n_ctx, "activations": log.n_activations, "seconds": time.perf_counter() - start, "peaks": peaks}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--tokens", type=int, default=2**20)
    parser.add_argument("--part", choices=("both", "throughput", "memory"), default="both")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(memory_child(args.child)))
        return 0
    ok = True
    if args.part != "memory":
        ok = print_throughput(args.rounds, args.steps)
    if args.part != "throughput":
        ok = print_memory(args.tokens) and ok
    print("\nOK" if ok else "\nFAILED")
    return 0 if ok else 1


def print_throughput(rounds: int, steps: int) -> bool:
    both = throughput(rounds, steps)
    print(f"SAE training d_in={D_IN} d_sae={D_SAE}, batches of {BATCH}, {steps} steps x {rounds} rounds (1 thread)")
    for clock, t in both.items():
        print(f"  activations per {clock} second:")
        print(f"    train_sae   {t['ours']:>12,.0f}   (rounds: {', '.join(f'{v:,.0f}' for v in t['ours_all'])})")
        print(f"    plain loop  {t['plain']:>12,.0f}   (rounds: {', '.join(f'{v:,.0f}' for v in t['plain_all'])})")
        print(f"    ratio       {t['ours'] / t['plain']:.3f}x" + ("   (the check: must be >= 0.95)" if clock == "cpu" else ""))
    return both["cpu"]["ours"] / both["cpu"]["plain"] >= 0.95


def print_memory(n_tokens: int) -> bool:
    out = subprocess.run([sys.executable, __file__, "--child", str(n_tokens)], capture_output=True, text=True, check=True)
    m = json.loads(out.stdout.strip().splitlines()[-1])
    first, last = m["peaks"][0][1], m["peaks"][-1][1]
    print(f"\nstreaming {m['tokens']:,} tokens ({m['activations']:,} activations) from blocks.0.hook_resid_post into train_sae: {m['seconds']:.0f} s")
    for tokens, peak in m["peaks"]:
        print(f"  after {tokens:>10,} tokens   peak RSS {peak:8.1f} MiB")
    growth = last - first
    print(f"  growth after the first log {growth:+.1f} MiB   (must be < {GROWTH_LIMIT_MB:.0f})")
    return growth < GROWTH_LIMIT_MB


if __name__ == "__main__":
    sys.exit(main())
