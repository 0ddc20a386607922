"""Forecasting datasets: one series cut into chronological periods and into (window → horizon) items.

The series is split in time, never shuffled: a training period, then a validation period, then a
test period at the end. An item is a window of `window` past steps, (W, F), and the next `horizon`
values of the target columns, (H, F_out). Evaluation is rolling-origin: every origin whose targets
lie wholly inside a period gives one item of that period (stride 1 by default); its inputs may reach
back into the previous period, exactly as a forecaster would have seen them at that time.

    time:   | ------------- train ------------- | ---- val ---- | ---- test ---- |
    test item at origin t:              [t-W, t) inputs  →  [t, t+H) targets, all in test

No leakage: the optional log transform, the z-score scaler (per column) and the MASE scale (the
in-sample seasonal-naive error) are computed from the training period alone; changing any value
after it changes no statistic and no training item.

The preprocessing record (`DatasetInfo.preprocessing`, stored in every run directory) holds all a
forecaster needs at predict time: columns, targets, window, horizon, season, transform, scaler.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from gridseq._validation import check_choice, check_positive_int
from gridseq.data.contract import Dataset, DatasetInfo, Split
from gridseq.data.readers.series_csv import RawSeries, default_season
from gridseq.errors import ConfigError, DataError

_logger = logging.getLogger(__name__)

TRANSFORMS = ("none", "log", "sqrt")
LOSSES = ("mse", "mae")


def resolve_size(size: int | float, n: int, name: str) -> int:
    """A period length: an int number of steps, or a float fraction of the series' `n` steps."""
    if isinstance(size, bool) or not isinstance(size, (int, float)):
        raise ConfigError(f"{name} must be a number of steps (int) or a fraction of the series (float in [0, 1)), got {size!r}.")
    if isinstance(size, float):
        if not 0 <= size < 1:
            raise ConfigError(f"{name} as a fraction must lie in [0, 1), got {size}; give an int for a number of steps.")
        return int(round(size * n))
    return check_positive_int(size, name, minimum=0)


def origins(start: int, end: int, window: int, horizon: int, stride: int = 1) -> np.ndarray:
    """The forecast origins t of a period [start, end): targets [t, t+H) inside it, inputs [t-W, t) >= 0."""
    return np.arange(max(start, window), end - horizon + 1, stride, dtype=np.int64)


def make_windows(scaled: np.ndarray, starts: np.ndarray, window: int, horizon: int, targets: list[int]) -> tuple[Tensor, Tensor]:
    """Items at `starts` (origins): x (N, W, F) = scaled[t-W:t], y (N, H, F_out) = scaled[t:t+H, targets]."""
    steps = np.arange(-window, horizon)  # relative positions of one item's inputs, then targets
    block = scaled[starts[:, None] + steps]  # (N, W+H, F): one gather for every item
    x = block[:, :window]  # (N, W, F)
    y = block[:, window:][:, :, targets]  # (N, H, F_out)
    return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.ascontiguousarray(y))


def encode(values: np.ndarray, record: dict[str, Any]) -> np.ndarray:
    """Original units (N, F) → the model's units: the transform, then the training z-score; float32."""
    v = np.asarray(values, dtype=np.float64)
    if record["transform"] == "log":
        if (v <= 0).any():
            raise DataError(f"transform='log' needs positive values, but the series has {v.min():g}; "
                            f"use transform='none'.")
        v = np.log(v)
    elif record["transform"] == "sqrt":
        if (v < 0).any():
            raise DataError(f"transform='sqrt' needs values >= 0, but the series has {v.min():g}; "
                            f"use transform='none'.")
        v = np.sqrt(v)
    mean, std = np.asarray(record["scaler"]["mean"]), np.asarray(record["scaler"]["std"])
    return ((v - mean) / std).astype(np.float32)


def decode(scaled: Tensor, record: dict[str, Any], columns: list[int] | None = None) -> Tensor:
    """The inverse of `encode` for a tensor (..., C) holding `columns` of the series (default: the targets)."""
    columns = record["target_index"] if columns is None else columns
    mean = torch.tensor([record["scaler"]["mean"][c] for c in columns], dtype=torch.float64, device=scaled.device)
    std = torch.tensor([record["scaler"]["std"][c] for c in columns], dtype=torch.float64, device=scaled.device)
    v = scaled.double() * std + mean
    if record["transform"] == "log":
        return v.exp()
    return v.clamp(min=0) ** 2 if record["transform"] == "sqrt" else v  # below 0 in sqrt units: a count of 0


