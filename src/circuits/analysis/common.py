"""Helpers shared by the activation analyses (internal): head labels, batching, completeness checks."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import torch
from torch import Tensor

from circuits.model import Transformer

Hook = tuple[Any, Callable]
#: Builds extra forward hooks for one batch of tokens (e.g. an ablation); see ``circuits.analysis.activations.interventions``.
HooksForBatch = Callable[[Tensor], Sequence[Hook]]

_HEAD = re.compile(r"^L(\d+)H(\d+)$")


class DecompositionError(ValueError):
    """A decomposition whose parts do not add up to the whole (the message gives the error)."""


def head_label(layer: int, head: int) -> str:
    return f"L{layer}H{head}"


def head_labels(model) -> list[str]:
    """``["L0H0", "L0H1", ...]`` in ``[layer, head]`` row-major order."""
    return [head_label(l, h) for l in range(model.config.n_layers) for h in range(model.config.n_heads)]


def parse_head(model, head: str | tuple[int, int]) -> tuple[int, int]:
    """``"L1H2"`` or ``(1, 2)`` -> ``(1, 2)``, checked against the model's layers and heads."""
    if isinstance(head, str):
        match = _HEAD.match(head)
        if match is None:
            raise ValueError(f"head label {head!r} is not of the form 'L{{layer}}H{{head}}' (e.g. 'L1H2')")
        layer, index = int(match.group(1)), int(match.group(2))
    elif isinstance(head, tuple) and len(head) == 2 and all(isinstance(i, int) for i in head):
        layer, index = head
    else:
        raise TypeError(f"a head is a label like 'L1H2' or a (layer, head) tuple of ints, got {head!r}")
    n_layers, n_heads = model.config.n_layers, model.config.n_heads
    if not (0 <= layer < n_layers and 0 <= index < n_heads):
        raise KeyError(f"head {head!r} does not exist: the model has {n_layers} layers of {n_heads} heads")
    return layer, index


def check_model(model) -> None:
    if not isinstance(model, Transformer):
        raise TypeError(f"expected a circuits.Transformer, got {type(model).__name__}")


def token_batches(model, tokens: Tensor | Iterable[Tensor], batch_size: int) -> Iterator[Tensor]:
    """Validated ``[batch, pos]`` chunks on the model's device: a tensor is split into ``batch_size`` rows at a time;
    any other iterable is taken as a stream of token batches (e.g. from a data loader)."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    device = model.W_E.device
    if isinstance(tokens, Tensor):
        tokens = model.check_tokens(tokens)
        for start in range(0, tokens.shape[0], batch_size):
            yield tokens[start : start + batch_size].to(device)
        return
    if isinstance(tokens, (str, bytes)) or not isinstance(tokens, Iterable):
        raise TypeError(f"tokens must be a [batch, pos] integer tensor or an iterable of them, got {type(tokens).__name__}")
    for batch in tokens:
        yield model.check_tokens(batch).to(device)


def check_sum(parts_sum: Tensor, whole: Tensor, what: str, atol: float | None = None) -> float:
    """Max |parts_sum - whole|; raises :class:`DecompositionError` above ``atol`` (default by dtype:
    1e-5 for float32, 1e-10 for float64, times ``max(1, max|whole|)``)."""
    error = (parts_sum - whole).abs().max().item() if whole.numel() else 0.0
    if atol is None:
        atol = default_atol(whole.dtype) * max(1.0, whole.abs().max().item() if whole.numel() else 0.0)
    if not error <= atol:  # also catches NaN
        raise DecompositionError(
            f"{what}: the terms do not add up to the whole (max |sum(terms) - whole| = {error:.3g} > tolerance {atol:.3g}). "
            "Something changes the forward pass that the decomposition does not model (a hook still attached to the model, "
            "or an unsupported architecture)."
        )
    return error


def default_atol(dtype: torch.dtype) -> float:
    if dtype == torch.float64:
        return 1e-10
    if dtype == torch.float32:
        return 1e-5
    return 1e-2  # half precision
