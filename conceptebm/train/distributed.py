"""Scale-out helpers: the same training loop under ``torchrun`` with DistributedDataParallel.

``torchrun --nproc_per_node N -m conceptebm train ...`` starts N processes with ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK`` set; :func:`setup` joins the process group (``nccl`` on
CUDA, ``gloo`` otherwise). Each process draws its own data batches, Langevin chains and
replay buffer (seeded by rank); DDP averages the gradients, so all replicas keep identical
weights. Rank 0 alone evaluates, logs and writes checkpoints.

Every process leaves the group before it exits (:func:`teardown`: a barrier, then
``destroy_process_group``; a process that exits with the group alive may abort in gloo's
threads, "terminate called without an active exception"). A process that fails leaves its
rank and error in the group's store (:func:`failure`); the others, whose next collective
then fails, raise :class:`RankFailed` naming it instead of a stack of gloo errors.

Example:
    >>> ctx = setup()          # no torchrun environment: a single process
    >>> ctx.world_size, ctx.is_main
    (1, True)
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import NamedTuple

import torch
import torch.distributed as dist

__all__ = ["DistContext", "setup", "all_max", "broadcast_flag", "initialized", "teardown",
           "failure", "RankFailed"]

_FAILED_KEY = "conceptebm/failed"  # "rank|error" of the first process that failed


class RankFailed(RuntimeError):
    """Another process of the distributed run failed; this one stopped too. The command line
    prints it as one line (status 1), on rank 0 only."""

    one_line_status = 1  # conceptebm.cli prints str(err), no traceback


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


def initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def teardown(ctx: DistContext, *, clean: bool = True, timeout_s: float = 60.0) -> None:
    """Leave the process group (every rank, before it returns or raises): after a clean run
    wait for the others (so rank 0 finishes its writes before anyone exits), then destroy the
    group; after an error destroy it at once (the others' next collective then fails)."""
    if not (ctx.enabled and initialized()):
        return
    if not clean:
        dist.destroy_process_group()
        return
    try:
        dist.monitored_barrier(timeout=timedelta(seconds=timeout_s)) \
            if dist.get_backend() == "gloo" else dist.barrier()
    except Exception:  # noqa: BLE001 - a peer already gone: leave anyway
        pass
    dist.destroy_process_group()


def _store():
    from torch.distributed import distributed_c10d

    return distributed_c10d._get_default_store()


def failure(ctx: DistContext, err: BaseException) -> BaseException:
    """The error this process raises after ``err`` in a distributed run: its own error, once
    it is left in the store for the others; or, when a collective failed because another
    process is gone, :class:`RankFailed` naming that process and its error."""
    if isinstance(err, RankFailed) or not initialized():
        return err
    peer_gone = isinstance(err, getattr(dist, "DistError", ())) or (
        isinstance(err, RuntimeError) and any(w in str(err).lower() for w in (
            "connection closed", "connection reset", "broken pipe", "timed out", "gloo")))
    try:
        store = _store()
        if not peer_gone:
            store.set(_FAILED_KEY, f"{ctx.rank}|{type(err).__name__}: {err}")
            return err
        store.wait([_FAILED_KEY], timedelta(seconds=5))
        rank, _, why = store.get(_FAILED_KEY).decode().partition("|")
    except Exception:  # noqa: BLE001 - the store lived in the process that failed
        rank, why = None, ""
    if not peer_gone:
        return err
    who = (f"process {rank} of {ctx.world_size} failed ({why.splitlines()[0][:300]})"
           if rank is not None else f"another process of the {ctx.world_size} stopped "
           "(its own error line is above)")
    return RankFailed(f"{who}; process {ctx.rank} stopped too. Fix that error and run the "
                      "command again (--resume continues from the last checkpoint)")