def seasonal_naive_scale(values: np.ndarray, season: int) -> list[float]:
    """Per column of `values` (N, F): the mean absolute error of the seasonal-naive forecast
    y_t ≈ y_{t-m} inside `values` — MASE's denominator (Hyndman & Koehler 2006)."""
    return np.abs(values[season:] - values[:-season]).mean(axis=0).tolist()


def forecast_record(raw: RawSeries, train_end: int, val_end: int, *, window: int, horizon: int, season: int,
                    targets: list[str], transform: str, relative: bool, stride: int, source: str) -> dict[str, Any]:
    """The preprocessing record of a forecasting dataset; every statistic comes from the training period."""
    train = raw.values[:train_end]
    target_index = [raw.columns.index(t) for t in targets]
    record: dict[str, Any] = {
        "layout": "series", "source": source, "time_column": raw.time_column, "frequency": raw.frequency,
        "columns": list(raw.columns), "targets": list(targets), "target_index": target_index,
        "window": window, "horizon": horizon, "season": season, "stride": stride,
        "transform": transform, "relative": relative,
        "scaler": {"mean": [0.0] * len(raw.columns), "std": [1.0] * len(raw.columns)},
        "mase_scale": [seasonal_naive_scale(train, season)[i] for i in target_index],
        "periods": {name: [raw.times[a], raw.times[b - 1]] if b > a else None
                    for name, (a, b) in {"train": (0, train_end), "val": (train_end, val_end), "test": (val_end, len(raw))}.items()},
    }
    fitted = encode(train, record).astype(np.float64)  # the transform only, with the identity scaler
    std = fitted.std(axis=0)
    record["scaler"] = {"mean": fitted.mean(axis=0).tolist(), "std": np.where(std > 0, std, 1.0).tolist()}
    flat = [t for t, s in zip(targets, record["mase_scale"]) if not s > 0]
    if flat:
        raise DataError(f"{raw.name}: target {flat[0]!r} never changes over a season ({season} steps) in the "
                        f"training period, so MASE (scaled by that change) is undefined; check the data or the season.")
    return record


