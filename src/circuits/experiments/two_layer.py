"""Two-layer attention-only model: previous-token heads, induction heads and the K-composition between them.

Framework paper, two-layer section, and ARENA's reproduction: on the trained ``attn-only-2l``
preset we find the previous-token head (layer 0, on corpus text) and the induction heads
(layer 1, on repeated random tokens), show their attention patterns, measure Q/K/V-composition
against the random baseline, place every layer-1 head on the eigenvalue "corner" plot, ablate each
layer-0 head, measure how well the induction heads' OV circuits copy, split the loss by path order
(term importance), and compare the loss on the first and second repeat of random tokens.

Probes (:mod:`circuits.analysis.probes`): the random tokens ``R`` come from the ``d_vocab // 2``
most frequent tokens of the training split, and every repeat score is measured in two layouts,
``[BOS] + P validation tokens + R + R`` (``P`` drawn per sequence; the layout the verdicts use)
and the classic ``[BOS] + R + R`` beside it, so a head that only matches against the window start
shows up. TransformerLens's ``detect_head`` and the appendix's literal prefix-matching offset are
reported beside our scores. The analysis itself (picking heads, composition, ablations, summed
OV) is :mod:`circuits.analysis.induction_circuit`; the claims and their verdicts are
:mod:`circuits.experiments.two_layer_claims`, the figures :mod:`circuits.experiments.two_layer_figures`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from circuits.analysis.activations.paths import term_importance
from circuits.analysis.activations.scores import per_position_loss, previous_token_scores
from circuits.analysis.induction_circuit import ablated_probe_scores, first_order_by_layer, mechanism, summed_ov_accuracy, top_heads_in_layer
from circuits.analysis.probes import (
    RepeatProbe, bos_repeats, detect_head_scores, near_zero_threshold, prefixed_repeats, probe_scores, probe_token_ids, probe_token_rule,
)
from circuits.analysis.weights.composition import COMPOSITION_KINDS as KINDS
from circuits.analysis.weights.eigen import copying_scores, diagonal_accuracy, induction_qk_positivity
from circuits.experiments import base
from circuits.experiments.base import Table
from circuits.experiments.corpus import token_data
from circuits.experiments.two_layer_claims import claims, label  # noqa: F401  (claims: re-exported)
from circuits.experiments.two_layer_figures import figures  # noqa: F401  (re-exported)
from circuits.experiments.section_views import two_layer_views as views  # noqa: F401  (the section's interactive views)
from circuits.experiments.util import eval_tokens, fmt, training_data_note
from circuits.training.zoo import Zoo
from circuits.views.from_model import attention_patterns

NAME = "two_layer"
TITLE = "Two-layer attention-only model: induction heads"
COMPUTE_S = 3  #: about the seconds compute takes on one core in the full report (2026-12-01); orders the report's work only
SEEDED = True  #: claims tested on several seeds (circuits report --seeds; see circuits.experiments.base)
Head = tuple[int, int]


@dataclass(frozen=True, kw_only=True)
class Config:
    """Settings of the two-layer analysis (defaults: the full report)."""

    preset: str = "attn-only-2l"  #: the zoo model analysed
    eval_windows: int = 32  #: validation windows of corpus text (previous-token scores, TL's detector, term importance)
    seq_len: int = 50  #: length T of the random sequence R, capped at (n_ctx - 1) // 3 so that a natural prefix fits before R + R
    n_sequences: int = 20  #: repeated random sequences per layout
    pattern_seq_len: int = 15  #: T of the single sequence whose attention patterns are plotted
    pm_seq_len: int = 25  #: T of the 4-repeat prefix-matching probe (the In-context Learning paper's 25), capped to fit
    induction_threshold: float = 0.3  #: a head in layer >= 1 with at least this induction score counts as an induction head
    previous_token_threshold: float = 0.4  #: ARENA's detector threshold for a previous-token head
    baseline_samples: int = 1000  #: random head pairs for the composition baseline
    term_windows: int = 16  #: validation windows in each of the two disjoint halves used for term importance
    term_len: int = 64  #: tokens per term-importance window
    seed: int = 0  #: seed of the random tokens and the baseline

    @classmethod
    def quick(cls) -> "Config":
        return cls(eval_windows=4, seq_len=20, n_sequences=8, pattern_seq_len=8, baseline_samples=100, term_windows=2, term_len=24)


# ---- the typed result --------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class Composition(base.Result):
    """One kind of composition (Q, K or V) between the layers: every pair's raw score and the random baseline."""

    scores: np.ndarray  #: [l1, h1, l2, h2], writer L{l1}H{h1} into reader L{l2}H{h2}
    baseline_mean: float  #: mean score of random head pairs of this shape
    baseline_std: float
    pair: float  #: previous-token head -> top induction head
    z: float  #: (pair - baseline_mean) / baseline_std


