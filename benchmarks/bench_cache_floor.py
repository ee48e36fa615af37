"""The floor under ``run_with_cache`` on the attention-only presets: what the cache must hold, with no hooks at all.

    python benchmarks/bench_cache_floor.py

On the weights of an ``attn-only-2l`` preset model and one batch of the presets' shape (16 x 64
tokens), this times two hook-free forwards written out in plain torch, side by side in
alternating rounds: the fused one (``scaled_dot_product_attention``, as ``model(tokens)`` runs
it), and one that materialises the tensors ``run_with_cache`` must return for every layer (the
``[batch, head, pos, pos]`` scores and pattern, and the per-head result ``[batch, pos, head,
d_model]``). Their ratio is a lower bound for any implementation's ``run_with_cache`` against
the fused forward, before any hook or cache bookkeeping (README, "Benchmarks").
"""

import statistics
import time

import torch
import torch.nn.functional as F

from circuits import PRESETS
from circuits.model import Transformer


def make_forward(model: Transformer, tokens: torch.Tensor):
    """``forward(explicit)``: the model's attention-only math in plain torch, fused or materialising every cached tensor."""
    cfg = model.config
    B, T = tokens.shape
    H, D, M = cfg.n_heads, cfg.d_head_, cfg.d_model
    layers = [tuple(p.detach() for p in (b.attn.W_Q, b.attn.W_K, b.attn.W_V, b.attn.W_O)) for b in model.blocks]
    W_E, W_pos, W_U = model.embed.W_E.detach(), model.pos_embed.W_pos.detach()[:T], model.unembed.W_U.detach()
    mask = torch.full((T, T), float("-inf")).triu(1)

    def project(h, W):  # [B, T, M] @ [H, M, D] -> [B, H, T, D]
        return (h @ W.permute(1, 0, 2).reshape(M, H * D)).view(B, T, H, D).transpose(1, 2)

    def forward(explicit: bool) -> torch.Tensor:
        resid = F.embedding(tokens, W_E)
        for W_Q, W_K, W_V, W_O in layers:
            qk = resid + W_pos  # shortformer: positions enter queries and keys only
            q, k, v = project(qk, W_Q), project(qk, W_K), project(resid, W_V)
            if explicit:
                scores = (q * D**-0.5) @ k.transpose(-1, -2) + mask  # hook_attn_scores [B, H, T, T]
                pattern = scores.softmax(-1)  # hook_pattern
                z = (pattern @ v).transpose(1, 2)  # hook_z [B, T, H, D]
                result = torch.bmm(z.reshape(B * T, H, D).transpose(0, 1), W_O)  # hook_result, [H, B*T, M]
                out = result.sum(0).view(B, T, M)
            else:
                z = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2)
                out = z.reshape(B, T, H * D) @ W_O.reshape(H * D, M)
            resid = resid + out
        return resid @ W_U

    return forward


def main() -> None:
    torch.set_num_threads(2)
    cfg = PRESETS["attn-only-2l"].model
    model = Transformer(cfg).eval()
    tokens = torch.randint(0, cfg.d_vocab, (16, cfg.n_ctx), generator=torch.Generator().manual_seed(0))
    forward = make_forward(model, tokens)
    with torch.no_grad():
        reference = model(tokens)
        for explicit in (False, True):
            diff = float((forward(explicit) - reference).abs().max())
            assert diff < 1e-4, f"plain-torch forward (explicit={explicit}) differs from the model by {diff}"
        ratios, times = [], []
        for _ in range(15):
            ts = []
            for explicit in (False, True):
                for _ in range(3):
                    forward(explicit)
                tick = time.perf_counter()
                for _ in range(30):
                    forward(explicit)
                ts.append((time.perf_counter() - tick) / 30 * 1e3)
            ratios.append(ts[1] / ts[0])
            times.append(ts)
    fused = statistics.median(t[0] for t in times)
    explicit = statistics.median(t[1] for t in times)
    print(f"attn-only-2l, batch 16 x {cfg.n_ctx}, torch threads 2, 15 alternating rounds of 30 forwards (logits equal to the model's to 1e-4)")
    print(f"fused forward                         {fused:6.2f} ms")
    print(f"materialising scores, pattern, result {explicit:6.2f} ms")
    print(f"ratio (floor for run_with_cache / forward): median {statistics.median(ratios):.3f}, range {min(ratios):.3f}-{max(ratios):.3f}")


if __name__ == "__main__":
    main()
