"""Induction and prefix-matching scores of every head on each row of a repeat probe, for uncertainty estimates.

:func:`circuits.analysis.probes.probe_scores` gives the mean over all rows of a
:class:`~circuits.analysis.probes.RepeatProbe`; a bootstrap interval (:mod:`circuits.analysis.uncertainty`)
needs the score of each row. The definitions are the same (row ``b`` with its first ``R`` at
``starts[b]``, period ``T``, ``n`` repeats; queries ``q`` in repeats 2..n):

``induction``        ``A[q, q - T + 1]`` (the token after the previous copy);
``prefix_matching``  ``sum_m A[q, q - m T + 1]`` over every earlier copy ``m`` (the In-context Learning paper's score).

Row ``b``'s score is the mean over its own queries, so the mean over rows equals ``probe_scores``
(every row has ``(n - 1) T`` queries). :func:`row_targets` builds the target patterns once per probe;
:func:`row_scores` then scores any number of checkpoints on them in one forward pass per batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import einops
import torch
from jaxtyping import Float
from torch import Tensor

from circuits.analysis.common import check_model
from circuits.analysis.probes import RepeatProbe

__all__ = ["ROW_SCORES", "RowTargets", "probe_seq_len", "row_targets", "row_scores"]

#: the scores :func:`row_scores` returns: name -> (offset of the key from the earlier copy, every earlier copy?)
ROW_SCORES: dict[str, tuple[int, bool]] = {"induction": (1, False), "prefix_matching": (1, True)}


def probe_seq_len(n_ctx: int, n_repeats: int, wanted: int) -> int:
    """``T`` of an ``R x n_repeats`` probe after a natural prefix: ``wanted``, capped so the repeats fill at most
    ``n_repeats / (n_repeats + 1)`` of the context (R + R: two thirds; R x 4: four fifths), leaving room for the prefix."""
    if n_repeats < 2 or wanted < 1:
        raise ValueError(f"probe_seq_len needs n_repeats >= 2 and wanted >= 1, got n_repeats={n_repeats}, wanted={wanted}")
    return max(1, min(wanted, (n_ctx - 1) // (n_repeats + 1)))


@dataclass(frozen=True)
class RowTargets:
    """A probe and, per score, the target keys of each row's queries (``weights[name]``: ``[batch, query_pos, key_pos]``)."""

    probe: RepeatProbe
    weights: dict[str, Float[Tensor, "batch query_pos key_pos"]]
    n_queries: Float[Tensor, "batch"]  #: scored queries per row, (n_repeats - 1) * seq_len


def row_targets(probe: RepeatProbe, kinds: tuple[str, ...] = tuple(ROW_SCORES)) -> RowTargets:
    """The target patterns of ``kinds`` (see :data:`ROW_SCORES`) for every row of ``probe``."""
    unknown = [k for k in kinds if k not in ROW_SCORES]
    if unknown or not kinds:
        raise ValueError(f"unknown score kinds {unknown}; choose from {list(ROW_SCORES)}")
    batch, n_pos = probe.tokens.shape
    T, n = probe.seq_len, probe.n_repeats
    weights = {kind: torch.zeros(batch, n_pos, n_pos) for kind in kinds}
    for row, start in enumerate(probe.starts.tolist()):
        for q in range(start + T, start + n * T):
            for kind in kinds:
                offset, all_copies = ROW_SCORES[kind]
                m = 1
                while q - m * T >= start and (all_copies or m == 1):
                    weights[kind][row, q, q - m * T + offset] = 1.0
                    m += 1
    return RowTargets(probe=probe, weights=weights, n_queries=torch.full((batch,), float((n - 1) * T)))


def row_scores(model, targets: RowTargets, *, batch_size: int = 64) -> dict[str, Float[Tensor, "batch layer head"]]:
    """Each row's score of every head, ``{kind: [batch, layer, head]}`` (float64, on the CPU), one forward pass per batch."""
    check_model(model)
    tokens = targets.probe.tokens
    if tokens.shape[1] > model.config.n_ctx and model.positional.limits_n_ctx:
        raise ValueError(f"the probe's {tokens.shape[1]} tokens exceed the model's n_ctx={model.config.n_ctx}; build it with a shorter seq_len")
    n_layers, n_heads, device = model.config.n_layers, model.config.n_heads, model.W_E.device
    out = {kind: torch.zeros(tokens.shape[0], n_layers, n_heads, dtype=torch.float64) for kind in targets.weights}
    rows = slice(0, 0)

    def accumulate(pattern: Tensor, hook) -> None:
        layer = int(hook.name.split(".")[1])
        for kind, weights in targets.weights.items():
            w = weights[rows].to(device=pattern.device, dtype=pattern.dtype)
            out[kind][rows, layer] = einops.einsum(pattern, w, "batch head q k, batch q k -> batch head").double().cpu()

    hooks = [(f"blocks.{l}.attn.hook_pattern", accumulate) for l in range(n_layers)]
    with torch.no_grad(), model.hooks(fwd_hooks=hooks):
        for lo in range(0, tokens.shape[0], batch_size):
            rows = slice(lo, lo + batch_size)
            model(model.check_tokens(tokens[rows]).to(device), return_type="per_token_loss")
    return {kind: scores / targets.n_queries[:, None, None].double() for kind, scores in out.items()}
