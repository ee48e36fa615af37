"""Figures and tables of the grokking section (built with the shared plot builders)."""

from __future__ import annotations

import numpy as np

from circuits.experiments import plots
from circuits.experiments.base import Figure, Table
from circuits.experiments.plots.phases import phase_rows
from circuits.experiments.util import fmt

__all__ = ["phase_bands", "figures", "tables"]


def phase_bands(result) -> dict[str, tuple[float, float]]:
    """The detected phases as x ranges (epochs), for the shaded bands; a phase whose ends were not found is left out."""
    first = max(1, min(s for s in result.curve.step if s > 0)) if any(s > 0 for s in result.curve.step) else 1
    m, c0, c1, end = result.memorised, result.cleanup_start, result.cleanup_end, result.epochs
    bands = {}
    if m is not None:
        bands["memorisation"] = (float(first), float(m))
    if m is not None and c0 is not None and c0 > m:
        bands["circuit formation"] = (float(m), float(c0))
    if c0 is not None:
        bands["cleanup"] = (float(c0), float(c1 if c1 is not None else end))
    return bands


def _positive(steps, *values):
    keep = [i for i, s in enumerate(steps) if s > 0]
    return [np.asarray(steps)[keep]] + [np.asarray(v)[keep] for v in values]


def _loss_figure(r) -> Figure:
    c = r.curve
    x, train_loss, test_loss, train_acc, test_acc = _positive(c.step, c.train_loss, c.test_loss, c.train_accuracy, c.test_accuracy)
    fig = phase_rows(
        {"loss (nats)": {"train": (x, train_loss), "test": (x, test_loss)},
         "accuracy": {"train": (x, train_acc), "test": (x, test_acc)}},
        title=f"Train and test loss, p = {r.p}, with the phases found from the curves", x_title="epoch", phases=phase_bands(r),
        log_x=True, log_y={"loss (nats)": True},
    )
    caption = (f"Full-batch epochs on a log axis. Train accuracy reaches {r.accuracy_threshold:.0%} at epoch {fmt(r.memorised)}, test "
               f"accuracy at epoch {fmt(r.grokked)}; the test loss starts falling at {fmt(r.cleanup_start)} (10% of its log fall) and "
               f"ends 90% of its fall at {fmt(r.cleanup_end)}. Shaded: memorisation, circuit formation, cleanup, as detected.")
    return Figure(key="grokking_loss", title="Grokking: train and test loss", caption=caption, fig=fig)


def _progress_figure(r) -> Figure:
    g = r.progress
    x, test, train, restricted, excluded, gini_e, gini_l, norm = _positive(
        g.step, g.test_loss, g.train_loss, g.restricted_loss, g.excluded_loss, g.gini_embed, g.gini_neuron_logits, g.weight_norm)
    fig = phase_rows(
        {"loss (nats)": {"test": (x, test), "train": (x, train), "restricted (all pairs)": (x, restricted), "excluded (train pairs)": (x, excluded)},
         "Gini of the Fourier spectrum": {"W_E": (x, gini_e), "W_L = W_out W_U": (x, gini_l)},
         "sum of squared weights": {"weights": (x, norm)}},
        title="Progress measures over training", x_title="epoch", phases=phase_bands(r), log_x=True, log_y={"loss (nats)": True},
        marks={"restricted falls": r.restricted_onset, "excluded rises": r.excluded_onset} if None not in (r.restricted_onset, r.excluded_onset) else None,
    )
    caption = (f"At each of {len(g.step)} checkpoints, with the key frequencies {list(r.key_freqs)} of the final model. Restricted "
               f"loss starts falling at epoch {fmt(r.restricted_onset)} and excluded loss starts rising at {fmt(r.excluded_onset)} "
               f"(dotted lines), the test loss at {fmt(r.cleanup_start)}. Gini of W_E's per-frequency norms: {fmt(g.gini_embed[0])} at "
               f"initialisation, {fmt(g.gini_embed[-1])} at the end.")
    return Figure(key="grokking_progress", title="Restricted and excluded loss, sparsity and weight norm", caption=caption, fig=fig)


