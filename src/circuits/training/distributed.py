"""Data-parallel training with PyTorch's own engine: ``torchrun`` + DistributedDataParallel.

``torchrun --nproc_per_node=N -m circuits train ...`` sets ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``;
:func:`setup` then joins the process group (NCCL on GPUs, gloo on CPU). Every process draws the
same global batch (a pure function of seed and step) and keeps its own contiguous slice of rows,
so N processes with batch B/N each compute the same averaged gradient as one process with
batch B. Only rank 0 writes checkpoints, logs and progress.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    def rows(self, batch_size: int) -> slice:
        """This process's rows of a global batch of ``batch_size``."""
        per_rank = batch_size // self.world_size
        return slice(self.rank * per_rank, (self.rank + 1) * per_rank)


def from_environment() -> DistInfo:
    """Rank information set by ``torchrun`` (a single process when absent)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistInfo()
    if "RANK" not in os.environ:
        raise ValueError(
            f"WORLD_SIZE={world_size} is set but RANK is not; launch with torchrun (which sets both) or unset WORLD_SIZE"
        )
    return DistInfo(rank=int(os.environ["RANK"]), world_size=world_size, local_rank=int(os.environ.get("LOCAL_RANK", "0")))


def resolve_device(device: str | torch.device, info: DistInfo) -> torch.device:
    """``"auto"``: CUDA when available, else CPU. Under torchrun on GPUs each process takes ``cuda:LOCAL_RANK``."""
    if str(device) == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(device)
    except RuntimeError:
        raise ValueError(f"device={device!r} is not a torch device; use 'auto', 'cpu' or 'cuda'") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("device='cuda' was asked for but no CUDA GPU is available; use --device cpu (or auto)")
        if info.enabled:
            device = torch.device("cuda", info.local_rank)
        elif device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        torch.cuda.set_device(device)
    return device


def setup(info: DistInfo, device: torch.device) -> None:
    if info.enabled and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")


def teardown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def mean_across(value: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """The mean of ``value`` over all processes (the value itself in a single process)."""
    if not info.enabled:
        return value
    value = value.detach().clone()
    dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value / info.world_size


def all_ok(ok: bool, info: DistInfo) -> bool:
    """True when ``ok`` holds on every process (lets the others stop cleanly when one hit an error)."""
    if not info.enabled:
        return ok
    flag = torch.tensor([0 if ok else 1], dtype=torch.int64)
    if dist.get_backend() == "nccl":
        flag = flag.cuda()
    dist.all_reduce(flag, op=dist.ReduceOp.SUM)
    return int(flag.item()) == 0


def share_ints(values: list[int], info: DistInfo) -> list[int]:
    """Rank 0's ``values`` on every process (e.g. the step a resumed run starts from); the values themselves in a single process."""
    values = [int(value) for value in values]
    if not info.enabled:
        return values
    tensor = torch.tensor(values if info.is_main else [0] * len(values), dtype=torch.int64)
    if dist.get_backend() == "nccl":
        tensor = tensor.cuda()
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)  # only rank 0 contributes
    return [int(value) for value in tensor.tolist()]
