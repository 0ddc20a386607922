"""The run directory a training run writes, and `open_run` to read one back.

    run_dir/
        config.json        model name + config (gridseq.io), data spec + DatasetInfo, task, fit
                           arguments, seed, library versions
        model.safetensors  the best weights so far (by the validation primary metric); final at the end
        metrics.json       at the end: best val metrics, test metrics, train_seconds, epochs,
                           best_epoch, parameters, samples_per_second, and for tasks with
                           baselines (forecasting) "baselines": {name: test metrics}
        history.jsonl      one JSON object per finished epoch
        checkpoint/        the resumable training state (see checkpoint.py)
        tensorboard/       event files, when the `tensorboard` package is installed

Every file is written atomically; an OS failure (disk full, read-only, no such folder, ...) is an
`OutputError` naming the file and the fix, and the file it would have replaced is kept. Under
torch.distributed only rank 0 writes (`main=False` makes every method a no-op), and every rank
calls each write together, so an `OutputError` on rank 0 is raised on every rank instead of leaving
the others waiting in the next collective.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

import numpy as np
import safetensors
import torch
from torch import nn

from gridseq import io
from gridseq._atomic import atomic_write_json, atomic_write_text
from gridseq.errors import ConfigError
from gridseq.train import checkpoint, distributed

METRICS_FILE = "metrics.json"
HISTORY_FILE = "history.jsonl"
CHECKPOINT_DIR = "checkpoint"
TENSORBOARD_DIR = "tensorboard"


def versions() -> dict[str, str]:
    """Library versions recorded in config.json (results can depend on them)."""
    from gridseq import __version__

    return {
        "gridseq": __version__, "torch": torch.__version__, "numpy": np.__version__,
        "safetensors": safetensors.__version__, "python": platform.python_version(),
    }


class RunDir:
    """Writes one training run's files.

    Args:
        path: the run directory (created if needed).
        main: whether this process writes (rank 0); other ranks only read checkpoints.
    """

    def __init__(self, path: str | os.PathLike, *, main: bool = True):
        self.path = Path(path)
        self.main = main
        self.extra: dict[str, Any] = {}

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / CHECKPOINT_DIR

    def has_checkpoint(self) -> bool:
        return checkpoint.has_checkpoint(self.checkpoint_dir)

    def check_fresh(self) -> None:
        """ConfigError if the directory already holds a run (so a new run never overwrites one)."""
        if self.has_checkpoint() or (self.path / METRICS_FILE).exists():
            raise ConfigError(
                f"{self.path} already holds a training run; pass resume=True (--resume) to continue it, "
                f"or choose another run directory (or delete this one) to start over."
            )

    def start(self, model: nn.Module, extra: dict[str, Any]) -> None:
        """Write config.json (and the initial weights) at the start of a run."""
        self.extra = extra
        self._write(lambda: io.save(model, self.path, extra=extra))

    def save_model(self, model: nn.Module) -> None:
        """Write `model`'s current weights (the best so far) as model.safetensors, with config.json."""
        self._write(lambda: io.save(model, self.path, extra=self.extra))

    def write_history(self, history: list[dict[str, Any]]) -> None:
        """Rewrite history.jsonl atomically from the full history (it is small; a resumed run's
        history then always matches its checkpoint)."""
        self._write(lambda: atomic_write_text(self.path / HISTORY_FILE, "".join(json.dumps(r) + "\n" for r in history)))

    def write_metrics(self, metrics: dict[str, Any]) -> None:
        self._write(lambda: atomic_write_json(self.path / METRICS_FILE, metrics))

    def save_checkpoint(self, state: dict[str, Any], *, step: int) -> None:
        self._write(lambda: checkpoint.save_checkpoint(self.checkpoint_dir, state, step=step))

    def _write(self, write) -> None:
        if distributed.is_distributed():
            distributed.on_main(lambda: write() if self.main else None)  # rank 0's error raised on every rank
        elif self.main:
            write()

    def load_checkpoint(self) -> dict[str, Any]:
        return checkpoint.load_checkpoint(self.checkpoint_dir)


def add_config_section(run_dir: str | os.PathLike, key: str, value: Any) -> None:
    """Add (or replace) the top-level section `key` of a finished run's config.json, atomically
    (e.g. "cv": the cross-validation that chose a refitted run's epoch count)."""
    config = io.read_config(run_dir)
    config[key] = value
    atomic_write_json(Path(run_dir) / io.CONFIG_FILE, config)


def read_history(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The per-epoch records of a run directory's history.jsonl."""
    path = Path(run_dir) / HISTORY_FILE
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def open_run(run_dir: str | os.PathLike) -> tuple[nn.Module, dict[str, Any]]:
    """The trained model (best weights, eval mode) and the parsed config.json of a run directory.

    Example:
        >>> model, config = open_run("runs/digits-cnn")  # doctest: +SKIP
        >>> config["data"]["info"]["num_classes"]  # doctest: +SKIP
        10

    Raises:
        CheckpointError: the directory, config.json or model.safetensors is missing or corrupt.
    """
    config = io.read_config(run_dir)
    return io.load(run_dir), config
