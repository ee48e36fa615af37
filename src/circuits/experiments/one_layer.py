"""One-layer attention-only model: bigrams plus skip-trigrams, copying heads, positional heads, and no induction.

Framework paper, "One-Layer Attention-Only Transformers": with attention patterns frozen the
logits split exactly into the direct path and one term per head (path expansion); each head is
a QK circuit ``W_E W_QK W_E^T`` (which source token a destination token attends to) and an OV
circuit ``W_E W_OV W_U`` (how attending to a source changes the logits), read together as
skip-trigrams ``source ... destination -> output``. Most heads copy (positive OV eigenvalues),
a few attend by position, and none does induction, which needs a second layer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from circuits.analysis.activations.paths import term_importance
from circuits.analysis.activations.scores import current_token_scores, first_token_scores, per_position_loss, previous_token_scores
from circuits.analysis.common import head_labels
from circuits.analysis.head_roles import copying_heads, positional_heads
from circuits.analysis.probes import bos_repeats, prefixed_repeats, probe_scores, probe_token_ids, probe_token_rule
from circuits.analysis.weights.circuit_views import has_position_table, positional_attention, token_block
from circuits.analysis.weights.eigen import copying_scores, diagonal_accuracy, ov_eigenvalues
from circuits.analysis.weights.qkov import full_ov_circuit, full_qk_circuit
from circuits.analysis.weights.trigrams import skip_trigrams
from circuits.experiments import base, plots
from circuits.experiments import corpus as _corpus
from circuits.experiments.base import Figure, Table
from circuits.experiments.one_layer_claims import (  # noqa: F401  (verdicts and claims re-exported)
    COPYING_THRESHOLD, INDUCTION_MIN_DROP, INDUCTION_MIN_SCORE, beats_bigram_holds, claims, copying_holds, no_induction_holds, shows_induction,
)
from circuits.training.zoo import Zoo

NAME = "one_layer"
TITLE = "One-layer attention-only model: skip-trigrams, copying and positional heads"
COMPUTE_S = 0.5  #: about the seconds compute takes on one core in the full report (2026-12-01); orders the report's work only
SEEDED = True  #: claims tested on several seeds (circuits report --seeds; see circuits.experiments.base)



@dataclass(frozen=True, kw_only=True)
class Config:
    preset: str = "attn-only-1l"  #: the one-layer model
    preset_0l: str = "attn-only-0l"  #: zero-layer model trained on the same data (claim 2)
    preset_2l: str = "attn-only-2l"  #: two-layer model whose induction heads claim 4 compares against
    n_tokens: int = 30  #: most frequent tokens shown on the QK/OV heatmap axes
    frequency_tokens: int = 1_000_000  #: training tokens counted to find the most frequent ones
    n_windows: int = 16  #: validation windows for the path expansion and the attention scores
    n_trigrams: int = 8  #: skip-trigrams listed per head
    n_positions: int = 32  #: query/key positions shown in the positional-attention heatmaps
    seq_len: int = 50  #: length of the random sequence R (capped at (n_ctx - 1) // 3 so that a natural prefix fits before R + R)
    n_sequences: int = 20  #: random repeated sequences per layout for the induction comparison
    seed: int = 0  #: seed of the random repeated sequences
    copying_threshold: float = COPYING_THRESHOLD  #: a head "copies" when its OV eigenvalue positivity exceeds this (shared with MiniLM's claim)
    positional_threshold: float = 0.5  #: a head is "primarily positional" when its previous + current-token attention exceeds this
    induction_ratio: float = 0.5  #: claim 4 holds when the 1L's best induction score and loss drop stay below this fraction of the 2L's

    @classmethod
    def quick(cls) -> "Config":
        return cls(n_tokens=12, frequency_tokens=100_000, n_windows=4, n_trigrams=4, n_positions=16, seq_len=20, n_sequences=4)


# ---- the result -------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class PathTerms(base.Result):
    """Path expansion with frozen patterns (nats): the losses of the direct path and of the model, and each head's term."""

    uniform_loss: float
    direct_loss: float  #: the direct path W_E W_U alone
    full_loss: float  #: the direct path plus every head term (the model)
    head_added: np.ndarray  #: [head] loss reduction when the head's term is added to the direct path
    head_removed: np.ndarray  #: [head] loss increase when the head's term is removed from the full sum


