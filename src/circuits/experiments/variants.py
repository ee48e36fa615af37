"""Induction heads under positional variants: which form them, how fast, and through which mechanism.

The same two-layer attention-only model is trained with learned (residual-stream), shortformer
(query/key only), rotary, ALiBi and no positions, and with grouped-query attention, all on the
same batches. For each we measure the final induction and ICL scores, the first checkpoint where
an induction head appears, and whether the induction head reads a previous-token head through
K-composition (the Framework paper's mechanism) or mostly through Q-composition. A 3-layer model
shows where induction heads form when there is more depth than needed (In-context Learning paper,
appendix).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from circuits.analysis.activations.icl import window_icl
from circuits.analysis.activations.per_sequence import RowTargets, probe_seq_len, row_scores, row_targets
from circuits.analysis.induction_circuit import mechanism
from circuits.analysis.probes import prefixed_repeats, probe_token_ids, probe_token_rule
from circuits.analysis.uncertainty import N_BOOT, joint_interval, max_interval
from circuits.experiments import base
from circuits.experiments.base import Claim, Figure, Table
from circuits.experiments.corpus import token_data
from circuits.experiments.estimates import Estimate
from circuits.experiments.plots import bar_panels, bars, head_heatmaps, line_panels
from circuits.experiments.util import eval_tokens, fmt, icl_bands
from circuits.training.zoo import Zoo

NAME = "variants"
TITLE = "Induction heads under positional variants"
COMPUTE_S = 13  #: about the seconds compute takes on one core in the full report (2026-12-01); orders the report's work only
Z_CUTOFF = 3.0  #: a composition score this many baseline standard deviations above the mean counts as used


@dataclass(frozen=True, kw_only=True)
class Config:
    """Settings of the variants comparison (defaults: the full report)."""

    presets: tuple[str, ...] = (
        "attn-only-2l-learned", "attn-only-2l", "attn-only-2l-rotary", "attn-only-2l-alibi", "attn-only-2l-nopos",
        "attn-only-2l-gqa", "attn-only-3l",
    )  #: models compared (shortformer is attn-only-2l)
    deep: str = "attn-only-3l"  #: the deeper model for "where heads form" (claim 19)
    eval_windows: int = 256  #: validation windows for previous-token and ICL scores (the ICL score's 95% interval is shown)
    seq_len: int = 50  #: T of [BOS] + P text tokens + R + R for final induction scores (capped so R + R fills at most 2/3 of n_ctx)
    pm_seq_len: int = 25  #: T of the R x 4 prefix-matching probe (the paper's 25; capped so R x 4 fills at most 4/5 of n_ctx)
    n_sequences: int = 128  #: probe sequences for final scores (95% interval about ±0.02 on the best head)
    curve_seq_len: int = 25  #: T of the per-checkpoint induction probe (capped like seq_len)
    curve_sequences: int = 64  #: probe sequences per checkpoint (95% interval about ±0.03 on the best head; was 4)
    max_checkpoints: int = 16  #: checkpoints evaluated per model for the formation curve (evenly subsampled)
    induction_threshold: float = 0.3  #: "an induction head has formed": max induction score (layers >= 1) above this
    previous_token_threshold: float = 0.4
    baseline_samples: int = 500
    n_boot: int = N_BOOT  #: bootstrap resamples per interval
    seed: int = 0

    @classmethod
    def quick(cls) -> "Config":
        return cls(eval_windows=4, seq_len=20, n_sequences=4, curve_seq_len=8, curve_sequences=4, max_checkpoints=4, baseline_samples=64,
                   n_boot=50)


@dataclass(frozen=True, kw_only=True)
class Variant(base.Result):
    """One model's scores (``[layer, head]`` arrays), its chosen heads, composition z-scores and formation curve."""

    positional: str
    n_layers: int
    n_heads: int
    n_kv_heads: int | None
    data_label: str  #: what the model trained on, in words
    previous_token: np.ndarray  #: [layer, head] on corpus text
    induction: np.ndarray  #: [layer, head] on the natural-prefix R + R probe
    prefix_matching: np.ndarray  #: [layer, head] on the natural-prefix R x 4 probe
    icl: Estimate  #: banded ICL score (negative: later tokens are easier) and its interval over windows
    max_induction: Estimate  #: best induction score in layers >= 1, interval over probe sequences
    induction_head: tuple[int, int]
    previous_token_head: tuple[int, int]
    previous_token_head_exists: bool  #: its previous-token score is above the threshold
    max_previous_token: float  #: best previous-token score in layers before the induction head
    K_pair: float  #: K-composition of previous-token head -> induction head
    Q_pair: float
    z: dict[str, float]  #: Q/K/V composition of the pair, in baseline standard deviations
    baseline: dict[str, tuple[float, float]]  #: (mean, std) of random head pairs, per kind
    max_K_into_induction: float  #: the largest K-composition of any earlier head into the induction head
    max_Q_into_induction: float
    max_K_z: float  #: the same as a z-score against the baseline
    max_Q_z: float
    curve_steps: tuple[int, ...]  #: checkpoints evaluated
    curve: np.ndarray  #: best induction score (layers >= 1) at each of them
    curve_ci: np.ndarray  #: [checkpoint, 2] its 95% interval over the probe sequences
    first_formed: int | None  #: first checkpoint above the induction threshold (None: never)
    layer_max_prefix_matching: np.ndarray  #: [layer]
    layer_max_prefix_matching_ci: np.ndarray  #: [layer, 2] 95% intervals over the probe sequences


