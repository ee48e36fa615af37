"""Weight circuits at GPT-2-small scale: copying scores for all heads and all Q/K/V composition scores.

Usage::

    python benchmarks/bench_weights.py            # 12 layers x 12 heads, d_model 768, d_vocab 50257
    python benchmarks/bench_weights.py --quick    # 4 layers, d_vocab 8192 (a smoke run)

A randomly initialised, attention-only, pre-LayerNorm model of GPT-2-small's shapes (the MLPs do
not enter any weight circuit). Prints wall time and peak memory of our functions on 2 threads,
and, measured in the same run on the same folded weights, the TransformerLens routes they
replace: ``utilities.composition_scores`` (all pairs, SVD-collapsed factors) and
``FactoredMatrix(W_E W_V, W_O W_U).eigenvalues`` (timed on one layer and scaled by the number of
layers), with the largest difference between the two answers. Peak memory is the process's peak
resident set (``ru_maxrss``, model included) and the peak RSS above the pre-timing level,
sampled every millisecond during our calls.
"""

from __future__ import annotations

import argparse
import os
import resource
import threading
import time

import torch

import circuits
from circuits.analysis.weights.processing import folded_weights


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class PeakRSS:
    """Peak resident memory (MB) while the ``with`` block runs, sampled by a thread."""

    def __enter__(self):
        self.start = self.peak = rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.wait(0.001):
            self.peak = max(self.peak, rss_mb())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mb())


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 layers and d_vocab 8192")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-reference", action="store_true", help="do not time the TransformerLens routes")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    n_layers, d_vocab = (4, 8192) if args.quick else (12, 50257)
    cfg = circuits.TransformerConfig(
        n_layers=n_layers, d_model=768, n_heads=12, d_vocab=d_vocab, n_ctx=1024, attn_only=True, seed=0
    )
    model, t_build = timed(lambda: circuits.Transformer(cfg).eval())
    print(f"model: {n_layers} layers x 12 heads, d_model 768, d_vocab {d_vocab}, attention-only, LayerNorm; "
          f"{sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters, built in {t_build:.1f} s; "
          f"torch threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.1f}")

    with torch.no_grad(), PeakRSS() as mem:
        copying, t_copy = timed(lambda: circuits.copying_scores(model))
        comp, t_comp = {}, {}
        for kind in "QKV":
            comp[kind], t_comp[kind] = timed(lambda: circuits.composition_scores(model, kind))
    total = t_copy + sum(t_comp.values())
    print(f"copying_scores ({n_layers * 12} heads):      {t_copy:6.2f} s")
    for kind in "QKV":
        print(f"composition_scores {kind}:             {t_comp[kind]:6.2f} s")
    print(f"TOTAL:                               {total:6.2f} s   (target < 10 s)")
    print(f"peak RSS above start during the calls: {mem.peak - mem.start:7.0f} MB")
    print(f"peak RSS of the process (ru_maxrss):   {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:7.0f} MB   (target < 2048 MB)")
    print(f"copying scores: mean {copying.mean():+.4f}, std {copying.std():.4f} (random init: about 0)")
    print(f"K-composition mean over l1 < l2: {comp['K'][comp['K'] > 0].mean():.4f} (1/sqrt(d_model) = {768**-0.5:.4f})")
    if args.skip_reference:
        return

    from transformer_lens import FactoredMatrix
    from transformer_lens.utilities import composition_scores as tl_composition_scores

    with torch.no_grad():
        w = folded_weights(model)
        OV = FactoredMatrix(w.W_V, w.W_O)
        QK = FactoredMatrix(w.W_Q, w.W_K.transpose(-2, -1))
        mask = torch.arange(n_layers)[:, None, None, None] < torch.arange(n_layers)[None, None, :, None]
        t_tl = 0.0
        for kind, right in (("Q", QK), ("K", QK.T), ("V", OV)):
            tl, t = timed(lambda: tl_composition_scores(OV, right))
            t_tl += t
            diff = (torch.where(mask, tl, 0.0) - comp[kind]).abs().max().item()
            print(f"TransformerLens composition_scores {kind}: {t:6.2f} s; max |ours - TL| = {diff:.2e}")
        print(f"composition speed-up vs TransformerLens: {t_tl / sum(t_comp.values()):.1f}x")

        def tl_copying_layer0():
            full = FactoredMatrix(w.W_E @ w.W_V[0], w.W_O[0] @ w.W_U)  # [head, d_vocab, d_vocab], never dense
            lam = full.eigenvalues
            return (lam.sum(-1).real / lam.abs().sum(-1))

        ref, t_ref = timed(tl_copying_layer0)
        print(f"TransformerLens eigenvalues route, layer 0: {t_ref:6.2f} s (x{n_layers} layers ~ {t_ref * n_layers:.1f} s); "
              f"max |ours - TL| = {(ref - copying[0]).abs().max().item():.2e}")
        print(f"copying speed-up vs TransformerLens route: {t_ref * n_layers / t_copy:.1f}x")


if __name__ == "__main__":
    main()
