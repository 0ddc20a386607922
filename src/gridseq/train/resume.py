"""What a checkpoint holds, so that a run killed at any step and resumed ends with exactly the same
weights as the same run left alone (bit for bit on CPU).

That needs everything the rest of the run depends on: model and optimizer state, the scheduler,
the position (epoch, step in epoch, global step), the best weights and metric so far, the early-
stopping counter, the history, the half-epoch's metric sums and timings, and the random generators
(dropout draws from torch's). The batch order needs nothing: the sampler's order is a pure function
of (seed, epoch, rank, world size), so a resumed epoch recreates it and skips the finished batches.

Under torch.distributed rank 0 writes the checkpoint, with every rank's random generator states and
half-epoch metric sums under "ranks"; each rank restores its own, so a distributed run killed and
resumed with the same number of processes also continues exactly.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from gridseq.errors import ConfigError
from gridseq.tasks import Metrics, Task
from gridseq.train import distributed
from gridseq.train.checkpoint import capture_rng, restore_rng

if TYPE_CHECKING:
    from gridseq.train.trainer import _Trainer

_logger = logging.getLogger(__name__)

# fit arguments that shape the run's trajectory: a resume must use the same
_TRAJECTORY = ("batch_size", "optimizer", "scheduler", "seed")


@dataclass
class TrainerState:
    """The trainer's own bookkeeping beyond `TrainState` (which callbacks see)."""

    train_metrics: Metrics
    best_state: dict[str, Tensor] | None = None  # CPU copy of the best weights
    bad_epochs: int = 0  # epochs since the best one, for early stopping
    stopped: bool = False  # early stopping (or a callback) ended the run
    train_seconds: float = 0.0  # finished epochs, training + validation
    step_seconds: float = 0.0  # finished epochs, optimizer steps only
    samples: int = 0  # finished epochs, training items
    epoch_seconds: float = 0.0  # the current epoch so far
    epoch_step_seconds: float = 0.0
    epoch_samples: int = 0
    last_checkpoint: tuple[int, int] | None = field(default=None)  # (epoch, step) of the last one written

    def to_json(self) -> dict[str, Any]:
        return {
            "train_metrics": self.train_metrics.state_dict(), "best_state": self.best_state,
            "bad_epochs": self.bad_epochs, "stopped": self.stopped, "train_seconds": self.train_seconds,
            "step_seconds": self.step_seconds, "samples": self.samples, "epoch_seconds": self.epoch_seconds,
            "epoch_step_seconds": self.epoch_step_seconds, "epoch_samples": self.epoch_samples,
        }

    def load(self, saved: dict[str, Any], task: Task, device: torch.device) -> None:
        self.train_metrics = task.metrics()
        self.train_metrics.load_state_dict({k: v.to(device) for k, v in saved["train_metrics"].items()})
        for name in ("best_state", "bad_epochs", "stopped", "train_seconds", "step_seconds", "samples",
                     "epoch_seconds", "epoch_step_seconds", "epoch_samples"):
            setattr(self, name, saved[name])


def fingerprint(args: dict[str, Any], train_items: int, steps_per_epoch: int, world_size: int) -> dict[str, Any]:
    """The settings a resumed run must share with the original (epochs may grow, except under
    schedules whose horizon is the whole run)."""
    fp = {k: args[k] for k in _TRAJECTORY}
    fp.update(train_items=train_items, steps_per_epoch=steps_per_epoch, world_size=world_size)
    if args["scheduler"] in ("cosine", "onecycle"):
        fp["epochs"] = args["epochs"]
    if args.get("augment"):  # recorded only when on, so checkpoints written before augmentation existed resume
        fp["augment"] = args["augment"]  # True, or the policy's settings when they were given
    if args.get("monitor") is not None:  # recorded only when given, so checkpoints written before it existed resume
        fp["monitor"] = args["monitor"]
    if args.get("label_smoothing"):  # likewise, only when on
        fp["label_smoothing"] = args["label_smoothing"]
    return fp


def snapshot(trainer: _Trainer, epoch: int, step: int) -> dict[str, Any]:
    """The full checkpoint of `trainer`, positioned to continue at (`epoch`, `step`)."""
    st = trainer.st
    # under torch.distributed each rank has its own random streams (dropout on different batch
    # shapes) and its own half-epoch metric sums: rank 0's checkpoint holds every rank's
    ranks = distributed.all_gather({"rng": capture_rng(), "train_metrics": trainer.ts.train_metrics.state_dict()})
    return {
        "position": {"epoch": epoch, "step": step, "global_step": st.global_step},
        "fingerprint": trainer.fingerprint,
        "model": trainer.model.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "scheduler": trainer.scheduler.state_dict() if trainer.scheduler is not None else None,
        "history": st.history,
        "best_metric": st.best_metric,
        "best_epoch": st.best_epoch,
        "trainer": trainer.ts.to_json(),
        "rng": capture_rng(),
        **({"ranks": ranks} if len(ranks) > 1 else {}),
        **({"scaler": trainer.scaler.state_dict()} if trainer.scaler is not None else {}),
    }


def restore(trainer: _Trainer) -> tuple[int, int]:
    """Load the checkpoint of `trainer`'s run into it (refused if the run's settings changed); the position to continue from."""
    ck = distributed.on_main(trainer.run.load_checkpoint)  # rank 0 reads it, every rank gets it
    stored = ck["fingerprint"]
    changed = [f"{k}={stored.get(k)!r} then, {v!r} now" for k, v in trainer.fingerprint.items() if stored.get(k) != v]
    if changed:
        raise ConfigError(
            f"cannot resume {trainer.run.path}: the run was started with different settings ({'; '.join(changed)}). "
            f"Resume with the original settings, or start a new run directory."
        )
    st, ts = trainer.st, trainer.ts
    trainer.model.load_state_dict(ck["model"])
    trainer.optimizer.load_state_dict(ck["optimizer"])
    if trainer.scheduler is not None:
        trainer.scheduler.load_state_dict(ck["scheduler"])
    if trainer.scaler is not None and ck.get("scaler"):
        trainer.scaler.load_state_dict(ck["scaler"])
    mine = ck["ranks"][distributed.rank()] if "ranks" in ck else None  # a distributed run's per-rank state
    ts.load({**ck["trainer"], **({"train_metrics": mine["train_metrics"]} if mine else {})}, trainer.task, trainer.device)
    st.history, st.best_metric, st.best_epoch = ck["history"], ck["best_metric"], ck["best_epoch"]
    st.global_step = ck["position"]["global_step"]
    trainer.run.extra = trainer.extra
    trainer.run.write_history(st.history)  # drop epochs recorded after this checkpoint was written
    epoch, step = ck["position"]["epoch"], ck["position"]["step"]
    ts.last_checkpoint = (epoch, step)
    _logger.info("resuming %s at epoch %d, step %d", trainer.run.path, epoch + 1, step)
    restore_rng(mine["rng"] if mine else ck["rng"])  # last: nothing above may draw random numbers after it
    return epoch, step