@dataclass(frozen=True, kw_only=True)
class Copying(base.Result):
    """The full OV circuit's eigenvalues ``[head, d_head]`` and copying scores ``[head]``, trained and at initialisation."""

    eig_re: np.ndarray
    eig_im: np.ndarray
    eig_init_re: np.ndarray
    eig_init_im: np.ndarray
    scores: np.ndarray  #: sum(eigenvalues) / sum(|eigenvalues|)
    scores_init: np.ndarray
    diag_top1: np.ndarray  #: how often a token's own logit is the top-1 output of its OV row
    diag_top5: np.ndarray


@dataclass(frozen=True, kw_only=True)
class Attention(base.Result):
    """Where the heads attend: the position-only pattern of the weights, and mean attention by relative position on text."""

    scheme: str  #: the model's positional scheme
    n_positions: int
    patterns: np.ndarray  #: [head, query_pos, key_pos], empty when the model has no position table
    previous_token: np.ndarray  #: [head]
    current_token: np.ndarray
    first_token: np.ndarray


@dataclass(frozen=True, kw_only=True)
class SkipTrigram(base.Result):
    source: str
    destination: str
    output: str
    qk: float  #: full QK circuit [destination, source]
    ov: float  #: full OV circuit [source, output]


@dataclass(frozen=True, kw_only=True)
class Induction(base.Result):
    """One layer against two on repeated random tokens: induction scores and losses after a natural-text prefix (the
    verdict's probe) and, ``*_bos``, right after BOS (:mod:`circuits.analysis.probes`)."""

    seq_len: int
    layout: str  #: the natural-prefix probe, in words
    probe_rule: str  #: how R is drawn
    scores_1l: np.ndarray  #: [head]
    scores_2l: np.ndarray  #: [layer, head]
    repeat_loss_1l: np.ndarray  #: [repeat] mean loss of each repeat
    repeat_loss_2l: np.ndarray
    scores_1l_bos: np.ndarray  #: [head] on [BOS] + R + R
    scores_2l_bos: np.ndarray  #: [layer, head]
    repeat_loss_1l_bos: np.ndarray
    repeat_loss_2l_bos: np.ndarray
    position_loss_1l: np.ndarray  #: [pos] loss of predicting the token at position pos + 1, on [BOS] + R + R
    position_loss_2l: np.ndarray

    def drops(self, bos: bool = False) -> tuple[float, float]:
        """Loss drop (nats) from the first repeat to the second, 1L and 2L (``bos=True``: on [BOS] + R + R)."""
        one, two = (self.repeat_loss_1l_bos, self.repeat_loss_2l_bos) if bos else (self.repeat_loss_1l, self.repeat_loss_2l)
        return one[0] - one[1], two[0] - two[1]


@dataclass(frozen=True, kw_only=True)
class Result(base.Result):
    quick: bool
    presets: tuple[str, str, str]  #: the 1L, 0L and 2L zoo models read
    data_labels: tuple[str, str, str]  #: what each was trained on, in words
    heads: tuple[str, ...]
    d_head: int
    n_windows: int
    n_trigrams: int
    copying_threshold: float
    positional_threshold: float
    induction_ratio: float
    tokens: tuple[str, ...]  #: the most frequent tokens, on both axes of the circuit heatmaps
    token_ids: tuple[int, ...]
    ov: np.ndarray  #: [head, source token, output token] full OV circuit on ``tokens``
    qk: np.ndarray  #: [head, query token, key token] full QK circuit on ``tokens``
    paths: PathTerms
    copying: Copying
    attention: Attention
    trigrams: tuple[tuple[SkipTrigram, ...], ...]  #: per head, strongest first
    trigram_copy_share: np.ndarray  #: [head] share of the listed skip-trigrams whose output is the source token
    val_loss_1l: float
    val_loss_0l: float
    induction: Induction

    @property
    def n_copying(self) -> int:
        return len(copying_heads(self.heads, self.copying.scores, self.copying_threshold))


# ---- compute ----------------------------------------------------------------------------------
def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().double().numpy()


