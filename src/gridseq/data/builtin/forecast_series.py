"""Built-in series for forecasting, read from files that installed packages ship (nothing is downloaded),
and user series CSVs.

- `sunspots`: yearly mean sunspot numbers 1700–2008 (309 values), statsmodels' `sunspots.csv`.
  Season 11 (the solar cycle), horizon 11, window 33; the last 40 years are the test period, the 40
  before them validation.
- `co2`: atmospheric CO2 at Mauna Loa, statsmodels' weekly `co2.csv` (March 1958 – December 2001)
  averaged by calendar month (526 months; the 5 months without any weekly value are interpolated).
  Season 12, horizon 12, window 36; 60 months of test, 60 of validation.
- `airline`: Box & Jenkins' monthly international airline passengers 1949–1960 (144 values), aeon's
  `Airline.csv`. Season 12, horizon 12, window 24, log transform (the seasonal swing grows with the
  level); 1959–1960 are the test period, 1957–1958 validation.

The files are found with `importlib.util.find_spec`, which does not import statsmodels or aeon.
Every option of `gridseq.data.series.series_dataset` can be changed at load time, e.g.
`datasets.load("airline", horizon=6, window=36)`.
"""

from __future__ import annotations

import csv
import importlib.util
from collections import defaultdict
from functools import lru_cache
from pathlib import Path

import numpy as np

from gridseq.data.builtin import register_dataset
from gridseq.data.contract import Dataset
from gridseq.data.readers.series_csv import RawSeries, fill_missing, read_series_csv
from gridseq.data.series import series_dataset
from gridseq.errors import DataError

# the defaults that make each built-in what it is (any of them can be overridden at load time)
SETTINGS = {
    "sunspots": {"season": 11, "horizon": 11, "window": 33, "val_size": 40, "test_size": 40},
    "co2": {"season": 12, "horizon": 12, "window": 36, "val_size": 60, "test_size": 60},
    "airline": {"season": 12, "horizon": 12, "window": 24, "val_size": 24, "test_size": 24, "transform": "log"},
}


def package_file(package: str, relative: str, dataset: str) -> Path:
    """A data file inside an installed package, found without importing it; DataError naming the extra."""
    spec = importlib.util.find_spec(package)
    for root in (spec.submodule_search_locations or []) if spec else []:
        path = Path(root) / relative
        if path.is_file():
            return path
    raise DataError(f"dataset {dataset!r} is read from the {package!r} package, which is not installed (or lacks "
                    f"{relative}); install it with: pip install 'gridseq[forecast]'. Nothing is downloaded.")


@lru_cache(maxsize=None)
def raw_builtin(name: str) -> RawSeries:
    """The built-in series `name` in its original units (cached; arrays are read-only)."""
    if name == "sunspots":
        raw = read_series_csv(package_file("statsmodels", "datasets/sunspots/sunspots.csv", name))
        raw = RawSeries("sunspots", tuple(str(int(float(t))) for t in raw.times), raw.values, raw.columns,
                        raw.time_column, raw.frequency)
    elif name == "airline":
        raw = read_series_csv(package_file("aeon", "datasets/data/Airline/Airline.csv", name))
        raw = RawSeries("airline", raw.times, raw.values, raw.columns, raw.time_column, raw.frequency)
    elif name == "co2":
        raw = _co2_monthly(package_file("statsmodels", "datasets/co2/co2.csv", name))
    else:
        raise DataError(f"no built-in series {name!r}; built-in series: {', '.join(SETTINGS)}.")
    raw.values.setflags(write=False)
    return raw


def _co2_monthly(path: Path) -> RawSeries:
    """statsmodels' weekly CO2 (dates YYYYMMDD, gaps empty) → monthly means, empty months interpolated."""
    by_month: dict[str, list[float]] = defaultdict(list)
    with open(path, newline="", encoding="utf-8") as f:
        for row in list(csv.reader(f))[1:]:
            month = f"{row[0][:4]}-{row[0][4:6]}"
            by_month.setdefault(month, [])
            if row[1].strip():
                by_month[month].append(float(row[1]))
    months = sorted(by_month)
    first, last = (int(months[0][:4]) * 12 + int(months[0][5:]) - 1), (int(months[-1][:4]) * 12 + int(months[-1][5:]) - 1)
    times = [f"{m // 12:04d}-{m % 12 + 1:02d}" for m in range(first, last + 1)]  # every month, even one with no row
    values = np.array([[np.mean(by_month[t]) if by_month.get(t) else np.nan] for t in times])
    values = fill_missing(values, "interpolate", str(path), ("co2",), times)
    return RawSeries("co2", tuple(times), values, ("co2",), "month", "monthly")


