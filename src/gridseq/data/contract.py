"""The data contract between datasets, the trainer and the CLI.

A `Dataset` is three splits plus a `DatasetInfo`. A `Split` keeps its items as pre-collated tensors
(padded along time when lengths vary), so making a batch is one gather and a trim — the loader adds
nothing to a training step. Data too large for memory comes as a `gridseq.data.stream.StreamSplit`
instead, which answers the same calls (len, y, lengths, batch, loader) and decodes items on demand.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from gridseq.constants import KINDS  # noqa: F401  (re-exported)
from gridseq.data.targets import Targets, targets_of


@dataclass(frozen=True)
class DatasetInfo:
    """What a model and a task need to know about a dataset.

    Args:
        name: built-in name or the path it was read from.
        kind: one of "image" (B, C, H, W), "sequence" (B, T, F), "tokens" (B, T) ids,
            "video" (B, T, C, H, W), "series" (B, T, F) real-valued time series.
        input_shape: one item's shape without the batch dimension, e.g. (1, 8, 8) or (40, 1);
            the time entry is the longest length when lengths vary.
        num_classes: K, the number of target classes (0 for forecasting, which has no classes).
        class_names: K names, index i is class i.
        variable_length: whether items have their own lengths (then splits carry `lengths`).
        task: the task kind: "classify", "tag", "lm", "seq2seq", "regress" or "forecast" (then
            `preprocessing` holds its window, horizon, targets and scaler; see gridseq.data.series).
            What its targets are is `targets` (declared for each task in gridseq.data.targets).
        vocab_size: for "tokens" data, the vocabulary size.
        preprocessing: JSON-able record of what was done to raw inputs (normalisation, resize, ...),
            stored in run directories so `predict` prepares new inputs the same way.
    """

    name: str
    kind: str
    input_shape: tuple[int, ...]
    num_classes: int
    class_names: tuple[str, ...]
    variable_length: bool = False
    task: str = "classify"
    vocab_size: int | None = None
    preprocessing: dict[str, Any] = field(default_factory=dict)

    @property
    def targets(self) -> Targets:
        """What this dataset's targets are (one class per item, per step, a forecast window, a mask, boxes, ...),
        declared for its task in `gridseq.data.targets`: the layers below the tasks read this, not `task`."""
        return targets_of(self.task)

    @property
    def output_size(self) -> int:
        """The width of a model's output head: K class logits, or for a forecast window horizon × target
        series (a direct multi-step head; the task reshapes it to (B, horizon, targets))."""
        if self.targets.kind == "window":
            return self.preprocessing["horizon"] * len(self.preprocessing["targets"])
        return self.num_classes

    @property
    def num_features(self) -> int:
        """F for sequence data (the last entry of input_shape), C for images."""
        return self.input_shape[-1] if self.kind in ("sequence", "series") else self.input_shape[0]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "kind": self.kind, "input_shape": list(self.input_shape),
            "num_classes": self.num_classes, "class_names": list(self.class_names),
            "variable_length": self.variable_length, "task": self.task, "vocab_size": self.vocab_size,
            "preprocessing": self.preprocessing,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> DatasetInfo:
        return cls(**{**d, "input_shape": tuple(d["input_shape"]), "class_names": tuple(d["class_names"])})


@dataclass
class Batch:
    """A batch in gridseq's batch-first layout: x (B, ...), y (B,) or None, lengths (B,) int64 or None."""

    x: Tensor
    y: Tensor | None = None
    lengths: Tensor | None = None

    def __len__(self) -> int:
        return self.x.shape[0]

    def to(self, device: torch.device | str) -> Batch:
        # lengths stay on the CPU: pack_padded_sequence requires it
        y = None if self.y is None else self.y.to(device, non_blocking=True)
        return Batch(self.x.to(device, non_blocking=True), y, self.lengths)


@dataclass
class Split:
    """One split's items as tensors.

    Args:
        x: all items, (N, ...) in the batch-first layout of the dataset's kind, padded along time
            (dim 1) to the longest item when lengths vary.
        y: (N,) int64 class indices; for per-step and sequence targets (N, U) int64 token or class
            ids padded with 0 (language modelling, seq2seq), for forecasting (N, horizon, targets).
        lengths: (N,) int64 valid lengths, or None when every item has the full length.
        texts: text datasets keep their raw inputs here (one string per item; for language
            modelling the whole text slice as one string), so users and baselines see the data.
        targets: the raw target strings of seq2seq data (one per item), or None.
    """

    x: Tensor
    y: Tensor
    lengths: Tensor | None = None
    texts: list[str] | str | None = None
    targets: list[str] | None = None

    def __post_init__(self) -> None:
        if self.x.shape[0] != self.y.shape[0] or (self.lengths is not None and self.lengths.shape[0] != self.x.shape[0]):
            raise ValueError(f"Split: x, y and lengths must have the same first dimension, got {tuple(self.x.shape)}, {tuple(self.y.shape)}, {None if self.lengths is None else tuple(self.lengths.shape)}")

    def __len__(self) -> int:
        return self.x.shape[0]

    def batch(self, index: Tensor | slice) -> Batch:
        """Gather the items at `index` into a Batch, trimming time padding to the batch's longest item."""
        x, y = self.x[index], self.y[index]
        if self.lengths is None:
            return Batch(x, y, None)
        lengths = self.lengths[index]
        return Batch(x[:, : int(lengths.max())], y, lengths)

    def loader(self, batches: Iterable[Tensor], *, epoch: int = 0, seed: int = 0,
               augment: Callable | None = None) -> Iterator[Batch]:
        """The batches at `batches` (index tensors, in order), gathered from memory; with `augment` (e.g. an
        `ImageAugment`), each batch is augmented by its items' (seed, epoch, index) — the same call, and the
        same batches, as a streamed split's (`gridseq.data.stream.StreamSplit.loader`)."""
        for index in batches:
            yield augmented(self.batch(index), index, augment, seed, epoch)


def augmented(batch: Batch, index: Tensor, augment: Callable | None, seed: int, epoch: int) -> Batch:
    """`batch` (the items at `index`) with `augment(x, index, seed=, epoch=)` applied to x, if given (or, for a
    policy that moves targets with the inputs, `augment.augment_batch(batch, index, seed=, epoch=)`)."""
    if augment is None:
        return batch
    if hasattr(augment, "augment_batch"):
        return augment.augment_batch(batch, index, seed=seed, epoch=epoch)
    return Batch(augment(batch.x, index, seed=seed, epoch=epoch), batch.y, batch.lengths)


@dataclass
class Dataset:
    """A dataset: its info and its train/val/test splits."""

    info: DatasetInfo
    train: Split
    val: Split
    test: Split

    def splits(self) -> dict[str, Split]:
        return {"train": self.train, "val": self.val, "test": self.test}
