"""The induction-head phase change over training (In-context Learning paper, Arguments 1-3).

Over the dense checkpoints of the 1L, 2L and smeared-key models (trained on the same batches in
the same order), and of a 2L model trained on the corpus alone (the control that shows what the
copied-span augmentation of the other models changes), we measure at every checkpoint: the
in-context-learning score, the prefix-matching score of every head, the loss (and its rate of
decrease: the "bump"), the loss at each context index, and a per-token loss vector whose
principal components give each model's trajectory.

The phase-change window is the quarter of training (the paper's 2.5-5B of 10B tokens) over which
the main model's ICL score gains most. The numbers the claims read (ICL levels, log-index slopes,
ablation effects) are measured again on a larger set of evaluation windows at the few checkpoints
they need, each with a 95% bootstrap interval over windows; the per-checkpoint prefix-matching
score has one over probe sequences (:mod:`circuits.analysis.uncertainty`). On the final 2L
checkpoint, pattern-preserving ablations of each head test that the induction heads carry the
in-context learning. Figures and tables: :mod:`circuits.experiments.phase_change_figures`.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import numpy as np
import torch

from circuits.analysis import trajectory as traj
from circuits.analysis import uncertainty as unc
from circuits.analysis.activations.head_picks import induction_layers, per_token_loss, pick_induction_heads, pick_previous_token_head
from circuits.analysis.activations.icl import checkpoint_metrics, log_index_start, log_index_weights, sample_token_indices, window_icl
from circuits.analysis.activations.interventions import Ablation
from circuits.analysis.activations.per_sequence import RowTargets, probe_seq_len, row_targets
from circuits.analysis.probes import prefixed_repeats, probe_token_ids, probe_token_rule
from circuits.experiments import base
from circuits.experiments.corpus import token_data
from circuits.experiments.estimates import Estimate
from circuits.experiments.phase_change_claims import claims  # noqa: F401  (the section's claims, re-exported)
from circuits.experiments.phase_change_figures import figures, intro, notes, tables  # noqa: F401  (re-exported)
from circuits.experiments.section_views import phase_change_views as views  # noqa: F401  (the section's interactive views)
from circuits.experiments.util import band_icl, eval_tokens, icl_bands, training_data_note
from circuits.training.checkpoint import load
from circuits.training.zoo import Zoo

NAME = "phase_change"
TITLE = "The induction-head phase change over training"
COMPUTE_S = 95  #: about the seconds compute takes on one core in the full report (2026-12-01); orders the report's work only
SEEDED = True  #: claims tested on several seeds (circuits report --seeds; see circuits.experiments.base)


@dataclass(frozen=True, kw_only=True)
class Config:
    """Settings of the phase-change analysis (defaults: the full report)."""

    presets: tuple[str, ...] = (
        "attn-only-1l", "attn-only-2l", "attn-only-2l-corpus", "attn-only-1l-smeared", "attn-only-2l-smeared",
    )  #: models compared
    main: str = "attn-only-2l"  #: the model whose window is detected and ablated
    control: str = "attn-only-1l"  #: the 1L control
    corpus_control: str = "attn-only-2l-corpus"  #: the main model's architecture trained on the corpus alone (seed 0 only: see for_seed)
    smeared_1l: str = "attn-only-1l-smeared"
    smeared_2l: str = "attn-only-2l-smeared"
    eval_windows: int = 512  #: validation windows evaluated at every checkpoint (the curves; a subset of claim_windows)
    claim_windows: int = 2048  #: validation windows of the numbers the claims read, at a few checkpoints (95% interval about ±0.08 nats on ICL)
    pairs_per_example: int = 8  #: (example, index) pairs per window in the per-token loss vectors
    prefix_seq_len: int = 25  #: T of the R x 4 prefix-matching probe (the paper's 25; capped so R x 4 fills at most 4/5 of the context)
    probe_sequences: int = 64  #: probe sequences per checkpoint for prefix matching (95% interval about ±0.03 on the final score)
    window_fraction: float = 0.25  #: width of the phase-change window as a share of training (the paper's 2.5B-5B of 10B tokens)
    induction_threshold: float = 0.3  #: final prefix-matching score at which a head counts as an induction head
    ablate: bool = True  #: pattern-preserving ablations of the final main model (claims 16-17)
    n_boot: int = unc.N_BOOT  #: bootstrap resamples per interval
    seed: int = 0

    @classmethod
    def quick(cls) -> "Config":
        return cls(eval_windows=4, claim_windows=8, pairs_per_example=4, prefix_seq_len=6, probe_sequences=4, n_boot=50)

    def for_seed(self, offset: int) -> "Config":
        """Seeds other than 0 leave out the corpus-only control: only seed 0's figures show it and no claim reads it."""
        if not offset:
            return self
        return dataclasses.replace(self, presets=tuple(p for p in self.presets if p != self.corpus_control), corpus_control="")


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
    prefix_seq_len: int  #: T of the prefix-matching probe actually used (capped to fit n_ctx)
    icl: np.ndarray  # [checkpoint] banded ICL score on the curve windows (late minus early loss; negative = in-context learning)
    icl_ci: np.ndarray  # [checkpoint, 2] 95% bootstrap interval of |ICL| over the curve windows
    icl_single: np.ndarray  # [checkpoint] ICL score at the two scaled single indices
    loss: np.ndarray  # [checkpoint] mean validation loss
    per_position_loss: np.ndarray  # [checkpoint, pos - 1] loss of predicting token i at entry i - 1
    prefix_matching: np.ndarray  # [checkpoint, layer, head] mean over the probe sequences
    previous_token: np.ndarray  # [checkpoint, layer, head]
    pm_max: np.ndarray  # [checkpoint] highest prefix-matching score of the heads that can be induction heads
    pm_ci: np.ndarray  # [checkpoint, 2] 95% bootstrap interval of pm_max over the probe sequences
    pca: np.ndarray  # [checkpoint, 2] per-token loss vector on the joint top two principal components
    train_steps: tuple[int, ...]
    train_loss: np.ndarray  # [logged step] training loss
    icl_rise: Rise  # of |ICL|
    pm_rise: Rise  # of pm_max
    icl_t50_ci: tuple[float, float] | None  #: 95% interval of icl_rise.t50 (None: not resolved)
    pm_t50_ci: tuple[float, float] | None
    window: tuple[int, int]  #: (start, end) steps of the densest window_fraction of training of the |ICL| curve
    bump: Bump
    pivot_step: int | None  #: checkpoint where the PCA trajectory turns most
    pivot_angle: float | None
    before_step: int  #: last checkpoint before the prefix-matching rise (claim 18's "before")
    slope_before: float  #: d loss / d ln(index) beyond the log-index start, at before_step (nats per e-fold; curve windows)
    slope_after: float  #: the same at the last checkpoint
    final_icl_claim: Estimate  #: |ICL| of the last checkpoint on the claim windows

    @property
    def tokens(self) -> np.ndarray:
        """Training tokens seen at each checkpoint."""
        return np.asarray(self.steps) * self.tokens_per_step

    @property
    def final_icl(self) -> float:
        """|ICL| of the last checkpoint on the curve windows (the score's sign flipped)."""
        return -self.icl[-1]


