"""Regression: D real-valued targets per item (the adding problem's sum, a score, a quantity).

Loss is the mean squared error over every (item, target); metrics are `loss`, `mse` and `mae`
accumulated on the model's device. The primary metric is `mse`, lower is better. A dataset's
`DatasetInfo.num_classes` holds D (the width of the model's output head) and `class_names` the
targets' names, so every many-to-one model builds for it unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from gridseq.data.contract import Batch, DatasetInfo, Split
from gridseq.errors import DataError, ShapeError
from gridseq.tasks.base import SumMetrics, Task, register


class RegressionMetrics(SumMetrics):
    """Running sums of squared and absolute errors over every (item, target), and the loss per item."""

    def update(self, output: Tensor, batch: Batch, loss: Tensor) -> None:
        err = output.detach().double() - batch.y.double()
        self.add(squared=err.square().sum(), absolute=err.abs().sum(), values=err.numel(),
                 loss=loss * len(batch), items=len(batch))

    def finish(self, s: dict[str, float]) -> dict[str, float]:
        values = max(s["values"], 1.0)
        return {"loss": s["loss"] / max(s["items"], 1.0), "mse": s["squared"] / values, "mae": s["absolute"] / values}


@register
class RegressTask(Task):
    """D real targets per item: mean squared error on outputs `(B, D)`.

    Args:
        info: the dataset's info; `num_classes` is D. Optional (D is then read from the targets).

    Shape:
        - output: (B, D) float.  - batch.y: (B, D) float.

    Example:
        >>> from gridseq.data.contract import Batch
        >>> task = RegressTask()
        >>> out, y = torch.tensor([[1.0], [3.0]]), torch.tensor([[1.5], [2.0]])
        >>> round(float(task.loss(out, Batch(out, y))), 4)
        0.625
    """

    name = "regress"
    topologies = ("one-to-one", "many-to-one")
    record_key = "values"
    has_classes = True  # the target names
    streams = ("steps",)
    primary = "mse"
    higher_is_better = False

    def __init__(self, info: DatasetInfo | None = None):
        super().__init__(info)
        self.width = info.num_classes if info is not None else None

    def _check_output(self, output: Tensor, y: Tensor | None = None) -> None:
        width = self.width if self.width is not None else (y.shape[1] if y is not None and y.dim() == 2 else None)
        if output.dim() != 2 or (width is not None and output.shape[1] != width):
            d = width if width is not None else "D"
            hint = " It has a time axis: a many-to-many model returns one output per step; use a many-to-one model." if output.dim() == 3 else ""
            raise ShapeError(f"regress expects model output of shape (B, {d}), got {tuple(output.shape)}.{hint}")

    def loss(self, output: Tensor, batch: Batch) -> Tensor:
        self._check_output(output, batch.y)
        return F.mse_loss(output, batch.y.to(output.dtype))

    def metrics(self) -> RegressionMetrics:
        return RegressionMetrics()

    def decode(self, output: Tensor, batch: Batch, options: dict, model=None) -> dict[str, list]:
        """Each item's {target name: value}."""
        return {"predictions": [dict(zip(self.info.class_names, row)) for row in self.predict(output).tolist()]}

    def decode_step(self, output: Tensor, vocab=None, top_k: int | None = None) -> dict:
        """A stream's reply for its latest step: the values predicted for the sequence so far, by target name."""
        return {"prediction": dict(zip(self.info.class_names, output.tolist()))}

    def predict(self, output: Tensor) -> Tensor:
        """The predicted values `(B, D)` (the model output itself)."""
        self._check_output(output)
        return output

    def check_split(self, split: Split, name: str) -> None:
        y = split.y
        if not torch.is_floating_point(y) or y.dim() != 2:
            raise DataError(
                f"regress needs {name} targets y of shape (N, D) float, got {tuple(y.shape)} {y.dtype}; "
                f"for one target per item use y.float().unsqueeze(1)."
            )
        if self.width is not None and y.shape[1] != self.width:
            raise DataError(f"{name} targets have {y.shape[1]} values per item, but DatasetInfo.num_classes says "
                            f"{self.width}; for regression num_classes is the number of targets D.")
        if len(y) and not bool(torch.isfinite(y).all()):
            raise DataError(f"{name} targets hold NaN or Inf; drop or fill those items.")
