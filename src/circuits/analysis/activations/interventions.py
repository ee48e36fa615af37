"""Head ablations (zero, mean, resample; full or pattern-preserving) and their effects.

An :class:`Ablation` replaces the output of some heads. It acts on ``blocks.{l}.attn.hook_z``
(the head's output before ``W_O``, so replacing ``z`` replaces the head's result vector; ``b_O``
is shared by the layer and untouched):

- ``kind="zero"``: ``z = 0`` (the In-context Learning paper's "full ablation" zeroes the result vector);
- ``kind="mean"``: ``z`` = its mean over a reference batch at the same position (:func:`head_means`);
- ``kind="resample"``: ``z`` of another sequence of the same batch (a seeded derangement of the
  batch; the source sequence runs under the same ablation, so upstream ablated heads are ablated there too).

``pattern_preserving=True`` is the paper's pattern-preserving ablation: the model first runs
clean on the same tokens, all attention patterns are frozen to that run, and the forward is
repeated with the heads' outputs replaced, so only downstream value (V) computations change (in an
attention-only model this removes exactly the path terms that contain the head; tests check it).

``Ablation.hooks(model, tokens)`` gives the hooks for one batch; every score and loss function
takes ``hooks_for_batch``, so ``hooks_for_batch=ablation.for_model(model)`` measures anything
under the ablation. :func:`ablation_effects` tabulates the usual effects.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from jaxtyping import Float, Int
from torch import Tensor

from circuits.analysis.common import Hook, HooksForBatch, check_model, head_label, parse_head, token_batches
from circuits.analysis.activations.icl import icl_indices
from circuits.analysis.activations.scores import induction_scores, per_position_loss, prefix_matching_scores, previous_token_scores

AblationKind = Literal["zero", "mean", "resample"]


@dataclass(frozen=True)
class Ablation:
    """Which heads to ablate and how (see the module docstring). ``heads``: labels like ``"L0H1"`` or ``(layer, head)``."""

    heads: Sequence[str | tuple[int, int]]
    kind: AblationKind = "zero"
    pattern_preserving: bool = False
    means: Mapping[str, Tensor] | None = field(default=None, repr=False)
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.heads, str) or not isinstance(self.heads, Sequence) or not self.heads:
            raise ValueError(f"heads must be a non-empty sequence of head labels like ['L0H1'] or (layer, head) pairs, got {self.heads!r}")
        if self.kind not in ("zero", "mean", "resample"):
            raise ValueError(f"kind={self.kind!r} is not one of 'zero', 'mean', 'resample'")
        if self.kind == "mean" and self.means is None:
            raise ValueError("kind='mean' needs means=head_means(model, reference_tokens) (the mean head outputs to substitute)")

    @property
    def label(self) -> str:
        heads = ",".join(h if isinstance(h, str) else head_label(*h) for h in self.heads)
        return f"{'pattern-preserving ' if self.pattern_preserving else ''}{self.kind}({heads})"

    def hooks(self, model, tokens: Int[Tensor, "batch pos"] | Float[Tensor, "batch channel height width"]) -> list[Hook]:
        """Forward hooks that apply this ablation to a forward pass on ``tokens`` (and only on those tokens)."""
        check_model(model)
        by_layer: dict[int, list[int]] = {}
        for head in self.heads:
            layer, index = parse_head(model, head)
            by_layer.setdefault(layer, []).append(index)
        batch = tokens.shape[0]
        n_pos = tokens.shape[1] if tokens.ndim == 2 else model.config.n_ctx  # images [batch, channel, h, w]: every position
        perm = _derangement(batch, self.seed, tokens.device) if self.kind == "resample" else None
        hooks: list[Hook] = []
        for layer, heads in by_layer.items():
            replacement = None
            if self.kind == "mean":
                replacement = torch.stack([self._mean(model, layer, h, n_pos) for h in heads], dim=1)  # [pos, head, d_head]

            def replace(z: Tensor, hook, heads=heads, replacement=replacement) -> Tensor:
                z = z.clone()
                if self.kind == "zero":
                    z[:, :, heads] = 0.0
                elif self.kind == "mean":
                    z[:, :, heads] = replacement.to(z.dtype)
                else:
                    z[:, :, heads] = z[perm][:, :, heads]
                return z

            hooks.append((f"blocks.{layer}.attn.hook_z", replace))
        if self.pattern_preserving:
            hooks = _frozen_pattern_hooks(model, tokens) + hooks
        return hooks

    def for_model(self, model) -> HooksForBatch:
        """``hooks_for_batch`` for the score and loss functions: ``lambda tokens: self.hooks(model, tokens)``."""
        return lambda tokens: self.hooks(model, tokens)

    def _mean(self, model, layer: int, head: int, n_pos: int) -> Tensor:
        label = head_label(layer, head)
        if label not in self.means:
            raise KeyError(f"means has no entry for {label}; compute it with head_means(model, tokens, heads=[...{label!r}])")
        mean = self.means[label]
        if mean.shape[0] < n_pos:
            raise ValueError(f"means[{label!r}] covers {mean.shape[0]} positions, the tokens have {n_pos}; use longer reference tokens")
        return mean[:n_pos].to(model.W_E.device)


def _derangement(n: int, seed: int, device: torch.device) -> Tensor:
    if n < 2:
        raise ValueError("resample ablation needs a batch of at least 2 sequences (each takes another's head output)")
    generator = torch.Generator(device="cpu").manual_seed(seed)
    shift = int(torch.randint(1, n, (1,), generator=generator))
    order = torch.randperm(n, generator=generator)
    perm = torch.empty(n, dtype=torch.long)
    perm[order] = order.roll(shift)  # a cyclic shift of a random order: no fixed points
    return perm.to(device)


def _frozen_pattern_hooks(model, tokens: Tensor) -> list[Hook]:
    names = [f"blocks.{l}.attn.hook_pattern" for l in range(model.config.n_layers)]
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names_filter=names)
    saved = {name: cache[name] for name in names}
    return [(name, lambda pattern, hook, name=name: saved[name].to(pattern.dtype)) for name in names]


def head_means(
    model, tokens: Int[Tensor, "batch pos"] | Iterable[Tensor], heads: Sequence[str | tuple[int, int]] | None = None, *, batch_size: int = 32
) -> dict[str, Float[Tensor, "pos d_head"]]:
    """Mean ``z`` of each head at each position over ``tokens`` (streamed), for ``Ablation(kind="mean")``."""
    check_model(model)
    cfg = model.config
    wanted = [parse_head(model, h) for h in heads] if heads is not None else [(l, h) for l in range(cfg.n_layers) for h in range(cfg.n_heads)]
    layers = sorted({l for l, _ in wanted})
    sums: dict[int, Tensor] = {}
    n = 0

    def accumulate(z: Tensor, hook) -> None:
        layer = int(hook.name.split(".")[1])
        total = z.double().sum(0)
        sums[layer] = total if layer not in sums else sums[layer] + total

    with torch.no_grad():
        for chunk in token_batches(model, tokens, batch_size):
            if sums and chunk.shape[1] != next(iter(sums.values())).shape[0]:
                raise ValueError("head_means needs token batches of one length")
            with model.hooks(fwd_hooks=[(f"blocks.{l}.attn.hook_z", accumulate) for l in layers]):
                model(chunk)
            n += chunk.shape[0]
    if n == 0:
        raise ValueError("tokens is empty")
    return {head_label(l, h): (sums[l][:, h] / n).to(model.W_E.dtype) for l, h in wanted}


def ablated_loss(model, tokens: Int[Tensor, "batch pos"], ablation: Ablation, *, batch_size: int = 32) -> float:
    """Mean next-token loss on ``tokens`` with ``ablation`` applied."""
    return float(per_position_loss(model, tokens, batch_size=batch_size, hooks_for_batch=ablation.for_model(model)).mean())


@dataclass(frozen=True)
class AblationEffects:
    """Effects of each ablation; row 0 is ``clean``. ``scores[kind]`` is ``[ablation, layer, head]``.

    ``loss``: mean next-token loss on ``tokens``; ``icl``: ICL score on ``tokens`` (indices and
    note in ``icl_note``); ``per_position_loss``: mean loss per position (``[ablation, pos - 1]``).
    """

    labels: list[str]
    loss: Float[Tensor, "ablation"]
    icl: Float[Tensor, "ablation"]
    per_position_loss: Float[Tensor, "ablation pos_minus_1"]
    scores: dict[str, Float[Tensor, "ablation layer head"]]
    icl_note: str

    def delta(self, what: Literal["loss", "icl"]) -> Float[Tensor, "ablation"]:
        """Change from the clean run (``ablated - clean``)."""
        values = getattr(self, what)
        return values - values[0]


def ablation_effects(
    model,
    tokens: Int[Tensor, "batch pos"],
    ablations: Sequence[Ablation],
    *,
    late: int | None = None,
    early: int | None = None,
    induction: dict[str, Any] | None = None,
    prefix_matching: dict[str, Any] | None = None,
    batch_size: int = 32,
) -> AblationEffects:
    """Loss, ICL score and previous-token / induction / prefix-matching scores, clean and under each ablation.

    ``tokens`` is the evaluation text (loss, ICL score and previous-token scores);
    induction and prefix-matching scores use generated repeated tokens (keyword arguments of
    :func:`circuits.induction_scores` / :func:`circuits.prefix_matching_scores`).
    """
    check_model(model)
    tokens = model.check_tokens(tokens)
    if not all(isinstance(a, Ablation) for a in ablations):
        raise TypeError("ablations must be a sequence of circuits.Ablation")
    indices = icl_indices(tokens.shape[1], late, early)
    labels = ["clean"] + [a.label for a in ablations]
    runs: list[HooksForBatch | None] = [None] + [a.for_model(model) for a in ablations]
    ppl, prev, ind, pm = [], [], [], []
    for hooks in runs:
        ppl.append(per_position_loss(model, tokens, batch_size=batch_size, hooks_for_batch=hooks))
        prev.append(previous_token_scores(model, tokens, batch_size=batch_size, hooks_for_batch=hooks))
        ind.append(induction_scores(model, **(induction or {}), hooks_for_batch=hooks))
        pm.append(prefix_matching_scores(model, **(prefix_matching or {}), hooks_for_batch=hooks))
    per_position = torch.stack(ppl)
    return AblationEffects(
        labels=labels,
        loss=per_position.mean(-1),
        icl=per_position[:, indices.late - 1] - per_position[:, indices.early - 1],
        per_position_loss=per_position,
        scores={"previous_token": torch.stack(prev), "induction": torch.stack(ind), "prefix_matching": torch.stack(pm)},
        icl_note=indices.note,
    )
