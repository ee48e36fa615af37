"""The floors under ``run_with_cache`` on the attention-only presets: what a cache must hold, with no hooks at all.

    python benchmarks/bench_cache_floor.py [--threads 1] [--rounds 15]

On the weights of an ``attn-only-2l`` preset model and one batch of the presets' shape (16 x 64
tokens), this times three hook-free forwards written out in plain torch, side by side in
alternating rounds:

- ``fused``: ``scaled_dot_product_attention``, as ``model(tokens)`` runs it;
- ``materialise``: writes what an *eager* cache must return for every layer (the
  ``[batch, head, pos, pos]`` scores and pattern, and the per-head result ``[batch, pos, head,
  d_model]``): the floor for any implementation that computes those in the forward pass (the
  ``run_with_cache`` of TransformerLens and of this package before it derived them lazily);
- ``keep``: the fused forward keeping alive every tensor a *lazy* cache holds (embeddings, q, k,
  v, z, residuals; scores, pattern and per-head results are derived on first read): the floor
  for ``run_with_cache`` as it is now.

Their ratios to ``fused`` are lower bounds for a ``run_with_cache`` of each kind against the fused
forward, before any hook or cache bookkeeping (README, "Benchmarks").
"""

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from circuits import PRESETS
from circuits.model import Transformer


def make_forward(model: Transformer, tokens: torch.Tensor):
    """``forward(mode)``: the model's attention-only math in plain torch (modes: see the module docstring)."""
    cfg = model.config
    B, T = tokens.shape
    H, D, M = cfg.n_heads, cfg.d_head_, cfg.d_model
    layers = [tuple(p.detach() for p in (b.attn.W_Q, b.attn.W_K, b.attn.W_V, b.attn.W_O)) for b in model.blocks]
    W_E, W_pos, W_U = model.embed.W_E.detach(), model.pos_embed.W_pos.detach()[:T], model.unembed.W_U.detach()
    mask = torch.full((T, T), float("-inf")).triu(1)

    def project(h, W):  # [B, T, M] @ [H, M, D] -> [B, H, T, D]
        return (h @ W.permute(1, 0, 2).reshape(M, H * D)).view(B, T, H, D).transpose(1, 2)

    def forward(mode: str) -> torch.Tensor:
        keep = mode == "keep"
        resid = F.embedding(tokens, W_E)
        kept = [resid] if keep else None
        for W_Q, W_K, W_V, W_O in layers:
            qk = resid + W_pos  # shortformer: positions enter queries and keys only
            q, k, v = project(qk, W_Q), project(qk, W_K), project(resid, W_V)
            if mode == "materialise":
                scores = (q * D**-0.5) @ k.transpose(-1, -2) + mask  # hook_attn_scores [B, H, T, T]
                pattern = scores.softmax(-1)  # hook_pattern
                z = (pattern @ v).transpose(1, 2)  # hook_z [B, T, H, D]
                result = torch.bmm(z.reshape(B * T, H, D).transpose(0, 1), W_O)  # hook_result, [H, B*T, M]
                out = result.sum(0).view(B, T, M)
            else:
                z = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2)
                out = z.reshape(B, T, H * D) @ W_O.reshape(H * D, M)
            resid = resid + out
            if keep:
                kept += [q, k, v, z, out, resid]
        return resid @ W_U

    return forward


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = PRESETS["attn-only-2l"].model
    model = Transformer(cfg).eval()
    tokens = torch.randint(0, cfg.d_vocab, (16, cfg.n_ctx), generator=torch.Generator().manual_seed(0))
    forward = make_forward(model, tokens)
    modes = ("fused", "materialise", "keep")
    with torch.no_grad():
        reference = model(tokens)
        for mode in modes:
            diff = float((forward(mode) - reference).abs().max())
            assert diff < 1e-4, f"plain-torch forward ({mode}) differs from the model by {diff}"
        times: dict[str, list[float]] = {mode: [] for mode in modes}
        for _ in range(args.rounds):
            for mode in modes:
                for _ in range(3):
                    forward(mode)
                tick = time.perf_counter()
                for _ in range(30):
                    forward(mode)
                times[mode].append((time.perf_counter() - tick) / 30 * 1e3)
    print(f"attn-only-2l, batch 16 x {cfg.n_ctx}, torch threads {args.threads}, {args.rounds} alternating rounds of 30 forwards (logits equal to the model's to 1e-4)")
    for mode, label in (("fused", "fused forward"), ("materialise", "materialising scores, pattern, result"), ("keep", "fused, keeping what a lazy cache holds")):
        ratios = [a / b for a, b in zip(times[mode], times["fused"])]
        print(f"{label:40s} {statistics.median(times[mode]):6.2f} ms   x fused: median {statistics.median(ratios):.3f}, range {min(ratios):.3f}-{max(ratios):.3f}")


if __name__ == "__main__":
    main()
