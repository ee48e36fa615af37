"""Would training a preset's seeds as one batched model beat training them one after the other? Measured side by side.

    python benchmarks/bench_seed_batching.py                   # attn-only-2l, 3 seeds, 1 thread
    python benchmarks/bench_seed_batching.py --threads 2 --seeds 3 --steps 60

The report trains each preset on several seeds. On a CPU the preset's matmuls are small
(1024 x 128 x 128), so stacking the seeds' weights on an instance axis and running one batched
step (``torch.func.vmap`` over ``functional_call``, the seeds' parameters stacked by
``stack_module_state``) could use the cores better than separate steps. Three ways to run the
same ``seeds`` training steps (AdamW, fused kernel, same batch size per seed), timed in one process
with ``--threads`` intra-op threads, the rows in rotated order over ``--rounds`` rounds:

- ``separate``: one model per seed, one step each (what the report's workers do), the reference;
- ``vmap``: the seeds' models stacked, one vmapped forward + backward, one optimizer step;
- ``wide batch``: one model with ``seeds`` times the batch: the same matmul sizes a batched step
  would reach with a perfect instance axis (an upper bound on what batching can gain; not a
  substitute, since it trains one model).

Prints steps x seeds x tokens per second and each row's ratio to ``separate`` (median over rounds).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from circuits import get_preset
from circuits.model.transformer import Transformer


class Loss(nn.Module):
    """``model.next_token_loss`` as a module's forward (what ``functional_call`` calls)."""

    def __init__(self, model: Transformer):
        super().__init__()
        self.model = model

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.model.next_token_loss(tokens)


def _models(preset, seeds: int) -> list[Transformer]:
    out = []
    for seed in range(seeds):
        torch.manual_seed(seed)
        out.append(Transformer(preset.model))
    return out


def separate(preset, seeds: int, batches: torch.Tensor, steps: int) -> float:
    models = _models(preset, seeds)
    opts = [torch.optim.AdamW(m.parameters(), lr=1e-3, fused=True) for m in models]
    start = time.perf_counter()
    for step in range(steps):
        for i, (model, opt) in enumerate(zip(models, opts)):
            model.next_token_loss(batches[step, i]).backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def vmapped(preset, seeds: int, batches: torch.Tensor, steps: int) -> float:
    models = [Loss(m) for m in _models(preset, seeds)]
    params, buffers = stack_module_state(models)
    base = Loss(Transformer(preset.model)).to("meta")
    leaves = list(params.values())
    opt = torch.optim.AdamW(leaves, lr=1e-3, fused=True)

    def one(p, b, tokens):
        return functional_call(base, (p, b), (tokens,))

    step_fn = vmap(one)
    start = time.perf_counter()
    for step in range(steps):
        step_fn(params, buffers, batches[step]).sum().backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def wide(preset, seeds: int, batches: torch.Tensor, steps: int) -> float:
    model = _models(preset, 1)[0]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)
    start = time.perf_counter()
    for step in range(steps):
        model.next_token_loss(batches[step].flatten(0, 1)).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return time.perf_counter() - start


ROWS = {"separate": separate, "vmap": vmapped, "wide batch": wide}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="attn-only-2l")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    preset = get_preset(args.preset)
    batch, n_ctx = preset.train.batch_size, preset.model.n_ctx
    gen = torch.Generator().manual_seed(0)
    batches = torch.randint(0, preset.model.d_vocab, (args.steps + args.warmup, args.seeds, batch, n_ctx), generator=gen)
    tokens = args.steps * args.seeds * batch * n_ctx
    rates: dict[str, list[float]] = {name: [] for name in ROWS}
    names = list(ROWS)
    for r in range(args.rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:
            ROWS[name](preset, args.seeds, batches[: args.warmup], args.warmup)  # warm-up (allocator, first-call costs)
            rates[name].append(tokens / ROWS[name](preset, args.seeds, batches[args.warmup:], args.steps))
    print(f"{args.preset}: {args.seeds} seeds x batch {batch} x {n_ctx} tokens, {args.steps} steps, {args.threads} thread(s), "
          f"{args.rounds} rounds; torch {torch.__version__}")
    print(f"| row | tokens/s (median) | ratio to separate (median, range) |\n|---|---|---|")
    for name in ROWS:
        ratios = [a / b for a, b in zip(rates[name], rates["separate"])]
        print(f"| {name} | {statistics.median(rates[name]):,.0f} | {statistics.median(ratios):.3f}x ({min(ratios):.2f}-{max(ratios):.2f}) |")


if __name__ == "__main__":
    main()
