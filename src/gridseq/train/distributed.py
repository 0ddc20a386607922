"""What the trainer needs to know about torch.distributed: this process's rank, the world size, and
whether it is the main process (rank 0), the only one that writes files and progress.

Under `torchrun`, initialise the process group (`torch.distributed.init_process_group`) before
calling `fit`; the trainer then shards batches by rank and wraps the model in DDP.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn


def is_distributed() -> bool:
    """Whether a torch.distributed process group is running."""
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """This process's rank, 0 when not distributed."""
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    """The number of processes, 1 when not distributed."""
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    """Whether this process writes run directories, checkpoints and progress (rank 0)."""
    return rank() == 0


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """`model` wrapped in DistributedDataParallel when there are several processes, else itself."""
    if world_size() == 1:
        return model
    device_ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
