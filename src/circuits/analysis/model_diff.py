"""Model diffing: what changed in each attention head between two checkpoints of one architecture.

:func:`model_diff` compares ``before`` (e.g. a pretrained model) and ``after`` (its fine-tune) and
returns a :class:`ModelDiff` of ``[layer, head]`` tensors (labels from :func:`head_label_grid`):

``weight_change[name]``  relative Frobenius change ``||W_after - W_before||_F / ||W_before||_F`` of
                         each head's ``W_Q``, ``W_K``, ``W_V``, ``W_O`` (raw parameters; with
                         grouped-query attention a key/value head's change shows on every query
                         head that reads it) and of its full circuits ``QK`` = ``W_E W_Q W_K^T W_E^T``
                         and ``OV`` = ``W_E W_V W_O W_U`` (folded weights, as in
                         :mod:`circuits.analysis.weights.qkov`). The full circuits are
                         ``d_vocab x d_vocab`` but never formed: for ``M = A B`` with thin factors,
                         ``<A1 B1, A2 B2>_F = sum((A1^T A2) * (B1 B2^T))``, so the norm of the
                         difference needs only ``d_head x d_head`` products. ``nan`` where a circuit
                         is not one matrix (rotary QK) or the norm before is 0.
``scores_before/after``  the previous-token score on ``tokens``
                         (:func:`~circuits.analysis.activations.scores.previous_token_scores`), the
                         induction score on repeated random tokens
                         (:func:`~circuits.analysis.activations.scores.induction_scores`) and the
                         OV copying score (:func:`~circuits.analysis.weights.eigen.copying_scores`).
``pattern_change``       mean total-variation distance ``0.5 * sum_k |A_after[q, k] - A_before[q, k]|``
                         between the two models' attention patterns on the same ``tokens``, over
                         every (sequence, real query) pair: 0 = the same pattern, 1 = disjoint.
``ablation_before/after`` the increase of a task loss when the head's output ``z`` is zeroed
                         (``loss_fn(model)`` under the ablation minus without it), for the heads of
                         ``ablation_heads`` (``nan`` for the others); ``None`` without a loss.

A hand-edited copy of a model (one head's ``W_V`` changed) shows a change in that head's ``W_V``
and ``OV`` only, exactly 0 everywhere else (``tests/test_model_diff.py``). Architectures must match:
every field of the two :class:`~circuits.config.TransformerConfig` except ``seed``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor

from circuits.analysis.common import check_model, head_label, parse_head, token_batches
from circuits.analysis.activations.scores import induction_scores, per_position_loss, previous_token_scores
from circuits.analysis.weights.eigen import copying_scores
from circuits.analysis.weights.qkov import full_ov_circuit, full_qk_circuit, head_label_grid

__all__ = [
    "ModelDiff", "model_diff", "check_same_architecture", "weight_changes", "head_scores", "pattern_change", "ablation_importance",
    "WEIGHT_NAMES", "SCORE_NAMES",
]

WEIGHT_NAMES: tuple[str, ...] = ("W_Q", "W_K", "W_V", "W_O", "QK", "OV")
SCORE_NAMES: tuple[str, ...] = ("previous_token", "induction", "copying")

LossFn = Callable[[object], float]


@dataclass(frozen=True)
class ModelDiff:
    """Per-head differences between two models (see the module docstring); every tensor is ``[layer, head]``."""

    labels: list[list[str]]
    weight_change: dict[str, Float[Tensor, "layer head"]]
    scores_before: dict[str, Float[Tensor, "layer head"]]
    scores_after: dict[str, Float[Tensor, "layer head"]]
    pattern_change: Float[Tensor, "layer head"]
    ablation_before: Float[Tensor, "layer head"] | None
    ablation_after: Float[Tensor, "layer head"] | None

    def score_change(self, name: str) -> Float[Tensor, "layer head"]:
        """``scores_after[name] - scores_before[name]``."""
        if name not in self.scores_before:
            raise KeyError(f"unknown score {name!r}; scores: {sorted(self.scores_before)}")
        return self.scores_after[name] - self.scores_before[name]

    def changed_heads(self, threshold: float = 0.0, what: Sequence[str] = WEIGHT_NAMES) -> list[str]:
        """Labels of the heads whose relative change in any of ``what`` exceeds ``threshold`` (layer-major order)."""
        unknown = [w for w in what if w not in self.weight_change]
        if unknown:
            raise KeyError(f"unknown weight names {unknown}; choose from {list(WEIGHT_NAMES)}")
        stacked = torch.stack([self.weight_change[w].nan_to_num(0.0) for w in what])
        hit = (stacked > threshold).any(0)
        return [self.labels[l][h] for l, h in hit.nonzero().tolist()]

    def top(self, values: Float[Tensor, "layer head"], k: int = 3) -> list[tuple[str, float]]:
        """The ``k`` heads with the largest finite ``values`` (e.g. ``diff.weight_change["OV"]``), as ``(label, value)``."""
        flat = values.reshape(-1).nan_to_num(float("-inf"))
        n_heads = values.shape[1]
        order = torch.argsort(flat, descending=True)[:k].tolist()
        return [(self.labels[i // n_heads][i % n_heads], float(values.reshape(-1)[i])) for i in order if torch.isfinite(flat[i])]


# ---- checks -----------------------------------------------------------------------------------
def check_same_architecture(before, after) -> None:
    """``ValueError`` naming every config field (other than ``seed``) on which the two models differ."""
    check_model(before)
    check_model(after)
    a, b = before.config.to_dict(), after.config.to_dict()
    differ = sorted(k for k in set(a) | set(b) if k != "seed" and a.get(k) != b.get(k))
    if differ:
        detail = ", ".join(f"{k}: {a.get(k)!r} vs {b.get(k)!r}" for k in differ)
        raise ValueError(f"model_diff compares two checkpoints of one architecture; the configs differ in {detail}")


# ---- weights ----------------------------------------------------------------------------------
def _relative(delta_sq: Tensor, before_sq: Tensor) -> Tensor:
    out = delta_sq.clamp_min(0).sqrt() / before_sq.sqrt()
    return torch.where(before_sq > 0, out, torch.full_like(out, float("nan")))


def _factored_inner(a1: Tensor, b1: Tensor, a2: Tensor, b2: Tensor) -> Tensor:
    """``<A1 B1, A2 B2>_F`` over the last two axes without forming the products (``[..., n, r] @ [..., r, m]``)."""
    return ((a1.transpose(-2, -1) @ a2) * (b1 @ b2.transpose(-2, -1))).sum((-2, -1))


def _circuit_change(circuit: Callable, before, after) -> Tensor:
    try:
        m1, m2 = circuit(before, None, None), circuit(after, None, None)
    except ValueError:  # not one matrix for this architecture (rotary QK)
        cfg = before.config
        return torch.full((cfg.n_layers, cfg.n_heads), float("nan"), dtype=torch.float64)
    a1, b1, a2, b2 = (t.double() for t in (m1.A, m1.B, m2.A, m2.B))
    n11, n22, n12 = _factored_inner(a1, b1, a1, b1), _factored_inner(a2, b2, a2, b2), _factored_inner(a1, b1, a2, b2)
    return _relative(n11 + n22 - 2 * n12, n11)


@torch.no_grad()
def weight_changes(before, after) -> dict[str, Float[Tensor, "layer head"]]:
    """Relative Frobenius change of each head's ``W_Q``, ``W_K``, ``W_V``, ``W_O`` and full ``QK``/``OV`` circuits (float64)."""
    check_same_architecture(before, after)
    out = {}
    for name in ("W_Q", "W_K", "W_V", "W_O"):
        w1, w2 = getattr(before, name).double(), getattr(after, name).double()
        out[name] = _relative(((w2 - w1) ** 2).sum((-2, -1)), (w1**2).sum((-2, -1)))
    out["QK"] = _circuit_change(full_qk_circuit, before, after)
    out["OV"] = _circuit_change(full_ov_circuit, before, after)
    return out


