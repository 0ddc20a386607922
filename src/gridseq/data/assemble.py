"""From raw arrays to a `Dataset`: divide into splits, record the preprocessing, apply it.

Built-ins and file readers produce raw items (images (N, C, H, W) in [0, 1] or sequences (N, T, F) with
optional lengths) and integer labels; `divide` makes the train/val/test splits by the rules in
`splitting`, and `assemble` normalises them with training statistics and applies the view.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch

from gridseq.data.contract import Dataset, DatasetInfo, Split
from gridseq.data.partition import train_val_test
from gridseq.data.preprocessing import apply_preprocessing, image_record, sequence_record, series_record


class RawSplit(NamedTuple):
    """Raw items of one split: x (N, ...) float32, y (N,) int64 class indices, lengths (N,) int64 or None."""

    x: np.ndarray
    y: np.ndarray
    lengths: np.ndarray | None = None

    def take(self, index: np.ndarray) -> RawSplit:
        return RawSplit(self.x[index], self.y[index], None if self.lengths is None else self.lengths[index])

    def trimmed(self) -> RawSplit:
        """Drop time padding beyond this split's longest item (sequences with lengths only)."""
        if self.lengths is None or len(self.lengths) == 0:
            return self
        return RawSplit(self.x[:, : int(self.lengths.max())], self.y, self.lengths)


def divide(data: RawSplit, seed: int, *, test: RawSplit | None = None, val: RawSplit | None = None) -> dict[str, RawSplit]:
    """Train/val/test from `data` plus any predefined splits.

    The test split (when not given) is stratified with a constant seed; the validation split (when
    not given) is carved from what remains with `seed`.
    """
    index = train_val_test(data.y, seed, test_given=test is not None, val_given=val is not None)
    parts = {name: data.take(idx).trimmed() for name, idx in index.items()}
    if test is not None:
        parts["test"] = test.trimmed()
    if val is not None:
        parts["val"] = val.trimmed()
    return {name: parts[name] for name in ("train", "val", "test")}


def assemble(name: str, parts: dict[str, RawSplit], class_names: tuple[str, ...], record: dict[str, Any]) -> Dataset:
    """Apply `record` to every split and wrap the result with its `DatasetInfo`."""
    splits = {}
    for split_name, part in parts.items():
        x, lengths = apply_preprocessing(part.x, part.lengths, record)
        splits[split_name] = Split(x, torch.tensor(part.y, dtype=torch.int64), lengths)
    variable = parts["train"].lengths is not None
    view, layout = record["view"], record["layout"]
    if layout == "image":
        c, h, w = parts["train"].x.shape[1:]
        input_shape = (c, h, w) if view == "image" else (h, c * w)
    else:
        longest = max(int(p.x.shape[1]) for p in parts.values())
        input_shape = (longest, int(parts["train"].x.shape[2]))
    info = DatasetInfo(
        name=name, kind=view, input_shape=input_shape, num_classes=len(class_names),
        class_names=tuple(class_names), variable_length=variable, preprocessing=record,
    )
    return Dataset(info, splits["train"], splits["val"], splits["test"])


def image_dataset(name: str, parts: dict[str, RawSplit], class_names, view: str, *, resize: bool, resample: str,
                  array_scale: float, source: str, **extra) -> Dataset:
    """`assemble` for images, with per-channel statistics of the training split."""
    record = image_record(source, parts["train"].x, view, resize=resize, resample=resample,
                          array_scale=array_scale, **extra)
    return assemble(name, parts, tuple(class_names), record)


def sequence_dataset(name: str, parts: dict[str, RawSplit], class_names, *, source: str, **extra) -> Dataset:
    """`assemble` for sequences, with per-feature statistics of the training split's valid steps."""
    record = sequence_record(source, parts["train"].x, parts["train"].lengths, **extra)
    return assemble(name, parts, tuple(class_names), record)


def series_dataset(name: str, parts: dict[str, RawSplit], class_names, *, source: str, normalize: str = "auto",
                   **extra) -> Dataset:
    """`assemble` for time series: kind "series", normalised per series or with training statistics."""
    record = series_record(source, parts["train"].x, parts["train"].lengths, normalize, **extra)
    return assemble(name, parts, tuple(class_names), record)
