"""`gridseq tune`: hyperparameter search with Optuna — resumable, shareable across processes, and
scored on validation only.

    >>> result = gridseq.tune.tune("digits", "cnn", trials=20, out="tune/digits-cnn")  # doctest: +SKIP
    >>> result.value, result.params["train.lr"]  # doctest: +SKIP
    (0.989, 0.0031)
    >>> result.command  # doctest: +SKIP
    'gridseq train digits --model cnn --seed 0 --train.lr=0.0031 ...'

The study (TPE sampler, median pruner fed each epoch's validation primary metric) is stored in
`OUT/study.db`; rerunning the same call continues it, and several processes — `jobs=N`, or
`gridseq tune` commands on one `storage` URL — share it (`gridseq.tune.study`). The search space is
`gridseq.tune.space.default_space` merged with a space file. At the end `OUT/best.json` holds the best
validation score, its settings and the `gridseq train` command that reproduces it; `OUT/trials.json`
every trial; `OUT/history.png` and `OUT/importances.png` the optimisation history and parameter
importances (with matplotlib). See docs/tune.md.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import os
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gridseq.errors import ConfigError, Interrupted, Terminated
from gridseq.tune import report
from gridseq.tune import space as spaces
from gridseq.tune.space import default_space
from gridseq.tune.study import Plan, Worker, counts, open_study, requeue_timed_out

__all__ = ["TuneResult", "default_space", "tune"]

_logger = logging.getLogger(__name__)

# fit() arguments a trial sets itself (or that do not change what is learned)
_NOT_SEARCHABLE = {"model", "data", "seed", "run_dir", "resume", "progress", "data_spec", "callbacks", "device", "checkpoint_every"}


@dataclass
class TuneResult:
    """What `tune` returns (and `OUT/best.json` holds).

    Attributes:
        dataset: the dataset tuned on (as given).
        model: the registered model name.
        value: the best validation score (the task's primary metric).
        metric: its name, e.g. "accuracy".
        direction: "maximize" or "minimize".
        params: the best trial's settings, dotted ("train.lr", "model.hidden_size"), fixed ones included.
        command: the `gridseq train` command that reproduces the best trial.
        best_trial: its trial number.
        epochs: the epochs it trained (with `cv`: the epoch count cross-validation chose, which
            `train_best` refits for).
        cv: the folds each trial was cross-validated on, or None (scored on the val split).
        trials: trials by state (complete, pruned, failed, running, waiting, finished).
        out: the output directory.
        top: the best complete trials, best first (number, value, params, epochs, seconds), at most 10.
        test: the test metrics of the winner trained by `train_best=True` ({} otherwise).
        run_dir: its run directory (None otherwise).
    """

    dataset: str
    model: str
    value: float
    metric: str
    direction: str
    params: dict[str, Any]
    command: str
    best_trial: int
    epochs: int | None
    cv: int | None
    trials: dict[str, int]
    out: Path
    top: list[dict[str, Any]] = field(default_factory=list)
    test: dict[str, float] = field(default_factory=dict)
    run_dir: Path | None = None

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["out"] = os.fspath(self.out)
        d["run_dir"] = None if self.run_dir is None else os.fspath(self.run_dir)
        return d


def tune(dataset: str, model: str, *, trials: int = 20, timeout: float | None = None, jobs: int = 1, out: str | os.PathLike | None = None,
         seed: int = 0, space: str | os.PathLike | dict | None = None, settings: dict[str, Any] | None = None,
         data_options: dict[str, Any] | None = None, view: str | None = None, storage: str | None = None,
         study_name: str | None = None, threads: int | None = None, cv: int | None = None, train_best: bool = False,
         metric: str | None = None, progress: bool | None = None) -> TuneResult:
    """Search `model`'s settings on `dataset` for the best validation score.

    Args:
        dataset: a built-in name or a path, as for `gridseq train`.
        model: a registered model name.
        trials: finished (complete or pruned) trials the study should have, counted over every process
            and every earlier run of the same study. Default: 20.
        timeout: seconds from now after which no trial starts and running ones stop at their epoch's end
            (recorded as failed with "stopped": "time limit", not among the N; the next run of the study
            queues their settings again). Default: None.
        jobs: processes on this machine sharing the study, each with cores / jobs threads. Default: 1.
        out: the output directory (study.db, best.json, trials.json, plots). Default: tune/<dataset>-<model>-s<seed>.
        seed: the dataset seed, the trials' weights seed and the sampler's seed. Default: 0.
        space: a space file (JSON/YAML) or a mapping merged over the default space (`gridseq.tune.space`).
        settings: dotted settings every trial uses ({"train.epochs": 50}); they leave the search.
        data_options: dataset options (`gridseq.datasets.load` keyword arguments).
        view: "image" or "sequence"; None = what the model takes.
        storage: an Optuna RDB storage URL shared with other processes or machines
            (e.g. "postgresql://host/db"). Default: sqlite:///OUT/study.db.
        study_name: the study's name in the storage. Default: "<dataset>-<model>-s<seed>".
        threads: CPU threads per process. Default: torch's (jobs=1) or cores / jobs.
        cv: score each trial by `cv`-fold cross-validation of the train and val splits together
            (`gridseq.train.cross_validate`: the mean held-out score, and the epoch count it picks) — for
            small training sets, where a validation split is a handful of items. Default: None.
        train_best: at the end, train the best settings with a run directory (OUT/best-run) and report
            its test metrics — the only time the test split is read. With `cv`: refit on all training
            items for the chosen epoch count, as `gridseq train --cv K --refit` does.
        metric: the validation metric trials are scored by (and each trial's best epoch picked by), e.g.
            "macro_f1"; it becomes the fixed setting `train.monitor` (`fit`'s `monitor`), so the reproducing
            command selects the same way. Default: None (the task's primary metric).
        progress: None = automatic (a live line on a terminal, one line per trial otherwise), False = silent.

    Returns:
        A TuneResult (also written to OUT/best.json).

    Raises:
        ConfigError: a bad argument, an unknown setting in the space or settings, or no finished trial.
    """
    from gridseq import models, recipe

    _check(trials=trials, timeout=timeout, jobs=jobs, threads=threads, cv=cv)
    if metric is not None:
        settings = {**(settings or {}), "train.monitor": metric}
    entry = models.entry(model)
    name = recipe.run_name(dataset)
    out = Path(out if out is not None else Path("tune") / f"{name}-{entry.name}-s{seed}")
    fields = {f.name for f in dataclasses.fields(entry.config_cls)}
    train_keys = _train_keys()
    search, fixed = _resolve_space(entry.name, fields, train_keys, space, settings)
    report.make_dir(out)
    plan = Plan(dataset=dataset, model=entry.name, storage=storage or f"sqlite:///{(out / 'study.db').resolve()}",
                study_name=study_name or f"{name}-{entry.name}-s{seed}", trials=trials, space=search, fixed=fixed,
                data_options=dict(data_options or {}), view=view, seed=seed,
                deadline=None if timeout is None else time.time() + timeout, threads=threads, cv=cv,
                stacked=spaces.stacked_only(entry.name))
    _quiet_optuna()
    worker = Worker(plan)
    data = worker.data()
    search = _fit_to_data(search, data, fixed, user=set(_space_entries(space)))
    plan.space = search = _drop_stacked_only(plan, entry, worker.reader, user=set(_space_entries(space)))
    task = _task(entry.name, data, fixed.get("train.monitor"))
    direction = "maximize" if task.higher_is_better else "minimize"
    study = open_study(plan, direction=direction)
    report.check_same_space(study, search, task.primary)
    if not study.get_trials(deepcopy=False):
        _enqueue_defaults(study, plan, entry, worker.reader)
    requeue_timed_out(study)
    from gridseq.tune.progress import Display

    try:
        with Display(study, plan.trials, task.primary, enabled=progress) as display:
            worker.on_trial = display.trial_done
            if jobs == 1:
                worker.run(study)
            else:
                from gridseq.tune import parallel

                parallel.run(plan, jobs, display)
    except (KeyboardInterrupt, Terminated) as e:  # Ctrl-C anywhere, or a trial's fit stopped at a step boundary
        how = "SIGTERM" if isinstance(e, Terminated) else "Ctrl-C (SIGINT)"
        c = counts(study)  # Optuna marked the running trial failed
        raise (Terminated if isinstance(e, Terminated) else Interrupted)(f"tuning stopped by {how} with {c['finished']} of {plan.trials} trials finished; the running trial is "
                      f"recorded as failed. Rerun the same command to continue the study in {out}.") from None
    result = _result(study, plan, task, out)
    report.write(study, result, out, fixed=fixed)
    if train_best:
        result = report.train_best(result, plan, out)
        report.write(study, result, out, fixed=fixed)
    return result


def _enqueue_defaults(study, plan: Plan, entry, reader: str | None) -> None:
    """Make a new study's first trial today's defaults (the defaults table over the model's and fit's own),
    for the settings whose default lies in the space: a search then never ends below the defaults."""
    from gridseq import train
    from gridseq.tune.study import build_settings

    model_kw, train_kw = build_settings(plan.dataset, plan.model, plan.fixed, reader=reader)
    known = {**{f"train.{k}": p.default for k, p in inspect.signature(train.fit).parameters.items()},
             **{f"model.{f.name}": f.default for f in dataclasses.fields(entry.config_cls)},
             **{f"train.{k}": v for k, v in train_kw.items()}, **{f"model.{k}": v for k, v in model_kw.items()}}
    params = {}
    for key, dist in plan.space.items():
        value = known.get(key, dataclasses.MISSING)
        value = list(value) if isinstance(value, tuple) else value
        if spaces.contains(dist, value):
            params[key] = spaces.label(value)
    if params.get("model.num_layers", 2) <= 1:  # a one-layer trial does not sample these (space.suggest)
        params = {k: v for k, v in params.items() if k not in plan.stacked}
    if params:
        study.enqueue_trial(params, user_attrs={"defaults": True}, skip_if_exists=True)


def _check(*, trials, timeout, jobs, threads, cv) -> None:
    from gridseq._validation import check_positive_int

    if cv is not None and (isinstance(cv, bool) or not isinstance(cv, int) or cv < 2):
        raise ConfigError(f"cv needs k >= 2 folds (k-fold cross-validation), got {cv!r}; e.g. cv=5.")
    check_positive_int(trials, "trials")
    check_positive_int(jobs, "jobs")
    if threads is not None:
        check_positive_int(threads, "threads")
    if timeout is not None and not (isinstance(timeout, (int, float)) and timeout > 0):
        raise ConfigError(f"timeout must be a positive number of seconds, got {timeout!r}.")


def _train_keys() -> set[str]:
    from gridseq import train

    return {p for p in inspect.signature(train.fit).parameters if p not in _NOT_SEARCHABLE}


def _resolve_space(model: str, fields: set[str], train_keys: set[str], space, settings) -> tuple[dict, dict]:
    search = default_space(model, fields=fields)
    fixed: dict[str, Any] = {}
    if space is not None:
        entries = _space_entries(space)
        where = os.fspath(space) if isinstance(space, (str, os.PathLike)) else "the space"
        search, fixed = spaces.merge(search, entries, fields=fields, train_keys=train_keys, where=where)
    for key, value in (settings or {}).items():
        spaces.check_key(key, fields=fields, train_keys=train_keys, where="the fixed settings")
        search.pop(key, None)
        fixed[key] = value
    if "train.monitor" in search:
        raise ConfigError("train.monitor cannot be searched: trials scored by different metrics cannot be compared; "
                          "fix it with --metric NAME instead.")
    if not search:
        raise ConfigError("the search space is empty (every setting is fixed); leave something to search.")
    return search, fixed


def _space_entries(space) -> dict:
    if space is None:
        return {}
    return spaces.load_space_file(space) if isinstance(space, (str, os.PathLike)) else dict(space)


def _fit_to_data(search: dict, data, fixed: dict, *, user: set[str]) -> dict:
    """The default space trimmed to the data (a space file's own entries are kept as given): batch sizes
    up to the training items; the token embedding's width only for token data."""
    search = dict(search)
    dist = search.get("train.batch_size")
    if dist is not None and dist["type"] == "categorical" and "train.batch_size" not in user | set(fixed):
        sizes = [b for b in dist["choices"] if not isinstance(b, int) or b <= len(data.train)] or dist["choices"][:1]
        search["train.batch_size"] = {**dist, "choices": sizes}
    if data.info.kind != "tokens" and "model.embedding_dim" not in user:
        search.pop("model.embedding_dim", None)
    return search


def _drop_stacked_only(plan: Plan, entry, reader: str | None, *, user: set[str]) -> dict:
    """`plan.space` without the settings that act only between stacked layers when the depth is not searched
    and is 1 (fixed, or the defaults'); they are then fixed at off in `plan.fixed`, so no trial, no command
    and no --train-best runs a one-layer model with dropout (which does nothing, and torch warns)."""
    from gridseq.tune.study import build_settings

    idle = sorted(k for k in plan.stacked if k in plan.space or k not in plan.fixed)
    if not idle or "model.num_layers" in plan.space:
        return plan.space
    model_kw, _ = build_settings(plan.dataset, plan.model, plan.fixed, reader=reader)
    layers = model_kw.get("num_layers", {f.name: f.default for f in dataclasses.fields(entry.config_cls)}.get("num_layers"))
    if not isinstance(layers, int) or layers > 1:
        return plan.space
    search = dict(plan.space)
    for key in idle:
        if key in user and key in search:
            _logger.warning("%s is not searched: with model.num_layers=%s it does nothing (%s's %s acts only between "
                            "stacked layers); search model.num_layers too, or fix it above 1.", key, layers, plan.model,
                            key.split(".", 1)[1])
        search.pop(key, None)
        plan.fixed[key] = spaces.OFF
    if not search:
        raise ConfigError(f"the search space is empty once {', '.join(idle)} is left out (it does nothing with "
                          f"model.num_layers={layers}); leave something else to search, or fix model.num_layers above 1.")
    return search


def _task(model: str, data, monitor: str | None):
    """The task trials are scored by: `data`'s, with the metric `monitor` picking the best epoch if given
    (a ConfigError now when the task has no such metric)."""
    from gridseq import tasks
    from gridseq.tasks import matching
    from gridseq.train.evaluation import monitor as watch

    net = matching.create_for(model, data.info)
    task = tasks.for_data(data.info, net)
    if monitor is not None:
        watch(task, monitor, net, data.val if len(data.val) else data.train)
    return task


def _quiet_optuna() -> None:
    import optuna

    # gridseq reports trials itself (one line each, or the live display); Optuna's per-trial INFO and the
    # warnings for trials gridseq ends on purpose (surplus, errors it reports) would repeat them
    optuna.logging.set_verbosity(optuna.logging.ERROR)


def _result(study, plan: Plan, task, out: Path) -> TuneResult:
    import optuna

    c = counts(study)
    done = [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))]
    if not done:
        raise ConfigError(f"no trial of {plan.study_name!r} completed ({c['pruned']} pruned, {c['failed']} failed, {c['timed_out']} stopped by the time limit); "
                          f"see {out / 'trials.json'} for their errors, then give more --trials or a longer --timeout.")
    best = study.best_trial
    params = {**plan.fixed, **spaces.trial_settings(best)}
    return TuneResult(dataset=plan.dataset, model=plan.model, value=float(best.value), metric=task.primary, direction=study.direction.name.lower(), params=params,
                      command=train_command(plan, params), best_trial=best.number, epochs=best.user_attrs.get("epochs"),
                      cv=plan.cv, trials=c, out=out,
                      top=report.top(study, 10))


def train_command(plan: Plan, params: dict[str, Any]) -> str:
    """The `gridseq train` command line for `params` on `plan`'s dataset, model and seed."""
    argv = ["gridseq", "train", plan.dataset, "--model", plan.model, "--seed", str(plan.seed)]
    if plan.cv:
        argv += ["--cv", str(plan.cv), "--refit"]
    if plan.view:
        argv += ["--view", plan.view]
    for key, value in sorted(plan.data_options.items()):
        argv.append(f"--data.{key}={_text(value)}")
    for key, value in sorted(params.items()):
        argv.append(f"--{key}={_text(value)}")
    return shlex.join(argv)


def _text(value: Any) -> str:
    import json

    return value if isinstance(value, str) else json.dumps(list(value) if isinstance(value, tuple) else value)