def series_dataset(
    raw: RawSeries,
    *,
    window: int | None = None,
    horizon: int | None = None,
    season: int | None = None,
    val_size: int | float = 0.15,
    test_size: int | float = 0.15,
    targets: list[str] | tuple[str, ...] | None = None,
    transform: str = "none",
    relative: bool = True,
    stride: int = 1,
    loss: str = "mse",
    source: str | None = None,
) -> Dataset:
    """A forecasting `Dataset` (kind "series", task "forecast") from one series.

    Args:
        raw: the series in original units.
        window: W, past steps per item. Default: max(2 * season, 3 * horizon, 8).
        horizon: H, steps to forecast (direct multi-step). Default: the season, or 1 without one.
        season: m, the seasonal period (seasonal-naive baseline, MASE scale). Default: from the frequency
            (12 monthly, 7 daily, 4 quarterly, 1 yearly or unknown).
        val_size: the validation period, steps (int) or a fraction of the series (float). Default: 0.15.
        test_size: the test period, likewise, at the end of the series. Default: 0.15.
        targets: the columns to forecast; the others are covariates (inputs only). Default: every column.
        transform: "none", "log" (for multiplicative seasonality; positive series only) or "sqrt" (counts:
            steadies a variance that grows with the level; values >= 0). Default: "none".
        relative: the model predicts the change from the window's last value (a learned correction
            of the naive forecast); lets it follow a trend beyond the training range. Default: True.
        stride: steps between consecutive origins. Default: 1 (every origin).
        loss: the training loss of the forecast task, "mse" or "mae" (in scaled units); recorded
            here so the command line can pick it (--data.loss=mae). Default: "mse".
        source: recorded as the data source. Default: raw.name.
    Returns:
        The Dataset; splits hold x (N, W, F) and y (N, H, F_out), both in scaled units.
    Raises:
        ConfigError: a bad option; DataError: a series too short for the periods and window.
    """
    n = len(raw)
    season = check_positive_int(season if season is not None else default_season(raw.frequency), "season")
    horizon = check_positive_int(horizon if horizon is not None else season, "horizon")
    window = check_positive_int(window if window is not None else max(2 * season, 3 * horizon, 8), "window", minimum=2)
    stride = check_positive_int(stride, "stride")
    check_choice(transform, "transform", TRANSFORMS)
    check_choice(loss, "loss", LOSSES)
    if not isinstance(relative, bool):
        raise ConfigError(f"relative must be True or False, got {relative!r}.")
    if window < season:
        raise ConfigError(f"window ({window}) must cover at least one season ({season} steps) so the seasonal-naive "
                          f"baseline can be computed from it; raise window or lower season.")
    targets = list(targets) if targets is not None else list(raw.columns)
    unknown = [t for t in targets if t not in raw.columns]
    if unknown or not targets:
        raise ConfigError(f"targets must name columns of {raw.name}: {', '.join(raw.columns)}; got {targets!r}.")
    val_n, test_n = resolve_size(val_size, n, "val_size"), resolve_size(test_size, n, "test_size")
    train_end, val_end = n - val_n - test_n, n - test_n
    for name, size in (("val", val_n), ("test", test_n)):
        if 0 < size < horizon:
            raise ConfigError(f"the {name} period ({size} steps) is shorter than the horizon ({horizon}), so it holds "
                              f"no complete forecast; make {name}_size at least {horizon} or 0.")
    if train_end < window + horizon or train_end <= season:
        raise DataError(
            f"{raw.name} has {n} steps; after the validation ({val_n}) and test ({test_n}) periods, {train_end} remain "
            f"for training, fewer than one window plus horizon ({window} + {horizon}). Use a shorter window or "
            f"horizon, or smaller val_size/test_size."
        )
    record = forecast_record(raw, train_end, val_end, window=window, horizon=horizon, season=season, targets=targets,
                             transform=transform, relative=relative, stride=stride, source=source or raw.name)
    record["loss"] = loss
    scaled = encode(raw.values, record)
    splits = {}
    for name, (a, b) in {"train": (0, train_end), "val": (train_end, val_end), "test": (val_end, n)}.items():
        x, y = make_windows(scaled, origins(a, b, window, horizon, stride), window, horizon, record["target_index"])
        splits[name] = Split(x, y)
    info = DatasetInfo(name=raw.name, kind="series", input_shape=(window, len(raw.columns)), num_classes=0,
                       class_names=(), task="forecast", preprocessing=record)
    _logger.info("%s: %d/%d/%d windows (train/val/test), window %d, horizon %d, season %d",
                 raw.name, len(splits["train"]), len(splits["val"]), len(splits["test"]), window, horizon, season)
    return Dataset(info, splits["train"], splits["val"], splits["test"])


def history_window(values: np.ndarray, record: dict[str, Any]) -> Tensor:
    """The model input for forecasting after the end of `values` (N, F) in original units: (1, W, F)."""
    window = record["window"]
    if values.ndim != 2 or values.shape[1] != len(record["columns"]):
        raise DataError(f"the history needs the columns {record['columns']} ({len(record['columns'])} per step), "
                        f"got an array of shape {values.shape}.")
    if len(values) < window:
        raise DataError(f"the model reads the last {window} steps, but the history has only {len(values)}.")
    if not np.isfinite(values[-window:]).all():
        raise DataError("the last window of the history has missing or infinite values; fill them first.")
    return torch.from_numpy(encode(values[-window:], record))[None]  # (1, W, F)


def check_record(record: dict[str, Any]) -> None:
    """DataError unless `record` is a forecasting record (a run trained on a series)."""
    if record.get("layout") != "series" or "horizon" not in record:
        raise DataError("this run was not trained to forecast (its data has no series record); train one on a series, "
                        "e.g. `gridseq train sunspots --model lstm`.")
    if not math.isfinite(sum(record["scaler"]["std"])):
        raise DataError("the run's scaler is corrupt (non-finite std).")
