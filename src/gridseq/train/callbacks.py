"""Event callbacks: the training loop announces what happens; callbacks react.

The trainer calls, on every callback that defines them, `on_fit_start`, `on_epoch_start`,
`on_batch_end`, `on_epoch_end` and `on_fit_end`, each with the shared `TrainState`. Progress
display and TensorBoard logging are callbacks too, so the loop itself knows nothing about them
(nor about any particular model). A callback stops training by setting `state.should_stop = True`;
the run then ends after the current epoch, like early stopping.

Example:
    >>> class PrintLR(Callback):
    ...     def on_epoch_end(self, state):
    ...         print(state.record["lr"])
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

EVENTS = ("on_fit_start", "on_epoch_start", "on_batch_end", "on_epoch_end", "on_fit_end")


@dataclass
class TrainState:
    """What the training loop shares with callbacks.

    Attributes:
        model: the model being trained (unwrapped from DDP).
        optimizer: its optimizer.
        task: the gridseq Task (loss, metrics, primary metric).
        epochs: the number of epochs asked for.
        steps_per_epoch: batches per epoch on this process.
        epoch: the current epoch, 0-based (history records count from 1).
        step: batches done in the current epoch.
        global_step: optimizer steps since the start of the run.
        loss: the last batch's training loss.
        batch_size: the last batch's size.
        record: the last finished epoch's history record (train_*, val_* metrics, lr, seconds, ...).
        history: every finished epoch's record.
        best_metric: the best validation primary metric so far (None before the first epoch).
        best_epoch: the epoch (1-based) that reached it.
        should_stop: set True to end training after the current epoch.
    """

    model: nn.Module
    optimizer: Any
    task: Any
    epochs: int
    steps_per_epoch: int
    epoch: int = 0
    step: int = 0
    global_step: int = 0
    loss: float = math.nan
    batch_size: int = 0
    record: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    best_metric: float | None = None
    best_epoch: int = 0
    should_stop: bool = False


class Callback:
    """Base class with every event as a no-op; override the ones you need."""

    def on_fit_start(self, state: TrainState) -> None: ...

    def on_epoch_start(self, state: TrainState) -> None: ...

    def on_batch_end(self, state: TrainState) -> None: ...

    def on_epoch_end(self, state: TrainState) -> None: ...

    def on_fit_end(self, state: TrainState) -> None: ...


class CallbackList:
    """Dispatch each event to every callback that defines it (any object with those methods works)."""

    def __init__(self, callbacks: Iterable[Any]):
        self.callbacks = list(callbacks)

    def __call__(self, event: str, state: TrainState) -> None:
        for cb in self.callbacks:
            method = getattr(cb, event, None)
            if method is not None:
                method(state)


class TensorBoardLogger(Callback):
    """Per-epoch scalars (every number in the history record) as TensorBoard event files.

    Created only when `torch.utils.tensorboard` (the `tensorboard` package) can be imported; gridseq
    does not depend on it.
    """

    def __init__(self, log_dir: str):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=log_dir)

    @classmethod
    def maybe(cls, log_dir: str) -> TensorBoardLogger | None:
        """A logger writing to `log_dir`, or None when tensorboard is not installed."""
        try:
            return cls(log_dir)
        except ImportError:
            return None

    def on_epoch_end(self, state: TrainState) -> None:
        for key, value in state.record.items():
            if key != "epoch" and isinstance(value, (int, float)):
                # "train_loss" → "train/loss": TensorBoard groups charts by the part before "/"
                tag = key.replace("_", "/", 1) if key.startswith(("train_", "val_")) else key
                self.writer.add_scalar(tag, value, state.record["epoch"])
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