@dataclass(frozen=True, kw_only=True)
class PhaseWindow(base.Result):
    """Claim 12's measurements on the claim windows: |ICL| at the window's start and end and at the end of training."""

    start_step: int
    end_step: int
    width: float  #: the window's largest allowed width, as a share of training
    icl_start: Estimate
    icl_end: Estimate
    icl_final: Estimate
    formed: Estimate  #: (end - start) / final: the share of the final |ICL| formed in the window
    change_after: Estimate  #: |final - end| / final: the change after the window, as a share of the final |ICL|


@dataclass(frozen=True, kw_only=True)
class LogIndex(base.Result):
    """Claim 18: slopes of loss against ln(index) on the claim windows, before the prefix-matching rise and at the end."""

    first: int  #: first token index of the slope
    first_note: str
    last_efold: int  #: first index of the context's last e-fold (n_pos - 1) / e
    before_step: int
    slope_before: Estimate  #: nats per e-fold, indices first..end, at before_step
    slope_after: Estimate  #: the same at the last checkpoint
    slope_after_end: Estimate  #: the last checkpoint, indices last_efold..end ("to the end of the context")


@dataclass(frozen=True, kw_only=True)
class LossGap(base.Result):
    """The control's loss minus the main model's at each checkpoint, and where it grows fastest."""

    gap: np.ndarray  # [checkpoint]
    fastest_step: float


