"""Where one eager training step of a preset spends its time (torch.profiler, CPU), grouped as in the README.

    python benchmarks/profile_training_step.py                 # attn-only-2l, 1 thread
    python benchmarks/profile_training_step.py --preset attn-only-1l --threads 2

The step is what ``circuits.train`` runs: ``next_token_loss``, backward, gradient clipping, the
fused AdamW step. Fresh random batches every step (one batch over and over drives the loss
towards zero and the kernels into denormals). Prints the milliseconds per step, the share of
matmuls, attention, the loss and the rest, and the matmuls' GFLOP/s.
"""

from __future__ import annotations

import argparse

import torch
from torch.profiler import ProfilerActivity, profile

from circuits import get_preset
from circuits.model.transformer import Transformer

GROUPS = {  # profiler op name (prefix) -> group
    "aten::mm": "matmuls", "aten::bmm": "matmuls", "aten::addmm": "matmuls",
    "aten::_scaled_dot_product": "attention",
    "aten::_log_softmax": "loss", "aten::nll_loss": "loss", "aten::fill_": "zero-fills (mostly the logits' gradient)",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="attn-only-2l")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=50)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    preset = get_preset(args.preset)
    model = Transformer(preset.model)
    opt = torch.optim.AdamW(model.parameters(), lr=preset.train.lr, fused=True)
    batches = torch.randint(0, preset.model.d_vocab, (args.steps + 20, preset.train.batch_size, preset.model.n_ctx))

    def step(tokens: torch.Tensor) -> None:
        model.next_token_loss(tokens).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), preset.train.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)

    for tokens in batches[:20]:
        step(tokens)
    with profile(activities=[ProfilerActivity.CPU], with_flops=True) as prof:
        for tokens in batches[20:]:
            step(tokens)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    shares: dict[str, float] = {}
    for event in events:
        group = next((g for prefix, g in GROUPS.items() if event.key.startswith(prefix)), "the rest (elementwise, optimizer, autograd)")
        shares[group] = shares.get(group, 0.0) + event.self_cpu_time_total
    mm_flops = sum(e.flops for e in events if e.key in ("aten::mm", "aten::bmm", "aten::addmm"))
    print(f"{args.preset}: batch {preset.train.batch_size} x {preset.model.n_ctx}, {args.threads} thread(s), {args.steps} steps, torch {torch.__version__}")
    print(f"{total / args.steps / 1e3:.2f} ms per step")
    for group, us in sorted(shares.items(), key=lambda kv: -kv[1]):
        print(f"  {group:48s} {100 * us / total:5.1f}%")
    print(f"matmuls: {mm_flops / (shares['matmuls'] / 1e6) / 1e9:.0f} GFLOP/s")


if __name__ == "__main__":
    main()
