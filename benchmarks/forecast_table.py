"""Forecasting MASE on the test period: gridseq's models beside naive baselines and statsmodels' ARIMA/ETS.

Every model is trained exactly as `gridseq train DATASET --model MODEL --seed SEED` would with no other
flag (settings from `gridseq.defaults`, chosen on the validation period). ARIMA and ETS are fitted on
the training period only, their configuration picked from a small grid by validation MASE; then, like
the networks, they forecast from every test origin with the parameters fixed (the state is updated
with the data up to the origin — the information a network sees in its window, and more).
The baselines (naive, seasonal-naive, drift) are those gridseq computes on the same test windows.

    python benchmarks/forecast_table.py                           # sunspots and airline, 4 models x 3 seeds
    python benchmarks/forecast_table.py --datasets airline --models lstm --seeds 0

Writes benchmarks/results/forecast_table.json and forecast_table.md. Needs the `forecast` extra.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from gridseq import datasets, defaults, models, train
from gridseq.data.builtin.forecast_series import raw_builtin

DATASETS = ("sunspots", "airline")
MODELS = ("lstm", "gru", "tcn", "mlp")
RESULTS = Path(__file__).parent / "results"


# --select: data options tried per dataset, every model and seed, scored on the validation period only
GRID = {
    "sunspots": [{}, {"transform": "sqrt"}, {"window": 55}, {"transform": "sqrt", "window": 55}],
}


def run_model(name: str, model_name: str, seed: int, data_options: dict | None = None) -> dict:
    settings = defaults.lookup(name, model_name)
    data = datasets.load(name, seed=seed, **(data_options or {}))
    train.seed_everything(seed)
    model = models.create_for(model_name, data.info, **settings["model"])
    started = time.perf_counter()
    result = train.fit(model, data, seed=seed, progress=False, **settings["train"])
    return {"val": result.val["mase"], "test": result.test["mase"], "seconds": time.perf_counter() - started,
            "baselines": {k: v["mase"] for k, v in result.baselines.items()}}


def rolling_mase(forecast, y: np.ndarray, start: int, end: int, rec: dict) -> float:
    """MASE of `forecast(t) -> (H,)` over every origin t of the period [start, end), as gridseq's windows."""
    h, w = rec["horizon"], rec["window"]
    errors = [np.abs(forecast(t) - y[t:t + h]) for t in range(max(start, w), end - h + 1)]
    return float(np.mean(errors) / rec["mase_scale"][0])


def statsmodels_rows(name: str) -> dict[str, dict]:
    """ARIMA and ETS, each tuned on validation MASE; their val and test MASE."""
    from statsmodels.tsa.arima.model import ARIMA
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    rec = datasets.load(name).info.preprocessing
    y = raw_builtin(name).values[:, 0].astype(float)
    n, m, h = len(y), rec["season"], rec["horizon"]
    times = list(raw_builtin(name).times)
    train_end, val_end = times.index(rec["periods"]["val"][0]), times.index(rec["periods"]["test"][0])
    log = rec["transform"] == "log"
    f, inv = (np.log, np.exp) if log else ((lambda v: v), (lambda v: v))

    def arima(order, seasonal):
        res = ARIMA(f(y[:train_end]), order=order, seasonal_order=seasonal,
                    trend="c" if order[1] == 0 and seasonal[1] == 0 else "n").fit()
        return lambda t: inv(res.apply(f(y[:t])).forecast(h))

    def ets(trend, damped, seasonal):
        kw = dict(trend=trend, damped_trend=damped, seasonal=seasonal, seasonal_periods=m if seasonal else None)
        res = ExponentialSmoothing(f(y[:train_end]), initialization_method="estimated", **kw).fit()
        p = res.params
        known = dict(initial_level=p["initial_level"], initial_trend=p["initial_trend"] if trend else None,
                     initial_seasonal=p["initial_seasons"] if seasonal else None)
        fixed = {k: p[k] for k in ("smoothing_level", "smoothing_trend", "smoothing_seasonal", "damping_trend")
                 if not (isinstance(p[k], float) and np.isnan(p[k])) and p[k] is not None}

        def forecast(t):
            model = ExponentialSmoothing(f(y[:t]), initialization_method="known", **known, **kw)
            return inv(model.fit(optimized=False, **fixed).forecast(h))
        return forecast

    seasonal_orders = [(0, 0, 0, 0)] if m == 1 or name == "sunspots" else [(0, 1, 1, m), (1, 1, 0, m)]
    arima_grid = [((p, d, q), s) for p, d, q in [(2, 0, 0), (3, 0, 0), (9, 0, 0), (2, 0, 1), (0, 1, 1), (1, 1, 0)]
                  for s in seasonal_orders]
    # (trend, damped, seasonal); a damped trend needs a trend
    ets_grid = [(t, d, s) for t, d, s in itertools.product((None, "add"), (False, True), (None, "add")) if not (d and t is None)]
    out = {}
    for label, grid, make in (("ARIMA", arima_grid, arima), ("ETS", ets_grid, ets)):
        best = None
        for cfg in grid:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    fc = make(*cfg)
                    val = rolling_mase(fc, y, train_end, val_end, rec)
                except (ValueError, np.linalg.LinAlgError):
                    continue
            if best is None or val < best[0]:
                best = (val, cfg, fc)
        val, cfg, fc = best
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            test = rolling_mase(fc, y, val_end, n, rec)
        out[label] = {"config": str(cfg), "val": val, "test": test}
    return out


