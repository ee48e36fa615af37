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

from dataclasses import dataclass

import numpy as np
import torch

from circuits.experiments.util import array, band_icl, eval_tokens, fmt, icl_bands, jsonable
from circuits.experiments.base import Claim, Figure, Section, Table
from circuits.training.zoo import Zoo
from circuits.experiments.two_layer import mechanism

NAME = "variants"
TITLE = "Induction heads under positional variants"


@dataclass(frozen=True, kw_only=True)
class Config:
    """Settings of the variants comparison (defaults: the full report)."""

    presets: tuple[str, ...] = (
        "attn-only-2l-learned", "attn-only-2l", "attn-only-2l-rotary", "attn-only-2l-alibi", "attn-only-2l-nopos",
        "attn-only-2l-gqa", "attn-only-3l",
    )  #: models compared (shortformer is attn-only-2l)
    deep: str = "attn-only-3l"  #: the deeper model for "where heads form" (claim 19)
    eval_windows: int = 256  #: validation windows for previous-token and ICL scores (16 left the ICL score noisy)
    seq_len: int = 50  #: T of [BOS] + R + R for final induction scores (capped to fit n_ctx)
    n_sequences: int = 10  #: random sequences for final scores
    curve_seq_len: int = 25  #: T for the per-checkpoint induction score
    curve_batch: int = 4  #: sequences per checkpoint
    max_checkpoints: int = 16  #: checkpoints evaluated per model for the formation curve (evenly subsampled)
    induction_threshold: float = 0.3  #: "an induction head has formed": max induction score (layers >= 1) above this
    previous_token_threshold: float = 0.4
    baseline_samples: int = 500
    seed: int = 0

    @classmethod
    def quick(cls) -> "Config":
        return cls(eval_windows=4, seq_len=20, n_sequences=4, curve_seq_len=8, curve_batch=2, max_checkpoints=4, baseline_samples=64)


def _subsample(checkpoints: list, n: int) -> list:
    if len(checkpoints) <= n:
        return checkpoints
    picks = sorted({round(i * (len(checkpoints) - 1) / (n - 1)) for i in range(n)})
    return [checkpoints[i] for i in picks]


