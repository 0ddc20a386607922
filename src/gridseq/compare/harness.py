"""The comparison loop: every model × seed (× length) trained on the same splits with the same budget,
then measured and probed. Produces the raw results `report.build` turns into a `CompareReport`.

Order: for each length (a sweep) and seed, every model in turn, so partial results stay balanced and
the ETA learns each model's cost early. The data of one seed is loaded once per view and shared by
every model: the same train/val/test items (the test split never depends on the seed; validation
does). Speed and memory are measured once per model, on its first run (the first seed at the first
length); padding invariance and gradient flow on every run, since verdicts compare seeds.

With `jobs` > 1 the (model, seed, length) runs are independent processes: a ProcessPoolExecutor
(spawn start method: safe with CUDA and with threads in the parent) runs `jobs` at a time, each with
threads = cores // jobs, and sends back the run's results and trained weights (as safetensors bytes).
Results are put back in the serial order, and the speed and memory measurements happen afterwards in
the parent, one model at a time, so parallel training never skews a timing.
"""

from __future__ import annotations

import copy
import inspect
import logging
import math
import multiprocessing
import os
import statistics
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

import torch

from gridseq import datasets, models, tasks
from gridseq.compare import measure, probes
from gridseq.compare.plan import Budget, ModelSpec, resolve_settings
from gridseq.compare.progress import Job, Progress
from gridseq.data import builtin as catalog
from gridseq.errors import ConfigError, GridseqError
from gridseq.models.traits import config_of
from gridseq.tasks import matching
from gridseq.train import optim
from gridseq.train.callbacks import Callback
from gridseq.train.evaluation import seed_everything
from gridseq.train.trainer import fit

_logger = logging.getLogger(__name__)

SCHEDULE_FREE = ("none", "plateau")  # with a time budget these train until the time is up
MAX_EPOCHS = 10_000


@dataclass
class Run:
    """One model trained with one seed (at one length): its results and per-run probes."""

    label: str
    seed: int
    length: int | None
    test: dict[str, float] = field(default_factory=dict)
    val: dict[str, float] = field(default_factory=dict)
    best_epoch: int = 0
    epochs: int = 0
    epochs_planned: int = 0
    train_seconds: float = math.nan
    samples_per_second: float = math.nan
    history: list[dict[str, Any]] = field(default_factory=list)
    padding: dict[str, Any] | None = None
    gradient_init: dict[str, Any] | None = None
    gradient_trained: dict[str, Any] | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class RawResults:
    """Everything the loop measured, before aggregation."""

    dataset: str
    info: Any  # DatasetInfo of the first load
    task: Any  # Task
    specs: list[ModelSpec]
    seeds: list[int]
    lengths: list[int] | None
    budget: Budget
    settings: dict[str, dict[str, Any]]  # label -> {"train": ..., "model": ..., "registry": ...}
    parameters: dict[str, int]
    runs: list[Run]
    measured: dict[str, dict[str, Any]]  # label -> speed / memory / receptive field ...
    wall_seconds: float = 0.0
    threads: int = 1
    load_at_start: list[float] | None = None
    jobs: int = 1  # runs trained at once, in separate processes


