"""Induction heads at toy scale: the phase change and the smeared-key control on repeated spans.

The corpus presets form an induction head in a few minutes of training (see the README,
"Presets"), on text where many other things also help. This section asks the In-context Learning
paper's questions where nothing but induction helps and the answer fits in half a minute: on
windows of random tokens whose first ``L`` tokens are copied to a later offset (span length and
copy offset drawn per window: :func:`circuits.training.data.copy_spans_from_start` through
``sample_windows(..., repeat_fraction=1)``), so that only matching content, never a fixed look-back
distance, predicts the copy. This is the section's stated layout: the copy's source starts right
after BOS, like the classic probe's first repeat. With sources at random offsets
(:func:`~circuits.training.data.copy_spans`, the corpus presets' augmentation) the plain two-layer
model formed no previous-token head and no induction head within 3000 steps on random tokens
(induction 0.11-0.13, previous-token 0.06), so the source's fixed start is what lets the circuit
form quickly here; the verdicts still read the natural-prefix probe. Four attention-only models are trained on the same batches: one and two layers, each
with and without smeared keys. Every ``eval_every`` steps we measure the last layer's best
induction score and the loss on repeated random tokens in two layouts (:mod:`circuits.analysis.probes`):
``BOS + P + R + R`` with ``P`` tokens of held-out synthetic text before the repeats (drawn per
sequence; the verdicts' probe: a head that only matches against the window start fails it) and
the classic ``BOS + R + R``; on the final two-layer model we ablate the previous-token head. The
data is synthetic, not the corpus: the section says so and its claims are about the mechanism,
not about natural text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from circuits.analysis.probes import RepeatProbe, bos_repeats, near_zero_threshold, prefixed_repeats, probe_scores
from circuits.experiments import base
from circuits.experiments.base import Claim, Figure
from circuits.experiments.plots import line_panels
from circuits.experiments.two_layer_claims import OTHERS_KEEP, ablation_holds
from circuits.experiments.util import fmt
from circuits.training.zoo import Zoo

NAME = "induction_synthetic"
TITLE = "Induction heads at toy scale: the phase change and the smeared-key control"
COMPUTE_S = 40  #: about the seconds compute takes on one core in the full report (2026-12-01); orders the report's work only
SEEDED = True  #: claims tested on several seeds (circuits report --seeds; see circuits.experiments.base)
MODELS = (("1L", 1, False), ("1L smeared", 1, True), ("2L", 2, False), ("2L smeared", 2, True))
SOURCE = "In-context Learning paper, Argument 2"


@dataclass(frozen=True, kw_only=True)
class Config:
    """Settings (defaults: the full report; about 40 s on 2 CPU cores)."""

    steps: int = 1000  #: training steps of each model
    eval_every: int = 50  #: steps between evaluations
    batch_size: int = 64  #: windows per step
    d_vocab: int = 64  #: random tokens 1..d_vocab-1 (0 is BOS)
    n_ctx: int = 32
    d_model: int = 64
    n_heads: int = 4
    lr: float = 3e-3
    seq_len: int = 12  #: length of R in the repeated-token evaluations (both layouts)
    n_eval: int = 16  #: evaluation sequences
    threshold: float = 0.3  #: induction score that counts as "formed"
    seed: int = 0

    @classmethod
    def quick(cls) -> "Config":
        return cls(steps=60, eval_every=20, batch_size=16)


@dataclass(frozen=True, kw_only=True)
class Curve(base.Result):
    """One model's training curve, one entry per evaluation."""

    step: tuple[int, ...]
    induction: np.ndarray  #: the last layer's best induction score, BOS + P + R + R
    loss_first: np.ndarray  #: loss on the first copy of R (unpredictable), BOS + P + R + R
    loss_second: np.ndarray  #: loss on the second copy of R, BOS + P + R + R
    train_loss: np.ndarray  #: mean training loss since the previous evaluation
    induction_bos: np.ndarray  #: the same three on BOS + R + R
    loss_first_bos: np.ndarray
    loss_second_bos: np.ndarray


@dataclass(frozen=True, kw_only=True)
class PreviousTokenAblation(base.Result):
    """The final two-layer model's induction head with each layer-0 head ablated."""

    prev_head: str  #: the layer-0 previous-token head, "L0H{h}"
    prev_score: float  #: its previous-token score
    ind_head: str  #: the layer-1 induction head, "L1H{h}"
    ind_score: float  #: its induction score (BOS + P + R + R)
    ablated: float  #: its induction score with the previous-token head ablated
    other_ablations_min: float | None  #: the lowest with another layer-0 head ablated (None: no other head)
    near_zero: float  #: induction score of a uniformly attending head on the same probe ("about 0")
    ind_score_bos: float  #: the same on BOS + R + R
    ablated_bos: float
    near_zero_bos: float


