"""What the trainer needs to know about torch.distributed: this process's rank, the world size, whether
it is the main process (rank 0, the only one that writes files and progress), and the few collective
operations training uses (metric sums, barriers, buffer broadcasts).

Under `torchrun` the process group is initialised from the environment torchrun sets (RANK,
WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT): `gridseq train` does it itself; a script calling
`gridseq.fit` calls `init_from_env()` first. Every function here is a no-op (or the identity) in a
single process, so a run without torchrun behaves exactly as before.

    >>> from gridseq.train import distributed
    >>> distributed.world_size(), distributed.rank(), distributed.is_main()
    (1, 0, True)
    >>> distributed.all_gather(3)
    [3]
"""

from __future__ import annotations

import logging
import os
from datetime import timedelta
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from gridseq.errors import ConfigError, GridseqError

_logger = logging.getLogger(__name__)

_started_here = False  # init_from_env created the process group (so shutdown may destroy it)


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


def local_rank() -> int:
    """This process's index on its machine (torchrun's LOCAL_RANK), 0 when not set."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def launched_by_torchrun() -> bool:
    """Whether the environment describes a multi-process launch (WORLD_SIZE > 1, as torchrun sets it)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_from_env(device: str = "auto", *, timeout_minutes: float = 30.0) -> bool:
    """Initialise torch.distributed from torchrun's environment variables; False when not launched so.

    The backend is NCCL when training runs on CUDA (each process then uses GPU `LOCAL_RANK`) and gloo
    on the CPU. Calling it again, or with a process group already running, does nothing.

    Args:
        device: the device training will use ("auto", "cpu", "cuda", "cuda:N"); picks the backend.
        timeout_minutes: how long collectives wait for a missing rank before failing. Default: 30.

    Returns:
        Whether a process group is running afterwards.

    Example:
        >>> init_from_env("cpu")  # not under torchrun: nothing to do
        False
    """
    global _started_here
    if is_distributed():
        return True
    if not launched_by_torchrun():
        return False
    missing = [k for k in ("RANK", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if missing:
        raise ConfigError(f"WORLD_SIZE={os.environ['WORLD_SIZE']} is set but {', '.join(missing)} is not; launch with "
                          f"`torchrun --nproc_per_node=N -m gridseq train ...`, which sets them all.")
    cuda = str(device).startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if cuda:
        torch.cuda.set_device(local_rank())  # before the group: NCCL binds each process to its GPU
    dist.init_process_group("nccl" if cuda else "gloo", timeout=timedelta(minutes=timeout_minutes))
    _started_here = True
    _logger.info("torch.distributed: rank %d of %d (%s)", rank(), world_size(), dist.get_backend())
    return True


def shutdown(*, wait: bool = True) -> None:
    """Destroy the process group `init_from_env` created, after a barrier (so no rank leaves while
    others still need it) unless `wait=False` (on an error, when other ranks may never arrive)."""
    global _started_here
    if _started_here and is_distributed():
        if wait:
            barrier()
        dist.destroy_process_group()
    _started_here = False


def local_device(device: torch.device) -> torch.device:
    """`device` with the GPU index of this process filled in: "cuda" becomes cuda:LOCAL_RANK under
    torchrun (one GPU per process); anything else, and every single-process device, is unchanged."""
    if device.type == "cuda" and device.index is None and is_distributed():
        return torch.device("cuda", local_rank())
    return device


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """`model` wrapped in DistributedDataParallel when there are several processes, else itself."""
    if world_size() == 1:
        return model
    device_ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)


def barrier() -> None:
    """Wait until every rank gets here (no-op in a single process)."""
    if is_distributed():
        dist.barrier()


def all_gather(obj: Any) -> list[Any]:
    """Every rank's `obj` (picklable), in rank order; `[obj]` in a single process."""
    if not is_distributed():
        return [obj]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast(obj: Any, src: int = 0) -> Any:
    """Rank `src`'s `obj` on every rank (picklable); `obj` itself in a single process."""
    if not is_distributed():
        return obj
    box = [obj if rank() == src else None]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def on_main(fn: Callable[[], Any]) -> Any:
    """`fn()` run by rank 0 alone; every rank gets its result, or raises the same gridseq error.

    Only rank 0 touches the run directory (checking it, reading the checkpoint to resume from), so
    the other ranks, possibly on other machines, need no access to it.

    Example:
        >>> on_main(lambda: 42)
        42
    """
    if not is_distributed():
        return fn()
    outcome = None
    if is_main():
        try:
            outcome = (True, fn())
        except GridseqError as e:  # the same one-line error on every rank, not a hang
            outcome = (False, e)
    ok, value = broadcast(outcome)
    if not ok:
        raise value
    return value


def any_rank(flag: bool) -> bool:
    """Whether `flag` is true on any rank (e.g. a callback asked one rank to stop: all stop together)."""
    return any(all_gather(bool(flag))) if is_distributed() else bool(flag)


def sum_states(states: list[dict[str, Tensor]]) -> dict[str, Tensor]:
    """Element-wise sums of metric accumulator states (`Metrics.state_dict()`), skipping empty ones.

    Every gridseq accumulator keeps running sums (a confusion matrix, loss and item counts), so the
    metrics of all ranks together are those of the summed state.

    Example:
        >>> sum_states([{"n": torch.tensor(2)}, {}, {"n": torch.tensor(3)}])
        {'n': tensor(5)}
    """
    total: dict[str, Tensor] = {}
    for state in states:
        for key, value in state.items():
            value = torch.as_tensor(value).cpu()
            total[key] = total[key] + value if key in total else value.clone()
    return total


def reduce_metrics(metrics, fresh):
    """The metrics of every rank's accumulator `metrics` together: a new accumulator from `fresh()`
    (the task's `metrics`) loaded with the summed states. In a single process, `metrics` itself."""
    if not is_distributed():
        return metrics
    total = fresh()
    total.load_state_dict(sum_states(all_gather(metrics.state_dict())))
    return total


def sync_buffers(model: nn.Module) -> None:
    """Copy rank 0's buffers (e.g. BatchNorm running statistics, which each rank updates from its own
    batches) to every rank, so evaluation and saved weights agree everywhere. No-op in a single process."""
    if not is_distributed():
        return
    for buffer in model.buffers():
        dist.broadcast(buffer.data, src=0)
