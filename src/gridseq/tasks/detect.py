"""Object detection: image → a set of (box, class, score), with a dense anchor-free (CenterNet) model.

Targets `y` are `(N, M, 5)` float32: per image up to M boxes `(x0, y0, x1, y1, class)` in input pixels
(x1, y1 exclusive: a box covering pixel columns 3..10 is x0=3, x1=11), rows with class -1 are padding.
The model returns a dense map `(B, K + 4, h, w)` at 1/stride of the input (`gridseq.models.detect`):
K class-heatmap logits, box width/height (pixels / stride) and the centre's sub-cell offset.

- loss: penalty-reduced focal loss on the heatmap against a Gaussian around each box centre (Zhou
  et al. 2019), plus L1 on size (weight 0.1) and offset (weight 1) at the centre cells;
- decoding (`decode`): heatmap peaks (a 3x3 max-pool keeps local maxima), the top 100, a score
  threshold, then per-class non-maximum suppression (`nms`);
- metrics: `map50` (primary) and `map50_95`, COCO-style average precision with 101-point interpolated
  precision (`average_precision`), averaged over the classes that occur in the truth; mAP@0.5:0.95
  averages IoU thresholds 0.50, 0.55, ..., 0.95; `ap50_<class>` is each class's AP@0.5 (NaN for a
  class absent from the truth). Evaluation keeps detections scoring >= 0.05.

    >>> task = DetectTask()
    >>> boxes = task.predict(torch.full((2, 7, 16, 16), -9.0), image_size=(64, 64))
    >>> len(boxes), tuple(boxes[0].shape)
    (2, (0, 6))
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gridseq.data.contract import Batch, DatasetInfo, Split
from gridseq.data.stream import StreamSplit
from gridseq.errors import ConfigError, DataError, ShapeError
from gridseq.models.traits import traits
from gridseq.tasks.base import Metrics, Task, register
from gridseq.tasks.inputs import InputLimits, predict_images
from gridseq.tasks.segment import metric_key

PAD = -1  # the class of a padding row in y
IOU_THRESHOLDS = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))
EVAL_THRESHOLD = 0.05  # evaluation keeps detections at least this confident (COCO practice: all, up to 100)
MAX_DETECTIONS = 100
SIZE_WEIGHT, OFFSET_WEIGHT = 0.1, 1.0


def box_iou(a: Tensor, b: Tensor) -> Tensor:
    """IoU of every box in `a` (N, 4) with every box in `b` (M, 4), boxes as (x0, y0, x1, y1): (N, M).

    Example:
        >>> box_iou(torch.tensor([[0., 0., 2., 2.]]), torch.tensor([[1., 0., 3., 2.], [5., 5., 6., 6.]]))
        tensor([[0.3333, 0.0000]])
    """
    area_a = (a[:, 2] - a[:, 0]).clamp(min=0) * (a[:, 3] - a[:, 1]).clamp(min=0)
    area_b = (b[:, 2] - b[:, 0]).clamp(min=0) * (b[:, 3] - b[:, 1]).clamp(min=0)
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:4], b[None, :, 2:4])
    inter = (rb - lt).clamp(min=0).prod(dim=-1)
    union = area_a[:, None] + area_b[None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(inter))


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float = 0.5) -> Tensor:
    """Greedy non-maximum suppression: indices (int64) of the boxes kept, highest score first.

    A box is dropped when it overlaps a kept, higher-scoring box with IoU > `iou_threshold`.

    Example:
        >>> b = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.], [20., 20., 30., 30.]])
        >>> nms(b, torch.tensor([0.9, 0.8, 0.7])).tolist()
        [0, 2]
    """
    order = torch.argsort(scores, descending=True, stable=True)
    if len(order) == 0:
        return order
    iou = box_iou(boxes[order], boxes[order])
    keep = torch.ones(len(order), dtype=torch.bool)
    for i in range(len(order)):
        if keep[i]:
            keep[i + 1:] &= iou[i, i + 1:] <= iou_threshold
    return order[keep]


def batched_nms(boxes: Tensor, scores: Tensor, classes: Tensor, iou_threshold: float = 0.5) -> Tensor:
    """`nms` within each class (boxes of different classes never suppress each other); indices kept.

    Example:
        >>> b = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.]])
        >>> batched_nms(b, torch.tensor([0.9, 0.8]), torch.tensor([0, 1])).tolist()
        [0, 1]
    """
    if len(boxes) == 0:
        return torch.zeros(0, dtype=torch.int64)
    shift = classes.to(boxes.dtype)[:, None] * (float(boxes.max()) + 1.0)  # move classes apart: one NMS call
    return nms(boxes + shift, scores, iou_threshold)


def _stride(image_size: tuple[int, int], out_size: tuple[int, int]) -> int:
    return 2 ** max(0, round(math.log2(max(image_size[0] / out_size[0], 1e-9))))


def decode(output: Tensor, image_size: tuple[int, int], *, threshold: float = 0.3, iou_threshold: float = 0.5,
           top_k: int = MAX_DETECTIONS) -> list[Tensor]:
    """Boxes from a dense detector output: per image a (D, 6) tensor (x0, y0, x1, y1, score, class).

    Args:
        output: (B, K + 4, h, w) model output (heatmap logits, size, offset).
        image_size: (H, W) of the input images; the stride is H / h rounded to a power of 2.
        threshold: keep detections scoring at least this. Default: 0.3.
        iou_threshold: per-class NMS threshold. Default: 0.5.
        top_k: heatmap peaks considered per image. Default: 100.
    Example:
        >>> out = torch.full((1, 5, 16, 16), -9.0)
        >>> out[0, 0, 4, 6] = 3.0  # class 0 centred in cell (y 4, x 6)
        >>> out[0, 1:3, 4, 6] = torch.tensor([3.0, 2.0])  # w 3 cells, h 2 cells
        >>> out[0, 3:5, 4, 6] = 0.5  # centre in the middle of the cell
        >>> [round(v, 2) for v in decode(out, (64, 64))[0][0].tolist()]  # x0, y0, x1, y1, score, class
        [20.0, 14.0, 32.0, 22.0, 0.95, 0.0]
    """
    b, channels, h, w = output.shape
    k = channels - 4
    stride = _stride(image_size, (h, w))
    heat = output[:, :k].sigmoid()
    peaks = heat * (F.max_pool2d(heat, 3, stride=1, padding=1) == heat)
    scores, index = peaks.flatten(1).topk(min(top_k, k * h * w), dim=1)  # (B, top_k)
    cls, cell = index // (h * w), index % (h * w)
    cy, cx = (cell // w).to(output.dtype), (cell % w).to(output.dtype)
    reg = output[:, k:].flatten(2).gather(2, cell[:, None, :].expand(-1, 4, -1))  # (B, 4, top_k)
    bw, bh = reg[:, 0].clamp(min=0) * stride, reg[:, 1].clamp(min=0) * stride
    ox, oy = (cx + reg[:, 2]) * stride, (cy + reg[:, 3]) * stride
    boxes = torch.stack([ox - bw / 2, oy - bh / 2, ox + bw / 2, oy + bh / 2], dim=-1)
    result = []
    for i in range(b):
        keep = scores[i] >= threshold
        bx, sc, cl = boxes[i][keep], scores[i][keep], cls[i][keep]
        kept = batched_nms(bx, sc, cl, iou_threshold)
        result.append(torch.cat([bx[kept], sc[kept, None], cl[kept, None].to(bx.dtype)], dim=1))
    return result


def average_precision(tp: np.ndarray, scores: np.ndarray, num_truth: int) -> float:
    """COCO 101-point interpolated AP of detections (`tp` 1/0 per detection, their `scores`) against
    `num_truth` true boxes: precision made monotone (the best at any higher recall), read at recall
    0, 0.01, ..., 1 (0 where the recall is never reached), averaged.

    Example:
        >>> # precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1: 51 points read 1, 50 read 2/3
        >>> round(average_precision(np.array([1, 0, 1]), np.array([0.9, 0.8, 0.7]), 2), 6), round((51 + 50 * 2 / 3) / 101, 6)
        (0.834983, 0.834983)
    """
    if num_truth == 0:
        return math.nan
    order = np.argsort(-np.asarray(scores), kind="stable")
    hits = np.asarray(tp, dtype=np.float64)[order]
    cum = np.cumsum(hits)
    recall = cum / num_truth
    precision = cum / np.arange(1, len(hits) + 1)
    if len(precision) == 0:
        return 0.0
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    idx = np.searchsorted(recall, np.linspace(0.0, 1.0, 101), side="left")
    values = np.zeros(101)
    reached = idx < len(precision)
    values[reached] = precision[idx[reached]]
    return float(values.mean())


def _match(dets: np.ndarray, truth: np.ndarray, iou: np.ndarray, threshold: float) -> np.ndarray:
    """1/0 per detection (sorted by score): greedy COCO matching to the best-IoU unmatched true box of
    the same image with IoU >= threshold."""
    tp = np.zeros(len(dets))
    taken = np.zeros(len(truth), dtype=bool)
    for i in range(len(dets)):
        row = np.where(taken, -1.0, iou[i])
        j = int(np.argmax(row)) if len(row) else -1
        if j >= 0 and row[j] >= threshold:
            tp[i], taken[j] = 1.0, True
    return tp


def mean_average_precision(detections: Tensor, truth: Tensor, thresholds=IOU_THRESHOLDS) -> dict[float, float]:
    """mAP per IoU threshold, the mean over classes present in `truth` of `average_precision`
    (`class_average_precision`).

    Args:
        detections: (D, 7) rows (image, x0, y0, x1, y1, score, class).
        truth: (G, 6) rows (image, x0, y0, x1, y1, class).
        thresholds: IoU thresholds. Default: 0.50, 0.55, ..., 0.95.
    Returns:
        {threshold: mAP}; NaN everywhere when `truth` is empty.
    Example:
        >>> t = torch.tensor([[0, 0., 0., 10., 10., 0]])
        >>> d = torch.tensor([[0, 0., 0., 10., 12., 0.9, 0]])  # IoU 10/12 = 0.83
        >>> mean_average_precision(d, t, thresholds=(0.5, 0.9))
        {0.5: 1.0, 0.9: 0.0}
    """
    return _over_classes(class_average_precision(detections, truth, thresholds), thresholds)


def _over_classes(per_class: dict[int, dict[float, float]], thresholds) -> dict[float, float]:
    return {t: float(np.mean([aps[t] for aps in per_class.values()])) if per_class else math.nan for t in thresholds}


def class_average_precision(detections: Tensor, truth: Tensor, thresholds=IOU_THRESHOLDS) -> dict[int, dict[float, float]]:
    """{class: {IoU threshold: AP}} for every class present in `truth` (arguments as `mean_average_precision`).

    Example:
        >>> t = torch.tensor([[0, 0., 0., 10., 10., 0], [0, 20., 20., 30., 30., 2]])
        >>> d = torch.tensor([[0, 0., 0., 10., 12., 0.9, 0]])
        >>> class_average_precision(d, t, thresholds=(0.5,))
        {0: {0.5: 1.0}, 2: {0.5: 0.0}}
    """
    det, gt = detections.double().cpu().numpy(), truth.double().cpu().numpy()
    classes = sorted({int(c) for c in gt[:, 5]}) if len(gt) else []
    out: dict[int, dict[float, float]] = {}
    for c in classes:
        d = det[det[:, 6] == c]
        d = d[np.argsort(-d[:, 5], kind="stable")]
        g = gt[gt[:, 5] == c]
        iou = box_iou(torch.from_numpy(d[:, 1:5]), torch.from_numpy(g[:, 1:5])).numpy() if len(d) else np.zeros((0, len(g)))
        iou = np.where(d[:, None, 0] == g[None, :, 0], iou, -1.0)  # boxes of other images never match
        out[c] = {t: average_precision(_match(d, g, iou, t), d[:, 5], len(g)) for t in thresholds}
    return out


class DetectMetrics(Metrics):
    """Running loss, and every detection and true box of the images seen; `compute()` gives `loss`,
    `map50`, `map50_95` and `ap50_<class>` per class. Training batches (outputs with a gradient) add
    their loss only: decoding every training batch would cost more than the step, so training epochs
    report `loss` alone.

    Args:
        threshold: detections scoring below this are not kept. Default: 0.05.
        class_names: K names for the `ap50_<class>` keys. Default: none (no per-class keys).
    """

    def __init__(self, threshold: float = EVAL_THRESHOLD, class_names: tuple[str, ...] | None = None):
        self.threshold = threshold
        self.keys = [metric_key(n, "ap50") for n in class_names] if class_names else []
        self.reset_state()

    def reset_state(self) -> None:
        self.dets: list[Tensor] = []
        self.truth: list[Tensor] = []
        self.images = 0  # images decoded and scored
        self.loss_images = 0  # training images: loss only
        self.loss_sum = 0.0

    def update(self, output: Tensor, batch: Batch, loss: Tensor) -> None:
        self.loss_sum += float(loss.detach()) * len(batch)
        if output.requires_grad:  # a training step: decoding every batch would cost more than the step; loss only
            self.loss_images += len(batch)
            return
        boxes = decode(output.detach(), tuple(batch.x.shape[2:]), threshold=self.threshold)
        for i, (found, y) in enumerate(zip(boxes, batch.y)):
            image = float(self.images + i)
            found = found.cpu().double()
            self.dets.append(torch.cat([torch.full((len(found), 1), image, dtype=torch.float64), found], dim=1))
            y = y[y[:, 4] >= 0].cpu().double()
            self.truth.append(torch.cat([torch.full((len(y), 1), image, dtype=torch.float64), y], dim=1))
        self.images += len(batch)

    def compute(self) -> dict[str, float]:
        if not self.images:
            return {"loss": self.loss_sum / self.loss_images} if self.loss_images else {}
        det = torch.cat(self.dets) if self.dets else torch.zeros(0, 7, dtype=torch.float64)
        gt = torch.cat(self.truth) if self.truth else torch.zeros(0, 6, dtype=torch.float64)
        per_class = class_average_precision(det, gt)
        maps = _over_classes(per_class, IOU_THRESHOLDS)
        out = {"loss": self.loss_sum / (self.images + self.loss_images), "map50": maps[0.5],
               "map50_95": float(np.mean(list(maps.values())))}
        out.update({key: per_class[c][0.5] if c in per_class else math.nan for c, key in enumerate(self.keys)})
        return out

    def state_dict(self) -> dict[str, Tensor]:
        if not self.images and not self.loss_images:
            return {}
        return {"dets": torch.cat(self.dets) if self.dets else torch.zeros(0, 7, dtype=torch.float64),
                "truth": torch.cat(self.truth) if self.truth else torch.zeros(0, 6, dtype=torch.float64),
                "images": torch.tensor(self.images), "loss_images": torch.tensor(self.loss_images),
                "loss_sum": torch.tensor(self.loss_sum, dtype=torch.float64)}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.reset_state()
        if state:
            self.dets, self.truth = [state["dets"].cpu().clone()], [state["truth"].cpu().clone()]
            self.images, self.loss_images = int(state["images"]), int(state["loss_images"])
            self.loss_sum = float(state["loss_sum"])


def targets(y: Tensor, num_classes: int, image_size: tuple[int, int], out_size: tuple[int, int]):
    """Training targets on the output grid from boxes `y` (B, M, 5).

    Returns:
        heat (B, K, h, w) Gaussian peaks (1 at each centre cell), centre mask (B, M) bool, centre cell
        index (B, M) int64 into h*w, and regression targets (B, M, 4): w, h (cells), offset x, y.
    """
    h, w = out_size
    stride = _stride(image_size, out_size)
    valid = y[..., 4] >= 0
    cx, cy = (y[..., 0] + y[..., 2]) / (2 * stride), (y[..., 1] + y[..., 3]) / (2 * stride)
    bw, bh = (y[..., 2] - y[..., 0]) / stride, (y[..., 3] - y[..., 1]) / stride
    ix, iy = cx.floor().clamp(0, w - 1), cy.floor().clamp(0, h - 1)
    reg = torch.stack([bw, bh, cx - ix, cy - iy], dim=-1)
    # elliptic Gaussians a sixth of the box (TTFNet-style), at least half a cell
    sx, sy = (bw / 6).clamp(min=0.5), (bh / 6).clamp(min=0.5)
    xs = torch.arange(w, device=y.device, dtype=y.dtype)
    ys = torch.arange(h, device=y.device, dtype=y.dtype)
    gx = torch.exp(-((xs[None, None, :] - ix[..., None]) ** 2) / (2 * sx[..., None] ** 2))  # (B, M, w)
    gy = torch.exp(-((ys[None, None, :] - iy[..., None]) ** 2) / (2 * sy[..., None] ** 2))  # (B, M, h)
    g = gy[..., :, None] * gx[..., None, :] * valid[..., None, None]  # (B, M, h, w)
    onehot = F.one_hot(y[..., 4].clamp(min=0).long(), num_classes).to(y.dtype) * valid[..., None]  # (B, M, K)
    heat = (g[:, :, None] * onehot[..., None, None]).amax(dim=1)  # (B, K, h, w)
    return heat, valid, (iy * w + ix).long(), reg


def focal_loss(logits: Tensor, heat: Tensor) -> Tensor:
    """CenterNet's penalty-reduced focal loss (alpha 2, beta 4), summed and divided by the number of
    centres (cells where `heat` is 1)."""
    p = logits.sigmoid().clamp(1e-4, 1 - 1e-4)
    pos = heat >= 1.0 - 1e-6
    pos_loss = -(F.logsigmoid(logits) * (1 - p) ** 2)[pos].sum()
    neg_loss = -(F.logsigmoid(-logits) * p ** 2 * (1 - heat) ** 4)[~pos].sum()
    return (pos_loss + neg_loss) / pos.sum().clamp(min=1)


@register
class DetectTask(Task):
    """Object detection with a dense anchor-free head: focal + L1 loss, decoding, COCO-style mAP.

    Args:
        info: the dataset's info; `num_classes` checks the model's output (K + 4 channels).
    Shape:
        - output: (B, K + 4, h, w). - batch.y: (B, M, 5) float (x0, y0, x1, y1, class), class -1 = padding.
    """

    name = "detect"
    topologies = ("many-to-many",)
    primary = "map50"
    higher_is_better = True
    options: ClassVar[dict] = {"invert": False}
    batchable = False  # any image size: one model call per image
    drawn = "boxes"  # predict --out writes them as PNGs
    has_classes = True

    def run(self, model: nn.Module, items: list, options: dict, limits: InputLimits) -> dict:
        """Each image's boxes: [{box: [x0, y0, x1, y1], class, score}, ...] in its own pixel coordinates."""
        def boxes(output: Tensor, x: Tensor) -> list[dict]:
            return box_records(self.predict(output, image_size=tuple(x.shape[2:]))[0], self.info.class_names)

        return {"predictions": predict_images(self, model, items, options, limits, boxes), "classes": list(self.info.class_names)}

    def __init__(self, info: DatasetInfo | None = None):
        super().__init__(info)
        self.threshold = 0.3
        self.iou_threshold = 0.5
        self._image_size: tuple[int, int] | None = None

    def configure(self, *, threshold: float | None = None, iou_threshold: float | None = None) -> DetectTask:
        """Set the score threshold and NMS IoU threshold used by `predict` (None keeps the current)."""
        for name, value in (("threshold", threshold), ("iou_threshold", iou_threshold)):
            if value is not None:
                if not 0.0 <= float(value) <= 1.0:
                    raise ConfigError(f"{name} must be in [0, 1], got {value!r}.")
                setattr(self, name, float(value))
        return self

    def fits(self, model: nn.Module) -> bool:
        """A dense detector: its output has the class-heatmap and box heads (it says so with `output_grid`)."""
        return traits(model).output_grid

    def _check_output(self, output: Tensor) -> None:
        k = self.num_classes
        if output.dim() != 4 or (k is not None and output.shape[1] != k + 4):
            want = "K + 4" if k is None else f"{k} + 4 = {k + 4}"
            raise ShapeError(f"detect expects model output (B, {want}, h, w): class heatmaps, box size and offset per "
                             f"location, got {tuple(output.shape)}; use a dense detector (centernet).")

    def forward(self, model: nn.Module, batch: Batch) -> Tensor:
        self._image_size = tuple(batch.x.shape[2:])
        return model(batch.x)

    def loss(self, output: Tensor, batch: Batch) -> Tensor:
        self._check_output(output)
        k = output.shape[1] - 4
        heat, valid, cell, reg = targets(batch.y.to(output.dtype), k, tuple(batch.x.shape[2:]), tuple(output.shape[2:]))
        hm = focal_loss(output[:, :k], heat)
        pred = output[:, k:].flatten(2).gather(2, cell[:, None, :].expand(-1, 4, -1)).transpose(1, 2)  # (B, M, 4)
        n = valid.sum().clamp(min=1)
        err = (pred - reg).abs() * valid[..., None]
        return hm + (SIZE_WEIGHT * err[..., :2].sum() + OFFSET_WEIGHT * err[..., 2:].sum()) / n

    def metrics(self) -> DetectMetrics:
        return DetectMetrics(class_names=self.info.class_names if self.info is not None else None)

    def predict(self, output: Tensor, *, image_size: tuple[int, int] | None = None) -> list[Tensor]:
        """Per image a (D, 6) tensor of boxes (x0, y0, x1, y1, score, class) in input pixels.

        `image_size` (H, W) defaults to the size of the last batch through `forward` (else 4 x the map)."""
        self._check_output(output)
        size = image_size or self._image_size or (output.shape[2] * 4, output.shape[3] * 4)
        return decode(output, size, threshold=self.threshold, iou_threshold=self.iou_threshold)

    def check_split(self, split: Split, name: str) -> None:
        y = split.y
        if y.dim() != 3 or y.shape[-1] != 5 or not y.is_floating_point():
            raise DataError(f"detect needs {name} targets y of shape (N, M, 5) float: per image M boxes (x0, y0, x1, y1, "
                            f"class) padded with class -1, got {tuple(y.shape)} {y.dtype}.")
        x = None if isinstance(split, StreamSplit) else split.x  # streamed images are checked as they are decoded
        if x is not None and x.dim() != 4:
            raise DataError(f"detect needs {name} images (N, C, H, W), got {tuple(x.shape)}.")
        cls = y[..., 4][y[..., 4] >= 0]
        if len(cls) and self.num_classes is not None and int(cls.max()) >= self.num_classes:
            raise DataError(f"{name} box classes must be in [0, {self.num_classes}) (or -1 for padding), got up to {int(cls.max())}.")
        real = y[y[..., 4] >= 0]
        if len(real) and bool(((real[:, 2] <= real[:, 0]) | (real[:, 3] <= real[:, 1])).any()):
            raise DataError(f"{name} boxes must have x1 > x0 and y1 > y0 (x0, y0, x1, y1 in pixels); some are empty.")

    def describe(self) -> dict:
        return {**super().describe(), "threshold": self.threshold, "iou_threshold": self.iou_threshold}