@dataclass(frozen=True, kw_only=True)
class OVAccuracy(base.Result):
    """Diagonal accuracy of the full OV circuits ``W_E W_OV W_U``: every head, and summed over sets of heads."""

    top1: np.ndarray  #: [layer, head]
    top5: np.ndarray  #: [layer, head]
    summed_top1: float  #: summed OV of the induction heads
    summed_top5: float
    top2_heads: tuple[Head, ...]  #: the two heads of the induction head's layer with the highest induction scores
    top2_top1: float  #: summed OV of those two heads
    top2_top5: float


@dataclass(frozen=True, kw_only=True)
class PathTerm(base.Result):
    """One path term's effect on the loss, in nats (positive: the term helps)."""

    label: str
    order: int
    term_added: float  #: loss reduction when added alone to all lower-order terms
    term_removed: float  #: loss increase when removed from the full sum


@dataclass(frozen=True, kw_only=True)
class Terms(base.Result):
    """Term importance by path order (patterns frozen), in nats."""

    loss_by_order: np.ndarray  #: [order]
    marginal_by_order: np.ndarray  #: [order], loss reduction from adding all terms of that order
    first_order_by_layer: np.ndarray  #: [layer], sum of the single-head terms' effects
    full_loss: float
    uniform_loss: float
    top_terms: tuple[PathTerm, ...]  #: the 12 largest single terms by term_added
    n_tokens: int


@dataclass(frozen=True, kw_only=True)
class Result(base.Result):
    """Everything the two-layer section shows: scores, chosen heads, composition, eigen-corner, ablations, OV accuracy, terms.

    Repeat scores without a suffix are on the natural-prefix probe (the verdicts'), ``*_bos`` on the classic ``[BOS] + R + R``.
    """

    preset: str
    n_layers: int
    n_heads: int
    d_model: int
    d_vocab: int
    seq_len: int  #: T of R in both layouts, after capping to the context
    n_sequences: int
    induction_threshold: float
    previous_token_threshold: float
    quick: bool
    data_note: str | None  #: what the model was trained on (from the zoo), for the notes
    data_label: str  #: the same in a few words, for the claim rows
    probe_rule: str  #: how the random tokens are drawn
    probe_layout: str  #: the natural-prefix layout, in words
    bos_layout: str  #: the classic layout, in words
    previous_token: np.ndarray  #: [layer, head] on corpus text
    detect_previous: np.ndarray  #: [layer, head] TransformerLens detect_head("previous_token_head") on the same text
    detect_induction: np.ndarray  #: [layer, head] TransformerLens detect_head("induction_head") on the same text
    induction: np.ndarray  #: [layer, head] on the natural-prefix probe
    induction_bos: np.ndarray  #: [layer, head] on [BOS] + R + R
    uniform_level: float  #: induction score of a uniformly attending head on the natural-prefix probe ("about 0")
    uniform_level_bos: float
    pm_seq_len: int
    prefix_matching: np.ndarray  #: [layer, head] on [BOS] + P + R x 4, tokens after every earlier copy (ours)
    prefix_matching_literal: np.ndarray  #: [layer, head] the same, tokens before every earlier copy (appendix wording)
    previous_token_head: Head
    induction_head: Head  #: the top induction head (layers >= 1)
    induction_heads: tuple[Head, ...]  #: heads with induction score >= the threshold (at least the top one)
    composition: dict[str, Composition]  #: keyed "Q", "K", "V"
    max_K_into_induction: float
    max_Q_into_induction: float
    pattern_tokens: tuple[str, ...]
    induction_pattern: np.ndarray  #: [query_pos, key_pos] of the induction head on one natural-prefix sequence
    previous_token_pattern: np.ndarray  #: [query_pos, key_pos] of the previous-token head
    ov_positivity: np.ndarray  #: [layer, head] OV copying (eigenvalue positivity of W_E W_OV W_U)
    qk_corner: np.ndarray  #: [layer, head] QK positivity of the K-composition term with the previous-token head
    ablation: dict[str, np.ndarray]  #: ablated head label -> induction scores [layer, head] (natural-prefix probe)
    ablation_bos: dict[str, np.ndarray]  #: the same on [BOS] + R + R
    ov_accuracy: OVAccuracy
    terms: Terms  #: on both halves of the term-importance windows together
    terms_halves: tuple[Terms, Terms]  #: on each half alone (disjoint windows), to show the estimate's stability
    loss_per_repeat: np.ndarray  #: [repeat] mean loss on the natural-prefix probe
    loss_per_repeat_bos: np.ndarray  #: [repeat] on [BOS] + R + R
    loss_per_position: np.ndarray  #: [pos - 1] on [BOS] + R + R
    text_tokens: tuple[str, ...] = ()  #: the first validation window as text (the interactive attention view; empty in older caches)
    text_patterns: np.ndarray | None = None  #: [layer, head, query_pos, key_pos] every head's attention on that window