@dataclass(frozen=True, kw_only=True)
class AblationStudy(base.Result):
    """Pattern-preserving zero ablation of each head (and of head groups) of the final main model, on the claim windows."""

    labels: tuple[str, ...]  # "L{l}H{h}" for each head, then "induction heads", "induction + previous-token heads"
    icl_delta: np.ndarray  # [ablation] ICL score ablated minus clean (positive = less ICL)
    icl_delta_ci: np.ndarray  # [ablation, 2] its 95% bootstrap interval over windows
    dot: np.ndarray  # [ablation] before-and-after vector · per-token loss change of the ablation
    clean_icl: Estimate  #: signed ICL score of the clean model (negative = in-context learning)
    removed: Estimate  #: share of the clean |ICL| that ablating the induction heads removes
    induction_heads: tuple[tuple[int, int], ...]
    previous_token_head: tuple[int, int]
    phase_steps: tuple[int, int]  #: checkpoints of the before-and-after vector (the phase-change window)
    windows: int  #: evaluation windows

    @property
    def induction_labels(self) -> set[str]:
        return {f"L{l}H{h}" for l, h in self.induction_heads}


@dataclass(frozen=True, kw_only=True)
class Result(base.Result):
    """Everything the phase-change section shows: per-model trajectories, the joint PCA, the window, the loss gap and the ablations."""

    presets: tuple[str, ...]
    main: str
    control: str
    corpus_control: str
    smeared_1l: str
    smeared_2l: str
    induction_threshold: float
    eval_windows: int
    claim_windows: int
    probe_sequences: int
    quick: bool
    data_note: str | None  #: what the corpus models trained on (training_data_note of the main model)
    data_labels: dict[str, str]  #: preset -> what it trained on, in words
    probe_rule: str  #: how the prefix-matching probe's random tokens are drawn
    probe_layout: str
    n_pos: int
    late: tuple[int, ...]  #: token indices of the late ICL band
    early: tuple[int, ...]  #: token indices of the early ICL band
    icl_note: str
    band_note: str
    pca_explained: np.ndarray  # [2] fractions of variance of the two principal components
    models: dict[str, ModelTrajectory]
    phase: PhaseWindow | None
    log_index: LogIndex | None
    loss_gap: LossGap | None
    ablation: AblationStudy | None
    seconds: float
    text_tokens: tuple[str, ...] = ()  #: the first claim window as text (the interactive per-token loss view; empty in older caches)
    text_steps: tuple[int, ...] = ()  #: checkpoints of text_loss: the phase-change window's start and end, and the last
    text_loss: np.ndarray | None = None  # [step, pos - 1] the main model's per-token loss on that window at text_steps

    @property
    def names(self) -> list[str]:
        return [n for n in self.presets if n in self.models]


# ---- compute -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Setup:
    """What every model is evaluated on: the claim and curve windows, the loss-vector pairs, the probe and the ICL bands."""

    claim_text: torch.Tensor  # [claim window, pos]
    stride: int  # curve windows = claim_text[::stride]
    text: torch.Tensor  # [curve window, pos]
    pairs: torch.Tensor
    targets: RowTargets
    probe_rule: str
    late: list[int]
    early: list[int]
    band_note: str
    slope_first: int
    slope_note: str
    n_boot: int
    seed: int


