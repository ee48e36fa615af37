"""Forward-pass and ``run_with_cache`` speed of circuits.Transformer against references measured side by side in one run.

For each model shape (GPT-2 small, and the attention-only presets) on the same weights:
  - ours: ``model(tokens)`` (no hooks: fused attention)
  - plain: a minimal nanoGPT-style implementation (benchmarks/plain_gpt.py)
  - hf / hf-eager: Hugging Face ``GPT2LMHeadModel`` (sdpa and eager attention; GPT-2 shape only)
  - ours run_with_cache: every hook point cached (per-head results, scores, patterns, norm scales
    and MLP activations derived on first access; see ``circuits.model.cache``)
  - ours run_with_cache + read all: the same, then every entry read (so every derived one computed)
  - bridge run_with_cache: transformer-lens 4.3 ``TransformerBridge`` over the HF model, every hook cached

Timing is round-robin (one call of each variant per round), so slow drift of the machine affects
all variants alike. Each table gives median times, their ratio to ``plain``, and the ratios the
goals are about as the median (and range) of per-round ratios; then the peak memory (RSS, each in
a fresh process; ``--no-memory`` skips it) of one full GPT-2-small cache, ours against the bridge's.

    python benchmarks/bench_model.py [--rounds 15] [--batch 4] [--seq 128] [--threads 1] [--presets ...] [--no-memory]
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from plain_gpt import PlainGPT  # noqa: E402

from circuits import Transformer, TransformerConfig  # noqa: E402

GPT2_SMALL = TransformerConfig(
    n_layers=12, d_model=768, n_heads=12, d_vocab=50257, n_ctx=1024, d_mlp=3072, act_fn="gelu_new", seed=0
)


def hf_gpt2(model: Transformer, attn_implementation: str):
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = model.config
    hf_cfg = GPT2Config(
        vocab_size=cfg.d_vocab, n_positions=cfg.n_ctx, n_embd=cfg.d_model, n_layer=cfg.n_layers, n_head=cfg.n_heads,
        n_inner=cfg.d_mlp_, activation_function="gelu_new", resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
        layer_norm_epsilon=cfg.norm_eps, tie_word_embeddings=False,
    )
    hf_cfg._attn_implementation = attn_implementation
    hf = GPT2LMHeadModel(hf_cfg).eval()

    def flat(W):  # [head, d_model, d_head] -> [d_model, head * d_head] (Conv1D layout)
        return W.permute(1, 0, 2).reshape(W.shape[1], -1)

    with torch.no_grad():
        hf.transformer.wte.weight.copy_(model.W_E)
        hf.transformer.wpe.weight.copy_(model.pos_embed.W_pos)
        for ours, block in zip(model.blocks, hf.transformer.h):
            a = ours.attn
            block.ln_1.weight.copy_(ours.ln1.w)
            block.ln_1.bias.copy_(ours.ln1.b)
            block.attn.c_attn.weight.copy_(torch.cat([flat(a.W_Q), flat(a.W_K), flat(a.W_V)], dim=1))
            block.attn.c_attn.bias.copy_(torch.cat([a.b_Q.reshape(-1), a.b_K.reshape(-1), a.b_V.reshape(-1)]))
            block.attn.c_proj.weight.copy_(a.W_O.reshape(-1, cfg.d_model))
            block.attn.c_proj.bias.copy_(a.b_O)
            block.ln_2.weight.copy_(ours.ln2.w)
            block.ln_2.bias.copy_(ours.ln2.b)
            block.mlp.c_fc.weight.copy_(ours.mlp.W_in)
            block.mlp.c_fc.bias.copy_(ours.mlp.b_in)
            block.mlp.c_proj.weight.copy_(ours.mlp.W_out)
            block.mlp.c_proj.bias.copy_(ours.mlp.b_out)
        hf.transformer.ln_f.weight.copy_(model.ln_final.w)
        hf.transformer.ln_f.bias.copy_(model.ln_final.b)
        hf.lm_head.weight.copy_(model.W_U.T)
    return hf


def bridge_over(model: Transformer):
    from transformer_lens.model_bridge.sources._bridge_builder import build_bridge_from_module

    hf = hf_gpt2(model, "eager")
    return build_bridge_from_module(hf, "GPT2LMHeadModel", hf_config=hf.config, model_name="bench-gpt2").eval()


def time_round_robin(variants: dict, rounds: int, repeat: int = 1, warmup: int = 2) -> dict[str, list[float]]:
    """Per round, each variant's mean time over ``repeat`` back-to-back calls."""
    times: dict[str, list[float]] = {name: [] for name in variants}
    with torch.no_grad():
        for _ in range(warmup):
            for fn in variants.values():
                fn()
        for _ in range(rounds):
            for name, fn in variants.items():
                start = time.perf_counter()
                for _ in range(repeat):
                    fn()
                times[name].append((time.perf_counter() - start) / repeat)
    return times


