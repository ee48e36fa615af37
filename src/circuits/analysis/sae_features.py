"""Feature pages: what one SAE latent responds to and what it does (Towards Monosemanticity's feature browser, small).

For every latent, one streaming pass over token batches keeps its top-activating contexts (the
tokens around the activating one, which is marked ``[[like this]]``), a histogram of its non-zero
activations (log-spaced bins, fixed in advance so nothing is stored per token) and its firing
frequency. The *direct logit effect* of a latent is its unit dictionary direction read through the
unembedding, ``d_i @ W_U [d_vocab]`` (the path from the hook straight to the logits, ignoring any
layers after the hook; exact for the last layer's ``hook_resid_post`` of a model without a final
norm): the tokens it promotes most and suppresses most.

    pages = feature_pages(model, sae, token_batches, tokenizer, n_features=8)
    pages[0].contexts[0].text      # '... def [[ self]] ...'
    pages[0].promoted              # (('(', 1.9), ...)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor

from circuits.analysis.common import check_model
from circuits.model.sae import SparseAutoencoder
from circuits.model.transformer import Transformer

__all__ = ["FeatureContext", "FeaturePage", "FeatureStats", "collect_feature_stats", "feature_pages", "logit_effects", "HISTOGRAM_EDGES"]

#: log-spaced bin edges of the activation histograms (normalised activations; values outside are clipped into the end bins)
HISTOGRAM_EDGES: np.ndarray = np.logspace(-3, 2, 41)
PAD = -1


@dataclass(frozen=True, kw_only=True)
class FeatureContext:
    """One top-activating context: its tokens (labels), which of them activates, and by how much."""

    tokens: tuple[str, ...]
    marked: int  #: index in ``tokens`` of the activating token
    activation: float

    @property
    def text(self) -> str:
        """The context as one string with the activating token in ``[[ ]]``."""
        return "".join(f"[[{t}]]" if i == self.marked else t for i, t in enumerate(self.tokens))


@dataclass(frozen=True, kw_only=True)
class FeaturePage:
    """Everything shown for one latent."""

    feature: int
    firing_frequency: float
    max_activation: float
    contexts: tuple[FeatureContext, ...]
    histogram_edges: np.ndarray  #: [n_bins + 1]
    histogram_counts: np.ndarray  #: [n_bins] non-zero activations per bin
    promoted: tuple[tuple[str, float], ...]  #: (token, logit effect), largest first
    suppressed: tuple[tuple[str, float], ...]  #: (token, logit effect), most negative first


@dataclass(kw_only=True)
class FeatureStats:
    """Per-latent running results of one pass (:func:`collect_feature_stats`)."""

    top_values: Float[Tensor, "context d_sae"]
    top_windows: Int[Tensor, "context d_sae window"]  #: token ids around each top activation (PAD outside the window)
    histogram: Float[Tensor, "d_sae bin"]
    fired: Float[Tensor, "d_sae"]
    mass: Float[Tensor, "d_sae"]  #: summed activation
    n: int
    before: int


def collect_feature_stats(
    model: Transformer, sae: SparseAutoencoder, token_batches: Iterable[Int[Tensor, "batch pos"]],
    *, hook_name: str | None = None, n_contexts: int = 5, before: int = 8, after: int = 3, skip_first: int = 1,
) -> FeatureStats:
    """One streaming pass: for every latent its top ``n_contexts`` activations with their token windows
    (``before`` tokens before, ``after`` after), its activation histogram, firing count and summed activation."""
    check_model(model)
    hook_name = hook_name or sae.config.hook_name
    if hook_name not in model.hook_dict:
        raise model.hook_name_error(hook_name)
    d_sae, width = sae.config.d_sae, before + 1 + after
    stats = FeatureStats(
        top_values=torch.full((n_contexts, d_sae), -1.0), top_windows=torch.full((n_contexts, d_sae, width), PAD, dtype=torch.long),
        histogram=torch.zeros(d_sae, len(HISTOGRAM_EDGES) - 1, dtype=torch.float64), fired=torch.zeros(d_sae, dtype=torch.float64),
        mass=torch.zeros(d_sae, dtype=torch.float64), n=0, before=before,
    )
    edges = torch.from_numpy(np.log10(HISTOGRAM_EDGES))
    with torch.no_grad():
        for tokens in token_batches:
            tokens = model.check_tokens(tokens)
            acts = _batch_acts(model, sae, hook_name, tokens, skip_first)  # [batch, pos - skip, d_sae]
            _update(stats, acts, tokens, skip_first, after, edges)
    if stats.n == 0:
        raise ValueError("collect_feature_stats got no token batches")
    return stats


def _batch_acts(model: Transformer, sae: SparseAutoencoder, hook_name: str, tokens: Tensor, skip_first: int) -> Tensor:
    grabbed: list[Tensor] = []

    def grab(act: Tensor, hook) -> None:
        grabbed.append(sae.encode(act[:, skip_first:]))

    model.run_with_hooks(tokens, fwd_hooks=[(hook_name, grab)])
    return grabbed[0]


def _update(stats: FeatureStats, acts: Tensor, tokens: Tensor, skip_first: int, after: int, edges: Tensor) -> None:
    batch, n_pos, d_sae = acts.shape
    flat = acts.reshape(-1, d_sae)
    stats.n += flat.shape[0]
    stats.fired += (flat > 0).sum(0).double()
    stats.mass += flat.sum(0).double()
    rows, cols = (flat > 0).nonzero(as_tuple=True)
    if rows.numel():
        values = flat[rows, cols].double().log10()
        bins = (torch.bucketize(values, edges) - 1).clamp(0, edges.numel() - 2)
        stats.histogram.view(-1).index_add_(0, cols * (edges.numel() - 1) + bins, torch.ones_like(values))
    k = min(stats.top_values.shape[0], flat.shape[0])
    values, index = flat.topk(k, dim=0)  # [k, d_sae]
    windows = _windows(tokens, index // n_pos, index % n_pos + skip_first, stats.before, after)
    all_values = torch.cat([stats.top_values, values])
    all_windows = torch.cat([stats.top_windows, windows])
    keep = all_values.topk(stats.top_values.shape[0], dim=0).indices  # [context, d_sae]
    stats.top_values = all_values.gather(0, keep)
    stats.top_windows = all_windows.gather(0, keep[:, :, None].expand(-1, -1, all_windows.shape[-1]))


def _windows(tokens: Tensor, rows: Tensor, positions: Tensor, before: int, after: int) -> Tensor:
    """Token ids at ``positions - before .. positions + after`` of ``rows`` (``[k, d_sae]`` each), PAD outside the sequence."""
    offsets = torch.arange(-before, after + 1)
    where = positions[..., None] + offsets  # [k, d_sae, window]
    inside = (where >= 0) & (where < tokens.shape[1])
    ids = tokens[rows[..., None].expand_as(where), where.clamp(0, tokens.shape[1] - 1)]
    return torch.where(inside, ids, torch.full_like(ids, PAD))


def logit_effects(model: Transformer, sae: SparseAutoencoder, feature: int, tokenizer, k: int = 5) -> tuple[tuple[tuple[str, float], ...], tuple[tuple[str, float], ...]]:
    """The ``k`` tokens the latent's unit direction promotes most and suppresses most through ``W_U`` (direct path)."""
    _check_feature(sae, feature)
    effect = sae.dictionary()[feature] @ model.W_U.detach()  # [d_vocab_out]
    top, bottom = effect.topk(k), (-effect).topk(k)
    promoted = tuple((tokenizer.token_str(int(i)), float(v)) for v, i in zip(top.values, top.indices))
    suppressed = tuple((tokenizer.token_str(int(i)), -float(v)) for v, i in zip(bottom.values, bottom.indices))
    return promoted, suppressed


