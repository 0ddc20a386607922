"""`gridseq compare DATASET`: train several models on one dataset under one budget, measure them side by
side, print the summary and the claims card, and write the report.

    gridseq compare mnist1d
    gridseq compare digits --models mlp,cnn,lstm --seeds 2 --epochs 5
    gridseq compare adding --lengths 50,200,800 --budget-seconds 120
    gridseq compare mnist1d-shuffled --out reports/shuffled
    gridseq compare digits --seeds 4 --jobs 2       # two runs at a time, one core each on two cores

The report (report.json, report.md, a self-contained report.html and PNG plots) goes to --out,
default runs/compare-<dataset>; the files of an earlier report there are replaced.
"""

from __future__ import annotations

import argparse
import logging
import re
from pathlib import Path

from gridseq._atomic import ensure_dir
from gridseq.cli.common import EXIT_OK, console, positive_int, print_json
from gridseq.errors import ConfigError

_logger = logging.getLogger(__name__)

VERDICT_COLORS = {"holds": "green", "does not hold": "red", "inconclusive": "yellow", "not measured": "dim"}


def _lengths(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated lengths such as 50,200,800, got {text!r}") from None
    if not values or min(values) < 2:
        raise argparse.ArgumentTypeError(f"expected lengths >= 2 such as 50,200,800, got {text!r}")
    return values


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text}")
    return value


def register(sub, parents) -> None:
    """Add the `compare` subcommand to the `gridseq` subparsers `sub`."""
    p = sub.add_parser(
        "compare", parents=parents, help="compare CNNs, RNNs and baselines on one dataset, with a claims card",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train every model on the same splits with the same seeds and budget; measure accuracy, parameters, "
                    "training throughput, latency, thread and length scaling, memory, padding invariance, gradient "
                    "flow and receptive fields; print the summary and the claims card; write report.json, report.md, "
                    "report.html and PNG plots.",
        epilog="Default models by data: mnist1d: logreg, mlp, cnn, rnn, lstm, gru; images: mlp, cnn, fcn, rnn, lstm, gru "
               "(recurrent models read rows);\nsequences: mlp, cnn, fcn, tcn, rnn, lstm, gru, bigru; adding: mlp, cnn, tcn, "
               "rnn, lstm, gru; copy: tcn, fcn, rnn, lstm, gru.\nModels are registered names (`gridseq models`) plus "
               "logreg (mlp without hidden layers), bigru, bilstm.")
    p.add_argument("dataset", metavar="DATASET", help="a built-in dataset name (see `gridseq datasets`) or a path, as for train")
    p.add_argument("--models", metavar="A,B,C", help="models to compare (default: a set for the data's kind)")
    p.add_argument("--seeds", type=positive_int, metavar="N", help="seeds 0..N-1 (default: 3; 1 with --lengths)")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--epochs", type=positive_int, help="train every model for this many epochs")
    budget.add_argument("--budget-seconds", type=_seconds, metavar="S",
                        help="train every model for S seconds per seed (default: each model's training defaults; "
                             "adding/copy: 90 s)")
    p.add_argument("--lengths", type=_lengths, metavar="L1,L2,...",
                   help="memory-span sweep over sequence lengths (datasets with a length option: adding, copy)")
    p.add_argument("--out", metavar="DIR", help="where to write the report (default: runs/compare-<dataset>)")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots (they need matplotlib)")
    p.add_argument("--no-timing", action="store_true", help="skip latency, throughput, scaling and memory measurements")
    p.add_argument("--device", default="cpu", help="where models train: cpu, cuda, auto (default: cpu)")
    p.add_argument("--threads", type=positive_int, metavar="N",
                   help="torch threads for training and timing (default: one per core; on a machine other "
                        "processes keep busy, 1 can be much faster)")
    p.add_argument("--jobs", type=positive_int, default=1, metavar="N",
                   help="train N (model, seed) runs at once in separate processes, each with --threads "
                        "(default: cores / N); timings are still taken one model at a time (default: 1)")
    p.add_argument("--tuned", action="append", metavar="[LABEL=]DIR",
                   help="train LABEL with the settings `gridseq tune` found (DIR holds its best.json; without LABEL, the "
                        "model it was tuned for); repeat per model — the others keep their defaults")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="show progress (default: a bar on a terminal, one line per finished run otherwise)")
    p.add_argument("--json", action="store_true", help="print report.json to stdout instead of the tables")
    p.set_defaults(handler=cmd_compare)


