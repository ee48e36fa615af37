"""Peak memory of scoring every attention head over many tokens: streaming hooks vs caching everything.

Each measurement runs in a fresh subprocess and reports its own peak resident set size
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``), once after setup (imports, the model, the token
tensor: the baseline) and once after the work, so the numbers do not depend on what ran before.

- ``streaming``: ``circuits.attention_scores`` (previous-, current-, first- and duplicate-token
  scores of every head in one pass, inside ``hook_pattern`` hooks) over ``--tokens`` tokens
  (default 2^20 = 1,048,576);
- ``naive``: ``run_with_cache`` on every batch, keeping every cache, then the previous-token score
  from the cached patterns, on ``--naive-tokens`` tokens (default 16,384); its growth per token
  is extrapolated to ``--tokens``.

Model: 2-layer attention-only, d_model=128, 8 heads of 16, d_vocab=2048, n_ctx=256, shortformer;
batches of 16 sequences of 256 tokens.

Run: ``python benchmarks/bench_scores_memory.py``. The streaming run must stay under 1 GiB peak;
the script exits with status 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

LIMIT_MB = 1024.0
N_CTX = 256


def _model():
    import torch

    from circuits import Transformer, TransformerConfig

    torch.set_num_threads(2)
    cfg = TransformerConfig(
        n_layers=2, d_model=128, n_heads=8, d_head=16, d_vocab=2048, n_ctx=N_CTX, attn_only=True, positional="shortformer"
    )
    return Transformer(cfg).eval()


def _tokens(n_tokens: int):
    import torch

    return torch.randint(0, 2048, (n_tokens // N_CTX, N_CTX), generator=torch.Generator().manual_seed(0))


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # kilobytes on Linux


def child(mode: str, n_tokens: int, batch_size: int) -> dict:
    import torch

    import circuits

    model = _model()
    tokens = _tokens(n_tokens)
    baseline = _peak_mb()
    start = time.perf_counter()
    if mode == "streaming":
        scores = circuits.attention_scores(model, tokens, batch_size=batch_size)
        checksum = float(sum(s.sum() for s in scores.values()))
    elif mode == "naive":
        caches = []
        with torch.no_grad():
            for i in range(0, tokens.shape[0], batch_size):
                _, cache = model.run_with_cache(tokens[i : i + batch_size])
                caches.append(cache)
        patterns = [torch.cat([c["pattern", l] for c in caches]) for l in range(2)]  # [batch, head, q, k]
        q = torch.arange(1, N_CTX)
        checksum = float(sum(p[..., q, q - 1].mean() for p in patterns))
    else:
        raise ValueError(mode)
    seconds = time.perf_counter() - start
    return {"mode": mode, "tokens": int(tokens.numel()), "baseline_mb": baseline, "peak_mb": _peak_mb(), "seconds": seconds, "checksum": checksum}


def run_child(mode: str, n_tokens: int, batch_size: int) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", mode, "--tokens", str(n_tokens), "--batch-size", str(batch_size)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=2**20)
    parser.add_argument("--naive-tokens", type=int, default=2**14)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--child", choices=["streaming", "naive"])
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.tokens, args.batch_size)))
        return 0

    stream = run_child("streaming", args.tokens, args.batch_size)
    naive = run_child("naive", args.naive_tokens, args.batch_size)
    per_token = (naive["peak_mb"] - naive["baseline_mb"]) / naive["tokens"]
    extrapolated = naive["baseline_mb"] + per_token * stream["tokens"]
    print("Peak resident memory, scoring all 16 heads (2 layers x 8) of a 2-layer attention-only model")
    print(f"  baseline (imports + model + tokens):        {stream['baseline_mb']:8.0f} MB")
    print(
        f"  streaming, {stream['tokens']:>9,} tokens:             {stream['peak_mb']:8.0f} MB "
        f"(+{stream['peak_mb'] - stream['baseline_mb']:.0f} MB over baseline, {stream['seconds']:.0f} s)"
    )
    print(
        f"  naive cache-everything, {naive['tokens']:>7,} tokens:   {naive['peak_mb']:8.0f} MB "
        f"(+{naive['peak_mb'] - naive['baseline_mb']:.0f} MB, {per_token * 1024:.1f} KB per token)"
    )
    print(f"  naive extrapolated to {stream['tokens']:,} tokens:    {extrapolated:8.0f} MB")
    print(f"  ratio naive / streaming at {stream['tokens']:,} tokens: {extrapolated / stream['peak_mb']:.0f}x")
    ok = stream["peak_mb"] < LIMIT_MB
    print(f"  streaming peak {'<' if ok else '>='} {LIMIT_MB:.0f} MB: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
