"""Forecasting: from a window of past values, predict the next H steps of the target series.

The model is many-to-one with a direct multi-step head: its output `(B, H·F_out)` is read as
`(B, H, F_out)` (`DatasetInfo.output_size` gives the width). With the dataset's `relative` setting,
the model sees each target column minus its last observed value and predicts the change from it —
a learned correction of the naive forecast, which follows a trend beyond the training range.

Loss is MSE (or MAE: the dataset option loss="mae") in the model's scaled units. Metrics are in the
series' ORIGINAL units (the scaler and any log transform undone), over every (item, step, target):

- `mae`: mean |y - ŷ|;  `rmse`: sqrt(mean (y - ŷ)²);
- `smape`: 100 · mean 2|y - ŷ| / (|y| + |ŷ|), in percent (0–200; a term with y = ŷ = 0 counts 0);
- `mase`: per target, MAE divided by the in-sample seasonal-naive MAE of the TRAINING period
  (season m recorded in the dataset's info), averaged over targets. Below 1 beats a one-season-back
  copy in-sample; the primary metric, lower is better.

`baselines(split)` scores naive (the last value), seasonal-naive (the value one season earlier) and
drift (the line through the window's first and last value) on the same windows; the trainer writes
them into metrics.json beside the model's test metrics.
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gridseq._validation import check_choice, check_positive_int
from gridseq.data.contract import Batch, DatasetInfo, Split
from gridseq.data.series import LOSSES, decode, history_window
from gridseq.errors import ConfigError, DataError, ShapeError
from gridseq.tasks.base import Metrics, Task, register
from gridseq.tasks.inputs import InputLimits, as_numbers

BASELINES = ("naive", "seasonal_naive", "drift")


class ForecastMetrics(Metrics):
    """Running error sums in original units, per target column, on the device of the outputs.

    Args:
        record: the dataset's preprocessing record (scaler, transform, targets, MASE scale).
    """

    def __init__(self, record: dict):
        self.record = record
        self.sums: Tensor | None = None  # (4, F_out) float64: |e|, e², sMAPE terms, and (row 3) the loss sum
        self.count = 0  # items
        self.steps = 0  # items × horizon

    def add(self, pred: Tensor, true: Tensor, loss: Tensor | None = None) -> None:
        """Add forecasts `pred` and truths `true`, both (B, H, F_out) in original units."""
        if self.sums is None:
            self.sums = torch.zeros(4, pred.shape[-1], dtype=torch.float64, device=pred.device)
        err = (pred - true).abs()
        denom = pred.abs() + true.abs()
        smape = torch.where(denom > 0, 2 * err / denom.clamp_min(1e-300), torch.zeros_like(err))
        self.sums[0] += err.sum(dim=(0, 1))
        self.sums[1] += err.square().sum(dim=(0, 1))
        self.sums[2] += smape.sum(dim=(0, 1))
        if loss is not None:
            self.sums[3, 0] += loss.detach().double() * len(pred)
        self.count += len(pred)
        self.steps += pred.shape[0] * pred.shape[1]

    def update(self, output: Tensor, batch: Batch, loss: Tensor) -> None:
        pred = decode(output.detach(), self.record)
        true = decode(batch.y, self.record)
        self.add(pred, true, loss)

    def compute(self, *, with_loss: bool = True) -> dict[str, float]:
        if self.sums is None or self.count == 0:
            return {}
        s = self.sums.cpu()
        n = self.steps
        scale = torch.tensor(self.record["mase_scale"], dtype=torch.float64)
        out = {"loss": float(s[3, 0]) / self.count} if with_loss else {}
        out.update({
            "mae": float(s[0].sum()) / (n * s.shape[1]),
            "rmse": math.sqrt(float(s[1].sum()) / (n * s.shape[1])),
            "smape": 100 * float(s[2].sum()) / (n * s.shape[1]),
            "mase": float((s[0] / n / scale).mean()),
        })
        return out

    def state_dict(self) -> dict[str, Tensor]:
        if self.sums is None:
            return {}
        return {"sums": self.sums.cpu(), "count": torch.tensor([self.count, self.steps])}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        if not state:
            self.__init__(self.record)
            return
        self.sums = state["sums"].clone()
        self.count, self.steps = (int(v) for v in state["count"])


def baseline_forecasts(history: Tensor, horizon: int, season: int) -> dict[str, Tensor]:
    """Naive, seasonal-naive and drift forecasts from windows `history` (B, W, C) in original units.

    Shape:
        - history: (B, W, C), W >= season and W >= 2.  - Each forecast: (B, H, C).

    Example:
        >>> h = torch.tensor([[[1.0], [2.0], [3.0], [4.0]]])  # one window: 1, 2, 3, 4
        >>> {k: v[0, :, 0].tolist() for k, v in baseline_forecasts(h, 3, 2).items()}
        {'naive': [4.0, 4.0, 4.0], 'seasonal_naive': [3.0, 4.0, 3.0], 'drift': [5.0, 6.0, 7.0]}
    """
    b, w, c = history.shape
    steps = torch.arange(1, horizon + 1, device=history.device)  # h = 1..H
    last = history[:, -1:, :]  # (B, 1, C)
    # y_{T+h} ≈ y_{T+h-m·k} with k = ceil(h/m): the same phase of the last observed season
    back = season * torch.div(steps + season - 1, season, rounding_mode="floor") - steps  # steps before T, 0 = last
    slope = (history[:, -1, :] - history[:, 0, :]) / (w - 1)  # (B, C)
    return {
        "naive": last.expand(b, horizon, c),
        "seasonal_naive": history[:, w - 1 - back, :],
        "drift": last + steps.view(1, -1, 1).to(history.dtype) * slope[:, None, :],
    }


@register
class ForecastTask(Task):
    """Direct multi-step forecasting of a series' target columns.

    Args:
        info: the dataset's info; its preprocessing record gives horizon, targets, scaler and season.
        loss: "mse" or "mae", in scaled units. Default: the dataset's recorded loss (series_dataset(loss=...)), else "mse".

    Shape:
        - batch.x: (B, W, F) scaled.  - output: (B, H·F_out) or (B, H, F_out).
        - batch.y: (B, H, F_out) scaled.  - predict: (B, H) for one target, else (B, H, F_out), original units.
    """

    name = "forecast"
    topologies = ("one-to-one", "many-to-one")
    primary = "mase"
    higher_is_better = False
    options: ClassVar[dict] = {"steps": None}
    batchable = False  # one recursive forecast per history
    has_classes = False
    not_exchangeable = ("its windows overlap, so a held-out window's steps are in the training folds; it keeps its "
                        "time-ordered validation period")

    def elsewhere(self, run_dir) -> str:
        return f"{run_dir} is a forecasting run; use `gridseq forecast {run_dir}` to forecast with it."

    def input_spec(self) -> dict:
        r = self.record
        return {"kind": self.info.kind, "columns": r.get("columns"), "window": r.get("window"), "horizon": r.get("horizon"),
                "targets": r.get("targets"), "format": "history (N, F) or (N,) in original units, N >= window"}

    def run(self, model: nn.Module, items: list, options: dict, limits: InputLimits) -> dict:
        """A forecast of `options["steps"]` (default: the horizon) per history, in original units."""
        columns = len(self.record["columns"])
        out = []
        for i, item in enumerate(items):
            a = as_numbers(item, f"input {i}").astype(np.float64)
            if a.ndim == 1 and columns == 1:
                a = a[:, None]  # (N,) -> (N, 1)
            if a.ndim != 2 or a.shape[1] != columns:
                raise DataError(f"input {i} has shape {a.shape}; a history is (N, {columns}) with the columns {self.record['columns']}"
                                + (" or (N,)" if columns == 1 else "") + ".")
            if limits.max_length is not None and len(a) > limits.max_length:
                raise DataError(f"input {i} has {len(a)} steps of history; this server takes at most {limits.max_length}.")
            values = self.forecast(model, a, options["steps"])  # (steps, F_out)
            if not np.isfinite(values).all():
                raise DataError(f"the forecast for input {i} is not finite (a history far outside the training range?).")
            out.append(values[:, 0].tolist() if values.shape[1] == 1 else values.tolist())
        return {"predictions": out, "targets": list(self.record["targets"])}

    def __init__(self, info: DatasetInfo | None = None, loss: str | None = None):
        super().__init__(info)
        if info is None or info.preprocessing.get("layout") != "series":
            raise ConfigError("the forecast task needs the dataset's info (its series record: horizon, targets, "
                              "scaler); pass info=data.info.")
        self.record = info.preprocessing
        self.horizon = self.record["horizon"]
        self.targets = self.record["target_index"]
        self.loss_name = check_choice(loss or self.record.get("loss", "mse"), "loss", LOSSES)

    def _shape(self, output: Tensor) -> Tensor:
        """(B, H·F_out) or (B, H, F_out) → (B, H, F_out); ShapeError for anything else."""
        h, k = self.horizon, len(self.targets)
        if output.dim() == 2 and output.shape[1] == h * k:
            return output.view(-1, h, k)  # (B, H, F_out): the head's outputs are step-major
        if output.dim() == 3 and tuple(output.shape[1:]) == (h, k):
            return output
        raise ShapeError(f"forecast expects model output (B, {h * k}) = horizon {h} × {k} target(s), or (B, {h}, {k}); "
                         f"got {tuple(output.shape)}. Build the model with gridseq.models.create_for(name, data.info).")

    def forward(self, model: nn.Module, batch: Batch) -> Tensor:
        """The forecast (B, H, F_out) in scaled units; relative models predict the change from the last value."""
        if not self.record["relative"]:
            return self._shape(super().forward(model, batch))
        level = batch.x[:, -1:, self.targets]  # (B, 1, F_out): the last observed value of each target
        x = batch.x.clone()
        x[:, :, self.targets] -= level
        return self._shape(super().forward(model, Batch(x, batch.y, batch.lengths))) + level

    def loss(self, output: Tensor, batch: Batch) -> Tensor:
        output = self._shape(output)
        return F.mse_loss(output, batch.y) if self.loss_name == "mse" else F.l1_loss(output, batch.y)

    def metrics(self) -> ForecastMetrics:
        return ForecastMetrics(self.record)

    def predict(self, output: Tensor) -> Tensor:
        """The forecast in original units: (B, H) for one target, (B, H, F_out) for several."""
        pred = decode(self._shape(output), self.record)
        return pred[..., 0] if pred.shape[-1] == 1 else pred

    def check_split(self, split: Split, name: str) -> None:
        h, k = self.horizon, len(self.targets)
        if not split.y.is_floating_point() or split.y.dim() != 3 or tuple(split.y.shape[1:]) != (h, k):
            raise DataError(f"forecast needs {name} targets y of shape (N, {h}, {k}) float (horizon × targets), "
                            f"got {tuple(split.y.shape)} {split.y.dtype}; build the data with gridseq.data.series.")

    def baselines(self, split: Split) -> dict[str, dict[str, float]]:
        """Test metrics of naive, seasonal-naive and drift forecasts on the items of `split`."""
        if len(split) == 0:
            return {}
        history = decode(split.x[:, :, self.targets], self.record)  # (N, W, F_out) original units
        true = decode(split.y, self.record)
        out = {}
        for name, pred in baseline_forecasts(history, self.horizon, self.record["season"]).items():
            metrics = ForecastMetrics(self.record)
            metrics.add(pred, true)
            out[name] = metrics.compute(with_loss=False)
        return out

    def forecast(self, model: nn.Module, history: np.ndarray, steps: int | None = None) -> np.ndarray:
        """Forecast `steps` values after the end of `history`, in original units.

        Beyond the model's horizon the forecast is recursive (the model's own forecasts are appended
        to the history and it forecasts again); that needs every input column to be a target.

        Args:
            model: the trained model (eval mode is set here).
            history: (N, F) past values of every column, original units, N >= window.
            steps: how many steps to forecast. Default: the model's horizon.
        Returns:
            (steps, F_out) float64.
        Raises:
            DataError: a history too short or with gaps; ConfigError: a recursive forecast with covariates.
        """
        steps = check_positive_int(steps if steps is not None else self.horizon, "horizon")
        if steps > self.horizon and len(self.targets) != len(self.record["columns"]):
            raise ConfigError(f"the model forecasts {self.horizon} steps directly; going further means feeding its forecasts back "
                              f"as inputs, which needs every column to be a target, but {self.record['columns']} has covariates "
                              f"besides the targets {self.record['targets']}. Ask for at most {self.horizon} steps.")
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        history = np.asarray(history, dtype=np.float64)
        out: list[np.ndarray] = []
        model.eval()
        with torch.no_grad():
            for _ in range(-(-steps // self.horizon)):  # ceil(steps / H) direct forecasts
                if out:
                    history = np.concatenate([history, out[-1][:, np.argsort(self.targets)]])  # targets in column order
                x = history_window(history, self.record).to(device)
                out.append(decode(self.forward(model, Batch(x)), self.record)[0].cpu().numpy())  # (H, F_out)
        return np.concatenate(out)[:steps]

    def describe(self) -> dict:
        return {**super().describe(), "loss": self.loss_name}