@dataclass(frozen=True, kw_only=True)
class Result(base.Result):
    curves: dict[str, Curve]  #: by model label (MODELS)
    ablation: PreviousTokenAblation
    threshold: float
    steps: int
    batch_size: int
    d_vocab: int
    n_ctx: int
    d_model: int
    n_heads: int
    seq_len: int
    n_eval: int
    layout: str  #: the natural-prefix probe, in words


# ---- compute -----------------------------------------------------------------------------------
def probes(cfg: Config) -> dict[str, RepeatProbe]:
    """The two probes every score of this section uses: ``"prefix"`` (BOS + P + R + R, ``P`` tokens of held-out synthetic text)
    and ``"bos"`` (BOS + R + R). ``R`` is uniform over every non-BOS token: in this uniform data every token is frequent."""
    allowed = np.arange(1, cfg.d_vocab)
    text = np.random.default_rng(cfg.seed + 3).integers(1, cfg.d_vocab, 10_000)  # held out: not the training stream
    return {"prefix": prefixed_repeats(allowed, text, cfg.seq_len, 2, cfg.n_eval, cfg.seed + 2, 0, cfg.n_ctx, text_name="held-out synthetic tokens"),
            "bos": bos_repeats(allowed, cfg.seq_len, 2, cfg.n_eval, cfg.seed + 2, 0)}


def _train(cfg: Config, n_layers: int, smear: bool, stream: np.ndarray) -> tuple[object, Curve]:
    import torch

    import circuits
    from circuits.training.data import copy_spans_from_start, sample_windows

    model_cfg = circuits.TransformerConfig(
        n_layers=n_layers, d_model=cfg.d_model, n_heads=cfg.n_heads, d_vocab=cfg.d_vocab, n_ctx=cfg.n_ctx, smear_key=smear,
        attn_only=True, normalization="none", use_bias=False, positional="shortformer", seed=cfg.seed,
    )
    model = circuits.Transformer(model_cfg)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    evals = probes(cfg)
    curve: dict[str, list] = {"step": [], "train_loss": [], **{k + s: [] for k in ("induction", "loss_first", "loss_second") for s in ("", "_bos")}}
    recent: list[float] = []
    for step in range(1, cfg.steps + 1):
        model.train()
        tokens = sample_windows(stream, cfg.n_ctx, cfg.batch_size, torch.Generator().manual_seed(cfg.seed * 100_003 + step), 0, repeat_fraction=1.0,
                                spans=copy_spans_from_start)
        loss = model(tokens, return_type="loss")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        recent.append(float(loss.detach()))
        if step % cfg.eval_every == 0 or step == cfg.steps:
            model.eval()
            for suffix, probe in (("", evals["prefix"]), ("_bos", evals["bos"])):
                scores = probe_scores(model, probe)
                curve["induction" + suffix].append(float(scores.induction[-1].max()))
                curve["loss_first" + suffix].append(float(scores.loss_per_repeat[0]))
                curve["loss_second" + suffix].append(float(scores.loss_per_repeat[1]))
            curve["step"].append(step)
            curve["train_loss"].append(float(np.mean(recent)))
            recent = []
    steps = tuple(curve.pop("step"))
    return model.eval(), Curve(step=steps, **{k: np.array(v, dtype=float) for k, v in curve.items()})


def ablate_previous_token_head(cfg: Config, model) -> PreviousTokenAblation:
    """Ablate each layer-0 head of a two-layer model and read the top layer-1 induction head's score, on both probes."""
    import circuits

    evals = probes(cfg)
    prev = circuits.previous_token_scores(model, circuits.random_tokens(cfg.d_vocab, 2 * cfg.seq_len, batch=cfg.n_eval, seed=cfg.seed + 1))
    prev_head, ind_head = int(prev[0].argmax()), int(probe_scores(model, evals["prefix"]).induction[1].argmax())

    def score(probe: RepeatProbe, head: int | None) -> float:
        hooks = circuits.Ablation([(0, head)]).for_model(model) if head is not None else None
        return float(probe_scores(model, probe, hooks_for_batch=hooks).induction[1, ind_head])

    others = [score(evals["prefix"], h) for h in range(cfg.n_heads) if h != prev_head]
    return PreviousTokenAblation(
        prev_head=f"L0H{prev_head}", prev_score=float(prev[0, prev_head]), ind_head=f"L1H{ind_head}", ind_score=score(evals["prefix"], None),
        ablated=score(evals["prefix"], prev_head), other_ablations_min=min(others) if others else None,
        near_zero=near_zero_threshold(evals["prefix"]), ind_score_bos=score(evals["bos"], None), ablated_bos=score(evals["bos"], prev_head),
        near_zero_bos=near_zero_threshold(evals["bos"]),
    )


