"""Distributed data parallel helpers. Launch with torchrun; every process runs the same ``train_model`` call:

    torchrun --standalone --nproc_per_node=2 -m training.cli_entry ...     # or: torchrun ... $(which petid) train ...

``torchrun`` sets ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``/``MASTER_ADDR``/``MASTER_PORT``; ``train_model`` then joins
the process group (``nccl`` on CUDA, ``gloo`` on CPU), wraps the model in DDP, gives every rank a disjoint share
of each epoch's P×K batches, and lets rank 0 alone write checkpoints and register the version. Each rank's
batch is a full P×K batch (the effective batch is world_size × P × K).
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def dist_info() -> DistInfo:
    """Rank and world size from the torchrun environment (single process when unset)."""
    return DistInfo(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                    int(os.environ.get("LOCAL_RANK", 0)))


def init_distributed(info: DistInfo, use_cuda: bool) -> None:
    """Join the process group once (``nccl`` with CUDA, else ``gloo``)."""
    import torch.distributed as dist

    if info.enabled and not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo", rank=info.rank, world_size=info.world_size)


def barrier(info: DistInfo) -> None:
    import torch.distributed as dist

    if info.enabled and dist.is_initialized():
        dist.barrier()


def broadcast_object(info: DistInfo, value: object) -> object:
    """Rank 0's ``value`` on every rank."""
    import torch.distributed as dist

    if not (info.enabled and dist.is_initialized()):
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]
