"""The induction-head phase change over training (In-context Learning paper, Arguments 1-3).

Over the dense checkpoints of the 1L, 2L and smeared-key models (trained on the same batches in
the same order), we measure at every checkpoint: the in-context-learning score, the
prefix-matching score of every head, the loss (and its rate of decrease: the "bump"), the loss at
each context index, and a per-token loss vector whose principal components give each model's
trajectory. From the ICL curve we detect the phase-change window and test whether the other
signals move inside it, whether the 1L control lacks them and whether smeared keys bring them to
one layer (and earlier to two). On the final 2L checkpoint, pattern-preserving ablations of each
head test that the induction heads carry the in-context learning.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import numpy as np
import torch

from circuits.analysis import trajectory as traj
from circuits.analysis.activations.head_picks import induction_layers, per_token_loss, pick_induction_heads, pick_previous_token_head
from circuits.analysis.activations.icl import CheckpointMetrics, checkpoint_metrics, sample_token_indices
from circuits.analysis.activations.interventions import Ablation
from circuits.experiments import base
from circuits.experiments import plots
from circuits.experiments.base import Figure, Table
from circuits.experiments.phase_change_claims import claims  # noqa: F401  (the section's claims, re-exported)
from circuits.experiments.util import band_icl, eval_tokens, fmt, icl_bands, training_data_note
from circuits.training.checkpoint import load
from circuits.training.zoo import Zoo

NAME = "phase_change"
TITLE = "The induction-head phase change over training"


@dataclass(frozen=True, kw_only=True)
class Config:
    """Settings of the phase-change analysis (defaults: the full report)."""

    presets: tuple[str, ...] = ("attn-only-1l", "attn-only-2l", "attn-only-1l-smeared", "attn-only-2l-smeared")  #: models compared
    main: str = "attn-only-2l"  #: the model whose window is detected and ablated
    control: str = "attn-only-1l"  #: the 1L control
    smeared_1l: str = "attn-only-1l-smeared"
    smeared_2l: str = "attn-only-2l-smeared"
    eval_windows: int = 512  #: fixed validation windows evaluated at every checkpoint (fewer make the per-position losses, hence ICL, too noisy)
    pairs_per_example: int = 8  #: (example, index) pairs per window in the per-token loss vectors
    induction_seq_len: int = 25  #: T of [BOS] + R + R for induction scores (capped to fit n_ctx)
    prefix_seq_len: int = 25  #: T of [BOS] + R x 4 for prefix-matching scores (the paper's 25; capped to fit n_ctx)
    score_batch: int = 4  #: random sequences per checkpoint for induction and prefix-matching scores
    induction_threshold: float = 0.3  #: final prefix-matching score at which a head counts as an induction head
    ablate: bool = True  #: pattern-preserving ablations of the final main model (claims 16-17)
    seed: int = 0

    @classmethod
    def quick(cls) -> "Config":
        return cls(eval_windows=4, pairs_per_example=4, induction_seq_len=10, prefix_seq_len=6, score_batch=2)


# ---- the typed result --------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class Rise(base.Result):
    """Steps where a rising curve crosses 10%, 50% and 90% of its rise (``None``: no rise); see :func:`~circuits.analysis.trajectory.rise_steps`."""

    lo: float
    final: float
    lo_step: int
    t10: int | None
    t50: int | None
    t90: int | None


@dataclass(frozen=True, kw_only=True)
class Bump(base.Result):
    """The loss bump (:func:`~circuits.analysis.trajectory.bump`): ``score`` at ``step``, and the rate of decrease per step."""

    score: float | None
    step: float | None
    rate: np.ndarray  # [interval] rate of decrease between consecutive checkpoints
    rate_steps: np.ndarray  # [interval] interval midpoints (steps)


@dataclass(frozen=True, kw_only=True)
class ModelTrajectory(base.Result):
    """One model's measurements at every checkpoint (first axis ``checkpoint``, labelled by ``steps``) and their curve features."""

    steps: tuple[int, ...]
    tokens_per_step: int
    total_steps: int
    n_layers: int
    n_heads: int
    prefix_seq_len: int  #: T of the prefix-matching sequences actually used (capped to fit n_ctx)
    icl: np.ndarray  # [checkpoint] banded ICL score (late minus early loss; negative = in-context learning)
    icl_single: np.ndarray  # [checkpoint] ICL score at the two scaled single indices
    loss: np.ndarray  # [checkpoint] mean validation loss
    per_position_loss: np.ndarray  # [checkpoint, pos - 1] loss of predicting token i at entry i - 1
    prefix_matching: np.ndarray  # [checkpoint, layer, head]
    induction: np.ndarray  # [checkpoint, layer, head]
    previous_token: np.ndarray  # [checkpoint, layer, head]
    pm_max: np.ndarray  # [checkpoint] highest prefix-matching score of the heads that can be induction heads
    pca: np.ndarray  # [checkpoint, 2] per-token loss vector on the joint top two principal components
    train_steps: tuple[int, ...]
    train_loss: np.ndarray  # [logged step] training loss
    icl_rise: Rise  # of |ICL|
    pm_rise: Rise  # of pm_max
    bump: Bump
    pivot_step: int | None  #: checkpoint where the PCA trajectory turns most
    pivot_angle: float | None
    before_step: int  #: last checkpoint before the ICL window
    slope_before: float  #: d loss / d ln(index) beyond the early band, at before_step (nats per e-fold)
    slope_after: float  #: the same at the last checkpoint

    @property
    def tokens(self) -> np.ndarray:
        """Training tokens seen at each checkpoint."""
        return np.asarray(self.steps) * self.tokens_per_step

    @property
    def final_icl(self) -> float:
        """|ICL| of the last checkpoint (the score's sign flipped)."""
        return -self.icl[-1]


