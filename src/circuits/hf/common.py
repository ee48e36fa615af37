"""Shared helpers of the Hugging Face importers and exporters (internal)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


class UnsupportedCheckpointError(ValueError):
    """A Hugging Face checkpoint uses an option that ``circuits.Transformer`` cannot reproduce exactly."""


class UnsupportedExportError(ValueError):
    """A ``circuits.Transformer`` has config fields that the target Hugging Face architecture cannot express."""


def require(config: dict[str, Any], architecture: str, key: str, allowed: tuple[Any, ...], why: str, default: Any = None) -> Any:
    """``config[key]`` (or ``default`` when absent), which must be one of ``allowed``."""
    value = config.get(key, default)
    if value not in allowed:
        raise UnsupportedCheckpointError(
            f"{architecture} config.json has {key}={value!r}; circuits can load only {key} in {list(allowed)} ({why})"
        )
    return value


def get_int(config: dict[str, Any], architecture: str, key: str, default: Any = None) -> int:
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{architecture} config.json needs an integer {key!r}, got {value!r}")
    return value


def get_float(config: dict[str, Any], architecture: str, key: str, default: Any = None) -> float:
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{architecture} config.json needs a number {key!r}, got {value!r}")
    return float(value)


#: Hugging Face activation names -> our ``act_fn``. ``gelu_pytorch_tanh`` is the same tanh
#: approximation as ``gelu_new`` (GPT-2's), computed by a different kernel (differences ~1e-7).
ACT_FROM_HF = {"gelu_new": "gelu_new", "gelu_pytorch_tanh": "gelu_new", "gelu": "gelu", "relu": "relu", "silu": "silu", "swish": "silu"}


def get_activation(config: dict[str, Any], architecture: str, key: str, default: str) -> str:
    """Our ``act_fn`` for ``config[key]`` (or ``default`` when absent); an activation we do not have is refused."""
    activation = config.get(key, default)
    if activation not in ACT_FROM_HF:
        raise UnsupportedCheckpointError(f"{architecture} config.json has {key}={activation!r}; circuits supports {sorted(ACT_FROM_HF)}")
    return ACT_FROM_HF[activation]


def get_heads(config: dict[str, Any], architecture: str, width_key: str, heads_key: str) -> tuple[int, int]:
    """``(d_model, n_heads)`` from ``config[width_key]`` and ``config[heads_key]``; the width must divide into the heads."""
    d_model, n_heads = get_int(config, architecture, width_key), get_int(config, architecture, heads_key)
    if d_model % n_heads:
        raise ValueError(f"{architecture} config.json: {width_key}={d_model} is not divisible by {heads_key}={n_heads}")
    return d_model, n_heads


def zeros_like_or(tensor: Tensor | None, shape: tuple[int, ...], like: Tensor) -> Tensor:
    """``tensor`` itself, or zeros of ``shape`` when the model has no such parameter (``use_bias=False``)."""
    if tensor is not None:
        return tensor.detach()
    return torch.zeros(shape, dtype=like.dtype, device=like.device)


def require_zero(tensor: Tensor | None, name: str, target: str, fix: str) -> None:
    """Export refuses to drop a parameter the target has no place for unless it is exactly zero."""
    if tensor is not None and bool(tensor.detach().ne(0).any()):
        raise UnsupportedExportError(f"{name} is nonzero, but {target} has no such parameter; {fix}")
