"""Grokking modular addition: the Fourier circuit read off the weights, and the progress measures over training.

Nanda et al. (2023), "Progress measures for grokking via mechanistic interpretability": a one-layer
ReLU transformer trained full-batch with AdamW and strong weight decay on ``a + b mod p`` (sequences
``a b =``, a fixed share of the ``p^2`` pairs for training) first memorises the training pairs, then
forms a circuit that computes the answer with a few Fourier frequencies (``cos/sin(w_k a)`` in the
embedding, ``cos(w_k (a + b - c))`` in the logits), and only then, in a "cleanup" phase, does the
test loss fall. We train that model with :func:`circuits.train` and
:class:`~circuits.training.modular.ModularAdditionTask` (calibrated settings, README "Grokking"), read
every checkpoint with :mod:`circuits.analysis.grokking` (train/test loss, restricted and excluded
loss, Gini of the Fourier spectra, weight norm), find the phases from those curves, and train the
same model without weight decay for a stated multiple of the epochs the first run needed to grok
(the weight-decay control of claim 21).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from circuits.analysis.grokking import fourier
from circuits.analysis.grokking.progress import Phases, detect_phases, first_at_least, progress_measures
from circuits.analysis.grokking.readout import all_logits, attention_to_operands, embedding_numbers, neuron_activations
from circuits.experiments import base
from circuits.experiments.base import Claim, Figure, Table
from circuits.training.zoo import Zoo

NAME = "grokking"
TITLE = "Grokking modular addition: the Fourier circuit and progress measures"
COMPUTE_S = 132  #: about the seconds compute takes on one core in the full report (2026-12-01); orders the report's work only


@dataclass(frozen=True, kw_only=True)
class Config:
    """Settings (defaults: the calibrated full-report run; README "Grokking" has the calibration)."""

    p: int = 113  #: the modulus (prime; the paper's)
    train_fraction: float = 0.3  #: share of the p^2 pairs in the training set (the paper's)
    d_model: int = 64  #: paper 128 (calibration: half the width groks as well at half the cost)
    n_heads: int = 4
    d_mlp: int = 256  #: paper 512
    lr: float = 1e-2  #: paper 1e-3 (calibration: 10x the rate groks in ~350 epochs instead of ~10k)
    weight_decay: float = 1.0
    epochs: int = 700  #: full-batch steps of the weight-decayed run (about twice the epochs it needs to grok)
    n_checkpoints: int = 40  #: evenly spaced checkpoints (plus 10 log-spaced): the progress measures' resolution
    n_evals: int = 70  #: evenly spaced train/test evaluations (the loss curves' resolution)
    control_multiple: float = 3.0  #: the weight-decay-free control trains this many times the epochs the first run needed to grok
    seed: int = 0
    max_keys: int = 10  #: key frequencies are at most this many (largest drop of the sorted embedding power)
    accuracy_threshold: float = 0.99  #: "memorised" / "grokked": train / test accuracy at or above this
    delay_factor: float = 2.0  #: claim 20: grokking at least this many times later than memorisation (paper: ~1.4k vs ~10k epochs)
    key_range: tuple[int, int] = (3, 6)  #: claim 20: "a handful (3-6) of key frequencies"
    min_key_share: float = 0.5  #: claim 20: the key frequencies hold at least this share of the embedding's (non-constant) power

    @classmethod
    def quick(cls) -> "Config":
        return cls(p=23, train_fraction=0.5, d_model=32, d_mlp=64, lr=1e-2, epochs=150, n_checkpoints=10, n_evals=30,
                   control_multiple=1.0)


@dataclass(frozen=True, kw_only=True)
class Curve(base.Result):
    """Train/test loss and accuracy of one run at its evaluations (``step``: epochs)."""

    step: tuple[int, ...]
    train_loss: np.ndarray
    test_loss: np.ndarray
    train_accuracy: np.ndarray
    test_accuracy: np.ndarray


@dataclass(frozen=True, kw_only=True)
class Progress(base.Result):
    """The progress measures at each checkpoint of the weight-decayed run (:func:`~circuits.analysis.grokking.progress.progress_measures`)."""

    step: tuple[int, ...]
    train_loss: np.ndarray
    test_loss: np.ndarray
    train_accuracy: np.ndarray
    test_accuracy: np.ndarray
    restricted_loss: np.ndarray
    excluded_loss: np.ndarray
    gini_embed: np.ndarray
    gini_neuron_logits: np.ndarray
    weight_norm: np.ndarray


@dataclass(frozen=True, kw_only=True)
class Result(base.Result):
    quick: bool
    p: int
    train_fraction: float
    n_train: int
    d_model: int
    n_heads: int
    d_mlp: int
    lr: float
    weight_decay: float
    epochs: int
    curve: Curve  #: the weight-decayed run, dense evaluations
    progress: Progress  #: the weight-decayed run, checkpoints
    memorised: int | None  #: phases found from the checkpoints' curves (epochs; None: not found)
    cleanup_start: int | None
    cleanup_end: int | None
    grokked: int | None  #: first dense evaluation with test accuracy >= threshold
    restricted_onset: int | None
    excluded_onset: int | None
    test_accuracy_at_memorised: float | None
    key_freqs: tuple[int, ...]
    embed_power: np.ndarray  #: [freq] final W_E power per frequency 1..(p-1)/2
    embed_power_init: np.ndarray  #: [freq] at initialisation
    key_share: float  #: share of the final W_E power in the key frequencies
    neuron_freq: np.ndarray  #: [neuron] the frequency explaining most of each neuron's variance (0: dead)
    neuron_fraction: np.ndarray  #: [neuron] that share (NaN: dead)
    logit_alpha: np.ndarray  #: [key] fitted alpha_k of logits ~ sum alpha_k cos(w_k (a + b - c))
    logit_explained: float
    attention_a: np.ndarray  #: [head, a] attention from "=" to a, b = 0
    neuron_examples: np.ndarray  #: [3, a] activations of the most single-frequency neuron of each top key frequency, over a
    neuron_example_freqs: tuple[int, ...]
    neuron_example_b: tuple[int, ...]  #: the b of each example (where it varies most over a)
    control: Curve  #: the same model and data with weight decay 0
    control_epochs: int
    control_multiple: float
    accuracy_threshold: float
    delay_factor: float
    key_range: tuple[int, int]
    min_key_share: float


# ---- compute ----------------------------------------------------------------------------------
def _configs(cfg: Config, data, weight_decay: float, epochs: int, n_checkpoints: int):
    from circuits.training.modular import grokking_configs

    return grokking_configs(data, d_model=cfg.d_model, n_heads=cfg.n_heads, d_mlp=cfg.d_mlp, lr=cfg.lr, weight_decay=weight_decay,
                            epochs=epochs, seed=cfg.seed, n_checkpoints=n_checkpoints, eval_every=max(1, epochs // cfg.n_evals))


def read_curve(folder: Path) -> Curve:
    """The task's train/test metrics at every evaluation of a run (``metrics.jsonl``), one entry per step."""
    rows: dict[int, dict] = {}
    for line in (Path(folder) / "metrics.jsonl").read_text(encoding="utf-8").splitlines():
        record = json.loads(line) if line.strip() else {}
        if record.get("kind") == "eval" and "test_accuracy" in record:
            rows[int(record["step"])] = record  # a resumed run may log a step twice: the last one counts
    steps = sorted(rows)
    return Curve(step=tuple(steps), **{k: np.array([rows[s][k] for s in steps], dtype=float)
                                       for k in ("train_loss", "test_loss", "train_accuracy", "test_accuracy")})


