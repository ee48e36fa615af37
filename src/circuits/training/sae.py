"""Training sparse autoencoders on activations streamed from a model's hook, batch by batch.

Activations are never stored: :func:`hook_activations` runs each token batch through
``model.run_with_hooks`` with one hook on ``hook_name`` that copies the activation out and stops the
forward pass there (the layers above it are not computed), and :func:`train_sae` consumes the
resulting stream one batch at a time, so memory does not grow with the number of tokens
(``benchmarks/bench_sae.py`` measures it over 1M tokens). Any iterable of ``[n, d_in]`` tensors can
be trained on (synthetic activations with known features, a toy model's hidden layer).

The objective, in the SAE's normalised units (``x_n = input_scale * x``,
:mod:`circuits.model.sae`)::

    loss = mean_batch ||x_hat_n - x_n||^2  +  l1_coefficient * mean_batch sum_i acts_i     ("standard")
    loss = mean_batch ||x_hat_n - x_n||^2  +  aux_coefficient * AuxK                       ("topk")

with the decoder rows held at unit norm (gradient component along each row removed before the
Adam step, rows renormalised after it: Towards Monosemanticity). Before the first step
``input_scale`` is set from the first batch (mean norm ``sqrt(d_in)``) and ``b_dec`` to that batch's
mean (normalised), so the SAE starts as "predict the mean" (FVU 1 about the mean).

Dead latents. A latent is *dead* when it has not fired (activation > 0) for ``dead_window`` steps.
Two remedies: ``resample_every`` (Towards Monosemanticity, simplified): every ``resample_every``
steps until ``resample_until`` of training, each latent that has not fired since the previous
resampling gets a new direction, an input of the current batch drawn with probability
proportional to its squared reconstruction error (normalised, minus ``b_dec``), its encoder row
set to that direction times 0.2 x the mean encoder norm of live latents, ``b_enc = 0``, and its Adam
moments reset; and ``aux_k`` for TopK (Gao et al. 2024, AuxK): the ``aux_k`` largest
pre-activations among dead latents reconstruct the live latents' residual, weighted
``aux_coefficient * min(n_dead / aux_k, 1)``.

Deterministic: the initial dictionary comes from ``SAEConfig.seed``, the resampling draws from
``SAETrainConfig.seed``, token windows from ``(seed, step)`` (:func:`lm_token_batches`); on CPU the
same inputs give bitwise the same SAE.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import no_type_check

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor

from circuits.model.sae import SAEConfig, SparseAutoencoder
from circuits.model.transformer import Transformer
from circuits.training.data import check_stream, sample_windows, step_generator

__all__ = [
    "SAETrainConfig", "SAETrainLog", "train_sae", "hook_activations", "lm_token_batches", "train_sae_on_model",
]


@no_type_check
@dataclass(frozen=True, kw_only=True)
class SAETrainConfig:
    """How an SAE is trained (see the module docstring for the objective and the dead-latent remedies).

    ``steps`` batches of activations are consumed; ``l1_coefficient`` applies to ``"standard"`` SAEs,
    ``aux_k`` / ``aux_coefficient`` to ``"topk"`` ones (``aux_k=None``: no auxiliary loss);
    ``resample_every=None`` turns resampling off. ``log_every`` steps the losses, L0 and the dead
    fraction are recorded.
    """

    steps: int = 2000
    lr: float = 1e-3
    l1_coefficient: float = 5.0
    aux_k: int | None = None
    aux_coefficient: float = 1 / 32
    resample_every: int | None = 250
    resample_until: float = 0.6
    dead_window: int = 200
    log_every: int = 50
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("steps", "dead_window", "log_every"):
            _positive_int(name, getattr(self, name))
        for name in ("resample_every", "aux_k"):
            if getattr(self, name) is not None:
                _positive_int(name, getattr(self, name))
        for name in ("lr", "l1_coefficient", "aux_coefficient"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0 or (name == "lr" and value == 0):
                raise ValueError(f"SAETrainConfig.{name}={value!r} must be a finite number {'> 0' if name == 'lr' else '>= 0'}")
        if not 0.0 <= self.resample_until <= 1.0:
            raise ValueError(f"SAETrainConfig.resample_until={self.resample_until!r} must be a fraction of training in [0, 1]")


def _positive_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"SAETrainConfig.{name}={value!r} must be a positive int")


@dataclass(kw_only=True)
class SAETrainLog:
    """What training recorded: per logged step the reconstruction MSE (normalised units), the sparsity penalty
    (L1 or AuxK), L0 and the dead fraction; the resamplings; the activations seen and the seconds taken."""

    steps: list[int] = field(default_factory=list)
    mse: list[float] = field(default_factory=list)
    penalty: list[float] = field(default_factory=list)
    l0: list[float] = field(default_factory=list)
    dead_fraction: list[float] = field(default_factory=list)
    resampled: list[tuple[int, int]] = field(default_factory=list)  #: (step, number of latents resampled)
    n_activations: int = 0
    seconds: float = 0.0
    input_scale: float = 1.0

    @property
    def activations_per_second(self) -> float:
        return self.n_activations / self.seconds if self.seconds > 0 else float("nan")


# ---- the activation stream ------------------------------------------------------------------------
class _StopForward(Exception):
    """Raised by the reading hook to skip the layers above the hook point."""


def hook_activations(
    model: Transformer, hook_name: str, token_batches: Iterable[Int[Tensor, "batch pos"]], *, skip_first: int = 1,
) -> Iterator[Float[Tensor, "n d_in"]]:
    """The activations at ``hook_name`` of each token batch, flattened to ``[batch * (pos - skip_first), d_in]``.

    Each batch is one ``model.run_with_hooks`` whose hook copies the activation out and stops the
    forward pass (nothing above the hook point runs; no gradients). ``skip_first`` leading
    positions of every window are left out (default 1: the ``BOS`` position, whose activation is
    the same in every window).
    """
    if not isinstance(model, Transformer):
        raise TypeError(f"hook_activations expects a circuits.Transformer, got {type(model).__name__}")
    if hook_name not in model.hook_dict:
        raise model.hook_name_error(hook_name)
    if isinstance(skip_first, bool) or not isinstance(skip_first, int) or skip_first < 0:
        raise ValueError(f"skip_first={skip_first!r} must be an int >= 0")
    for tokens in token_batches:
        yield read_hook(model, hook_name, tokens, skip_first)


def read_hook(model: Transformer, hook_name: str, tokens: Tensor, skip_first: int) -> Tensor:
    """One batch's activation at ``hook_name`` (positions ``skip_first:``), flattened over batch and position."""
    grabbed: list[Tensor] = []

    def grab(act: Tensor, hook) -> None:
        grabbed.append(act[:, skip_first:].reshape(-1, act.shape[-1]).detach().clone())
        raise _StopForward

    if tokens.shape[-1] <= skip_first:
        raise ValueError(f"token windows of {tokens.shape[-1]} positions leave nothing after skip_first={skip_first}")
    with torch.no_grad():
        try:
            model.run_with_hooks(tokens, fwd_hooks=[(hook_name, grab)])
        except _StopForward:
            pass
    if not grabbed:
        raise RuntimeError(f"hook {hook_name!r} did not fire during the forward pass")
    return grabbed[0]


