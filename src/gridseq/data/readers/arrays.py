"""Sequence arrays shared by the .npz, CSV and text readers: checking splits, assembling a dataset in
memory (`finish_sequences`) or streamed (`finish_streamed`), and the files a streamed source reads.

A streamed reader's one pass over its file writes compact rows (`FlatWriter` -> `Flat`: variable-length
rows back to back, offsets in memory) into a `Scratch` folder; `Mapped` memory-maps an array in a file
(an .npy, an uncompressed .npz member, a flat file) in each process that reads it, so it pickles to
DataLoader workers as a path and a header.
"""


from __future__ import annotations

import array
import logging
import os
import shutil
import tempfile
import weakref
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from gridseq.data.assemble import RawSplit, divide, sequence_dataset
from gridseq.data.contract import Dataset, DatasetInfo
from gridseq.data.padding import pad_sequences
from gridseq.data.partition import encode_labels, train_val_test
from gridseq.data.preprocessing import sequence_record
from gridseq.data.stream import StreamSplit, sample_for_stats
from gridseq.errors import DataError

_logger = logging.getLogger(__name__)



def finish_sequences(name: str, raw: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray | None]], seed: int,
                     source: str, **extra) -> Dataset:
    """Dataset from raw sequences per split ({"train": (x, y, lengths), optionally "val", "test"}).

    Labels are encoded in sorted order from the training labels. Items are variable length when any
    split has lengths (splits without lengths then get the full length). Splits not given are drawn
    from "train" by the usual rules.
    """
    variable = _check_split_shapes(name, {s: x.shape for s, (x, _, _) in raw.items()},
                                   any(lengths is not None for _, _, lengths in raw.values()))
    _, classes = encode_labels(raw["train"][1])
    parts = {}
    for split, (x, y, lengths) in raw.items():
        if variable and lengths is None:
            lengths = np.full(len(x), x.shape[1], dtype=np.int64)
        parts[split] = RawSplit(x, encode_labels(y, classes)[0], lengths)
    divided = divide(parts["train"], seed, test=parts.get("test"), val=parts.get("val"))
    return sequence_dataset(name, divided, classes, source=source, **extra)


def _check_split_shapes(name: str, shapes: dict[str, tuple[int, ...]], variable: bool) -> bool:
    """`variable` after checking that every split's x (N, T, F) has one F, and one T unless items have lengths."""
    features = {s: shape[2] for s, shape in shapes.items()}
    if len(set(features.values())) > 1:
        raise DataError(f"{name}: every split needs the same number of features F, got {features}.")
    steps = {s: shape[1] for s, shape in shapes.items()}
    if not variable and len(set(steps.values())) > 1:
        raise DataError(
            f"{name}: splits have different lengths T {steps}; give a lengths array per split "
            f"(variable-length data) or pad them to one length."
        )
    return variable


# ----------------------------------------------------------------------------------------- streaming
class Scratch:
    """A temporary folder for the compact files one streamed dataset reads; removed when the last source
    holding it is collected in the process that made it, or at exit. Pickled (to a worker) it is just
    its path, so a copy never removes the files."""

    def __init__(self, what: str):
        self.path = Path(tempfile.mkdtemp(prefix=f"gridseq-{what}-"))
        self._finalizer = weakref.finalize(self, _remove_folder, str(self.path), os.getpid())

    def __reduce__(self):
        return (str, (str(self.path),))

    def __truediv__(self, name: str) -> Path:
        return self.path / name


def _remove_folder(path: str, pid: int) -> None:
    if os.getpid() == pid:  # not from a forked worker
        shutil.rmtree(path, ignore_errors=True)


class Mapped:
    """One array stored in a file at `offset` (an .npy, an uncompressed .npz member, a raw file), memory-mapped
    read-only on first use in each process: it pickles to DataLoader workers as a path and a header.

    Args:
        path: the file.
        offset: where the array's bytes start.
        dtype, shape: the array's; `fortran` for column-major data.
        owner: an object that must stay alive while the file is read (a `Scratch` folder), or None.
    """

    def __init__(self, path: Path | str, offset: int, dtype, shape: tuple[int, ...], *, fortran: bool = False,
                 owner=None):
        self.path, self.offset, self.dtype, self.shape = str(path), int(offset), np.dtype(dtype), tuple(shape)
        self.fortran, self.owner = fortran, owner
        need = self.offset + self.dtype.itemsize * int(np.prod(self.shape, dtype=np.int64))
        try:
            size = os.path.getsize(self.path)
        except OSError as e:
            raise DataError(f"cannot read {self.path}: {e}.") from e
        if size < need:
            raise DataError(f"{self.path} is truncated: an array of shape {self.shape} ({self.dtype}) needs {need} "
                            f"bytes, the file has {size}; write the file again.")
        self._array, self._pid = None, None

    def __getstate__(self):
        return {**self.__dict__, "_array": None, "_pid": None}

    @property
    def array(self) -> np.ndarray:
        if self._array is None or self._pid != os.getpid():
            if 0 in self.shape:
                self._array = np.zeros(self.shape, self.dtype)
            else:
                self._array = np.memmap(self.path, self.dtype, mode="r", offset=self.offset, shape=self.shape,
                                        order="F" if self.fortran else "C")
            self._pid = os.getpid()
        return self._array