def compute(cfg: Config, zoo: Zoo) -> Result:
    model, tokenizer = zoo.model(cfg.preset)
    mcfg = model.config
    data = _corpus.token_data(zoo, cfg.preset, tokenizer)
    freq = _corpus.frequent_tokens(_corpus.stream(data.train, cfg.frequency_tokens), mcfg.d_vocab, cfg.n_tokens, exclude=(tokenizer.bos_id,))
    idx = torch.tensor(freq)
    windows = _corpus.validation_windows(zoo, cfg.preset, tokenizer, cfg.n_windows)
    with torch.no_grad():
        trigrams = [skip_trigrams(model, tokenizer, 0, h, k=cfg.n_trigrams) for h in range(mcfg.n_heads)]
        return Result(
            quick=zoo.quick, presets=(cfg.preset, cfg.preset_0l, cfg.preset_2l),
            data_labels=tuple(zoo.data_label(p) for p in (cfg.preset, cfg.preset_0l, cfg.preset_2l)), heads=tuple(head_labels(model)), d_head=mcfg.d_head, n_windows=cfg.n_windows,
            n_trigrams=cfg.n_trigrams, copying_threshold=cfg.copying_threshold, positional_threshold=cfg.positional_threshold,
            induction_ratio=cfg.induction_ratio, tokens=tuple(_corpus.token_strs(tokenizer, freq)), token_ids=tuple(freq),
            ov=_np(token_block(full_ov_circuit(model, 0, None), idx)), qk=_np(token_block(full_qk_circuit(model, 0, None), idx)),
            paths=_path_terms(model, windows),
            copying=_copying(model, zoo.model(cfg.preset, step=0)[0]),
            attention=_attention(model, windows, min(cfg.n_positions, mcfg.n_ctx)),
            trigrams=tuple(tuple(SkipTrigram(source=t.source_str, destination=t.destination_str, output=t.output_str, qk=t.qk, ov=t.ov)
                                 for t in table) for table in trigrams),
            trigram_copy_share=np.array([sum(t.source == t.output for t in table) / max(1, len(table)) for table in trigrams], dtype=float),
            val_loss_1l=_final_val_loss(zoo, cfg.preset), val_loss_0l=_final_val_loss(zoo, cfg.preset_0l),
            induction=_induction(cfg, model, zoo.model(cfg.preset_2l)[0], data),
        )


def _final_val_loss(zoo: Zoo, preset: str) -> float:
    evals = [r for r in zoo.metrics(preset) if r.get("kind") == "eval"]
    return float(evals[-1]["val_loss"]) if evals else float("nan")


def _path_terms(model, windows: torch.Tensor) -> PathTerms:
    """Direct path and one term per head (patterns frozen), on the validation windows."""
    ti = term_importance(model, windows)
    added, removed = dict(zip(ti.labels, ti.term_added.tolist())), dict(zip(ti.labels, ti.term_removed.tolist()))
    heads = head_labels(model)
    return PathTerms(
        uniform_loss=ti.uniform_loss, direct_loss=float(ti.loss_by_order[0]), full_loss=ti.full_loss,
        head_added=np.array([added[h] for h in heads], dtype=float), head_removed=np.array([removed[h] for h in heads], dtype=float),
    )


def _copying(model, init) -> Copying:
    """OV eigenvalues and copying scores of the trained model and of its initialisation (``init``), and OV diagonal accuracy."""
    eig, eig_init = ov_eigenvalues(model)[0], ov_eigenvalues(init)[0]  # [head, d_head]
    return Copying(
        eig_re=_np(eig.real), eig_im=_np(eig.imag), eig_init_re=_np(eig_init.real), eig_init_im=_np(eig_init.imag),
        scores=_np(copying_scores(model)[0]), scores_init=_np(copying_scores(init)[0]),
        diag_top1=_np(diagonal_accuracy(model, 1, layer=0)), diag_top5=_np(diagonal_accuracy(model, 5, layer=0)),
    )


def _attention(model, windows: torch.Tensor, n_positions: int) -> Attention:
    """The position-only attention pattern (when the model has a position table) and attention by relative position on text."""
    patterns = _np(positional_attention(model, 0, n_positions)) if has_position_table(model) else np.zeros(0)
    return Attention(
        scheme=model.config.positional, n_positions=n_positions, patterns=patterns,
        previous_token=_np(previous_token_scores(model, windows)[0]), current_token=_np(current_token_scores(model, windows)[0]),
        first_token=_np(first_token_scores(model, windows)[0]),
    )