def _load(name: str, **options) -> Dataset:
    settings = {**SETTINGS[name], **{k: v for k, v in options.items() if v is not None}}
    return series_dataset(raw_builtin(name), source=name, **settings)


@register_dataset("sunspots", kind="series", sizes=(186, 30, 30), num_classes=0,
                  description="yearly sunspot numbers 1700-2008, forecast 11 years (statsmodels)")
def sunspots(seed: int, view: str, *, window=None, horizon=None, season=None, val_size=None, test_size=None,
             transform=None, relative=None, stride=None, loss=None) -> Dataset:
    """Yearly sunspots as forecasting windows; `seed` is unused (the periods are chronological).

    Example:
        >>> ds = sunspots(0, "series")  # doctest: +SKIP
        >>> tuple(ds.train.x.shape), tuple(ds.test.y.shape)  # doctest: +SKIP
        ((186, 33, 1), (30, 11, 1))
    """
    return _load("sunspots", window=window, horizon=horizon, season=season, val_size=val_size, test_size=test_size,
                 transform=transform, relative=relative, stride=stride, loss=loss)


@register_dataset("co2", kind="series", sizes=(359, 49, 49), num_classes=0,
                  description="monthly Mauna Loa CO2 1958-2001, forecast 12 months (statsmodels)")
def co2(seed: int, view: str, *, window=None, horizon=None, season=None, val_size=None, test_size=None,
        transform=None, relative=None, stride=None, loss=None) -> Dataset:
    """Monthly CO2 as forecasting windows; `seed` is unused."""
    return _load("co2", window=window, horizon=horizon, season=season, val_size=val_size, test_size=test_size,
                 transform=transform, relative=relative, stride=stride, loss=loss)


@register_dataset("airline", kind="series", sizes=(61, 13, 13), num_classes=0,
                  description="monthly airline passengers 1949-1960, forecast 12 months (aeon)")
def airline(seed: int, view: str, *, window=None, horizon=None, season=None, val_size=None, test_size=None,
            transform=None, relative=None, stride=None, loss=None) -> Dataset:
    """Monthly airline passengers as forecasting windows; `seed` is unused."""
    return _load("airline", window=window, horizon=horizon, season=season, val_size=val_size, test_size=test_size,
                 transform=transform, relative=relative, stride=stride, loss=loss)


def load_series_file(path, seed: int, view: str, *, task: str = "forecast", time_column=None, value_columns=None,
                     targets=None, missing: str = "error", window=None, horizon=None, season=None,
                     val_size: int | float = 0.15, test_size: int | float = 0.15, transform: str = "none",
                     relative: bool = True, stride: int = 1, loss: str = "mse") -> Dataset:
    """A user's series CSV (time column + value columns) as a forecasting dataset.

    `gridseq.datasets.load(path, task="forecast", ...)` calls this; the options are those of
    `series_io.read_series_csv` and `series.series_dataset`. `seed` is unused (periods are chronological).
    """
    raw = read_series_csv(path, time_column=time_column, value_columns=value_columns, missing=missing)
    return series_dataset(raw, window=window, horizon=horizon, season=season, val_size=val_size, test_size=test_size,
                          targets=targets, transform=transform, relative=relative, stride=stride, loss=loss, source="csv")


def raw_for_spec(spec: dict) -> RawSeries:
    """The raw series a run was trained on, from its config.json data spec (a built-in name or a CSV path)."""
    name, options = spec["name"], spec.get("options", {})
    if name.lower() in SETTINGS:
        return raw_builtin(name.lower())
    return read_series_csv(name, time_column=options.get("time_column"), value_columns=options.get("value_columns"),
                           missing=options.get("missing", "error"))
