"""Data-parallel training helpers: one process per device, started by torchrun.

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; without them (a plain `colliderflow train`) everything
here is a no-op and training is single-process. Backend: NCCL between GPUs, gloo on CPU (what CI tests).
Each rank trains on a disjoint slice of every global batch (sampling.EpochBatchSampler), DDP averages the
gradients, and only rank 0 writes files.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None  # None: not distributed

    @property
    def is_main(self) -> bool:
        """Rank 0 writes checkpoints, metrics, the model and provenance; the others only compute."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def env_info() -> DistInfo:
    """Rank and world size from torchrun's environment variables (a single process when absent)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return DistInfo(rank=int(os.environ.get("RANK", "0")), world_size=world,
                    local_rank=int(os.environ.get("LOCAL_RANK", "0")))


@contextlib.contextmanager
def process_group(device_type: str) -> Iterator[DistInfo]:
    """Join the torchrun job for the duration of a training run, and leave it afterwards.

    Yields the single-process DistInfo when not under torchrun (or when a group is already open, in
    which case its owner keeps it). device_type "cuda" → NCCL and this rank's GPU; "cpu" → gloo.
    """
    info = env_info()
    if not info.enabled:
        yield info
        return
    backend = "nccl" if device_type == "cuda" else "gloo"
    owner = not dist.is_initialized()
    if owner:
        if device_type == "cuda":
            torch.cuda.set_device(info.local_rank)
        dist.init_process_group(backend=backend)
    info = DistInfo(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=info.local_rank,
                    backend=dist.get_backend())
    try:
        yield info
    finally:
        if owner:
            dist.destroy_process_group()


def device_for(info: DistInfo, device: torch.device) -> torch.device:
    """The device of this rank: its own GPU (LOCAL_RANK) under DDP on CUDA, else `device` unchanged."""
    if info.enabled and device.type == "cuda":
        return torch.device("cuda", info.local_rank)
    return device


def wrap(model: nn.Module, info: DistInfo, device: torch.device) -> nn.Module:
    """The model under DistributedDataParallel when distributed, else itself.

    DDP broadcasts rank 0's weights at construction, so all ranks start equal even if seeding differed.
    """
    if not info.enabled:
        return model
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def unwrap(model: nn.Module) -> nn.Module:
    """The plain model inside a DDP wrapper (what is saved and evaluated)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def barrier(info: DistInfo) -> None:
    """Wait for all ranks (no-op in a single process)."""
    if info.enabled:
        dist.barrier()


def mean_over_ranks(values: dict[str, float], info: DistInfo, device: torch.device) -> dict[str, float]:
    """Each value averaged over the ranks, so that logged losses describe the global batch.

    `device` is the rank's training device: NCCL reduces only CUDA tensors, gloo CPU ones.
    """
    if not info.enabled or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t)  # sum over ranks
    return {k: float(v) / info.world_size for k, v in zip(keys, t.tolist(), strict=True)}


def any_over_ranks(flag: bool, info: DistInfo, device: torch.device) -> bool:
    """True on every rank when it is True on any (a signal may reach one rank first); no-op when single."""
    if not info.enabled:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)
