"""Semantic segmentation (dense prediction): one class per pixel.

Targets `y` are `(N, H, W)` int64 class masks aligned with the images `(N, C, H, W)`, with `IGNORE`
(-100, as `torch.nn.functional.cross_entropy`) at pixels that carry no label. The model returns
per-pixel logits `(B, K, H, W)` at the input's own size (`unet`, `fcn8s`, or `fcn` on a segment dataset).

Loss is per-pixel cross-entropy over labelled pixels, optionally weighted per class: the dataset
option `class_weights` (K numbers, or "balanced" for median-frequency weights of the training masks,
Eigen & Fergus 2015) is stored in `info.preprocessing["class_weights"]`; `task.configure(class_weights=...)`
sets it from Python. Metrics come from a K x K pixel confusion matrix accumulated on the model's device:

- `pixel_accuracy`: labelled pixels classified right;
- `iou_<class>`: per class, TP / (TP + FP + FN) (NaN for a class absent from both truth and prediction);
- `miou`: the mean of the per-class IoUs over classes present in the truth or the prediction — the
  primary metric;
- `loss`: the (weighted) cross-entropy per labelled pixel.
"""

from __future__ import annotations

import math
import re
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gridseq.constants import IGNORE_INDEX
from gridseq.data.class_weights import balanced_weights, check_class_weights  # noqa: F401  (re-exported)
from gridseq.data.contract import Batch, DatasetInfo, Split
from gridseq.data.stream import StreamSplit
from gridseq.errors import DataError, ShapeError
from gridseq.tasks.base import Metrics, Task, register
from gridseq.tasks.inputs import InputLimits, predict_images

IGNORE = IGNORE_INDEX


def metric_key(class_name: str, prefix: str = "iou") -> str:
    """`<prefix>_<name>` in snake_case: "Road sign" → "iou_road_sign" (detection: "ap50_road_sign").

    Example:
        >>> metric_key("Road sign"), metric_key("3"), metric_key("digit 8", "ap50")
        ('iou_road_sign', 'iou_3', 'ap50_digit_8')
    """
    return f"{prefix}_" + (re.sub(r"[^0-9a-z]+", "_", str(class_name).lower()).strip("_") or "class")


def iou_from_confusion(confusion: Tensor) -> Tensor:
    """Per-class IoU (K,) float64 from a K x K confusion matrix (rows: truth, columns: prediction);
    NaN for a class that appears in neither.

    Example:
        >>> iou_from_confusion(torch.tensor([[3, 1], [0, 2]])).tolist()
        [0.75, 0.6666666666666666]
    """
    cm = confusion.double()
    tp = cm.diag()
    union = cm.sum(dim=0) + cm.sum(dim=1) - tp
    return torch.where(union > 0, tp / union.clamp(min=1), torch.full_like(tp, math.nan))


