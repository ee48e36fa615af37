"""Synthetic activations built from known sparse features: the ground truth an SAE should recover.

``x = offset + sum_i c_i f_i`` with ``n_features`` random unit directions ``f_i`` in ``d_in``
dimensions (more features than dimensions: superposition), each present independently with
probability ``p`` and of magnitude ``c_i ~ U[0, 1]`` when present (the Toy Models paper's feature
distribution), plus a fixed ``offset`` (so that variance about the mean and about zero differ).
Every batch is a pure function of ``(seed, batch index)``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from circuits.training.data import step_generator

__all__ = ["PlantedFeatures"]


@dataclass(frozen=True, kw_only=True)
class PlantedFeatures:
    """``n_features`` unit directions in ``d_in`` dimensions, each active with probability ``p`` (see the module docstring)."""

    n_features: int
    d_in: int
    p: float
    offset_norm: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("n_features", "d_in"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"PlantedFeatures.{name}={value!r} must be a positive int")
        if not 0.0 < self.p <= 1.0:
            raise ValueError(f"PlantedFeatures.p={self.p!r} must be a probability in (0, 1]")
        if not math.isfinite(self.offset_norm) or self.offset_norm < 0:
            raise ValueError(f"PlantedFeatures.offset_norm={self.offset_norm!r} must be a finite number >= 0")

    def directions(self) -> Float[Tensor, "feature d_in"]:
        """The true feature directions (unit rows), drawn from ``seed``."""
        generator = torch.Generator().manual_seed(self.seed)
        f = torch.randn(self.n_features, self.d_in, generator=generator)
        return f / f.norm(dim=-1, keepdim=True)

    def offset(self) -> Float[Tensor, "d_in"]:
        generator = torch.Generator().manual_seed(self.seed + 1)
        v = torch.randn(self.d_in, generator=generator)
        return v / v.norm() * self.offset_norm

    def sample(self, n: int, generator: torch.Generator) -> tuple[Float[Tensor, "n d_in"], Float[Tensor, "n feature"]]:
        """``n`` activations and their true feature coefficients."""
        present = torch.rand(n, self.n_features, generator=generator) < self.p
        coefficients = torch.rand(n, self.n_features, generator=generator) * present
        return coefficients @ self.directions() + self.offset(), coefficients

    def batches(self, n_batches: int, batch_size: int, seed: int = 0) -> Iterator[Float[Tensor, "batch d_in"]]:
        """``n_batches`` batches of activations, batch ``i`` from ``(seed, i)`` alone."""
        directions, offset = self.directions(), self.offset()
        for i in range(n_batches):
            generator = step_generator(seed, i)
            present = torch.rand(batch_size, self.n_features, generator=generator) < self.p
            coefficients = torch.rand(batch_size, self.n_features, generator=generator) * present
            yield coefficients @ directions + offset
