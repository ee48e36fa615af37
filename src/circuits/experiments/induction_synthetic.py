"""Induction heads at toy scale: the phase change and the smeared-key control on repeated spans.

The corpus presets form an induction head in a few minutes of training (see the README,
"Presets"), on text where many other things also help. This section asks the In-context Learning
paper's questions where nothing but induction helps and the answer fits in half a minute: on windows of random tokens in which the window's first ``L`` tokens are copied
to a later offset (``L`` and the offset drawn per window, :func:`circuits.training.data.sample_windows` with
``repeat_fraction=1``), so that only matching content, never a fixed look-back distance, predicts
the copy. Four attention-only models are trained on the same batches: one and two layers, each
with and without smeared keys. Every ``eval_every`` steps we measure the last layer's best
induction score and the loss on ``BOS + R + R``; on the final two-layer model we ablate the
previous-token head. The data is synthetic, not the corpus: the section says so and its claims
are about the mechanism, not about natural text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from circuits.experiments import base
from circuits.experiments.base import Claim, Figure
from circuits.experiments.plots import line_panels
from circuits.experiments.util import fmt
from circuits.training.zoo import Zoo

NAME = "induction_synthetic"
TITLE = "Induction heads at toy scale: the phase change and the smeared-key control"
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
    seq_len: int = 12  #: length of R in the BOS + R + R evaluation
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
    induction: np.ndarray  #: the last layer's best induction score
    loss_first: np.ndarray  #: loss on the first copy of R (unpredictable)
    loss_second: np.ndarray  #: loss on the second copy of R
    train_loss: np.ndarray  #: mean training loss since the previous evaluation


@dataclass(frozen=True, kw_only=True)
class PreviousTokenAblation(base.Result):
    """The final two-layer model's induction head with each layer-0 head ablated."""

    prev_head: str  #: the layer-0 previous-token head, "L0H{h}"
    prev_score: float  #: its previous-token score
    ind_head: str  #: the layer-1 induction head, "L1H{h}"
    ind_score: float  #: its induction score
    ablated: float  #: its induction score with the previous-token head ablated
    other_ablations_min: float | None  #: the lowest with another layer-0 head ablated (None: no other head)


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


# ---- compute -----------------------------------------------------------------------------------
def _eval_kwargs(cfg: Config) -> dict:
    """The BOS + R + R evaluation every score of this section uses."""
    return dict(seq_len=cfg.seq_len, n_repeats=2, batch=cfg.n_eval, seed=cfg.seed + 2)


def _train(cfg: Config, n_layers: int, smear: bool, stream: np.ndarray) -> tuple[object, Curve]:
    import torch

    import circuits
    from circuits.training.data import sample_windows

    model_cfg = circuits.TransformerConfig(
        n_layers=n_layers, d_model=cfg.d_model, n_heads=cfg.n_heads, d_vocab=cfg.d_vocab, n_ctx=cfg.n_ctx, smear_key=smear,
        attn_only=True, normalization="none", use_bias=False, positional="shortformer", seed=cfg.seed,
    )
    model = circuits.Transformer(model_cfg)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    eval_kwargs = _eval_kwargs(cfg)
    curve: dict[str, list] = {"step": [], "induction": [], "loss_first": [], "loss_second": [], "train_loss": []}
    recent: list[float] = []
    for step in range(1, cfg.steps + 1):
        model.train()
        tokens = sample_windows(stream, cfg.n_ctx, cfg.batch_size, torch.Generator().manual_seed(cfg.seed * 100_003 + step), 0, repeat_fraction=1.0)
        loss = model(tokens, return_type="loss")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        recent.append(float(loss.detach()))
        if step % cfg.eval_every == 0 or step == cfg.steps:
            model.eval()
            ind = circuits.induction_scores(model, **eval_kwargs)  # [layer, head]
            rep = circuits.repeated_tokens_loss(model, **eval_kwargs).per_repeat
            curve["step"].append(step)
            curve["induction"].append(float(ind[-1].max()))
            curve["loss_first"].append(float(rep[0]))
            curve["loss_second"].append(float(rep[1]))
            curve["train_loss"].append(float(np.mean(recent)))
            recent = []
    steps = tuple(curve.pop("step"))
    return model.eval(), Curve(step=steps, **{k: np.array(v, dtype=float) for k, v in curve.items()})


