"""`gridseq tune DATASET --model NAME`: an Optuna search over the model's settings, scored on the
validation split, stored in OUT/study.db so that rerunning the command continues it (see gridseq.tune)."""

from __future__ import annotations

import argparse
import inspect

from gridseq.cli.common import (
    EXIT_OK,
    console,
    positive_float,
    positive_int,
    print_metrics,
)
from gridseq.cli.overrides import resolve


def register(sub, parents) -> None:
    """Add the `tune` subcommand to the `gridseq` subparsers `sub`."""
    p = sub.add_parser(
        "tune", parents=parents, help="search a model's settings on validation (Optuna)", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Search MODEL's training and architecture settings on DATASET's validation split with Optuna (TPE, median\n"
                    "pruning after each epoch), write OUT/best.json (value, params, the `gridseq train` command that\n"
                    "reproduces the best trial), OUT/trials.json and plots. The test split is never read, except by --train-best.",
        epilog="The study lives in OUT/study.db: rerun the same command to continue it (a trial that was running when it\n"
               "was killed is failed and retried). Several commands given the same --storage URL share one study.\n"
               "--train.KEY=VALUE, --model.FIELD=VALUE and --data.KEY=VALUE fix a setting for every trial (and leave the search).\n"
               "The default search space and the --space file format: docs/tune.md.")
    p.add_argument("dataset", metavar="DATASET", help="a built-in dataset name or a path, as for `gridseq train`")
    p.add_argument("--model", required=True, metavar="NAME", help="a registered model (see `gridseq models`)")
    p.add_argument("--trials", type=positive_int, default=20, metavar="N", help="finished (complete or pruned) trials the study should have (default: 20)")
    p.add_argument("--timeout", type=positive_float, metavar="SECONDS", help="start no trial after this long; running ones stop at their epoch's end")
    p.add_argument("--jobs", type=positive_int, default=1, metavar="N", help="worker processes sharing the study, each with cores/N threads (default: 1)")
    p.add_argument("--out", metavar="DIR", help="output directory (default: tune/<dataset>-<model>-s<seed>)")
    p.add_argument("--seed", type=int, default=0, help="dataset, weights and sampler seed (default: 0)")
    p.add_argument("--space", metavar="FILE", help="a JSON or YAML file merged over the default search space (docs/tune.md)")
    p.add_argument("--storage", metavar="URL", help="an Optuna RDB storage URL shared with other processes (default: sqlite:///OUT/study.db)")
    p.add_argument("--study", metavar="NAME", help="the study's name in the storage (default: <dataset>-<model>-s<seed>)")
    p.add_argument("--threads", type=positive_int, metavar="N", help="CPU threads per worker (default: torch's, or cores/--jobs)")
    p.add_argument("--view", choices=("image", "sequence"), help="how to present the data (default: what the model takes)")
    p.add_argument("--cv", type=positive_int, metavar="K",
                   help="score each trial by K-fold cross-validation of train + val (small training sets); --train-best then refits on all of them")
    p.add_argument("--metric", metavar="NAME",
                   help="the validation metric trials are scored by and pick their best epoch by, e.g. macro_f1 (default: the task's primary)")
    p.add_argument("--train-best", action="store_true", help="at the end, train the best settings into OUT/best-run and print its test metrics")
    p.add_argument("--top", type=positive_int, default=5, metavar="K", help="trials in the printed table (default: 5)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="show progress (default: a live line on a terminal, one line per trial otherwise)")
    p.set_defaults(handler=cmd_tune, override_prefixes=("",))


def cmd_tune(args, raw_overrides: dict[str, str]) -> int:
    import torch

    from gridseq import models, train, tune
    from gridseq.tune import report

    if args.threads and args.jobs == 1:
        torch.set_num_threads(args.threads)
    entry = models.entry(args.model)
    fit_keys = [p for p in inspect.signature(train.fit).parameters if p not in tune._NOT_SEARCHABLE]
    overrides = resolve(raw_overrides, model_cls_config=entry.config_cls, train_keys=fit_keys)
    settings = {f"{section}.{k}": v for section in ("train", "model") for k, v in overrides[section].items()}
    result = tune.tune(args.dataset, entry.name, trials=args.trials, timeout=args.timeout, jobs=args.jobs, out=args.out, seed=args.seed,
                       space=args.space, settings=settings, data_options=overrides["data"], view=args.view, storage=args.storage,
                       study_name=args.study, threads=args.threads, cv=args.cv, train_best=args.train_best, metric=args.metric,
                       progress=args.progress)
    _print_top(result.top, result, args.top)
    out = console()
    c = result.trials
    late = f", {c['timed_out']} stopped by the time limit (they run again when the study continues)" if c.get("timed_out") else ""
    scored = f"mean held-out {result.metric} ({result.cv}-fold, chosen epochs {result.epochs})" if result.cv else f"validation {result.metric}"
    out.print(f"best {scored}: {result.value:.4f} (trial {result.best_trial}; {c['complete']} complete, "
              f"{c['pruned']} pruned, {c['failed']} failed{late})\nreproduce: {result.command}\nwrote {report.relative(result.out / 'best.json')}",
              highlight=False, markup=False, soft_wrap=True)
    if args.train_best:
        print_metrics(f"test metrics of the best settings ({entry.name} on {args.dataset})", result.test)
        out.print(f"run dir: {result.run_dir}", highlight=False, markup=False, soft_wrap=True)
    return EXIT_OK


def _print_top(rows, result, k: int) -> None:
    from rich.table import Table

    from gridseq.tune.report import short

    rows = rows[:k]
    table = Table(title=f"top {len(rows)} trials by validation {result.metric}", title_justify="left")
    table.add_column("trial", justify="right", no_wrap=True)
    table.add_column(result.metric, justify="right", no_wrap=True)
    table.add_column("epochs", justify="right", no_wrap=True)
    table.add_column("s", justify="right", no_wrap=True)
    table.add_column("settings")
    for r in rows:
        settings = " ".join(f"{key.split('.', 1)[1]}={short(v)}" for key, v in sorted(r["params"].items()))
        table.add_row(str(r["number"]), f"{r['value']:.4f}", str(r.get("epochs") or ""), f"{r['seconds'] or 0:.0f}", settings)
    console().print(table)
