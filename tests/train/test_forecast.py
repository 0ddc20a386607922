"""The forecast task: metrics against hand computation, baselines, the relative (change-from-last)
forward pass, shapes, and training end to end with the baselines in metrics.json."""

import importlib.util
import json
import math

import numpy as np
import pytest
import torch
from torch import nn

import gridseq.datasets as gd
from gridseq import models, tasks, train
from gridseq.data.contract import DatasetInfo
from gridseq.data.readers.series_csv import RawSeries
from gridseq.data.series import series_dataset
from gridseq.errors import ConfigError, DataError, ShapeError
from gridseq.tasks.forecast import ForecastMetrics, baseline_forecasts


def raw(values):
    values = np.asarray(values, dtype=np.float64).reshape(len(values), -1)
    return RawSeries("toy", tuple(map(str, range(len(values)))), values, tuple(f"v{j}" for j in range(values.shape[1])), "t", "steps")


def identity_record(mase_scale=2.0, horizon=2):
    return {"layout": "series", "horizon": horizon, "targets": ["v"], "target_index": [0], "columns": ["v"],
            "scaler": {"mean": [0.0], "std": [1.0]}, "transform": "none", "mase_scale": [mase_scale],
            "relative": False, "season": 1, "window": 2}


def test_metrics_match_a_hand_computation():
    m = ForecastMetrics(identity_record(mase_scale=2.0))
    pred = torch.tensor([[[1.0], [2.0]], [[0.0], [4.0]]])  # (B=2, H=2, 1)
    true = torch.tensor([[[2.0], [2.0]], [[0.0], [1.0]]])
    m.add(pred, true)
    got = m.compute(with_loss=False)
    # errors 1, 0, 0, 3
    assert got["mae"] == pytest.approx(1.0)
    assert got["rmse"] == pytest.approx(math.sqrt(10 / 4))
    # sMAPE terms 2·1/3, 0, 0 (0/0 counts 0), 2·3/5
    assert got["smape"] == pytest.approx(100 * (2 / 3 + 1.2) / 4)
    assert got["mase"] == pytest.approx(1.0 / 2.0)


def test_metrics_accumulate_over_batches_and_survive_a_state_dict_round_trip():
    rec = identity_record()
    a, b = ForecastMetrics(rec), ForecastMetrics(rec)
    x = torch.randn(6, 2, 1)
    y = torch.randn(6, 2, 1)
    a.add(x, y)
    b.add(x[:4], y[:4])
    c = ForecastMetrics(rec)
    c.load_state_dict(b.state_dict())
    c.add(x[4:], y[4:])
    assert c.compute(with_loss=False) == pytest.approx(a.compute(with_loss=False))


def test_baselines_on_a_linear_series_are_exact_where_they_should_be():
    # y = 2t: drift is perfect, naive is off by 2h, seasonal-naive (m=2) by 4, 4, 8
    ds = series_dataset(raw(2.0 * np.arange(40)), window=4, horizon=3, season=2, val_size=8, test_size=8)
    base = tasks.for_data(ds.info).baselines(ds.test)
    assert set(base) == {"naive", "seasonal_naive", "drift"}
    assert base["drift"]["mae"] == pytest.approx(0.0, abs=1e-4)
    assert base["naive"]["mae"] == pytest.approx(4.0, rel=1e-5)
    assert base["seasonal_naive"]["mae"] == pytest.approx(16 / 3, rel=1e-5)
    assert base["naive"]["mase"] == pytest.approx(4.0 / 4.0, rel=1e-5)  # in-sample |y_t - y_{t-2}| = 4


def test_seasonal_naive_repeats_the_last_season():
    history = torch.tensor([[[1.0], [5.0], [2.0], [6.0], [3.0]]])  # season 3: the last one is 2, 6, 3
    f = baseline_forecasts(history, 7, 3)["seasonal_naive"][0, :, 0].tolist()
    assert f == [2.0, 6.0, 3.0, 2.0, 6.0, 3.0, 2.0]


class Zero(nn.Module):
    topology = "many-to-one"

    def __init__(self, width):
        super().__init__()
        self.width = width
        self.seen = None

    def forward(self, x, lengths=None):
        self.seen = x
        return torch.zeros(x.shape[0], self.width)


def test_a_relative_model_that_predicts_no_change_is_the_naive_forecast():
    ds = series_dataset(raw(np.sin(np.arange(80) / 3) + 5), window=6, horizon=2, season=6, val_size=10, test_size=10)
    task = tasks.for_data(ds.info)
    model = Zero(2)
    metrics = train.evaluate(model, ds.test, info=ds.info)
    assert metrics["mae"] == pytest.approx(task.baselines(ds.test)["naive"]["mae"], rel=1e-5)
    assert torch.allclose(model.seen[:, -1, 0], torch.zeros(len(ds.test)))  # it saw the change from the last value