def paired(times: dict[str, list[float]], name: str, reference: str) -> str:
    """Median (min-max) over rounds of ``name``'s time divided by ``reference``'s in the same round."""
    ratios = [a / b for a, b in zip(times[name], times[reference])]
    return f"{statistics.median(ratios):.3f} ({min(ratios):.3f}-{max(ratios):.3f})"


def read_all(model: Transformer, tokens: torch.Tensor) -> None:
    _, cache = model.run_with_cache(tokens)
    for _ in cache.values():  # computes every derived entry
        pass


def bench_shape(label: str, model: Transformer, tokens: torch.Tensor, rounds: int, with_hf: bool, repeat: int = 1) -> None:
    model.eval()
    plain = PlainGPT(model).eval()
    with torch.no_grad():
        reference = plain(tokens)
        err = (model(tokens) - reference).abs().max().item()
        cached, cache = model.run_with_cache(tokens)
        cache_err = (cached - model(tokens)).abs().max().item()
    variants = {
        "plain (nanoGPT-style)": lambda: plain(tokens),
        "ours forward": lambda: model(tokens),
        "ours run_with_cache (all hooks)": lambda: model.run_with_cache(tokens),
        "ours run_with_cache + read all": lambda: read_all(model, tokens),
    }
    notes = {
        "ours forward": f"max |logit diff| vs plain {err:.1e}",
        "ours run_with_cache (all hooks)": f"{len(cache)} keys, {len(cache.cache_dict.pending())} derived on read; logits = forward's (max diff {cache_err:.0e})",
    }
    if with_hf:
        hf = hf_gpt2(model, "sdpa")
        hf_eager = hf_gpt2(model, "eager")
        bridge = bridge_over(model)
        with torch.no_grad():
            notes["HF GPT2LMHeadModel (sdpa)"] = f"max |logit diff| {(hf(tokens).logits - reference).abs().max().item():.1e}"
            notes["bridge run_with_cache (all hooks)"] = f"{len(bridge.run_with_cache(tokens)[1])} cache keys"
        variants["HF GPT2LMHeadModel (sdpa)"] = lambda: hf(tokens)
        variants["HF GPT2LMHeadModel (eager)"] = lambda: hf_eager(tokens)
        variants["bridge run_with_cache (all hooks)"] = lambda: bridge.run_with_cache(tokens)
    times = time_round_robin(variants, rounds, repeat)
    medians = {name: statistics.median(ts) for name, ts in times.items()}
    base = medians["plain (nanoGPT-style)"]
    print(f"\n## {label}: batch {tokens.shape[0]} x {tokens.shape[1]} tokens, {rounds} rounds of {repeat} call(s), torch threads {torch.get_num_threads()}")
    print("| variant | median ms | x plain | note |\n|---|---|---|---|")
    for name, seconds in medians.items():
        print(f"| {name} | {seconds * 1e3:.1f} | {seconds / base:.3f} | {notes.get(name, '')} |")
    print(f"\nper-round ratios, median (range): run_with_cache / ours forward = {paired(times, 'ours run_with_cache (all hooks)', 'ours forward')}; "
          f"run_with_cache + read all / ours forward = {paired(times, 'ours run_with_cache + read all', 'ours forward')}")
    if with_hf:
        bridge_name = "bridge run_with_cache (all hooks)"
        print(f"ours run_with_cache / bridge run_with_cache = {paired(times, 'ours run_with_cache (all hooks)', bridge_name)}; "
              f"ours run_with_cache + read all / bridge = {paired(times, 'ours run_with_cache + read all', bridge_name)}; "
              f"ours forward / HF sdpa = {paired(times, 'ours forward', 'HF GPT2LMHeadModel (sdpa)')}")