class _Budget(Callback):
    """Stops training once `seconds` of wall time have passed (checked at each epoch's end)."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.started = time.perf_counter()

    def on_fit_start(self, state) -> None:
        self.started = time.perf_counter()

    def on_epoch_end(self, state) -> None:
        if time.perf_counter() - self.started >= self.seconds:
            state.should_stop = True


class _Announce(Callback):
    def __init__(self, progress: Progress, job: Job, primary: str):
        self.progress, self.job, self.primary = progress, job, primary

    def on_epoch_end(self, state) -> None:
        self.progress.epoch(self.job, state.record["epoch"], state.epochs, state.record.get(f"val_{self.primary}"), self.primary)


def _batch_loss(task, data, batch_size: int):
    """`loss_of(model)`: the loss of one training batch of `batch_size` items (the first ones)."""
    batch = data.train.batch(torch.arange(batch_size) % max(len(data.train), 1))
    return lambda model: task.loss(task.forward(model, batch), batch)


def plan_epochs(model, data, task, train_kw: dict[str, Any], seconds: float) -> int:
    """Epochs that fit in `seconds`, from timing a few training steps of a copy of `model`."""
    batch_size = train_kw.get("batch_size", 64)
    work = copy.deepcopy(model).train()
    optimizer = optim.build_optimizer(work, train_kw.get("optimizer", "adamw"), lr=1e-6, weight_decay=0.0)
    loss_of = _batch_loss(task, data, min(batch_size, len(data.train)))

    def step() -> None:
        loss = loss_of(work)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step()  # warm-up
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    per_step = statistics.median(times)
    train_steps = math.ceil(len(data.train) / batch_size)
    val_steps = math.ceil(len(data.val) / (2 * batch_size))  # evaluation: no backward, double batches
    epoch = per_step * (train_steps + 0.7 * val_steps) * 1.1  # + loader and metric bookkeeping
    return max(1, min(MAX_EPOCHS, int(seconds / max(epoch, 1e-9))))


class _Data:
    """Datasets by (seed, view, length), loaded on first use."""

    def __init__(self, dataset: str, options: dict[str, Any]):
        self.dataset, self.options = dataset, options
        self.cache: dict[tuple, Any] = {}

    def get(self, seed: int, view: str | None, length: int | None):
        key = (seed, view, length)
        if key not in self.cache:
            options = dict(self.options)
            if length is not None:
                options["length"] = length
            self.cache[key] = datasets.load(self.dataset, seed=seed, view=view, **options)
        return self.cache[key]

    def forget(self, length: int | None) -> None:
        """Drop the datasets of `length` (a sweep's long sequences take memory)."""
        for key in [k for k in self.cache if k[2] == length]:
            del self.cache[key]


def _same_model(a: dict[str, Any], b: dict[str, Any], model, info) -> bool:
    """Whether two resolved settings build the same model with the same training (configs compared
    after the registry fills in the data-dependent fields)."""
    if (a["registry"], a["train"], a["view"]) != (b["registry"], b["train"], b["view"]):
        return False
    return models.build_config(a["registry"], **{**_from_info(a["registry"], info), **a["model"]}) == config_of(model)


def _from_info(name: str, info) -> dict[str, Any]:
    e = models.entry(name)
    return e.from_info(info) if e.from_info else {}


def _view_for(spec: ModelSpec, kind: str, name: str) -> str | None:
    kinds = models.entry(spec.model).kinds
    if kind in kinds:
        return None
    if kind == "image" and "sequence" in kinds:
        return "sequence"  # recurrent models read an image as a sequence of its rows
    raise ConfigError(f"model {spec.label!r} ({spec.model}) takes {' or '.join(kinds)} data, but {name!r} is {kind} data; "
                      f"leave it out of --models.")


def check_lengths_option(dataset: str, lengths: list[int] | None) -> None:
    if not lengths:
        return
    entry = catalog.find(dataset)
    accepts = entry is not None and "length" in inspect.signature(entry.loader).parameters
    if not accepts:
        with_length = [n for n in catalog.names() if "length" in inspect.signature(catalog.entry(n).loader).parameters]
        raise ConfigError(f"lengths needs a dataset with a length option ({', '.join(with_length)}); {dataset!r} has none.")


def run(dataset: str, specs: list[ModelSpec], *, seeds: list[int], budget: Budget, lengths: list[int] | None,
        data_options: dict[str, Any], device: str, progress: bool | None, measure_speed: bool = True,
        threads: int | None = None, jobs: int = 1) -> RawResults:
    """Train and measure every (length, seed, model); see the module docstring. `threads` sets torch's
    thread count for the whole run (restored after); thread scaling compares 1 with torch's default.
    `jobs` > 1 trains that many runs at once in worker processes (each with `threads`, default
    cores // jobs)."""
    all_threads = torch.get_num_threads()
    if jobs > 1:
        threads = threads or max(1, _cores() // jobs)
    if threads is None:
        return _run(dataset, specs, seeds, budget, lengths, data_options, device, progress, measure_speed, all_threads, jobs)
    with measure.threads(threads):
        return _run(dataset, specs, seeds, budget, lengths, data_options, device, progress, measure_speed, all_threads, jobs)


def _cores() -> int:
    """CPUs this process may run on (the affinity mask, e.g. a container's share, where known)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _run(dataset, specs, seeds, budget, lengths, data_options, device, progress, measure_speed, all_threads, jobs=1) -> RawResults:
    started = time.perf_counter()
    load = [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None
    if load and load[0] > (os.cpu_count() or 1) and torch.get_num_threads() > 1:
        _logger.warning("the machine is busy (load average %.1f on %d CPUs): with more runnable threads than cores, "
                        "multi-threaded training can be many times slower; consider threads=1 (--threads 1)",
                        load[0], os.cpu_count() or 1)
    check_lengths_option(dataset, lengths)
    data_for = _Data(dataset, data_options)
    sweep = list(lengths) if lengths else [None]
    first = data_for.get(seeds[0], None, sweep[0])
    info = first.info
    views = {s.label: _view_for(s, info.kind, dataset) for s in specs}
    settings, parameters, kept = {}, {}, []
    for spec in specs:  # build every model once before training any: a bad name or setting fails now
        train_kw, model_kw = resolve_settings(dataset, spec, budget, info.task)
        data = data_for.get(seeds[0], views[spec.label], sweep[0])
        model = matching.create_for(spec.model, data.info, **model_kw)
        tasks.for_data(data.info, model)  # ConfigError: this model's topology cannot serve the task
        setting = {"registry": spec.model, "family": spec.family, "train": train_kw, "model": model_kw,
                   "view": views[spec.label]}
        twin = next((label for label, other in settings.items() if _same_model(other, setting, model, data.info)), None)
        if twin is not None:  # e.g. "bigru" where the dataset's defaults already make "gru" bidirectional
            _logger.warning("%s is the same model as %s on %s (same settings); it is left out", spec.label, twin, dataset)
            continue
        settings[spec.label] = setting
        parameters[spec.label] = sum(p.numel() for p in model.parameters())
        kept.append(spec)
    specs = kept
    task = tasks.for_data(info)
    threads = torch.get_num_threads()  # what training uses
    todo = [Job(s.label, seed, length) for length in sweep for seed in seeds for s in specs]
    runs: list[Run] = []
    measured: dict[str, dict[str, Any]] = {}
    if jobs > 1 and len(todo) > 1:
        with Progress(todo, budget_seconds=budget.seconds, enabled=progress) as bar:
            done = _run_in_processes(todo, {s.label: s for s in specs}, settings, dataset, data_options, budget, device,
                                     bar, jobs, threads, task.primary)
        for job in todo:  # the serial order, whatever order the runs finished in
            run_, state = done[job]
            runs.append(run_)
            if job.label not in measured and state is not None:
                spec, setting = next(s for s in specs if s.label == job.label), settings[job.label]
                data = data_for.get(job.seed, views[job.label], job.length)
                model = _rebuild(spec, setting, data.info, state)
                measured[job.label] = _measure(model, data, tasks.for_data(data.info, model), setting["train"],
                                               all_threads, speed=measure_speed)
        return RawResults(dataset, info, task, specs, list(seeds), list(lengths) if lengths else None, budget, settings,
                          parameters, runs, measured, time.perf_counter() - started, threads, load, jobs=jobs)
    with Progress(todo, budget_seconds=budget.seconds, enabled=progress) as bar:
        for length in sweep:
            for seed in seeds:
                for spec in specs:
                    job = Job(spec.label, seed, length)
                    bar.start(job)
                    data = data_for.get(seed, views[spec.label], length)
                    result = _one_run(spec, job, data, settings[spec.label], budget, device, bar)
                    runs.append(result.run)
                    if spec.label not in measured and result.model is not None:
                        measured[spec.label] = _measure(result.model, data, result.task, settings[spec.label]["train"],
                                                        all_threads, speed=measure_speed)
                    bar.finish(job, _summary(result.run, task.primary))
            data_for.forget(length)
    return RawResults(dataset, info, task, specs, list(seeds), list(lengths) if lengths else None, budget, settings,
                      parameters, runs, measured, time.perf_counter() - started, threads, load)


@dataclass
class _Result:
    run: Run
    model: Any = None
    task: Any = None


def _run_in_processes(todo: list[Job], specs: dict[str, ModelSpec], settings: dict[str, dict[str, Any]], dataset: str,
                      data_options: dict[str, Any], budget: Budget, device: str, bar: Progress, jobs: int,
                      threads: int, primary: str) -> dict[Job, tuple[Run, dict[str, torch.Tensor] | None]]:
    """Every job of `todo` trained in a pool of `jobs` spawned processes; (Run, weights) by job."""
    import safetensors.torch

    done: dict[Job, tuple[Run, dict[str, torch.Tensor] | None]] = {}
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(max_workers=min(jobs, len(todo)), mp_context=context, initializer=_init_worker,
                               initargs=(threads,))
    try:
        pending = {pool.submit(_job_in_worker, dataset, data_options, specs[job.label], job, settings[job.label], budget,
                               device): job for job in todo}
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                job = pending.pop(future)
                run_, weights, seconds = future.result()  # a bug in a worker is raised here
                if run_.error:
                    _logger.warning("%s: %s", job.describe(), run_.error)
                done[job] = run_, (safetensors.torch.load(weights) if weights is not None else None)
                bar.job_started = time.perf_counter() - seconds  # the worker's own time, not the wait
                bar.finish(job, _summary(run_, primary))
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)  # no new runs start; running ones end
        raise
    pool.shutdown(wait=True)
    return done


def _init_worker(threads: int) -> None:
    torch.set_num_threads(threads)
    logging.getLogger("gridseq").setLevel(logging.ERROR)  # the parent reports failed runs itself


_worker_data: _Data | None = None  # a worker's datasets, kept across the jobs it runs


def _job_in_worker(dataset: str, data_options: dict[str, Any], spec: ModelSpec, job: Job, setting: dict[str, Any],
                   budget: Budget, device: str) -> tuple[Run, bytes | None, float]:
    """One run in a worker process: its Run, its trained weights (safetensors bytes) and its seconds."""
    import safetensors.torch

    global _worker_data
    started = time.perf_counter()
    if _worker_data is None or (_worker_data.dataset, _worker_data.options) != (dataset, data_options):
        _worker_data = _Data(dataset, data_options)
    for length in {k[2] for k in _worker_data.cache} - {job.length}:
        _worker_data.forget(length)
    result = _one_run(spec, job, _worker_data.get(job.seed, setting["view"], job.length), setting, budget, device, None)
    weights = None
    if result.model is not None:
        weights = safetensors.torch.save({k: v.detach().cpu().clone().contiguous() for k, v in result.model.state_dict().items()})
    return result.run, weights, time.perf_counter() - started


def _rebuild(spec: ModelSpec, setting: dict[str, Any], info, state: dict[str, torch.Tensor]):
    model = matching.create_for(spec.model, info, **setting["model"])
    model.load_state_dict(state)
    return model


def _one_run(spec: ModelSpec, job: Job, data, setting: dict[str, Any], budget: Budget, device: str, bar: Progress | None) -> _Result:
    train_kw = dict(setting["train"])
    run_ = Run(spec.label, job.seed, job.length)
    seed_everything(job.seed)  # the initial weights are part of what the seed reproduces
    model = matching.create_for(spec.model, data.info, **setting["model"])
    task = tasks.for_data(data.info, model)
    run_.gradient_init = probes.gradient_flow(model, task, data.test)
    callbacks: list[Callback] = [_Announce(bar, job, task.primary)] if bar is not None else []
    if budget.seconds is not None:
        if train_kw.get("scheduler", "none") in SCHEDULE_FREE:
            train_kw["epochs"] = MAX_EPOCHS  # nothing to plan: train until the time is up
        else:  # a schedule must run its course: as many epochs as fit in the budget
            train_kw["epochs"] = plan_epochs(model, data, task, train_kw, budget.seconds)
        callbacks.append(_Budget(budget.seconds))
    run_.epochs_planned = train_kw.get("epochs", 10)
    try:
        result = fit(model, data, seed=job.seed, progress=False, device=device, callbacks=callbacks, **train_kw)
    except GridseqError as e:  # e.g. the loss diverged: the comparison goes on without this run
        run_.error = " ".join(str(e).split())
        _logger.warning("%s: %s", job.describe(), run_.error)
        return _Result(run_)
    model.cpu()
    run_.test, run_.val, run_.best_epoch = result.test, result.val, result.best_epoch
    run_.epochs, run_.train_seconds, run_.samples_per_second = len(result.history), result.train_seconds, result.samples_per_second
    primary = f"val_{task.primary}"
    run_.history = [{"epoch": r["epoch"], "train_loss": r.get("train_loss"), primary: r.get(primary),
                     "seconds": r.get("seconds")} for r in result.history]
    run_.padding = measure.padding_invariance(model, data.test, variable_length=data.info.variable_length)
    run_.gradient_trained = probes.gradient_flow(model, task, data.test)
    return _Result(run_, model, task)


def _measure(model, data, task, train_kw: dict[str, Any], threads: int, *, speed: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "receptive_field": probes.receptive_field(model),
        "input_steps_seen": probes.input_steps_seen(model, data.test),
        "reads_whole_input": measure.reads_whole_input(model, data.test),
        "sequence_length": int(data.info.input_shape[0]) if data.test.x.dim() == 3 else None,
    }
    if speed:
        out.update(measure.speed(model, data.test, all_threads=threads))
        out["length_scaling"] = measure.length_scaling(model, data.test)
        out["memory"] = measure.memory(model, _batch_loss(task, data, min(train_kw.get("batch_size", 64), len(data.train))))
    return out


def _summary(run_: Run, primary: str) -> str:
    if run_.error:
        return f"failed ({run_.error[:80]})"
    value = run_.test.get(primary)
    return f"test {primary} {value:.4f}, {run_.epochs} epochs" if value is not None else f"{run_.epochs} epochs"