@dataclass(frozen=True, kw_only=True)
class Result(base.Result):
    presets: tuple[str, ...]
    models: dict[str, Variant]
    deep: str  #: the deeper model of claim 19
    induction_threshold: float
    previous_token_threshold: float
    icl_note: str  #: how the ICL bands were scaled (section note)
    probe_note: str  #: the probes' token rule and layouts, in words
    quick: bool


# ---- compute -----------------------------------------------------------------------------------
def _subsample(checkpoints: list, n: int) -> list:
    if len(checkpoints) <= n:
        return checkpoints
    picks = sorted({round(i * (len(checkpoints) - 1) / (n - 1)) for i in range(n)})
    return [checkpoints[i] for i in picks]


def _probe(cfg: Config, zoo: Zoo, name: str, tok, n_repeats: int, wanted: int, batch: int, seed_shift: int) -> RowTargets:
    """Row targets of a natural-prefix ``R x n_repeats`` probe, ``R`` from the frequent tokens of ``name``'s training split."""
    model_cfg, _ = zoo.configs(name)
    data = token_data(zoo, name, tok)
    allowed = probe_token_ids(data.train, model_cfg.d_vocab, data.bos_id)
    probe = prefixed_repeats(allowed, data.val, probe_seq_len(model_cfg.n_ctx, n_repeats, wanted), n_repeats, batch, cfg.seed + seed_shift,
                             data.bos_id, model_cfg.n_ctx)
    return row_targets(probe)


def _best(rows: np.ndarray, cfg: Config) -> tuple[float, float, float]:
    """The best head of layers >= 1 (``rows``: ``[sequence, layer, head]``) and its 95% interval over the sequences."""
    best, lo, hi = max_interval(rows[:, 1:].reshape(rows.shape[0], -1), unit_axis=0, over=(1,), n_boot=cfg.n_boot, seed=cfg.seed)
    return float(best), float(lo), float(hi)


def formation_curve(cfg: Config, zoo: Zoo, name: str, targets: RowTargets) -> tuple[list[int], np.ndarray, np.ndarray]:
    """Steps of up to ``cfg.max_checkpoints`` checkpoints of ``name``, the best induction score (layers >= 1) at each and its interval."""
    from circuits import load

    steps, curve, ci = [], [], []
    for step, path in _subsample(zoo.checkpoints(name), cfg.max_checkpoints):
        rows = row_scores(load(path)[0], targets)["induction"].numpy()
        best, lo, hi = _best(rows, cfg)
        steps.append(step)
        curve.append(best)
        ci.append((lo, hi))
    return steps, np.array(curve, dtype=float), np.array(ci, dtype=float)


def _composition(mech: dict, previous: np.ndarray) -> dict:
    """The Variant fields that follow from :func:`mechanism`'s output (chosen heads, composition, z-scores)."""
    il = int(mech["induction_head"][0])
    # the best writer -> induction head pair by K and by Q, each as a z-score against its baseline
    kz = (mech["max_K_into_induction"] - mech["baseline"]["K"][0]) / mech["baseline"]["K"][1]
    qz = (mech["max_Q_into_induction"] - mech["baseline"]["Q"][0]) / mech["baseline"]["Q"][1]
    return dict(
        induction_head=tuple(int(i) for i in mech["induction_head"]),
        previous_token_head=tuple(int(i) for i in mech["previous_token_head"]),
        max_previous_token=float(previous[:il].max()),
        K_pair=float(mech["pair"]["K"]), Q_pair=float(mech["pair"]["Q"]),
        z={k: float(v) for k, v in mech["z"].items()},
        baseline={k: (float(m), float(s)) for k, (m, s) in mech["baseline"].items()},
        max_K_into_induction=float(mech["max_K_into_induction"]), max_Q_into_induction=float(mech["max_Q_into_induction"]),
        max_K_z=float(kz), max_Q_z=float(qz),
    )