def _progress(folder: Path, p: int, is_train: np.ndarray, keys) -> Progress:
    from circuits.training.checkpoint import list_checkpoints, load

    steps, rows = [], []
    for step, path in list_checkpoints(folder):
        model, _ = load(path)
        steps.append(step)
        rows.append(progress_measures(model, p, is_train, keys))
    return Progress(step=tuple(steps), **{f: np.array([getattr(r, f) for r in rows], dtype=float) for f in rows[0].__dataclass_fields__})


def _circuit(model, p: int, power_init: np.ndarray) -> dict:
    """The final model's Fourier reading: key frequencies, neurons, logit fit, attention and example neurons."""
    power = fourier.frequency_power(embedding_numbers(model, p))
    keys = fourier.key_frequencies(power)
    acts = neuron_activations(model, p)
    neurons = fourier.neuron_frequencies(acts)
    ranked = sorted(keys, key=lambda k: -power.power[k - 1])[:3]
    examples, example_b = [], []
    for k in ranked:
        share = np.where(neurons.frequency == k, np.nan_to_num(neurons.fraction, nan=0.0), -1.0)
        neuron = int(np.argmax(share))
        example_b.append(int(np.argmax(acts[:, :, neuron].var(axis=0))))  # the b where the neuron varies most over a
        examples.append(acts[:, example_b[-1], neuron])
    fit = fourier.logit_fit(all_logits(model, p), keys)
    return dict(
        key_freqs=keys, embed_power=power.power, embed_power_init=power_init, key_share=power.share(keys),
        neuron_freq=neurons.frequency.astype(float), neuron_fraction=neurons.fraction, logit_alpha=fit.alpha, logit_explained=fit.explained,
        attention_a=attention_to_operands(model, p)[:, :, 0], neuron_examples=np.stack(examples) if examples else np.zeros((0, p)),
        neuron_example_freqs=tuple(ranked), neuron_example_b=tuple(example_b),
    )


def _phases(progress: Progress) -> Phases:
    return detect_phases(progress.step, progress.train_accuracy, progress.test_accuracy, progress.test_loss,
                         progress.restricted_loss, progress.excluded_loss)


