"""Your own PyTorch data: map-style `torch.utils.data.Dataset`s wrapped as a gridseq `Dataset`.

    >>> import torch
    >>> class Blobs(torch.utils.data.Dataset):  # items (x, y): x (C, H, W) in [0, 1], y a class index
    ...     def __len__(self): return 40
    ...     def __getitem__(self, i): return torch.full((1, 6, 6), (i % 2) * 0.5), i % 2
    >>> data = from_torch(Blobs(), class_names=("dark", "light"))
    >>> data.info.kind, data.info.input_shape, len(data.train), len(data.val), len(data.test)
    ('image', (1, 6, 6), 28, 4, 8)

Items are `(x, y)` — x an image (C, H, W), a sequence (T, F) or a video (T, C, H, W) as float tensors or
arrays, y a class index — or `(x, y, length)` for padded sequences. The datasets stay yours: items are
read on demand by `DataLoader` workers, a batch at a time, as a streamed folder's are (see
`gridseq.data.stream`). Labels and lengths are read once when wrapping (from `dataset.targets` /
`dataset.lengths` when the dataset has them, as torchvision's do, else by one pass over the items), so
that splits can be stratified and batches bucketed by length. Inputs are used as they come: gridseq
adds no normalisation (do it in your dataset), and `predict` / `serve` prepare new inputs the same way —
image files read as pixels in [0, 1] and resized to the training size.
"""

from __future__ import annotations

import numpy as np
import torch

from gridseq.data.contract import Dataset, DatasetInfo
from gridseq.data.partition import train_val_test
from gridseq.data.stream import StreamSplit
from gridseq.data.targets import targets_of
from gridseq.errors import ConfigError, DataError

_KINDS = {3: "image", 2: "sequence", 4: "video"}  # x.dim() of one item -> kind


class _Items:
    """Item i's x of a user dataset, through an index map (a split carved from a larger dataset)."""

    def __init__(self, dataset, index: np.ndarray):
        self.dataset, self.index = dataset, index

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int):
        x = self.dataset[int(self.index[i])][0]
        return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _labels(dataset, name: str) -> tuple[np.ndarray, np.ndarray | None, tuple[int, ...]]:
    """(y (N,), lengths (N,) or None, the first item's x shape), from the dataset's attributes or one pass."""
    n = len(dataset)
    if n == 0:
        raise DataError(f"from_torch: the {name} dataset is empty; it needs at least one item.")
    first = dataset[0]
    if not isinstance(first, (tuple, list)) or len(first) not in (2, 3):
        raise DataError(
            f"from_torch: {name} items must be (x, y) or (x, y, length) tuples, got {type(first).__name__}"
            f"{f' of {len(first)} elements' if isinstance(first, (tuple, list)) else ''}; return (x, y) from __getitem__."
        )
    shape = tuple(np.shape(first[0]))
    targets, lengths = getattr(dataset, "targets", None), getattr(dataset, "lengths", None)
    if targets is None or (lengths is None and len(first) == 3):
        items = [dataset[i] for i in range(n)]
        targets = [it[1] for it in items]
        if len(first) == 3:
            lengths = [int(it[2]) for it in items]
        elif len(shape) == 2 and len({np.shape(it[0])[0] for it in items}) > 1:
            lengths = [int(np.shape(it[0])[0]) for it in items]  # sequences of their own lengths
    y = np.asarray(torch.as_tensor(np.asarray(targets)).long())
    if y.shape != (n,):
        raise DataError(f"from_torch: {name} targets must be one class index per item, got shape {y.shape} for {n} items.")
    return y, None if lengths is None else np.asarray(lengths, dtype=np.int64), shape


