"""Training the toy models of superposition (:mod:`circuits.model.toy`): synthetic sparse features, a small Adam loop.

Data (the paper's setting): each feature is present independently with probability ``p = 1 - S``
(``S`` the sparsity) and then uniform in ``[0, 1]``, else ``0``. Loss: the importance-weighted
squared error ``sum_i I_i (x_i - x'_i)^2``, averaged over the batch, per instance; the instances are
independent, so their losses are summed for one optimizer step. This is not a Transformer and has
no corpus, checkpoints or tokens, so it has its own loop of a few lines instead of
:func:`circuits.training.train`. Same configs and seed give bitwise the same weights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from jaxtyping import Float

from circuits.model.toy import ToyModel, ToyModelConfig

__all__ = [
    "ToyTrainConfig", "ToyRun", "train_toy", "sample_features", "make_importance", "make_feature_probability", "toy_loss",
]


@dataclass(frozen=True, kw_only=True)
class ToyTrainConfig:
    steps: int = 3000  #: optimizer steps
    batch_size: int = 1024  #: samples per step (the same for every instance)
    lr: float = 1e-3  #: Adam learning rate (peak, with ``lr_schedule="cosine"``)
    lr_schedule: str = "cosine"  #: "constant" or "cosine" (decay to 0 over ``steps``)
    seed: int = 0  #: initialisation and data
    log_every: int = 100  #: record the per-instance loss every this many steps
    eval_batch: int = 8192  #: samples of the fixed evaluation batch behind ``ToyRun.final_loss``

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "log_every", "eval_batch"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"ToyTrainConfig.{name} must be a positive int, got {value!r}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"ToyTrainConfig.lr must be a positive finite float, got {self.lr!r}")
        if self.lr_schedule not in ("constant", "cosine"):
            raise ValueError(f"ToyTrainConfig.lr_schedule must be 'constant' or 'cosine', got {self.lr_schedule!r}")


@dataclass(frozen=True)
class ToyRun:
    """A trained batched toy model and what it was trained on."""

    model: ToyModel  #: in eval mode
    feature_probability: Float[torch.Tensor, "instance feature"]  #: p = 1 - S
    importance: Float[torch.Tensor, "instance feature"]
    steps: tuple[int, ...]  #: logged steps
    losses: np.ndarray  #: [logged step, instance] training loss
    final_loss: np.ndarray  #: [instance] loss on a fixed evaluation batch (seeded from the training seed)


def _per_instance(cfg: ToyModelConfig, value: object, what: str) -> torch.Tensor:
    """``value`` (a number, [instance] or [instance, feature]) broadcast to a float64 ``[instance, feature]`` tensor."""
    t = torch.as_tensor(np.asarray(value, dtype=float))
    shape = (cfg.n_instances, cfg.n_features)
    if t.ndim == 1:
        if t.shape[0] != cfg.n_instances:
            raise ValueError(f"{what}: a 1-D value gives one number per instance and needs length {cfg.n_instances}, got {t.shape[0]}")
        t = t[:, None]
    if t.ndim > 2 or (t.ndim == 2 and any(a not in (1, b) for a, b in zip(t.shape, shape))):
        raise ValueError(f"{what}: shape {tuple(t.shape)} does not broadcast to [instance, feature] = {list(shape)}")
    return t.expand(shape).to(torch.float32).clone()


def make_feature_probability(cfg: ToyModelConfig, feature_probability: object) -> torch.Tensor:
    """Feature probabilities ``p = 1 - S`` as ``[instance, feature]``: a number, one per instance, or a full table.

    Each must lie in ``(0, 1]``: ``S = 1`` (``p = 0``) is a model that never sees a feature.
    """
    p = _per_instance(cfg, feature_probability, "feature_probability")
    bad = ~((p > 0) & (p <= 1))
    if bad.any():
        value = float(p[bad][0])
        raise ValueError(f"feature_probability p = 1 - S must be in (0, 1] (sparsity S in [0, 1)), got p={value} (S={1 - value}); use e.g. p=0.1 for S=0.9")
    return p


def make_importance(cfg: ToyModelConfig, importance: object) -> torch.Tensor:
    """Importances ``I_i`` as ``[instance, feature]``.

    A single number ``r`` in ``(0, 1]`` means the paper's geometric decay ``I_i = r ** i``; a 1-D
    sequence of length ``n_features`` gives ``I_i`` directly (the same for every instance); a 2-D
    table ``[instance, feature]`` gives each instance its own. Every importance must be positive and finite.
    """
    arr = np.asarray(importance, dtype=float)
    if arr.ndim == 0:
        r = float(arr)
        if not (math.isfinite(r) and 0 < r <= 1):
            raise ValueError(f"importance: a single number is the decay r of I_i = r**i and must be in (0, 1], got {r}; pass a list for other importances")
        arr = r ** np.arange(cfg.n_features, dtype=float)
    if arr.ndim == 1:
        if arr.shape[0] != cfg.n_features:
            raise ValueError(f"importance: a 1-D value gives one importance per feature and needs length {cfg.n_features}, got {arr.shape[0]}")
        arr = arr[None, :]
    out = _per_instance(cfg, arr, "importance")
    if not (torch.isfinite(out).all() and (out > 0).all()):
        raise ValueError(f"importance must be positive and finite, got min {float(out.min())}; e.g. importance=0.9 for I_i = 0.9**i")
    return out


def sample_features(
    batch_size: int, feature_probability: Float[torch.Tensor, "instance feature"], *, generator: torch.Generator | None = None,
) -> Float[torch.Tensor, "batch instance feature"]:
    """A batch of synthetic inputs: each feature present with probability ``p`` and then ``U[0, 1]``, else 0."""
    shape = (batch_size, *feature_probability.shape)
    values = torch.rand(shape, generator=generator)
    present = torch.rand(shape, generator=generator) < feature_probability
    return torch.where(present, values, torch.zeros(()))


def toy_loss(
    x: Float[torch.Tensor, "batch instance feature"], x_hat: Float[torch.Tensor, "batch instance feature"],
    importance: Float[torch.Tensor, "instance feature"],
) -> Float[torch.Tensor, "instance"]:
    """Per-instance loss ``mean_batch sum_i I_i (x_i - x'_i)^2``."""
    return (importance * (x - x_hat) ** 2).sum(-1).mean(0)


def _lr_factor(train_cfg: ToyTrainConfig, step: int) -> float:
    if train_cfg.lr_schedule == "constant":
        return 1.0
    return 0.5 * (1 + math.cos(math.pi * step / train_cfg.steps))


def train_toy(
    cfg: ToyModelConfig, feature_probability: object, importance: object, train_cfg: ToyTrainConfig = ToyTrainConfig(),
) -> ToyRun:
    """Train ``cfg.n_instances`` toy models at once; ``feature_probability`` / ``importance`` as in :func:`make_feature_probability` / :func:`make_importance`.

    Runs on one CPU thread (restored afterwards): the tensors are tiny, so more threads only add
    contention, and one thread makes the weights independent of the machine's thread count.
    """
    p = make_feature_probability(cfg, feature_probability)
    imp = make_importance(cfg, importance)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train(cfg, p, imp, train_cfg)
    finally:
        torch.set_num_threads(threads)


def _train(cfg: ToyModelConfig, p: torch.Tensor, imp: torch.Tensor, train_cfg: ToyTrainConfig) -> ToyRun:
    gen = torch.Generator().manual_seed(train_cfg.seed)
    model = ToyModel(cfg, generator=gen)
    opt = torch.optim.Adam(model.parameters(), lr=train_cfg.lr)
    steps, losses = [], []
    for step in range(train_cfg.steps):
        for group in opt.param_groups:
            group["lr"] = train_cfg.lr * _lr_factor(train_cfg, step)
        x = sample_features(train_cfg.batch_size, p, generator=gen)
        loss = toy_loss(x, model(x), imp)
        opt.zero_grad(set_to_none=True)
        loss.sum().backward()
        opt.step()
        if step % train_cfg.log_every == 0 or step == train_cfg.steps - 1:
            steps.append(step)
            losses.append(loss.detach().numpy().copy())
    model.eval()
    eval_x = sample_features(train_cfg.eval_batch, p, generator=torch.Generator().manual_seed(train_cfg.seed + 1_000_003))
    with torch.no_grad():
        final = toy_loss(eval_x, model(eval_x), imp).numpy().astype(float)
    return ToyRun(model=model, feature_probability=p, importance=imp, steps=tuple(steps), losses=np.array(losses, dtype=float), final_loss=final)