def _icl(model, text, cfg: Config) -> tuple[Estimate, str]:
    """The banded ICL score on ``text`` with its interval over the windows, and the note on its bands."""
    from circuits.analysis.activations.head_picks import per_token_loss

    late, early, note = icl_bands(text.shape[1])
    per_window = window_icl(per_token_loss(model, text, chunk=64).double().numpy(), late, early)
    return Estimate.of(joint_interval(lambda v: v, per_window, n_boot=cfg.n_boot, seed=cfg.seed)), note


def _prefix_matching(rows: np.ndarray, cfg: Config) -> tuple[np.ndarray, np.ndarray]:
    """Per-layer best prefix-matching head (``rows``: ``[sequence, layer, head]``) and its 95% intervals over the sequences."""
    best, lo, hi = max_interval(rows, unit_axis=0, over=(2,), n_boot=cfg.n_boot, seed=cfg.seed)
    return best, np.stack([lo, hi], -1)


def measure(cfg: Config, zoo: Zoo, name: str) -> tuple[Variant, str, str]:
    """All measurements of one preset, the note on its ICL bands and the note on its probes."""
    from circuits import previous_token_scores

    model, tok = zoo.model(name)
    mc = model.config
    text = eval_tokens(zoo, name, tok, cfg.eval_windows)
    previous = previous_token_scores(model, text).numpy()
    ind_targets = _probe(cfg, zoo, name, tok, 2, cfg.seq_len, cfg.n_sequences, 0)
    pm_targets = _probe(cfg, zoo, name, tok, 4, cfg.pm_seq_len, cfg.n_sequences, 1)
    ind_rows, pm_rows = row_scores(model, ind_targets)["induction"].numpy(), row_scores(model, pm_targets)["prefix_matching"].numpy()
    induction, prefix = ind_rows.mean(0), pm_rows.mean(0)
    icl, note = _icl(model, text, cfg)
    mech = mechanism(model, previous, induction, threshold=cfg.induction_threshold, baseline_samples=cfg.baseline_samples, seed=cfg.seed)
    composition = _composition(mech, previous)
    curve_targets = _probe(cfg, zoo, name, tok, 2, cfg.curve_seq_len, cfg.curve_sequences, 2)
    steps, curve, curve_ci = formation_curve(cfg, zoo, name, curve_targets)
    formed = [s for s, v in zip(steps, curve) if v > cfg.induction_threshold]
    layer_max, layer_ci = _prefix_matching(pm_rows, cfg)
    best, lo, hi = _best(ind_rows, cfg)
    variant = Variant(
        positional=mc.positional, n_layers=mc.n_layers, n_heads=mc.n_heads, n_kv_heads=mc.n_kv_heads, data_label=zoo.data_label(name),
        previous_token=previous, induction=induction, prefix_matching=prefix, icl=icl, max_induction=Estimate(value=best, lo=lo, hi=hi),
        previous_token_head_exists=bool(composition["max_previous_token"] > cfg.previous_token_threshold), **composition,
        curve_steps=tuple(steps), curve=curve, curve_ci=curve_ci, first_formed=formed[0] if formed else None,
        layer_max_prefix_matching=layer_max, layer_max_prefix_matching_ci=layer_ci,
    )
    probes = (f"induction: {ind_targets.probe.describe()}; prefix matching: {pm_targets.probe.describe()}; "
              f"{probe_token_rule(mc.d_vocab // 2, mc.d_vocab)}")
    return variant, note, probes


@torch.no_grad()
def compute(cfg: Config, zoo: Zoo) -> Result:
    models, note, probes = {}, "", ""
    for name in cfg.presets:
        models[name], note, probes = measure(cfg, zoo, name)
    return Result(
        presets=tuple(cfg.presets), models=models, deep=cfg.deep, induction_threshold=cfg.induction_threshold,
        previous_token_threshold=cfg.previous_token_threshold, icl_note=note, probe_note=probes, quick=bool(zoo.quick),
    )


