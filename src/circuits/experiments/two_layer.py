"""Two-layer attention-only model: previous-token heads, induction heads and the K-composition between them.

Framework paper, two-layer section, and ARENA's reproduction: on the trained ``attn-only-2l``
preset we find the previous-token head (layer 0, on corpus text) and the induction heads
(layer 1, on repeated random tokens), show their attention patterns, measure Q/K/V-composition
against the random baseline, place every layer-1 head on the eigenvalue "corner" plot, ablate each
layer-0 head, measure how well the induction heads' OV circuits copy, split the loss by path order
(term importance), and compare the loss on the first and second repeat of random tokens.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import torch

from circuits.experiments.plots import head_heatmaps, pattern_heatmaps
from circuits.experiments.util import array, eval_tokens, fmt, jsonable, training_data_note
from circuits.experiments.base import Claim, Figure, Section, Table
from circuits.training.zoo import Zoo

NAME = "two_layer"
TITLE = "Two-layer attention-only model: induction heads"
SOURCE_FW = "Framework paper, two-layer section; ARENA 1.2"


@dataclass(frozen=True, kw_only=True)
class Config:
    """Settings of the two-layer analysis (defaults: the full report)."""

    preset: str = "attn-only-2l"  #: the zoo model analysed
    eval_windows: int = 32  #: validation windows of corpus text (previous-token scores)
    seq_len: int = 50  #: length T of the random sequence R in [BOS] + R + R (capped at (n_ctx - 1) // 2)
    n_sequences: int = 10  #: number of repeated random sequences (ARENA: 10)
    pattern_seq_len: int = 15  #: T of the single sequence whose attention patterns are plotted
    induction_threshold: float = 0.3  #: a head in layer >= 1 with at least this induction score counts as an induction head
    previous_token_threshold: float = 0.4  #: ARENA's detector threshold for a previous-token head
    baseline_samples: int = 1000  #: random head pairs for the composition baseline
    term_windows: int = 2  #: validation windows for term importance (its path expansion is d_vocab-wide per term)
    term_len: int = 64  #: tokens per term-importance window
    seed: int = 0  #: seed of the random tokens and the baseline

    @classmethod
    def quick(cls) -> "Config":
        return cls(eval_windows=4, seq_len=20, n_sequences=4, pattern_seq_len=8, baseline_samples=100, term_windows=1, term_len=24)


# ---- compute -----------------------------------------------------------------------------------
def summed_ov_accuracy(model, heads: list[tuple[int, int]], k: int = 1) -> float:
    """Top-``k`` diagonal accuracy of the summed full OV circuit ``W_E (sum_h W_OV^h) W_U`` of ``heads``."""
    from circuits.analysis.weights.processing import folded_weights

    w = folded_weights(model)
    with torch.no_grad():
        ov = sum(w.W_V[l, h] @ w.W_O[l, h] for l, h in heads)
        left = w.W_E @ ov
        hits = 0
        for start in range(0, left.shape[0], 512):
            block = left[start : start + 512] @ w.W_U
            rows = torch.arange(start, start + block.shape[0])
            own = block[torch.arange(block.shape[0]), rows]
            hits += int(((block > own[:, None]).sum(-1) < k).sum())
    return hits / left.shape[0]


def pick_heads(previous: np.ndarray, induction: np.ndarray, threshold: float) -> dict:
    """The top induction head (layers >= 1), the induction heads (score >= threshold, at least the top one)
    and the top previous-token head in an earlier layer than the top induction head."""
    n_layers, n_heads = induction.shape
    later = induction.copy()
    later[0] = -np.inf
    top = np.unravel_index(int(np.argmax(later)), later.shape)
    heads = [(l, h) for l in range(1, n_layers) for h in range(n_heads) if induction[l, h] >= threshold]
    heads = sorted(heads, key=lambda lh: -induction[lh]) or [tuple(int(i) for i in top)]
    earlier = previous[: top[0]]
    prev = np.unravel_index(int(np.argmax(earlier)), earlier.shape)
    return {"induction_head": [int(top[0]), int(top[1])], "induction_heads": [[int(l), int(h)] for l, h in heads],
            "previous_token_head": [int(prev[0]), int(prev[1])]}


def mechanism(model, previous: np.ndarray, induction: np.ndarray, *, threshold: float, baseline_samples: int, seed: int) -> dict:
    """Q/K/V-composition scores (full ``[l1, h1, l2, h2]``), their baselines, and the chosen heads' pair scores."""
    from circuits.analysis.weights.composition import composition_baseline, composition_scores

    heads = pick_heads(previous, induction, threshold)
    (pl, ph), (il, ih) = heads["previous_token_head"], heads["induction_head"]
    out = {**heads, "composition": {}, "baseline": {}, "pair": {}, "z": {}}
    for kind in ("Q", "K", "V"):
        scores = composition_scores(model, kind)
        mean, std = composition_baseline(model, kind, n_samples=baseline_samples, seed=seed)
        out["composition"][kind] = scores
        out["baseline"][kind] = [mean, std]
        out["pair"][kind] = float(scores[pl, ph, il, ih])
        out["z"][kind] = (float(scores[pl, ph, il, ih]) - mean) / std
    # the best pair by K-composition into the top induction head, and the largest Q score into it
    k_into = out["composition"]["K"][:il, :, il, ih]
    q_into = out["composition"]["Q"][:il, :, il, ih]
    out["max_K_into_induction"] = float(k_into.max())
    out["max_Q_into_induction"] = float(q_into.max())
    return out


