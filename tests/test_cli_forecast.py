"""`gridseq train <series.csv> --data.task=forecast` then `gridseq forecast RUN_DIR`: the forecast
printed, saved as CSV (continuing the time axis) and plotted."""

import csv
import importlib.util
import json

import numpy as np
import pytest

from gridseq.cli import main


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny GRU trained for 2 epochs on a monthly series with a trend and a season."""
    root = tmp_path_factory.mktemp("forecast")
    path = root / "sales.csv"
    months = [f"{2000 + i // 12}-{i % 12 + 1:02d}" for i in range(120)]
    values = 50 + 10 * np.sin(2 * np.pi * np.arange(120) / 12) + 0.3 * np.arange(120)
    path.write_text("month,sales\n" + "".join(f"{m},{v:.3f}\n" for m, v in zip(months, values)))
    run_dir = root / "run"
    code = main(["train", str(path), "--model", "gru", "--data.task=forecast", "--data.horizon=6", "--epochs", "2",
                 "--hidden-size", "8", "--run-dir", str(run_dir), "--no-progress"])
    assert code == 0
    return run_dir, path


def test_training_a_series_csv_writes_baselines(run):
    metrics = json.loads((run[0] / "metrics.json").read_text())
    assert set(metrics["baselines"]) == {"naive", "seasonal_naive", "drift"}
    assert "mase" in metrics["test"]


def test_forecast_prints_and_saves_the_next_steps(run, capsys, tmp_path):
    run_dir, _ = run
    out, png = tmp_path / "f.csv", tmp_path / "f.png"
    capsys.readouterr()
    assert main(["forecast", str(run_dir), "--out", str(out), "--plot", str(png)]) == 0
    printed = capsys.readouterr().out
    rows = list(csv.DictReader(out.open()))
    assert [r["month"] for r in rows] == ["2010-01", "2010-02", "2010-03", "2010-04", "2010-05", "2010-06"]
    assert all(np.isfinite(float(r["sales"])) for r in rows) and "2010-06" in printed
    if importlib.util.find_spec("matplotlib") is not None:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_longer_horizon_is_recursive_and_json_is_available(run, capsys):
    capsys.readouterr()
    assert main(["forecast", str(run[0]), "--horizon", "15", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 15 and rows[-1]["month"] == "2011-03"


def test_forecast_from_another_history_csv(run, capsys, tmp_path):
    other = tmp_path / "other.csv"
    other.write_text("month,sales\n" + "".join(f"1990-{m:02d},{100 + m}\n" for m in range(1, 13)) +
                     "".join(f"1991-{m:02d},{112 + m}\n" for m in range(1, 13)) +
                     "".join(f"1992-{m:02d},{124 + m}\n" for m in range(1, 13)))
    capsys.readouterr()
    assert main(["forecast", str(run[0]), "--input", str(other), "--horizon", "2", "--json"]) == 0
    assert [r["month"] for r in json.loads(capsys.readouterr().out)] == ["1993-01", "1993-02"]


@pytest.mark.parametrize("args, fragment", [
    (["--input", "missing.csv"], "does not exist"),
    (["--plot", "f.jpg"], "PNG"),
])
def test_forecast_errors_are_one_line(run, capsys, args, fragment):
    capsys.readouterr()
    assert main(["forecast", str(run[0]), *args]) == 2
    err = capsys.readouterr().err
    assert fragment in err and err.count("\n") == 1


def test_a_history_shorter_than_the_window_is_a_clear_error(run, capsys, tmp_path):
    short = tmp_path / "short.csv"
    short.write_text("month,sales\n2000-01,1\n2000-02,2\n")
    capsys.readouterr()
    assert main(["forecast", str(run[0]), "--input", str(short)]) == 2
    assert "reads the last" in capsys.readouterr().err
