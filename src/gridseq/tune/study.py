"""The study: Optuna's RDB storage, the trial loop every process runs, and one trial's training.

Storage and counting. The study lives in an RDB storage (`sqlite:///DIR/study.db` unless a URL is
given), so any number of processes — `--jobs N` here, or `gridseq tune` on several machines with one
storage URL — share it. A study is asked for N *finished* trials (complete or pruned). Each process
loops: count the finished and running trials; stop at N; wait while the running ones would make N;
otherwise start a trial. A trial whose number is not among the first N live ones (two processes
started one at the same moment) ends at once as failed, marked `surplus`, so no more than N finish.

Crashes. A process that dies (SIGKILL, power loss) leaves its trial RUNNING. A trial records its
host and process id; a later process on the same host marks it failed at once when that process is
gone, and Optuna's heartbeat (every `HEARTBEAT` s) marks it failed after `GRACE` s from anywhere.
Either way `RetryHeartbeatStaleTrialCallback` queues the same parameters again as a new trial, so nothing is
counted twice and no trial number repeats.

Time limits. A trial that `--timeout` stops before its last epoch was not judged — it ran out of time —
so it is failed (user attribute `stopped: "time limit"`), not pruned: it does not count among the N, and
the next run of the study queues its parameters again (`requeue_timed_out`), once.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

from gridseq.errors import GridseqError
from gridseq.tune import space as spaces

_logger = logging.getLogger(__name__)

HEARTBEAT = 10  # seconds between a running trial's heartbeats
GRACE = 30  # a trial silent this long is failed (and retried) by the next process that looks
_POLL = 1.0  # seconds between looks at the study while others finish the last trials
FAILURES_IN_A_ROW = 5  # a process stops when this many of its trials in a row failed (a setting that cannot work)


def _optuna():
    try:
        import optuna
    except ImportError:
        raise GridseqError("gridseq tune needs Optuna: pip install 'gridseq[tune]'.") from None
    return optuna


@dataclass
class Plan:
    """Everything a process needs to run trials of one study (picklable, for --jobs workers)."""

    dataset: str
    model: str
    storage: str
    study_name: str
    trials: int
    space: dict[str, dict[str, Any]]
    fixed: dict[str, Any]  # dotted settings every trial uses (from --train.K/--model.F and the space file)
    data_options: dict[str, Any] = field(default_factory=dict)
    view: str | None = None
    seed: int = 0
    deadline: float | None = None  # time.time() after which no trial starts and running ones stop
    threads: int | None = None
    cv: int | None = None  # score each trial by k-fold cross-validation of train + val (gridseq.train.cross_validate)
    stacked: set[str] = field(default_factory=set)  # settings sampled only when num_layers > 1 (space.stacked_only)
    heartbeat: int = HEARTBEAT
    grace: int = GRACE


def storage_for(url: str, *, heartbeat: int = HEARTBEAT, grace: int = GRACE):
    """Optuna's RDB storage at `url`, with heartbeats and retries of crashed trials."""
    optuna = _optuna()
    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}  # processes take turns writing
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna marks the heartbeat arguments experimental
        import sqlalchemy.exc

        for attempt in range(8):
            try:
                return optuna.storages.RDBStorage(url, engine_kwargs=kwargs, heartbeat_interval=heartbeat, grace_period=grace,
                                                  heartbeat_stale_trial_callback=_retry())
            except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.OperationalError) as e:
                # another process is creating the same new storage's tables at once: Optuna's create_all checks, then
                # creates, so the loser sees "table ... already exists" (or a UNIQUE failure on the schema version);
                # once the winner is done, opening again finds the tables
                if attempt == 7 or not _creation_race(e):
                    raise GridseqError(f"cannot open the study storage {url!r}: {getattr(e, 'orig', e)}") from None
                time.sleep(0.25 * (attempt + 1))
            except (ImportError, ValueError, optuna.exceptions.StorageInternalError) as e:  # a bad URL, a missing driver
                raise GridseqError(f"cannot open the study storage {url!r}: {e}") from None


def _creation_race(e: Exception) -> bool:
    """Whether `e` is what two processes creating one storage's schema at once raise."""
    text = str(e).lower()
    return any(s in text for s in ("already exists", "unique constraint", "database is locked"))


