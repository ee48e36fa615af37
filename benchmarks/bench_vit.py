"""ViT forward and ``run_with_cache`` speed of circuits.Transformer against Hugging Face ``ViTForImageClassification``, same weights, same batch.

Shapes: the digits preset (8x8 grey images, 2x2 patches, 2 layers, d_model 32; the whole test
split as one batch) and a ViT-Small-like model (224x224 RGB, 16x16 patches, 12 layers, d_model
384, 6 heads). The HF model is built from a config with random weights, saved, and loaded into
ours with ``circuits.load_hf`` (so the weights are identical; the logits are checked to agree).
Variants, timed round-robin (one call of each per round):
  - ours: ``model(images)``
  - hf (sdpa) / hf (eager): ``ViTForImageClassification(pixel_values)``
  - ours run_with_cache: every hook point cached
  - hf hidden+attn: HF eager with ``output_hidden_states=True, output_attentions=True`` (its closest to a cache)
Goal: ours forward <= 1.0x hf (sdpa). Printed: median times and the median (range) of per-round ratios.

    python benchmarks/bench_vit.py [--rounds 15] [--threads 1] [--shapes digits small]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

SHAPES = {
    "digits": dict(
        hf=dict(image_size=8, patch_size=2, num_channels=1, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128, num_labels=10),
        batch=359,
    ),
    "small": dict(
        hf=dict(image_size=224, patch_size=16, num_channels=3, hidden_size=384, num_hidden_layers=12, num_attention_heads=6, intermediate_size=1536, num_labels=1000),
        batch=8,
    ),
}


def build(shape: dict):
    from transformers import ViTConfig, ViTForImageClassification

    from circuits import load_hf

    models = {}
    for attn in ("sdpa", "eager"):
        config = ViTConfig(**shape["hf"], layer_norm_eps=1e-12)
        config._attn_implementation = attn
        torch.manual_seed(0)
        models[attn] = ViTForImageClassification(config).eval()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():  # O(1) activations (HF's 0.02 init gives near-zero logits, which would make the parity check idle)
        for param in models["sdpa"].parameters():
            param.copy_(torch.randn(param.shape, generator=generator) * (0.3 if param.ndim >= 2 else 0.1))
    with tempfile.TemporaryDirectory() as folder:
        models["sdpa"].save_pretrained(folder)
        ours = load_hf(folder)
    models["eager"].load_state_dict(models["sdpa"].state_dict())
    return ours, models["sdpa"], models["eager"]


def bench(name: str, rounds: int) -> None:
    shape = SHAPES[name]
    ours, hf_sdpa, hf_eager = build(shape)
    c = shape["hf"]
    x = torch.randn(shape["batch"], c["num_channels"], c["image_size"], c["image_size"], generator=torch.Generator().manual_seed(0))
    variants = {
        "ours": lambda: ours(x),
        "hf (sdpa)": lambda: hf_sdpa(pixel_values=x).logits,
        "hf (eager)": lambda: hf_eager(pixel_values=x).logits,
        "ours run_with_cache": lambda: ours.run_with_cache(x),
        "hf hidden+attn": lambda: hf_eager(pixel_values=x, output_hidden_states=True, output_attentions=True),
    }
    with torch.no_grad():
        error = (ours(x) - hf_sdpa(pixel_values=x).logits).abs().max().item()
        for fn in variants.values():  # warm-up
            fn()
        times: dict[str, list[float]] = {k: [] for k in variants}
        for _ in range(rounds):
            for key, fn in variants.items():
                start = time.perf_counter()
                fn()
                times[key].append(time.perf_counter() - start)
    print(f"\n## {name}: batch {shape['batch']}, {c['num_hidden_layers']} layers, d_model {c['hidden_size']}, "
          f"{(c['image_size'] // c['patch_size']) ** 2 + 1} positions; max |logit diff| {error:.1e}")
    print(f"{'variant':<22} {'median ms':>10}")
    for key, values in times.items():
        print(f"{key:<22} {1000 * statistics.median(values):>10.2f}")
    for a, b in (("ours", "hf (sdpa)"), ("ours", "hf (eager)"), ("ours run_with_cache", "hf hidden+attn"), ("ours run_with_cache", "ours")):
        ratios = [x / y for x, y in zip(times[a], times[b])]
        print(f"{a} / {b}: {statistics.median(ratios):.2f}x (range {min(ratios):.2f}-{max(ratios):.2f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--shapes", nargs="+", choices=list(SHAPES), default=list(SHAPES))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), {args.rounds} rounds, load {os.getloadavg()[0]:.1f}")
    for name in args.shapes:
        bench(name, args.rounds)


if __name__ == "__main__":
    main()