def lm_token_batches(
    stream: np.ndarray, n_ctx: int, batch_size: int, n_batches: int, *, bos_id: int, seed: int = 0,
) -> Iterator[Int[Tensor, "batch pos"]]:
    """``n_batches`` batches of ``batch_size`` random windows (``BOS`` + ``n_ctx - 1`` corpus tokens), batch ``i`` drawn
    from ``(seed, i)`` alone (:func:`circuits.training.data.step_generator`): no state, so the stream is lazy and repeatable."""
    check_stream(stream, n_ctx, "training")
    for step in range(n_batches):
        yield sample_windows(stream, n_ctx, batch_size, step_generator(seed, step), bos_id)


# ---- training ---------------------------------------------------------------------------------------
def train_sae(
    sae: SparseAutoencoder, activations: Iterable[Float[Tensor, "n d_in"]], cfg: SAETrainConfig,
    *, progress: Callable[[int, dict], None] | None = None,
) -> SAETrainLog:
    """Train ``sae`` in place on ``cfg.steps`` batches of ``activations`` (an iterable of ``[n, d_in]`` tensors); returns the log.

    ``progress(step, record)`` is called at every logged step. Raises ``ValueError`` if the stream
    ends before ``cfg.steps`` batches or a batch has the wrong width, and ``FloatingPointError`` if
    the loss becomes non-finite (lower ``lr``).
    """
    if not isinstance(sae, SparseAutoencoder):
        raise TypeError(f"train_sae expects a SparseAutoencoder, got {type(sae).__name__}")
    if not isinstance(cfg, SAETrainConfig):
        raise TypeError(f"train_sae expects an SAETrainConfig, got {type(cfg).__name__}")
    _check_remedies(sae.config, cfg)
    state = _TrainState(sae, cfg)
    log = SAETrainLog()
    start = time.perf_counter()
    iterator = iter(activations)
    for step in range(cfg.steps):
        x = next(iterator, None)
        if x is None:
            raise ValueError(f"the activation stream ended after {step} batches, but SAETrainConfig.steps={cfg.steps}; give more batches or fewer steps")
        if step == 0:
            log.input_scale = _initialise(sae, x)
        with torch.enable_grad():  # a generator that yields inside torch.no_grad() leaves grad mode off here
            record = state.step(step, x)
        log.n_activations += x.shape[0]
        if record is not None:
            _append(log, step, record)
            if progress is not None:
                progress(step, record)
        n = state.maybe_resample(step, x)
        if n:
            log.resampled.append((step, n))
    log.seconds = time.perf_counter() - start
    sae.eval()
    return log