def compute(cfg: Config, zoo: Zoo | None = None) -> Result:
    stream = np.random.default_rng(cfg.seed).integers(1, cfg.d_vocab, 200_000)
    curves, final_two = {}, None
    for label, n_layers, smear in MODELS:
        model, curves[label] = _train(cfg, n_layers, smear, stream)
        if label == "2L":
            final_two = model
    return Result(
        curves=curves, ablation=ablate_previous_token_head(cfg, final_two), threshold=cfg.threshold, steps=cfg.steps,
        batch_size=cfg.batch_size, d_vocab=cfg.d_vocab, n_ctx=cfg.n_ctx, d_model=cfg.d_model, n_heads=cfg.n_heads,
        seq_len=cfg.seq_len, n_eval=cfg.n_eval, layout=probes(cfg)["prefix"].describe(),
    )


# ---- verdicts ----------------------------------------------------------------------------------
def onset(steps: Sequence[int], induction: Sequence[float] | np.ndarray, threshold: float) -> int | None:
    """The first evaluated step whose induction score exceeds ``threshold`` (None: never)."""
    return next((int(step) for step, score in zip(steps, induction) if score > threshold), None)


def smear_lets_one_layer_induct(final_one: float, final_one_smeared: float, threshold: float) -> bool:
    """Claim 20: the plain one-layer model ends below ``threshold``, the smeared one at or above it."""
    return bool(final_one < threshold <= final_one_smeared)


def smear_forms_earlier(onset_plain: int | None, onset_smeared: int | None) -> bool | None:
    """Claim 21: the smeared two-layer model crosses the threshold first (None: one never crossed it, untested)."""
    if onset_plain is None or onset_smeared is None:
        return None
    return bool(onset_smeared < onset_plain)


def previous_token_ablation_holds(
    ind_score: float, ablated: float, other_ablations_min: float | None, threshold: float, near_zero: float
) -> bool:
    """Claim 22: an induction head exists (score above ``threshold``), ablating the previous-token head leaves at most ``near_zero``
    (the score of a uniformly attending head, the rule of claim 9), and every other layer-0 head's ablation keeps more than
    half of its score (``other_ablations_min`` None: there is no other head)."""
    others = [] if other_ablations_min is None else [other_ablations_min]
    return bool(ind_score > threshold and ablation_holds(ind_score, ablated, others, near_zero))


# ---- figures, claims, text ---------------------------------------------------------------------
def _onsets(result: Result, bos: bool = False) -> dict[str, int | None]:
    return {label: onset(c.step, c.induction_bos if bos else c.induction, result.threshold) for label, c in result.curves.items()}


def _when(step: int | None) -> str:
    return f"step {step}" if step is not None else "never"


def figures(result: Result) -> list[Figure]:
    labels = [label for label, _, _ in MODELS]
    c, onsets, onsets_bos = result.curves, _onsets(result), _onsets(result, bos=True)
    panels = {
        title: {label: (c[label].step, getattr(c[label], key)) for label in labels}
        for title, key in (("best induction score, BOS + P + R + R", "induction"), ("best induction score, BOS + R + R", "induction_bos"),
                           ("loss on the second copy of R, BOS + P + R + R", "loss_second"), ("training loss", "train_loss"))
    }
    reference = {"threshold": result.threshold}
    fig = line_panels(panels, title="Four models on the same repeated-span batches", x_title="training step",
                      reference={"best induction score, BOS + P + R + R": reference, "best induction score, BOS + R + R": reference})
    caption = (f"Induction score: the last layer's best mean attention from the second copy of R to the token after the earlier copy, "
               f"on {result.layout} and on BOS + R + R. First step above {result.threshold} (natural prefix / right after BOS): "
               + ", ".join(f"{label} {_when(onsets[label])} / {_when(onsets_bos[label])}" for label in labels) + ". Final scores: "
               + ", ".join(f"{label} {fmt(c[label].induction[-1])} / {fmt(c[label].induction_bos[-1])}" for label in labels) + ".")
    return [Figure(key="induction_synthetic_curves", title="When induction heads form", caption=caption, fig=fig)]


def _claim(result: Result, labels: Sequence[str], source: str = SOURCE, **fields) -> Claim:
    """A claim of this section: it read the synthetic models ``labels`` (of :data:`MODELS`), trained on synthetic data."""
    data = (f"synthetic: windows of {result.n_ctx} uniform random tokens (vocabulary {result.d_vocab}), every window with a copied "
            f"span ({result.steps} steps of {result.batch_size})")
    rule = f" (R uniform over the {result.d_vocab - 1} non-BOS tokens, all equally frequent in this training data)"
    return Claim(models=tuple(f"synthetic {label}" for label in labels), data=data, source=source,
                 **{**fields, "measured": fields["measured"] + rule})


