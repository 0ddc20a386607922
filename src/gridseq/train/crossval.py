"""The small-data protocol: k-fold cross-validation on the training items, then a refit on all of them.

A 10% validation split of a small training set (the UCR archive's GunPoint has 50 series: 5 to
validate on) ties at 100% within a few epochs and picks settings by noise. Cross-validation scores a
setting on every training item instead:

1. `cross_validate` pools the dataset's train and val splits ("the training items": for the UCR/UEA
   built-ins, the archive's own TRAIN file), deals them into k folds (stratified by label for
   classification), and trains a fresh model k times with `fit`, each time on k-1 folds, validating on
   the held-out fold every epoch. The mean held-out curve picks the epoch count.
2. `refit` trains once more on all training items for that many epochs (keeping the last weights)
   and evaluates the test split, once (its own schedule over that many epochs; `horizon=` keeps the
   folds' schedule instead and stops at the chosen epoch).

The test split is never read by `cross_validate`.

Folds run one after the other (fold 0's epochs 1..E, then fold 1's, ...). Every callback of
`callbacks_for_fold(fold)` gets fit's usual events for that fold and, after each epoch, the CV-level
event `on_cv_epoch_end(progress)` with a `CVProgress`: the running mean of the held-out primary
metric at that epoch over the folds done so far (this one included) and a step number that grows
over the whole run (fold * epochs + epoch) — what an Optuna pruner reports (`trial.report(progress.value,
progress.step)`). A callback stops the run by raising (e.g. optuna.TrialPruned), which propagates.

Example:
    >>> build = lambda: models.create_for("fcn", data.info)  # doctest: +SKIP
    >>> cv = cross_validate(build, data, folds=5, epochs=200, batch_size=16)  # doctest: +SKIP
    >>> cv.mean, cv.best_epochs  # doctest: +SKIP
    (0.98, 180)
    >>> refit(build, data, epochs=cv.best_epochs, batch_size=16, cv=cv).test["accuracy"]  # doctest: +SKIP
    1.0
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from gridseq import tasks
from gridseq.data.contract import Dataset, Split
from gridseq.data.partition import fold_indices
from gridseq.errors import ConfigError, DataError
from gridseq.train import distributed
from gridseq.train.evaluation import seed_everything
from gridseq.train.run_dir import add_config_section
from gridseq.train.trainer import FitResult, fit

_logger = logging.getLogger(__name__)

# fit() arguments cross_validate sets per fold (or that need a run directory, which folds do not have)
_CV_MANAGED = ("run_dir", "resume", "checkpoint_every", "data_spec", "callbacks", "seed")


@dataclass
class CVProgress:
    """What `on_cv_epoch_end` receives after every epoch of every fold.

    Attributes:
        fold: the fold just trained on (0-based); folds run in order 0..folds-1.
        epoch: the epoch just finished (1-based).
        folds: the number of folds.
        epochs: the epochs asked for per fold.
        value: the mean held-out primary metric at `epoch` over folds 0..fold.
        step: fold * epochs + epoch, increasing over the whole cross-validation.
        curves: every fold's held-out primary metric per epoch so far (this fold's up to `epoch`).
        primary: the metric's name, e.g. "accuracy".
        state: this fold's TrainState (set `state.should_stop` to end this fold early).
    """

    fold: int
    epoch: int
    folds: int
    epochs: int
    value: float
    step: int
    curves: list[list[float]]
    primary: str
    state: Any = None


@dataclass
class CVResult:
    """What `cross_validate` returns.

    Attributes:
        folds: k.
        seed: the seed of the fold assignment, the models and the training order.
        primary: the task's primary metric ("accuracy" for classification).
        higher_is_better: whether a larger `primary` is better.
        curves: per fold, the held-out primary metric after each epoch.
        mean_curve: per epoch, the mean of `curves` over folds (as long as the shortest curve, when a
            fold stopped early).
        best_epochs: the epoch count whose mean held-out score is best; ties (common: accuracy on a few
            dozen items is coarse) go to the lowest mean held-out loss, then to the fewest epochs.
        scores: per fold, the held-out primary metric after `best_epochs` epochs.
        mean: mean of `scores` (= mean_curve[best_epochs - 1]).
        std: population standard deviation of `scores` (ddof=0).
        fold_sizes: held-out items per fold.
        items: the training items cross-validated (train + val splits).
        stratified: whether the folds were stratified by label.
        seconds: wall time of all folds.
        histories: each fold's `FitResult.history` (train_*/val_* per epoch; val = the held-out fold).
        mean_loss_curve: per epoch, the mean held-out loss over folds (the tie-break).
        epochs: the epoch count each fold was run with (its learning-rate schedule's length).
    """

    folds: int
    seed: int
    primary: str
    higher_is_better: bool
    curves: list[list[float]]
    mean_curve: list[float]
    best_epochs: int
    scores: list[float]
    mean: float
    std: float
    fold_sizes: list[int]
    items: int
    stratified: bool
    seconds: float
    histories: list[list[dict[str, Any]]] = field(default_factory=list)
    mean_loss_curve: list[float] = field(default_factory=list)
    epochs: int = 0

    def summary(self) -> dict[str, Any]:
        """The short record a refitted run's config.json keeps under "cv"."""
        return {"folds": self.folds, "seed": self.seed, "primary": self.primary, "scores": self.scores,
                "mean": self.mean, "std": self.std, "best_epochs": self.best_epochs, "epochs": self.epochs,
                "items": self.items}

    def to_json(self) -> dict[str, Any]:
        """Everything, JSON-able (what `gridseq train --cv` writes as cv.json)."""
        return {**self.summary(), "higher_is_better": self.higher_is_better, "stratified": self.stratified,
                "fold_sizes": self.fold_sizes, "mean_curve": self.mean_curve, "mean_loss_curve": self.mean_loss_curve, "curves": self.curves,
                "seconds": self.seconds, "histories": self.histories}


def training_items(data: Dataset) -> Split:
    """The dataset's train and val splits as one Split, in that order (time padding evened out).

    Raises:
        DataError: a streamed split (cross-validation needs the items in memory).
    """
    a, b = data.train, data.val
    for name, s in (("train", a), ("val", b)):
        if not isinstance(s, Split):
            raise DataError(f"cross-validation needs the training items in memory, but the {name} split of "
                            f"{data.info.name!r} is a {type(s).__name__}; load it without streaming (--no-stream).")
    if len(b) == 0:
        return a
    if (a.lengths is None) != (b.lengths is None):
        raise DataError(f"the train and val splits of {data.info.name!r} disagree on lengths (one has them, the other "
                        f"not); cannot pool them for cross-validation.")
    texts = a.texts + b.texts if isinstance(a.texts, list) and isinstance(b.texts, list) else None
    targets = a.targets + b.targets if a.targets is not None and b.targets is not None else None
    lengths = None if a.lengths is None else torch.cat([a.lengths, b.lengths])
    return Split(_cat(a.x, b.x), _cat(a.y, b.y), lengths, texts, targets)


def _cat(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Concatenate along the batch, padding the time dimension (1) of the shorter with zeros."""
    if a.dim() >= 2 and a.shape[1] != b.shape[1]:
        t = max(a.shape[1], b.shape[1])
        pad = lambda x: torch.cat([x, x.new_zeros((x.shape[0], t - x.shape[1], *x.shape[2:]))], dim=1)
        a, b = pad(a), pad(b)
    return torch.cat([a, b])


def subset(split: Split, index: np.ndarray) -> Split:
    """The items of `split` at `index` (texts and targets too)."""
    i = torch.as_tensor(index, dtype=torch.long)
    texts = [split.texts[j] for j in index.tolist()] if isinstance(split.texts, list) else None
    targets = [split.targets[j] for j in index.tolist()] if split.targets is not None else None
    return Split(split.x[i], split.y[i], None if split.lengths is None else split.lengths[i], texts, targets)


class _FoldRecorder:
    """Last callback of a fold: keeps the held-out curve and sends `on_cv_epoch_end` to the fold's callbacks."""

    def __init__(self, fold: int, folds: int, epochs: int, primary: str, curves: list[list[float]], targets: list[Any]):
        self.fold, self.folds, self.epochs, self.primary = fold, folds, epochs, primary
        self.curves, self.targets = curves, targets

    def on_epoch_end(self, state) -> None:
        curve = self.curves[self.fold]
        curve.append(float(state.record.get(f"val_{self.primary}", math.nan)))
        epoch = len(curve)
        at = [c[epoch - 1] for c in self.curves[: self.fold + 1] if len(c) >= epoch]
        progress = CVProgress(fold=self.fold, epoch=epoch, folds=self.folds, epochs=self.epochs,
                              value=float(np.mean(at)), step=self.fold * self.epochs + epoch,
                              curves=[list(c) for c in self.curves[: self.fold + 1]], primary=self.primary, state=state)
        for cb in self.targets:
            method = getattr(cb, "on_cv_epoch_end", None)
            if method is not None:
                method(progress)


def _check_folds(folds: Any, n: int) -> int:
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise ConfigError(f"folds must be an int >= 2 (k of k-fold cross-validation), got {folds!r}.")
    if folds > n:
        raise ConfigError(f"folds={folds} is more than the {n} training items (train + val); use at most {n} folds.")
    return folds


def best_epoch_count(mean_curve: list[float], higher_is_better: bool, tie_break: list[float] | None = None) -> int:
    """The 1-based epoch whose value is best; ties go to the lowest `tie_break` value (the mean held-out
    loss), then to the fewest epochs. NaN never wins; all NaN: 1.

    Example:
        >>> best_epoch_count([0.5, 0.9, 0.9, 0.7], True)
        2
        >>> best_epoch_count([0.5, 0.9, 0.9, 0.7], True, tie_break=[0.9, 0.4, 0.3, 0.5])
        3
    """
    values = np.asarray(mean_curve, dtype=float)
    if len(values) == 0 or np.isnan(values).all():
        return 1
    filled = np.where(np.isnan(values), -np.inf if higher_is_better else np.inf, values)
    best = filled.max() if higher_is_better else filled.min()
    tied = np.flatnonzero(filled == best)  # ascending: the fewest epochs first
    if tie_break is not None and len(tied) > 1:
        loss = np.asarray(tie_break, dtype=float)[tied]
        if not np.isnan(loss).all():
            return int(tied[np.nanargmin(loss)]) + 1  # nanargmin: the first (fewest epochs) on equal losses
    return int(tied[0]) + 1


def cross_validate(
    build_model: Callable[[], nn.Module],
    data: Dataset,
    *,
    folds: int = 5,
    seed: int = 0,
    callbacks_for_fold: Callable[[int], Iterable[Any]] | None = None,
    **fit_kwargs: Any,
) -> CVResult:
    """k-fold cross-validation of one setting on the training items (train + val), never the test split.

    Args:
        build_model: returns a fresh, untrained model; called once per fold, after
            `seed_everything(seed)`, so every fold starts from the same weights.
        data: an in-memory Dataset; its train and val splits are pooled (`training_items`).
        folds: k. Default: 5.
        seed: seeds the fold assignment, the models and each fold's `fit`. Default: 0.
        callbacks_for_fold: `fold -> callbacks` for that fold's `fit`; they also get
            `on_cv_epoch_end(CVProgress)` after each epoch (see the module docstring). Default: None.
        **fit_kwargs: the setting: any `fit` argument (epochs, batch_size, lr, scheduler, patience,
            progress, ...) except run_dir, resume, checkpoint_every, data_spec, callbacks and seed.
            `select` does not matter here (scores are read from the per-epoch history).

    Returns:
        A CVResult: per-fold curves, their mean, the best epoch count and the per-fold scores there.

    Raises:
        ConfigError: bad `folds`, a managed fit argument, or a task whose items cannot be dealt into
            folds (forecast, lm).
        DataError: a streamed split.

    Note:
        Folds are stratified by label for classification (each class spread evenly over the folds);
        other tasks deal items at random. Preprocessing the dataset already did (e.g. a "channel"
        normalisation's statistics, computed on its train split) is shared by all folds.
        With a schedule tied to the run's length (cosine, onecycle), the curve at epoch e is not what a
        run of e epochs would give; `refit` then runs its own schedule over `best_epochs` epochs.
    """
    managed = sorted(k for k in fit_kwargs if k in _CV_MANAGED)
    if managed:
        raise ConfigError(f"cross_validate sets {', '.join(managed)} itself (folds write no run directory; "
                          f"callbacks go through callbacks_for_fold); remove {'it' if len(managed) == 1 else 'them'}.")
    declared = tasks.task_class(data.info.task)  # its items may not be exchangeable (overlapping windows, one text)
    if declared is not None and declared.not_exchangeable:
        raise ConfigError(f"cross-validation does not apply to task {data.info.task!r} ({declared.not_exchangeable}); "
                          f"train with the dataset's own validation split instead.")
    pool = training_items(data)
    k = _check_folds(folds, len(pool))
    stratified = data.info.targets.item_class and pool.y.dim() == 1
    labels = pool.y.numpy() if stratified else None
    if stratified:
        counts = np.bincount(labels, minlength=data.info.num_classes)
        thin = [data.info.class_names[c] if c < len(data.info.class_names) else str(c)
                for c in np.flatnonzero((counts > 0) & (counts < k))]
        if thin:
            _logger.warning("classes %s have fewer than %d training items, so some held-out folds lack them", thin[:5], k)
    where = fold_indices(labels, len(pool), k, seed)
    epochs = fit_kwargs.get("epochs", 10)
    empty = subset(pool, np.zeros(0, dtype=np.int64))  # the folds' test split: nothing to read

    curves: list[list[float]] = [[] for _ in range(k)]
    histories, sizes = [], []
    primary = higher = None
    started = time.perf_counter()
    for fold in range(k):
        held = np.flatnonzero(where == fold)
        fold_data = Dataset(data.info, subset(pool, np.flatnonzero(where != fold)), subset(pool, held), empty)
        seed_everything(seed)
        model = build_model()
        if primary is None:
            task = tasks.for_data(data.info, model)
            if fit_kwargs.get("monitor") is not None:  # each fold's fit checks the name
                task.monitor(fit_kwargs["monitor"])
            primary, higher = task.primary, task.higher_is_better
        user = list(callbacks_for_fold(fold)) if callbacks_for_fold is not None else []
        recorder = _FoldRecorder(fold, k, epochs, primary, curves, user)
        _logger.info("cross-validation fold %d/%d: %d training items, %d held out", fold + 1, k, len(pool) - len(held), len(held))
        result = fit(model, fold_data, seed=seed, callbacks=[*user, recorder], **fit_kwargs)
        histories.append(result.history)
        sizes.append(len(held))

    span = min(len(c) for c in curves)
    mean_curve = [float(np.mean([c[e] for c in curves])) for e in range(span)]
    # a few dozen held-out items make accuracy coarse: many epochs tie, and the mean held-out loss tells them apart
    mean_loss = [float(np.mean([h[e].get("val_loss", math.nan) for h in histories])) for e in range(span)]
    best = best_epoch_count(mean_curve, higher, tie_break=None if primary == "loss" else mean_loss)
    scores = [c[best - 1] for c in curves] if span else [math.nan] * k
    return CVResult(folds=k, seed=seed, primary=primary, higher_is_better=higher, curves=curves, mean_curve=mean_curve,
                    best_epochs=best, scores=scores, mean=float(np.mean(scores)), std=float(np.std(scores)),
                    fold_sizes=sizes, items=len(pool), stratified=stratified,
                    seconds=time.perf_counter() - started, histories=histories, mean_loss_curve=mean_loss,
                    epochs=epochs)


def refit(
    build_model: Callable[[], nn.Module],
    data: Dataset,
    *,
    epochs: int,
    horizon: int | None = None,
    seed: int = 0,
    cv: CVResult | None = None,
    **fit_kwargs: Any,
) -> FitResult:
    """Train a fresh model on all training items (train + val) for `epochs` epochs; evaluate the test split once.

    Args:
        build_model: as for `cross_validate` (called after `seed_everything(seed)`).
        data: the dataset; its train and val splits are pooled for training, its test split is scored.
        epochs: the epoch count, usually `cv.best_epochs`.
        horizon: the epoch count the learning-rate schedule is built for; training stops after
            `epochs` of them. `horizon=cv.epochs` follows the trajectory the folds' curves were measured
            on (with cosine or one-cycle, epoch `epochs` then has the learning rate the folds had there),
            but it stops wherever that is, often at a high learning rate; the default anneals the whole
            schedule within `epochs` (measured on the UCR archive, docs/training.md). Default: `epochs`.
        seed: seeds the model and `fit`. Default: 0.
        cv: the cross-validation that chose the setting; with a `run_dir`, its `summary()` is recorded
            in config.json under "cv". Default: None.
        **fit_kwargs: any other `fit` argument (batch_size, lr, run_dir, data_spec, progress, ...).
            There is no validation split, so the last weights are kept (select="last") and early
            stopping does not apply: passing another `select` or a `patience` is a ConfigError.

    Returns:
        fit's FitResult (val is {}: nothing is held out).
    """
    if fit_kwargs.get("select", "last") != "last" or fit_kwargs.get("patience") is not None:
        raise ConfigError(f"refit trains on every training item with no validation split, so it keeps the last epoch "
                          f"and cannot stop early; remove select={fit_kwargs.get('select')!r} / "
                          f"patience={fit_kwargs.get('patience')!r} (the epoch count comes from cross-validation).")
    horizon = epochs if horizon is None else horizon
    if not isinstance(horizon, int) or isinstance(horizon, bool) or horizon < epochs:
        raise ConfigError(f"refit's horizon is the schedule's length in epochs, at least epochs={epochs}; got {horizon!r}.")
    fit_kwargs = {k: v for k, v in fit_kwargs.items() if k not in ("select", "patience")}
    callbacks = list(fit_kwargs.pop("callbacks", None) or [])
    if horizon > epochs:
        callbacks.append(_StopAfter(epochs))
    pool = training_items(data)
    empty = subset(pool, np.zeros(0, dtype=np.int64))
    seed_everything(seed)
    model = build_model()
    result = fit(model, Dataset(data.info, pool, empty, data.test), epochs=horizon, select="last", seed=seed,
                 callbacks=callbacks, **fit_kwargs)
    if result.run_dir is not None and distributed.is_main():
        add_config_section(result.run_dir, "refit", {"epochs": epochs, "horizon": horizon})
        if cv is not None:
            add_config_section(result.run_dir, "cv", cv.summary())
    return result


class _StopAfter:
    """Ends a refit after `epochs` epochs of a longer schedule."""

    def __init__(self, epochs: int):
        self.epochs = epochs

    def on_epoch_end(self, state) -> None:
        if len(state.history) >= self.epochs:
            state.should_stop = True