def _check_remedies(sae_cfg: SAEConfig, cfg: SAETrainConfig) -> None:
    if cfg.aux_k is not None and sae_cfg.architecture != "topk":
        raise ValueError(f"SAETrainConfig.aux_k={cfg.aux_k} is the TopK auxiliary loss; this SAE is {sae_cfg.architecture!r} (use resample_every)")


@torch.no_grad()
def _initialise(sae: SparseAutoencoder, x: Tensor) -> float:
    """Input scale from the first batch, ``b_dec`` at its (normalised) mean."""
    scale = sae.set_input_scale_(x)
    sae.b_dec.copy_((x.double() * scale).mean(0).to(sae.b_dec.dtype))
    sae.normalize_decoder_()
    return scale


def _append(log: SAETrainLog, step: int, record: dict) -> None:
    log.steps.append(step)
    log.mse.append(record["mse"])
    log.penalty.append(record["penalty"])
    log.l0.append(record["l0"])
    log.dead_fraction.append(record["dead_fraction"])


class _TrainState:
    """The optimizer, the per-latent last-fired step and the resampling generator of one training run."""

    def __init__(self, sae: SparseAutoencoder, cfg: SAETrainConfig):
        self.sae, self.cfg = sae, cfg
        sae.train()
        self.optimizer = torch.optim.Adam(sae.parameters(), lr=cfg.lr)
        self.last_fired = torch.zeros(sae.config.d_sae, dtype=torch.long)  # step at which each latent last fired
        self.fired_since_resample = torch.zeros(sae.config.d_sae, dtype=torch.bool)
        self.generator = torch.Generator().manual_seed(cfg.seed)
        self.topk = sae.config.architecture == "topk"

    def step(self, step: int, x: Tensor) -> dict | None:
        sae, cfg = self.sae, self.cfg
        sae.check_input(x)
        x_n = sae.hook_sae_input(x * sae.input_scale)
        pre = sae.pre_activations_normalized(x_n)
        acts = sae.hook_sae_acts_post(sae.activation(pre))
        aux_pre = pre if self.topk and cfg.aux_k is not None else None
        del pre  # freed now unless AuxK needs it: one buffer of [batch, d_sae] less alive per step
        x_hat_n = sae.decode_normalized(acts)
        mse = (x_hat_n - x_n).pow(2).sum(-1).mean()
        fired = (acts > 0).any(0)
        self.last_fired[fired] = step
        self.fired_since_resample |= fired
        if self.topk:
            penalty = self.aux_loss(step, aux_pre, x_n - x_hat_n) if aux_pre is not None else mse.new_zeros(())
            loss = mse + cfg.aux_coefficient * penalty
        else:
            penalty = acts.sum(-1).mean()
            loss = mse + cfg.l1_coefficient * penalty
        if not torch.isfinite(loss):
            raise FloatingPointError(f"SAE loss became {float(loss)} at step {step}; lower SAETrainConfig.lr (now {cfg.lr})")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        sae.remove_parallel_gradient_()
        self.optimizer.step()
        sae.normalize_decoder_()
        if step % cfg.log_every and step != cfg.steps - 1:
            return None
        return {
            "mse": float(mse.detach()), "penalty": float(penalty.detach()), "l0": float((acts > 0).sum(-1).double().mean()),
            "dead_fraction": float(self.dead_mask(step).double().mean()),
        }

    def dead_mask(self, step: int) -> Tensor:
        """Latents that have not fired in the last ``dead_window`` steps (none before ``dead_window`` steps have run)."""
        return (step - self.last_fired) >= self.cfg.dead_window

    def aux_loss(self, step: int, pre: Tensor, residual: Tensor) -> Tensor:
        """AuxK: the top ``aux_k`` dead pre-activations reconstruct the residual (no ``b_dec``), scaled by ``min(n_dead / aux_k, 1)``."""
        dead = self.dead_mask(step)
        n_dead = int(dead.sum())
        if n_dead == 0:
            return pre.new_zeros(())
        k = min(self.cfg.aux_k, n_dead)
        masked = torch.where(dead, pre, torch.full_like(pre, -math.inf))
        top = masked.topk(k, dim=-1)
        aux_acts = torch.zeros_like(pre).scatter_(-1, top.indices, torch.relu(top.values))
        recon = aux_acts @ self.sae.W_dec
        return min(n_dead / self.cfg.aux_k, 1.0) * (recon - residual.detach()).pow(2).sum(-1).mean()

    @torch.no_grad()
    def maybe_resample(self, step: int, x: Tensor) -> int:
        cfg = self.cfg
        every = cfg.resample_every
        if every is None or (step + 1) % every or step + 1 > cfg.resample_until * cfg.steps:
            return 0
        dead = (~self.fired_since_resample).nonzero().flatten()
        self.fired_since_resample.zero_()
        if dead.numel():
            resample_latents(self.sae, self.optimizer, dead, x, self.generator)
            self.last_fired[dead] = step
        return int(dead.numel())


