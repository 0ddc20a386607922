"""Sequence files: `.npz` arrays, and the shared checks that turn raw sequences into a dataset.

An `.npz` file holds
    x        (N, T, F) or (N, T) numbers — N sequences of T steps with F features (F=1 for (N, T))
    y        (N,) labels (ints or strings)
    lengths  (N,) valid lengths, optional: then items are variable length and steps past an item's
             length are padding (any value, NaN included)
and optionally its own splits, `x_val`/`y_val`(/`lengths_val`) and `x_test`/`y_test`(/`lengths_test`);
`x_train`/`y_train` may stand for `x`/`y`. A missing test split is a stratified 20% drawn with a constant
seed; a missing val split is 10% of train drawn with `seed`.

    np.savez("walks.npz", x=x, y=y, lengths=lengths, x_test=x_test, y_test=y_test)
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from gridseq.data.build import RawSplit, divide, sequence_dataset
from gridseq.data.split import Dataset
from gridseq.data.splitting import encode_labels
from gridseq.data.transforms import check_finite_items, valid_mask
from gridseq.errors import DataError

SPLIT_SUFFIXES = {"train": ("", "_train"), "val": ("_val",), "test": ("_test",)}


def read_npz(path: Path | str) -> dict[str, np.ndarray]:
    """All arrays of an .npz file, read without pickle; DataError if the file is not a readable .npz."""
    try:
        f = np.load(path, allow_pickle=False)
        if isinstance(f, np.lib.npyio.NpzFile):
            with f:
                return {k: f[k] for k in f.files}
    except ValueError as e:
        raise DataError(
            f"cannot read {path}: {e}. Object (ragged) arrays are not supported: pad sequences to one length "
            f"T and pass their lengths as a `lengths` array."
        ) from e
    except (OSError, zipfile.BadZipFile, EOFError) as e:
        raise DataError(f"cannot read {path} as an .npz file: {e}.") from e
    raise DataError(f"{path} holds a single array, not an .npz archive; save it with np.savez(path, x=..., y=...).")


def as_sequences(x: np.ndarray, lengths: np.ndarray | None, source: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Check and convert raw sequences to float32 (N, T, F) and int64 lengths (N,) or None.

    Raises:
        DataError: x is not numeric or not 2-D/3-D; lengths are not (N,) integers in [1, T]; a valid
            step holds NaN/Inf.
    """
    x = np.asarray(x)
    if x.dtype.kind not in "biuf":
        raise DataError(f"{source}: x must hold numbers, got dtype {x.dtype}.")
    if x.ndim == 2:
        x = x[:, :, None]  # (N, T) -> (N, T, 1): one feature per step
    if x.ndim != 3:
        raise DataError(
            f"{source}: expected x of shape (N, T, F) or (N, T) (items, time steps, features), got "
            f"{x.shape}; images go in an image folder."
        )
    x = x.astype(np.float32)
    if lengths is not None:
        lengths = check_lengths(lengths, len(x), x.shape[1], source)
    check_finite_items(x, lengths, source)
    if lengths is not None:
        x[~valid_mask(x, lengths)] = 0.0
    return x, lengths


def check_lengths(lengths, n: int, t: int, source: str) -> np.ndarray:
    """`lengths` as int64 (n,), each in [1, t]; DataError otherwise."""
    lengths = np.asarray(lengths)
    if lengths.shape != (n,):
        raise DataError(f"{source}: expected lengths of shape (N,) = ({n},), one per item, got {lengths.shape}.")
    if lengths.dtype.kind not in "iuf" or (lengths.dtype.kind == "f" and not np.all(np.mod(lengths, 1) == 0)):
        raise DataError(f"{source}: lengths must be whole numbers, got dtype {lengths.dtype}.")
    lengths = lengths.astype(np.int64)
    if n and (lengths.min() < 1 or lengths.max() > t):
        bad = int(np.flatnonzero((lengths < 1) | (lengths > t))[0])
        raise DataError(
            f"{source}: lengths must lie in [1, T={t}] (T = x.shape[1]), but item {bad} has length "
            f"{int(lengths[bad])}; pad x to the longest sequence or fix lengths."
        )
    return lengths


def finish_sequences(name: str, raw: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray | None]], seed: int,
                     source: str, **extra) -> Dataset:
    """Dataset from raw sequences per split ({"train": (x, y, lengths), optionally "val", "test"}).

    Labels are encoded in sorted order from the training labels. Items are variable length when any
    split has lengths (splits without lengths then get the full length). Splits not given are drawn
    from "train" by the usual rules.
    """
    features = {s: x.shape[2] for s, (x, _, _) in raw.items()}
    if len(set(features.values())) > 1:
        raise DataError(f"{name}: every split needs the same number of features F, got {features}.")
    variable = any(lengths is not None for _, _, lengths in raw.values())
    steps = {s: x.shape[1] for s, (x, _, _) in raw.items()}
    if not variable and len(set(steps.values())) > 1:
        raise DataError(
            f"{name}: splits have different lengths T {steps}; give a lengths array per split "
            f"(variable-length data) or pad them to one length."
        )
    _, classes = encode_labels(raw["train"][1])
    parts = {}
    for split, (x, y, lengths) in raw.items():
        if variable and lengths is None:
            lengths = np.full(len(x), x.shape[1], dtype=np.int64)
        parts[split] = RawSplit(x, encode_labels(y, classes)[0], lengths)
    divided = divide(parts["train"], seed, test=parts.get("test"), val=parts.get("val"))
    return sequence_dataset(name, divided, classes, source=source, **extra)


def load_npz(path: Path | str, seed: int, view: str) -> Dataset:
    """Read an .npz of sequences (see the module docstring) as a "sequence" dataset.

    Raises:
        DataError: missing x or y (named), mismatched N between x, y and lengths, lengths > T,
            non-numeric or ragged x, NaN inside a sequence.
    """
    arrays = read_npz(path)
    raw = {}
    for split, suffixes in SPLIT_SUFFIXES.items():
        found = [s for s in suffixes if f"x{s}" in arrays or f"y{s}" in arrays]
        if not found:
            continue
        s = found[0]
        missing = [k for k in (f"x{s}", f"y{s}") if k not in arrays]
        if missing:
            raise DataError(
                f"{path}: missing array {' and '.join(map(repr, missing))} (the file has {', '.join(sorted(arrays))}); "
                f"save with np.savez(path, x=..., y=..., lengths=...)."
            )
        x, y, lengths = arrays[f"x{s}"], arrays[f"y{s}"], arrays.get(f"lengths{s}")
        if y.ndim != 1 or len(y) != len(x):
            raise DataError(
                f"{path}: y{s} must have shape (N,) with N = len(x{s}) = {len(x)}, got y{s} of shape {y.shape}; "
                f"one label per sequence."
            )
        x, lengths = as_sequences(x, lengths, f"{path} [x{s}]")
        raw[split] = (x, y, lengths)
    if "train" not in raw:
        raise DataError(
            f"{path}: missing arrays 'x' and 'y' (the file has {', '.join(sorted(arrays)) or 'no arrays'}); "
            f"save with np.savez(path, x=..., y=..., lengths=...)."
        )
    return finish_sequences(str(path), raw, seed, "npz")