def _out_dir(args) -> Path:
    if args.out:
        out = Path(args.out)
    else:
        stem = Path(args.dataset.rstrip("/\\")).stem if ("/" in args.dataset or "\\" in args.dataset) and Path(args.dataset).exists() else args.dataset
        out = Path("runs") / ("compare-" + (re.sub(r"[^A-Za-z0-9_.-]+", "_", stem) or "data"))
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; pass a folder for the report.")
    if out.is_dir() and any(out.iterdir()) and not (out / "report.json").exists():
        raise ConfigError(f"{out} exists, is not empty and holds no gridseq report; choose another --out.")
    return ensure_dir(out)  # an --out that cannot be created fails now, not after the training


def _tuned(values: list[str] | None) -> dict[str, str] | list[str] | None:
    """--tuned LABEL=DIR / --tuned DIR, repeated: a mapping when every one names its label, else the folders."""
    if not values:
        return None
    labelled = [v.partition("=") for v in values]
    if all(sep for _, sep, _ in labelled):
        return {label: where for label, _, where in labelled}
    if any(sep for _, sep, _ in labelled):
        raise ConfigError("--tuned: give LABEL=DIR for every model or for none (then each DIR's best.json names its model).")
    return list(values)


def cmd_compare(args) -> int:
    from gridseq import compare as compare_mod

    out = _out_dir(args)
    if (out / "report.json").exists():
        _logger.warning("replacing the report in %s", out)
    report = compare_mod.compare(
        args.dataset, args.models, seeds=args.seeds, epochs=args.epochs, budget_seconds=args.budget_seconds,
        lengths=args.lengths, out=out, plots=not args.no_plots, measure=not args.no_timing, device=args.device,
        threads=args.threads, progress=args.progress, jobs=args.jobs, tuned=_tuned(args.tuned),
    )
    if args.json:
        print_json(report.data)
        return EXIT_OK
    print_summary(report.data)
    note = report.data.get("plots_note")
    shown = [f.name for f in report.files]
    console().print(f"report: {out / 'report.html'}  ({', '.join(shown)})" + (f"\n{note}" if note else ""),
                    highlight=False, markup=False)
    return EXIT_OK


# the columns that fit a terminal; report.md and report.html have all of render.SUMMARY_COLUMNS
TERMINAL_COLUMNS = ("model", "params", "metric", "paper", "train s", "train samples/s", "latency b1 ms", "threads ×",
                    "4T/T latency", "act MB", "pad-invariant")


def _console():
    """stdout; wide enough for the tables when it is not a terminal (logs, pipes)."""
    import sys

    from rich.console import Console

    return Console(file=sys.stdout, soft_wrap=False, width=None if sys.stdout.isatty() else 160)


def print_summary(data: dict) -> None:
    """The summary table, the memory-span table of a sweep, and the claims card, on stdout."""
    from rich.table import Table

    from gridseq.compare import render

    out = _console()
    table = Table(title=f"gridseq compare {data['dataset']} — {data['budget']['description']}; seeds "
                        f"{', '.join(map(str, data['seeds']))}; {data['wall_seconds'] / 60:.1f} min")
    header, rows = render.summary_table(data, TERMINAL_COLUMNS)
    for i, col in enumerate(header):
        table.add_column(col, justify="left" if i == 0 else "right", no_wrap=True, style="bold" if i == 0 else None)
    for row in rows:
        table.add_row(*row)
    out.print(table)
    out.print("all columns, plots and the definitions of every measurement: report.md / report.html", highlight=False, markup=False)
    for warning in data.get("warnings", []):
        out.print(f"warning: {warning}", style="yellow", highlight=False, markup=False)
    refs = data.get("references")
    if refs:
        out.print(f"paper: {refs['source']}", highlight=False, markup=False)
    if data.get("sweep"):
        header, rows = render.sweep_rows(data)
        sweep = Table(title=f"memory span (solved: {data['sweep']['solved_when']})")
        for i, h in enumerate(header):
            sweep.add_column(h, justify="left" if i == 0 else "right")
        for row in rows:
            sweep.add_row(*row)
        out.print(sweep)
    card = Table(title="claims card (verdicts computed from the numbers above)", show_lines=True)
    card.add_column("claim", ratio=2)
    card.add_column("verdict", no_wrap=True)
    card.add_column("numbers", ratio=3)
    for c in data["claims"]:
        color = VERDICT_COLORS.get(c["verdict"], "white")
        card.add_row(c["claim"], f"[{color}]{c['verdict']}[/{color}]", render.claim_numbers(c).replace("[", "\\["))
    out.print(card)
