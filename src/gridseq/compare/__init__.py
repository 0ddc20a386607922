"""gridseq.compare: many models × one dataset, measured side by side, with a claims card.

    >>> report = gridseq.compare("mnist1d", out="compare/mnist1d")  # doctest: +SKIP
    >>> report.metric("cnn"), report.verdicts()["cnn_train_faster"]  # doctest: +SKIP
    (0.985, 'holds')

Every model gets the same data, splits, seeds and training budget; each is measured for test metric
(mean ± std over seeds), parameters, training time and throughput, inference latency and throughput,
thread and length scaling, peak memory and padding invariance, and probed for gradient flow and
receptive field. `write` produces report.json, report.md, a self-contained report.html and PNG plots.
See docs/compare.md.
"""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path
from typing import Any

from gridseq._validation import check_positive_int
from gridseq.compare.claims import evaluate_claims
from gridseq.compare.plan import ALIASES, REFERENCES, ModelSpec, default_models
from gridseq.compare.report import CompareReport
from gridseq.errors import ConfigError

__all__ = ["compare", "CompareReport", "ModelSpec", "ALIASES", "REFERENCES", "default_models", "evaluate_claims"]


def compare(
    dataset: str | os.PathLike,
    models: str | list[str | ModelSpec] | None = None,
    *,
    seeds: int | list[int] | None = None,
    epochs: int | None = None,
    budget_seconds: float | None = None,
    lengths: list[int] | None = None,
    out: str | os.PathLike | None = None,
    plots: bool = True,
    measure: bool = True,
    device: str = "cpu",
    threads: int | None = None,
    progress: bool | None = None,
    jobs: int = 1,
    tuned: dict[str, str | os.PathLike] | list[str | os.PathLike] | None = None,
    **data_options: Any,
) -> CompareReport:
    """Train and measure several models on one dataset under one budget; return the report.

    Args:
        dataset: a built-in name (see `gridseq.datasets.names()`) or a path, as `gridseq train` takes.
        models: labels ("cnn,gru" or a list), `ModelSpec`s, or None for the default set of the data's
            kind (`default_models`). Labels are registered model names plus "logreg", "bigru", "bilstm".
        seeds: a number of seeds (0..N-1) or the seeds themselves. Default: 3, or 1 with `lengths`.
        epochs: train every model for this many epochs. Default: each model's training defaults.
        budget_seconds: instead of epochs, this many seconds of training per model and seed (the
            epochs are planned from a timed warm-up, so learning-rate schedules run their course).
        lengths: a length sweep for datasets with a `length` option (adding, copy): every model at
            every length; the report gives each model's longest solved length.
        out: write report.json, report.md, report.html and PNG plots here. Default: nothing written.
        plots: draw the PNG plots (needs matplotlib). Default: True.
        measure: time latency/throughput/scaling and memory. Default: True.
        device: where models train ("cpu", "cuda", "auto"); timings are taken on the CPU. Default: "cpu".
        threads: torch threads for training and the timings (thread scaling still compares one thread
            with all of torch's default threads). On a machine other processes keep busy, 1 can be much
            faster than the default. Default: torch's default (one per core).
        progress: None = automatic (a bar on a terminal, a line per finished run otherwise), False = silent.
        jobs: train this many (model, seed) runs at once, in separate processes, each with `threads`
            (default: cores // jobs); timings are still taken one model at a time. Default: 1.
        tuned: `gridseq tune` results to train with instead of the defaults, so a comparison is fair when
            defaults are not: {label: output folder} or a list of folders (matched by the model each was
            tuned for; each must be tuned on this dataset). Default: None.
        **data_options: dataset options, as `gridseq.datasets.load` takes them.

    Returns:
        A `CompareReport` (`.data` is the report.json dictionary; `.files` the files written).

    Raises:
        ConfigError: unknown models, a model that cannot take the data, both epochs and
            budget_seconds, lengths for a dataset without a length option.
        DataError: an unknown dataset or unreadable file.
    """
    from gridseq import datasets
    from gridseq.compare import harness, plan
    from gridseq.compare.report import build

    name = str(dataset)
    if lengths is not None:
        lengths = sorted({check_positive_int(int(x) if isinstance(x, str) else x, "lengths[]", minimum=2) for x in lengths})
        if not lengths:
            raise ConfigError("lengths is empty; give at least one, e.g. lengths=[50, 200].")
    seed_list = _seeds(seeds, default=1 if lengths else 3)
    budget = plan.resolve_budget(name, epochs, budget_seconds)
    if lengths:
        harness.check_lengths_option(name, lengths)
    options = dict(data_options)
    if lengths:
        options["length"] = lengths[0]
    probe = datasets.load(name, seed=seed_list[0], **options)  # the kind and task pick the default models
    specs = plan.apply_tuned(plan.parse_models(models, dataset=name, kind=probe.info.kind, task=probe.info.task), tuned, name)
    raw = harness.run(name, specs, seeds=seed_list, budget=budget, lengths=lengths, data_options=dict(data_options),
                      device=device, progress=progress, measure_speed=measure,
                      threads=None if threads is None else check_positive_int(threads, "threads"),
                      jobs=check_positive_int(jobs, "jobs"))
    report = build(raw)
    if out is not None:
        report.write(Path(out), plots=plots)
    return report


def _seeds(seeds, *, default: int) -> list[int]:
    if seeds is None:
        return list(range(default))
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        return list(range(check_positive_int(seeds, "seeds")))
    out = [check_positive_int(s, "seeds[]", minimum=0) for s in seeds]
    if not out or len(set(out)) != len(out):
        raise ConfigError(f"seeds must be a positive count or a list of distinct non-negative ints, got {seeds!r}.")
    return out


class _CallableModule(types.ModuleType):
    """`gridseq.compare` is this package and the function at once: importing a submodule sets the
    package as the attribute `gridseq.compare`, so the package itself answers `gridseq.compare(...)`."""

    def __call__(self, *args, **kwargs) -> CompareReport:
        return compare(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