def _embedding_figure(r) -> Figure:
    freqs = [str(k) for k in range(1, len(r.embed_power) + 1)]
    total, total_init = max(r.embed_power.sum(), 1e-30), max(r.embed_power_init.sum(), 1e-30)
    fig = plots.bars(freqs, {"final": r.embed_power / total, "initialisation": r.embed_power_init / total_init},
                     title="Embedding power per Fourier frequency", x_title="frequency k (w_k = 2 pi k / p)", y_title="share of W_E's power")
    plots.mark_bars(fig, [int(k) in r.key_freqs for k in freqs])
    fig.update_traces(marker_color="#bbbbbb", selector=dict(name="initialisation"))
    caption = (f"Share of the number embeddings' (non-constant) squared norm along cos/sin(w_k a), per frequency k. Key frequencies "
               f"(red, found automatically): {list(r.key_freqs)}, {r.key_share:.1%} of the final power; at initialisation every "
               f"frequency holds about 1/{len(freqs)}.")
    return Figure(key="grokking_embedding_fourier", title="The embedding in the Fourier basis", caption=caption, fig=fig)


def _periodicity_figure(r) -> Figure:
    a = np.arange(r.p)
    panels = {"attention from '=' to a (b = 0)": {f"H{h}": (a, r.attention_a[h]) for h in range(r.attention_a.shape[0])},
              "neuron activation": {f"k={k} neuron (b = {b})": (a, r.neuron_examples[i])
                                    for i, (k, b) in enumerate(zip(r.neuron_example_freqs, r.neuron_example_b))}}
    fig = plots.line_panels(panels, title="Attention and neurons are periodic in the input", x_title="a")
    fig.update_traces(showlegend=True, selector=lambda trace: trace.name.startswith("k="))
    freq = r.neuron_freq.astype(int)
    clustered = np.nan_to_num(r.neuron_fraction, nan=0.0) > 0.85
    in_keys = float(np.mean(np.isin(freq[clustered], list(r.key_freqs)))) if clustered.any() else float("nan")
    caption = (f"Left: each head's attention from '=' to the first operand as a function of a. Right: the most single-frequency "
               f"neuron of each of the top key frequencies, at the b where it varies most over a. {clustered.mean():.1%} of the {len(freq)} neurons have more than 85% of "
               f"their variance in one frequency (paper: 84.6%), " + (f"{in_keys:.0%} of those in a key frequency." if clustered.any() else "none."))
    return Figure(key="grokking_periodicity", title="Periodic attention and neurons", caption=caption, fig=fig)


def _control_figure(r) -> Figure:
    c, w = r.curve, r.control
    x, acc = _positive(c.step, c.test_accuracy)
    xw, accw, trainw = _positive(w.step, w.test_accuracy, w.train_accuracy)
    fig = plots.curves({f"test, wd {r.weight_decay:g}": (x, acc), "test, wd 0": (xw, accw), "train, wd 0": (xw, trainw)},
                       title="Weight decay control", x_title="epoch", y_title="accuracy", log_x=True, mode="lines")
    caption = (f"The same model, data and seed with weight decay 0 for {r.control_epochs:,} epochs ({r.control_multiple:g}x the "
               f"{fmt(r.grokked)} epochs the weight-decayed run needed): final train accuracy {fmt(w.train_accuracy[-1])}, test "
               f"accuracy {fmt(w.test_accuracy[-1])}.")
    return Figure(key="grokking_weight_decay", title="Without weight decay", caption=caption, fig=fig)


def figures(result) -> list[Figure]:
    return [_loss_figure(result), _progress_figure(result), _embedding_figure(result), _periodicity_figure(result), _control_figure(result)]


def tables(result) -> list[Table]:
    power = result.embed_power / max(result.embed_power.sum(), 1e-30)
    freq = result.neuron_freq.astype(int)
    clustered = np.nan_to_num(result.neuron_fraction, nan=0.0) > 0.85
    rows = [[k, f"{power[k - 1]:.1%}", int(np.sum(freq[clustered] == k)), fmt(alpha)] for k, alpha in zip(result.key_freqs, result.logit_alpha)]
    return [Table(
        key="grokking_key_frequencies", title="Key frequencies of the final model",
        columns=["frequency k", "share of W_E power", "neurons (> 85% in k)", "alpha_k (logits)"], rows=rows,
        caption=(f"Logits ~ sum_k alpha_k cos(w_k(a+b-c)) over these frequencies explain {result.logit_explained:.1%} of the logit "
                 "variance (centred over c; paper: 95%)."),
    )]
