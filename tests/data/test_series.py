"""Forecasting data: chronological periods, rolling-origin windows, no leakage from later periods,
series CSVs, the time axis, and the built-in series."""

import importlib.util

import numpy as np
import pytest
import torch

import gridseq.datasets as gd
from gridseq.data import builtin as catalog
from gridseq.data.readers.series_csv import RawSeries, future_times, infer_frequency, read_series_csv
from gridseq.data.series import decode, encode, origins, series_dataset
from gridseq.errors import ConfigError, DataError

needs_statsmodels = pytest.mark.skipif(importlib.util.find_spec("statsmodels") is None, reason="needs statsmodels")
needs_aeon = pytest.mark.skipif(importlib.util.find_spec("aeon") is None, reason="needs aeon")


def raw(values, name="toy", frequency="steps"):
    values = np.asarray(values, dtype=np.float64).reshape(len(values), -1)
    cols = tuple(f"v{j}" for j in range(values.shape[1]))
    return RawSeries(name, tuple(str(i) for i in range(len(values))), values, cols, "t", frequency)


def test_windows_are_the_series_values_in_order_and_targets_lie_in_their_period():
    ds = series_dataset(raw(np.arange(40.0)), window=4, horizon=3, season=2, val_size=8, test_size=8, relative=False)
    rec = ds.info.preprocessing
    x = decode(ds.train.x, rec, [0])[..., 0]  # (N, W) back in original units
    y = decode(ds.train.y, rec)[..., 0]  # (N, H)
    # train period [0, 24): origins 4..21, each item = 4 past values then the next 3
    assert len(ds.train) == 18
    assert x[0].tolist() == pytest.approx([0, 1, 2, 3], abs=1e-5)
    assert y[0].tolist() == pytest.approx([4, 5, 6], abs=1e-5)
    assert float(y[-1, -1]) == pytest.approx(23.0)  # the last training target is the period's last step
    # test period [32, 40): every origin whose 3 targets are inside it; inputs reach back into val
    test_x, test_y = decode(ds.test.x, rec, [0])[..., 0], decode(ds.test.y, rec)[..., 0]
    assert len(ds.test) == 6
    assert float(test_y[0, 0]) == pytest.approx(32.0) and float(test_y[-1, -1]) == pytest.approx(39.0)
    assert test_x[0].tolist() == pytest.approx([28, 29, 30, 31], abs=1e-5)
    assert rec["periods"] == {"train": ["0", "23"], "val": ["24", "31"], "test": ["32", "39"]}


def test_origins_respect_the_window_and_the_stride():
    assert origins(0, 10, 4, 2).tolist() == [4, 5, 6, 7, 8]
    assert origins(10, 16, 4, 3, stride=2).tolist() == [10, 12]
    assert origins(10, 12, 4, 3).tolist() == []


def test_changing_the_test_and_val_periods_changes_no_statistic_and_no_training_item():
    rng = np.random.default_rng(0)
    base = 10 + rng.normal(size=(60, 2)).cumsum(axis=0) ** 2
    changed = base.copy()
    changed[40:] = rng.uniform(1e3, 1e4, size=(20, 2))  # wild values in val and test only
    kw = dict(window=6, horizon=2, season=3, val_size=10, test_size=10, transform="log")
    a, b = series_dataset(raw(base), **kw), series_dataset(raw(changed), **kw)
    ra, rb = a.info.preprocessing, b.info.preprocessing
    assert ra["scaler"] == rb["scaler"] and ra["mase_scale"] == rb["mase_scale"]
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.train.y, b.train.y)
    assert not torch.equal(a.test.y, b.test.y)  # the change did reach the test items


def test_scaler_comes_from_the_training_period():
    values = np.r_[np.full(30, 5.0) + np.arange(30) % 2, np.full(10, 1000.0)]
    ds = series_dataset(raw(values), window=4, horizon=1, season=3, val_size=0, test_size=10)
    assert ds.info.preprocessing["scaler"]["mean"] == [pytest.approx(5.5)]
    assert ds.info.preprocessing["scaler"]["std"] == [pytest.approx(0.5)]
    assert ds.info.preprocessing["mase_scale"] == [pytest.approx(1.0)]  # |y_t - y_{t-3}| = 1 in training


def test_a_training_period_without_seasonal_change_is_a_clear_error():
    values = np.r_[np.full(30, 5.0) + np.arange(30) % 2, np.arange(10.0)]
    with pytest.raises(DataError, match="MASE"):
        series_dataset(raw(values), window=4, horizon=1, season=2, val_size=0, test_size=10)


def test_encode_and_decode_are_inverse_with_the_log_transform():
    ds = series_dataset(raw(np.linspace(1, 50, 40)), window=4, horizon=2, season=1, transform="log")
    rec = ds.info.preprocessing
    values = np.array([[3.0], [7.5], [42.0]])
    assert np.allclose(decode(torch.from_numpy(encode(values, rec)), rec).numpy(), values, rtol=1e-6)
    with pytest.raises(DataError, match="positive"):
        encode(np.array([[0.0]]), rec)


def test_the_sqrt_transform_round_trips_counts_and_maps_negative_outputs_to_zero():
    ds = series_dataset(raw(np.abs(np.sin(np.arange(60) / 3)) * 100), window=10, horizon=2, season=10, transform="sqrt")
    rec = ds.info.preprocessing
    values = np.array([[0.0], [2.25], [81.0]])
    assert np.allclose(decode(torch.from_numpy(encode(values, rec)), rec).numpy(), values, atol=1e-4)
    below = torch.tensor([[(-1.0 - rec["scaler"]["mean"][0]) / rec["scaler"]["std"][0]]])  # sqrt units: -1
    assert decode(below, rec).item() == 0.0
    with pytest.raises(DataError, match=">= 0"):
        encode(np.array([[-1.0]]), rec)