class FlatWriter:
    """Rows of one dtype written back to back to a file, in one pass; `close` gives the `Flat` that reads them.

    Args:
        path: the file to write.
        dtype: of every value.
        row_shape: the shape of one step of a row, e.g. (F,) for sequences; () for token ids.
    """

    def __init__(self, path: Path, dtype, row_shape: tuple[int, ...] = ()):
        self.path, self.dtype, self.row_shape = path, np.dtype(dtype), tuple(row_shape)
        self.file = open(path, "wb")
        self.ends = array.array("q")
        self.total = 0

    def add(self, values) -> None:
        a = np.ascontiguousarray(values, dtype=self.dtype)
        self.file.write(a.tobytes())
        self.total += len(a)
        self.ends.append(self.total)

    def close(self, owner=None) -> Flat:
        self.file.close()
        offsets = np.zeros(len(self.ends) + 1, dtype=np.int64)
        offsets[1:] = np.frombuffer(self.ends, dtype=np.int64) if len(self.ends) else offsets[1:]
        return Flat(Mapped(self.path, 0, self.dtype, (self.total, *self.row_shape), owner=owner), offsets)


class Flat:
    """Variable-length rows stored back to back: row i is values[offsets[i]:offsets[i+1]], memory-mapped;
    the (N+1,) offsets live in memory, so every row's length is known without reading it."""

    def __init__(self, values: Mapped, offsets: np.ndarray):
        self.values, self.offsets = values, offsets

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.values.array[self.offsets[i]: self.offsets[i + 1]]


class SequenceItems:
    """The items of one streamed sequence split: item i is row `index[i]` of `rows` as float32 (T_i, F), cut to
    its length; a NaN or Inf inside it is a DataError naming the row."""

    def __init__(self, rows, index: np.ndarray, lengths: np.ndarray | None, name: str):
        self.rows, self.index, self.lengths, self.name = rows, np.asarray(index, dtype=np.int64), lengths, name

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> np.ndarray:
        row = int(self.index[i])
        a = np.array(self.rows[row], dtype=np.float32)  # a copy out of the map
        if self.lengths is not None:
            a = a[: int(self.lengths[i])]
        if not np.isfinite(a).all():
            raise DataError(
                f"{self.name}: item {row} (0-based, in file order) has NaN or Inf values ({int((~np.isfinite(a)).sum())} "
                f"in its valid steps); fill or drop missing values, or give sequences of different lengths with a "
                f"lengths array/column."
            )
        return a


class StreamedPart(NamedTuple):
    """One split of a streamed sequence file before dividing: rows (indexable, row r -> (T, F)), raw labels
    (N,), lengths (N,) int64 or None, and the (N, T, F) shape x would have in memory."""

    rows: object
    labels: np.ndarray
    lengths: np.ndarray | None
    shape: tuple[int, int, int]


def finish_streamed(name: str, parts: dict[str, StreamedPart], seed: int, source: str, workers: int | None,
                    **extra) -> Dataset:
    """The streamed twin of `finish_sequences`: the same labels, splits, lengths and info, as `StreamSplit`s
    whose items are copied out of `rows`; normalisation statistics from 512 training items (all of them
    when there are fewer, and then the record equals the in-memory one)."""
    variable = _check_split_shapes(name, {s: p.shape for s, p in parts.items()},
                                   any(p.lengths is not None for p in parts.values()))
    _, classes = encode_labels(parts["train"].labels)
    chosen = {}
    for split, p in parts.items():
        lengths = p.lengths
        if variable and lengths is None:
            lengths = np.full(p.shape[0], p.shape[1], dtype=np.int64)
        y = encode_labels(p.labels, classes)[0]
        if split != "train":
            chosen[split] = (p.rows, np.arange(len(y)), y, lengths, p.shape[1])
            continue
        for s, idx in train_val_test(y, seed, test_given="test" in parts, val_given="val" in parts).items():
            chosen[s] = (p.rows, idx, y[idx], None if lengths is None else lengths[idx], p.shape[1])
    items = {s: SequenceItems(rows, idx, lengths, name) for s, (rows, idx, _, lengths, _) in chosen.items()}
    sample, sample_lengths = pad_sequences([items["train"][i] for i in sample_for_stats(len(items["train"]))])
    record = sequence_record(source, sample, sample_lengths if variable else None, **extra)
    splits = {s: StreamSplit(items[s], torch.as_tensor(y, dtype=torch.int64), record=record, workers=workers,
                             lengths=None if lengths is None else torch.as_tensor(lengths, dtype=torch.int64))
              for s, (_, _, y, lengths, _) in chosen.items()}
    longest = max(int(lengths.max()) if lengths is not None and len(lengths) else steps
                  for _, _, _, lengths, steps in chosen.values())
    _logger.info("streaming %d sequences from %s (statistics from %d training items)",
                 sum(len(s) for s in splits.values()), name, len(sample))
    info = DatasetInfo(name=name, kind=record["view"], input_shape=(longest, int(parts["train"].shape[2])),
                       num_classes=len(classes), class_names=tuple(classes), variable_length=variable,
                       preprocessing=record)
    return Dataset(info, splits["train"], splits["val"], splits["test"])