@dataclass(frozen=True, kw_only=True)
class LossGap(base.Result):
    """The control's loss minus the main model's at each checkpoint, and where it grows fastest."""

    gap: np.ndarray  # [checkpoint]
    fastest_step: float


@dataclass(frozen=True, kw_only=True)
class AblationStudy(base.Result):
    """Pattern-preserving zero ablation of each head (and of head groups) of the final main model."""

    labels: tuple[str, ...]  # "L{l}H{h}" for each head, then "induction heads", "induction + previous-token heads"
    icl_delta: np.ndarray  # [ablation] ICL score ablated minus clean (positive = less ICL)
    dot: np.ndarray  # [ablation] before-and-after vector · per-token loss change of the ablation
    clean_icl: float
    induction_heads: tuple[tuple[int, int], ...]
    previous_token_head: tuple[int, int]
    phase_steps: tuple[int, int]  #: checkpoints of the before-and-after vector

    @property
    def induction_labels(self) -> set[str]:
        return {f"L{l}H{h}" for l, h in self.induction_heads}


@dataclass(frozen=True, kw_only=True)
class Result(base.Result):
    """Everything the phase-change section shows: per-model trajectories, the joint PCA, the loss gap and the ablations."""

    presets: tuple[str, ...]
    main: str
    control: str
    smeared_1l: str
    smeared_2l: str
    induction_threshold: float
    eval_windows: int
    quick: bool
    data_note: str | None  #: what the corpus models trained on (training_data_note of the main model)
    n_pos: int
    late: tuple[int, ...]  #: token indices of the late ICL band
    early: tuple[int, ...]  #: token indices of the early ICL band
    icl_note: str
    band_note: str
    pca_explained: np.ndarray  # [2] fractions of variance of the two principal components
    models: dict[str, ModelTrajectory]
    loss_gap: LossGap | None
    ablation: AblationStudy | None
    seconds: float

    @property
    def names(self) -> list[str]:
        return [n for n in self.presets if n in self.models]


# ---- compute -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Run:
    """A model's checkpoint metrics and training facts, before the joint PCA."""

    metrics: CheckpointMetrics
    n_layers: int
    n_heads: int
    tokens_per_step: int
    total_steps: int
    prefix_seq_len: int
    train_steps: tuple[int, ...]
    train_loss: np.ndarray


def _evaluation_set(cfg: Config, zoo: Zoo) -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed validation windows of the first model's corpus and the (example, index) pairs of the per-token loss vectors."""
    name = cfg.presets[0]
    _, tok = load(zoo.checkpoints(name)[0][1])
    text = eval_tokens(zoo, name, tok, cfg.eval_windows)
    pairs = sample_token_indices(text.shape[0], text.shape[1], cfg.seed, per_example=min(cfg.pairs_per_example, text.shape[1] - 1))
    return text, pairs