def table(results: dict) -> str:
    lines = ["| dataset | method | val MASE | test MASE |", "| --- | --- | ---: | ---: |"]
    for name, r in results.items():
        for model, runs in r["models"].items():
            val, test = [x["val"] for x in runs], [x["test"] for x in runs]
            sd = f" ± {statistics.stdev(test):.3f}" if len(test) > 1 else ""
            lines.append(f"| {name} | gridseq {model} ({len(runs)} seeds) | {statistics.mean(val):.3f} | {statistics.mean(test):.3f}{sd} |")
        for label, s in r["statsmodels"].items():
            lines.append(f"| {name} | statsmodels {label} {s['config']} | {s['val']:.3f} | {s['test']:.3f} |")
        first = next(iter(r["models"].values()))[0]
        for base, value in first["baselines"].items():
            lines.append(f"| {name} | baseline {base} | | {value:.3f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS))
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--select", action="store_true",
                        help="try GRID's data options for every model (mean validation MASE over the seeds picks)")
    args = parser.parse_args()
    torch.set_num_threads(1)  # tiny models: one thread is faster on a shared 2-core machine
    if args.select:
        return select(args)
    results = {}
    for name in args.datasets:
        results[name] = {"models": {}, "statsmodels": statsmodels_rows(name)}
        for model_name in args.models:
            results[name]["models"][model_name] = [run_model(name, model_name, s) for s in args.seeds]
            runs = results[name]["models"][model_name]
            print(f"{name} {model_name}: test MASE {statistics.mean(r['test'] for r in runs):.3f}", flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "forecast_table.json").write_text(json.dumps(results, indent=2))
    (RESULTS / "forecast_table.md").write_text(table(results))
    print(table(results))


def select(args) -> None:
    """Every (model, data options) of GRID over the seeds; the lowest mean validation MASE wins. Test MASE
    is printed beside it for the record, never used to choose."""
    rows = []
    for name in args.datasets:
        for options in GRID.get(name, [{}]):
            for model_name in args.models:
                runs = [run_model(name, model_name, s, options) for s in args.seeds]
                row = {"dataset": name, "model": model_name, "options": options,
                       "val": statistics.mean(r["val"] for r in runs), "test": statistics.mean(r["test"] for r in runs),
                       "test_std": statistics.pstdev(r["test"] for r in runs), "baselines": runs[0]["baselines"]}
                rows.append(row)
                print(f"{name} {model_name} {options}: val MASE {row['val']:.3f}, test {row['test']:.3f} ± {row['test_std']:.3f}", flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "forecast_select.json").write_text(json.dumps(rows, indent=2))
    for name in args.datasets:
        mine = sorted((r for r in rows if r["dataset"] == name), key=lambda r: r["val"])
        best = mine[0]
        print(f"{name}: chosen on validation: {best['model']} {best['options']} (val {best['val']:.3f}) -> test MASE "
              f"{best['test']:.3f} ± {best['test_std']:.3f}; seasonal-naive {best['baselines']['seasonal_naive']:.3f}")


if __name__ == "__main__":
    main()
