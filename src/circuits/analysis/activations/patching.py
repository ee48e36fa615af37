"""Activation patching sweeps and path patching, with a user metric on the logits.

Conventions: ``clean`` and ``corrupted`` are token batches of the same shape; ``metric(logits)``
returns a scalar (a float or 0-d tensor) from the logits of a run on the *corrupted* tokens with
something patched in from the *clean* run. Results are :class:`PatchResult` tables with row and
column labels and the clean / corrupted metric values for normalization.

- :func:`patch_residual`: ``blocks.{l}.hook_resid_pre`` at one position (rows ``resid_pre{l}``, columns ``pos{p}``);
- :func:`patch_heads`: one head's output ``hook_z`` at every position (rows ``L{l}``, columns ``H{h}``);
- :func:`path_patch`: the path sender head -> receiver head only. The sender's output is
  patched to its clean value, every other head and MLP output in the layers from the sender's to
  the receiver's is frozen to its corrupted value, and the receiver's query/key/value input
  (``hook_q``/``hook_k``/``hook_v``) so obtained is patched into an otherwise free corrupted run.
  :func:`path_patch_senders` sweeps every earlier head as the sender.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor

from circuits.analysis.common import check_model, head_label, parse_head

Metric = Callable[[Tensor], Tensor | float]


@dataclass(frozen=True)
class PatchResult:
    """``values[r, c]`` = metric with the (row, column) activation patched; NaN where not defined."""

    values: Float[Tensor, "row col"]
    row_labels: list[str]
    col_labels: list[str]
    clean_metric: float
    corrupted_metric: float

    def normalized(self) -> Float[Tensor, "row col"]:
        """``(value - corrupted) / (clean - corrupted)``: 0 = no effect, 1 = restores the clean metric."""
        span = self.clean_metric - self.corrupted_metric
        if span == 0:
            raise ValueError("clean and corrupted metrics are equal, so the normalized effect is undefined")
        return (self.values - self.corrupted_metric) / span


def _setup(model, clean: Tensor, corrupted: Tensor) -> tuple[Tensor, Tensor]:
    check_model(model)
    clean, corrupted = model.check_tokens(clean), model.check_tokens(corrupted)
    if clean.shape != corrupted.shape:
        raise ValueError(f"clean and corrupted tokens must have the same shape, got {tuple(clean.shape)} and {tuple(corrupted.shape)}")
    return clean, corrupted


def _metric(metric: Metric, logits: Tensor) -> float:
    value = metric(logits)
    if isinstance(value, Tensor):
        if value.numel() != 1:
            raise ValueError(f"metric must return a scalar, got a tensor of shape {tuple(value.shape)}")
        return float(value)
    return float(value)


def _clean_and_corrupted(model, clean, corrupted, metric, names) -> tuple[float, float, Any, Any]:
    logits_clean, clean_cache = model.run_with_cache(clean, names_filter=names)
    logits_corrupt, corrupt_cache = model.run_with_cache(corrupted, names_filter=names)
    return _metric(metric, logits_clean), _metric(metric, logits_corrupt), clean_cache, corrupt_cache


def patch_residual(model, clean: Int[Tensor, "batch pos"], corrupted: Int[Tensor, "batch pos"], metric: Metric) -> PatchResult:
    """Patch the clean ``resid_pre`` of each layer at each position into the corrupted run (one run per cell)."""
    clean, corrupted = _setup(model, clean, corrupted)
    n_layers, n_pos = model.config.n_layers, clean.shape[1]
    names = [f"blocks.{l}.hook_resid_pre" for l in range(n_layers)]
    values = torch.full((n_layers, n_pos), float("nan"))
    with torch.no_grad():
        clean_metric, corrupt_metric, cache, _ = _clean_and_corrupted(model, clean, corrupted, metric, names)
        for l, name in enumerate(names):
            for p in range(n_pos):
                def hook(resid: Tensor, hook, name=name, p=p) -> Tensor:
                    resid = resid.clone()
                    resid[:, p] = cache[name][:, p]
                    return resid

                values[l, p] = _metric(metric, model.run_with_hooks(corrupted, fwd_hooks=[(name, hook)]))
    return PatchResult(values, [f"resid_pre{l}" for l in range(n_layers)], [f"pos{p}" for p in range(n_pos)], clean_metric, corrupt_metric)


def patch_heads(model, clean: Int[Tensor, "batch pos"], corrupted: Int[Tensor, "batch pos"], metric: Metric) -> PatchResult:
    """Patch each head's clean output (``hook_z``, all positions) into the corrupted run."""
    clean, corrupted = _setup(model, clean, corrupted)
    cfg = model.config
    names = [f"blocks.{l}.attn.hook_z" for l in range(cfg.n_layers)]
    values = torch.full((cfg.n_layers, cfg.n_heads), float("nan"))
    with torch.no_grad():
        clean_metric, corrupt_metric, cache, _ = _clean_and_corrupted(model, clean, corrupted, metric, names)
        for l, name in enumerate(names):
            for h in range(cfg.n_heads):
                def hook(z: Tensor, hook, name=name, h=h) -> Tensor:
                    z = z.clone()
                    z[:, :, h] = cache[name][:, :, h]
                    return z

                values[l, h] = _metric(metric, model.run_with_hooks(corrupted, fwd_hooks=[(name, hook)]))
    rows = [f"L{l}" for l in range(cfg.n_layers)]
    return PatchResult(values, rows, [f"H{h}" for h in range(cfg.n_heads)], clean_metric, corrupt_metric)