# ---- compute -----------------------------------------------------------------------------------
@torch.no_grad()
def compute(cfg: Config, zoo: Zoo) -> Result:
    model, tok = zoo.model(cfg.preset)
    mcfg = model.config
    if mcfg.n_layers < 2:
        raise ValueError(f"two_layer needs a model with at least 2 layers, {cfg.preset} has {mcfg.n_layers}")
    seq_len = min(cfg.seq_len, (mcfg.n_ctx - 1) // 3)
    text = eval_tokens(zoo, cfg.preset, tok, cfg.eval_windows)
    probes = _probes(cfg, zoo, tok, mcfg, seq_len)
    previous = previous_token_scores(model, text).numpy()
    scores = {k: probe_scores(model, p) for k, p in probes.items() if k != "allowed"}
    induction = scores["prefix"].induction.numpy()
    mech = mechanism(model, previous, induction, threshold=cfg.induction_threshold, baseline_samples=cfg.baseline_samples, seed=cfg.seed)
    prev_head, ind_head = tuple(mech["previous_token_head"]), tuple(mech["induction_head"])
    ind_heads = tuple(tuple(x) for x in mech["induction_heads"])
    pat_len = min(cfg.pattern_seq_len, seq_len)
    return Result(
        preset=cfg.preset, n_layers=mcfg.n_layers, n_heads=mcfg.n_heads, d_model=mcfg.d_model, d_vocab=mcfg.d_vocab,
        seq_len=seq_len, n_sequences=cfg.n_sequences, induction_threshold=cfg.induction_threshold,
        previous_token_threshold=cfg.previous_token_threshold, quick=bool(zoo.quick), data_note=training_data_note(zoo, cfg.preset),
        data_label=zoo.data_label(cfg.preset), probe_rule=probe_token_rule(len(probes["allowed"]), mcfg.d_vocab),
        probe_layout=probes["prefix"].describe(), bos_layout=probes["bos"].describe(),
        previous_token=previous.astype(float), detect_previous=detect_head_scores(model, text, "previous_token_head").double().numpy(),
        detect_induction=detect_head_scores(model, text, "induction_head").double().numpy(),
        induction=induction.astype(float), induction_bos=scores["bos"].induction.double().numpy(),
        uniform_level=near_zero_threshold(probes["prefix"]), uniform_level_bos=near_zero_threshold(probes["bos"]),
        pm_seq_len=probes["pm"].seq_len, prefix_matching=scores["pm"].prefix_matching.double().numpy(),
        prefix_matching_literal=scores["pm"].prefix_matching_literal.double().numpy(),
        previous_token_head=prev_head, induction_head=ind_head, induction_heads=ind_heads,
        composition=_composition(mech), max_K_into_induction=mech["max_K_into_induction"], max_Q_into_induction=mech["max_Q_into_induction"],
        **_patterns(model, tok, _pattern_probe(cfg, zoo, tok, mcfg, probes["allowed"], pat_len), prev_head, ind_head),
        ov_positivity=copying_scores(model).double().numpy(), qk_corner=induction_qk_positivity(model).double().numpy()[prev_head],
        ablation={k: v.astype(float) for k, v in ablated_probe_scores(model, ind_head[0], probes["prefix"]).items()},
        ablation_bos={k: v.astype(float) for k, v in ablated_probe_scores(model, ind_head[0], probes["bos"]).items()},
        ov_accuracy=_ov_accuracy(model, induction, ind_head[0], ind_heads),
        **_term_sets(model, text, cfg.term_windows, cfg.term_len),
        loss_per_repeat=scores["prefix"].loss_per_repeat.double().numpy(), loss_per_repeat_bos=scores["bos"].loss_per_repeat.double().numpy(),
        loss_per_position=per_position_loss(model, probes["bos"].tokens).double().numpy(),
        text_tokens=tuple(tok.str_tokens(text[0])), text_patterns=attention_patterns(model, text[:1]).double().numpy(),
    )


def _probes(cfg: Config, zoo: Zoo, tok, mcfg, seq_len: int) -> dict:
    """The probe tokens and the three probes: natural prefix + R + R, [BOS] + R + R, natural prefix + R x 4 (prefix matching)."""
    data = token_data(zoo, cfg.preset, tok)
    allowed = probe_token_ids(data.train, mcfg.d_vocab, data.bos_id)
    pm_len = min(cfg.pm_seq_len, (mcfg.n_ctx - 1) // 5)
    common = dict(batch=cfg.n_sequences, seed=cfg.seed, bos=data.bos_id)
    return {
        "allowed": allowed,
        "prefix": prefixed_repeats(allowed, data.val, seq_len, 2, n_ctx=mcfg.n_ctx, **common),
        "bos": bos_repeats(allowed, seq_len, 2, **common),
        "pm": prefixed_repeats(allowed, data.val, pm_len, 4, n_ctx=mcfg.n_ctx, **{**common, "seed": cfg.seed + 1}),
    }


def _pattern_probe(cfg: Config, zoo: Zoo, tok, mcfg, allowed, pat_len: int) -> RepeatProbe:
    """One natural-prefix sequence (prefix of at most ``pat_len`` tokens), cut after its second repeat, for the pattern figure."""
    data = token_data(zoo, cfg.preset, tok)
    probe = prefixed_repeats(allowed, data.val, pat_len, 2, 1, cfg.seed, data.bos_id, mcfg.n_ctx, max_prefix=min(pat_len, mcfg.n_ctx - 1 - 2 * pat_len))
    end = int(probe.starts[0]) + 2 * pat_len
    return RepeatProbe(probe.tokens[:, :end], probe.starts, pat_len, 2, probe.layout)


def _composition(mech: dict) -> dict[str, Composition]:
    """:func:`mechanism`'s scores, baselines, pair scores and z-scores, one :class:`Composition` per kind."""
    return {
        k: Composition(scores=mech["composition"][k].double().numpy(), baseline_mean=mech["baseline"][k][0], baseline_std=mech["baseline"][k][1],
                       pair=mech["pair"][k], z=mech["z"][k])
        for k in KINDS
    }


def _patterns(model, tok, probe: RepeatProbe, prev_head: Head, ind_head: Head) -> dict:
    """Attention patterns of the two heads on one probe sequence."""
    (pl, ph), (il, ih) = prev_head, ind_head
    one = probe.tokens
    _, cache = model.run_with_cache(one, names_filter=[f"blocks.{l}.attn.hook_pattern" for l in {pl, il}])
    return {
        "pattern_tokens": tuple(tok.str_tokens(one[0])),
        "induction_pattern": cache[f"blocks.{il}.attn.hook_pattern"][0, ih].double().numpy(),
        "previous_token_pattern": cache[f"blocks.{pl}.attn.hook_pattern"][0, ph].double().numpy(),
    }


def _ov_accuracy(model, induction: np.ndarray, layer: int, ind_heads: tuple[Head, ...]) -> OVAccuracy:
    """Single-head OV accuracy of every head; summed over the induction heads and over the top two heads of ``layer``."""
    top2 = top_heads_in_layer(induction, layer, 2)
    return OVAccuracy(
        top1=diagonal_accuracy(model, 1).double().numpy(), top5=diagonal_accuracy(model, 5).double().numpy(),
        summed_top1=summed_ov_accuracy(model, list(ind_heads), 1), summed_top5=summed_ov_accuracy(model, list(ind_heads), 5),
        top2_heads=tuple(top2), top2_top1=summed_ov_accuracy(model, top2, 1), top2_top5=summed_ov_accuracy(model, top2, 5),
    )


def _term_sets(model, text: torch.Tensor, n_windows: int, n_tokens: int) -> dict:
    """Term importance on two disjoint halves of the validation windows (``n_windows`` each) and on both together."""
    n = min(n_windows, text.shape[0] // 2) if text.shape[0] >= 2 else 1
    first, second = text[:n, :n_tokens], text[n : 2 * n, :n_tokens]
    halves = (_terms(model, first), _terms(model, second)) if second.shape[0] else (_terms(model, first),) * 2
    return {"terms": _terms(model, text[: 2 * n, :n_tokens]), "terms_halves": halves}


def _terms(model, tokens: torch.Tensor) -> Terms:
    """Term importance by path order on ``tokens`` (patterns frozen), with the 12 largest single terms."""
    ti = term_importance(model, tokens)
    top = sorted(ti.table(), key=lambda row: -row["term_added"])[:12]
    return Terms(
        loss_by_order=ti.loss_by_order.double().numpy(), marginal_by_order=ti.marginal_by_order.double().numpy(),
        first_order_by_layer=np.array(first_order_by_layer(ti.labels, ti.orders, ti.term_added.tolist(), model.config.n_layers)),
        full_loss=ti.full_loss, uniform_loss=ti.uniform_loss, top_terms=tuple(PathTerm(**row) for row in top), n_tokens=int(tokens.numel()),
    )


# ---- tables ------------------------------------------------------------------------------------
def tables(result: Result) -> list[Table]:
    return [_top_terms_table(result), _heads_table(result)]


def _top_terms_table(r: Result) -> Table:
    return Table(key="two_layer_top_terms", title="Largest single path terms (loss reduction when added to all lower-order terms)",
                 columns=["path", "order", "added (nats)", "removed (nats)"],
                 rows=[[t.label, t.order, fmt(t.term_added), fmt(t.term_removed)] for t in r.terms.top_terms])


def _heads_table(r: Result) -> Table:
    pl = r.previous_token_head[0]
    ov, qk, acc1 = r.ov_positivity, r.qk_corner, r.ov_accuracy.top1
    return Table(
        key="two_layer_heads", title="Scores of every head",
        columns=["head", "previous-token", "TL detect_head previous-token", "induction (natural prefix)", "induction ([BOS] + R + R)",
                 "TL detect_head induction (text)", "prefix matching (+1, ours)", "prefix matching (-1, appendix literal)", "OV copying",
                 f"QK corner (with {label(r.previous_token_head)})", "OV top-1 accuracy"],
        rows=[[f"L{l}H{h}", fmt(r.previous_token[l, h]), fmt(r.detect_previous[l, h]), fmt(r.induction[l, h]), fmt(r.induction_bos[l, h]),
               fmt(r.detect_induction[l, h]), fmt(r.prefix_matching[l, h]), fmt(r.prefix_matching_literal[l, h]), fmt(ov[l, h]),
               fmt(qk[l, h]) if l > pl else "", fmt(acc1[l, h])]
              for l in range(r.n_layers) for h in range(r.n_heads)],
        caption=(f"Probe tokens: {r.probe_rule}. Natural prefix: {r.probe_layout}; classic: {r.bos_layout}; prefix matching on "
                 f"[BOS] + P validation tokens + R x 4 (T = {r.pm_seq_len}). TransformerLens's detect_head ('mul') runs on the "
                 "validation windows and divides by every query row, also those without a target, so on text it reads lower than ours."),
    )


# ---- text --------------------------------------------------------------------------------------
def intro(result: Result) -> str:
    r = result
    first, second = r.loss_per_repeat
    return (
        f"The {r.preset} preset (d_model {r.d_model}, {r.n_heads} heads per layer, vocabulary {r.d_vocab}). Previous-token scores "
        f"are measured on validation text, induction scores on {r.n_sequences} random sequences repeated twice after a natural-text "
        f"prefix ({r.probe_layout}; {r.probe_rule}) and, beside them, right after BOS; weight circuits on the trained weights. "
        f"Measured: previous-token head {label(r.previous_token_head)} ({fmt(r.previous_token[r.previous_token_head])}), induction head "
        f"{label(r.induction_head)} ({fmt(r.induction[r.induction_head])} after a natural prefix, {fmt(r.induction_bos[r.induction_head])} "
        f"right after BOS), K-composition between them {fmt(r.composition['K'].pair)} against a baseline of "
        f"{fmt(r.composition['K'].baseline_mean)}, loss on the repeated tokens {fmt(first)} -> {fmt(second)} nats."
    )


def notes(result: Result) -> list[str]:
    r = result
    out = [f"Induction heads: layer >= 1 heads with induction score >= {r.induction_threshold} on the natural-prefix probe "
           f"({', '.join(label(x) for x in r.induction_heads)}; the top head when none reaches it)."]
    if r.quick:
        out.append("Quick mode: tiny models trained for a few dozen steps; the claims are not expected to hold.")
    if r.data_note:
        out.append(r.data_note)
    return out