# ---- verdicts ----------------------------------------------------------------------------------
def mechanism_label(max_induction: float, k_z: float, q_z: float, threshold: float, cutoff: float = Z_CUTOFF) -> str:
    """How the top induction head reads earlier heads: K- or Q-composition above ``cutoff`` baseline std, or neither."""
    if max_induction < threshold:
        return "no induction head"
    if not (math.isfinite(k_z) and math.isfinite(q_z)):
        return "n/a"
    if k_z > cutoff and k_z >= q_z:
        return "K-composition"
    if q_z > cutoff:
        return "Q-composition"
    return "neither above baseline (positional/other)"


def highest_layer(layer_max: Sequence[float] | np.ndarray) -> int:
    """The layer with the highest per-layer maximum (a missing value counts as -1)."""
    return int(np.argmax([v if math.isfinite(v) else -1.0 for v in layer_max]))


def highest_in_last_layer(layer_max: Sequence[float] | np.ndarray, n_layers: int) -> bool:
    """The highest prefix-matching head of the model is in its last layer."""
    return highest_layer(layer_max) == n_layers - 1


def induction_heads_in_last_layer(layer_max: Sequence[float] | np.ndarray, threshold: float) -> bool:
    """Claim 19: the last layer holds the highest prefix-matching head, it is an induction head (>= ``threshold``), and no earlier
    layer has one (a missing value counts as -1)."""
    values = [v if math.isfinite(v) else -1.0 for v in layer_max]
    return bool(values and highest_in_last_layer(values, len(values)) and values[-1] >= threshold and all(v < threshold for v in values[:-1]))


# ---- figures, tables, claims -------------------------------------------------------------------
def _short(name: str) -> str:
    return name.replace("attn-only-", "") + (" (shortformer)" if name == "attn-only-2l" else "")


def _names(result: Result) -> list[str]:
    return [n for n in result.presets if n in result.models]


def _which_figure(result: Result) -> Figure:
    names, M = _names(result), result.models
    fig = bar_panels(
        [_short(n) for n in names],
        {"max induction score (layers >= 1)": [M[n].max_induction.value for n in names],
         "|ICL score| (nats)": [-M[n].icl.value for n in names]},
        title="Which variants form induction heads", reference={"max induction score (layers >= 1)": {"threshold": result.induction_threshold}},
    )
    caption = "Final checkpoints, with 95% bootstrap intervals (over probe sequences; over evaluation windows for ICL). " + "; ".join(
        f"{_short(n)}: induction {M[n].max_induction.text()}, |ICL| {_abs(M[n].icl).text()}" for n in names) + "."
    return Figure(key="variants_which", title="Induction and ICL scores of each variant", caption=caption, fig=fig)


def _speed_figure(result: Result) -> Figure:
    names, M = _names(result), result.models
    fig = line_panels(
        {"max induction score (layers >= 1)": {_short(n): (M[n].curve_steps, M[n].curve) for n in names}},
        title="Max induction score (layers >= 1) over training", x_title="training step", y_title="induction score",
        reference={"max induction score (layers >= 1)": {"threshold": result.induction_threshold}},
    )
    widest = max((float(np.nanmax(M[n].curve_ci[:, 1] - M[n].curve_ci[:, 0])) / 2 for n in names if len(M[n].curve_ci)), default=float("nan"))
    caption = ("Best induction score on the natural-prefix R + R probe at each checkpoint (95% intervals over the probe sequences at most "
               f"±{fmt(widest)}). First checkpoint above the threshold: ") + "; ".join(
        f"{_short(n)} {M[n].first_formed if M[n].first_formed is not None else 'never'}" for n in names) + "."
    return Figure(key="variants_speed", title="How fast induction heads form", caption=caption, fig=fig)


def _mechanism_figure(result: Result) -> Figure:
    names, M = _names(result), result.models
    fig = bars(
        [_short(n) for n in names],
        {"K-composition (best writer)": [M[n].max_K_z for n in names], "Q-composition (best writer)": [M[n].max_Q_z for n in names]},
        title="Composition into the top induction head, in baseline standard deviations", x_title="model", y_title="z-score",
        reference={"3 std above baseline": Z_CUTOFF},
    )
    caption = "The largest K- and Q-composition score of any earlier head into the top induction head, as z-scores against random head pairs."
    return Figure(key="variants_mechanism", title="Mechanism: K- versus Q-composition", caption=caption, fig=fig)


