"""Per-step tagging (many-to-many, synchronous): one class per time step.

Targets `y` are `(N, T)` int64 class indices aligned with the input steps, with `IGNORE` (-100, as
`torch.nn.functional.cross_entropy`) at steps that carry no label — padding, or steps a task does not
score (the copy-memory probe scores only the recall steps). Loss is cross-entropy over labelled steps;
metrics are `loss`, `accuracy` (over labelled steps) and `exact_match` (items whose every labelled
step is right); the primary metric is `accuracy`.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from gridseq.data.contract import Batch, Split
from gridseq.errors import DataError, ShapeError
from gridseq.tasks.base import SumMetrics, Task, register, top_probabilities

IGNORE = -100


def aligned_targets(output: Tensor, y: Tensor) -> Tensor:
    """`y` cut to the output's time length: a batch trims its inputs to its longest item, and the
    targets beyond that are padding."""
    return y[:, : output.shape[1]]


class StepMetrics(SumMetrics):
    """Loss per labelled step, step accuracy and whole-item exact match."""

    def update(self, output: Tensor, batch: Batch, loss: Tensor) -> None:
        y = aligned_targets(output, batch.y)
        labelled = y != IGNORE
        right = (output.detach().argmax(dim=-1) == y) & labelled
        steps = labelled.sum()
        self.add(loss=loss * steps, steps=steps, correct=right.sum(),
                 exact=(right.sum(1) == labelled.sum(1)).sum(), items=len(batch))

    def finish(self, s: dict[str, float]) -> dict[str, float]:
        steps = max(s["steps"], 1.0)
        return {"loss": s["loss"] / steps, "accuracy": s["correct"] / steps, "exact_match": s["exact"] / max(s["items"], 1.0)}


@register
class TagTask(Task):
    """One class per step: cross-entropy on logits `(B, T, K)` over the labelled steps.

    Shape:
        - output: (B, T, K) logits (T may be shorter than y's: the batch's longest item).
        - batch.y: (B, T_max) int64 in [0, K) or -100 (no label).

    Example:
        >>> task = TagTask()
        >>> y = torch.tensor([[1, 0, -100]])
        >>> float(task.loss(torch.tensor([[[0.0, 9.0], [9.0, 0.0], [5.0, 0.0]]]), Batch(torch.zeros(1, 3), y))) < 1e-3
        True
    """

    name = "tag"
    smooths_labels = True
    topologies = ("many-to-many",)
    record_key = "labels"
    options: ClassVar[dict] = {"top_k": None}
    has_classes = True
    streams = ("steps", "frames")
    step_labels = True
    primary = "accuracy"
    higher_is_better = True

    def _check_output(self, output: Tensor) -> None:
        if output.dim() != 3 or (self.num_classes is not None and output.shape[2] != self.num_classes):
            k = self.num_classes if self.num_classes is not None else "K"
            hint = " It has no time axis: use a per-step model (e.g. per_step=True)." if output.dim() == 2 else ""
            raise ShapeError(f"tag expects model output of shape (B, T, {k}) logits, got {tuple(output.shape)}.{hint}")

    def loss(self, output: Tensor, batch: Batch, *, label_smoothing: float = 0.0) -> Tensor:
        self._check_output(output)
        y = aligned_targets(output, batch.y)
        return F.cross_entropy(output.flatten(0, 1), y.flatten(), ignore_index=IGNORE, label_smoothing=label_smoothing)

    def metrics(self) -> StepMetrics:
        return StepMetrics()

    def decode(self, output: Tensor, batch: Batch, options: dict, model=None) -> dict[str, list]:
        """Each item's class name per valid step, and per step its top-k class probabilities."""
        names = self.info.class_names
        labels, probs = self.predict(output)
        steps = [output.shape[1]] * len(batch) if batch.lengths is None else batch.lengths.tolist()
        return {"predictions": [[names[j] for j in row[:n]] for row, n in zip(labels.tolist(), steps)],
                "probabilities": [[top_probabilities(p, names, options.get("top_k")) for p in row[:n]]
                                  for row, n in zip(probs.tolist(), steps)]}

    def predict(self, output: Tensor) -> tuple[Tensor, Tensor]:
        """Labels `(B, T)` and probabilities `(B, T, K)` from logits `(B, T, K)`."""
        self._check_output(output)
        probs = output.softmax(dim=-1)
        return probs.argmax(dim=-1), probs

    def check_split(self, split: Split, name: str) -> None:
        y = split.y
        if y.dtype != torch.int64 or y.dim() != 2:
            raise DataError(f"tag needs {name} targets y of shape (N, T) int64 (one class per step, -100 for none), got {tuple(y.shape)} {y.dtype}.")
        labelled = y[y != IGNORE]
        if len(labelled) and self.num_classes is not None and (int(labelled.min()) < 0 or int(labelled.max()) >= self.num_classes):
            raise DataError(
                f"{name} step targets must be class indices in [0, {self.num_classes}) or -100, got values from "
                f"{int(labelled.min())} to {int(labelled.max())}."
            )
