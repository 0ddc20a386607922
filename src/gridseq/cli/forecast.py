"""`gridseq forecast RUN_DIR`: forecast the steps after a series' end with a trained forecasting run.

    gridseq train sunspots --model lstm
    gridseq forecast runs/sunspots-lstm-s0 --horizon 22 --out forecast.csv --plot forecast.png

The history is the series the run was trained on (rebuilt from config.json), or `--input CSV` with
the same time and value columns. Everything else — window, horizon, scaler, transform — comes from the
run directory. `--horizon` beyond the model's own horizon forecasts recursively (univariate runs, or
runs whose every column is a target). The plot needs matplotlib (`pip install 'gridseq[plot]'`);
without it the forecast is still printed and saved, and a message says why there is no plot.
"""

from __future__ import annotations

import argparse
import csv
import io
import logging
from pathlib import Path

import numpy as np

from gridseq.cli.common import EXIT_OK, console, positive_int, print_json
from gridseq.errors import ConfigError, DataError

_logger = logging.getLogger(__name__)

PLOT_HISTORY = 240  # at most this many past steps in the plot, so the forecast stays readable


def register(sub, parents) -> None:
    """Add the `forecast` subcommand to the `gridseq` subparsers `sub`."""
    p = sub.add_parser("forecast", parents=parents, help="forecast a series with a trained forecasting run",
                       description="Forecast the steps after the end of a series with a run trained on a series "
                                   "(e.g. `gridseq train sunspots --model lstm`): print them, and optionally save a CSV and a PNG plot.")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--horizon", type=positive_int, metavar="H",
                   help="steps to forecast (default: the model's horizon; more is recursive)")
    p.add_argument("--input", metavar="CSV", help="the history: a CSV with the run's time and value columns "
                                                  "(default: the series the run was trained on)")
    p.add_argument("--out", metavar="CSV", help="write the forecast here (time column + one column per target)")
    p.add_argument("--plot", metavar="PNG", help="plot history and forecast to this PNG (needs matplotlib)")
    p.add_argument("--json", action="store_true", help="print the forecast as JSON")
    p.set_defaults(handler=cmd_forecast)


def cmd_forecast(args: argparse.Namespace) -> int:
    from gridseq.data.builtin.forecast_series import raw_for_spec
    from gridseq.data.readers.series_csv import future_times, read_series_csv
    from gridseq.data.series import check_record
    from gridseq.runs import Run

    _check_args(args)
    run = Run.open(args.run_dir)
    model = run.model
    info = run.info
    record = info.preprocessing
    check_record(record)
    if args.input:
        if not Path(args.input).is_file():
            raise DataError(f"--input {args.input} does not exist; pass a CSV with the columns "
                            f"{[record['time_column'], *record['columns']]}.")
        options = run.data_spec["options"]
        raw = read_series_csv(args.input, time_column=record["time_column"], value_columns=record["columns"],
                              missing=options.get("missing", "error"))
    else:
        raw = raw_for_spec(run.data_spec)
        if list(raw.columns) != list(record["columns"]):
            raise DataError(f"the run's series now has columns {list(raw.columns)}, the model was trained on "
                            f"{record['columns']}; pass --input with the right columns.")
    values = run.task.forecast(model, raw.values, args.horizon)  # (H, F_out)
    times = future_times(raw.times, record["frequency"], len(values))
    rows = [{record["time_column"]: t, **{c: float(v) for c, v in zip(record["targets"], row)}} for t, row in zip(times, values)]

    if args.out:
        _write_csv(Path(args.out), rows)
    if args.plot:
        _plot(Path(args.plot), raw, record, times, values)
    if args.json:
        print_json(rows)
    else:
        _print(rows, record)
    return EXIT_OK


def _write_csv(path: Path, rows: list[dict]) -> None:
    from gridseq._atomic import atomic_write_text

    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, text.getvalue())
    _logger.info("wrote the forecast to %s", path)


def _print(rows: list[dict], record: dict) -> None:
    from rich.table import Table

    table = Table(title=f"forecast ({', '.join(record['targets'])})")
    for i, col in enumerate(rows[0]):
        table.add_column(col, justify="left" if i == 0 else "right", no_wrap=True)
    for r in rows:
        table.add_row(*(v if isinstance(v, str) else f"{v:.4g}" for v in r.values()))
    console().print(table)


def _plot(path: Path, raw, record: dict, times: list[str], values: np.ndarray) -> None:
    """History (the last PLOT_HISTORY steps) and forecast of every target, one panel each."""
    try:
        import matplotlib
    except ImportError:
        console().print(f"no plot written to {path}: matplotlib is not installed (pip install 'gridseq[plot]').",
                        highlight=False, markup=False)
        return
    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    past = min(len(raw), PLOT_HISTORY)
    targets = record["targets"]
    fig, axes = plt.subplots(len(targets), 1, figsize=(9, 3.2 * len(targets)), squeeze=False)
    steps = np.arange(-past, 0)
    ahead = np.arange(0, len(values))
    for ax, j, name in zip(axes[:, 0], record["target_index"], targets):
        ax.plot(steps, raw.values[-past:, j], color="0.3", lw=1.2, label="history")
        k = targets.index(name)
        ax.plot(np.r_[-1, ahead], np.r_[raw.values[-1, j], values[:, k]], color="tab:red", lw=1.6, marker=".", label="forecast")
        ax.axvline(-0.5, color="0.6", ls=":", lw=1)
        ax.set_ylabel(name)
        ax.legend(loc="upper left", frameon=False)
        ticks = np.linspace(-past, len(values) - 1, 6).round().astype(int)
        labels = [raw.times[t] if t < 0 else times[t] for t in ticks]
        ax.set_xticks(ticks, labels)
    axes[0, 0].set_title(f"{raw.name}: {len(values)}-step forecast from {raw.times[-1]}")
    fig.tight_layout()
    from gridseq._atomic import atomic_write_bytes

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())
    _logger.info("wrote the plot to %s", path)


def _check_args(args: argparse.Namespace) -> None:
    if args.plot and Path(args.plot).suffix.lower() != ".png":
        raise ConfigError(f"--plot writes a PNG; give a file name ending in .png, got {args.plot!r}.")
