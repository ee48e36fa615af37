"""The two-layer induction circuit: which heads form it, how they compose, and what each part does.

Framework paper, two-layer section, and ARENA 1.2. A previous-token head in an early layer writes
"the token before me" into each position; an induction head in a later layer reads it with its
keys (K-composition) and copies the attended token through its OV circuit. The functions here
pick the heads from their scores (:func:`pick_heads`), measure the Q/K/V-composition between them
against the random baseline (:func:`mechanism`), zero-ablate each earlier head
(:func:`ablated_induction_scores`), read how well a set of heads' summed OV circuit copies
(:func:`summed_ov_accuracy`), and add up the single-head path terms per layer
(:func:`first_order_by_layer`). Heads are ``(layer, head)`` pairs, labelled ``L{layer}H{head}``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import torch
from jaxtyping import Float

from circuits.analysis.activations.interventions import Ablation
from circuits.analysis.activations.scores import induction_scores
from circuits.analysis.common import head_label
from circuits.analysis.probes import RepeatProbe, probe_scores
from circuits.analysis.weights.composition import COMPOSITION_KINDS, composition_baseline, composition_scores
from circuits.analysis.weights.processing import folded_weights

__all__ = [
    "pick_heads", "mechanism", "summed_ov_accuracy", "top_heads_in_layer", "ablated_induction_scores", "ablated_probe_scores",
    "first_order_by_layer",
]

_HEAD = re.compile(r"L(\d+)H\d+")


def pick_heads(previous: Float[np.ndarray, "layer head"], induction: Float[np.ndarray, "layer head"], threshold: float) -> dict:
    """The top induction head (layers >= 1), the induction heads (score >= threshold, at least the top one)
    and the top previous-token head in an earlier layer than the top induction head.

    Returns ``{"induction_head": [l, h], "induction_heads": [[l, h], ...] (highest score first),
    "previous_token_head": [l, h]}``. Layer-0 heads never count as induction heads (they cannot
    compose with an earlier head).
    """
    n_layers, n_heads = induction.shape
    if n_layers < 2:
        raise ValueError(f"pick_heads needs scores of at least 2 layers (an induction head reads an earlier layer), got shape {induction.shape}")
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
    """Q/K/V-composition scores (full ``[l1, h1, l2, h2]``), their baselines, and the chosen heads' pair scores.

    The heads are :func:`pick_heads`'s. Keys: those of :func:`pick_heads`, plus ``composition[kind]``
    (the scores tensor), ``baseline[kind] = [mean, std]`` (:func:`composition_baseline` with
    ``baseline_samples`` and ``seed``), ``pair[kind]`` (previous-token head -> top induction head),
    ``z[kind] = (pair - mean) / std``, and ``max_K_into_induction`` / ``max_Q_into_induction`` (the
    largest K and Q score of any earlier head into the top induction head).
    """
    heads = pick_heads(previous, induction, threshold)
    (pl, ph), (il, ih) = heads["previous_token_head"], heads["induction_head"]
    out = {**heads, "composition": {}, "baseline": {}, "pair": {}, "z": {}}
    for kind in COMPOSITION_KINDS:
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


def summed_ov_accuracy(model, heads: list[tuple[int, int]], k: int = 1) -> float:
    """Top-``k`` diagonal accuracy of the summed full OV circuit ``W_E (sum_h W_OV^h) W_U`` of ``heads``.

    The fraction of tokens whose own logit is among the ``k`` largest of their row (ties count in
    the token's favour, as in :func:`circuits.analysis.weights.eigen.diagonal_accuracy`); chance is
    ``k / d_vocab``. Folded weights; rows are processed 512 at a time.
    """
    if not heads:
        raise ValueError("summed_ov_accuracy needs at least one (layer, head) pair, got none")
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


def top_heads_in_layer(scores: Float[np.ndarray, "layer head"], layer: int, n: int) -> list[tuple[int, int]]:
    """The ``n`` heads of ``layer`` with the highest ``scores``, highest first (ties keep head order)."""
    if not 0 <= layer < scores.shape[0]:
        raise ValueError(f"layer={layer} is outside the scores' {scores.shape[0]} layers")
    heads = [(layer, h) for h in range(scores.shape[1])]
    return sorted(heads, key=lambda lh: -scores[lh])[:n]


@torch.no_grad()
def ablated_induction_scores(model, before_layer: int, *, seq_len: int, batch: int, seed: int, bos: int | None) -> dict[str, np.ndarray]:
    """Induction scores of every head (``[layer, head]``) with each head of the layers before ``before_layer`` zero-ablated.

    Keyed by the ablated head's label (``"L0H3"``), in layer-then-head order; the repeated tokens are
    :func:`circuits.analysis.activations.scores.induction_scores`'s with ``seq_len``, ``batch``, ``seed`` and ``bos``.
    """
    if not 0 <= before_layer <= model.config.n_layers:
        raise ValueError(f"before_layer={before_layer} is outside 0..{model.config.n_layers} (the model's layers)")
    out = {}
    for l in range(before_layer):
        for h in range(model.config.n_heads):
            hooks = Ablation([(l, h)], kind="zero").for_model(model)
            out[head_label(l, h)] = induction_scores(model, seq_len=seq_len, batch=batch, seed=seed, bos=bos, hooks_for_batch=hooks).numpy()
    return out


@torch.no_grad()
def ablated_probe_scores(model, before_layer: int, probe: RepeatProbe) -> dict[str, np.ndarray]:
    """:func:`ablated_induction_scores` on a :class:`~circuits.analysis.probes.RepeatProbe` (either layout):
    every head's induction score ``[layer, head]`` with each head of the layers before ``before_layer`` zero-ablated."""
    if not 0 <= before_layer <= model.config.n_layers:
        raise ValueError(f"before_layer={before_layer} is outside 0..{model.config.n_layers} (the model's layers)")
    out = {}
    for l in range(before_layer):
        for h in range(model.config.n_heads):
            hooks = Ablation([(l, h)], kind="zero").for_model(model)
            out[head_label(l, h)] = probe_scores(model, probe, hooks_for_batch=hooks).induction.numpy()
    return out


def first_order_by_layer(labels: Sequence[str], orders: Sequence[int], term_added: Sequence[float], n_layers: int) -> list[float]:
    """Sum of the single-head (order 1) path terms' effects per layer: ``out[l]`` adds ``term_added`` of every ``L{l}H*`` term.

    ``labels``, ``orders`` and ``term_added`` are a :class:`~circuits.analysis.activations.paths.TermImportance`'s
    (``term_added`` as a list of floats); terms of other orders and non-head terms are skipped.
    """
    if not len(labels) == len(orders) == len(term_added):
        raise ValueError(f"labels, orders and term_added must have the same length, got {len(labels)}, {len(orders)}, {len(term_added)}")
    per_layer = [0.0] * n_layers
    for label, order, added in zip(labels, orders, term_added):
        match = _HEAD.fullmatch(label)
        if order == 1 and match:
            per_layer[int(match.group(1))] += added
    return per_layer
