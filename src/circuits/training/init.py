"""Where a run's weights start and which of them it trains: ``train(init_from=..., freeze=...)``.

:class:`Parent` holds the weights a fine-tune starts from (a checkpoint or run folder, or a state
dict such as a ``load_hf`` model's) with its provenance: the folder and the SHA-256 of the weights,
recorded in ``run.json`` so that a resume with another parent is refused. :class:`Freeze` holds
``fnmatch`` patterns over parameter names; the parameters they match get ``requires_grad=False``,
are left out of the optimizer and stay bitwise equal. Both are checked against the model config
before anything is written (a shape mismatch, a pattern that matches nothing: a ``ValueError``).
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open

from circuits.config import TransformerConfig
from circuits.model import Transformer
from circuits.training import checkpoint as ckpt

__all__ = ["Parent", "Freeze", "parent_record", "parameter_shapes", "state_dict_sha256"]


def parameter_shapes(model_cfg: TransformerConfig) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every entry of the state dict of ``Transformer(model_cfg)``, without allocating it."""
    with torch.device("meta"):
        model = Transformer(model_cfg)
    return {name: tuple(tensor.shape) for name, tensor in model.state_dict().items()}


def state_dict_sha256(tensors: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over names, dtypes, shapes and bytes of a state dict, in name order."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


@dataclass(frozen=True)
class Freeze:
    """``fnmatch`` patterns over parameter names; the parameters they match are not trained."""

    patterns: tuple[str, ...] = ()

    @classmethod
    def build(cls, patterns: Sequence[str] | str, model_cfg: TransformerConfig) -> "Freeze":
        """Check ``patterns`` against the model's parameter names: each must match at least one."""
        if isinstance(patterns, str):
            patterns = (patterns,)
        patterns = tuple(patterns)
        bad = [pattern for pattern in patterns if not isinstance(pattern, str) or not pattern]
        if bad:
            raise TypeError(f"freeze patterns must be non-empty strings such as 'embed.*' or 'blocks.0.attn.*', got {bad!r}")
        with torch.device("meta"):
            names = [name for name, _ in Transformer(model_cfg).named_parameters()]
        for pattern in patterns:
            if not fnmatch.filter(names, pattern):
                raise ValueError(f"freeze pattern {pattern!r} matches no parameter of this model; parameters: {', '.join(names[:12])}{' ...' if len(names) > 12 else ''}")
        if all(any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns) for name in names):
            raise ValueError(f"freeze patterns {list(patterns)} match every parameter; nothing would be trained")
        return cls(patterns)

    def frozen(self, name: str) -> bool:
        return any(fnmatch.fnmatchcase(name, pattern) for pattern in self.patterns)

    def apply(self, model: torch.nn.Module) -> None:
        for name, param in model.named_parameters():
            if self.frozen(name):
                param.requires_grad_(False)


@dataclass(frozen=True)
class Parent:
    """The weights a run starts from (``None``: the seed's initialisation) and their provenance."""

    path: Path | None = None
    tensors: Mapping[str, torch.Tensor] | None = None
    sha256: str | None = None

    def record(self, freeze: Freeze) -> dict[str, Any]:
        """What goes into the run's identity (nothing for a fresh, fully trained run, so old records are unchanged)."""
        record: dict[str, Any] = {}
        if self.sha256 is not None:
            record["init_from"] = {"path": str(self.path) if self.path is not None else None, "sha256": self.sha256}
        if freeze.patterns:
            record["freeze"] = list(freeze.patterns)
        return record

    def load_into(self, model: Transformer) -> None:
        if self.path is not None:
            ckpt.load_weights(model, self.path)
        elif self.tensors is not None:
            model.load_state_dict({name: tensor.detach() for name, tensor in self.tensors.items()}, strict=True)


def parent_record(init_from: str | os.PathLike | Mapping[str, torch.Tensor] | None, model_cfg: TransformerConfig) -> Parent:
    """The :class:`Parent` of ``init_from``, its names and shapes checked against ``model_cfg``."""
    if init_from is None:
        return Parent()
    expected = parameter_shapes(model_cfg)
    if isinstance(init_from, Mapping):
        shapes = {name: tuple(tensor.shape) for name, tensor in init_from.items()}
        _check_shapes(shapes, expected, "the state dict given as init_from")
        return Parent(tensors=dict(init_from), sha256=state_dict_sha256(init_from))
    if not isinstance(init_from, (str, os.PathLike)):
        raise TypeError(f"init_from must be a checkpoint or run folder, or a state dict; got {type(init_from).__name__}")
    folder = ckpt.resolve_checkpoint(init_from)
    path = folder / ckpt.MODEL_FILE
    if not path.is_file():
        raise FileNotFoundError(f"init_from={str(init_from)!r}: {folder} holds no {ckpt.MODEL_FILE}; point at a checkpoint written by `circuits train`")
    with safe_open(str(path), framework="pt") as handle:
        shapes = {name: tuple(handle.get_slice(name).get_shape()) for name in handle.keys()}
    _check_shapes(shapes, expected, str(path))
    return Parent(path=folder, sha256=hashlib.sha256(path.read_bytes()).hexdigest())


def _check_shapes(shapes: Mapping[str, tuple[int, ...]], expected: Mapping[str, tuple[int, ...]], what: str) -> None:
    missing, unexpected = sorted(set(expected) - set(shapes)), sorted(set(shapes) - set(expected))
    if missing or unexpected:
        raise ValueError(f"{what} does not fit model_cfg: missing {missing[:5]}, unexpected {unexpected[:5]}; init_from needs the same architecture")
    for name, shape in shapes.items():
        if shape != expected[name]:
            raise ValueError(f"{what}: {name} has shape {shape}, model_cfg implies {expected[name]}; init_from needs the same sizes")