def box_records(boxes: Tensor, class_names) -> list[dict]:
    """JSON-able records from (D, 6) boxes (x0, y0, x1, y1, score, class): box rounded to 0.1 pixel.

    Example:
        >>> box_records(torch.tensor([[1.04, 2.0, 9.0, 12.0, 0.91234, 1.0]]), ["cat", "dog"])
        [{'box': [1.0, 2.0, 9.0, 12.0], 'class': 'dog', 'score': 0.9123}]
    """
    return [{"box": [round(float(v), 1) for v in row[:4]], "class": class_names[int(row[5])],
             "score": round(float(row[4]), 4)} for row in boxes]


def draw_boxes(rgb: np.ndarray, records: list[dict], *, min_side: int = 256) -> np.ndarray:
    """Draw labelled boxes (`box_records`) on an (H, W, 3) uint8 image, enlarged (nearest) by a whole
    factor so its shorter side is at least `min_side`; returns the new (H', W', 3) uint8 image.

    Example:
        >>> draw_boxes(np.zeros((64, 80, 3), np.uint8), [{"box": [4, 4, 20, 30], "class": "a", "score": 0.9}]).shape
        (256, 320, 3)
    """
    from PIL import Image, ImageDraw

    scale = max(1, -(-min_side // min(rgb.shape[:2])))
    img = Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8), "RGB")
    img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    draw = ImageDraw.Draw(img)
    palette = [(255, 255, 255), (255, 64, 64), (64, 255, 64), (64, 160, 255), (255, 224, 64), (255, 64, 255), (64, 255, 255)]
    names = sorted({r["class"] for r in records})
    for r in records:
        colour = palette[names.index(r["class"]) % len(palette)]
        x0, y0, x1, y1 = (v * scale for v in r["box"])
        draw.rectangle([x0, y0, max(x0, x1 - 1), max(y0, y1 - 1)], outline=colour, width=max(1, scale // 2))
        draw.text((x0 + 2, max(0, y0 - 11)), f"{r['class']} {r['score']:.2f}", fill=colour)
    return np.asarray(img)
