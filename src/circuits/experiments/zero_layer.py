"""Zero-layer model: the direct path ``W_E W_U`` is the corpus bigram table (Framework paper, "Zero-Layer Transformers").

A zero-layer transformer predicts the next token from the current one alone, so the best it
can do is the bigram distribution ``P(next | current)`` of its training data: its loss is at
least the conditional entropy ``H(next | current)``, and equals it plus the KL divergence of its
rows from the empirical ones. With ``d_model`` < vocabulary the table is a low-rank
approximation, so the loss sits a little above. We count the bigrams of the training stream,
compare, and show the model's top predicted next tokens for the most frequent tokens.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from circuits.analysis.activations.paths import BigramComparison, bigram_counts, zero_layer_bigram_comparison
from circuits.analysis.bigrams import (
    conditional_probabilities, entropy, entropy_gap_closed, smoothed_bigram_cross_entropy, top1_agreement, unigram_cross_entropy,
)
from circuits.experiments import base, plots
from circuits.experiments import corpus as _corpus
from circuits.experiments.base import Claim, Figure, Table
from circuits.training.zoo import Zoo

NAME = "zero_layer"
TITLE = "Zero-layer model: the direct path is the bigram table"
COMPUTE_S = 0.4  #: about the seconds compute takes on one core in the full report (2026-12-01); orders the report's work only
SEEDED = True  #: claims tested on several seeds (circuits report --seeds; see circuits.experiments.base)

#: log P below this is drawn at this value in the heatmaps (log 0 = -inf for bigrams never seen)
LOG_P_FLOOR = -12.0


@dataclass(frozen=True, kw_only=True)
class Config:
    preset: str = "attn-only-0l"  #: the zero-layer model of the zoo
    max_tokens: int = 4_000_000  #: tokens of each split (from the start of the stream) whose bigrams are counted
    n_heatmap: int = 30  #: most frequent tokens shown in the P(next | current) heatmaps
    n_table: int = 15  #: most frequent tokens in the top-predictions table
    top_k: int = 5  #: next tokens listed per token
    n_scatter: int = 400  #: most frequent tokens in the KL-by-frequency scatter
    smoothing: float = 10.0  #: Dirichlet prior (towards the unigram) of the held-out bigram reference
    min_gap_closed: float = 0.75  #: claim 1 holds when the model closes this fraction of the unigram -> bigram entropy gap

    @classmethod
    def quick(cls) -> "Config":
        return cls(max_tokens=200_000, n_heatmap=15, n_table=6, top_k=3, n_scatter=100)


# ---- the result -------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class Losses(base.Result):
    """Cross-entropies (nats) of the model and of the bigram references, on the counted training and held-out bigrams."""

    n_bigrams: int
    n_val_bigrams: int
    uniform: float  #: log(d_vocab)
    unigram_entropy: float  #: H(next) of the training bigrams
    conditional_entropy: float  #: H(next | current) of the training bigrams
    model_loss: float
    kl: float  #: model_loss - conditional_entropy
    gap_closed: float  #: share of the H(next) -> H(next | current) gap the model closes (NaN without a gap)
    val_conditional_entropy: float
    val_model_loss: float
    val_smoothed_bigram: float  #: the training table smoothed towards the unigram, on the held-out bigrams
    val_unigram_cross_entropy: float
    top1_agreement: float  #: frequency-weighted share of current tokens whose top-1 next token is the corpus's


@dataclass(frozen=True, kw_only=True)
class TopNext(base.Result):
    """One frequent current token: its share, the model's and the corpus's top next tokens ``(token, probability)``."""

    token: str
    share: float
    model_top: tuple[tuple[str, float], ...]
    corpus_top: tuple[tuple[str, float], ...]
    kl: float
    top1_agrees: bool


@dataclass(frozen=True, kw_only=True)
class Curves(base.Result):
    """The training run's loss by step: train loss at every logged step, validation loss at every evaluation."""

    steps: tuple[int, ...]
    train_loss: np.ndarray
    eval_steps: tuple[int, ...]
    val_loss: np.ndarray


