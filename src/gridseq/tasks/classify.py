"""Classification: one label per item (an image, a whole sequence, a whole video).

Loss is cross-entropy on logits `(B, K)`; metrics are `loss`, `accuracy` and `macro_f1`, computed from
a confusion matrix accumulated on the model's device; the primary metric is `accuracy`.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from gridseq.data.contract import Batch, Split
from gridseq.errors import DataError, ShapeError
from gridseq.tasks.base import Metrics, Task, register, top_probabilities


class ConfusionMetrics(Metrics):
    """Running loss and a K×K confusion matrix (rows: true class, columns: predicted class).

    Args:
        num_classes: K, or None to take it from the first batch's logits.
    """

    def __init__(self, num_classes: int | None = None):
        self.num_classes = num_classes
        self.confusion: Tensor | None = None  # (K, K) int64, allocated on the first update's device
        self.loss_sum: Tensor | None = None  # float64 scalar: sum over items of the per-item loss
        self.count = 0

    def _allocate(self, num_classes: int, device: torch.device) -> None:
        self.num_classes = num_classes
        self.confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)
        self.loss_sum = torch.zeros((), dtype=torch.float64, device=device)

    def update(self, output: Tensor, batch: Batch, loss: Tensor) -> None:
        if self.confusion is None:
            self._allocate(self.num_classes or output.shape[1], output.device)
        k = self.num_classes
        pred = output.detach().argmax(dim=1)
        # one bincount over flat (true, pred) cells instead of a Python loop over classes
        self.confusion += torch.bincount(batch.y * k + pred, minlength=k * k).view(k, k)
        self.loss_sum += loss.detach().double() * len(batch)
        self.count += len(batch)

    def compute(self) -> dict[str, float]:
        if self.confusion is None or self.count == 0:
            return {}
        cm = self.confusion.double().cpu()
        tp = cm.diag()
        true_count, pred_count = cm.sum(dim=1), cm.sum(dim=0)
        # F1 = 2TP / (2TP + FP + FN) = 2TP / (true + pred); classes absent from both labels and
        # predictions are left out of the average, as sklearn's f1_score(average="macro") does
        present = (true_count + pred_count) > 0
        f1 = 2 * tp[present] / (true_count + pred_count)[present]
        return {
            "loss": float(self.loss_sum) / self.count,
            "accuracy": float(tp.sum() / cm.sum()),
            "macro_f1": float(f1.mean()) if present.any() else 0.0,
        }

    def state_dict(self) -> dict[str, Tensor]:
        if self.confusion is None:
            return {}
        return {"confusion": self.confusion.cpu(), "loss_sum": self.loss_sum.cpu(), "count": torch.tensor(self.count)}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        if not state:
            self.__init__(self.num_classes)
            return
        confusion = state["confusion"]
        self.num_classes = confusion.shape[0]
        self.confusion = confusion.clone()
        self.loss_sum = state["loss_sum"].clone()
        self.count = int(state["count"])


@register
class ClassifyTask(Task):
    """One class per item: cross-entropy on logits `(B, K)`.

    Args:
        info: the dataset's info; its `num_classes` checks the model's output width. Optional for
            `evaluate` on a bare split (K is then read from the logits).

    Shape:
        - output: (B, K) logits. - batch.y: (B,) int64 class indices in [0, K).

    Example:
        >>> task = ClassifyTask()
        >>> labels, probs = task.predict(torch.tensor([[2.0, 0.0], [0.0, 1.0]]))
        >>> labels.tolist(), probs.shape
        ([0, 1], torch.Size([2, 2]))
    """

    name = "classify"
    smooths_labels = True
    topologies = ("one-to-one", "many-to-one")
    record_key = "label"
    options: ClassVar[dict] = {"top_k": None, "invert": False}
    has_classes = True
    streams = ("steps", "frames")
    primary = "accuracy"
    higher_is_better = True

    def _check_output(self, output: Tensor) -> None:
        if output.dim() != 2 or (self.num_classes is not None and output.shape[1] != self.num_classes):
            k = self.num_classes if self.num_classes is not None else "K"
            hint = " It has a time axis: a many-to-many model returns one output per step; use a many-to-one model." if output.dim() == 3 else ""
            raise ShapeError(f"classify expects model output of shape (B, {k}) logits, got {tuple(output.shape)}.{hint}")

    def loss(self, output: Tensor, batch: Batch, *, label_smoothing: float = 0.0) -> Tensor:
        self._check_output(output)
        return F.cross_entropy(output, batch.y, label_smoothing=label_smoothing)

    def metrics(self) -> ConfusionMetrics:
        return ConfusionMetrics(self.num_classes)

    def decode(self, output: Tensor, batch: Batch, options: dict, model=None) -> dict[str, list]:
        """Each item's class name and its top-k (`options["top_k"]`, all when None) class probabilities."""
        names = self.info.class_names
        labels, probs = self.predict(output)
        return {"predictions": [names[i] for i in labels.tolist()],
                "probabilities": [top_probabilities(row, names, options.get("top_k")) for row in probs.tolist()]}

    def predict(self, output: Tensor) -> tuple[Tensor, Tensor]:
        """Labels `(B,)` int64 and class probabilities `(B, K)` from logits `(B, K)`."""
        self._check_output(output)
        probs = output.softmax(dim=1)
        return probs.argmax(dim=1), probs

    def check_split(self, split: Split, name: str) -> None:
        y = split.y
        if y.dtype != torch.int64 or y.dim() != 1:
            raise DataError(f"classify needs {name} targets y of shape (N,) int64 class indices, got {tuple(y.shape)} {y.dtype}; convert with y.long().")
        if len(y) and self.num_classes is not None and (int(y.min()) < 0 or int(y.max()) >= self.num_classes):
            raise DataError(
                f"{name} targets must be class indices in [0, {self.num_classes}), got values from {int(y.min())} to "
                f"{int(y.max())}; check DatasetInfo.num_classes or remap the labels to 0..K-1."
            )
