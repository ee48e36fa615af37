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

from dataclasses import dataclass

import numpy as np
import torch

from circuits.experiments.util import array, band_icl, eval_tokens, fmt, icl_bands, jsonable, training_data_note
from circuits.analysis.trajectory import bump, index_before, log_index_slope, pivot, rise_steps, within
from circuits.experiments.base import Claim, Figure, Section, Table
from circuits.training.zoo import Zoo

NAME = "phase_change"
TITLE = "The induction-head phase change over training"
SOURCE = "In-context Learning paper, Argument 1"


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


# ---- compute -----------------------------------------------------------------------------------
def _scores_layers(n_layers: int) -> slice:
    """Layers whose heads can be induction heads: >= 1, or layer 0 of a one-layer (smeared) model."""
    return slice(1, None) if n_layers > 1 else slice(0, None)


def _ablated(model, text: torch.Tensor, ablation, chunk: int = 16) -> torch.Tensor:
    out = []
    with torch.no_grad():
        for i in range(0, text.shape[0], chunk):
            rows = text[i : i + chunk]
            with model.hooks(fwd_hooks=ablation.hooks(model, rows) if ablation is not None else []):
                out.append(model(rows, return_type="per_token_loss").float())
    return torch.cat(out)


@torch.no_grad()
def compute(cfg: Config, zoo: Zoo) -> dict:
    import time

    from circuits import Ablation, checkpoint_metrics, load, sample_token_indices

    start_time = time.perf_counter()
    models: dict[str, dict] = {}
    text = pairs = None
    for name in cfg.presets:
        checkpoints = zoo.checkpoints(name)
        model0, tok = load(checkpoints[0][1])
        n_ctx = model0.config.n_ctx
        if text is None:
            text = eval_tokens(zoo, name, tok, cfg.eval_windows)
            pairs = sample_token_indices(text.shape[0], text.shape[1], cfg.seed, per_example=min(cfg.pairs_per_example, text.shape[1] - 1))
        bos = tok.bos_id
        ind_kw = dict(seq_len=min(cfg.induction_seq_len, (n_ctx - 1) // 2), batch=cfg.score_batch, seed=cfg.seed, bos=bos)
        pm_kw = dict(seq_len=min(cfg.prefix_seq_len, (n_ctx - 1) // 4), batch=cfg.score_batch, seed=cfg.seed, bos=bos)
        stream = ((step, load(path)[0]) for step, path in checkpoints)
        cm = checkpoint_metrics(stream, text, pairs=pairs, induction=ind_kw, prefix_matching=pm_kw)
        _, train_cfg = zoo.configs(name)
        train = [(m["step"], m["tokens"], m["train_loss"]) for m in zoo.metrics(name) if m.get("kind") == "train"]
        models[name] = {
            "steps": cm.steps, "tokens_per_step": train_cfg.batch_size * n_ctx, "total_steps": train_cfg.steps,
            "n_layers": model0.config.n_layers, "n_heads": model0.config.n_heads,
            "icl_single": cm.icl, "loss": cm.loss, "per_position_loss": cm.per_position_loss, "loss_vectors": cm.loss_vectors,
            "previous_token": cm.previous_token, "induction": cm.induction, "prefix_matching": cm.prefix_matching,
            "train_steps": [t[0] for t in train], "train_loss": [t[2] for t in train],
        }
        models[name]["_pm_seq_len"] = pm_kw["seq_len"]
        icl_note = cm.indices.note

    n_pos = text.shape[1]
    late, early, band_note = icl_bands(n_pos)
    # joint PCA of the per-token loss vectors of every checkpoint of every model
    stacked = torch.cat([m["loss_vectors"] for m in models.values()]).double().numpy()
    centred = stacked - stacked.mean(0)
    _, sing, vt = np.linalg.svd(centred, full_matrices=False)
    explained = (sing**2 / max((sing**2).sum(), 1e-12))[:2]
    offset = 0
    for m in models.values():
        n = len(m["steps"])
        m["pca"] = centred[offset : offset + n] @ vt[:2].T
        offset += n

    results: dict = {"presets": list(cfg.presets), "n_pos": n_pos, "late": late, "early": early, "icl_note": icl_note,
                     "band_note": band_note, "pca_explained": explained, "models": {}}
    for name, m in models.items():
        steps = np.array(m["steps"])
        ppl = m["per_position_loss"].double().numpy()
        loss = m["loss"].double().numpy()
        icl = band_icl(ppl, late, early)
        layers = _scores_layers(m["n_layers"])
        pm = m["prefix_matching"].numpy()
        pm_max = pm[:, layers].reshape(len(steps), -1).max(-1)
        start = max(1, int(0.05 * m["total_steps"]))
        entry = {
            "steps": steps, "tokens": steps * m["tokens_per_step"], "total_steps": m["total_steps"],
            "n_layers": m["n_layers"], "n_heads": m["n_heads"], "prefix_seq_len": m["_pm_seq_len"],
            "icl": icl, "icl_single": m["icl_single"], "loss": loss, "per_position_loss": ppl,
            "prefix_matching": pm, "induction": m["induction"].numpy(), "previous_token": m["previous_token"].numpy(),
            "pm_max": pm_max, "pca": m["pca"], "train_steps": m["train_steps"], "train_loss": m["train_loss"],
            "icl_rise": rise_steps(steps, -icl), "pm_rise": rise_steps(steps, pm_max),
            "bump": bump(steps, loss, start), "pivot": pivot(m["pca"], steps, start),
        }
        rise = entry["icl_rise"]
        before = index_before(steps, rise["t10"])
        entry["before_step"] = int(steps[before])
        entry["slope_before"] = log_index_slope(ppl[before], early[0])
        entry["slope_after"] = log_index_slope(ppl[-1], early[0])
        results["models"][name] = entry
    if cfg.control in models and cfg.main in models:
        main, control = results["models"][cfg.main], results["models"][cfg.control]
        if list(main["steps"]) == list(control["steps"]):
            gap = control["loss"] - main["loss"]
            rate = np.diff(gap) / np.diff(main["steps"])
            mids = (main["steps"][1:] + main["steps"][:-1]) / 2
            results["gap"] = {"gap": gap, "fastest_step": float(mids[int(np.argmax(rate))])}

    # pattern-preserving ablation of every head of the final main model (claims 16-17)
    if cfg.ablate and cfg.main in models:
        vectors = models[cfg.main]["loss_vectors"].double().numpy()
        results["ablation"] = _ablation_study(cfg, zoo, results["models"][cfg.main], vectors, text, pairs, late, early)
    results["seconds"] = time.perf_counter() - start_time
    return jsonable(results)


def _ablation_study(cfg: Config, zoo: Zoo, main: dict, vectors: np.ndarray, text, pairs, late, early) -> dict:
    """ICL change and before-and-after dot product of a pattern-preserving zero ablation of each head of the final model."""
    from circuits import Ablation

    model, _ = zoo.model(cfg.main)
    n_layers, n_heads = model.config.n_layers, model.config.n_heads
    pm_final = main["prefix_matching"][-1]
    layers = _scores_layers(n_layers)
    candidates = [(l, h) for l in range(n_layers)[layers] for h in range(n_heads)]
    induction_heads = [lh for lh in candidates if pm_final[lh] >= cfg.induction_threshold] or [max(candidates, key=lambda lh: pm_final[lh])]
    prev = main["previous_token"][-1]
    earlier = prev[: min(l for l, _ in induction_heads)] if n_layers > 1 else prev
    p = np.unravel_index(int(np.argmax(earlier)), earlier.shape)
    prev_head = (int(p[0]), int(p[1]))

    clean = _ablated(model, text, None)
    rows, idx = pairs[:, 0], pairs[:, 1] - 1
    clean_vec = clean[rows, idx].double().numpy()
    clean_icl = float(band_icl(clean.mean(0).double().numpy(), late, early))
    # before-and-after vector: per-token losses from the checkpoint before the window to the end of it, unit length
    steps, rise = np.asarray(main["steps"]), main["icl_rise"]
    i0 = index_before(steps, rise["t10"])
    i1 = int(np.nonzero(steps >= rise["t90"])[0][0]) if rise["t90"] is not None else len(steps) - 1
    v = vectors[i1] - vectors[i0]
    v = v / max(np.linalg.norm(v), 1e-12)
    labels, icl_delta, dots = [], [], []
    groups = [([(l, h)], f"L{l}H{h}") for l in range(n_layers) for h in range(n_heads)]
    groups += [(induction_heads, "induction heads"), (induction_heads + [prev_head], "induction + previous-token heads")]
    for group, label in groups:
        loss = _ablated(model, text, Ablation(group, pattern_preserving=True))
        labels.append(label)
        icl_delta.append(float(band_icl(loss.mean(0).double().numpy(), late, early)) - clean_icl)
        dots.append(float(v @ (loss[rows, idx].double().numpy() - clean_vec)))
    return {"labels": labels, "icl_delta": icl_delta, "dot": dots, "clean_icl": clean_icl,
            "induction_heads": [list(x) for x in induction_heads], "previous_token_head": list(prev_head),
            "phase_steps": [int(steps[i0]), int(steps[i1])]}


# ---- build -------------------------------------------------------------------------------------
def build(results: dict, cfg: Config, zoo: Zoo | None = None) -> Section:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    r = results
    M = r["models"]
    names = [n for n in r["presets"] if n in M]
    main = M.get(cfg.main)
    control = M.get(cfg.control)
    figures, tables, claims = [], [], []
    colors = dict(zip(names, ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"]))
    window = (main["icl_rise"]["t10"], main["icl_rise"]["t90"]) if main else (None, None)
    tps = (main or M[names[0]])["tokens"][1] / max((main or M[names[0]])["steps"][1], 1) if len((main or M[names[0]])["steps"]) > 1 else 1

    def shade(fig, **where):
        if window[0] is not None and window[1] is not None:
            fig.add_vrect(x0=window[0] * tps, x1=max(window[1], window[0] + 1) * tps, fillcolor="red", opacity=0.08, line_width=0, **where)

    # 1. ICL score
    fig = go.Figure()
    for n in names:
        fig.add_trace(go.Scatter(x=M[n]["tokens"], y=[-v if v is not None else None for v in M[n]["icl"]], name=n, mode="lines+markers",
                                 line=dict(color=colors[n]), customdata=M[n]["steps"],
                                 hovertemplate=n + "<br>step %{customdata}<br>%{x:,} tokens<br>|ICL| %{y:.3f} nats<extra></extra>"))
    shade(fig)
    fig.update_layout(title="In-context learning score (loss late in the context minus loss early, sign flipped)",
                      xaxis_title="training tokens", yaxis_title="-(L(late) - L(early)) (nats)", height=420)
    figures.append(Figure(key="phase_change_icl", title="In-context learning score over training",
                          caption=("ICL score of every checkpoint; the shaded band is the detected phase-change window of "
                                   f"{cfg.main} (10% to 90% of its final ICL score: steps {window[0]}-{window[1]}). Final |ICL|: "
                                   + ", ".join(f"{n} {fmt(-M[n]['icl'][-1])}" for n in names) + "."),
                          fig=fig))

    # 2. prefix-matching scores of every head
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=[n.replace("attn-only-", "") for n in names], shared_yaxes=True,
                        horizontal_spacing=0.03)
    for i, n in enumerate(names):
        pm = array(M[n]["prefix_matching"])  # [ckpt, layer, head]
        for l in range(pm.shape[1]):
            for h in range(pm.shape[2]):
                fig.add_trace(go.Scatter(x=M[n]["tokens"], y=pm[:, l, h], mode="lines", name=f"L{l}H{h}", showlegend=False,
                                         line=dict(width=1.5, color=f"hsl({(240 - 120 * l) % 360},70%,{35 + 5 * h}%)"),  # blue, green, red
                                         hovertemplate=f"{n} L{l}H{h}<br>%{{x:,}} tokens: %{{y:.3f}}<extra></extra>"), row=1, col=i + 1)
        shade(fig, row=1, col=i + 1)
        fig.update_xaxes(title_text="tokens", row=1, col=i + 1)
    fig.update_yaxes(title_text="prefix-matching score", row=1, col=1)
    fig.update_layout(title="Prefix-matching score of each head (blue: layer 0, green: layer 1, red: layer 2)", height=420)
    figures.append(Figure(key="phase_change_prefix_matching", title="Prefix-matching score of each head over training",
                          caption=("Attention from each token of repeats 2-4 of a random sequence to the tokens after its earlier copies. "
                                   "Final maximum: " + ", ".join(f"{n} {fmt(M[n]['pm_max'][-1])}" for n in names) + "."),
                          fig=fig))

    # 3. loss and its derivative
    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.06,
                        subplot_titles=["validation loss at each checkpoint (train loss thin)", "rate of decrease -dL/dstep (nats per 1k steps)",
                                        f"loss gap {cfg.control} - model"])
    for n in names:
        m = M[n]
        tokens = np.array(m["tokens"], dtype=float)
        fig.add_trace(go.Scatter(x=tokens, y=m["loss"], name=n, line=dict(color=colors[n]), legendgroup=n,
                                 hovertemplate=n + "<br>%{x:,} tokens: %{y:.3f}<extra></extra>"), row=1, col=1)
        fig.add_trace(go.Scatter(x=np.array(m["train_steps"]) * tps, y=m["train_loss"], showlegend=False, legendgroup=n, opacity=0.35,
                                 line=dict(color=colors[n], width=1), hoverinfo="skip"), row=1, col=1)
        b = m["bump"]
        if b["rate"]:
            fig.add_trace(go.Scatter(x=np.array(b["rate_steps"]) * tps, y=np.array(array(b["rate"])) * 1000, showlegend=False, legendgroup=n,
                                     line=dict(color=colors[n]), hovertemplate=n + "<br>%{x:,} tokens: %{y:.3f}<extra></extra>"), row=2, col=1)
        if control is not None and list(control["steps"]) == list(m["steps"]) and n != cfg.control:
            gap = array(control["loss"]) - array(m["loss"])
            fig.add_trace(go.Scatter(x=tokens, y=gap, showlegend=False, legendgroup=n, line=dict(color=colors[n]),
                                     hovertemplate=n + "<br>%{x:,} tokens: gap %{y:.3f}<extra></extra>"), row=3, col=1)
    for row in (1, 2, 3):
        shade(fig, row=row, col=1)
    fig.update_xaxes(title_text="training tokens", row=3, col=1)
    fig.update_layout(title="Loss, its rate of decrease, and the divergence from the 1L control", height=760)
    mb = main["bump"] if main else {}
    figures.append(Figure(key="phase_change_loss", title="The loss bump",
                          caption=(f"A bump is a place where the loss starts falling faster again (the rate of decrease rises). Largest rise for "
                                   f"{cfg.main} at step {fmt(mb.get('step'))} (score {fmt(mb.get('score'))}); for {cfg.control} "
                                   f"score {fmt(control['bump']['score'] if control else None)}."),
                          fig=fig))

    # 4. PCA trajectories
    fig = go.Figure()
    for n in names:
        pca = array(M[n]["pca"])
        fig.add_trace(go.Scatter(x=pca[:, 0], y=pca[:, 1], mode="lines+markers", name=n, line=dict(color=colors[n]),
                                 marker=dict(size=5), customdata=M[n]["steps"],
                                 hovertemplate=n + "<br>step %{customdata}<br>PC1 %{x:.2f}, PC2 %{y:.2f}<extra></extra>"))
        pv = M[n]["pivot"]
        if pv["step"] is not None:
            i = list(M[n]["steps"]).index(pv["step"])
            fig.add_trace(go.Scatter(x=[pca[i, 0]], y=[pca[i, 1]], mode="markers", marker=dict(symbol="x", size=14, color=colors[n]),
                                     showlegend=False, hovertemplate=f"{n} pivot, step {pv['step']}<extra></extra>"))
    ev = r["pca_explained"]
    fig.update_layout(title="Per-token loss vectors of all checkpoints, first two principal components (x: sharpest turn)",
                      xaxis_title=f"PC1 ({100 * ev[0]:.0f}% of variance)", yaxis_title=f"PC2 ({100 * ev[1]:.0f}%)", height=480)
    figures.append(Figure(key="phase_change_pca", title="Per-token loss PCA trajectories",
                          caption=("Each checkpoint's losses on a fixed sample of (example, index) pairs, projected on the two top principal "
                                   "components of all checkpoints of all models. Sharpest turn: "
                                   + ", ".join(f"{n} step {M[n]['pivot']['step']}" for n in names) + "."),
                          fig=fig))

    # 5. loss by context index and step
    show = [n for n in (cfg.main, cfg.control) if n in M] or names[:1]
    fig = make_subplots(rows=1, cols=len(show), subplot_titles=show, horizontal_spacing=0.08)
    for i, n in enumerate(show):
        ppl = array(M[n]["per_position_loss"])
        idx = np.arange(1, ppl.shape[1] + 1)
        fig.add_trace(go.Heatmap(z=ppl, x=idx, y=M[n]["steps"], colorscale="Viridis", showscale=i == 0, colorbar=dict(title="nats"),
                                 hovertemplate="step %{y}<br>token index %{x}<br>loss %{z:.3f}<extra></extra>"), row=1, col=i + 1)
        fig.update_xaxes(type="log", title_text="token index (log)", row=1, col=i + 1)
        fig.update_yaxes(title_text="training step", row=1, col=i + 1)
    fig.update_layout(title="Loss by context index and training step", height=460)
    figures.append(Figure(key="phase_change_loss_by_index", title="Loss by context index and training step",
                          caption=("Mean loss of the token at each index, for each checkpoint. Slope of loss against ln(index) beyond index "
                                   f"{r['early'][0]}: " + ", ".join(f"{n} {fmt(M[n]['slope_before'])} (step {M[n]['before_step']}) -> "
                                                                   f"{fmt(M[n]['slope_after'])} (final)" for n in show) + " nats per e-fold."),
                          fig=fig))
    fig = go.Figure()
    for n in show:
        ppl = array(M[n]["per_position_loss"])
        idx = np.arange(1, ppl.shape[1] + 1)
        for which, row, dash in (("before", list(M[n]["steps"]).index(M[n]["before_step"]), "dot"), ("final", -1, "solid")):
            fig.add_trace(go.Scatter(x=idx, y=ppl[row], name=f"{n} {which} (step {M[n]['steps'][row]})", line=dict(color=colors[n], dash=dash),
                                     hovertemplate="index %{x}: %{y:.3f}<extra></extra>"))
    fig.update_xaxes(type="log", title_text="token index (log)")
    fig.update_layout(title="Loss against log context index, before the phase change and at the end", yaxis_title="loss (nats)", height=420)
    figures.append(Figure(key="phase_change_loss_by_log_index", title="Loss against log index before and after",
                          caption="After the phase change the 2L model keeps improving with context out to the end; the 1L model flattens early.",
                          fig=fig))

    # 6. ablations
    ab = r.get("ablation")
    if ab:
        fig = make_subplots(rows=1, cols=2, subplot_titles=["change in ICL score (ablated - clean; positive = less ICL)",
                                                            "before-and-after vector · ablation effect"])
        ind_labels = {f"L{l}H{h}" for l, h in ab["induction_heads"]}
        col = ["crimson" if lab in ind_labels or lab.startswith("induction") else "steelblue" for lab in ab["labels"]]
        fig.add_trace(go.Bar(x=ab["labels"], y=ab["icl_delta"], marker_color=col, showlegend=False,
                             hovertemplate="%{x}: %{y:.3f} nats<extra></extra>"), row=1, col=1)
        fig.add_trace(go.Bar(x=ab["labels"], y=ab["dot"], marker_color=col, showlegend=False,
                             hovertemplate="%{x}: %{y:.3f}<extra></extra>"), row=1, col=2)
        fig.update_layout(title=f"Pattern-preserving ablation of each head of the final {cfg.main}", height=420)
        figures.append(Figure(key="phase_change_ablation", title="Ablating the induction heads removes in-context learning",
                              caption=(f"Clean ICL score {fmt(ab['clean_icl'])} nats. Red: induction heads "
                                       f"({', '.join(sorted(ind_labels))}). The before-and-after vector is the per-token loss change from step "
                                       f"{ab['phase_steps'][0]} to step {ab['phase_steps'][1]}, unit length."),
                              fig=fig))

    tables.append(Table(
        key="phase_change_summary", title="Phase-change timing per model (steps)",
        columns=["model", "final |ICL|", "ICL 10%", "ICL 50%", "ICL 90%", "prefix-matching 50%", "final max prefix matching",
                 "loss bump at", "bump score", "PCA turn at"],
        rows=[[n, fmt(-M[n]["icl"][-1]), M[n]["icl_rise"]["t10"], M[n]["icl_rise"]["t50"], M[n]["icl_rise"]["t90"],
               M[n]["pm_rise"]["t50"], fmt(M[n]["pm_max"][-1]), fmt(M[n]["bump"]["step"]), fmt(M[n]["bump"]["score"]), M[n]["pivot"]["step"]]
              for n in names],
    ))

    # ---- claims
    if main:
        f = -main["icl"][-1]
        total = main["total_steps"]
        t10, t50, t90 = (main["icl_rise"][k] for k in ("t10", "t50", "t90"))
        width = (t90 - t10) / total if t10 is not None and t90 is not None else None
        steps = np.array(main["steps"])
        gaps = np.diff(steps)
        tol = max(0.05 * total, float(np.max(gaps[(steps[1:] >= (t10 or 0)) & (steps[:-1] <= (t90 or total))], initial=0)) if t10 is not None else 0.0)
        icl_before = -main["icl"][list(steps).index(main["before_step"])]
        claims.append(Claim(
            key="icl_phase_change", statement=f"The {cfg.main} ICL score rises abruptly in a narrow window to a plateau.",
            source=SOURCE, paper_value="< 0.15 -> ≈ 0.4 nats; > 75% of the final ICL forms in the window",
            measured=(f"|ICL| {fmt(icl_before)} (step {main['before_step']}) -> {fmt(f)} (final); 10%-90% rise between steps {t10} and {t90} "
                      f"({fmt(100 * width) if width is not None else 'n/a'}% of training)"),
            holds=bool(width is not None and f >= 0.15 and width <= 0.3),
        ))
        pm50, bump_step, pivot_step = main["pm_rise"]["t50"], main["bump"]["step"], main["pivot"]["step"]
        parts = {"prefix matching": within(pm50, t10, t90, tol), "loss bump": within(bump_step, t10, t90, tol),
                 "PCA turn": within(pivot_step, t10, t90, tol)}
        claims.append(Claim(
            key="icl_co_timing", statement="The window coincides with the rise of the induction heads' prefix-matching score, a bump in the loss and a pivot of the per-token-loss PCA trajectory.",
            source=SOURCE, paper_value="all in the same narrow window",
            measured=(f"window {t10}-{t90} (± {fmt(tol)} steps); prefix matching 50% at {pm50}, loss bump at {fmt(bump_step)}"
                      + (f" (fastest divergence from {cfg.control} at {fmt(r['gap']['fastest_step'])})" if r.get("gap") else "")
                      + f", PCA turn at {pivot_step}: "
                      + ", ".join(f"{k} {'inside' if v else 'outside'}" for k, v in parts.items())),
            holds=bool(all(parts.values())),
        ))
    if control and main:
        fc, fm = -control["icl"][-1], -main["icl"][-1]
        bc, bm = control["bump"]["score"], main["bump"]["score"]
        pmc = control["pm_max"][-1]
        claims.append(Claim(
            key="icl_1l_control", statement=f"The 1L control ({cfg.control}) shows no ICL jump, no induction heads and no loss bump.",
            source="In-context Learning paper, Arguments 1-2", paper_value="1L never develops much ICL",
            measured=(f"final |ICL| {fmt(fc)} vs {fmt(fm)} for {cfg.main}; max prefix matching {fmt(pmc)}; bump score {fmt(bc)} vs {fmt(bm)}"),
            holds=bool(fc < 0.5 * fm and pmc < cfg.induction_threshold and bc is not None and bm is not None and bc < 0.5 * bm),
        ))
    s1, s2 = M.get(cfg.smeared_1l), M.get(cfg.smeared_2l)
    if s1 and main:
        f1, fm = -s1["icl"][-1], -main["icl"][-1]
        part1 = f1 >= 0.5 * fm and s1["pm_max"][-1] >= cfg.induction_threshold
        measured = f"{cfg.smeared_1l}: final |ICL| {fmt(f1)} (vs {fmt(fm)}), max prefix matching {fmt(s1['pm_max'][-1])}"
        part2 = None
        if s2:
            a, b = s2["icl_rise"]["t50"], main["icl_rise"]["t50"]
            part2 = a is not None and b is not None and a < b
            measured += f"; ICL 50% at step {a} for {cfg.smeared_2l} vs {b} for {cfg.main}"
        claims.append(Claim(
            key="icl_smeared_key", statement="A 1L smeared-key model develops ICL and induction heads; a 2L smeared-key model gets them earlier than its control.",
            source="In-context Learning paper, Argument 2", paper_value="1L smeared gets the phase change; 2L smeared earlier",
            measured=measured, holds=bool(part1 and part2) if part2 is not None else (False if not part1 else None),
        ))
    if ab:
        labels = ab["labels"]
        d_ind = ab["icl_delta"][labels.index("induction heads")]
        clean = ab["clean_icl"]
        ind_labels = {f"L{l}H{h}" for l, h in ab["induction_heads"]}
        prev_label = "L{}H{}".format(*ab["previous_token_head"])
        others = [d for lab, d in zip(labels, ab["icl_delta"]) if lab.startswith("L") and lab not in ind_labels and lab != prev_label]
        removed = d_ind / -clean if clean < 0 else float("nan")
        claims.append(Claim(
            key="icl_ablation", statement="Pattern-preserving ablation of the induction heads removes most of the ICL score; ablating other heads leaves it about unchanged.",
            source="In-context Learning paper, Argument 3", paper_value="almost all ICL removed; others slightly increase it",
            measured=(f"ICL {fmt(clean)} nats; ablating {', '.join(sorted(ind_labels))} changes it by {fmt(d_ind)} ({fmt(100 * removed)}% removed); "
                      f"other heads: mean change {fmt(float(np.mean(others)) if others else None)}, largest {fmt(max(others, key=abs) if others else None)}"),
            holds=bool(clean < 0 and removed > 0.5 and (not others or max(abs(o) for o in others) < 0.25 * -clean)),
        ))
        dots = {lab: d for lab, d in zip(labels, ab["dot"]) if lab in ind_labels}
        claims.append(Claim(
            key="icl_before_after", statement="The before-and-after vector of the phase change has a negative dot product with each induction head's ablation effect.",
            source="In-context Learning paper, 'Analyses'", paper_value="negative for induction heads",
            measured=", ".join(f"{k} {fmt(v)}" for k, v in sorted(dots.items())) + f" (steps {ab['phase_steps'][0]} -> {ab['phase_steps'][1]})",
            holds=bool(dots and all(v < 0 for v in dots.values())),
        ))
    if main:
        sb, sa = main["slope_before"], main["slope_after"]
        claims.append(Claim(
            key="icl_loss_by_log_index", statement="Before the phase change dLoss/d ln(index) is about 0 beyond the early index; after it, it stays negative to the end of the context.",
            source=SOURCE, paper_value="≈ 0 beyond token 50 before; negative to the end after",
            measured=f"slope beyond index {r['early'][0]}: {fmt(sb)} at step {main['before_step']}, {fmt(sa)} at the end (nats per e-fold)",
            holds=bool(sa < -0.03 and abs(sb) < 0.5 * abs(sa)),
        ))

    intro = (
        "Every checkpoint of " + ", ".join(names) + " (same data, same order) is evaluated on the same "
        f"{cfg.eval_windows} validation windows of {r['n_pos']} tokens and on the same random repeated sequences. The phase-change "
        "window is where the ICL score of " + cfg.main + " rises from 10% to 90% of its final value (above its minimum). "
        f"Evaluation took {fmt(r['seconds'])} s."
    )
    notes = [r["band_note"], "Prefix matching uses the +1 offset (the token after each earlier copy) on 25-token sequences repeated 4 times, "
             "shortened to fit the context where needed."]
    if zoo is not None and zoo.quick:
        notes.append("Quick mode: tiny models trained for a few dozen steps with few checkpoints; the claims are not expected to hold.")
    data_note = training_data_note(zoo, cfg.main)
    if data_note:
        notes.append(data_note)
    return Section(key=NAME, title=TITLE, intro=intro, figures=figures, tables=tables, claims=claims, notes=notes)