def from_torch(train, val=None, test=None, *, task: str = "classify", class_names=None, name: str = "torch",
               seed: int = 0, workers: int | None = None) -> Dataset:
    """Wrap map-style `torch.utils.data.Dataset`s (items `(x, y)` or `(x, y, length)`) as a gridseq Dataset.

    Args:
        train: the training items.
        val: validation items. Default: a stratified 10% of `train`, drawn with `seed`.
        test: test items. Default: a stratified 20% of `train`, drawn with a constant seed.
        task: the task; only "classify" is supported.
        class_names: K names, index i is class i. Default: `train.classes` if it has them, else "0".."K-1".
        name: the dataset's name in run directories. A "module:function" reference to a function that
            returns this Dataset lets `gridseq evaluate RUN` rebuild it. Default: "torch".
        seed: seeds the validation split drawn from `train`.
        workers: DataLoader worker processes that read items (0: read them in the training process).
            Default: half the cores available, 1 to 4.
    Returns:
        A Dataset whose splits read items on demand; `create_for`, `fit`, `evaluate`, run directories,
        `predict` and `serve` work on it as on any other.
    Raises:
        DataError: items that are not (x, y) tuples, an x that is not an image, sequence or video,
            labels out of range of class_names, splits with different item shapes.
        ConfigError: a task other than "classify".
    """
    if not targets_of(task).item_class:  # (x, y) items with one class y each
        raise ConfigError(f"from_torch supports task='classify' for now, got {task!r}; wrap other tasks' data with "
                          f"gridseq.data.contract.Dataset directly.")
    given = {s: d for s, d in (("train", train), ("val", val), ("test", test)) if d is not None}
    read = {s: _labels(d, s) for s, d in given.items()}
    y, lengths, shape = read["train"]
    if len(shape) not in _KINDS:
        raise DataError(f"from_torch: x must be an image (C, H, W), a sequence (T, F) or a video (T, C, H, W), "
                        f"got one item of shape {shape}.")
    kind = _KINDS[len(shape)]
    for s, (_, _, other) in read.items():
        if len(other) != len(shape) or (kind != "sequence" and other != shape) or other[-1] != shape[-1]:
            raise DataError(f"from_torch: every split's items need the train items' shape {shape}, {s} has {other}.")
    variable = any(r[1] is not None for r in read.values())
    parts = {s: (d, np.arange(len(d)), *read[s][:2]) for s, d in given.items()}
    index = train_val_test(y, seed, test_given=test is not None, val_given=val is not None)
    for s, idx in index.items():
        parts[s] = (train, idx, y[idx], None if lengths is None else lengths[idx])
    if class_names is None:
        classes = getattr(train, "classes", None)
        class_names = tuple(map(str, classes)) if classes is not None else tuple(
            str(k) for k in range(int(max(r[0].max() for r in read.values())) + 1))
    class_names = tuple(map(str, class_names))
    for s, (_, _, labels, _) in parts.items():
        if len(labels) and (labels.min() < 0 or labels.max() >= len(class_names)):
            raise DataError(f"from_torch: {s} labels must lie in [0, {len(class_names)}) (one per class name), "
                            f"got {int(labels.min())}..{int(labels.max())}.")
    splits = {}
    for s, (dataset, idx, labels, lens) in parts.items():
        if variable and lens is None:  # a split of full-length sequences beside variable ones
            lens = np.array([np.shape(dataset[int(i)][0])[0] for i in idx], dtype=np.int64)
        splits[s] = StreamSplit(_Items(dataset, idx), torch.as_tensor(labels, dtype=torch.int64),
                                lengths=None if lens is None else torch.as_tensor(lens), workers=workers)
    longest = max(int(sp.lengths.max()) for sp in splits.values() if len(sp)) if variable else None
    info = DatasetInfo(name=name, kind=kind, input_shape=(longest, shape[1]) if variable else shape,
                       num_classes=len(class_names), class_names=class_names, variable_length=variable,
                       preprocessing=_record(kind, shape, variable))
    return Dataset(info, splits["train"], splits["val"], splits["test"])


def _record(kind: str, shape: tuple[int, ...], variable: bool) -> dict:
    """The preprocessing record of data used as it comes: no normalisation, images resized to the training size."""
    record = {"source": "torch", "layout": kind, "view": kind, "normalize": None}
    if kind == "image":
        record["image"] = {"size": [shape[1], shape[2]], "channels": shape[0], "resize": True,
                           "resample": "bilinear", "array_scale": 1.0}
    elif kind == "sequence":
        record["sequence"] = {"features": shape[1], "length": None if variable else shape[0]}
    return record