def _check_feature(sae: SparseAutoencoder, feature: int) -> None:
    if isinstance(feature, bool) or not isinstance(feature, int) or not 0 <= feature < sae.config.d_sae:
        raise ValueError(f"feature {feature!r} is not a latent index in [0, {sae.config.d_sae})")


def top_features(stats: FeatureStats, n: int, dense_threshold: float = 0.1) -> list[int]:
    """The ``n`` latents with the largest summed activation, among those that fire and are not dense."""
    frequency = stats.fired / stats.n
    eligible = (frequency > 0) & (frequency <= dense_threshold)
    mass = torch.where(eligible, stats.mass, torch.full_like(stats.mass, -1.0))
    order = mass.argsort(descending=True)[:n]
    return [int(i) for i in order if mass[i] > 0]


def feature_pages(
    model: Transformer, sae: SparseAutoencoder, token_batches: Iterable[Int[Tensor, "batch pos"]], tokenizer,
    *, features: Sequence[int] | None = None, n_features: int = 8, n_contexts: int = 5, n_logits: int = 5,
    before: int = 8, after: int = 3, skip_first: int = 1, dense_threshold: float = 0.1,
) -> list[FeaturePage]:
    """Pages of ``features`` (default: the ``n_features`` latents with the largest summed activation that are not dense)."""
    stats = collect_feature_stats(model, sae, token_batches, n_contexts=n_contexts, before=before, after=after, skip_first=skip_first)
    chosen = list(features) if features is not None else top_features(stats, n_features, dense_threshold)
    for f in chosen:
        _check_feature(sae, f)
    return [page_of(stats, model, sae, f, tokenizer, n_logits) for f in chosen]


def page_of(stats: FeatureStats, model: Transformer, sae: SparseAutoencoder, feature: int, tokenizer, n_logits: int = 5) -> FeaturePage:
    """The page of one latent from a pass's :class:`FeatureStats`."""
    contexts = []
    for value, window in zip(stats.top_values[:, feature].tolist(), stats.top_windows[:, feature].tolist()):
        if value <= 0:
            continue
        kept = [(i, t) for i, t in enumerate(window) if t != PAD]
        marked = next(j for j, (i, _) in enumerate(kept) if i == stats.before)
        contexts.append(FeatureContext(tokens=tuple(tokenizer.token_str(t) for _, t in kept), marked=marked, activation=float(value)))
    promoted, suppressed = logit_effects(model, sae, feature, tokenizer, n_logits)
    return FeaturePage(
        feature=feature, firing_frequency=float(stats.fired[feature] / stats.n), max_activation=max(0.0, float(stats.top_values[0, feature])),
        contexts=tuple(contexts), histogram_edges=HISTOGRAM_EDGES.copy(), histogram_counts=stats.histogram[feature].numpy().copy(),
        promoted=promoted, suppressed=suppressed,
    )
