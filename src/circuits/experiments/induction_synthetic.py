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

from dataclasses import dataclass

import numpy as np

from circuits.experiments.util import array, fmt, jsonable
from circuits.experiments.base import Claim, Figure, Section
from circuits.training.zoo import Zoo

NAME = "induction_synthetic"
TITLE = "Induction heads at toy scale: the phase change and the smeared-key control"
MODELS = (("1L", 1, False), ("1L smeared", 1, True), ("2L", 2, False), ("2L smeared", 2, True))


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


def _eval_kwargs(cfg: Config) -> dict:
    """The BOS + R + R evaluation every score of this section uses."""
    return dict(seq_len=cfg.seq_len, n_repeats=2, batch=cfg.n_eval, seed=cfg.seed + 2)


def _train(cfg: Config, n_layers: int, smear: bool, stream: np.ndarray) -> tuple[object, dict]:
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
    return model.eval(), curve


def compute(cfg: Config, zoo: Zoo | None = None) -> dict:
    import circuits

    stream = np.random.default_rng(cfg.seed).integers(1, cfg.d_vocab, 200_000)
    curves, final_two = {}, None
    for label, n_layers, smear in MODELS:
        model, curves[label] = _train(cfg, n_layers, smear, stream)
        if label == "2L":
            final_two = model
    eval_kwargs = _eval_kwargs(cfg)
    prev = circuits.previous_token_scores(final_two, circuits.random_tokens(cfg.d_vocab, 2 * cfg.seq_len, batch=cfg.n_eval, seed=cfg.seed + 1))
    ind = circuits.induction_scores(final_two, **eval_kwargs)
    prev_head, ind_head = int(prev[0].argmax()), int(ind[1].argmax())
    ablated = circuits.induction_scores(final_two, **eval_kwargs, hooks_for_batch=circuits.Ablation([(0, prev_head)]).for_model(final_two))
    others = [float(circuits.induction_scores(final_two, **eval_kwargs, hooks_for_batch=circuits.Ablation([(0, h)]).for_model(final_two))[1, ind_head])
              for h in range(cfg.n_heads) if h != prev_head]
    return jsonable({
        "curves": curves,
        "ablation": {"prev_head": f"L0H{prev_head}", "prev_score": float(prev[0, prev_head]), "ind_head": f"L1H{ind_head}",
                     "ind_score": float(ind[1, ind_head]), "ablated": float(ablated[1, ind_head]),
                     "other_ablations_min": min(others) if others else None},
    })


def onset(curve: dict, threshold: float) -> int | None:
    """The first evaluated step whose induction score exceeds ``threshold`` (None: never)."""
    return next((step for step, score in zip(curve["step"], curve["induction"]) if score > threshold), None)