@dataclass(frozen=True)
class _Run:
    """A model's checkpoint metrics and training facts, before the joint PCA."""

    steps: list[int]
    per_position_loss: np.ndarray  # [checkpoint, pos - 1]
    loss_vectors: np.ndarray  # [checkpoint, n_pairs]
    icl_single: np.ndarray
    icl_note: str
    icl_windows: np.ndarray  # [checkpoint, window] |ICL| of each curve window
    pm_rows: np.ndarray  # [checkpoint, sequence, layer, head]
    previous_token: np.ndarray
    n_layers: int
    n_heads: int
    tokens_per_step: int
    total_steps: int
    prefix_seq_len: int
    train_steps: tuple[int, ...]
    train_loss: np.ndarray


def _setup(cfg: Config, zoo: Zoo) -> _Setup:
    """The fixed evaluation windows (curve windows a subset of the claim windows), loss-vector pairs and prefix-matching probe."""
    name = cfg.presets[0]
    model, tok = load(zoo.checkpoints(name)[0][1])
    claim_text = eval_tokens(zoo, name, tok, max(cfg.claim_windows, cfg.eval_windows))
    stride = max(1, claim_text.shape[0] // cfg.eval_windows)
    text = claim_text[::stride][: cfg.eval_windows]
    pairs = sample_token_indices(text.shape[0], text.shape[1], cfg.seed, per_example=min(cfg.pairs_per_example, text.shape[1] - 1))
    data, n_ctx = token_data(zoo, name, tok), model.config.n_ctx
    allowed = probe_token_ids(data.train, model.config.d_vocab, data.bos_id)
    probe = prefixed_repeats(allowed, data.val, probe_seq_len(n_ctx, 4, cfg.prefix_seq_len), 4, cfg.probe_sequences, cfg.seed,
                             data.bos_id, n_ctx)
    late, early, band_note = icl_bands(text.shape[1])
    first, first_note = log_index_start(text.shape[1])
    return _Setup(
        claim_text=claim_text, stride=stride, text=text, pairs=pairs, targets=row_targets(probe, ("prefix_matching",)),
        probe_rule=probe_token_rule(len(allowed), model.config.d_vocab), late=late, early=early,
        band_note=band_note, slope_first=first, slope_note=first_note, n_boot=cfg.n_boot, seed=cfg.seed,
    )


def _run(cfg: Config, zoo: Zoo, name: str, setup: _Setup) -> _Run:
    """Every checkpoint of ``name`` on the curve windows and on the prefix-matching probe."""
    checkpoints = zoo.checkpoints(name)
    model0, _ = load(checkpoints[0][1])
    stream = ((step, load(path)[0]) for step, path in checkpoints)
    cm = checkpoint_metrics(stream, setup.text, pairs=setup.pairs, probes={"pm": setup.targets}, keep_window_loss=True)
    _, train_cfg = zoo.configs(name)
    train = [(m["step"], m["train_loss"]) for m in zoo.metrics(name) if m.get("kind") == "train"]
    return _Run(
        steps=list(cm.steps), per_position_loss=cm.per_position_loss.double().numpy(), loss_vectors=cm.loss_vectors.double().numpy(),
        icl_single=cm.icl.double().numpy(), icl_note=cm.indices.note, icl_windows=-window_icl(cm.window_loss.numpy(), setup.late, setup.early),
        pm_rows=cm.probe_rows["pm"]["prefix_matching"].numpy(), previous_token=cm.previous_token.numpy(),
        n_layers=model0.config.n_layers, n_heads=model0.config.n_heads, tokens_per_step=train_cfg.batch_size * model0.config.n_ctx,
        total_steps=train_cfg.steps, prefix_seq_len=setup.targets.probe.seq_len, train_steps=tuple(t[0] for t in train),
        train_loss=np.array([t[1] for t in train], dtype=float),
    )


def _intervals(run: _Run, steps: np.ndarray, n_boot: int, seed: int) -> dict:
    """Per-checkpoint 95% intervals of |ICL| (over windows) and of the best prefix-matching head (over probe sequences), and of their t50."""
    icl, icl_lo, icl_hi = unc.mean_interval(run.icl_windows, axis=1, n_boot=n_boot, seed=seed)
    heads = run.pm_rows[:, :, induction_layers(run.n_layers)].reshape(len(steps), run.pm_rows.shape[1], -1)
    pm_max, pm_lo, pm_hi = unc.max_interval(heads, unit_axis=1, over=(2,), n_boot=n_boot, seed=seed)
    icl_curves = unc.resampled_means(run.icl_windows, 1, n_boot, seed)  # [n_boot, checkpoint]
    pm_curves = unc.resampled_means(heads, 1, n_boot, seed).max(-1)
    return dict(icl_ci=np.stack([icl_lo, icl_hi], -1), pm_max=pm_max, pm_ci=np.stack([pm_lo, pm_hi], -1),
                icl_t50_ci=traj.rise_step_interval(steps, icl_curves), pm_t50_ci=traj.rise_step_interval(steps, pm_curves))


def _trajectory(cfg: Config, run: _Run, pca: np.ndarray, setup: _Setup, final_icl_claim: Estimate) -> ModelTrajectory:
    """A model's curves and their features: ICL and prefix-matching rises, the window, the loss bump, the PCA turn, the log-index slopes."""
    steps, ppl = np.array(run.steps), run.per_position_loss
    icl = band_icl(ppl, setup.late, setup.early)
    ci = _intervals(run, steps, cfg.n_boot, cfg.seed)
    start = max(1, int(0.05 * run.total_steps))
    pm_rise = traj.rise_steps(steps, ci["pm_max"])
    before = traj.index_before(steps, pm_rise.t10)
    window = traj.densest_window(steps, -icl, cfg.window_fraction * run.total_steps)
    pivot, bump = traj.pivot(pca, steps, start), traj.bump(steps, ppl.mean(-1), start)
    return ModelTrajectory(
        steps=tuple(int(s) for s in steps), tokens_per_step=run.tokens_per_step, total_steps=run.total_steps, n_layers=run.n_layers,
        n_heads=run.n_heads, prefix_seq_len=run.prefix_seq_len, icl=icl, icl_ci=ci["icl_ci"], icl_single=run.icl_single,
        loss=ppl.mean(-1), per_position_loss=ppl, prefix_matching=run.pm_rows.mean(1), previous_token=run.previous_token,
        pm_max=ci["pm_max"], pm_ci=ci["pm_ci"], pca=pca, train_steps=run.train_steps, train_loss=run.train_loss,
        icl_rise=Rise(**dataclasses.asdict(traj.rise_steps(steps, -icl))), pm_rise=Rise(**dataclasses.asdict(pm_rise)),
        icl_t50_ci=ci["icl_t50_ci"], pm_t50_ci=ci["pm_t50_ci"], window=(int(steps[window.start]), int(steps[window.end])),
        bump=Bump(**dataclasses.asdict(bump)), pivot_step=pivot.step, pivot_angle=pivot.angle, before_step=int(steps[before]),
        slope_before=float(ppl[before] @ log_index_weights(ppl.shape[1] + 1, setup.slope_first)),
        slope_after=float(ppl[-1] @ log_index_weights(ppl.shape[1] + 1, setup.slope_first)), final_icl_claim=final_icl_claim,
    )


class _ClaimWindows:
    """Per-window losses of chosen checkpoints on the claim windows, computed once per (model, step)."""

    def __init__(self, zoo: Zoo, setup: _Setup):
        self.zoo, self.setup, self.cache = zoo, setup, {}

    def loss(self, name: str, step: int) -> torch.Tensor:
        """``[claim window, pos - 1]`` losses of checkpoint ``step`` of ``name``."""
        if (name, step) not in self.cache:
            path = dict(self.zoo.checkpoints(name))[step]
            self.cache[(name, step)] = per_token_loss(load(path)[0], self.setup.claim_text, chunk=64)
        return self.cache[(name, step)]

    def icl(self, name: str, step: int) -> np.ndarray:
        """|ICL| of each claim window."""
        return -window_icl(self.loss(name, step).double().numpy(), self.setup.late, self.setup.early)

    def slope(self, name: str, step: int, first: int) -> np.ndarray:
        """Each claim window's slope of loss against ln(index) from index ``first`` to the end (nats per e-fold)."""
        loss = self.loss(name, step).double().numpy()
        return loss @ log_index_weights(loss.shape[1] + 1, first)


def _mean(values: np.ndarray, setup: _Setup) -> Estimate:
    """The mean of per-window ``values`` and its 95% bootstrap interval over windows."""
    return Estimate.of(unc.joint_interval(lambda v: v, values, n_boot=setup.n_boot, seed=setup.seed))


def _phase_window(cfg: Config, main: ModelTrajectory, claim: _ClaimWindows, name: str) -> PhaseWindow:
    """Claim 12 on the claim windows: |ICL| at the window's ends and at the end of training, the share formed in it, the change after it."""
    start, end, final = (claim.icl(name, s) for s in (*main.window, main.steps[-1]))
    kw = dict(n_boot=cfg.n_boot, seed=cfg.seed)
    return PhaseWindow(
        start_step=main.window[0], end_step=main.window[1], width=cfg.window_fraction,
        icl_start=_mean(start, claim.setup), icl_end=_mean(end, claim.setup), icl_final=_mean(final, claim.setup),
        formed=Estimate.of(unc.joint_interval(lambda a, b, f: (b - a) / f, start, end, final, **kw)),
        change_after=Estimate.of(unc.joint_interval(lambda b, f: np.abs(f - b) / f, end, final, **kw)),
    )


def _log_index(main: ModelTrajectory, claim: _ClaimWindows, name: str) -> LogIndex:
    """Claim 18 on the claim windows: the log-index slope before the prefix-matching rise and at the end, and over the last e-fold."""
    setup, n_pos = claim.setup, claim.setup.claim_text.shape[1]
    last_efold = max(setup.slope_first + 1, int(np.ceil((n_pos - 1) / np.e)))
    final = main.steps[-1]
    return LogIndex(
        first=setup.slope_first, first_note=setup.slope_note, last_efold=last_efold, before_step=main.before_step,
        slope_before=_mean(claim.slope(name, main.before_step, setup.slope_first), setup),
        slope_after=_mean(claim.slope(name, final, setup.slope_first), setup),
        slope_after_end=_mean(claim.slope(name, final, last_efold), setup),
    )


def _loss_gap(main: ModelTrajectory | None, control: ModelTrajectory | None) -> LossGap | None:
    """The control's loss minus the main model's, when both were evaluated at the same steps."""
    if main is None or control is None or main.steps != control.steps:
        return None
    gap = control.loss - main.loss
    return LossGap(gap=gap, fastest_step=traj.fastest_divergence(np.array(main.steps), gap))


def _ablation_study(cfg: Config, zoo: Zoo, main: ModelTrajectory, vectors: np.ndarray, claim: _ClaimWindows) -> AblationStudy:
    """ICL change and before-and-after dot product of a pattern-preserving zero ablation of each head of the final model."""
    setup, (step, path) = claim.setup, zoo.checkpoints(cfg.main)[-1]
    model, _ = load(path)
    induction_heads = pick_induction_heads(main.prefix_matching[-1], cfg.induction_threshold)
    prev_head = pick_previous_token_head(main.previous_token[-1], induction_heads)
    clean = claim.loss(cfg.main, step)
    clean_icl = window_icl(clean.double().numpy(), setup.late, setup.early)  # signed, per window
    rows, idx = setup.pairs[:, 0] * setup.stride, setup.pairs[:, 1] - 1  # the pairs' curve windows inside the claim windows
    steps = list(main.steps)
    v = traj.before_after_vector(vectors, steps.index(main.window[0]), steps.index(main.window[1]))
    groups = [([(l, h)], f"L{l}H{h}") for l in range(main.n_layers) for h in range(main.n_heads)]
    groups += [(induction_heads, "induction heads"), (induction_heads + [prev_head], "induction + previous-token heads")]
    deltas, dots = [], []
    for group, _ in groups:
        loss = per_token_loss(model, setup.claim_text, Ablation(group, pattern_preserving=True), chunk=64)
        deltas.append(window_icl(loss.double().numpy(), setup.late, setup.early) - clean_icl)
        dots.append(float(v @ (loss[rows, idx] - clean[rows, idx]).double().numpy()))
    cis = [unc.joint_interval(lambda d: d, d, n_boot=cfg.n_boot, seed=cfg.seed) for d in deltas]
    removed = unc.joint_interval(lambda d, c: d / -c, deltas[-2], clean_icl, n_boot=cfg.n_boot, seed=cfg.seed)
    return AblationStudy(
        labels=tuple(label for _, label in groups), icl_delta=np.array([i.value for i in cis]),
        icl_delta_ci=np.array([[i.lo, i.hi] for i in cis]), dot=np.array(dots), clean_icl=_mean(clean_icl, setup),
        removed=Estimate.of(removed), induction_heads=tuple(induction_heads), previous_token_head=prev_head, phase_steps=main.window,
        windows=int(setup.claim_text.shape[0]),
    )


@torch.no_grad()
def compute(cfg: Config, zoo: Zoo) -> Result:
    start_time = time.perf_counter()
    setup = _setup(cfg, zoo)
    claim = _ClaimWindows(zoo, setup)
    runs = {name: _run(cfg, zoo, name, setup) for name in cfg.presets}
    coords, explained = traj.joint_pca([run.loss_vectors for run in runs.values()])
    models = {
        name: _trajectory(cfg, run, pca, setup, _mean(claim.icl(name, run.steps[-1]), setup))
        for (name, run), pca in zip(runs.items(), coords)
    }
    main = models.get(cfg.main)
    ablation = None
    if cfg.ablate and main is not None:
        ablation = _ablation_study(cfg, zoo, main, runs[cfg.main].loss_vectors, claim)
    return Result(
        presets=tuple(cfg.presets), main=cfg.main, control=cfg.control, corpus_control=cfg.corpus_control, smeared_1l=cfg.smeared_1l,
        smeared_2l=cfg.smeared_2l, induction_threshold=cfg.induction_threshold, eval_windows=int(setup.text.shape[0]),
        claim_windows=int(setup.claim_text.shape[0]), probe_sequences=cfg.probe_sequences, quick=bool(zoo.quick),
        data_note=training_data_note(zoo, cfg.main), data_labels={n: zoo.data_label(n) for n in cfg.presets},
        probe_rule=setup.probe_rule, probe_layout=setup.targets.probe.describe(), n_pos=int(setup.text.shape[1]),
        late=tuple(setup.late), early=tuple(setup.early), icl_note=list(runs.values())[-1].icl_note, band_note=setup.band_note,
        pca_explained=explained, models=models, phase=_phase_window(cfg, main, claim, cfg.main) if main else None,
        log_index=_log_index(main, claim, cfg.main) if main else None,
        loss_gap=_loss_gap(main, models.get(cfg.control)), ablation=ablation, seconds=time.perf_counter() - start_time,
        **(_text_loss(zoo, cfg.main, main, claim) if main else {}),
    )


def _text_loss(zoo: Zoo, name: str, main: ModelTrajectory, claim: _ClaimWindows) -> dict:
    """The main model's per-token loss on the first claim window at the phase-change window's start and end and at the last checkpoint."""
    steps = (*main.window, main.steps[-1])
    tok = load(zoo.checkpoints(name)[-1][1])[1]
    return dict(text_tokens=tuple(tok.str_tokens(claim.setup.claim_text[0])), text_steps=steps,
                text_loss=np.stack([claim.loss(name, s)[0].double().numpy() for s in steps]))