@torch.no_grad()
def compute(cfg: Config, zoo: Zoo) -> dict:
    from circuits import (
        Ablation,
        copying_scores,
        diagonal_accuracy,
        induction_qk_positivity,
        induction_scores,
        previous_token_scores,
        repeated_tokens,
        repeated_tokens_loss,
        term_importance,
    )

    model, tok = zoo.model(cfg.preset)
    mcfg = model.config
    if mcfg.n_layers < 2:
        raise ValueError(f"two_layer needs a model with at least 2 layers, {cfg.preset} has {mcfg.n_layers}")
    bos = tok.bos_id
    seq_len = min(cfg.seq_len, (mcfg.n_ctx - 1) // 2)
    text = eval_tokens(zoo, cfg.preset, tok, cfg.eval_windows)
    rep = dict(seq_len=seq_len, batch=cfg.n_sequences, seed=cfg.seed, bos=bos)

    previous = previous_token_scores(model, text).numpy()
    induction = induction_scores(model, **rep).numpy()
    mech = mechanism(model, previous, induction, threshold=cfg.induction_threshold, baseline_samples=cfg.baseline_samples, seed=cfg.seed)
    (pl, ph), (il, ih) = mech["previous_token_head"], mech["induction_head"]

    # attention patterns of the two heads on one repeated sequence
    pat_len = min(cfg.pattern_seq_len, seq_len)
    one = repeated_tokens(mcfg.d_vocab, pat_len, 2, 1, cfg.seed, bos=bos)
    with torch.no_grad():
        _, cache = model.run_with_cache(one, names_filter=[f"blocks.{l}.attn.hook_pattern" for l in {pl, il}])
    patterns = {
        "induction": cache[f"blocks.{il}.attn.hook_pattern"][0, ih],
        "previous_token": cache[f"blocks.{pl}.attn.hook_pattern"][0, ph],
    }

    # eigen-corner: OV copying positivity vs QK positivity of the previous-token K-composition term
    ov_positivity = copying_scores(model).numpy()
    qk_corner = induction_qk_positivity(model).numpy()[pl, ph]  # [l2, h2]

    # ablate each head of the layers before the induction head's: induction score of every head
    ablations = {}
    for l in range(il):
        for h in range(mcfg.n_heads):
            ablation = Ablation([(l, h)], kind="zero")
            ablations[f"L{l}H{h}"] = induction_scores(model, **rep, hooks_for_batch=ablation.for_model(model)).numpy()

    # OV copying accuracy of the induction heads, alone and summed
    acc1 = diagonal_accuracy(model, 1).numpy()
    acc5 = diagonal_accuracy(model, 5).numpy()
    ind_heads = [tuple(x) for x in mech["induction_heads"]]
    summed = {"top1": summed_ov_accuracy(model, ind_heads, 1), "top5": summed_ov_accuracy(model, ind_heads, 5)}
    layer_heads = [(il, h) for h in range(mcfg.n_heads)]
    top2 = sorted(layer_heads, key=lambda lh: -induction[lh])[:2]
    summed_top2 = {"top1": summed_ov_accuracy(model, top2, 1), "top5": summed_ov_accuracy(model, top2, 5)}

    # term importance by path order (frozen patterns)
    ti = term_importance(model, text[: cfg.term_windows, : cfg.term_len])
    per_layer = [0.0] * mcfg.n_layers
    for label, order, added in zip(ti.labels, ti.orders, ti.term_added.tolist()):
        match = re.fullmatch(r"L(\d+)H\d+", label)
        if order == 1 and match:
            per_layer[int(match.group(1))] += added
    top_terms = sorted(ti.table(), key=lambda row: -row["term_added"])[:12]

    rtl = repeated_tokens_loss(model, **rep)

    return jsonable({
        "preset": cfg.preset,
        "n_layers": mcfg.n_layers, "n_heads": mcfg.n_heads, "d_model": mcfg.d_model, "d_vocab": mcfg.d_vocab,
        "seq_len": seq_len,
        "previous_token": previous, "induction": induction,
        **{k: mech[k] for k in ("induction_head", "induction_heads", "previous_token_head", "baseline", "pair", "z",
                                 "max_K_into_induction", "max_Q_into_induction")},
        "composition": mech["composition"],
        "patterns": patterns, "pattern_tokens": tok.str_tokens(one[0]),
        "ov_positivity": ov_positivity, "qk_corner": qk_corner,
        "ablation": ablations, "clean_induction": induction,
        "ov_accuracy_top1": acc1, "ov_accuracy_top5": acc5,
        "summed_accuracy": summed, "summed_top2_heads": [list(x) for x in top2], "summed_top2_accuracy": summed_top2,
        "term_importance": {
            "loss_by_order": ti.loss_by_order, "marginal_by_order": ti.marginal_by_order,
            "first_order_by_layer": per_layer, "full_loss": ti.full_loss, "uniform_loss": ti.uniform_loss,
            "top_terms": top_terms, "n_tokens": int(text[: cfg.term_windows, : cfg.term_len].numel()),
        },
        "repeated_loss": {"per_repeat": rtl.per_repeat, "per_position": rtl.per_position},
    })


# ---- build -------------------------------------------------------------------------------------
def _label(lh) -> str:
    return f"L{lh[0]}H{lh[1]}"


def build(results: dict, cfg: Config, zoo: Zoo | None = None) -> Section:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    r = results
    prev, ind = array(r["previous_token"]), array(r["induction"])
    n_layers, n_heads = ind.shape
    ind_head, prev_head = r["induction_head"], r["previous_token_head"]
    il, ih = ind_head
    pl, ph = prev_head
    ind_heads = [tuple(x) for x in r["induction_heads"]]
    others = np.array([ind[l, h] for l in range(n_layers) for h in range(n_heads) if [l, h] != ind_head])
    first, second = r["repeated_loss"]["per_repeat"]
    vocab = r["d_vocab"]
    figures, tables, claims = [], [], []

    # 1. head scores
    figures.append(Figure(
        key="two_layer_head_scores", title="Previous-token and induction scores of every head",
        caption=(f"Previous-token score (mean attention to the previous token on corpus text) and induction score (mean attention "
                 f"to the token after the previous copy on [BOS] + R + R, T = {r['seq_len']}). Top previous-token head "
                 f"{_label(prev_head)} = {fmt(prev[pl, ph])}; top induction head {_label(ind_head)} = {fmt(ind[il, ih])}."),
        fig=head_heatmaps({"previous-token score": prev, "induction score": ind}, title="Head scores", zmax=1.0),
    ))

    # 2. attention patterns
    pats = {f"induction head {_label(ind_head)}": array(r["patterns"]["induction"]),
            f"previous-token head {_label(prev_head)}": array(r["patterns"]["previous_token"])}
    figures.append(Figure(
        key="two_layer_patterns", title="Attention patterns on repeated random tokens",
        caption=("The induction head attends from each token of the second repeat to the token after its earlier copy (the "
                 "off-diagonal stripe); the previous-token head attends to the token just before (the sub-diagonal)."),
        fig=pattern_heatmaps(pats, r["pattern_tokens"], title="Attention patterns on [BOS] + R + R"),
    ))

    # 3. composition scores against the baseline
    kinds = ("Q", "K", "V")
    fig = make_subplots(rows=1, cols=3, subplot_titles=[f"{k}-composition (baseline {fmt(r['baseline'][k][0])} ± {fmt(r['baseline'][k][1])})" for k in kinds])
    vmax = max(float(np.nanmax(array(r["composition"][k]))) for k in kinds)
    for i, k in enumerate(kinds):
        comp = array(r["composition"][k])  # [l1, h1, l2, h2]
        z = comp[il - 1, :, il, :] if il >= 1 else comp[0, :, 1, :]
        fig.add_trace(go.Heatmap(
            z=z, x=[f"L{il}H{h}" for h in range(n_heads)], y=[f"L{il - 1}H{h}" for h in range(n_heads)], zmin=0, zmax=vmax,
            colorscale="Viridis", showscale=i == 2, text=np.vectorize(lambda v: f"{v:.2f}")(z), texttemplate="%{text}",
            hovertemplate=f"{k}-composition<br>writer %{{y}} -> reader %{{x}}: %{{z:.3f}}<extra></extra>",
        ), row=1, col=i + 1)
        fig.update_yaxes(autorange="reversed", title_text="writer (earlier head)" if i == 0 else None, row=1, col=i + 1)
        fig.update_xaxes(title_text="reader (later head)", row=1, col=i + 1)
    fig.update_layout(title="Composition scores, layer-0 writers into layer-1 readers", height=420)
    figures.append(Figure(
        key="two_layer_composition", title="Q/K/V composition scores against the random baseline",
        caption=(f"Raw scores ||W_OV W_R|| / (||W_OV|| ||W_R||); the baseline (mean ± std over random head pairs of this shape) is in "
                 f"each title. {_label(prev_head)} -> {_label(ind_head)}: K = {fmt(r['pair']['K'])} (z = {fmt(r['z']['K'])}), "
                 f"Q = {fmt(r['pair']['Q'])} (z = {fmt(r['z']['Q'])}), V = {fmt(r['pair']['V'])} (z = {fmt(r['z']['V'])})."),
        fig=fig,
    ))
    fig = go.Figure()
    for i, k in enumerate(kinds):
        comp = array(r["composition"][k])
        vals, labels = [], []
        for l1 in range(n_layers):
            for h1 in range(n_heads):
                for l2 in range(l1 + 1, n_layers):
                    for h2 in range(n_heads):
                        vals.append(comp[l1, h1, l2, h2])
                        labels.append(f"L{l1}H{h1}->L{l2}H{h2}")
        fig.add_trace(go.Box(y=vals, name=f"{k}", boxpoints="all", jitter=0.5, pointpos=0, text=labels,
                             hovertemplate="%{text}: %{y:.3f}<extra></extra>"))
        mean, std = r["baseline"][k]
        fig.add_shape(type="rect", x0=i - 0.45, x1=i + 0.45, y0=mean - std, y1=mean + std, fillcolor="grey", opacity=0.25, line_width=0)
        fig.add_shape(type="line", x0=i - 0.45, x1=i + 0.45, y0=mean, y1=mean, line=dict(color="black", dash="dash"))
    fig.update_layout(title="All composition scores (points) vs the random baseline (dashed mean, grey ± 1 std)", yaxis_title="score", height=420)
    figures.append(Figure(key="two_layer_composition_baseline", title="Composition scores against the baseline",
                          caption="Every pair of an earlier and a later head; the previous-token -> induction K-composition should stand out above the grey band.",
                          fig=fig))

    # 4. eigen-corner
    ov = array(r["ov_positivity"])
    qk = array(r["qk_corner"])
    xs, ys, labels, colors = [], [], [], []
    for l in range(1, n_layers):
        for h in range(n_heads):
            xs.append(ov[l, h]); ys.append(qk[l, h]); labels.append(f"L{l}H{h}"); colors.append(ind[l, h])
    fig = go.Figure(go.Scatter(
        x=xs, y=ys, mode="markers+text", text=labels, textposition="top center",
        marker=dict(size=12, color=colors, colorscale="Reds", cmin=0, cmax=1, showscale=True, colorbar=dict(title="induction")),
        hovertemplate="%{text}<br>OV positivity %{x:.3f}<br>QK positivity %{y:.3f}<extra></extra>",
    ))
    fig.update_layout(title=f"Eigen-corner: OV copying vs QK positivity of the K-composition term with {_label(prev_head)}",
                      xaxis=dict(title="OV copying (Σλ/Σ|λ| of W_E W_OV W_U)", range=[-1.05, 1.05]),
                      yaxis=dict(title=f"QK positivity of W_E W_QK (W_OV^{_label(prev_head)})ᵀ W_E ᵀ", range=[-1.05, 1.05]), height=480)
    figures.append(Figure(
        key="two_layer_eigen_corner", title="The induction eigen-corner",
        caption=(f"Each layer-{il} head by the positivity of its OV circuit's eigenvalues (copying) and of its QK circuit read "
                 f"through the previous-token head (prefix matching); colour = induction score. {_label(ind_head)}: "
                 f"({fmt(ov[il, ih])}, {fmt(qk[il, ih])})."),
        fig=fig,
    ))

    # 5. ablation of each earlier head
    abl = {k: array(v)[il, ih] for k, v in r["ablation"].items()}
    clean = ind[il, ih]
    fig = go.Figure(go.Bar(x=["clean"] + list(abl), y=[clean] + list(abl.values()),
                           marker_color=["grey"] + ["crimson" if k == _label(prev_head) else "steelblue" for k in abl],
                           hovertemplate="%{x}: %{y:.3f}<extra></extra>"))
    fig.update_layout(title=f"Induction score of {_label(ind_head)} with each layer-{il - 1 if il else 0} head zero-ablated",
                      yaxis_title="induction score", height=380)
    ablated_prev = abl.get(_label(prev_head), float("nan"))
    other_abl = [v for k, v in abl.items() if k != _label(prev_head)]
    figures.append(Figure(
        key="two_layer_ablation", title="Ablating the previous-token head removes induction",
        caption=(f"Clean induction score {fmt(clean)}; with {_label(prev_head)} ablated {fmt(ablated_prev)}; with any other "
                 f"earlier head ablated at least {fmt(min(other_abl) if other_abl else float('nan'))}."),
        fig=fig,
    ))

    # 6. OV copying accuracy
    acc1, acc5 = array(r["ov_accuracy_top1"]), array(r["ov_accuracy_top5"])
    names = [f"L{il}H{h}" for h in range(n_heads)] + ["sum of induction heads", "sum of top-2 heads"]
    fig = go.Figure()
    fig.add_trace(go.Bar(x=names, y=list(acc1[il]) + [r["summed_accuracy"]["top1"], r["summed_top2_accuracy"]["top1"]], name="top-1"))
    fig.add_trace(go.Bar(x=names, y=list(acc5[il]) + [r["summed_accuracy"]["top5"], r["summed_top2_accuracy"]["top5"]], name="top-5"))
    fig.add_hline(y=1 / vocab, line_dash="dot", annotation_text=f"chance (top-1) = 1/{vocab}")
    fig.update_layout(title="OV copying accuracy: fraction of tokens whose own logit is the top entry of their row of W_E W_OV W_U",
                      yaxis_title="fraction of vocabulary", barmode="group", height=400)
    single = max(acc1[l, h] for l, h in ind_heads)
    figures.append(Figure(
        key="two_layer_ov_accuracy", title="OV copying accuracy of the induction heads",
        caption=(f"Best single induction head top-1 = {fmt(single)}; summed OV of the induction heads "
                 f"({', '.join(_label(x) for x in ind_heads)}) = {fmt(r['summed_accuracy']['top1'])}; chance = {fmt(1 / vocab)}."),
        fig=fig,
    ))

    # 7. term importance
    ti = r["term_importance"]
    marg = array(ti["marginal_by_order"])
    order_names = ["direct (order 0)", "single heads (order 1)", "virtual heads (order 2)", "order 3", "order 4"][: len(marg)]
    fig = make_subplots(rows=1, cols=2, subplot_titles=["loss reduction by path order", "order-1 terms by layer (sum of single-term effects)"])
    fig.add_trace(go.Bar(x=order_names, y=marg, hovertemplate="%{x}: %{y:.3f} nats<extra></extra>", showlegend=False), row=1, col=1)
    fig.add_trace(go.Bar(x=[f"layer {l} heads" for l in range(n_layers)], y=ti["first_order_by_layer"], showlegend=False,
                         hovertemplate="%{x}: %{y:.3f} nats<extra></extra>"), row=1, col=2)
    fig.update_yaxes(title_text="nats", row=1, col=1)
    fig.update_layout(title="Term importance (patterns frozen)", height=400)
    figures.append(Figure(
        key="two_layer_term_importance", title="Term importance by path order",
        caption=(f"Marginal loss reduction from adding all paths of each order (uniform loss {fmt(ti['uniform_loss'])} nats, full "
                 f"{fmt(ti['full_loss'])} nats on {ti['n_tokens']} tokens): " + ", ".join(f"{n} {fmt(v)}" for n, v in zip(order_names, marg)) + "."),
        fig=fig,
    ))
    tables.append(Table(key="two_layer_top_terms", title="Largest single path terms (loss reduction when added to all lower-order terms)",
                        columns=["path", "order", "added (nats)", "removed (nats)"],
                        rows=[[t["label"], t["order"], fmt(t["term_added"]), fmt(t["term_removed"])] for t in ti["top_terms"]]))

    # 8. loss on repeated random tokens
    per_pos = array(r["repeated_loss"]["per_position"])
    T = r["seq_len"]
    fig = go.Figure(go.Scatter(x=list(range(1, len(per_pos) + 1)), y=per_pos, mode="lines+markers",
                               hovertemplate="predicting token %{x}: %{y:.3f} nats<extra></extra>"))
    fig.add_vline(x=T + 0.5, line_dash="dash", annotation_text="second repeat starts")
    fig.update_layout(title=f"Loss per position on [BOS] + R + R (T = {T})", xaxis_title="index of the predicted token", yaxis_title="loss (nats)", height=380)
    figures.append(Figure(key="two_layer_repeated_loss", title="Loss on repeated random tokens",
                          caption=f"Mean loss on the first repeat {fmt(first)} nats, on the second {fmt(second)} nats.", fig=fig))

    tables.append(Table(
        key="two_layer_heads", title="Scores of every head",
        columns=["head", "previous-token", "induction", "OV copying", f"QK corner (with {_label(prev_head)})", "OV top-1 accuracy"],
        rows=[[f"L{l}H{h}", fmt(prev[l, h]), fmt(ind[l, h]), fmt(ov[l, h]), fmt(qk[l, h]) if l > pl else "", fmt(acc1[l, h])]
              for l in range(n_layers) for h in range(n_heads)],
    ))

    # ---- claims 5-11
    claims.append(Claim(
        key="fw_2l_previous_token_head", statement="A layer-0 head of the 2L model attends to the previous token (mean A[i, i-1] > 0.4 on text).",
        source=SOURCE_FW, paper_value="a previous-token head, e.g. ARENA L0H7 (detector threshold 0.4)",
        measured=f"{_label(prev_head)}: {fmt(prev[pl, ph])}", holds=bool(prev[pl, ph] > cfg.previous_token_threshold),
    ))
    med_others = float(np.median(others)) if len(others) else float("nan")
    claims.append(Claim(
        key="fw_2l_induction_head",
        statement="A layer-1 head has an induction score far above the other heads, and the second repeat's loss is far below the first's.",
        source=SOURCE_FW, paper_value="ARENA: 0.64 and 0.84 vs < 0.05; loss 14.2 -> 3.7 nats (vocab 50k)",
        measured=(f"{_label(ind_head)} = {fmt(ind[il, ih])} vs median of the others {fmt(med_others)}; "
                  f"loss {fmt(first)} -> {fmt(second)} nats (vocab {vocab})"),
        holds=bool(ind[il, ih] >= cfg.induction_threshold and ind[il, ih] >= 3 * med_others and second <= 0.5 * first),
    ))
    kz = r["z"]["K"]
    claims.append(Claim(
        key="fw_2l_k_composition",
        statement="K-composition of previous-token head -> induction head is several baseline std above the random baseline; its Q and V scores are not.",
        source="Framework paper, 'Analyzing a two-layer model'; ARENA", paper_value="ARENA: K 0.112 vs baseline ≈ 0.036; Q max 0.061; V 0.009-0.021",
        measured=(f"K {fmt(r['pair']['K'])} (z = {fmt(kz)}), Q {fmt(r['pair']['Q'])} (z = {fmt(r['z']['Q'])}), "
                  f"V {fmt(r['pair']['V'])} (z = {fmt(r['z']['V'])}); baseline K {fmt(r['baseline']['K'][0])} ± {fmt(r['baseline']['K'][1])}"),
        holds=bool(kz > 3 and r["pair"]["K"] > r["pair"]["Q"] and r["pair"]["K"] > r["pair"]["V"]),
    ))
    qk_others = [qk[l, h] for l in range(1, n_layers) for h in range(n_heads) if (l, h) not in ind_heads and np.isfinite(qk[l, h])]
    corner = min(ov[il, ih], qk[il, ih])
    claims.append(Claim(
        key="fw_2l_eigen_corner",
        statement="Induction heads have OV copying positivity and QK positivity of the previous-token K-composition term close to +1, separated from other heads.",
        source="Framework paper, 'Checking the mechanistic theory'", paper_value="near (+1, +1); SLAVA: OV 0.66-0.86, QK 0.90-0.94",
        measured=f"{_label(ind_head)}: OV {fmt(ov[il, ih])}, QK {fmt(qk[il, ih])}; highest QK of the other layer-{il} heads {fmt(max(qk_others) if qk_others else float('nan'))}",
        holds=bool(corner > 0.5 and (not qk_others or qk[il, ih] > max(qk_others))),
    ))
    claims.append(Claim(
        key="fw_2l_ablation",
        statement="Ablating the previous-token head drops the induction head's induction score to about 0; ablating other layer-0 heads changes it little.",
        source="ARENA 1.2", paper_value="0.68 -> ≈ 0 for L0H7; others barely matter",
        measured=(f"{fmt(clean)} -> {fmt(ablated_prev)} with {_label(prev_head)} ablated; lowest with another head ablated "
                  f"{fmt(min(other_abl) if other_abl else float('nan'))}"),
        holds=bool(ablated_prev < 0.25 * clean and (not other_abl or min(other_abl) > 0.5 * clean)),
    ))
    claims.append(Claim(
        key="fw_2l_ov_accuracy",
        statement="The induction heads' full OV circuits copy: top-1 diagonal accuracy well above chance, higher for their summed OV.",
        source="ARENA 1.2", paper_value="31% single head vs 96% two heads summed (chance 1/50k)",
        measured=(f"best single {fmt(single)}, summed ({len(ind_heads)} head{'s' if len(ind_heads) > 1 else ''}) "
                  f"{fmt(r['summed_accuracy']['top1'])}, top-2 heads summed {fmt(r['summed_top2_accuracy']['top1'])}; chance {fmt(1 / vocab)}"),
        holds=bool(single >= 10 / vocab and max(r["summed_accuracy"]["top1"], r["summed_top2_accuracy"]["top1"]) >= single),
    ))
    fo = ti["first_order_by_layer"]
    order2 = marg[2] if len(marg) > 2 else float("nan")
    claims.append(Claim(
        key="fw_2l_term_importance",
        statement="Virtual-head (2nd-order) terms reduce the loss much less than single-head terms, and layer-1 heads' direct terms matter more than layer-0's.",
        source="Framework paper, 'Term importance analysis' (video numbers, approximate)", paper_value="≈ 0.3 vs 5.2 nats; 4 vs 0.05 nats",
        measured=f"order 2 {fmt(order2)} vs order 1 {fmt(marg[1])} nats; layer-1 heads {fmt(fo[1])} vs layer-0 heads {fmt(fo[0])} nats",
        holds=bool(order2 < 0.5 * marg[1] and fo[1] > fo[0]),
    ))

    intro = (
        f"The {r['preset']} preset (d_model {r['d_model']}, {n_heads} heads per layer, vocabulary {vocab}). Previous-token scores "
        f"are measured on validation text, induction scores on {cfg.n_sequences} random sequences repeated twice "
        f"(T = {r['seq_len']}), weight circuits on the trained weights. Measured: previous-token head {_label(prev_head)} "
        f"({fmt(prev[pl, ph])}), induction head {_label(ind_head)} ({fmt(ind[il, ih])}), K-composition between them "
        f"{fmt(r['pair']['K'])} against a baseline of {fmt(r['baseline']['K'][0])}, loss on repeated tokens {fmt(first)} -> {fmt(second)} nats."
    )
    notes = [f"Induction heads: layer >= 1 heads with induction score >= {cfg.induction_threshold} ({', '.join(_label(x) for x in ind_heads)}; the top head when none reaches it)."]
    if zoo is not None and zoo.quick:
        notes.append("Quick mode: tiny models trained for a few dozen steps; the claims are not expected to hold.")
    data_note = training_data_note(zoo, cfg.preset)
    if data_note:
        notes.append(data_note)
    return Section(key=NAME, title=TITLE, intro=intro, figures=figures, tables=tables, claims=claims, notes=notes)
