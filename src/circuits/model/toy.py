"""The toy model of superposition (Elhage et al. 2022, "Toy Models of Superposition"): ``x' = ReLU(W^T W x + b)``.

``n`` features are squeezed into ``m < n`` hidden dimensions by ``W [m, n]`` and read back out by its
transpose, with a bias and a ReLU. Many independent models ("instances", e.g. one per sparsity)
are stored as one batched model with a leading ``instance`` axis, so that one optimizer step trains
them all.

Axis names: ``batch``, ``instance``, ``feature`` (``n``), ``d_hidden`` (``m``). Feature ``i``'s
direction in hidden space is the column ``W_i = W[instance, :, i]``; :meth:`ToyModel.feature_directions`
returns them as rows ``[instance, feature, d_hidden]`` (the ground truth a sparse dictionary should recover).
Training lives in :mod:`circuits.training.toy`; the analyses (norms, superposition, dimensionality,
geometry) in :mod:`circuits.analysis.superposition`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import nn

__all__ = ["ToyModelConfig", "ToyModel"]


@dataclass(frozen=True, kw_only=True)
class ToyModelConfig:
    """Shape of a batched toy model: ``n_instances`` independent models of ``n_features`` features in ``d_hidden`` dimensions."""

    n_features: int  #: n, the number of input features
    d_hidden: int  #: m, the hidden dimensions (m < n for superposition to be possible; m >= n is allowed)
    n_instances: int = 1  #: independent models trained together

    def __post_init__(self) -> None:
        for name in ("n_features", "d_hidden", "n_instances"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"ToyModelConfig.{name} must be an int, got {value!r} ({type(value).__name__})")
            if value < 1:
                raise ValueError(f"ToyModelConfig.{name} must be >= 1, got {value}; e.g. n_features=5, d_hidden=2, n_instances=8")


class ToyModel(nn.Module):
    """``n_instances`` toy models ``x' = ReLU(W^T W x + b_final)`` with ``W [instance, d_hidden, feature]``.

    Initialisation is Xavier-normal per instance (as in the paper's code and ARENA), the bias zero;
    pass a ``torch.Generator`` for a reproducible initialisation.
    """

    def __init__(self, cfg: ToyModelConfig, *, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        std = (2.0 / (cfg.n_features + cfg.d_hidden)) ** 0.5  # Xavier normal of a [d_hidden, feature] matrix
        W = torch.randn(cfg.n_instances, cfg.d_hidden, cfg.n_features, generator=generator) * std
        self.W = nn.Parameter(W)
        self.b_final = nn.Parameter(torch.zeros(cfg.n_instances, cfg.n_features))

    def hidden(self, x: Float[torch.Tensor, "batch instance feature"]) -> Float[torch.Tensor, "batch instance d_hidden"]:
        """The hidden activations ``h = W x`` (what a sparse autoencoder on this model reads)."""
        self._check_input(x)
        return torch.einsum("ihf,bif->bih", self.W, x)

    def forward(self, x: Float[torch.Tensor, "batch instance feature"]) -> Float[torch.Tensor, "batch instance feature"]:
        """The reconstruction ``x' = ReLU(W^T W x + b_final)``."""
        h = self.hidden(x)
        return torch.relu(torch.einsum("ihf,bih->bif", self.W, h) + self.b_final)

    def feature_directions(self) -> Float[torch.Tensor, "instance feature d_hidden"]:
        """Each feature's direction ``W_i`` in hidden space, as rows (a detached copy)."""
        return self.W.detach().transpose(1, 2).clone()

    def _check_input(self, x: torch.Tensor) -> None:
        want = (self.cfg.n_instances, self.cfg.n_features)
        if x.ndim != 3 or tuple(x.shape[1:]) != want:
            raise ValueError(f"ToyModel expects x of shape [batch, {want[0]} instances, {want[1]} features], got {tuple(x.shape)}")