@dataclass(frozen=True, kw_only=True)
class Result(base.Result):
    quick: bool
    preset: str  #: the zoo model read
    data_label: str  #: what it was trained on, in words
    d_vocab: int
    d_model: int
    top_k: int
    min_gap_closed: float
    losses: Losses
    heat_tokens: tuple[str, ...]  #: the most frequent current tokens, on both heatmap axes
    heat_ids: tuple[int, ...]
    heat_corpus: np.ndarray  #: [current, next] corpus log P(next | current), floored at LOG_P_FLOOR
    heat_model: np.ndarray  #: [current, next] model log_softmax(W_E W_U), floored at LOG_P_FLOOR
    table: tuple[TopNext, ...]
    scatter_tokens: tuple[str, ...]
    scatter_share: np.ndarray  #: share of current tokens
    scatter_kl: np.ndarray  #: KL(corpus row || model row)
    curves: Curves


# ---- compute ----------------------------------------------------------------------------------
def compute(cfg: Config, zoo: Zoo) -> Result:
    model, tokenizer = zoo.model(cfg.preset)
    d_vocab = model.config.d_vocab
    data = _corpus.token_data(zoo, cfg.preset, tokenizer)
    counts = bigram_counts(_corpus.stream(data.train, cfg.max_tokens), d_vocab)
    val_counts = bigram_counts(_corpus.stream(data.val, cfg.max_tokens), d_vocab)
    train_cmp = zero_layer_bigram_comparison(model, counts)
    current = counts.sum(1)  # how often each token is the current token
    frequent = [int(i) for i in current.double().argsort(descending=True)]
    seen = [a for a in frequent if current[a] > 0]
    scatter_ids = seen[: cfg.n_scatter]
    heat = frequent[: cfg.n_heatmap]
    emp = conditional_probabilities(counts)  # [current, next] empirical P(next | current)
    heat_corpus, heat_model = _heatmaps(emp, train_cmp, heat)
    return Result(
        quick=zoo.quick, preset=cfg.preset, data_label=zoo.data_label(cfg.preset), d_vocab=d_vocab, d_model=model.config.d_model, top_k=cfg.top_k, min_gap_closed=cfg.min_gap_closed,
        losses=_losses(cfg, counts, val_counts, train_cmp, zero_layer_bigram_comparison(model, val_counts)),
        heat_tokens=tuple(_corpus.token_strs(tokenizer, heat)), heat_ids=tuple(heat), heat_corpus=heat_corpus, heat_model=heat_model,
        table=tuple(_top_next(tokenizer, current, emp, train_cmp, a, cfg.top_k) for a in frequent[: cfg.n_table]),
        scatter_tokens=tuple(_corpus.token_strs(tokenizer, scatter_ids)),
        scatter_share=np.array([float(current[a] / current.sum()) for a in scatter_ids]),
        scatter_kl=np.array([float(train_cmp.kl_per_token[a]) for a in scatter_ids]),
        curves=_curves(zoo, cfg.preset),
    )


def _losses(cfg: Config, counts: torch.Tensor, val_counts: torch.Tensor, train_cmp: BigramComparison, val_cmp: BigramComparison) -> Losses:
    h_next = entropy(counts.sum(0))
    return Losses(
        n_bigrams=int(counts.sum()),
        n_val_bigrams=int(val_counts.sum()),
        uniform=math.log(counts.shape[0]),
        unigram_entropy=h_next,
        conditional_entropy=train_cmp.conditional_entropy,
        model_loss=train_cmp.model_loss,
        kl=train_cmp.kl,
        gap_closed=entropy_gap_closed(h_next, train_cmp.conditional_entropy, train_cmp.model_loss),
        val_conditional_entropy=val_cmp.conditional_entropy,
        val_model_loss=val_cmp.model_loss,
        val_smoothed_bigram=smoothed_bigram_cross_entropy(counts, val_counts, cfg.smoothing),
        val_unigram_cross_entropy=unigram_cross_entropy(counts, val_counts),
        top1_agreement=top1_agreement(train_cmp.log_probs, counts),
    )