def _run(cfg: Config, zoo: Zoo, name: str, text: torch.Tensor, pairs: torch.Tensor) -> _Run:
    """Every checkpoint of ``name`` on the evaluation set and on repeated random sequences."""
    checkpoints = zoo.checkpoints(name)
    model0, tok = load(checkpoints[0][1])
    n_ctx = model0.config.n_ctx
    ind_kw = dict(seq_len=min(cfg.induction_seq_len, (n_ctx - 1) // 2), batch=cfg.score_batch, seed=cfg.seed, bos=tok.bos_id)
    pm_kw = dict(seq_len=min(cfg.prefix_seq_len, (n_ctx - 1) // 4), batch=cfg.score_batch, seed=cfg.seed, bos=tok.bos_id)
    stream = ((step, load(path)[0]) for step, path in checkpoints)
    metrics = checkpoint_metrics(stream, text, pairs=pairs, induction=ind_kw, prefix_matching=pm_kw)
    _, train_cfg = zoo.configs(name)
    train = [(m["step"], m["train_loss"]) for m in zoo.metrics(name) if m.get("kind") == "train"]
    return _Run(
        metrics=metrics, n_layers=model0.config.n_layers, n_heads=model0.config.n_heads, tokens_per_step=train_cfg.batch_size * n_ctx,
        total_steps=train_cfg.steps, prefix_seq_len=pm_kw["seq_len"], train_steps=tuple(t[0] for t in train),
        train_loss=np.array([t[1] for t in train], dtype=float),
    )


def _trajectory(run: _Run, pca: np.ndarray, late: list[int], early: list[int]) -> ModelTrajectory:
    """A model's curves and their features: ICL and prefix-matching rises, the loss bump, the PCA turn, the log-index slopes."""
    cm = run.metrics
    steps = np.array(cm.steps)
    ppl, loss = cm.per_position_loss.double().numpy(), cm.loss.double().numpy()
    icl = band_icl(ppl, late, early)
    pm = cm.prefix_matching.numpy()
    pm_max = pm[:, induction_layers(run.n_layers)].reshape(len(steps), -1).max(-1)
    start = max(1, int(0.05 * run.total_steps))
    icl_rise = traj.rise_steps(steps, -icl)
    before = traj.index_before(steps, icl_rise.t10)
    pivot, bump = traj.pivot(pca, steps, start), traj.bump(steps, loss, start)
    return ModelTrajectory(
        steps=tuple(int(s) for s in steps), tokens_per_step=run.tokens_per_step, total_steps=run.total_steps, n_layers=run.n_layers,
        n_heads=run.n_heads, prefix_seq_len=run.prefix_seq_len, icl=icl, icl_single=cm.icl.double().numpy(), loss=loss,
        per_position_loss=ppl, prefix_matching=pm, induction=cm.induction.numpy(), previous_token=cm.previous_token.numpy(),
        pm_max=pm_max, pca=pca, train_steps=run.train_steps, train_loss=run.train_loss,
        icl_rise=Rise(**dataclasses.asdict(icl_rise)), pm_rise=Rise(**dataclasses.asdict(traj.rise_steps(steps, pm_max))),
        bump=Bump(**dataclasses.asdict(bump)), pivot_step=pivot.step, pivot_angle=pivot.angle, before_step=int(steps[before]),
        slope_before=traj.log_index_slope(ppl[before], early[0]), slope_after=traj.log_index_slope(ppl[-1], early[0]),
    )


def _loss_gap(main: ModelTrajectory | None, control: ModelTrajectory | None) -> LossGap | None:
    """The control's loss minus the main model's, when both were evaluated at the same steps."""
    if main is None or control is None or main.steps != control.steps:
        return None
    gap = control.loss - main.loss
    return LossGap(gap=gap, fastest_step=traj.fastest_divergence(np.array(main.steps), gap))


def _ablation_study(
    cfg: Config, zoo: Zoo, main: ModelTrajectory, vectors: np.ndarray, text: torch.Tensor, pairs: torch.Tensor, late: list[int], early: list[int],
) -> AblationStudy:
    """ICL change and before-and-after dot product of a pattern-preserving zero ablation of each head of the final model."""
    model, _ = zoo.model(cfg.main)
    n_layers, n_heads = model.config.n_layers, model.config.n_heads
    induction_heads = pick_induction_heads(main.prefix_matching[-1], cfg.induction_threshold)
    prev_head = pick_previous_token_head(main.previous_token[-1], induction_heads)
    clean = per_token_loss(model, text)
    rows, idx = pairs[:, 0], pairs[:, 1] - 1
    clean_vec = clean[rows, idx].double().numpy()
    clean_icl = float(band_icl(clean.mean(0).double().numpy(), late, early))
    # before-and-after vector: per-token losses from the checkpoint before the window to the end of it, unit length
    steps = np.asarray(main.steps)
    i0, i1 = traj.index_before(steps, main.icl_rise.t10), traj.window_end(steps, main.icl_rise.t90)
    v = traj.before_after_vector(vectors, i0, i1)
    groups = [([(l, h)], f"L{l}H{h}") for l in range(n_layers) for h in range(n_heads)]
    groups += [(induction_heads, "induction heads"), (induction_heads + [prev_head], "induction + previous-token heads")]
    icl_delta, dots = [], []
    for group, _ in groups:
        loss = per_token_loss(model, text, Ablation(group, pattern_preserving=True))
        icl_delta.append(float(band_icl(loss.mean(0).double().numpy(), late, early)) - clean_icl)
        dots.append(float(v @ (loss[rows, idx].double().numpy() - clean_vec)))
    return AblationStudy(
        labels=tuple(label for _, label in groups), icl_delta=np.array(icl_delta), dot=np.array(dots), clean_icl=clean_icl,
        induction_heads=tuple(induction_heads), previous_token_head=prev_head, phase_steps=(int(steps[i0]), int(steps[i1])),
    )


@torch.no_grad()
def compute(cfg: Config, zoo: Zoo) -> Result:
    start_time = time.perf_counter()
    text, pairs = _evaluation_set(cfg, zoo)
    runs = {name: _run(cfg, zoo, name, text, pairs) for name in cfg.presets}
    n_pos = text.shape[1]
    late, early, band_note = icl_bands(n_pos)
    coords, explained = traj.joint_pca([run.metrics.loss_vectors.double().numpy() for run in runs.values()])
    models = {name: _trajectory(run, pca, late, early) for (name, run), pca in zip(runs.items(), coords)}
    ablation = None
    if cfg.ablate and cfg.main in models:
        vectors = runs[cfg.main].metrics.loss_vectors.double().numpy()
        ablation = _ablation_study(cfg, zoo, models[cfg.main], vectors, text, pairs, late, early)
    return Result(
        presets=tuple(cfg.presets), main=cfg.main, control=cfg.control, smeared_1l=cfg.smeared_1l, smeared_2l=cfg.smeared_2l,
        induction_threshold=cfg.induction_threshold, eval_windows=cfg.eval_windows, quick=bool(zoo.quick),
        data_note=training_data_note(zoo, cfg.main), n_pos=n_pos, late=tuple(late), early=tuple(early),
        icl_note=list(runs.values())[-1].metrics.indices.note, band_note=band_note, pca_explained=explained, models=models,
        loss_gap=_loss_gap(models.get(cfg.main), models.get(cfg.control)), ablation=ablation, seconds=time.perf_counter() - start_time,
    )


# ---- figures -----------------------------------------------------------------------------------
def _colours(r: Result) -> dict[str, str]:
    return plots.series_colours(r.names)


def _band(r: Result) -> tuple[float, float] | None:
    """The main model's ICL window in training tokens (at least one step wide), or ``None`` without a window."""
    main = r.models.get(r.main)
    if main is None or main.icl_rise.t10 is None or main.icl_rise.t90 is None:
        return None
    tps, t10, t90 = _tokens_per_step(r), main.icl_rise.t10, main.icl_rise.t90
    return t10 * tps, max(t90, t10 + 1) * tps


def _tokens_per_step(r: Result) -> float:
    m = r.models.get(r.main) or r.models[r.names[0]]
    return m.tokens[1] / max(m.steps[1], 1) if len(m.steps) > 1 else 1


def _shown(r: Result) -> list[str]:
    """The models of the loss-by-index figures: the main model and its 1L control."""
    return [n for n in (r.main, r.control) if n in r.models] or r.names[:1]


def _figure_icl(r: Result) -> Figure:
    main, M = r.models.get(r.main), r.models
    fig = plots.curves(
        {n: (M[n].tokens, -M[n].icl) for n in r.names}, steps={n: M[n].steps for n in r.names}, colours=_colours(r),
        title="In-context learning score over training", x_title="training tokens", y_title="-(L(late) - L(early)) (nats)", x_format=",",
    )
    window = (main.icl_rise.t10, main.icl_rise.t90) if main else (None, None)
    return Figure(key="phase_change_icl", title="In-context learning score over training",
                  caption=("ICL score of every checkpoint; the shaded band is the detected phase-change window of "
                           f"{r.main} (10% to 90% of its final ICL score: steps {window[0]}-{window[1]}). Final |ICL|: "
                           + ", ".join(f"{n} {fmt(M[n].final_icl)}" for n in r.names) + "."),
                  fig=plots.add_band(fig, _band(r)))


def _figure_prefix_matching(r: Result) -> Figure:
    panels = {n.replace("attn-only-", ""): (r.models[n].tokens, r.models[n].prefix_matching) for n in r.names}
    fig = plots.head_curve_panels(panels, title="Prefix-matching score per head (blue L0, green L1, red L2)",
                                           x_title="tokens", y_title="prefix-matching score")
    return Figure(key="phase_change_prefix_matching", title="Prefix-matching score of each head over training",
                  caption=("Attention from each token of repeats 2-4 of a random sequence to the tokens after its earlier copies. "
                           "Final maximum: " + ", ".join(f"{n} {fmt(r.models[n].pm_max[-1])}" for n in r.names) + "."),
                  fig=plots.add_band(fig, _band(r), row="all", col="all"))


def _figure_loss(r: Result) -> Figure:
    tps, control, main = _tokens_per_step(r), r.models.get(r.control), r.models.get(r.main)
    titles = ("validation loss at each checkpoint (train loss thin)", "rate of decrease -dL/dstep (nats per 1k steps)", f"loss gap {r.control} - model")
    rows: dict[str, dict] = {t: {} for t in titles}
    train = {n: (np.asarray(r.models[n].train_steps) * tps, r.models[n].train_loss) for n in r.names}
    for n in r.names:
        m = r.models[n]
        rows[titles[0]][n] = (m.tokens, m.loss)
        if len(m.bump.rate):
            rows[titles[1]][n] = (m.bump.rate_steps * tps, m.bump.rate * 1000)
        if control is not None and control.steps == m.steps and n != r.control:
            rows[titles[2]][n] = (m.tokens, control.loss - m.loss)
    fig = plots.curve_rows(rows, title="Loss, its rate of decrease and the gap to the 1L control", x_title="training tokens",
                                    colours=_colours(r), faint={titles[0]: train})
    return Figure(key="phase_change_loss", title="The loss bump",
                  caption=(f"A bump is a place where the loss starts falling faster again (the rate of decrease rises). Largest rise for "
                           f"{r.main} at step {fmt(main.bump.step if main else None)} (score {fmt(main.bump.score if main else None)}); "
                           f"for {r.control} score {fmt(control.bump.score if control else None)}."),
                  fig=plots.add_band(fig, _band(r), row="all", col=1))


def _figure_pca(r: Result) -> Figure:
    M, ev = r.models, r.pca_explained
    marks = {n: (*M[n].pca[M[n].steps.index(M[n].pivot_step)], f"{n} pivot, step {M[n].pivot_step}") for n in r.names
             if M[n].pivot_step is not None}
    fig = plots.curves(
        {n: (M[n].pca[:, 0], M[n].pca[:, 1]) for n in r.names}, steps={n: M[n].steps for n in r.names}, marks=marks, colours=_colours(r),
        title="Per-token loss PCA trajectories (×: sharpest turn)", x_title=f"PC1 ({100 * ev[0]:.0f}% of variance)",
        y_title=f"PC2 ({100 * ev[1]:.0f}%)", height=480,
    )
    return Figure(key="phase_change_pca", title="Per-token loss PCA trajectories",
                  caption=("Each checkpoint's losses on a fixed sample of (example, index) pairs, projected on the two top principal "
                           "components of all checkpoints of all models. Sharpest turn: "
                           + ", ".join(f"{n} step {M[n].pivot_step}" for n in r.names) + "."),
                  fig=fig)


def _figure_loss_by_index(r: Result) -> Figure:
    M = r.models
    panels = {n: (M[n].per_position_loss, np.arange(1, M[n].per_position_loss.shape[1] + 1), M[n].steps) for n in _shown(r)}
    fig = plots.heatmap_panels(panels, title="Loss by context index and training step", x_title="token index (log)",
                                        y_title="training step", value="loss (nats)", log_x=True)
    return Figure(key="phase_change_loss_by_index", title="Loss by context index and training step",
                  caption=("Mean loss of the token at each index, for each checkpoint. Slope of loss against ln(index) beyond index "
                           f"{r.early[0]}: " + ", ".join(f"{n} {fmt(M[n].slope_before)} (step {M[n].before_step}) -> "
                                                        f"{fmt(M[n].slope_after)} (final)" for n in _shown(r)) + " nats per e-fold."),
                  fig=fig)


def _figure_loss_by_log_index(r: Result) -> Figure:
    colours, series, line_colours, dashes = _colours(r), {}, {}, {}
    for n in _shown(r):
        m = r.models[n]
        for which, row, dash in (("before", m.steps.index(m.before_step), "dot"), ("final", -1, "solid")):
            label = f"{n} {which} (step {m.steps[row]})"
            series[label] = (np.arange(1, m.per_position_loss.shape[1] + 1), m.per_position_loss[row])
            line_colours[label], dashes[label] = colours[n], dash
    fig = plots.curves(series, colours=line_colours, dashes=dashes, title="Loss against log index, before and after the phase change",
                                x_title="token index (log)", y_title="loss (nats)", log_x=True, mode="lines")
    return Figure(key="phase_change_loss_by_log_index", title="Loss against log index before and after",
                  caption="After the phase change the 2L model keeps improving with context out to the end; the 1L model flattens early.",
                  fig=fig)


def _figure_ablation(r: Result, ab: AblationStudy) -> Figure:
    fig = plots.bar_panels(ab.labels, {"change in ICL score (+ = less ICL)": ab.icl_delta, "dot with the before-and-after vector": ab.dot},
                           title=f"Pattern-preserving ablations, final {r.main}")
    plots.mark_bars(fig, [lab in ab.induction_labels or lab.startswith("induction") for lab in ab.labels])
    fig.update_layout(margin_t=90)  # the title above the subplot titles
    return Figure(key="phase_change_ablation", title="Ablating the induction heads removes in-context learning",
                  caption=(f"Clean ICL score {fmt(ab.clean_icl)} nats. Red: induction heads ({', '.join(sorted(ab.induction_labels))}). "
                           f"The before-and-after vector is the per-token loss change from step {ab.phase_steps[0]} to step "
                           f"{ab.phase_steps[1]}, unit length."),
                  fig=fig)


def figures(result: Result) -> list[Figure]:
    r = result
    out = [_figure_icl(r), _figure_prefix_matching(r), _figure_loss(r), _figure_pca(r), _figure_loss_by_index(r), _figure_loss_by_log_index(r)]
    return out + ([_figure_ablation(r, r.ablation)] if r.ablation else [])


# ---- table and text ----------------------------------------------------------------------------
def tables(result: Result) -> list[Table]:
    M = result.models
    return [Table(
        key="phase_change_summary", title="Phase-change timing per model (steps)",
        columns=["model", "final |ICL|", "ICL 10%", "ICL 50%", "ICL 90%", "prefix-matching 50%", "final max prefix matching",
                 "loss bump at", "bump score", "PCA turn at"],
        rows=[[n, fmt(M[n].final_icl), M[n].icl_rise.t10, M[n].icl_rise.t50, M[n].icl_rise.t90, M[n].pm_rise.t50, fmt(M[n].pm_max[-1]),
               fmt(M[n].bump.step), fmt(M[n].bump.score), M[n].pivot_step] for n in result.names],
    )]


def intro(result: Result) -> str:
    r = result
    return (
        "Every checkpoint of " + ", ".join(r.names) + " (same data, same order) is evaluated on the same "
        f"{r.eval_windows} validation windows of {r.n_pos} tokens and on the same random repeated sequences. The phase-change "
        "window is where the ICL score of " + r.main + " rises from 10% to 90% of its final value (above its minimum). "
        f"Evaluation took {fmt(r.seconds)} s."
    )


def notes(result: Result) -> list[str]:
    out = [result.band_note, "Prefix matching uses the +1 offset (the token after each earlier copy) on 25-token sequences repeated 4 times, "
           "shortened to fit the context where needed."]
    if result.quick:
        out.append("Quick mode: tiny models trained for a few dozen steps with few checkpoints; the claims are not expected to hold.")
    return out + ([result.data_note] if result.data_note else [])