def build(results: dict, cfg: Config, zoo: Zoo | None = None) -> Section:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    curves, abl = results["curves"], results["ablation"]
    onsets = {label: onset(curves[label], cfg.threshold) for label, _, _ in MODELS}
    final = {label: curves[label]["induction"][-1] for label, _, _ in MODELS}

    def when(label: str) -> str:
        return f"step {onsets[label]}" if onsets[label] is not None else "never"

    fig = make_subplots(rows=1, cols=3, subplot_titles=["last layer's best induction score", "loss on the second copy of R", "training loss"])
    for label, _, _ in MODELS:
        c = curves[label]
        for col, key in ((1, "induction"), (2, "loss_second"), (3, "train_loss")):
            fig.add_trace(go.Scatter(x=c["step"], y=c[key], mode="lines", name=label, legendgroup=label, showlegend=col == 1,
                                     hovertemplate=f"{label}<br>step %{{x}}<br>%{{y:.3f}}<extra></extra>"), row=1, col=col)
    for col in (1, 2, 3):
        fig.update_xaxes(title_text="training step", row=1, col=col)
    fig.add_hline(y=cfg.threshold, line_dash="dot", row=1, col=1)
    fig.update_layout(title="Four models on the same repeated-span batches", height=420)
    figures = [Figure(
        key="induction_synthetic_curves", title="When induction heads form",
        caption=("Induction score: mean attention from the second copy of R to the token after the earlier copy. First step above "
                 f"{cfg.threshold}: " + ", ".join(f"{label} {when(label)}" for label, _, _ in MODELS) + ". Final scores: "
                 + ", ".join(f"{label} {fmt(final[label])}" for label, _, _ in MODELS) + "."),
        fig=fig,
    )]
    one, one_s = curves["1L"], curves["1L smeared"]
    claims = [
        Claim(key="synthetic_smeared_one_layer",
              statement="A one-layer attention-only model cannot form an induction head; with smeared keys one layer can (toy data).",
              source="In-context Learning paper, Argument 2",
              paper_value="1L: no induction; 1L smeared: induction heads and the phase change",
              measured=(f"final induction 1L {fmt(final['1L'])} vs 1L smeared {fmt(final['1L smeared'])}; second-copy loss "
                        f"{fmt(one['loss_second'][-1])} vs {fmt(one_s['loss_second'][-1])} (first copy {fmt(one['loss_first'][-1])})"),
              holds=bool(final["1L"] < cfg.threshold <= final["1L smeared"])),
        Claim(key="synthetic_smeared_earlier",
              statement="Smeared keys bring the two-layer model's induction phase change earlier (toy data).",
              source="In-context Learning paper, Argument 2",
              paper_value="2L smeared forms induction heads earlier than 2L",
              measured=(f"first step above {cfg.threshold}: 2L smeared {when('2L smeared')}, 2L {when('2L')}"
                        + (" (a model never crossed it: untested)" if None in (onsets["2L"], onsets["2L smeared"]) else "")),
              holds=(None if onsets["2L"] is None or onsets["2L smeared"] is None else bool(onsets["2L smeared"] < onsets["2L"]))),
        Claim(key="synthetic_previous_token_ablation",
              statement="In the two-layer model, ablating the layer-0 previous-token head removes the induction head's score (K-composition); other layer-0 heads barely matter (toy data).",
              source="Framework paper, two-layer section; ARENA 1.2",
              paper_value="0.68 -> about 0 for the previous-token head",
              measured=(f"{abl['ind_head']} {fmt(abl['ind_score'])} -> {fmt(abl['ablated'])} with {abl['prev_head']} "
                        f"(previous-token score {fmt(abl['prev_score'])}) ablated; lowest with another layer-0 head ablated "
                        f"{fmt(abl['other_ablations_min'])}"),
              holds=bool(abl["ind_score"] > cfg.threshold and abl["ablated"] < 0.5 * abl["ind_score"]
                         and (abl["other_ablations_min"] is None or abl["other_ablations_min"] > 0.5 * abl["ind_score"]))),
    ]
    intro = (f"Synthetic data, not the corpus: windows of {cfg.n_ctx} random tokens (vocabulary {cfg.d_vocab}) whose first L tokens are "
             "copied to a later offset, L and the offset drawn per window, so only content matching predicts the copy. "
             f"Four attention-only models (d_model {cfg.d_model}, {cfg.n_heads} heads, shortformer positions, no normalization) train on "
             f"the same {cfg.steps} batches of {cfg.batch_size} windows. Here the papers' mechanism is the only thing worth learning, so it "
             "can be watched in isolation in half a minute; the corpus models above learn it next to everything else natural text offers.")
    notes = [f"Induction scores on BOS + R + R with |R| = {cfg.seq_len}, {cfg.n_eval} sequences; the loss of a uniform guess is "
             f"ln {cfg.d_vocab - 1} = {fmt(float(np.log(cfg.d_vocab - 1)))} nats."]
    return Section(key=NAME, title=TITLE, intro=intro, figures=figures, claims=claims, notes=notes)