def test_output_of_the_wrong_width_is_a_shape_error_naming_the_horizon():
    ds = series_dataset(raw(np.arange(40.0)), window=4, horizon=3, season=1, relative=False)
    task = tasks.for_data(ds.info)
    with pytest.raises(ShapeError, match="horizon 3"):
        task.loss(torch.zeros(2, 5), ds.train.batch(slice(0, 2)))
    assert tuple(task._shape(torch.zeros(2, 3)).shape) == (2, 3, 1)


def test_the_task_needs_series_info_and_series_targets():
    with pytest.raises(ConfigError, match="series record"):
        tasks.get("forecast")
    ds = series_dataset(raw(np.arange(40.0)), window=4, horizon=3, season=1)
    bad = type(ds.train)(ds.train.x, torch.zeros(len(ds.train), dtype=torch.int64))
    with pytest.raises(DataError, match=r"\(N, 3, 1\)"):
        tasks.for_data(ds.info).check_split(bad, "train")
    assert ds.info.to_json() == DatasetInfo.from_json(ds.info.to_json()).to_json()


def test_models_build_a_direct_head_from_the_series_info():
    ds = series_dataset(raw(np.stack([np.arange(50.0), np.arange(50.0) ** 0.5], 1)), window=8, horizon=4, season=2)
    for name in ("lstm", "gru", "tcn", "mlp", "cnn"):
        model = models.create_for(name, ds.info)
        assert model(ds.train.x[:3]).shape == (3, 8), name  # 4 steps × 2 targets


def test_fit_writes_the_baselines_beside_the_test_metrics(tmp_path):
    t = np.arange(160)
    ds = series_dataset(raw(10 + np.sin(2 * np.pi * t / 12) + 0.01 * t), window=24, horizon=6, season=12,
                        val_size=24, test_size=24)
    torch.manual_seed(0)
    model = models.create_for("gru", ds.info, hidden_size=8)
    result = train.fit(model, ds, epochs=2, batch_size=32, run_dir=tmp_path / "run", progress=False)
    stored = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert set(stored["test"]) == {"loss", "mae", "rmse", "smape", "mase"}
    assert stored["baselines"] == result.baselines
    assert set(stored["baselines"]) == {"naive", "seasonal_naive", "drift"}
    # a clean season plus a trend: seasonal-naive is off by exactly its in-sample error (MASE 1), naive far more
    assert stored["baselines"]["seasonal_naive"]["mase"] == pytest.approx(1.0, rel=1e-5)
    assert stored["baselines"]["naive"]["mase"] > 5
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["task"]["name"] == "forecast" and config["task"]["primary"] == "mase"


def test_forecast_beyond_the_horizon_is_recursive_and_needs_no_covariates():
    ds = series_dataset(raw(np.arange(60.0)), window=6, horizon=2, season=1)
    task = tasks.for_data(ds.info)
    out = task.forecast(Zero(2), np.arange(60.0)[:, None], 5)  # no change, applied recursively
    assert out.shape == (5, 1) and np.allclose(out, 59.0, atol=1e-4)
    cov = series_dataset(raw(np.stack([np.arange(60.0), np.arange(60.0) % 5], 1)), window=6, horizon=2, season=1,
                         targets=["v0"])
    with pytest.raises(ConfigError, match="at most 2 steps"):
        tasks.for_data(cov.info).forecast(Zero(2), cov_history := np.ones((60, 2)), 3)
    assert tasks.for_data(cov.info).forecast(Zero(2), cov_history, 2).shape == (2, 1)


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("aeon") is None, reason="needs aeon (the airline file)")
def test_an_lstm_beats_naive_and_seasonal_naive_on_airline():
    # the defaults of `gridseq train airline --model lstm`; ~6 s. (On sunspots the margin over
    # seasonal-naive is within seed noise, so it would make a flaky test: see docs/timeseries.md.)
    data = gd.load("airline")
    train.seed_everything(0)
    model = models.create_for("lstm", data.info, hidden_size=64)
    result = train.fit(model, data, epochs=300, batch_size=32, lr=3e-3, seed=0, progress=False)
    assert result.test["mase"] < result.baselines["seasonal_naive"]["mase"]
    assert result.test["mase"] < result.baselines["naive"]["mase"]
