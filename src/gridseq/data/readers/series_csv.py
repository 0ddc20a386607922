"""Reading time series for forecasting: a CSV with a time column and value columns, the time axis
(its frequency, its season, the labels of future steps) and gap filling.

A series CSV has a header row, one row per time step, a time column and one or more value columns:

    month,passengers,fuel_price
    1949-01,112,0.31
    1949-02,118,0.30

Rows are sorted by time (numerically when every time is a number, else as text, so ISO dates work);
a time that appears twice is an error. Empty or NaN values are an error unless `missing="interpolate"`
(linear between the neighbouring observed values; the ends take the nearest observed value).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gridseq._validation import check_choice
from gridseq.errors import DataError

MISSING = ("error", "interpolate")
# frequency name -> (typical step in days, the season a forecaster should use by default)
FREQUENCIES = {
    "hourly": (1 / 24, 24), "daily": (1, 7), "weekly": (7, 52), "monthly": (30.4, 12),
    "quarterly": (91.3, 4), "yearly": (365.25, 1), "steps": (None, 1),
}
_MONTH = re.compile(r"^(\d{4})-(\d{1,2})$")


@dataclass(frozen=True)
class RawSeries:
    """One (multivariate) series in its original units.

    Args:
        name: where it came from (a built-in name or a path).
        times: (N,) time labels as text, in order.
        values: (N, F) float64, one column per series.
        columns: F column names.
        time_column: the name of the time column.
        frequency: one of FREQUENCIES ("monthly", "yearly", ..., "steps" when unknown).
    """

    name: str
    times: tuple[str, ...]
    values: np.ndarray
    columns: tuple[str, ...]
    time_column: str
    frequency: str

    def __len__(self) -> int:
        return len(self.times)


def read_series_csv(
    path: str | Path,
    *,
    time_column: str | None = None,
    value_columns: list[str] | tuple[str, ...] | None = None,
    missing: str = "error",
) -> RawSeries:
    """Read a series CSV (see the module docstring).

    Args:
        path: the CSV file.
        time_column: the time column. Default: the first column.
        value_columns: the value columns, in this order. Default: every other column.
        missing: "error" (default) or "interpolate" for empty / NaN values.
    Returns:
        The RawSeries, sorted by time.
    Raises:
        DataError: a missing column, a non-numeric value, a duplicate time, a gap (with missing="error").
    """
    from gridseq.data.readers.csv_sequences import Table  # the CSV reader's table: header checks, line numbers

    check_choice(missing, "missing", MISSING)
    table = Table(path)
    time_column = time_column or table.header[0]
    if value_columns is None:
        value_columns = [c for c in table.header if c != time_column]
    value_columns = list(value_columns)
    table.require([time_column], "time")
    table.require(value_columns, "value")
    if not value_columns:
        raise DataError(f"{path}: no value columns besides the time column {time_column!r}; a series CSV needs "
                        f"a time column and one or more value columns.")
    times = table.column(time_column)
    values = np.empty((len(times), len(value_columns)), dtype=np.float64)
    for j, col in enumerate(value_columns):
        for i, cell in enumerate(table.column(col)):
            try:
                values[i, j] = float(cell) if cell else math.nan
            except ValueError:
                raise DataError(f"{path}, line {table.lines[i]}: column {col!r} holds {cell!r}, not a number; "
                                f"value columns must be numeric (pass value_columns=[...] to pick them).") from None
    order = _time_order(times)
    times = [times[i] for i in order]
    values = values[order]
    dup = next((t for a, t in zip(times, times[1:]) if a == t), None)
    if dup is not None:
        raise DataError(f"{path}: time {dup!r} appears more than once in column {time_column!r}; a series has "
                        f"one row per time step (aggregate duplicates first).")
    values = fill_missing(values, missing, f"{path}", value_columns, times)
    return RawSeries(str(path), tuple(times), values, tuple(value_columns), time_column, infer_frequency(times))


def _time_order(times: list[str]) -> list[int]:
    try:
        keys = [float(t) for t in times]
    except ValueError:
        keys = times  # ISO dates sort as text
    return sorted(range(len(times)), key=keys.__getitem__)


def fill_missing(values: np.ndarray, missing: str, where: str, columns, times) -> np.ndarray:
    """`values` (N, F) with NaNs filled by linear interpolation (missing="interpolate"), or DataError."""
    gaps = np.isnan(values)
    if not gaps.any():
        return values
    if missing == "error":
        i, j = map(int, np.argwhere(gaps)[0])
        raise DataError(f"{where}: column {columns[j]!r} has {int(gaps.sum())} missing value(s), the first at time "
                        f"{times[i]!r}; pass missing='interpolate' (--data.missing=interpolate) to fill gaps linearly.")
    out = values.copy()
    steps = np.arange(len(values))
    for j in range(values.shape[1]):
        ok = ~gaps[:, j]
        if not ok.any():
            raise DataError(f"{where}: column {columns[j]!r} has no values at all.")
        out[:, j] = np.interp(steps, steps[ok], values[ok, j])
    return out


def _parse_date(text: str) -> dt.datetime | None:
    m = _MONTH.match(text)
    if m:
        return dt.datetime(int(m.group(1)), int(m.group(2)), 1)
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        return None


def infer_frequency(times: list[str] | tuple[str, ...]) -> str:
    """The frequency of a time axis from its labels: "yearly" for integer years, "monthly" for
    YYYY-MM or month-spaced dates, ..., "steps" when the labels are not dates."""
    if len(times) < 2:
        return "steps"
    try:
        numbers = np.array([float(t) for t in times])
    except ValueError:
        numbers = None
    if numbers is not None:
        diffs = np.diff(numbers)
        years = np.all(numbers == np.round(numbers)) and 1000 <= numbers.min() and numbers.max() <= 3000
        return "yearly" if years and np.all(diffs == 1) else "steps"
    dates = [_parse_date(t) for t in times]
    if any(d is None for d in dates):
        return "steps"
    step = float(np.median([(b - a).total_seconds() / 86400 for a, b in zip(dates, dates[1:])]))
    named = [(name, days) for name, (days, _) in FREQUENCIES.items() if days is not None]
    name, days = min(named, key=lambda nd: abs(math.log(step / nd[1])) if step > 0 else math.inf)
    return name if abs(math.log(step / days)) < 0.25 else "steps"


def default_season(frequency: str) -> int:
    """The season a forecaster uses by default: 12 for monthly data, 7 for daily, 1 for yearly, ..."""
    return FREQUENCIES.get(frequency, (None, 1))[1]


def future_times(times: tuple[str, ...] | list[str], frequency: str, n: int) -> list[str]:
    """Labels for the `n` steps after the last of `times`, in the same style ("1961-01", "2009", ...);
    "+1", "+2", ... when the axis has no regular calendar step."""
    last = times[-1] if times else ""
    if frequency == "yearly":
        return [str(int(float(last)) + k) for k in range(1, n + 1)]
    if frequency == "monthly" or frequency == "quarterly":
        months = 1 if frequency == "monthly" else 3
        date = _parse_date(last)
        out = []
        for k in range(1, n + 1):
            total = date.year * 12 + date.month - 1 + k * months
            year, month = divmod(total, 12)
            out.append(f"{year:04d}-{month + 1:02d}" if _MONTH.match(last) else
                       date.replace(year=year, month=month + 1, day=min(date.day, 28)).isoformat()[: len(last)])
        return out
    if frequency in ("hourly", "daily", "weekly"):
        date = _parse_date(last)
        step = dt.timedelta(days=FREQUENCIES[frequency][0])
        return [(date + k * step).isoformat(sep=" ")[: max(len(last), 10)] for k in range(1, n + 1)]
    return [f"+{k}" for k in range(1, n + 1)]