@torch.no_grad()
def compute(cfg: Config, zoo: Zoo) -> dict:
    from circuits import induction_scores, load, per_position_loss, prefix_matching_scores, previous_token_scores

    out: dict = {"presets": list(cfg.presets), "models": {}}
    for name in cfg.presets:
        model, tok = zoo.model(name)
        mc = model.config
        bos = tok.bos_id
        text = eval_tokens(zoo, name, tok, cfg.eval_windows)
        late, early, note = icl_bands(text.shape[1])
        out["icl_note"] = note
        previous = previous_token_scores(model, text).numpy()
        rep = dict(seq_len=min(cfg.seq_len, (mc.n_ctx - 1) // 2), batch=cfg.n_sequences, seed=cfg.seed, bos=bos)
        induction = induction_scores(model, **rep).numpy()
        prefix = prefix_matching_scores(model, seq_len=min(25, (mc.n_ctx - 1) // 4), batch=cfg.n_sequences, seed=cfg.seed, bos=bos).numpy()
        icl = float(band_icl(per_position_loss(model, text).double().numpy(), late, early))
        mech = mechanism(model, previous, induction, threshold=cfg.induction_threshold, baseline_samples=cfg.baseline_samples, seed=cfg.seed)
        il, ih = mech["induction_head"]
        prev_exists = bool(previous[:il].max() > cfg.previous_token_threshold)
        # the best writer -> induction head pair by K and by Q, each as a z-score against its baseline
        kz = (mech["max_K_into_induction"] - mech["baseline"]["K"][0]) / mech["baseline"]["K"][1]
        qz = (mech["max_Q_into_induction"] - mech["baseline"]["Q"][0]) / mech["baseline"]["Q"][1]
        curve_steps, curve = [], []
        c_rep = dict(seq_len=min(cfg.curve_seq_len, (mc.n_ctx - 1) // 2), batch=cfg.curve_batch, seed=cfg.seed, bos=bos)
        for step, path in _subsample(zoo.checkpoints(name), cfg.max_checkpoints):
            m, _ = load(path)
            scores = induction_scores(m, **c_rep).numpy()
            curve_steps.append(step)
            curve.append(float(scores[1:].max()))
        formed = [s for s, v in zip(curve_steps, curve) if v > cfg.induction_threshold]
        out["models"][name] = {
            "positional": mc.positional, "n_layers": mc.n_layers, "n_heads": mc.n_heads, "n_kv_heads": mc.n_kv_heads,
            "previous_token": previous, "induction": induction, "prefix_matching": prefix, "icl": icl,
            "max_induction": float(induction[1:].max()), "induction_head": mech["induction_head"],
            "previous_token_head": mech["previous_token_head"], "previous_token_head_exists": prev_exists,
            "max_previous_token": float(previous[:il].max()),
            "K_pair": mech["pair"]["K"], "Q_pair": mech["pair"]["Q"], "z": mech["z"], "baseline": mech["baseline"],
            "max_K_into_induction": mech["max_K_into_induction"], "max_Q_into_induction": mech["max_Q_into_induction"],
            "max_K_z": kz, "max_Q_z": qz,
            "curve_steps": curve_steps, "curve": curve, "first_formed": formed[0] if formed else None,
            "layer_max_prefix_matching": prefix.max(-1),
        }
    return jsonable(out)


def _mechanism_label(m: dict, threshold: float) -> str:
    if m["max_induction"] < threshold:
        return "no induction head"
    k, q = m["max_K_z"], m["max_Q_z"]
    if k is None or q is None:
        return "n/a"
    if k > 3 and k >= q:
        return "K-composition"
    if q > 3:
        return "Q-composition"
    return "neither above baseline (positional/other)"


def build(results: dict, cfg: Config, zoo: Zoo | None = None) -> Section:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    M = results["models"]
    names = [n for n in results["presets"] if n in M]
    figures, tables, claims = [], [], []
    short = {n: n.replace("attn-only-", "") + ("" if n != "attn-only-2l" else " (shortformer)") for n in names}

    fig = make_subplots(rows=1, cols=2, subplot_titles=["max induction score (layers >= 1)", "|ICL score| (nats)"])
    fig.add_trace(go.Bar(x=[short[n] for n in names], y=[M[n]["max_induction"] for n in names], showlegend=False,
                         hovertemplate="%{x}: %{y:.3f}<extra></extra>"), row=1, col=1)
    fig.add_hline(y=cfg.induction_threshold, line_dash="dot", row=1, col=1)
    fig.add_trace(go.Bar(x=[short[n] for n in names], y=[-M[n]["icl"] if M[n]["icl"] is not None else None for n in names], showlegend=False,
                         hovertemplate="%{x}: %{y:.3f} nats<extra></extra>"), row=1, col=2)
    fig.update_layout(title="Which variants form induction heads", height=420)
    figures.append(Figure(key="variants_which", title="Induction and ICL scores of each variant",
                          caption="Final checkpoints. " + "; ".join(f"{short[n]}: induction {fmt(M[n]['max_induction'])}, |ICL| {fmt(-M[n]['icl'] if M[n]['icl'] is not None else None)}" for n in names) + ".",
                          fig=fig))

    fig = go.Figure()
    for n in names:
        fig.add_trace(go.Scatter(x=M[n]["curve_steps"], y=M[n]["curve"], mode="lines+markers", name=short[n],
                                 hovertemplate=short[n] + "<br>step %{x}: %{y:.3f}<extra></extra>"))
    fig.add_hline(y=cfg.induction_threshold, line_dash="dot", annotation_text="threshold")
    fig.update_layout(title="Max induction score (layers >= 1) over training", xaxis_title="training step", yaxis_title="induction score", height=420)
    figures.append(Figure(key="variants_speed", title="How fast induction heads form",
                          caption="First checkpoint above the threshold: " + "; ".join(f"{short[n]} {M[n]['first_formed'] if M[n]['first_formed'] is not None else 'never'}" for n in names) + ".",
                          fig=fig))

    fig = go.Figure()
    fig.add_trace(go.Bar(x=[short[n] for n in names], y=[M[n]["max_K_z"] for n in names], name="K-composition (best writer)"))
    fig.add_trace(go.Bar(x=[short[n] for n in names], y=[M[n]["max_Q_z"] for n in names], name="Q-composition (best writer)"))
    fig.add_hline(y=3, line_dash="dot", annotation_text="3 std above baseline")
    fig.update_layout(title="Composition into the top induction head, in baseline standard deviations", yaxis_title="z-score", barmode="group", height=420)
    figures.append(Figure(key="variants_mechanism", title="Mechanism: K- versus Q-composition",
                          caption="The largest K- and Q-composition score of any earlier head into the top induction head, as z-scores against random head pairs.",
                          fig=fig))

    deep = M.get(cfg.deep)
    if deep:
        pm = array(deep["prefix_matching"])
        fig = go.Figure(go.Heatmap(z=pm, x=[f"H{h}" for h in range(pm.shape[1])], y=[f"L{l}" for l in range(pm.shape[0])], colorscale="Blues",
                                   zmin=0, zmax=1, text=np.vectorize(lambda v: f"{v:.2f}")(pm), texttemplate="%{text}",
                                   hovertemplate="L%{y}%{x}: %{z:.3f}<extra></extra>"))
        fig.update_yaxes(autorange="reversed")
        fig.update_layout(title=f"Prefix-matching score of every head of {cfg.deep}", height=300)
        figures.append(Figure(key="variants_deep_layers", title="Where induction heads form in a deeper model",
                              caption="Per-layer maximum: " + ", ".join(f"layer {l} {fmt(v)}" for l, v in enumerate(deep["layer_max_prefix_matching"])) + ".",
                              fig=fig))

    tables.append(Table(
        key="variants_summary", title="Variants at a glance",
        columns=["model", "positions", "kv heads", "max induction", "|ICL|", "first step > threshold", "previous-token head (score)",
                 "K z (best)", "Q z (best)", "mechanism"],
        rows=[[n, M[n]["positional"], M[n]["n_kv_heads"] or M[n]["n_heads"], fmt(M[n]["max_induction"]), fmt(-M[n]["icl"] if M[n]["icl"] is not None else None),
               M[n]["first_formed"] if M[n]["first_formed"] is not None else "never",
               f"{'L{}H{}'.format(*M[n]['previous_token_head'])} ({fmt(M[n]['max_previous_token'])}){'' if M[n]['previous_token_head_exists'] else ', below 0.4'}",
               fmt(M[n]["max_K_z"]), fmt(M[n]["max_Q_z"]), _mechanism_label(M[n], cfg.induction_threshold)] for n in names],
    ))

    if deep:
        layer_max = [v if v is not None else -1 for v in deep["layer_max_prefix_matching"]]
        best = int(np.argmax(layer_max))
        claims.append(Claim(
            key="icl_where_heads_form", statement="In attention-only models with more than 2 layers the highest prefix-matching heads are in the last layer.",
            source="In-context Learning paper, appendix 'Where induction heads form'", paper_value="last layer",
            measured=f"{cfg.deep}: highest prefix-matching head in layer {best} of {deep['n_layers']} (per-layer max " + ", ".join(fmt(v) for v in layer_max) + ")",
            holds=bool(best == deep["n_layers"] - 1),
        ))
    intro = (
        "Two-layer attention-only models that differ only in how they see positions (or in sharing keys and values between heads), "
        "trained on the same batches. Pitfall 5 of the reference notes: with positions in the residual stream (learned) an induction head "
        "can also use positional (Q-composition) tricks, and the pure-token eigen-analysis misses them."
    )
    notes = [results.get("icl_note", ""),
             "Composition scores of the rotary model ignore the rotation (they use the unrotated W_Q, W_K), so its K/Q numbers are approximate.",
             "ALiBi and no-position models get their recency signal from the distance bias or the causal mask alone."]
    if zoo is not None and zoo.quick:
        notes.append("Quick mode: tiny models trained for a few dozen steps; the claims are not expected to hold.")
    return Section(key=NAME, title=TITLE, intro=intro, figures=figures, tables=tables, claims=claims, notes=notes)
