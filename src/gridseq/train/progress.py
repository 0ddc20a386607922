"""Training progress on stderr, through a rich Console.

Two styles, chosen by `progress_for`:
- on an interactive terminal: a rich progress bar per epoch with loss, the last validation primary
  metric, samples/s and the epoch's ETA, and one summary line per finished epoch;
- otherwise (output piped or redirected, or the environment variable `CI=true`): only the summary
  line, one per epoch, so logs stay readable.

Everything is written to stderr (stdout stays free for a command's results); nothing goes through
`logging`, which carries the library's warnings and notices instead. Only rank 0 shows progress.
"""

from __future__ import annotations

import os
import sys
import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from gridseq.train.callbacks import Callback, TrainState

_SKIP = ("epoch", "seconds", "samples_per_second", "lr")


def format_record(record: dict, epochs: int) -> str:
    """One line for a finished epoch, e.g. `epoch 3/10  train_loss 0.4123  val_accuracy 0.8810  ...`."""
    parts = [f"epoch {record['epoch']}/{epochs}"]
    parts += [f"{k} {v:.4f}" for k, v in record.items() if k not in _SKIP and isinstance(v, float)]
    parts.append(f"lr {record['lr']:.2e}")
    parts.append(f"{record['samples_per_second']:,.0f} samples/s")
    parts.append(f"{record['seconds']:.1f}s")
    return "  ".join(parts)


class LineProgress(Callback):
    """One plain line per finished epoch on stderr."""

    def __init__(self) -> None:
        self.console = Console(stderr=True, highlight=False, soft_wrap=True)

    def on_epoch_end(self, state: TrainState) -> None:
        self.console.print(format_record(state.record, state.epochs), markup=False)

    def close(self) -> None:
        pass


class BarProgress(LineProgress):
    """A rich progress bar over each epoch's batches, plus the epoch summary lines."""

    def __init__(self) -> None:
        super().__init__()
        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f}"),
            TextColumn("{task.fields[metric]}"),
            TextColumn("{task.fields[speed]:,.0f} samples/s"),
            TimeRemainingColumn(),
            console=self.console,
        )
        self.task_id = None
        self.started = 0.0
        self.samples = 0

    def on_fit_start(self, state: TrainState) -> None:
        self.bar.start()

    def on_epoch_start(self, state: TrainState) -> None:
        metric = ""
        if state.history:
            key = f"val_{state.task.primary}"
            metric = f"{key} {state.history[-1].get(key, float('nan')):.4f}"
        if self.task_id is not None:
            self.bar.remove_task(self.task_id)
        self.task_id = self.bar.add_task(
            f"epoch {state.epoch + 1}/{state.epochs}", total=state.steps_per_epoch, completed=state.step,
            loss=float("nan"), metric=metric, speed=0.0,
        )
        self.started, self.samples = time.perf_counter(), 0

    def on_batch_end(self, state: TrainState) -> None:
        self.samples += state.batch_size
        speed = self.samples / max(time.perf_counter() - self.started, 1e-9)
        self.bar.update(self.task_id, completed=state.step, loss=state.loss, speed=speed)

    def on_epoch_end(self, state: TrainState) -> None:
        self.bar.console.print(format_record(state.record, state.epochs), markup=False)

    def close(self) -> None:
        self.bar.stop()


def progress_for(progress: bool | None, *, main: bool) -> LineProgress | None:
    """The progress display for fit(progress=...): None/True = automatic, False = silent.

    Automatic means a bar on an interactive stderr, plain lines when piped or when `CI=true`.
    Processes other than rank 0 never show progress.
    """
    if progress is False or not main:
        return None
    in_ci = os.environ.get("CI", "").lower() in ("1", "true", "yes")
    return BarProgress() if sys.stderr.isatty() and not in_ci else LineProgress()