def _induction(cfg: Config, model, model_2l, data) -> Induction:
    """Induction scores and repeated-token losses of the 1L and 2L models on the same probes: natural prefix + R + R and [BOS] + R + R."""
    seq_len = min(cfg.seq_len, (model.config.n_ctx - 1) // 3, (model_2l.config.n_ctx - 1) // 3)
    allowed = probe_token_ids(data.train, model.config.d_vocab, data.bos_id)
    common = dict(batch=cfg.n_sequences, seed=cfg.seed, bos=data.bos_id)
    prefix = prefixed_repeats(allowed, data.val, seq_len, 2, n_ctx=min(model.config.n_ctx, model_2l.config.n_ctx), **common)
    classic = bos_repeats(allowed, seq_len, 2, **common)
    (p1, p2), (b1, b2) = [(probe_scores(model, p), probe_scores(model_2l, p)) for p in (prefix, classic)]
    return Induction(
        seq_len=seq_len, layout=prefix.describe(), probe_rule=probe_token_rule(len(allowed), model.config.d_vocab),
        scores_1l=_np(p1.induction[0]), scores_2l=_np(p2.induction), repeat_loss_1l=_np(p1.loss_per_repeat), repeat_loss_2l=_np(p2.loss_per_repeat),
        scores_1l_bos=_np(b1.induction[0]), scores_2l_bos=_np(b2.induction),
        repeat_loss_1l_bos=_np(b1.loss_per_repeat), repeat_loss_2l_bos=_np(b2.loss_per_repeat),
        position_loss_1l=_np(per_position_loss(model, classic.tokens)), position_loss_2l=_np(per_position_loss(model_2l, classic.tokens)),
    )


# ---- figures ----------------------------------------------------------------------------------
def figures(result: Result) -> list[Figure]:
    out = [path_losses_figure(result), path_heads_figure(result), ov_circuits_figure(result), qk_circuits_figure(result),
           ov_eigenvalues_figure(result), copying_scores_figure(result)]
    if result.attention.patterns.size:
        out.append(positional_patterns_figure(result))
    return out + [attention_by_position_figure(result), repeated_tokens_figure(result), induction_scores_figure(result)]


def path_losses_figure(result: Result) -> Figure:
    p = result.paths
    return Figure(
        key="path_expansion_losses",
        title="Path expansion: direct path and heads",
        caption=(
            f"Loss (nats) on {result.n_windows} validation windows of the logits rebuilt from path terms (patterns frozen): uniform "
            f"{p.uniform_loss:.3f}, direct path W_E W_U alone {p.direct_loss:.3f}, direct path plus all {len(result.heads)} head terms "
            f"(the model) {p.full_loss:.3f}. The heads' terms lower the loss by {p.direct_loss - p.full_loss:.3f} nats."
        ),
        fig=plots.bars(
            ["uniform", "direct path", "direct + heads (model)"], {"loss": [p.uniform_loss, p.direct_loss, p.full_loss]},
            title="Loss of path-expansion terms", x_title="terms kept", y_title="loss (nats)",
        ),
    )


def path_heads_figure(result: Result) -> Figure:
    return Figure(
        key="path_expansion_heads",
        title="Each head's term",
        caption="Per head: loss reduction when its term is added to the direct path alone, and loss increase when it is removed from the full sum.",
        fig=plots.bars(
            result.heads, {"added to direct path": result.paths.head_added, "removed from model": result.paths.head_removed},
            title="Head terms of the path expansion", x_title="head", y_title="Δ loss (nats)",
        ),
    )


_CIRCUIT_CAPTIONS = {
    "ov": ("Full OV circuit W_E W_OV W_U (paper W_U W_OV W_E) of each head on the {n} most frequent tokens: row = attended "
           "(source) token, column = output token, value = logit change. Copying heads show a positive diagonal."),
    "qk": ("Full QK circuit W_E W_QK W_E^T (paper W_E^T W_QK W_E) of each head on the {n} most frequent tokens: row = query "
           "(destination) token, column = key (source) token, value = attention logit before the 1/sqrt(d_head) scale."),
}


def ov_circuits_figure(result: Result) -> Figure:
    return _circuit_figure(result, "ov", result.ov, x_title="output token", y_title="source token (attended to)", value="logit change")


def qk_circuits_figure(result: Result) -> Figure:
    return _circuit_figure(result, "qk", result.qk, x_title="key (source) token", y_title="query (destination) token", value="attention logit")


def _circuit_figure(result: Result, kind: str, circuits: np.ndarray, *, x_title: str, y_title: str, value: str) -> Figure:
    """Full OV or QK circuits ``[head, token, token]`` on the frequent tokens, the same tokens in the same order on both axes."""
    labels = plots.token_labels(result.tokens, result.token_ids)
    return Figure(
        key=f"{kind}_circuits",
        title=f"{kind.upper()} circuits on the most frequent tokens",
        caption=_CIRCUIT_CAPTIONS[kind].format(n=len(labels)),
        fig=plots.token_circuit_heatmaps(dict(zip(result.heads, circuits)), labels, title=f"{kind.upper()} circuit", x_title=x_title,
                                         y_title=y_title, value=value),
    )


def _unit_scaled(re: np.ndarray, im: np.ndarray) -> tuple[list[float], list[float]]:
    """Complex points ``re + i im`` divided by their largest modulus."""
    z = np.asarray(re) + 1j * np.asarray(im)
    scale = np.abs(z).max() or 1.0
    return (z.real / scale).tolist(), (z.imag / scale).tolist()


def ov_eigenvalues_figure(result: Result) -> Figure:
    c = result.copying
    panels = {
        f"{name} ({c.scores[h]:+.2f})": {"trained": _unit_scaled(c.eig_re[h], c.eig_im[h]), "initialisation": _unit_scaled(c.eig_init_re[h], c.eig_init_im[h])}
        for h, name in enumerate(result.heads)
    }
    return Figure(
        key="ov_eigenvalues",
        title="OV eigenvalues in the complex plane, trained vs initialisation",
        caption=(
            f"The {result.d_head} non-zero eigenvalues of each head's full OV circuit (computed as those of the d_head x d_head W_O W_U W_E W_V), "
            "each set scaled by its largest modulus; panel titles give the trained copying score Σλ/Σ|λ|. At initialisation they scatter "
            "symmetrically (Ginibre-like); a copying head's move to the positive real axis."
        ),
        fig=plots.complex_scatter_grid(panels, title="OV circuit eigenvalues (scaled)"),
    )


def copying_scores_figure(result: Result) -> Figure:
    c = result.copying
    hover = {"trained": [f"top-1 diagonal accuracy {a:.2f}, top-5 {b:.2f}" for a, b in zip(c.diag_top1, c.diag_top5)]}
    return Figure(
        key="copying_scores",
        title="Copying scores",
        caption=(
            f"Σλ/Σ|λ| of each head's full OV circuit: {result.n_copying} of {len(result.heads)} trained heads exceed {result.copying_threshold} "
            f"(mean {c.scores.mean():+.2f}); at initialisation the mean |score| is {np.abs(c.scores_init).mean():.2f}. "
            "Hover: how often a token's own logit is the top-1 / top-5 output of its OV row."
        ),
        fig=plots.bars(result.heads, {"trained": c.scores, "initialisation": c.scores_init}, title="OV copying score Σλ/Σ|λ|",
                       x_title="head", y_title="score", hover_text=hover),
    )


def positional_patterns_figure(result: Result) -> Figure:
    a = result.attention
    pos = [str(i) for i in range(a.n_positions)]
    return Figure(
        key="positional_patterns",
        title="Position-only attention of each head",
        caption=(
            f"softmax of the positional QK circuit W_pos W_QK W_pos^T / sqrt(d_head) ({a.scheme} positions, causal mask) on the first "
            f"{a.n_positions} positions: the attention a head would pay if all tokens were equal. A previous-token head shows the sub-diagonal."
        ),
        fig=plots.heatmap_selector(
            dict(zip(result.heads, a.patterns)), pos, pos, title="Positional attention", x_title="key position",
            y_title="query position", value="attention", zmid=None,
        ),
    )


def attention_by_position_figure(result: Result) -> Figure:
    a = result.attention
    positional = positional_heads(result.heads, a.previous_token, a.current_token, result.positional_threshold)
    return Figure(
        key="attention_by_position",
        title="Where each head attends on text",
        caption=(
            f"Mean attention to the previous token, the current token and the first (BOS) token on {result.n_windows} validation windows. "
            f"Primarily positional heads (previous + current > {result.positional_threshold}): {', '.join(positional) or 'none'}."
        ),
        fig=plots.bars(result.heads, {"previous token": a.previous_token, "current token": a.current_token, "first token": a.first_token},
                       title="Attention by relative position", x_title="head", y_title="mean attention"),
    )


def repeated_tokens_figure(result: Result) -> Figure:
    ind = result.induction
    positions = list(range(1, len(ind.position_loss_1l) + 1))
    fig = plots.lines(positions, {"1L": ind.position_loss_1l, "2L": ind.position_loss_2l}, title="Per-position loss on [BOS] + R + R",
                      x_title="position of the predicted token", y_title="loss (nats)")
    fig.add_vline(x=ind.seq_len + 1, line_dash="dot", annotation_text="second repeat starts")
    return Figure(
        key="repeated_tokens",
        title="Loss on repeated random tokens: one layer vs two",
        caption=(
            f"Loss at each position of [BOS] + R + R ({ind.seq_len} random tokens, repeated once; {ind.probe_rule}). First → second "
            f"repeat: 1L {ind.repeat_loss_1l_bos[0]:.2f} → {ind.repeat_loss_1l_bos[1]:.2f}, 2L {ind.repeat_loss_2l_bos[0]:.2f} → "
            f"{ind.repeat_loss_2l_bos[1]:.2f} nats; after a natural prefix ({ind.layout}) 1L {ind.repeat_loss_1l[0]:.2f} → "
            f"{ind.repeat_loss_1l[1]:.2f}, 2L {ind.repeat_loss_2l[0]:.2f} → {ind.repeat_loss_2l[1]:.2f}. Best induction score after a "
            f"natural prefix: 1L {ind.scores_1l.max():.2f}, 2L {ind.scores_2l.max():.2f}."
        ),
        fig=fig,
    )


def induction_scores_figure(result: Result) -> Figure:
    ind = result.induction
    labels = [f"1L {h}" for h in result.heads] + [f"2L L{l}H{h}" for l in range(ind.scores_2l.shape[0]) for h in range(ind.scores_2l.shape[1])]
    series = {"natural prefix + R + R": list(ind.scores_1l) + list(ind.scores_2l.reshape(-1)),
              "[BOS] + R + R": list(ind.scores_1l_bos) + list(ind.scores_2l_bos.reshape(-1))}
    return Figure(
        key="induction_scores",
        title="Induction scores, one layer vs two",
        caption=("Mean attention from each token of the second repeat to the token after its earlier copy (offset −(T−1)), for every "
                 f"head of the 1L and 2L models, after a natural-text prefix ({ind.layout}) and right after BOS."),
        fig=plots.bars(labels, series, title="Induction score per head", x_title="head", y_title="score"),
    )


# ---- table and text ---------------------------------------------------------------------------
def tables(result: Result) -> list[Table]:
    rows = [[h, f"{t.source} … {t.destination} → {t.output}", round(t.qk, 2), round(t.ov, 2), t.source == t.output]
            for h, table in zip(result.heads, result.trigrams) for t in table]
    return [Table(
        key="skip_trigrams",
        title="Strongest skip-trigrams of each head",
        columns=["head", "source … destination → output", "QK[destination, source]", "OV[source, output]", "copies source"],
        rows=rows,
        caption=(
            f"Ranked by max(QK, 0) · max(OV, 0) over all vocabulary triples, {result.n_trigrams} per head; "
            f"share that copy the source token, per head: {', '.join(f'{h} {s:.0%}' for h, s in zip(result.heads, result.trigram_copy_share))}."
        ),
    )]


def intro(result: Result) -> str:
    p, ind = result.paths, result.induction
    return (
        "With attention patterns frozen, the one-layer model's logits are the direct path plus one term per head. Each head is read "
        "through its QK circuit (which tokens attend to which) and OV circuit (what attending does to the logits), and both together "
        f"as skip-trigrams. On this run the heads lower the loss from {p.direct_loss:.2f} (direct path alone) to {p.full_loss:.2f} nats, "
        f"{result.n_copying} of {len(result.heads)} heads copy, and the best induction score is {ind.scores_1l.max():.2f} against "
        f"{ind.scores_2l.max():.2f} in the two-layer model."
    )


def notes(result: Result) -> list[str]:
    return ["Quick mode: tiny, briefly trained models; the numbers test the pipeline, not the paper."] if result.quick else []