@contextmanager
def one_thread() -> Iterator[None]:
    """Run with one intra-op thread (restored after): the matrices are small, so a second thread gains little, and on a
    shared, loaded machine it costs several times (measured: 0.49 vs 0.2 s per epoch at load ~15); one thread also makes
    the section's numbers independent of the machine's core count."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def compute(cfg: Config, zoo: Zoo) -> Result:
    with one_thread():
        return _compute(cfg, zoo)


def _compute(cfg: Config, zoo: Zoo) -> Result:
    from circuits.training.checkpoint import list_checkpoints, load
    from circuits.training.modular import ModularAddition, check_prime, train_modular

    check_prime(cfg.p, "the grokking section's Fourier analysis")
    data = ModularAddition(p=cfg.p, train_fraction=cfg.train_fraction, seed=cfg.seed)
    model_cfg, train_cfg = _configs(cfg, data, cfg.weight_decay, cfg.epochs, cfg.n_checkpoints)
    folder = train_modular(zoo.root, model_cfg, train_cfg, data, progress=zoo.progress)
    curve = read_curve(folder)
    initial, _ = load(list_checkpoints(folder)[0][1])
    final, _ = load(folder)
    circuit = _circuit(final, cfg.p, fourier.frequency_power(embedding_numbers(initial, cfg.p)).power)
    progress = _progress(folder, cfg.p, data.is_train.numpy(), circuit["key_freqs"])
    phases = _phases(progress)
    grokked = first_at_least(curve.step, curve.test_accuracy, cfg.accuracy_threshold)
    control_epochs = max(1, math.ceil(cfg.control_multiple * (grokked if grokked is not None else cfg.epochs)))
    control_cfgs = _configs(cfg, data, 0.0, control_epochs, n_checkpoints=4)
    control = read_curve(train_modular(zoo.root, *control_cfgs, data, name="grokking-wd0", progress=zoo.progress))
    at_memorised = None if phases.memorised is None else float(np.interp(phases.memorised, curve.step, curve.test_accuracy))
    return Result(
        quick=zoo.quick, p=cfg.p, train_fraction=cfg.train_fraction, n_train=data.n_train, d_model=cfg.d_model, n_heads=cfg.n_heads,
        d_mlp=cfg.d_mlp, lr=cfg.lr, weight_decay=cfg.weight_decay, epochs=cfg.epochs, curve=curve, progress=progress,
        memorised=phases.memorised, cleanup_start=phases.cleanup_start, cleanup_end=phases.cleanup_end, grokked=grokked,
        restricted_onset=phases.restricted_onset, excluded_onset=phases.excluded_onset, test_accuracy_at_memorised=at_memorised,
        **circuit, control=control, control_epochs=control_epochs, control_multiple=cfg.control_multiple,
        accuracy_threshold=cfg.accuracy_threshold, delay_factor=cfg.delay_factor, key_range=cfg.key_range, min_key_share=cfg.min_key_share,
    )


# ---- figures, claims, text (in grokking_figures / grokking_claims) ---------------------------
def figures(result: Result) -> list[Figure]:
    from circuits.experiments.grokking_figures import figures as build

    return build(result)


def tables(result: Result) -> list[Table]:
    from circuits.experiments.grokking_figures import tables as build

    return build(result)


def claims(result: Result) -> list[Claim]:
    from circuits.experiments.grokking_claims import claims as build

    return build(result)


def intro(result: Result) -> str:
    return (
        f"Modular addition a + b mod {result.p} as sequences 'a b =' ({result.n_train} of the {result.p ** 2} pairs for training, "
        f"the rest held out). A one-layer ReLU transformer (d_model {result.d_model}, {result.n_heads} heads, d_mlp {result.d_mlp}, "
        f"no LayerNorm, learned positions) trains full-batch with AdamW (lr {result.lr:g}, weight decay {result.weight_decay:g}, "
        f"betas 0.9/0.98) for {result.epochs:,} epochs through circuits.train. Every checkpoint is read in the Fourier basis of "
        f"Z_{result.p}: the embedding's power per frequency, the restricted loss (only the key frequencies' cos/sin(w(a+b)) "
        "components of the logits kept) and the excluded loss (those removed, on the training pairs). The phases are found from "
        f"these curves. A control run without weight decay trains {result.control_multiple:g}x the epochs the first run needed to grok."
    )


def notes(result: Result) -> list[str]:
    out = [
        f"The paper trains p = 113 for 40,000 epochs at lr 1e-3 (grokking near 10k); these are the cheapest settings that grokked "
        f"on 2 CPU cores within the section's budget, chosen by looking at outcomes (seed 0's test accuracy in the calibration runs) (README, 'Grokking', calibration table): p = {result.p}, lr {result.lr:g}, "
        f"d_model {result.d_model}, d_mlp {result.d_mlp}. Epoch counts scale with the learning rate, so compare orders, not epochs.",
        "Restricted loss is measured on every pair, excluded loss on the training pairs; key frequencies are the final "
        "embedding's, found as the largest drop in its sorted power per frequency.",
    ]
    if result.quick:
        out.append("Quick mode: a tiny modulus and model for a few epochs; the claims are not expected to hold here.")
    return out