def _receiver_inputs(model, receiver_input: str) -> list[str]:
    inputs = list(dict.fromkeys(receiver_input))
    if not inputs or any(i not in "qkv" for i in inputs):
        raise ValueError(f"receiver_input must name the receiver's inputs among 'q', 'k', 'v' (e.g. 'k' or 'qkv'), got {receiver_input!r}")
    cfg = model.config
    if cfg.n_kv_heads_ != cfg.n_heads and any(i in "kv" for i in inputs):
        raise ValueError(
            "path patching into a key/value input is ambiguous with grouped-query attention (a key/value head serves "
            f"{cfg.n_heads // cfg.n_kv_heads_} query heads); patch receiver_input='q' only"
        )
    return inputs


def _path_patch_one(model, clean_z, corrupt_cache, corrupted, sender, receiver, inputs) -> Tensor:
    cfg = model.config
    (ls, hs), (lr, hr) = sender, receiver
    freeze = []

    def patch_sender(z: Tensor, hook) -> Tensor:
        z = corrupt_cache[hook.name].clone()  # every head of the sender's layer at its corrupted value...
        z[:, :, hs] = clean_z[:, :, hs]  # ...but the sender, clean
        return z

    freeze.append((f"blocks.{ls}.attn.hook_z", patch_sender))
    for l in range(ls + 1, lr):
        freeze.append((f"blocks.{l}.attn.hook_z", lambda z, hook: corrupt_cache[hook.name]))
    for l in range(ls, lr):
        if f"blocks.{l}.hook_mlp_out" in model.hook_dict:
            freeze.append((f"blocks.{l}.hook_mlp_out", lambda x, hook: corrupt_cache[hook.name]))
    recorded: dict[str, Tensor] = {}
    record = [(f"blocks.{lr}.attn.hook_{i}", lambda x, hook: recorded.__setitem__(hook.name, x[:, :, hr].clone())) for i in inputs]
    model.run_with_hooks(corrupted, fwd_hooks=freeze + record)

    def patch_receiver(x: Tensor, hook) -> Tensor:
        x = x.clone()
        x[:, :, hr] = recorded[hook.name]
        return x

    return model.run_with_hooks(corrupted, fwd_hooks=[(f"blocks.{lr}.attn.hook_{i}", patch_receiver) for i in inputs])


def _path_caches(model, clean, corrupted, metric):
    cfg = model.config
    names = [f"blocks.{l}.attn.hook_z" for l in range(cfg.n_layers)]
    names += [f"blocks.{l}.hook_mlp_out" for l in range(cfg.n_layers) if f"blocks.{l}.hook_mlp_out" in model.hook_dict]
    return _clean_and_corrupted(model, clean, corrupted, metric, names)


def path_patch(
    model,
    clean: Int[Tensor, "batch pos"],
    corrupted: Int[Tensor, "batch pos"],
    sender: str | tuple[int, int],
    receiver: str | tuple[int, int],
    metric: Metric,
    receiver_input: str = "qkv",
) -> float:
    """Metric after patching only the path ``sender -> receiver`` (through the receiver's ``receiver_input``: any of 'q', 'k', 'v')."""
    clean, corrupted = _setup(model, clean, corrupted)
    s, r = parse_head(model, sender), parse_head(model, receiver)
    if not s[0] < r[0]:
        raise ValueError(f"the sender {head_label(*s)} must be in an earlier layer than the receiver {head_label(*r)}")
    inputs = _receiver_inputs(model, receiver_input)
    with torch.no_grad():
        _, _, clean_cache, corrupt_cache = _path_caches(model, clean, corrupted, metric)
        clean_z = clean_cache[f"blocks.{s[0]}.attn.hook_z"]
        return _metric(metric, _path_patch_one(model, clean_z, corrupt_cache, corrupted, s, r, inputs))


def path_patch_senders(
    model,
    clean: Int[Tensor, "batch pos"],
    corrupted: Int[Tensor, "batch pos"],
    receiver: str | tuple[int, int],
    metric: Metric,
    receiver_input: str = "qkv",
) -> PatchResult:
    """:func:`path_patch` from every head in an earlier layer into ``receiver`` (rows ``L{l}``, columns ``H{h}``; NaN elsewhere)."""
    clean, corrupted = _setup(model, clean, corrupted)
    r = parse_head(model, receiver)
    inputs = _receiver_inputs(model, receiver_input)
    cfg = model.config
    values = torch.full((cfg.n_layers, cfg.n_heads), float("nan"))
    with torch.no_grad():
        clean_metric, corrupt_metric, clean_cache, corrupt_cache = _path_caches(model, clean, corrupted, metric)
        for l in range(r[0]):
            for h in range(cfg.n_heads):
                clean_z = clean_cache[f"blocks.{l}.attn.hook_z"]
                logits = _path_patch_one(model, clean_z, corrupt_cache, corrupted, (l, h), r, inputs)
                values[l, h] = _metric(metric, logits)
    rows = [f"L{l}" for l in range(cfg.n_layers)]
    return PatchResult(values, rows, [f"H{h}" for h in range(cfg.n_heads)], clean_metric, corrupt_metric)