def _one_layer_claim(result: Result) -> Claim:
    one, one_s = result.curves["1L"], result.curves["1L smeared"]
    final, final_s = float(one.induction[-1]), float(one_s.induction[-1])
    return _claim(
        result, ("1L", "1L smeared"), key="synthetic_smeared_one_layer",
        statement=(f"A one-layer attention-only model cannot form an induction head; with smeared keys one layer can (toy data; "
                   f"formed = last-layer induction score >= {result.threshold})."),
        paper_value="1L: no induction; 1L smeared: induction heads and the phase change",
        measured=(f"{result.layout}: final induction 1L {fmt(final)} vs 1L smeared {fmt(final_s)}; second-copy loss "
                  f"{fmt(one.loss_second[-1])} vs {fmt(one_s.loss_second[-1])} (first copy {fmt(one.loss_first[-1])}). BOS + R + R: "
                  f"{fmt(one.induction_bos[-1])} vs {fmt(one_s.induction_bos[-1])}"),
        holds=smear_lets_one_layer_induct(final, final_s, result.threshold), value=final_s,
    )


def _earlier_claim(result: Result) -> Claim:
    onsets, onsets_bos = _onsets(result), _onsets(result, bos=True)
    plain, smeared = onsets["2L"], onsets["2L smeared"]
    return _claim(
        result, ("2L", "2L smeared"), key="synthetic_smeared_earlier",
        statement="Smeared keys bring the two-layer model's induction phase change earlier (toy data).",
        paper_value="2L smeared forms induction heads earlier than 2L",
        measured=(f"first step above {result.threshold} on {result.layout}: 2L smeared {_when(smeared)}, 2L {_when(plain)}"
                  + (" (a model never crossed it: untested)" if None in (plain, smeared) else "")
                  + f"; on BOS + R + R: 2L smeared {_when(onsets_bos['2L smeared'])}, 2L {_when(onsets_bos['2L'])}"),
        holds=smear_forms_earlier(plain, smeared), value=None if None in (plain, smeared) else float(plain - smeared),
    )


def _ablation_claim(result: Result) -> Claim:
    a = result.ablation
    return _claim(
        result, ("2L",), key="synthetic_previous_token_ablation",
        statement=("In the two-layer model, ablating the layer-0 previous-token head removes the induction head's score (K-composition): "
                   "to about 0, at most the score of a uniformly attending head (the rule of claim 9); other layer-0 heads barely "
                   f"matter (each keeps > {OTHERS_KEEP:.0%}; toy data)."),
        source="Framework paper, two-layer section; ARENA 1.2", paper_value="0.68 -> about 0 for the previous-token head",
        measured=(f"{result.layout}: {a.ind_head} {fmt(a.ind_score)} -> {fmt(a.ablated)} with {a.prev_head} (previous-token score "
                  f"{fmt(a.prev_score)}) ablated, uniform attention {fmt(a.near_zero)}; lowest with another layer-0 head ablated "
                  f"{fmt(a.other_ablations_min)}. BOS + R + R: {fmt(a.ind_score_bos)} -> {fmt(a.ablated_bos)} (uniform {fmt(a.near_zero_bos)})"),
        holds=previous_token_ablation_holds(a.ind_score, a.ablated, a.other_ablations_min, result.threshold, a.near_zero), value=a.ablated,
    )


def claims(result: Result) -> list[Claim]:
    return [_one_layer_claim(result), _earlier_claim(result), _ablation_claim(result)]


def intro(result: Result) -> str:
    return (f"Synthetic data, not the corpus: windows of {result.n_ctx} random tokens (vocabulary {result.d_vocab}) in which a span of L "
            "tokens is copied to a later offset, span and offsets drawn per window, so only content matching predicts the copy. "
            f"Four attention-only models (d_model {result.d_model}, {result.n_heads} heads, shortformer positions, no normalization) train on "
            f"the same {result.steps} batches of {result.batch_size} windows. Here the papers' mechanism is the only thing worth learning, so it "
            "can be watched in isolation in half a minute; the corpus models above learn it next to everything else natural text offers.")


def notes(result: Result) -> list[str]:
    return [f"Induction scores on {result.layout} (the verdicts') and on BOS + R + R, {result.n_eval} sequences each; R is uniform over "
            f"every non-BOS token (each occurs about equally often in this synthetic data, so none is untrained); the loss of a uniform "
            f"guess is ln {result.d_vocab - 1} = {fmt(float(np.log(result.d_vocab - 1)))} nats."]