def ablate_previous_token_head(cfg: Config, model) -> PreviousTokenAblation:
    """Ablate each layer-0 head of a two-layer model and read the top layer-1 induction head's score."""
    import circuits

    eval_kwargs = _eval_kwargs(cfg)
    prev = circuits.previous_token_scores(model, circuits.random_tokens(cfg.d_vocab, 2 * cfg.seq_len, batch=cfg.n_eval, seed=cfg.seed + 1))
    ind = circuits.induction_scores(model, **eval_kwargs)
    prev_head, ind_head = int(prev[0].argmax()), int(ind[1].argmax())

    def ablated(head: int) -> float:
        hooks = circuits.Ablation([(0, head)]).for_model(model)
        return float(circuits.induction_scores(model, **eval_kwargs, hooks_for_batch=hooks)[1, ind_head])

    others = [ablated(h) for h in range(cfg.n_heads) if h != prev_head]
    return PreviousTokenAblation(
        prev_head=f"L0H{prev_head}", prev_score=float(prev[0, prev_head]), ind_head=f"L1H{ind_head}", ind_score=float(ind[1, ind_head]),
        ablated=ablated(prev_head), other_ablations_min=min(others) if others else None,
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
        seq_len=cfg.seq_len, n_eval=cfg.n_eval,
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


def previous_token_ablation_holds(ind_score: float, ablated: float, other_ablations_min: float | None, threshold: float) -> bool:
    """Claim 22: an induction head exists, ablating the previous-token head halves its score at least, and no other
    layer-0 head does (``other_ablations_min`` None: there is no other head)."""
    others_matter_little = other_ablations_min is None or other_ablations_min > 0.5 * ind_score
    return bool(ind_score > threshold and ablated < 0.5 * ind_score and others_matter_little)


# ---- figures, claims, text ---------------------------------------------------------------------
def _onsets(result: Result) -> dict[str, int | None]:
    return {label: onset(c.step, c.induction, result.threshold) for label, c in result.curves.items()}


def _when(step: int | None) -> str:
    return f"step {step}" if step is not None else "never"


def figures(result: Result) -> list[Figure]:
    labels = [label for label, _, _ in MODELS]
    c, onsets = result.curves, _onsets(result)
    panels = {
        title: {label: (c[label].step, getattr(c[label], key)) for label in labels}
        for title, key in (("last layer's best induction score", "induction"), ("loss on the second copy of R", "loss_second"),
                           ("training loss", "train_loss"))
    }
    fig = line_panels(panels, title="Four models on the same repeated-span batches", x_title="training step",
                      reference={"last layer's best induction score": {"threshold": result.threshold}})
    caption = ("Induction score: mean attention from the second copy of R to the token after the earlier copy. First step above "
               f"{result.threshold}: " + ", ".join(f"{label} {_when(onsets[label])}" for label in labels) + ". Final scores: "
               + ", ".join(f"{label} {fmt(c[label].induction[-1])}" for label in labels) + ".")
    return [Figure(key="induction_synthetic_curves", title="When induction heads form", caption=caption, fig=fig)]


def _one_layer_claim(result: Result) -> Claim:
    one, one_s = result.curves["1L"], result.curves["1L smeared"]
    final, final_s = float(one.induction[-1]), float(one_s.induction[-1])
    return Claim(
        key="synthetic_smeared_one_layer",
        statement="A one-layer attention-only model cannot form an induction head; with smeared keys one layer can (toy data).",
        source=SOURCE, paper_value="1L: no induction; 1L smeared: induction heads and the phase change",
        measured=(f"final induction 1L {fmt(final)} vs 1L smeared {fmt(final_s)}; second-copy loss "
                  f"{fmt(one.loss_second[-1])} vs {fmt(one_s.loss_second[-1])} (first copy {fmt(one.loss_first[-1])})"),
        holds=smear_lets_one_layer_induct(final, final_s, result.threshold),
    )


def _earlier_claim(result: Result) -> Claim:
    onsets = _onsets(result)
    plain, smeared = onsets["2L"], onsets["2L smeared"]
    return Claim(
        key="synthetic_smeared_earlier", statement="Smeared keys bring the two-layer model's induction phase change earlier (toy data).",
        source=SOURCE, paper_value="2L smeared forms induction heads earlier than 2L",
        measured=(f"first step above {result.threshold}: 2L smeared {_when(smeared)}, 2L {_when(plain)}"
                  + (" (a model never crossed it: untested)" if None in (plain, smeared) else "")),
        holds=smear_forms_earlier(plain, smeared),
    )


def _ablation_claim(result: Result) -> Claim:
    a = result.ablation
    return Claim(
        key="synthetic_previous_token_ablation",
        statement="In the two-layer model, ablating the layer-0 previous-token head removes the induction head's score (K-composition); other layer-0 heads barely matter (toy data).",
        source="Framework paper, two-layer section; ARENA 1.2", paper_value="0.68 -> about 0 for the previous-token head",
        measured=(f"{a.ind_head} {fmt(a.ind_score)} -> {fmt(a.ablated)} with {a.prev_head} (previous-token score {fmt(a.prev_score)}) "
                  f"ablated; lowest with another layer-0 head ablated {fmt(a.other_ablations_min)}"),
        holds=previous_token_ablation_holds(a.ind_score, a.ablated, a.other_ablations_min, result.threshold),
    )


def claims(result: Result) -> list[Claim]:
    return [_one_layer_claim(result), _earlier_claim(result), _ablation_claim(result)]


def intro(result: Result) -> str:
    return (f"Synthetic data, not the corpus: windows of {result.n_ctx} random tokens (vocabulary {result.d_vocab}) whose first L tokens are "
            "copied to a later offset, L and the offset drawn per window, so only content matching predicts the copy. "
            f"Four attention-only models (d_model {result.d_model}, {result.n_heads} heads, shortformer positions, no normalization) train on "
            f"the same {result.steps} batches of {result.batch_size} windows. Here the papers' mechanism is the only thing worth learning, so it "
            "can be watched in isolation in half a minute; the corpus models above learn it next to everything else natural text offers.")


def notes(result: Result) -> list[str]:
    return [f"Induction scores on BOS + R + R with |R| = {result.seq_len}, {result.n_eval} sequences; the loss of a uniform guess is "
            f"ln {result.d_vocab - 1} = {fmt(float(np.log(result.d_vocab - 1)))} nats."]