# ---- activations ------------------------------------------------------------------------------
def head_scores(model, tokens: Int[Tensor, "batch pos"], *, induction: dict | None = None, batch_size: int = 32) -> dict[str, Float[Tensor, "layer head"]]:
    """Previous-token (on ``tokens``), induction (``induction``: keyword arguments of ``induction_scores``) and OV copying scores.

    A score the architecture cannot give (copying without a square unembedding, induction
    probes longer than ``n_ctx``) is ``nan``.
    """
    cfg = model.config
    nan = torch.full((cfg.n_layers, cfg.n_heads), float("nan"))
    out = {"previous_token": previous_token_scores(model, tokens, batch_size=batch_size).float().cpu()}
    kwargs = {"seq_len": max(2, min(50, (cfg.n_ctx - 1) // 2)), **(induction or {})}
    try:
        out["induction"] = induction_scores(model, batch_size=batch_size, **kwargs).float().cpu()
    except ValueError:
        out["induction"] = nan
    try:
        out["copying"] = copying_scores(model).float().cpu()
    except ValueError:
        out["copying"] = nan
    return out


def _patterns(model, tokens: Tensor, mask: Tensor | None) -> list[Tensor]:
    names = [f"blocks.{l}.attn.hook_pattern" for l in range(model.config.n_layers)]
    kwargs = {} if mask is None else {"attention_mask": mask}
    _, cache = model.run_with_cache(tokens, names_filter=names, **kwargs)
    return [cache[name].double() for name in names]


@torch.no_grad()
def pattern_change(
    before, after, tokens: Int[Tensor, "batch pos"], *, attention_mask: Int[Tensor, "batch pos"] | None = None, batch_size: int = 32
) -> Float[Tensor, "layer head"]:
    """Mean total-variation distance between the heads' attention patterns of ``before`` and ``after`` on ``tokens``.

    With ``attention_mask`` (1 = real token) only real query positions count.
    """
    check_same_architecture(before, after)
    cfg = before.config
    total = torch.zeros(cfg.n_layers, cfg.n_heads, dtype=torch.float64)
    count = 0.0
    for start, chunk in enumerate(token_batches(before, tokens, batch_size)):
        mask = None if attention_mask is None else attention_mask[start * batch_size : start * batch_size + len(chunk)].to(chunk.device)
        weight = torch.ones(chunk.shape, dtype=torch.float64) if mask is None else mask.double().cpu()
        for layer, (p1, p2) in enumerate(zip(_patterns(before, chunk, mask), _patterns(after, chunk, mask))):
            tv = 0.5 * (p2 - p1).abs().sum(-1).cpu()  # [batch, head, query_pos]
            total[layer] += (tv * weight[:, None, :]).sum((0, 2))
        count += float(weight.sum())
    if count == 0:
        raise ValueError("pattern_change: no real query position in tokens (all masked or empty)")
    return (total / count).float()


def _zero_head(head: int) -> Callable:
    def hook(z: Tensor, hook) -> Tensor:
        z = z.clone()
        z[:, :, head] = 0.0
        return z

    return hook


@torch.no_grad()
def ablation_importance(model, loss_fn: LossFn, heads: Sequence[str | tuple[int, int]] | None = None) -> Float[Tensor, "layer head"]:
    """Increase of ``loss_fn(model)`` when each head's ``z`` is zeroed (``nan`` for heads not in ``heads``; default all)."""
    check_model(model)
    cfg = model.config
    wanted = [parse_head(model, h) for h in heads] if heads is not None else [(l, h) for l in range(cfg.n_layers) for h in range(cfg.n_heads)]
    out = torch.full((cfg.n_layers, cfg.n_heads), float("nan"))
    clean = float(loss_fn(model))
    for layer, head in wanted:
        with model.hooks(fwd_hooks=[(f"blocks.{layer}.attn.hook_z", _zero_head(head))]):
            out[layer, head] = float(loss_fn(model)) - clean
    return out


def next_token_loss_fn(tokens: Int[Tensor, "batch pos"], batch_size: int = 32) -> LossFn:
    """``loss_fn`` for :func:`ablation_importance`: the mean next-token loss on ``tokens``."""
    return lambda model: float(per_position_loss(model, tokens, batch_size=batch_size).mean())


# ---- everything -------------------------------------------------------------------------------
def model_diff(
    before,
    after,
    tokens: Int[Tensor, "batch pos"],
    *,
    attention_mask: Int[Tensor, "batch pos"] | None = None,
    loss_fn: LossFn | None = None,
    ablation_heads: Sequence[str | tuple[int, int]] | None = None,
    induction: dict | None = None,
    scores: bool = True,
    batch_size: int = 32,
) -> ModelDiff:
    """Every per-head difference of the module docstring between ``before`` and ``after`` (same architecture).

    ``tokens`` is the text both models read for the previous-token score and the pattern change.
    ``loss_fn(model) -> float`` is the task's loss for the ablation importances (default for a
    causal model: the next-token loss on ``tokens``; bidirectional models get ``None`` without
    one). ``scores=False`` skips the head scores (empty dicts).
    """
    check_same_architecture(before, after)
    if loss_fn is None and before.config.mask == "causal" and attention_mask is None:
        loss_fn = next_token_loss_fn(tokens, batch_size)
    with torch.no_grad():
        s1 = head_scores(before, tokens, induction=induction, batch_size=batch_size) if scores else {}
        s2 = head_scores(after, tokens, induction=induction, batch_size=batch_size) if scores else {}
    return ModelDiff(
        labels=head_label_grid(before),
        weight_change={k: v.float() for k, v in weight_changes(before, after).items()},
        scores_before=s1,
        scores_after=s2,
        pattern_change=pattern_change(before, after, tokens, attention_mask=attention_mask, batch_size=batch_size),
        ablation_before=None if loss_fn is None else ablation_importance(before, loss_fn, ablation_heads),
        ablation_after=None if loss_fn is None else ablation_importance(after, loss_fn, ablation_heads),
    )


def describe_head(diff: ModelDiff, layer: int, head: int) -> str:
    """One line on head ``L{layer}H{head}``: its weight changes and score changes."""
    parts = [f"{k} {float(v[layer, head]):.3g}" for k, v in diff.weight_change.items()]
    parts += [f"{k} {float(diff.scores_before[k][layer, head]):.3g}->{float(diff.scores_after[k][layer, head]):.3g}" for k in diff.scores_before]
    return f"{head_label(layer, head)}: " + ", ".join(parts)