def peak_memory_worker(which: str, batch: int, seq: int, threads: int) -> None:
    """In a fresh process: peak and held RSS growth while one full GPT-2-small cache is built (and, for ``ours-read``, fully read)."""
    torch.set_num_threads(threads)
    model = Transformer(GPT2_SMALL).eval()
    tokens = torch.randint(0, GPT2_SMALL.d_vocab, (batch, seq), generator=torch.Generator().manual_seed(0))
    runner = bridge_over(model) if which == "bridge" else model
    with torch.no_grad():
        runner(tokens)  # a first forward: allocator and kernels warm, as in the timing
        gc.collect()
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")  # resets the peak RSS (VmHWM) to the current RSS
        before = _status_kb("VmRSS")
        _, cache = runner.run_with_cache(tokens)
        if which == "ours-read":
            for _ in cache.values():
                pass
        peak, held = _status_kb("VmHWM"), _status_kb("VmRSS")
    print(json.dumps({"peak_growth_mb": (peak - before) / 1024, "held_mb": (held - before) / 1024}))


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field + ":"))


def bench_memory(batch: int, seq: int, threads: int) -> None:
    rows = {}
    for which in ("ours", "ours-read", "bridge"):
        command = [sys.executable, __file__, "--memory-worker", which, "--batch", str(batch), "--seq", str(seq), "--threads", str(threads)]
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        rows[which] = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"\n## memory of one full GPT-2-small cache (batch {batch} x {seq}; RSS growth over a warm process, Linux)")
    print("| cache | peak MB | x bridge | held after the call MB | x bridge |\n|---|---|---|---|---|")
    bridge = rows["bridge"]
    for which, label in (("ours", "ours run_with_cache"), ("ours-read", "ours run_with_cache + read all"), ("bridge", "bridge run_with_cache")):
        row = rows[which]
        print(f"| {label} | {row['peak_growth_mb']:.0f} | {row['peak_growth_mb'] / bridge['peak_growth_mb']:.3f} | {row['held_mb']:.0f} | {row['held_mb'] / bridge['held_mb']:.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--presets", nargs="*", default=["attn-only-1l", "attn-only-2l", "attn-only-3l"])
    parser.add_argument("--skip-gpt2", action="store_true")
    parser.add_argument("--memory", action=argparse.BooleanOptionalAction, default=True, help="measure the peak memory of a full GPT-2-small cache")
    parser.add_argument("--memory-worker", choices=["ours", "ours-read", "bridge"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_worker:
        return peak_memory_worker(args.memory_worker, args.batch, args.seq, args.threads)
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    if not args.skip_gpt2:
        model = Transformer(GPT2_SMALL)
        tokens = torch.randint(0, GPT2_SMALL.d_vocab, (args.batch, args.seq), generator=g)
        bench_shape("GPT-2 small (12 x 768, vocab 50257)", model, tokens, args.rounds, with_hf=True)
        del model
        if args.memory:
            bench_memory(args.batch, args.seq, args.threads)
    if args.presets:
        from circuits.training.presets import get_preset

        for name in args.presets:
            cfg = get_preset(name).model
            seq = min(args.seq, cfg.n_ctx)
            tokens = torch.randint(0, cfg.d_vocab, (args.batch * 4, seq), generator=g)
            bench_shape(f"preset {name}", Transformer(cfg), tokens, args.rounds * 2, with_hf=False, repeat=10)


if __name__ == "__main__":
    main()
