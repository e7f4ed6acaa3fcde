"""DistributedDataParallel helpers for runs launched by torchrun: process group set-up and the few collectives.

Rank 0 owns the database and the files; the other ranks only compute and follow rank 0's decisions.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class World:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def current_world() -> World:
    """Rank and size as torchrun sets them in the environment (a single process otherwise)."""
    return World(rank=int(os.environ.get("RANK", "0")), world_size=int(os.environ.get("WORLD_SIZE", "1")),
                 local_rank=int(os.environ.get("LOCAL_RANK", "0")))


def init_process_group(world: World, device: str) -> str:
    """Join the process group (nccl on CUDA, gloo otherwise); returns this rank's device."""
    import torch
    import torch.distributed as dist

    if device.startswith("cuda"):
        device = f"cuda:{world.local_rank}"
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo",
                                rank=world.rank, world_size=world.world_size)
    return device


def destroy_process_group() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def active() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


def broadcast_flag(flag: bool, device: str = "cpu") -> bool:
    """Rank 0's value of `flag` on every rank (a no-op outside a process group)."""
    if not active():
        return flag
    import torch
    import torch.distributed as dist

    t = torch.tensor([1 if flag else 0], dtype=torch.int64, device=device)
    dist.broadcast(t, src=0)
    return bool(t.item())


def all_reduce_mean(value: float, device: str = "cpu") -> float:
    """The mean of `value` over all ranks (the value itself outside a process group)."""
    if not active():
        return value
    import torch
    import torch.distributed as dist

    t = torch.tensor([float(value)], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return float(t.item()) / dist.get_world_size()
