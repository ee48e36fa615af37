"""Divergence: a step whose loss or gradient norm is not finite stops training, before it reaches the weights.

:class:`DivergenceGuard` checks every optimizer step (on CPU at once, on a GPU at log points and
checkpoints); :func:`all_finite` checks weights and optimizer state before a checkpoint is written.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from circuits.training import distributed

__all__ = ["DivergenceGuard", "TrainingDivergedError", "all_finite", "gradient_norm"]


class TrainingDivergedError(ValueError):
    """Training met a non-finite loss, gradient norm, weight or validation loss.

    A ``ValueError`` because its cause is a setting (usually the learning rate); the message names
    the step and what to change. The run folder keeps its checkpoints, all finite.
    """


class DivergenceGuard:
    """Stops training at the first step whose loss or gradient norm is not a finite number.

    On CPU every step is checked before the optimizer applies it, so the weights never become
    non-finite. On a GPU each check would stall the pipeline, so the first bad step is recorded on
    the device and :meth:`check` runs at every log point and before every checkpoint (the steps in
    between are wasted, never saved). Under ``torchrun`` every process stops together.
    """

    def __init__(self, device: torch.device, info: distributed.DistInfo, first_step: int, error: Callable[[int | None, str], Exception]):
        self.eager, self.info, self.error, self.step = device.type != "cuda", info, error, first_step
        self.first = torch.full((3,), math.nan, dtype=torch.float64, device=device)  # step, loss, gradient norm
        self.found = torch.zeros((), dtype=torch.bool, device=device)
        self.device_step = torch.full((), float(first_step), dtype=torch.float64, device=device)  # no host-to-device copy per step

    def observe(self, loss: torch.Tensor, grad_norm: torch.Tensor) -> None:
        """Record one optimizer step's loss and (total) gradient norm; on CPU raise at once if either is not finite."""
        self.step += 1
        if self.eager:  # two host reads: cheaper than the device bookkeeping below
            values = [float(self.step), float(loss.detach()), float(grad_norm.detach())]
            if not all(math.isfinite(value) for value in values) and not bool(self.found):
                self.first, self.found = torch.tensor(values, dtype=torch.float64), torch.ones((), dtype=torch.bool)
            self.check()
            return
        self.device_step += 1
        values = torch.stack([self.device_step, loss.detach().double().reshape(()), grad_norm.detach().double().reshape(())])
        bad = ~torch.isfinite(values).all()
        self.first = torch.where(bad & ~self.found, values, self.first)
        self.found |= bad

    def check(self) -> None:
        """Raise the trainer's error if any step observed so far (on any process) was not finite."""
        if distributed.all_ok(not bool(self.found), self.info):
            return
        step, loss, norm = self.first.tolist()
        if math.isnan(step):
            raise self.error(None, "another process met a non-finite loss or gradient")
        raise self.error(int(step), f"the loss was {loss} and the gradient norm {norm}")


def gradient_norm(model: torch.nn.Module, device: torch.device) -> torch.Tensor:
    """The total 2-norm of the gradients (what ``clip_grad_norm_`` would return), computed without touching them."""
    norms = [torch.linalg.vector_norm(param.grad.detach()) for param in model.parameters() if param.grad is not None]
    if not norms:
        return torch.zeros((), device=device)
    return torch.linalg.vector_norm(torch.stack(norms))


def all_finite(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> bool:
    """Whether every weight and every floating-point optimizer state tensor is finite."""
    tensors = [param.detach() for param in model.parameters()]
    tensors += [value for state in optimizer.state.values() for value in state.values() if isinstance(value, torch.Tensor)]
    return all(bool(torch.isfinite(tensor).all()) for tensor in tensors if tensor.is_floating_point())