def _heatmaps(emp: torch.Tensor, train_cmp: BigramComparison, heat: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Corpus and model ``log P(next | current)`` on the tokens ``heat`` (both axes), floored at :data:`LOG_P_FLOOR`."""
    idx = torch.tensor(heat)
    emp = emp[idx][:, idx]
    floor = torch.full((len(heat), len(heat)), LOG_P_FLOOR, dtype=torch.float64)
    corpus = torch.where(emp > 0, emp.log(), floor)
    model = train_cmp.log_probs[idx][:, idx].clamp_min(LOG_P_FLOOR)
    return corpus.numpy(), model.double().cpu().numpy()


def _top_next(tokenizer, current: torch.Tensor, emp: torch.Tensor, train_cmp: BigramComparison, a: int, k: int) -> TopNext:
    """Current token ``a``: the model's and the corpus's (``emp``) top ``k`` next tokens."""
    mp, mi = train_cmp.log_probs[a].exp().topk(k)
    ep, ei = emp[a].topk(k)
    return TopNext(
        token=tokenizer.token_str(a),
        share=float(current[a] / current.sum()),
        model_top=tuple((tokenizer.token_str(int(i)), float(p)) for p, i in zip(mp, mi)),
        corpus_top=tuple((tokenizer.token_str(int(i)), float(p)) for p, i in zip(ep, ei)),
        kl=float(train_cmp.kl_per_token[a]),
        top1_agrees=int(mi[0]) == int(ei[0]),
    )


def _curves(zoo: Zoo, preset: str) -> Curves:
    records = zoo.metrics(preset)
    trains = [r for r in records if r.get("kind") == "train"]
    evals = [r for r in records if r.get("kind") == "eval"]
    return Curves(
        steps=tuple(r["step"] for r in trains), train_loss=np.array([r["train_loss"] for r in trains], dtype=float),
        eval_steps=tuple(r["step"] for r in evals), val_loss=np.array([r["val_loss"] for r in evals], dtype=float),
    )


# ---- claims -----------------------------------------------------------------------------------
def bigram_claim_holds(gap_closed: float, min_gap_closed: float) -> bool | None:
    """Claim 1: the model closes at least ``min_gap_closed`` of the unigram -> bigram entropy gap (``None``: no gap to close)."""
    return bool(gap_closed >= min_gap_closed) if math.isfinite(gap_closed) else None


def claims(result: Result) -> list[Claim]:
    r, gap = result.losses, result.losses.gap_closed
    return [Claim(
        key="zero_layer_bigram",
        statement="A zero-layer model's loss is about the bigram conditional entropy H(next|cur) (slightly above when d_model < vocabulary); its rows have low KL to the empirical P(next|cur)",
        source="Framework paper, zero-layer transformers; papers.md §6 claim 1",
        paper_value="loss ≈ H(next|cur)",
        measured=(
            f"loss {r.model_loss:.3f} vs H(next|cur) {r.conditional_entropy:.3f} (KL {r.kl:.3f}; H(next) {r.unigram_entropy:.3f}): "
            f"closes {100 * gap:.0f}% of the unigram→bigram gap (threshold {100 * result.min_gap_closed:.0f}%), d_model {result.d_model} < vocab {result.d_vocab}"
        ),
        holds=bigram_claim_holds(gap, result.min_gap_closed), value=float(gap) if math.isfinite(gap) else None,
        models=(result.preset,), data=result.data_label,
    )]


# ---- figures ----------------------------------------------------------------------------------
def figures(result: Result) -> list[Figure]:
    return [losses_figure(result), training_figure(result), bigram_heatmaps_figure(result), kl_by_frequency_figure(result)]


def losses_figure(result: Result) -> Figure:
    r = result.losses
    names = ["uniform (log V)", "unigram H(next)", "bigram H(next|cur)", "0L model", "held-out: 0L model", "held-out: smoothed bigram", "held-out: unigram"]
    values = [r.uniform, r.unigram_entropy, r.conditional_entropy, r.model_loss, r.val_model_loss, r.val_smoothed_bigram, r.val_unigram_cross_entropy]
    return Figure(
        key="losses",
        title="Zero-layer loss against the bigram entropy",
        caption=(
            f"Cross-entropy (nats) on the {r.n_bigrams:,} counted training bigrams: the model's {r.model_loss:.3f} against the bigram "
            f"conditional entropy {r.conditional_entropy:.3f} (KL {r.kl:.3f}) and the unigram entropy {r.unigram_entropy:.3f}. "
            f"Held out ({r.n_val_bigrams:,} bigrams): model {r.val_model_loss:.3f}, train bigram table smoothed towards the unigram {r.val_smoothed_bigram:.3f}."
        ),
        fig=plots.bars(names, {"cross-entropy": values}, title="Zero-layer model vs bigram statistics", x_title="", y_title="nats"),
    )


def training_figure(result: Result) -> Figure:
    c = result.curves
    fig = plots.lines(
        c.steps, {"train loss": c.train_loss}, title="Zero-layer training", x_title="step", y_title="loss (nats)",
        reference={"H(next|cur)": result.losses.conditional_entropy, "H(next)": result.losses.unigram_entropy},
    )
    if c.eval_steps:
        fig.add_scatter(x=list(c.eval_steps), y=c.val_loss.tolist(), mode="lines+markers", name="validation loss")
    return Figure(
        key="training",
        title="Training curve against the bigram floor",
        caption="Training and validation loss of the zero-layer model by step; dashed lines: bigram conditional entropy (the floor for any function of the current token) and unigram entropy.",
        fig=fig,
    )


def bigram_heatmaps_figure(result: Result) -> Figure:
    labels = plots.token_labels(result.heat_tokens, result.heat_ids)
    return Figure(
        key="bigram_heatmaps",
        title="log P(next | current) on the most frequent tokens",
        caption=(
            f"Rows: current token, columns: next token, for the {len(labels)} most frequent tokens; buttons switch between the corpus bigram "
            "table and the model's log_softmax(W_E W_U) (floored at -12). The two should look alike."
        ),
        fig=plots.token_circuit_heatmaps(
            {"corpus bigrams": result.heat_corpus, "0L model": result.heat_model}, labels,
            title="log P(next | current)", x_title="next token", y_title="current token", value="log P", zmid=None,
        ),
    )


def kl_by_frequency_figure(result: Result) -> Figure:
    return Figure(
        key="kl_by_frequency",
        title="Where the model departs from the bigram table",
        caption=f"KL(corpus row || model row) per current token against the token's frequency, for the {len(result.scatter_tokens)} most frequent tokens (hover for the token).",
        fig=plots.scatter(
            {"tokens": (result.scatter_share, result.scatter_kl, result.scatter_tokens)}, title="Per-token KL vs frequency",
            x_title="share of current tokens", y_title="KL (nats)", log_x=True,
        ),
    )


# ---- table and text ---------------------------------------------------------------------------
def _top_pairs(pairs: tuple[tuple[str, float], ...]) -> str:
    return ", ".join(f"{t} ({p:.2f})" for t, p in pairs)


def tables(result: Result) -> list[Table]:
    k = result.top_k
    return [Table(
        key="zero_layer_top_next",
        title="Top predicted next tokens for the most frequent tokens",
        columns=["token", "share", f"model top-{k}", f"corpus top-{k}", "KL", "top-1 agrees"],
        rows=[[row.token, round(row.share, 4), _top_pairs(row.model_top), _top_pairs(row.corpus_top), round(row.kl, 3), row.top1_agrees] for row in result.table],
        caption=f"Probabilities in brackets. Over all counted bigrams the model's top-1 next token equals the corpus's for {100 * result.losses.top1_agreement:.1f}% of current tokens (weighted by frequency).",
    )]


def intro(result: Result) -> str:
    r = result.losses
    return (
        "A transformer with no layers maps the current token straight to logits through <code>W_E W_U</code> "
        "(the paper's <code>W_U W_E</code>), so it can only learn bigram statistics. We count every bigram of the training split and compare "
        f"the model with that table: on this run its loss is {r.model_loss:.3f} nats against the bigram conditional entropy "
        f"{r.conditional_entropy:.3f} (KL {r.kl:.3f}), against {r.unigram_entropy:.3f} for a model that ignores the current token."
    )


def notes(result: Result) -> list[str]:
    out = [
        "The empirical conditional entropy of a finite sample underestimates the true one (rare bigrams are over-fitted by counting), so the gap is measured on the training bigrams, which the model saw, and the held-out numbers are shown for comparison.",
    ]
    if result.quick:
        out.append("Quick mode: tiny vocabulary, short training and few counted tokens; the numbers test the pipeline, not the paper.")
    return out
