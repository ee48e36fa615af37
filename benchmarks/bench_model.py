"""Forward-pass speed of circuits.Transformer against references measured side by side in one run.

For each model shape (GPT-2 small, and the attention-only presets) on the same weights:
  - ours: ``model(tokens)`` (no hooks: fused attention)
  - plain: a minimal nanoGPT-style implementation (benchmarks/plain_gpt.py)
  - hf / hf-eager: Hugging Face ``GPT2LMHeadModel`` (sdpa and eager attention; GPT-2 shape only)
  - ours run_with_cache: every hook point cached
  - bridge run_with_cache: transformer-lens 4.3 ``TransformerBridge`` over the HF model, every hook cached

Timing is round-robin (one call of each variant per round, then medians), so slow drift of the
machine affects all variants alike. Ratios are printed against ``plain``.

    python benchmarks/bench_model.py [--rounds 15] [--batch 4] [--seq 128] [--threads 2] [--presets ...]
"""

from __future__ import annotations

import argparse
import statistics
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


def time_round_robin(variants: dict, rounds: int, warmup: int = 2) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in variants}
    with torch.no_grad():
        for _ in range(warmup):
            for fn in variants.values():
                fn()
        for _ in range(rounds):
            for name, fn in variants.items():
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


def bench_shape(label: str, model: Transformer, tokens: torch.Tensor, rounds: int, with_hf: bool) -> None:
    model.eval()
    plain = PlainGPT(model).eval()
    with torch.no_grad():
        reference = plain(tokens)
        err = (model(tokens) - reference).abs().max().item()
    variants = {
        "plain (nanoGPT-style)": lambda: plain(tokens),
        "ours forward": lambda: model(tokens),
        "ours run_with_cache (all hooks)": lambda: model.run_with_cache(tokens),
    }
    notes = {"ours forward": f"max |logit diff| vs plain {err:.1e}"}
    if with_hf:
        hf = hf_gpt2(model, "sdpa")
        hf_eager = hf_gpt2(model, "eager")
        bridge = bridge_over(model)
        with torch.no_grad():
            notes["HF GPT2LMHeadModel (sdpa)"] = f"max |logit diff| {(hf(tokens).logits - reference).abs().max().item():.1e}"
            notes["bridge run_with_cache (all hooks)"] = f"{len(bridge.run_with_cache(tokens)[1])} cache keys"
        notes["ours run_with_cache (all hooks)"] = f"{len(model.run_with_cache(tokens)[1])} cache keys"
        variants["HF GPT2LMHeadModel (sdpa)"] = lambda: hf(tokens)
        variants["HF GPT2LMHeadModel (eager)"] = lambda: hf_eager(tokens)
        variants["bridge run_with_cache (all hooks)"] = lambda: bridge.run_with_cache(tokens)
    medians = time_round_robin(variants, rounds)
    base = medians["plain (nanoGPT-style)"]
    print(f"\n## {label}: batch {tokens.shape[0]} x {tokens.shape[1]} tokens, {rounds} rounds, torch threads {torch.get_num_threads()}")
    print(f"| variant | median ms | x plain | note |\n|---|---|---|---|")
    for name, seconds in medians.items():
        print(f"| {name} | {seconds * 1e3:.1f} | {seconds / base:.3f} | {notes.get(name, '')} |")
    if with_hf:
        ours, cache = medians["ours forward"], medians["ours run_with_cache (all hooks)"]
        print(f"\nours forward / HF sdpa = {ours / medians['HF GPT2LMHeadModel (sdpa)']:.3f}; "
              f"ours forward / HF eager = {ours / medians['HF GPT2LMHeadModel (eager)']:.3f}; "
              f"ours run_with_cache / bridge run_with_cache = {cache / medians['bridge run_with_cache (all hooks)']:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--presets", nargs="*", default=["attn-only-1l", "attn-only-2l", "attn-only-3l"])
    parser.add_argument("--skip-gpt2", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    if not args.skip_gpt2:
        model = Transformer(GPT2_SMALL)
        tokens = torch.randint(0, GPT2_SMALL.d_vocab, (args.batch, args.seq), generator=g)
        bench_shape("GPT-2 small (12 x 768, vocab 50257)", model, tokens, args.rounds, with_hf=True)
    if args.presets:
        from circuits.training.presets import get_preset

        for name in args.presets:
            cfg = get_preset(name).model
            seq = min(args.seq, cfg.n_ctx)
            tokens = torch.randint(0, cfg.d_vocab, (args.batch * 4, seq), generator=g)
            bench_shape(f"preset {name}", Transformer(cfg), tokens, args.rounds * 2, with_hf=False)


if __name__ == "__main__":
    main()
