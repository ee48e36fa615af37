"""Sparse autoencoders (Bricken et al. 2023, "Towards Monosemanticity"; Gao et al. 2024, TopK): a dictionary of directions.

An SAE reads an activation ``x [..., d_in]`` (e.g. ``blocks.0.hook_resid_post``) and writes it as a
sparse, non-negative combination of ``d_sae`` learned directions, the rows of ``W_dec``::

    x_n     = input_scale * x                                   input normalisation (a fixed scalar)
    pre     = (x_n - b_dec) @ W_enc + b_enc                     hook_sae_acts_pre   [..., d_sae]
    acts    = ReLU(pre)            ("standard": ReLU + L1)      hook_sae_acts_post  [..., d_sae]
            = TopK_k(ReLU(pre))    ("topk": all but the k largest zeroed)
    x_hat_n = acts @ W_dec + b_dec                              hook_sae_recons     [..., d_in]
    x_hat   = x_hat_n / input_scale                             hook_sae_output (in the input's units)

Names and shapes are SAELens's (``W_enc [d_in, d_sae]``, ``b_enc [d_sae]``, ``W_dec [d_sae, d_in]``,
``b_dec [d_in]``, ``apply_b_dec_to_input``); the paper writes the transposes (``f = ReLU(W_e (x - b_d) + b_e)``,
``x_hat = b_d + sum_i f_i d_i``). Practices the field converged on, built in: the decoder rows
(dictionary directions) have unit norm (:meth:`SparseAutoencoder.normalize_decoder_`, kept during
training, so an L1 penalty on ``acts`` cannot be dodged by shrinking ``acts`` and growing ``W_dec``);
the encoder starts as the decoder's transpose; ``input_scale`` maps the inputs to a mean norm of
``sqrt(d_in)`` (SAELens's ``expected_average_only_in``) so that one L1 coefficient and learning rate
work across hooks; it is estimated once, before training (:func:`circuits.training.sae.train_sae`).
The activation is chosen once, at build time (one small class per variant).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Literal, no_type_check

import torch
from jaxtyping import Float
from torch import Tensor, nn
from transformer_lens import HookedRootModule
from transformer_lens.hook_points import HookPoint

__all__ = ["SAEConfig", "SparseAutoencoder", "ReLUActivation", "TopKActivation", "ARCHITECTURES"]

Architecture = Literal["standard", "topk"]
ARCHITECTURES: tuple[str, ...] = ("standard", "topk")


@no_type_check
@dataclass(frozen=True, kw_only=True)
class SAEConfig:
    """What an SAE is: its sizes, its activation, and where it reads (``hook_name`` of ``model_name``).

    ``architecture="standard"`` is ReLU trained with an L1 penalty; ``"topk"`` keeps the ``k``
    largest pre-activations of each input (``k`` required, at most ``d_sae``). ``seed`` draws the
    initial dictionary. ``hook_name``/``model_name``/``context_size`` are metadata written to the
    SAELens ``cfg.json``.
    """

    d_in: int
    d_sae: int
    architecture: Architecture = "standard"
    k: int | None = None
    seed: int = 0
    hook_name: str = ""
    model_name: str = ""
    context_size: int | None = None

    def __post_init__(self) -> None:
        for name in ("d_in", "d_sae"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"SAEConfig.{name}={value!r} must be a positive int")
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"SAEConfig.architecture={self.architecture!r} is not one of {ARCHITECTURES}")
        if self.architecture == "topk":
            if isinstance(self.k, bool) or not isinstance(self.k, int) or not 1 <= self.k <= self.d_sae:
                raise ValueError(f"SAEConfig.k={self.k!r}: a topk SAE needs an int k with 1 <= k <= d_sae={self.d_sae}")
        elif self.k is not None:
            raise ValueError(f"SAEConfig.k={self.k!r} is only for architecture='topk'; leave it None for 'standard'")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"SAEConfig.seed={self.seed!r} must be an int")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class ReLUActivation(nn.Module):
    """``ReLU(pre)``: the standard SAE, made sparse by an L1 penalty during training."""

    def forward(self, pre: Tensor) -> Tensor:
        return torch.relu(pre)


class TopKActivation(nn.Module):
    """``ReLU`` of the ``k`` largest pre-activations of each input, zero elsewhere (Gao et al. 2024; SAELens's ``TopK``)."""

    def __init__(self, k: int):
        super().__init__()
        self.k = k

    def forward(self, pre: Tensor) -> Tensor:
        top = pre.topk(self.k, dim=-1)
        return torch.zeros_like(pre).scatter_(-1, top.indices, torch.relu(top.values))


def make_activation(cfg: SAEConfig) -> nn.Module:
    return TopKActivation(cfg.k) if cfg.architecture == "topk" else ReLUActivation()


class SparseAutoencoder(HookedRootModule):
    """The SAE of :class:`SAEConfig` (see the module docstring for the equations and conventions).

    ``encode(x)`` gives the latent activations ``[..., d_sae]``, ``decode(acts)`` the reconstruction
    in the input's units, ``forward(x)`` both in one (returns the reconstruction). Hook points
    (SAELens's names): ``hook_sae_input``, ``hook_sae_acts_pre``, ``hook_sae_acts_post``,
    ``hook_sae_recons``, ``hook_sae_output``.
    """

    def __init__(self, cfg: SAEConfig):
        if not isinstance(cfg, SAEConfig):
            raise TypeError(f"SparseAutoencoder expects an SAEConfig, got {type(cfg).__name__}")
        super().__init__()
        self.config = cfg
        generator = torch.Generator().manual_seed(cfg.seed)
        W_dec = torch.randn(cfg.d_sae, cfg.d_in, generator=generator)
        W_dec = W_dec / W_dec.norm(dim=-1, keepdim=True)
        self.W_dec = nn.Parameter(W_dec)  # [d_sae, d_in], unit rows
        self.W_enc = nn.Parameter(W_dec.T.clone().contiguous())  # [d_in, d_sae], the decoder's transpose
        self.b_enc = nn.Parameter(torch.zeros(cfg.d_sae))
        self.b_dec = nn.Parameter(torch.zeros(cfg.d_in))
        self.register_buffer("input_scale", torch.tensor(1.0))
        self.activation = make_activation(cfg)
        self.hook_sae_input = HookPoint()
        self.hook_sae_acts_pre = HookPoint()
        self.hook_sae_acts_post = HookPoint()
        self.hook_sae_recons = HookPoint()
        self.hook_sae_output = HookPoint()
        self.setup()

    # ---- the computation -----------------------------------------------------------------------
    def pre_activations(self, x: Float[Tensor, "... d_in"]) -> Float[Tensor, "... d_sae"]:
        """``(input_scale * x - b_dec) @ W_enc + b_enc``: the encoder's output before the activation."""
        self.check_input(x)
        return self.pre_activations_normalized(self.hook_sae_input(x * self.input_scale))

    def pre_activations_normalized(self, x_n: Float[Tensor, "... d_in"]) -> Float[Tensor, "... d_sae"]:
        """``(x_n - b_dec) @ W_enc + b_enc`` for inputs already scaled by ``input_scale`` (the training step's entry)."""
        return self.hook_sae_acts_pre((x_n - self.b_dec) @ self.W_enc + self.b_enc)

    def encode(self, x: Float[Tensor, "... d_in"]) -> Float[Tensor, "... d_sae"]:
        """The latent activations (non-negative; at most ``k`` non-zero per input for ``topk``)."""
        return self.hook_sae_acts_post(self.activation(self.pre_activations(x)))

    def decode_normalized(self, acts: Float[Tensor, "... d_sae"]) -> Float[Tensor, "... d_in"]:
        """``acts @ W_dec + b_dec``: the reconstruction in normalised units (what the training loss compares)."""
        return self.hook_sae_recons(acts @ self.W_dec + self.b_dec)

    def decode(self, acts: Float[Tensor, "... d_sae"]) -> Float[Tensor, "... d_in"]:
        """The reconstruction in the input's units."""
        return self.hook_sae_output(self.decode_normalized(acts) / self.input_scale)

    def forward(self, x: Float[Tensor, "... d_in"]) -> Float[Tensor, "... d_in"]:
        return self.decode(self.encode(x))

    def check_input(self, x: Tensor) -> None:
        if not isinstance(x, Tensor) or not x.is_floating_point():
            raise TypeError(f"SAE input must be a float tensor [..., d_in], got {type(x).__name__} {getattr(x, 'dtype', '')}")
        if x.shape[-1:] != (self.config.d_in,):
            raise ValueError(
                f"SAE input has shape {tuple(x.shape)}, but this SAE reads d_in={self.config.d_in} "
                f"(hook {self.config.hook_name or '?'}); pass activations whose last axis is {self.config.d_in}"
            )

    # ---- constraints kept during training --------------------------------------------------------
    @torch.no_grad()
    def normalize_decoder_(self) -> None:
        """Rescale every dictionary direction (row of ``W_dec``) to unit norm."""
        self.W_dec.div_(self.W_dec.norm(dim=-1, keepdim=True).clamp_min(1e-12))

    @torch.no_grad()
    def remove_parallel_gradient_(self) -> None:
        """Project out of ``W_dec.grad`` its component along each row (so a step moves directions, not lengths)."""
        if self.W_dec.grad is None:
            return
        parallel = (self.W_dec.grad * self.W_dec).sum(-1, keepdim=True)
        self.W_dec.grad.sub_(parallel * self.W_dec)

    @torch.no_grad()
    def set_input_scale_(self, sample: Float[Tensor, "batch d_in"]) -> float:
        """Set ``input_scale = sqrt(d_in) / mean ||x||`` from a sample of inputs; returns it."""
        self.check_input(sample)
        mean_norm = float(sample.double().norm(dim=-1).mean())
        if not math.isfinite(mean_norm) or mean_norm <= 0:
            raise ValueError(f"cannot normalise inputs whose mean norm is {mean_norm}: are the activations all zero or non-finite?")
        scale = math.sqrt(self.config.d_in) / mean_norm
        self.input_scale.fill_(scale)
        return scale

    # ---- views -----------------------------------------------------------------------------------
    def dictionary(self) -> Float[Tensor, "d_sae d_in"]:
        """The unit dictionary directions in the input's space (rows of ``W_dec`` normalised; detached)."""
        W = self.W_dec.detach()
        return W / W.norm(dim=-1, keepdim=True).clamp_min(1e-12)

    def folded_weights(self) -> dict[str, Tensor]:
        """``W_enc``, ``b_enc``, ``W_dec``, ``b_dec`` with ``input_scale`` folded in (an SAE of scale 1, same function).

        ``W_enc * s``, ``W_dec / s``, ``b_dec / s`` (SAELens's ``fold_activation_norm_scaling_factor``):
        what the SAELens-format checkpoint stores, so SAELens reads raw activations.
        """
        s = self.input_scale.detach()
        return {
            "W_enc": (self.W_enc.detach() * s).contiguous(),
            "b_enc": self.b_enc.detach().clone(),
            "W_dec": (self.W_dec.detach() / s).contiguous(),
            "b_dec": (self.b_dec.detach() / s).contiguous(),
        }

    def extra_repr(self) -> str:
        c = self.config
        k = f", k={c.k}" if c.k is not None else ""
        return f"d_in={c.d_in}, d_sae={c.d_sae}, architecture={c.architecture!r}{k}, hook={c.hook_name!r}"
