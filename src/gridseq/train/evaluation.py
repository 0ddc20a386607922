"""`evaluate` — a model's task metrics on a split — and the helpers `fit` shares with it: seeding and
device resolution.

    >>> from gridseq.train import evaluate, seed_everything, resolve_device
    >>> resolve_device("cpu")
    device(type='cpu')
"""

from __future__ import annotations

import random

import numpy as np
import torch
from torch import nn

from gridseq import tasks
from gridseq._validation import check_positive_int, did_you_mean
from gridseq.data.contract import DatasetInfo, Split
from gridseq.errors import ConfigError
from gridseq.train import distributed, precision


def seed_everything(seed: int) -> None:
    """Seed Python's `random`, NumPy and torch (CPU and every GPU).

    `fit(seed=...)` calls it; call it yourself before building a model to make its initial weights
    reproducible too.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(device: str | torch.device) -> torch.device:
    """"auto" → CUDA when available, else CPU; anything else as torch understands it."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ConfigError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r} ({e}).") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} was asked for, but this PyTorch sees no CUDA GPU; use device='cpu' or 'auto'.")
    return resolved


def _model_device(model: nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def _resolve_task(task: tasks.Task | str | None, info: DatasetInfo | None, model: nn.Module) -> tasks.Task:
    if isinstance(task, tasks.Task):
        return task
    if isinstance(task, str):
        return tasks.get(task, info)
    return tasks.for_data(info, model) if info is not None else tasks.get("classify")


def evaluate(
    model: nn.Module,
    split: Split,
    *,
    info: DatasetInfo | None = None,
    task: tasks.Task | str | None = None,
    batch_size: int = 256,
) -> dict[str, float]:
    """The task's metrics of `model` on `split` (eval mode, no gradients, on the model's device).

    Args:
        model: any model whose output suits the task.
        split: the items to evaluate, e.g. `data.test`.
        info: the dataset's info; picks the task (`info.task`) and the number of classes.
        task: a Task or task name, overriding `info`. Default: classify.
        batch_size: items per forward pass. Default: 256.

    Returns:
        Metrics by name, e.g. {"loss": 0.31, "accuracy": 0.91, "macro_f1": 0.90}; {} for an empty split.

    Example:
        >>> metrics = gridseq.evaluate(model, data.test, info=data.info)  # doctest: +SKIP
        >>> sorted(metrics)  # doctest: +SKIP
        ['accuracy', 'loss', 'macro_f1']
    """
    check_positive_int(batch_size, "batch_size")
    task = _resolve_task(task, info, model)
    device = _model_device(model)
    return _evaluate(model, split, task, batch_size, device=device).compute()


def monitor(task: tasks.Task, name: str, model: nn.Module, split: Split, *, batch_size: int = 64, device: torch.device | str = "cpu",
            amp: str = "fp32") -> None:
    """Make the metric `name` the one `task` picks the best epoch by (`Task.monitor`; `fit`'s `monitor`).

    Raises:
        ConfigError: the task reports no metric `name` — found out now, not after an epoch, by scoring
            one batch of `split` (without touching the random streams).
    """
    if name == task.primary:
        return
    from gridseq.train.checkpoint import capture_rng, restore_rng

    rng = capture_rng()
    names = _evaluate(model, split, task, batch_size, device=torch.device(device), amp=amp, batches=1).compute()
    restore_rng(rng)
    if name not in names:
        raise ConfigError(f"monitor must name a validation metric of the {task.name} task, got {name!r}; it reports "
                          f"{', '.join(sorted(names))}.{did_you_mean(name, names)}")
    task.monitor(name)


def _evaluate(model: nn.Module, split: Split, task: tasks.Task, batch_size: int, *, device: torch.device,
              amp: str = "fp32", shard: bool = False, batches: int | None = None) -> tasks.Metrics:
    """The filled metric accumulator of `evaluate` (over the first `batches` batches only, if given). With `shard` (the trainer under torch.distributed)
    each rank scores every world_size-th batch and the accumulators are summed over ranks; tasks that
    carry state from batch to batch (those overriding `reset`, e.g. a language model's hidden state)
    score the whole split on every rank instead."""
    metrics = task.metrics()
    shard = shard and distributed.world_size() > 1 and type(task).reset is tasks.Task.reset
    was_training = model.training
    model.eval()
    task.reset()
    try:
        with torch.no_grad():
            order = task.eval_order(split, batch_size)
            if batches is not None:
                order = list(order)[:batches]
            if shard:
                order = list(order)[distributed.rank() :: distributed.world_size()]
            for batch in split.loader(order):  # a streamed split decodes them in its workers
                batch = batch.to(device)
                with precision.autocast(amp, device):
                    output = task.forward(model, batch)
                    loss = task.loss(output, batch)
                metrics.update(output if amp == "fp32" else output.float(), batch, loss)
    finally:
        model.train(was_training)
    return distributed.reduce_metrics(metrics, task.metrics) if shard else metrics
