"""How good is a sparse autoencoder: sparsity, reconstruction, dead and dense latents, and the loss when it is spliced in.

Definitions (``x`` the activations ``[n, d_in]``, ``x_hat`` the SAE's reconstruction, ``f`` its
latent activations ``[n, d_sae]``):

``l0``              mean over inputs of the number of non-zero latents, ``mean_n #{i : f_i > 0}``.
``fvu``             fraction of variance unexplained **about the mean**:
                    ``sum ||x - x_hat||^2 / sum ||x - mean(x)||^2``. 1 for an SAE that outputs the
                    mean, 0 for a perfect one.
``fvu_about_zero``  ``sum ||x - x_hat||^2 / sum ||x||^2``: the error divided by the *second moment*.
                    When the activations have a large mean (a residual stream usually does) this
                    looks far better than it is: an SAE that only learned ``b_dec = mean(x)`` scores
                    ``||var|| / (||var|| + n ||mean||^2)``. SAELens reported this for a long time; it
                    is shown only for comparison.
``firing_frequency``per latent, the fraction of inputs on which it is non-zero.
``dead_fraction``   fraction of latents that never fire on the evaluated inputs.
``dense_fraction``  fraction of latents firing on more than ``dense_threshold`` of inputs (default 10%).
``ce_recovered``    with the model's next-token cross-entropy ``CE_clean``, ``CE_spliced`` (the hook's
                    activation replaced by the SAE's reconstruction) and ``CE_zero`` (replaced by zeros):
                    ``(CE_zero - CE_spliced) / (CE_zero - CE_clean)``: 1 when splicing costs nothing,
                    0 when it is as bad as deleting the activation.
``mean_max_cosine`` for known true directions ``F [n_true, d_in]``: the mean over true features of
                    the largest cosine similarity with any dictionary direction (Sharkey et al. 2022's MMCS).

:func:`evaluate_sae` computes all of them streaming over token batches (three forward passes per
batch through ``run_with_hooks``: clean, spliced, zero-ablated), accumulating in float64, so the
memory does not grow with the number of tokens.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import no_type_check

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor

from circuits.analysis.common import check_model
from circuits.model.sae import SparseAutoencoder
from circuits.model.transformer import Transformer

__all__ = [
    "l0", "fvu", "fvu_about_zero", "firing_frequency", "dead_fraction", "dense_fraction", "ce_recovered", "mean_max_cosine",
    "ReconstructionStats", "SAEEvaluation", "evaluate_sae", "max_cosines", "PlantedRecovery", "planted_recovery",
]


# ---- definitions on tensors -----------------------------------------------------------------------
def l0(acts: Float[Tensor, "n d_sae"]) -> float:
    """Mean number of non-zero latents per input."""
    return float((acts != 0).sum(-1).double().mean())


@no_type_check  # shapes checked with our own message
def fvu(x: Float[Tensor, "n d_in"], x_hat: Float[Tensor, "n d_in"]) -> float:
    """Fraction of variance unexplained about the mean: ``sum ||x - x_hat||^2 / sum ||x - mean(x)||^2``."""
    _check_pair(x, x_hat)
    x, x_hat = x.double(), x_hat.double()
    return float((x - x_hat).pow(2).sum() / (x - x.mean(0)).pow(2).sum())


@no_type_check
def fvu_about_zero(x: Float[Tensor, "n d_in"], x_hat: Float[Tensor, "n d_in"]) -> float:
    """``sum ||x - x_hat||^2 / sum ||x||^2`` (the misleading variant, for comparison; see the module docstring)."""
    _check_pair(x, x_hat)
    x, x_hat = x.double(), x_hat.double()
    return float((x - x_hat).pow(2).sum() / x.pow(2).sum())


def _check_pair(x: Tensor, x_hat: Tensor) -> None:
    if x.shape != x_hat.shape or x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"x and x_hat must be [n, d_in] tensors of the same shape with n >= 2, got {tuple(x.shape)} and {tuple(x_hat.shape)}")


def firing_frequency(acts: Float[Tensor, "n d_sae"]) -> Float[Tensor, "d_sae"]:
    """Per latent, the fraction of inputs on which it is non-zero."""
    return (acts != 0).double().mean(0)


def dead_fraction(frequency: Float[Tensor, "d_sae"]) -> float:
    """Fraction of latents that never fire."""
    return float((torch.as_tensor(frequency) == 0).double().mean())


def dense_fraction(frequency: Float[Tensor, "d_sae"], threshold: float = 0.1) -> float:
    """Fraction of latents firing on more than ``threshold`` of inputs."""
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"dense threshold {threshold!r} must be a fraction in (0, 1)")
    return float((torch.as_tensor(frequency) > threshold).double().mean())


def ce_recovered(ce_clean: float, ce_spliced: float, ce_zero: float) -> float:
    """``(CE_zero - CE_spliced) / (CE_zero - CE_clean)``; NaN when zero-ablation costs nothing."""
    gap = ce_zero - ce_clean
    return (ce_zero - ce_spliced) / gap if gap > 0 else float("nan")


def mean_max_cosine(true_directions: Float[Tensor, "feature d_in"], dictionary: Float[Tensor, "d_sae d_in"]) -> float:
    """Mean over true features of the largest cosine similarity with any dictionary direction."""
    return float(max_cosines(true_directions, dictionary).mean())


def max_cosines(true_directions: Float[Tensor, "feature d_in"], dictionary: Float[Tensor, "d_sae d_in"]) -> Float[Tensor, "feature"]:
    """Per true feature, its largest cosine similarity with any dictionary direction."""
    if true_directions.ndim != 2 or dictionary.ndim != 2 or true_directions.shape[1] != dictionary.shape[1]:
        raise ValueError(f"true directions {tuple(true_directions.shape)} and dictionary {tuple(dictionary.shape)} must be [*, d_in] with the same d_in")
    a = true_directions.double() / true_directions.double().norm(dim=-1, keepdim=True)
    b = dictionary.double() / dictionary.double().norm(dim=-1, keepdim=True)
    return (a @ b.T).max(dim=1).values


# ---- streaming accumulation -----------------------------------------------------------------------
class ReconstructionStats:
    """Running sums (float64) from which L0, both FVUs and firing frequencies follow; add batches with :meth:`add`."""

    def __init__(self, d_in: int, d_sae: int):
        self.n = 0
        self.sum_x = torch.zeros(d_in, dtype=torch.float64)
        self.sum_sq = 0.0  # sum ||x||^2
        self.sse = 0.0  # sum ||x - x_hat||^2
        self.active = 0.0
        self.fired = torch.zeros(d_sae, dtype=torch.float64)

    def add(self, x: Tensor, x_hat: Tensor, acts: Tensor) -> None:
        x, x_hat = x.double(), x_hat.double()
        self.n += x.shape[0]
        self.sum_x += x.sum(0)
        self.sum_sq += float(x.pow(2).sum())
        self.sse += float((x - x_hat).pow(2).sum())
        nonzero = acts != 0
        self.active += float(nonzero.sum())
        self.fired += nonzero.sum(0).double()

    def fvu(self) -> float:
        centred = self.sum_sq - float(self.sum_x.pow(2).sum()) / self.n
        return self.sse / centred if centred > 0 else float("nan")

    def fvu_about_zero(self) -> float:
        return self.sse / self.sum_sq if self.sum_sq > 0 else float("nan")

    def l0(self) -> float:
        return self.active / self.n

    def frequency(self) -> Tensor:
        return self.fired / self.n


@dataclass(frozen=True, kw_only=True)
class SAEEvaluation:
    """The metrics of :func:`evaluate_sae` (see the module docstring); cross-entropies in nats per predicted token."""

    n_activations: int
    l0: float
    fvu: float
    fvu_about_zero: float
    dead_fraction: float
    dense_fraction: float
    dense_threshold: float
    firing_frequency: np.ndarray  #: [d_sae]
    ce_clean: float
    ce_spliced: float
    ce_zero_ablated: float
    ce_recovered: float


def evaluate_sae(
    model: Transformer, sae: SparseAutoencoder, token_batches: Iterable[Int[Tensor, "batch pos"]],
    *, hook_name: str | None = None, skip_first: int = 1, dense_threshold: float = 0.1,
) -> SAEEvaluation:
    """Metrics of ``sae`` on ``hook_name`` (default: the SAE's own) over token batches, streaming.

    Positions ``skip_first:`` of each window are read, spliced and ablated (the ``BOS`` position
    is left as it is, as in training); the cross-entropies average the predictions made from
    those positions.
    """
    check_model(model)
    hook_name = hook_name or sae.config.hook_name
    if hook_name not in model.hook_dict:
        raise model.hook_name_error(hook_name)
    stats = ReconstructionStats(sae.config.d_in, sae.config.d_sae)
    ce = torch.zeros(3, dtype=torch.float64)
    n_predictions = 0
    with torch.no_grad():
        for tokens in token_batches:
            losses = _three_losses(model, sae, hook_name, tokens, skip_first, stats)
            ce += losses.sum(-1)
            n_predictions += losses.shape[-1]
    if stats.n == 0:
        raise ValueError("evaluate_sae got no token batches")
    clean, spliced, zero = (float(v) / n_predictions for v in ce)
    frequency = stats.frequency()
    return SAEEvaluation(
        n_activations=stats.n, l0=stats.l0(), fvu=stats.fvu(), fvu_about_zero=stats.fvu_about_zero(),
        dead_fraction=dead_fraction(frequency), dense_fraction=dense_fraction(frequency, dense_threshold), dense_threshold=dense_threshold,
        firing_frequency=frequency.numpy(), ce_clean=clean, ce_spliced=spliced, ce_zero_ablated=zero, ce_recovered=ce_recovered(clean, spliced, zero),
    )


def _three_losses(model: Transformer, sae: SparseAutoencoder, hook_name: str, tokens: Tensor, skip_first: int, stats: ReconstructionStats) -> Tensor:
    """``[3, predictions]`` per-token losses (clean, SAE spliced in, zero-ablated) of one batch; adds its reconstruction to ``stats``."""
    tokens = model.check_tokens(tokens)
    if tokens.shape[1] < skip_first + 2:
        raise ValueError(f"windows of {tokens.shape[1]} tokens are too short for skip_first={skip_first} (need at least {skip_first + 2})")

    def splice(act: Tensor, hook) -> Tensor:
        x = act[:, skip_first:]
        acts = sae.encode(x)
        x_hat = sae.decode(acts)
        stats.add(x.reshape(-1, x.shape[-1]), x_hat.reshape(-1, x.shape[-1]), acts.reshape(-1, acts.shape[-1]))
        out = act.clone()
        out[:, skip_first:] = x_hat
        return out

    def zero(act: Tensor, hook) -> Tensor:
        out = act.clone()
        out[:, skip_first:] = 0.0
        return out

    clean = model(tokens, return_type="per_token_loss")
    spliced = model.run_with_hooks(tokens, return_type="per_token_loss", fwd_hooks=[(hook_name, splice)])
    ablated = model.run_with_hooks(tokens, return_type="per_token_loss", fwd_hooks=[(hook_name, zero)])
    return torch.stack([clean, spliced, ablated])[:, :, skip_first:].reshape(3, -1).double()


# ---- known features ---------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class PlantedRecovery:
    """How well an SAE's dictionary matches known feature directions, and its metrics on a sample ``x``."""

    max_cosines: np.ndarray  #: [feature] each true feature's best cosine with a dictionary direction
    mean_max_cosine: float
    dead_fraction: float  #: latents that never fire on ``x``
    l0: float
    fvu: float
    fvu_about_zero: float
    n_activations: int


def planted_recovery(sae: SparseAutoencoder, true_directions: Float[Tensor, "feature d_in"], x: Float[Tensor, "n d_in"]) -> PlantedRecovery:
    """Mean max cosine of ``true_directions`` against ``sae``'s dictionary, with L0, FVU and dead latents on ``x``."""
    with torch.no_grad():
        acts = sae.encode(x)
        x_hat = sae.decode(acts)
    cosines = max_cosines(true_directions, sae.dictionary())
    return PlantedRecovery(
        max_cosines=cosines.numpy(), mean_max_cosine=float(cosines.mean()), dead_fraction=dead_fraction(firing_frequency(acts)),
        l0=l0(acts), fvu=fvu(x, x_hat), fvu_about_zero=fvu_about_zero(x, x_hat), n_activations=int(x.shape[0]),
    )
