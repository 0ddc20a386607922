"""`fit`: the training loop (`evaluate` and the seeding and device helpers are in `evaluation`).

Boilerplate that applies to any model (minGPT's trainer is the model): the loop talks to a `Task`
for loss and metrics and to callbacks for everything else, and knows nothing about CNNs or RNNs
beyond the gradient-clipping default.

One epoch: the training split in the sampler's order (a pure function of seed, epoch and rank), an
optimizer step per batch, validation, best-weights bookkeeping, history, a checkpoint. At the end the
best weights (by the validation primary metric) are restored and the test split is evaluated.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gridseq import tasks
from gridseq.data.augment import augmentation_for
from gridseq.data.contract import Batch, Dataset, Split
from gridseq.errors import (
    ConfigError,
    DataError,
    GridseqError,
    Interrupted,
    OutputError,
    Terminated,
)
from gridseq.io import model_spec
from gridseq.train import distributed, optim, precision
from gridseq.train.arguments import check_fit_args
from gridseq.train.callbacks import CallbackList, TensorBoardLogger, TrainState
from gridseq.train.evaluation import _evaluate, monitor, resolve_device, seed_everything
from gridseq.train.progress import progress_for
from gridseq.train.resume import TrainerState, fingerprint, restore, snapshot
from gridseq.train.run_dir import TENSORBOARD_DIR, RunDir, versions
from gridseq.train.signals import StopOnSignal, signal_name

_logger = logging.getLogger(__name__)


@dataclass
class FitResult:
    """What `fit` returns.

    Attributes:
        history: one record per finished epoch: `epoch`, `train_<metric>`, `val_<metric>`, `lr`,
            `seconds`, `samples_per_second`.
        best_epoch: the epoch (1-based) whose weights the model now holds.
        val: that epoch's validation metrics, e.g. {"loss": ..., "accuracy": ..., "macro_f1": ...}.
        test: the test metrics of the best weights ({} when the test split is empty).
        train_seconds: wall time of all epochs (training and validation), summed over resumes.
        samples_per_second: training items per second of optimizer-step time.
        run_dir: the run directory, or None.
        stopped_early: whether early stopping (or a callback) ended the run before `epochs`.
        baselines: the task's reference predictors scored on the test split, by name (forecasting:
            naive, seasonal_naive, drift); {} for tasks without baselines.
    """

    history: list[dict[str, Any]]
    best_epoch: int
    val: dict[str, float]
    test: dict[str, float]
    train_seconds: float
    samples_per_second: float
    run_dir: Path | None = None
    stopped_early: bool = False
    baselines: dict[str, dict[str, float]] = field(default_factory=dict)


class _Trainer:
    """One call of `fit`: the loop and the state a checkpoint must capture (see resume.py)."""

    def __init__(self, model: nn.Module, data: Dataset, args: dict[str, Any], data_spec: dict | None, callbacks: Iterable[Any]):
        self.model, self.data, self.args = model, data, args
        self.task = tasks.for_data(data.info, model)
        for name, split in data.splits().items():
            self.task.check_split(split, name)
        if args["label_smoothing"]:
            if not self.task.smooths_labels:
                raise ConfigError(f"label_smoothing applies to the cross-entropy tasks (classify, tag, seq2seq, caption); this is "
                                  f"a {self.task.name} task. Leave label_smoothing at 0.")
            self.task.label_smoothing = float(args["label_smoothing"])
        if len(data.train) == 0:
            raise DataError(f"dataset {data.info.name!r} has an empty training split; fit needs at least one training item.")

        self.device = distributed.local_device(resolve_device(args["device"]))
        self.amp = precision.check(args["precision"], self.device)
        self.scaler = precision.scaler(self.amp, self.device)  # fp16 only
        self.pin = self.device.type == "cuda"  # page-locked batches: the copy to the GPU overlaps compute
        seed_everything(args["seed"])
        model.to(self.device)
        self.channels_last = _channels_last(args["channels_last"], model, data, self.device)
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        self.net = distributed.wrap(model, self.device)  # what the forward pass calls (DDP or the model)
        self.eval_batch_size = 2 * args["batch_size"]  # no gradients kept, so twice the batch fits
        if args["monitor"] is not None:  # before the scheduler: "plateau" follows the monitored metric's direction
            monitor(self.task, args["monitor"], model, data.val if len(data.val) else data.train, batch_size=self.eval_batch_size,
                    device=self.device, amp=self.amp)
        self.sampler = self.task.sampler(len(data.train), args["batch_size"], data.train.lengths, seed=args["seed"],
                                         rank=distributed.rank(), world_size=distributed.world_size())
        self.steps_per_epoch = len(self.sampler)
        self.optimizer = optim.build_optimizer(model, args["optimizer"], lr=args["lr"], weight_decay=args["weight_decay"])
        self.scheduler = optim.build_scheduler(
            self.optimizer, args["scheduler"], lr=args["lr"], total_steps=args["epochs"] * self.steps_per_epoch,
            higher_is_better=self.task.higher_is_better,
        )
        self.clip = optim.resolve_grad_clip(model, args["grad_clip"])
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.augment = augmentation_for(args["augment"], data.info)
        # resolved, so config.json and the resume check say what ran: on or off, or the settings asked for
        args["augment"] = self.augment.to_json() if isinstance(args["augment"], dict) else self.augment is not None

        main = distributed.is_main()
        self.run = RunDir(args["run_dir"], main=main) if args["run_dir"] is not None else None
        self.fingerprint = fingerprint(args, len(data.train), self.steps_per_epoch, distributed.world_size())
        self.extra = {
            "data": {**(data_spec or {"name": data.info.name}), "info": data.info.to_json()},
            "task": self.task.describe(),
            "train": {**{k: v for k, v in args.items() if k != "run_dir"}, "grad_clip": self.clip or 0.0, "device": str(self.device)},
            "seed": args["seed"],
            "versions": versions(),
        }

        self.st = TrainState(model, self.optimizer, self.task, args["epochs"], self.steps_per_epoch)
        self.ts = TrainerState(train_metrics=self.task.metrics())
        self.callbacks = list(callbacks)

    # -- the loop ------------------------------------------------------------------------------

    def fit(self) -> FitResult:
        epoch, step = self._begin()
        # progress and TensorBoard are callbacks too, created once the run directory is settled
        main = distributed.is_main()
        internal = [progress_for(self.args["progress"], main=main)]
        if self.run is not None and main:
            internal.append(TensorBoardLogger.maybe(str(self.run.path / TENSORBOARD_DIR)))
        self.internal = [cb for cb in internal if cb is not None]
        self.events = CallbackList([*self.internal, *self.callbacks])
        # SIGTERM / Ctrl-C: checkpoint at the next step boundary, then Terminated / Interrupted
        self.stop = StopOnSignal().__enter__()
        try:
            self.events("on_fit_start", self.st)
            while epoch < self.args["epochs"] and not self.ts.stopped:
                self._train_epoch(epoch, step)
                self._end_epoch(epoch)
                if self.stop.requested():  # during validation: the epoch-end checkpoint is written
                    raise self._terminated(epoch + 1, 0)
                epoch, step = epoch + 1, 0
            # training is over: a Ctrl-C during the test evaluation stops at once (the last epoch's checkpoint
            # is written, so --resume only evaluates); a scheduler's SIGTERM still lets the run finish
            self.stop.release(signal.SIGINT)
            if self.channels_last:  # the caller gets the model in the layout it came in
                self.model.to(memory_format=torch.contiguous_format)
            result = self._finish()
            self.events("on_fit_end", self.st)
        except OutputError as e:  # the run directory cannot be written: say what is kept and how to go on
            raise self._write_failed(e) from None
        finally:
            self.stop.__exit__(None, None, None)
            if self.channels_last:
                self.model.to(memory_format=torch.contiguous_format)
            for cb in self.internal:
                cb.close()
        return result

    def _begin(self) -> tuple[int, int]:
        """Start fresh or load the checkpoint; returns (epoch, step) to continue from."""
        if self.run is None:
            return 0, 0
        # under DDP rank 0 alone reads the run directory and tells the others what it found
        if self.args["resume"] and distributed.on_main(self.run.has_checkpoint):
            return restore(self)
        if self.args["resume"]:
            _logger.info("no checkpoint in %s; starting a new run", self.run.path)
        else:
            distributed.on_main(self.run.check_fresh)
        model_spec(self.model)  # ConfigError now, not after training, for an unregistered model
        self.run.start(self.model, self.extra)
        return 0, 0

    def _to_device(self, batch: Batch) -> Batch:
        if self.pin:
            batch = Batch(batch.x.pin_memory(), None if batch.y is None else batch.y.pin_memory(), batch.lengths)
        batch = batch.to(self.device)  # non-blocking copies
        if self.channels_last:
            batch = Batch(batch.x.contiguous(memory_format=torch.channels_last), batch.y, batch.lengths)
        return batch

    def _train_epoch(self, epoch: int, start_step: int) -> None:
        st, ts = self.st, self.ts
        st.epoch, st.step = epoch, start_step
        if start_step == 0:
            ts.train_metrics = self.task.metrics()
            ts.epoch_seconds = ts.epoch_step_seconds = 0.0
            ts.epoch_samples = 0
        self.sampler.set_epoch(epoch)
        self.task.reset()
        self.model.train()
        started = time.perf_counter() - ts.epoch_seconds
        self.events("on_epoch_start", st)
        # resuming: the batches before start_step were trained before the checkpoint; the loader decodes
        # (and augments, by seed, epoch and item) only the rest
        batches = iter(self.data.train.loader(list(self.sampler)[start_step:], epoch=epoch, seed=self.args["seed"],
                                              augment=self.augment))
        for i in range(start_step, self.steps_per_epoch):
            t0 = time.perf_counter()  # waiting for the loader counts as step time
            batch = self._to_device(next(batches))
            with precision.autocast(self.amp, self.device):
                output = self.task.forward(self.net, batch)
                loss = self.task.training_loss(output, batch)
            loss_value = float(loss.detach())
            if not math.isfinite(loss_value):
                raise self._diverged(epoch, i, loss_value)
            self.optimizer.zero_grad(set_to_none=True)
            if self.scaler is None:
                loss.backward()  # under DDP the gradients arrive averaged over ranks
                if self.clip is not None:
                    nn.utils.clip_grad_norm_(self.params, self.clip)
                self.optimizer.step()
            else:  # fp16: scaled loss; unscale before clipping; the step is skipped on inf/NaN gradients
                self.scaler.scale(loss).backward()
                self.scaler.unscale_(self.optimizer)
                if self.clip is not None:
                    nn.utils.clip_grad_norm_(self.params, self.clip)
                self.scaler.step(self.optimizer)
                self.scaler.update()
            if self.args["scheduler"] in optim.PER_STEP_SCHEDULERS:
                self.scheduler.step()
            ts.train_metrics.update(output if self.amp == "fp32" else output.float(), batch, loss)
            ts.epoch_step_seconds += time.perf_counter() - t0
            ts.epoch_samples += len(batch)
            st.step, st.global_step, st.loss, st.batch_size = i + 1, st.global_step + 1, loss_value, len(batch)
            self.events("on_batch_end", st)
            every = self.args["checkpoint_every"]
            if every and st.global_step % every == 0 and st.step < self.steps_per_epoch:
                ts.epoch_seconds = time.perf_counter() - started
                self._checkpoint(epoch, st.step)
            if self.stop.requested() and st.step < self.steps_per_epoch:  # (the last step: at the epoch's end)
                ts.epoch_seconds = time.perf_counter() - started
                self._checkpoint(epoch, st.step)
                raise self._terminated(epoch, st.step)
        ts.epoch_seconds = time.perf_counter() - started

    def _end_epoch(self, epoch: int) -> None:
        st, ts = self.st, self.ts
        started = time.perf_counter()
        # under DDP: every rank's sums together, so every rank takes the same best-epoch and stopping decisions
        train = distributed.reduce_metrics(ts.train_metrics, self.task.metrics).compute()
        distributed.sync_buffers(self.model)
        val = self._evaluate(self.data.val) if len(self.data.val) else {}
        seconds = ts.epoch_seconds + time.perf_counter() - started
        samples = ts.epoch_samples * distributed.world_size()  # every rank trains on an equal share
        record = {
            "epoch": epoch + 1,
            **{f"train_{k}": v for k, v in train.items()},
            **{f"val_{k}": v for k, v in val.items()},
            "lr": optim.current_lr(self.optimizer),
            "seconds": seconds,
            "samples_per_second": samples / max(ts.epoch_step_seconds, 1e-9),
        }
        ts.train_seconds += seconds
        ts.step_seconds += ts.epoch_step_seconds
        ts.samples += samples

        # without a validation split, the best epoch is picked on the training metrics
        value = (val or train).get(self.task.primary, math.nan)
        if self.task.is_better(value, st.best_metric) or self.args["select"] == "last":
            st.best_metric, st.best_epoch, ts.bad_epochs = value, epoch + 1, 0
            ts.best_state = {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()}
            if self.run is not None:
                self.run.save_model(self.model)
        else:
            ts.bad_epochs += 1
        if self.args["scheduler"] == "plateau":
            self.scheduler.step(value)

        st.history.append(record)
        st.record = record
        if self.run is not None:
            self.run.write_history(st.history)
        self.events("on_epoch_end", st)
        patience = self.args["patience"]
        if patience is not None and ts.bad_epochs >= patience:
            _logger.info("early stopping after epoch %d: val %s has not improved for %d epochs (best %.4f at epoch %d)",
                         epoch + 1, self.task.primary, patience, st.best_metric, st.best_epoch)
            ts.stopped = True
        ts.stopped = ts.stopped or st.should_stop
        if distributed.is_distributed():  # a time budget or a callback may stop one rank: stop them all
            ts.stopped = distributed.any_rank(ts.stopped)
        self._checkpoint(epoch + 1, 0)

    def _finish(self) -> FitResult:
        st, ts = self.st, self.ts
        if ts.best_state is not None:
            self.model.load_state_dict(ts.best_state)
        test = self._evaluate(self.data.test) if len(self.data.test) else {}
        baselines = self.task.baselines(self.data.test)  # computed on the same test items as the model
        best = st.history[st.best_epoch - 1] if st.best_epoch else {}
        val = {k[4:]: v for k, v in best.items() if k.startswith("val_")}
        result = FitResult(
            history=list(st.history), best_epoch=st.best_epoch, val=val, test=test, train_seconds=ts.train_seconds,
            samples_per_second=ts.samples / max(ts.step_seconds, 1e-9),
            run_dir=self.run.path if self.run is not None else None,
            stopped_early=ts.stopped and len(st.history) < self.args["epochs"], baselines=baselines,
        )
        if self.run is not None:
            self.run.save_model(self.model)
            self.run.write_metrics({
                "val": val, "test": test, "train_seconds": result.train_seconds, "epochs": len(st.history),
                "best_epoch": st.best_epoch, "parameters": sum(p.numel() for p in self.model.parameters()),
                "samples_per_second": result.samples_per_second, **({"baselines": baselines} if baselines else {}),
            })
        distributed.barrier()  # the run directory is complete when any rank returns
        return result

    def _evaluate(self, split: Split) -> dict[str, float]:
        return _evaluate(self.model, split, self.task, self.eval_batch_size, device=self.device, amp=self.amp, shard=True).compute()

    # -- checkpoints -----------------------------------------------------------------------------

    def _checkpoint(self, epoch: int, step: int) -> None:
        if self.run is None:
            return
        self.run.save_checkpoint(snapshot(self, epoch, step), step=self.st.global_step)
        self.ts.last_checkpoint = (epoch, step)

    def _kept(self) -> str:
        """Which checkpoint a failed run leaves behind, for its error message."""
        if self.run is None:
            return "No checkpoint is kept (no run_dir)."
        if self.ts.last_checkpoint is None:
            return "No checkpoint had been written yet."
        e, s = self.ts.last_checkpoint
        return f"The last good checkpoint (after epoch {e}, step {s}) in {self.run.checkpoint_dir} is kept."

    def _diverged(self, epoch: int, step: int, loss: float) -> GridseqError:
        where = f"epoch {epoch + 1}, step {step + 1} (global step {self.st.global_step + 1})"
        return GridseqError(
            f"training loss became {loss} at {where}: the weights diverged. Lower the learning rate "
            f"(lr={self.args['lr']}), set grad_clip (e.g. 1.0), or check the data for extreme values. {self._kept()}"
        )

    def _terminated(self, epoch: int, step: int) -> Terminated | Interrupted:
        where = f"epoch {epoch + 1}, step {step}" if step else f"epoch {epoch}"
        # under torch.distributed a rank the signal did not reach stops because another did (torchrun sends SIGTERM on)
        signum = self.stop.received or signal.SIGTERM
        kind, by = (Interrupted if signum == signal.SIGINT else Terminated), signal_name(signum)
        if self.run is None:
            return kind(f"stopped by {by} after {where}; nothing was saved (no run_dir).")
        return kind(f"stopped by {by} after {where} (global step {self.st.global_step}); the checkpoint in "
                    f"{self.run.checkpoint_dir} holds it: continue with resume=True (`gridseq train ... --resume`).",
                    (epoch, step))

    def _write_failed(self, error: OutputError) -> OutputError:
        resume = " Fix that, then continue with resume=True (`gridseq train ... --resume`)." if self.ts.last_checkpoint else ""
        out = OutputError(f"{error} {self._kept()}{resume}")
        out.errno, out.strerror, out.filename = error.errno, error.strerror, error.filename
        return out


def _channels_last(asked: bool | None, model: nn.Module, data: Dataset, device: torch.device) -> bool:
    """Whether to train in the channels-last layout (see `fit`'s `channels_last`)."""
    if asked is not None:
        return bool(asked)
    return (device.type == "cpu" and data.info.kind == "image" and distributed.world_size() == 1
            and any(isinstance(m, nn.Conv2d) for m in model.modules()))


def fit(
    model: nn.Module,
    data: Dataset,
    *,
    epochs: int = 10,
    batch_size: int = 64,
    lr: float = 1e-3,
    optimizer: str = "adamw",
    weight_decay: float = 0.01,
    scheduler: str = "none",
    grad_clip: float | None = None,
    patience: int | None = None,
    select: str = "best",
    seed: int = 0,
    run_dir: str | os.PathLike | None = None,
    device: str = "auto",
    resume: bool = False,
    checkpoint_every: int | None = None,
    progress: bool | None = None,
    callbacks: Iterable[Any] = (),
    data_spec: dict[str, Any] | None = None,
    precision: str = "fp32",
    channels_last: bool | None = None,
    augment: bool | dict | None = None,
    monitor: str | None = None,
    label_smoothing: float = 0.0,
) -> FitResult:
    """Train `model` on `data`, validating every epoch; the model ends with its best weights.

    Args:
        model: any nn.Module whose output suits the dataset's task (logits (B, K) for classify);
            with `run_dir` it must be a registered model (built by gridseq.models.create).
        data: the dataset (train, val and test splits and their info).
        epochs: passes over the training split. Default: 10.
        batch_size: items per optimizer step. Default: 64.
        lr: (peak) learning rate. Default: 1e-3.
        optimizer: "adamw", "adam" or "sgd" (Nesterov momentum 0.9). Default: "adamw".
        weight_decay: decoupled for adamw, L2 for adam and sgd. Default: 0.01.
        scheduler: "none", "cosine", "plateau" or "onecycle". Default: "none".
        grad_clip: max gradient norm; None = 1.0 for recurrent models, off otherwise; 0 = off.
        patience: stop after this many epochs without a better validation primary metric.
            Default: None (never stop early).
        select: which epoch's weights the model ends with: "best" (the best validation primary metric;
            the first such epoch on ties) or "last" (the final epoch; for validation splits so small
            that accuracy ties at 100% early, e.g. the UCR archive — pair it with scheduler="cosine").
            Default: "best".
        seed: seeds torch, numpy and random at the start. Default: 0.
        run_dir: where to write config.json, model.safetensors, metrics.json, history.jsonl and
            checkpoints. Default: None (nothing written).
        device: "auto" (CUDA if available, else CPU), "cpu", "cuda", "cuda:1", ... Default: "auto".
            Under torchrun, "auto"/"cuda" mean GPU LOCAL_RANK of each process.
        resume: continue the run in `run_dir` from its checkpoint (a fresh start if there is none).
        checkpoint_every: also checkpoint every this many optimizer steps (checkpoints are always
            written at each epoch's end). Default: None.
        progress: None = automatic (bar on a terminal, one line per epoch otherwise), False = silent.
        callbacks: objects with any of on_fit_start / on_epoch_start / on_batch_end /
            on_epoch_end / on_fit_end(state); see gridseq.train.callbacks.
        data_spec: how to rebuild the dataset (e.g. {"name": "digits", "seed": 0}); stored in
            config.json beside the dataset's info.
        precision: "fp32", "bf16" (autocast; CUDA or CPU) or "fp16" (autocast + gradient scaling;
            CUDA only); see gridseq.train.precision. Default: "fp32".
        channels_last: train 2D convolutions on channels-last (NHWC) weights and batches, where
            oneDNN's CPU kernels run without reordering (model 4 of docs/PERFORMANCE.md trains 1.3x
            faster). None = on for a model with Conv2d layers on 4D image batches on the CPU in a single
            process; the model is handed back in the default layout. Default: None.
        augment: augment training batches on the fly (`gridseq.data.augment.augmentation_for`: for
            images random resized crop, horizontal flip, small rotation, colour jitter, and random erasing
            with the `erase` setting), seeded by
            (seed, epoch, item) so a resumed run sees the same batches; never validation or test.
            True/False, a dict of the policy's settings (on, e.g. {"rotation": 0, "brightness": 0}),
            or None: the dataset's default, off for every dataset today (docs/datasets.md,
            Augmentation). Default: None.
        monitor: the validation metric that picks the best epoch, drives `patience` and the "plateau"
            schedule, e.g. "macro_f1" for classification on unbalanced classes; smaller is better for
            `gridseq.tasks.LOWER_IS_BETTER` (loss, mse, mae, cer, fid, ...), larger for any other.
            None = the task's primary metric (accuracy for classification). Default: None.
        label_smoothing: the share ε of each target's probability spread over all K classes in the
            training loss, (1 - ε)·one-hot + ε/K (Szegedy et al. 2016), for the cross-entropy tasks
            (classify, tag, seq2seq, caption); `train_loss` includes it, validation and test losses
            never do, so they stay comparable across runs. In [0, 1). Default: 0.

    Distributed: with a torch.distributed process group running (under torchrun; see
    `gridseq.train.distributed.init_from_env` and docs/scaling.md) the model is wrapped in
    DistributedDataParallel, each rank trains on its share of every epoch (`batch_size` is per
    process: the global batch is batch_size × world_size), metrics are summed over ranks, and only
    rank 0 writes `run_dir` and shows progress. Every rank returns the same metrics.

    Returns:
        A FitResult: history, best epoch, its val metrics, test metrics, timings, run_dir.

    Raises:
        ConfigError: a bad argument, a model whose topology cannot serve the task, an existing run
            in `run_dir` without resume=True, or a resume with different settings.
        DataError: targets that do not fit the task.
        CheckpointError: the checkpoint to resume from is corrupt (named in the message).
        GridseqError: the loss became NaN or infinite (epoch and step in the message).
        OutputError: the run directory cannot be written (disk full, read-only, ...); the last good
            checkpoint is kept, so resume=True continues from it once the cause is fixed.
        Terminated: SIGTERM arrived; a checkpoint was written at the next step boundary (see
            gridseq.train.signals).
        Interrupted: Ctrl-C (SIGINT) arrived during training; the same, and a KeyboardInterrupt. A
            second Ctrl-C raises a plain KeyboardInterrupt at once.

    Example:
        >>> result = gridseq.fit(model, data, epochs=5, run_dir="runs/digits-cnn")  # doctest: +SKIP
        >>> result.test["accuracy"]  # doctest: +SKIP
        0.97
    """
    args = {
        "epochs": epochs, "batch_size": batch_size, "lr": lr, "optimizer": optimizer, "weight_decay": weight_decay,
        "scheduler": scheduler, "grad_clip": grad_clip, "patience": patience, "select": select, "seed": seed, "run_dir": run_dir,
        "device": device, "resume": resume, "checkpoint_every": checkpoint_every, "progress": progress, "precision": precision,
        "channels_last": channels_last, "augment": augment, "monitor": monitor, "label_smoothing": label_smoothing,
    }
    check_fit_args(args)
    if not isinstance(data, Dataset):
        raise DataError(f"fit needs a gridseq Dataset (info + train/val/test splits), got {type(data).__name__}; see gridseq.datasets.load().")
    return _Trainer(model, data, args, data_spec, callbacks).fit()
