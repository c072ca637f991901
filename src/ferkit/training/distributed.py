"""Data-parallel training under ``torchrun``: who this process is, the process group, and the few
collectives the trainer needs. Without torchrun's variables everything here is a no-op."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job (torchrun's RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls) -> "DistInfo":
        get = lambda name, default: int(os.environ.get(name, default))  # noqa: E731
        world = get("WORLD_SIZE", 1)
        return cls(get("RANK", 0), world, get("LOCAL_RANK", 0), get("LOCAL_WORLD_SIZE", world))


def init(info: DistInfo, device_type: str) -> None:
    """Join the process group (NCCL on CUDA, gloo on CPU) once, when torchrun started several processes."""
    if info.enabled and not dist.is_initialized():
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo")


def shutdown() -> None:
    """Leave the process group, once every process has got here (none leaves while another still talks)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def all_reduce_sum(values: list[float], info: DistInfo, device: torch.device) -> list[float]:
    """Element-wise sums over all processes (float64)."""
    if not info.enabled:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def broadcast_object(obj: Any, info: DistInfo) -> Any:
    """Rank 0's ``obj`` on every process."""
    if not info.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def broadcast_buffers(module: torch.nn.Module, info: DistInfo) -> None:
    """Rank 0's buffers (BatchNorm running statistics) on every process, so that all evaluate one model."""
    if info.enabled:
        for b in module.buffers():
            dist.broadcast(b, src=0)