def _retry():
    """Optuna's callback that queues a crashed trial's parameters again (at most twice)."""
    return _optuna().storages.RetryHeartbeatStaleTrialCallback(max_retry=2)


def open_study(plan: Plan, *, direction: str | None = None):
    """The study of `plan` (created if new; `direction` then required)."""
    optuna = _optuna()
    storage = storage_for(plan.storage, heartbeat=plan.heartbeat, grace=plan.grace)
    # TPE (multivariate, with the constant liar so parallel workers do not all try the same point) and a
    # median pruner: a trial is stopped when its validation score at an epoch is worse than the median of
    # earlier trials at that epoch (after 5 trials, and never in a trial's first quarter; see _Pruning)
    sampler = optuna.samplers.TPESampler(seed=plan.seed, multivariate=True, constant_liar=True, n_startup_trials=min(10, max(plan.trials // 3, 3)))
    pruner = optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=0)
    try:
        return optuna.create_study(storage=storage, sampler=sampler, pruner=pruner, study_name=plan.study_name,
                                   direction=direction, load_if_exists=True)
    except ValueError as e:  # an existing study with the other direction
        raise GridseqError(f"the study {plan.study_name!r} in {plan.storage} cannot be continued: {e}; use another --out or --study.") from None


TIME_LIMIT = "time limit"  # the `stopped` attribute of a trial the study's deadline ended


def counts(study) -> dict[str, int]:
    """Trials of `study` by state: complete, pruned, failed, running, waiting, timed_out (failed because the
    time limit stopped them; not among "failed") and finished = complete + pruned."""
    optuna = _optuna()
    state = optuna.trial.TrialState
    trials = study.get_trials(deepcopy=False)
    out = {name: sum(t.state == s for t in trials) for name, s in
           (("complete", state.COMPLETE), ("pruned", state.PRUNED), ("failed", state.FAIL), ("running", state.RUNNING), ("waiting", state.WAITING))}
    out["timed_out"] = sum(_timed_out(t) for t in trials)
    out["failed"] -= out["timed_out"]
    out["finished"] = out["complete"] + out["pruned"]
    return out


def _timed_out(t) -> bool:
    return t.state == _optuna().trial.TrialState.FAIL and t.user_attrs.get("stopped") == TIME_LIMIT


def requeue_timed_out(study) -> int:
    """Queue again, once each, the parameters of the trials an earlier run's time limit stopped; returns how many."""
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get("retry_of") for t in trials}
    n = 0
    for t in trials:
        if _timed_out(t) and t.number not in retried:
            study.enqueue_trial(t.params, user_attrs={"retry_of": t.number, **({"defaults": True} if t.user_attrs.get("defaults") else {})})
            n += 1
    if n:
        _logger.info("queued again the settings of %d trial(s) the last time limit stopped", n)
    return n


def fail_dead(study) -> int:
    """Mark failed the RUNNING trials of processes on this host that no longer exist (and queue their
    retry, as Optuna's heartbeat does); returns how many."""
    optuna = _optuna()
    host = socket.gethostname()
    storage = study._storage  # private: Optuna's own fail_stale_trials goes through the storage the same way
    n = 0
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        pid = t.user_attrs.get("pid")
        if t.user_attrs.get("host") != host or pid is None or pid == os.getpid() or _alive(pid):
            continue
        try:
            storage.set_trial_user_attr(t._trial_id, "error", f"its process ({pid}) died")  # before: a finished trial is read-only
            if storage.set_trial_state_values(t._trial_id, state=optuna.trial.TrialState.FAIL):
                _retry()(study, storage.get_trial(t._trial_id))
                n += 1
        except RuntimeError:  # another process finished it first
            continue
    return n


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _Surplus(Exception):
    """This trial would be trial N+1 of the study: end it at once."""


class _OutOfTime(Exception):
    """The study's time limit stopped this trial before its last epoch: it fails, to run again on resume."""


class _Pruning:
    """Reports each epoch's validation primary metric to the trial; stops it when the pruner says so
    (from the second quarter of its epochs on) or when the study's deadline has passed."""

    def __init__(self, trial, primary: str, deadline: float | None):
        self.trial, self.primary, self.deadline = trial, primary, deadline
        self.reason: str | None = None

    def on_epoch_end(self, state) -> None:
        value = state.record.get(f"val_{self.primary}")
        epoch = state.record["epoch"]
        if value is not None and math.isfinite(value):
            self.trial.report(float(value), epoch)
        if epoch >= max(1, state.epochs // 4) and epoch < state.epochs and self.trial.should_prune():
            self.reason, state.should_stop = "pruned", True
        elif self.deadline is not None and time.time() >= self.deadline and epoch < state.epochs:
            self.reason, state.should_stop = TIME_LIMIT, True


class _Stop(Exception):
    """Raised from a cross-validation callback to end a trial (pruned, or out of time)."""


class _CVPruning(_Pruning):
    """`_Pruning` for a cross-validated trial: reports the running mean held-out score over the folds done
    (at step fold * epochs + epoch); prunes from the second quarter of the first fold on."""

    def on_epoch_end(self, state) -> None:  # fold-level events come through on_cv_epoch_end
        pass

    def on_cv_epoch_end(self, progress) -> None:
        if math.isfinite(progress.value):
            self.trial.report(float(progress.value), progress.step)
        last = progress.fold == progress.folds - 1 and progress.epoch == progress.epochs
        if last:
            return
        if progress.step >= max(1, progress.epochs // 4) and self.trial.should_prune():
            self.reason = "pruned"
        elif self.deadline is not None and time.time() >= self.deadline:
            self.reason = TIME_LIMIT
        if self.reason:
            raise _Stop(self.reason)


class Worker:
    """One process's part of a study: it loads the data once and runs trials until the study has N."""

    def __init__(self, plan: Plan, *, on_trial=None):
        self.plan = plan
        self.on_trial = on_trial  # called with (study, FrozenTrial) after each trial this process ran
        self._data = None
        self._reader = None
        self._last = None

    @property
    def reader(self) -> str | None:
        """The reader that loaded user files (None for a built-in); known once `data()` ran."""
        return self._reader

    def data(self):
        if self._data is None:
            from gridseq import recipe

            self._data, _spec, self._reader = recipe.load_for_model(self.plan.dataset, self.plan.model, seed=self.plan.seed,
                                                                    view=self.plan.view, options=self.plan.data_options)
        return self._data

    def run(self, study=None) -> None:
        optuna = _optuna()
        if self.plan.threads:
            import torch

            torch.set_num_threads(self.plan.threads)
        study = study or open_study(self.plan)
        self.data()
        failures: list[str] = []
        while True:
            fail_dead(study)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Optuna marks the heartbeat API experimental
                optuna.storages.fail_stale_trials(study)
            c = counts(study)
            if c["finished"] >= self.plan.trials or self._out_of_time():
                return
            if c["finished"] + c["running"] >= self.plan.trials:
                time.sleep(_POLL)  # the last trials are running elsewhere (or wait to be found dead)
                continue
            study.optimize(self._objective, n_trials=1, catch=(_Surplus, _OutOfTime, GridseqError),
                           callbacks=[self._after] if self.on_trial else None)
            if self._last is None:
                continue
            last = study._storage.get_trial(self._last)  # private: the trial by its storage id
            if last.state == optuna.trial.TrialState.FAIL and not last.user_attrs.get("surplus") and not _timed_out(last):
                failures.append(last.user_attrs.get("error", "an error"))
                if len(failures) >= FAILURES_IN_A_ROW:
                    raise GridseqError(f"{len(failures)} trials in a row failed; the last: {failures[-1]}. Fix the data or the "
                                       f"space (--space), then rerun the command to continue the study.")
            elif last.state.is_finished():
                failures.clear()

    def _out_of_time(self) -> bool:
        return self.plan.deadline is not None and time.time() >= self.plan.deadline

    def _after(self, study, frozen) -> None:
        if not frozen.user_attrs.get("surplus"):
            self.on_trial(study, frozen)

    def _objective(self, trial) -> float:
        optuna = _optuna()
        self._last = trial._trial_id  # private: the id this process's last trial has in the storage
        trial.set_user_attr("host", socket.gethostname())
        trial.set_user_attr("pid", os.getpid())
        state = optuna.trial.TrialState
        live = [t for t in trial.study.get_trials(deepcopy=False, states=(state.COMPLETE, state.PRUNED, state.RUNNING))
                if t.number < trial.number]
        if len(live) >= self.plan.trials:
            trial.set_user_attr("surplus", True)
            raise _Surplus(f"the study already has {self.plan.trials} trials")
        settings = {**self.plan.fixed, **spaces.suggest(trial, self.plan.space, stacked=self.plan.stacked)}
        pruning = _CVPruning if self.plan.cv else _Pruning
        try:
            value, reason, epochs = train_trial(self.plan, self.data(), settings, reader=self._reader,
                                                callback_for=lambda primary: pruning(trial, primary, self.plan.deadline))
        except GridseqError as e:
            trial.set_user_attr("error", str(e))
            _logger.warning("trial %d failed: %s", trial.number, e)
            raise
        trial.set_user_attr("epochs", epochs)
        if reason is not None:
            trial.set_user_attr("stopped", reason)
            if reason == TIME_LIMIT:
                raise _OutOfTime(f"trial {trial.number} stopped by the time limit; it runs again when the study continues")
            raise optuna.TrialPruned(reason)
        return value


def train_trial(plan: Plan, data, settings: dict[str, Any], *, callback_for=None, reader: str | None = None) -> tuple[float, str | None, int]:
    """Train one setting on the train split, scored on val — or, with `plan.cv`, by k-fold
    cross-validation of train + val; the test split is withheld either way.

    Returns:
        (the best validation primary metric or the mean held-out one, why it stopped early or None, the
        epochs trained or, with cv, the epoch count cross-validation chose).
    """
    from gridseq import tasks, train
    from gridseq.tasks import matching

    model_kw, train_kw = build_settings(plan.dataset, plan.model, settings, reader=reader)
    train.seed_everything(plan.seed)
    model = matching.create_for(plan.model, data.info, **model_kw)
    task = tasks.for_data(data.info, model)
    if train_kw.get("monitor") is not None:  # fit checks the name; the score read below is the monitored one
        task.monitor(train_kw["monitor"])
    callback = callback_for(task.primary) if callback_for else None
    callbacks = [callback] if callback else []
    if plan.cv:
        try:
            cv = train.cross_validate(lambda: matching.create_for(plan.model, data.info, **model_kw), withhold_test(data), folds=plan.cv,
                                      seed=plan.seed, callbacks_for_fold=lambda fold: callbacks, progress=False, **train_kw)
        except _Stop as stop:
            return math.nan, str(stop), 0
        if not math.isfinite(cv.mean):
            raise GridseqError(f"the mean held-out {task.primary} is {cv.mean}")
        return float(cv.mean), None, cv.best_epochs
    result = train.fit(model, withhold_test(data), seed=plan.seed, progress=False, callbacks=callbacks, **train_kw)
    value = result.val.get(task.primary, math.nan)
    if not math.isfinite(value):
        raise GridseqError(f"the validation {task.primary} is {value}")
    return float(value), getattr(callback, "reason", None), len(result.history)


def build_settings(dataset: str, model: str, settings: dict[str, Any], *, reader: str | None = None) -> tuple[dict, dict]:
    """(model config fields, fit arguments) for `settings` (dotted) over the defaults table's entry."""
    import dataclasses

    from gridseq import defaults, models

    fields = {f.name for f in dataclasses.fields(models.entry(model).config_cls)}
    table = defaults.lookup(dataset, model, reader=reader)
    train_kw, model_kw = spaces.split_settings(settings)
    return ({**{k: v for k, v in table["model"].items() if k in fields}, **model_kw}, {**table["train"], **train_kw})


def withhold_test(data):
    """`data` with an empty test split (cut from val, so of the same layout): a search never sees test."""
    import numpy as np

    from gridseq.data.contract import Dataset
    from gridseq.train.crossval import subset

    return Dataset(data.info, data.train, data.val, subset(data.val, np.zeros(0, dtype=np.int64)))