def test_covariates_are_inputs_and_targets_are_outputs():
    values = np.stack([np.arange(30.0), 100 + np.arange(30.0)], axis=1)
    ds = series_dataset(raw(values), window=5, horizon=2, season=1, targets=["v1"], val_size=0, test_size=4)
    assert tuple(ds.train.x.shape[1:]) == (5, 2) and tuple(ds.train.y.shape[1:]) == (2, 1)
    assert ds.info.output_size == 2 and ds.info.preprocessing["target_index"] == [1]
    assert decode(ds.train.y, ds.info.preprocessing)[0, :, 0].tolist() == pytest.approx([105.0, 106.0])


@pytest.mark.parametrize("kw, match", [
    (dict(window=3, season=4), "at least one season"),
    (dict(test_size=2, horizon=3), "shorter than the horizon"),
    (dict(targets=["nope"]), "targets must name"),
    (dict(transform="box-cox"), "transform"),
    (dict(val_size=1.5), "fraction"),
])
def test_bad_options_are_config_errors(kw, match):
    with pytest.raises(ConfigError, match=match):
        series_dataset(raw(np.arange(40.0)), **{"window": 4, "horizon": 1, "season": 1, **kw})


def test_a_series_too_short_for_its_periods_says_what_to_change():
    with pytest.raises(DataError, match="shorter window"):
        series_dataset(raw(np.arange(20.0)), window=12, horizon=6, season=1, val_size=6, test_size=6)


def test_series_csv_sorted_by_time_with_gaps_interpolated(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("month,sales,price\n2020-03,30,1\n2020-01,10,1\n2020-02,,2\n2020-04,40,2\n")
    with pytest.raises(DataError, match="missing='interpolate'"):
        read_series_csv(path)
    r = read_series_csv(path, missing="interpolate")
    assert r.times == ("2020-01", "2020-02", "2020-03", "2020-04") and r.frequency == "monthly"
    assert r.values[:, 0].tolist() == [10, 20, 30, 40] and r.columns == ("sales", "price")


def test_series_csv_errors_name_the_problem(tmp_path):
    dup = tmp_path / "dup.csv"
    dup.write_text("t,v\n1,1\n1,2\n")
    with pytest.raises(DataError, match="more than once"):
        read_series_csv(dup)
    text = tmp_path / "text.csv"
    text.write_text("t,v\n1,1\n2,high\n")
    with pytest.raises(DataError, match="line 3.*not a number"):
        read_series_csv(text)
    with pytest.raises(DataError, match="no value column 'x'"):
        read_series_csv(text, value_columns=["x"])


def test_datasets_load_reads_a_series_csv_with_task_forecast(tmp_path):
    path = tmp_path / "daily.csv"
    days = np.arange(np.datetime64("2021-01-01"), np.datetime64("2021-04-01"))
    path.write_text("day,visits\n" + "".join(f"{d},{100 + i % 7 * 3 + i * 0.5}\n" for i, d in enumerate(days)))
    ds = gd.load(str(path), task="forecast", horizon=3)
    rec = ds.info.preprocessing
    assert ds.info.task == "forecast" and ds.info.kind == "series"
    assert rec["frequency"] == "daily" and rec["season"] == 7 and rec["window"] == 14 and rec["horizon"] == 3


@pytest.mark.parametrize("times, freq, nxt", [
    (["1999", "2000"], "yearly", ["2001", "2002"]),
    (["2000-11", "2000-12"], "monthly", ["2001-01", "2001-02"]),
    (["2020-01-01", "2020-01-08"], "weekly", ["2020-01-15", "2020-01-22"]),
    (["2020-01-30", "2020-01-31"], "daily", ["2020-02-01", "2020-02-02"]),
    (["a", "b"], "steps", ["+1", "+2"]),
])
def test_the_time_axis_continues_in_its_own_style(times, freq, nxt):
    assert infer_frequency(times) == freq
    assert future_times(times, freq, 2) == nxt


@needs_statsmodels
@pytest.mark.parametrize("name", ["sunspots", "co2"])
def test_builtin_series_match_their_catalog_sizes(name):
    ds = gd.load(name)
    assert (len(ds.train), len(ds.val), len(ds.test)) == catalog.entry(name).sizes
    assert ds.info.task == "forecast" and ds.info.output_size == ds.info.preprocessing["horizon"]


@needs_statsmodels
def test_sunspots_periods_and_options():
    rec = gd.load("sunspots").info.preprocessing
    assert rec["periods"]["test"] == ["1969", "2008"] and rec["season"] == 11 and rec["frequency"] == "yearly"
    assert gd.load("sunspots", horizon=3, window=20).train.y.shape[1] == 3


@needs_aeon
def test_airline_is_read_from_aeons_file():
    ds = gd.load("airline")
    assert (len(ds.train), len(ds.val), len(ds.test)) == catalog.entry("airline").sizes
    assert ds.info.preprocessing["transform"] == "log"
    assert decode(ds.test.y, ds.info.preprocessing)[-1, -1, 0].item() == pytest.approx(432.0)  # Dec 1960