def _deep_figure(result: Result, deep: Variant) -> Figure:
    fig = head_heatmaps({"prefix-matching score": deep.prefix_matching}, title=f"Prefix-matching score of every head of {result.deep}", zmin=0.0, zmax=1.0)
    caption = "Per-layer maximum (95% interval over the probe sequences): " + ", ".join(
        f"layer {l} {fmt(v)} [{fmt(lo)}, {fmt(hi)}]" for l, (v, (lo, hi)) in enumerate(zip(deep.layer_max_prefix_matching, deep.layer_max_prefix_matching_ci))) + "."
    return Figure(key="variants_deep_layers", title="Where induction heads form in a deeper model", caption=caption, fig=fig)


def figures(result: Result) -> list[Figure]:
    out = [_which_figure(result), _speed_figure(result), _mechanism_figure(result)]
    deep = result.models.get(result.deep)
    if deep is not None:
        out.append(_deep_figure(result, deep))
    return out


def _summary_row(name: str, m: Variant, result: Result) -> list:
    below = "" if m.previous_token_head_exists else f", below {result.previous_token_threshold:g}"
    return [
        name, m.positional, m.n_kv_heads or m.n_heads, m.max_induction.text(), _abs(m.icl).text(),
        m.first_formed if m.first_formed is not None else "never",
        f"{'L{}H{}'.format(*m.previous_token_head)} ({fmt(m.max_previous_token)}){below}",
        fmt(m.max_K_z), fmt(m.max_Q_z), mechanism_label(m.max_induction.value, m.max_K_z, m.max_Q_z, result.induction_threshold),
    ]


def tables(result: Result) -> list[Table]:
    columns = ["model", "positions", "kv heads", "max induction (95%)", "|ICL| (95%)", "first step > threshold", "previous-token head (score)",
               "K z (best)", "Q z (best)", "mechanism"]
    rows = [_summary_row(n, result.models[n], result) for n in _names(result)]
    return [Table(key="variants_summary", title="Variants at a glance", columns=columns, rows=rows)]


def _abs(e: Estimate) -> Estimate:
    """|ICL| from the signed ICL score (and its interval, flipped)."""
    return Estimate(value=-e.value, lo=-e.hi, hi=-e.lo)


def claims(result: Result) -> list[Claim]:
    deep = result.models.get(result.deep)
    if deep is None:
        return []
    layer_max = [float(v) if math.isfinite(v) else -1.0 for v in deep.layer_max_prefix_matching]
    ci = deep.layer_max_prefix_matching_ci
    t = result.induction_threshold
    return [Claim(
        key="icl_where_heads_form", statement=(
            f"In attention-only models with more than 2 layers the induction heads form in the last layer: its best prefix-matching head "
            f"is the highest and an induction head (>= {t:g}), and no earlier layer has one."),
        source="In-context Learning paper, appendix 'Where induction heads form'", paper_value="last layer",
        measured=(f"{result.deep}: highest prefix-matching head in layer {highest_layer(layer_max)} of {deep.n_layers}; per-layer max "
                  + ", ".join(f"{fmt(v)} [{fmt(lo)}, {fmt(hi)}]" for v, (lo, hi) in zip(layer_max, ci))
                  + " (95% intervals over the probe sequences)"),
        holds=induction_heads_in_last_layer(layer_max, t), value=layer_max[-1] if layer_max else None,
        models=(result.deep,), data=deep.data_label,
    )]


def intro(result: Result) -> str:
    return (
        "Two-layer attention-only models that differ only in how they see positions (or in sharing keys and values between heads), "
        "trained on the same batches. Pitfall 5 of the reference notes: with positions in the residual stream (learned) an induction head "
        "can also use positional (Q-composition) tricks, and the pure-token eigen-analysis misses them."
    )


def notes(result: Result) -> list[str]:
    out = [result.icl_note, f"Probes: {result.probe_note}.",
           "Composition scores of the rotary model ignore the rotation (they use the unrotated W_Q, W_K), so its K/Q numbers are approximate.",
           "ALiBi and no-position models get their recency signal from the distance bias or the causal mask alone."]
    if result.quick:
        out.append("Quick mode: tiny models trained for a few dozen steps; the claims are not expected to hold.")
    return out
