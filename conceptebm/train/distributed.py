"""Scale-out helpers: the same training loop under ``torchrun`` with DistributedDataParallel.

``torchrun --nproc_per_node N -m conceptebm train ...`` starts N processes with ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK`` set; :func:`setup` joins the process group (``nccl`` on
CUDA, ``gloo`` otherwise). Each process draws its own data batches, Langevin chains and
replay buffer (seeded by rank); DDP averages the gradients, so all replicas keep identical
weights. Rank 0 alone evaluates, logs and writes checkpoints.

Example:
    >>> ctx = setup()          # no torchrun environment: a single process
    >>> ctx.world_size, ctx.is_main
    (1, True)
"""

from __future__ import annotations

import os
from typing import NamedTuple

import torch
import torch.distributed as dist

__all__ = ["DistContext", "setup", "all_max", "broadcast_flag"]


class DistContext(NamedTuple):
    rank: int
    world_size: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def setup(device: str | torch.device = "cpu") -> DistContext:
    """Join the process group named by the torchrun environment (or stay single-process)."""
    if dist.is_available() and dist.is_initialized():
        return DistContext(dist.get_rank(), dist.get_world_size(),
                           int(os.environ.get("LOCAL_RANK", dist.get_rank())))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext(0, 1, 0)
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but torch.distributed is not available in this build")
    backend = "nccl" if torch.device(device).type == "cuda" else "gloo"
    dist.init_process_group(backend=backend)
    return DistContext(dist.get_rank(), dist.get_world_size(), int(os.environ["LOCAL_RANK"]))


def all_max(values: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Elementwise max over processes (so every rank takes the same decision)."""
    if not ctx.enabled:
        return values
    values = values.clone()
    dist.all_reduce(values, op=dist.ReduceOp.MAX)
    return values


def broadcast_flag(flag: bool, ctx: DistContext, device) -> bool:
    """Rank 0's decision, on every rank."""
    if not ctx.enabled:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.broadcast(t, src=0)
    return bool(t.item())