@torch.no_grad()
def resample_latents(sae: SparseAutoencoder, optimizer: torch.optim.Adam, latents: Tensor, x: Tensor, generator: torch.Generator) -> None:
    """Give ``latents`` new directions: inputs of ``x`` drawn with probability proportional to their squared error."""
    x_n = x * sae.input_scale
    error = (sae.decode_normalized(sae.encode(x)) - x_n).pow(2).sum(-1).double()
    weights = error if float(error.sum()) > 0 else torch.ones_like(error)
    rows = torch.multinomial(weights, latents.numel(), replacement=True, generator=generator)
    directions = x_n[rows] - sae.b_dec
    directions = directions / directions.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    alive = torch.ones(sae.config.d_sae, dtype=torch.bool)
    alive[latents] = False
    enc_norm = sae.W_enc[:, alive].norm(dim=0).mean() if bool(alive.any()) else torch.tensor(1.0)
    sae.W_dec[latents] = directions
    sae.W_enc[:, latents] = directions.T * 0.2 * enc_norm
    sae.b_enc[latents] = 0.0
    for param, index in ((sae.W_dec, (latents,)), (sae.W_enc, (slice(None), latents)), (sae.b_enc, (latents,))):
        for moment in ("exp_avg", "exp_avg_sq"):
            if moment in optimizer.state.get(param, {}):
                optimizer.state[param][moment][index] = 0.0


def train_sae_on_model(
    model: Transformer, sae_cfg: SAEConfig, cfg: SAETrainConfig, stream: np.ndarray, *, bos_id: int,
    batch_size: int = 16, skip_first: int = 1, progress: Callable[[int, dict], None] | None = None,
) -> tuple[SparseAutoencoder, SAETrainLog]:
    """A new SAE of ``sae_cfg`` trained on ``sae_cfg.hook_name`` of ``model`` over random windows of ``stream``.

    ``cfg.steps`` batches of ``batch_size`` windows of the model's ``n_ctx`` (``BOS`` first, left
    out of the activations with ``skip_first=1``), streamed through :func:`hook_activations`.
    """
    if not sae_cfg.hook_name:
        raise ValueError("SAEConfig.hook_name is empty: name the hook to read, e.g. 'blocks.0.hook_resid_post'")
    if sae_cfg.d_in != _hook_width(model, sae_cfg.hook_name):
        raise ValueError(f"SAEConfig.d_in={sae_cfg.d_in}, but {sae_cfg.hook_name!r} of this model has width {_hook_width(model, sae_cfg.hook_name)}")
    n_ctx = model.config.n_ctx
    tokens = lm_token_batches(stream, n_ctx, batch_size, cfg.steps, bos_id=bos_id, seed=cfg.seed)
    sae = SparseAutoencoder(sae_cfg)
    log = train_sae(sae, hook_activations(model, sae_cfg.hook_name, tokens, skip_first=skip_first), cfg, progress=progress)
    return sae, log


def _hook_width(model: Transformer, hook_name: str) -> int:
    if hook_name not in model.hook_dict:
        raise model.hook_name_error(hook_name)
    probe = torch.zeros(1, 2, dtype=torch.long)
    return int(read_hook(model, hook_name, probe, 0).shape[-1])