class SegmentMetrics(Metrics):
    """Running loss and a K x K pixel confusion matrix; `compute()` gives pixel accuracy, IoUs and mIoU.

    Args:
        num_classes: K.
        class_names: K names for the `iou_<class>` keys. Default: "0", "1", ...
    """

    def __init__(self, num_classes: int, class_names: tuple[str, ...] | None = None):
        self.num_classes = num_classes
        self.keys = [metric_key(n) for n in (class_names or [str(k) for k in range(num_classes)])]
        self.confusion: Tensor | None = None  # (K, K) int64 on the first update's device
        self.loss_sum: Tensor | None = None  # float64: loss summed over labelled pixels

    def update(self, output: Tensor, batch: Batch, loss: Tensor) -> None:
        k = self.num_classes
        if self.confusion is None:
            self.confusion = torch.zeros(k, k, dtype=torch.int64, device=output.device)
            self.loss_sum = torch.zeros((), dtype=torch.float64, device=output.device)
        y = batch.y
        labelled = y != IGNORE
        pred = output.detach().argmax(dim=1)  # (B, H, W)
        # one bincount over flat (truth, prediction) cells of the labelled pixels
        cells = y[labelled] * k + pred[labelled]
        self.confusion += torch.bincount(cells, minlength=k * k).view(k, k)
        self.loss_sum += loss.detach().double() * labelled.sum()

    def compute(self) -> dict[str, float]:
        if self.confusion is None:
            return {}
        cm = self.confusion.cpu()
        pixels = int(cm.sum())
        if pixels == 0:
            return {}
        iou = iou_from_confusion(cm)
        present = ~torch.isnan(iou)
        out = {"loss": float(self.loss_sum) / pixels, "pixel_accuracy": float(cm.diag().sum()) / pixels,
               "miou": float(iou[present].mean()) if present.any() else 0.0}
        out.update({key: float(v) for key, v in zip(self.keys, iou.tolist())})
        return out

    def state_dict(self) -> dict[str, Tensor]:
        if self.confusion is None:
            return {}
        return {"confusion": self.confusion.cpu(), "loss_sum": self.loss_sum.cpu()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        if not state:
            self.confusion = self.loss_sum = None
            return
        self.confusion = state["confusion"].clone()
        self.loss_sum = state["loss_sum"].clone()


@register
class SegmentTask(Task):
    """One class per pixel: cross-entropy on logits `(B, K, H, W)` over the labelled pixels.

    Args:
        info: the dataset's info; `num_classes` checks the model's output, `class_names` name the
            `iou_<class>` metrics, `preprocessing["class_weights"]` (optional) weights the loss.

    Shape:
        - output: (B, K, H, W) logits. - batch.y: (B, H, W) int64 in [0, K) or -100 (no label).

    Example:
        >>> task = SegmentTask()
        >>> masks, probs = task.predict(torch.zeros(2, 4, 5, 7))
        >>> tuple(masks.shape), tuple(probs.shape)
        ((2, 5, 7), (2, 4, 5, 7))
    """

    name = "segment"
    topologies = ("many-to-many",)
    primary = "miou"
    higher_is_better = True
    options: ClassVar[dict] = {"invert": False}
    batchable = False  # any image size: one model call per image
    drawn = "masks"  # predict --out writes them as PNGs
    has_classes = True

    def run(self, model: nn.Module, items: list, options: dict, limits: InputLimits) -> dict:
        """One (H, W) mask of class indices per image, at the image's own size."""
        masks = predict_images(self, model, items, options, limits, lambda output, x: self.predict(output)[0][0].tolist())
        return {"predictions": masks, "classes": list(self.info.class_names)}

    def __init__(self, info: DatasetInfo | None = None):
        super().__init__(info)
        weights = (info.preprocessing or {}).get("class_weights") if info is not None else None
        self.class_weights = check_class_weights(weights, self.num_classes)
        self._weight_tensor: Tensor | None = None

    def configure(self, *, class_weights=None) -> SegmentTask:
        """Weight the loss per class (K positive numbers); None keeps the current weights."""
        if class_weights is not None:
            self.class_weights = check_class_weights(class_weights, self.num_classes)
            self._weight_tensor = None
        return self

    def _check_output(self, output: Tensor, y: Tensor | None = None) -> None:
        k = self.num_classes if self.num_classes is not None else "K"
        bad = output.dim() != 4 or (self.num_classes is not None and output.shape[1] != self.num_classes)
        if bad or (y is not None and tuple(output.shape[2:]) != tuple(y.shape[1:])):
            size = "H, W" if y is None else ", ".join(map(str, y.shape[1:]))
            hint = " It has no pixel axes: use a dense model (unet, fcn8s)." if output.dim() == 2 else ""
            raise ShapeError(f"segment expects model output of shape (B, {k}, {size}) per-pixel logits, got "
                             f"{tuple(output.shape)}.{hint}")

    def _weights(self, device: torch.device) -> Tensor | None:
        if self.class_weights is None:
            return None
        if self._weight_tensor is None or self._weight_tensor.device != device:
            self._weight_tensor = torch.tensor(self.class_weights, dtype=torch.float32, device=device)
        return self._weight_tensor

    def loss(self, output: Tensor, batch: Batch) -> Tensor:
        self._check_output(output, batch.y)
        return F.cross_entropy(output, batch.y, weight=self._weights(output.device), ignore_index=IGNORE)

    def metrics(self) -> SegmentMetrics:
        names = self.info.class_names if self.info is not None else None
        return SegmentMetrics(self.num_classes, names)

    def predict(self, output: Tensor) -> tuple[Tensor, Tensor]:
        """Masks `(B, H, W)` int64 and class probabilities `(B, K, H, W)` from logits `(B, K, H, W)`."""
        self._check_output(output)
        probs = output.softmax(dim=1)
        return probs.argmax(dim=1), probs

    def baselines(self, split: Split) -> dict[str, dict[str, float]]:
        """`majority`: every pixel labelled with the split's most frequent class (all background)."""
        if self.num_classes is None or len(split) == 0 or (isinstance(split, StreamSplit) and split.y_source is not None):
            return {}  # no baseline for streamed masks: it would decode every one of them
        if split.y.dim() != 3:
            return {}
        y = split.y
        labelled = y[y != IGNORE]
        counts = torch.bincount(labelled, minlength=self.num_classes)
        majority = int(counts.argmax())
        confusion = torch.zeros(self.num_classes, self.num_classes, dtype=torch.int64)
        confusion[:, majority] = counts[: self.num_classes]
        iou = iou_from_confusion(confusion)
        present = ~torch.isnan(iou)
        return {"majority": {"pixel_accuracy": float(counts[majority]) / max(len(labelled), 1),
                             "miou": float(iou[present].mean())}}

    def check_split(self, split: Split, name: str) -> None:
        if isinstance(split, StreamSplit) and split.y_source is not None:
            return  # streamed masks are checked as each is decoded (gridseq.data.readers.dense_stream)
        y, x = split.y, split.x
        if y.dtype != torch.int64 or y.dim() != 3:
            raise DataError(f"segment needs {name} targets y of shape (N, H, W) int64 class masks (-100 for unlabelled "
                            f"pixels), got {tuple(y.shape)} {y.dtype}; convert with y.long().")
        if x.dim() != 4 or tuple(x.shape[2:]) != tuple(y.shape[1:]):
            raise DataError(f"segment needs {name} masks the size of their images: images {tuple(x.shape)} (N, C, H, W), "
                            f"masks {tuple(y.shape)} (N, H, W).")
        labelled = y[y != IGNORE]
        if len(labelled) and self.num_classes is not None and (int(labelled.min()) < 0 or int(labelled.max()) >= self.num_classes):
            raise DataError(f"{name} mask values must be class indices in [0, {self.num_classes}) or -100, got values from "
                            f"{int(labelled.min())} to {int(labelled.max())}.")

    def describe(self) -> dict:
        out = super().describe()
        if self.class_weights is not None:
            out["class_weights"] = self.class_weights
        return out
