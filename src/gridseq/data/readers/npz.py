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

Streaming (`stream=True`, or automatically when x would take over 10% of available memory or 256 MiB as
float32): the x arrays are memory-mapped and DataLoader workers copy out the items a batch needs; y and
lengths (small) are read into memory, so splits and length buckets are known without touching x. An
`np.savez` member is stored uncompressed in the zip, so it is mapped in place at its offset; an
`np.savez_compressed` member cannot be mapped: it is inflated once, chunk by chunk, to a temporary
.npy file (removed at exit) that is mapped instead — disk, not memory. Normalisation statistics come
from 512 training items; a NaN inside an item is reported when a batch reads it.
"""


from __future__ import annotations

import logging
import shutil
import struct
import zipfile
from pathlib import Path
from typing import NamedTuple

import numpy as np

from gridseq.data.contract import Dataset
from gridseq.data.padding import valid_mask
from gridseq.data.preprocessing import check_finite_items
from gridseq.data.readers.arrays import Mapped, Scratch, StreamedPart, finish_sequences, finish_streamed
from gridseq.data.stream import should_stream
from gridseq.errors import DataError

_logger = logging.getLogger(__name__)


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


def _split_suffix(path: Path | str, split: str, names) -> str | None:
    """The suffix ("", "_train", "_val" or "_test") under which the file's arrays `names` hold `split`'s x and y;
    None when it has neither. Raises DataError when it has only one of them."""
    found = [s for s in SPLIT_SUFFIXES[split] if f"x{s}" in names or f"y{s}" in names]
    if not found:
        return None
    s = found[0]
    missing = [k for k in (f"x{s}", f"y{s}") if k not in names]
    if missing:
        raise DataError(
            f"{path}: missing array {' and '.join(map(repr, missing))} (the file has {', '.join(sorted(names))}); "
            f"save with np.savez(path, x=..., y=..., lengths=...)."
        )
    return s


def load_npz(path: Path | str, seed: int, view: str, *, stream: bool | None = None,
             workers: int | None = None) -> Dataset:
    """Read an .npz of sequences (see the module docstring) as a "sequence" dataset.

    Args:
        stream: True memory-maps x and copies items out in worker processes, False reads every array
            now; None (default) streams when x would take over 10% of available memory or 256 MiB as
            float32.
        workers: loader processes of a streamed file (0: in the training process). Default: half the cores
            available, 1 to 4.
    Raises:
        DataError: missing x or y (named), mismatched N between x, y and lengths, lengths > T,
            non-numeric or ragged x, NaN inside a sequence (streamed: when a batch reads the item).
    """
    members = None if stream is False else _npz_headers(path, quiet=stream is None)
    if members is not None and should_stream(_npz_decoded_bytes(members), stream):
        return _streamed_npz(path, members, seed, workers)
    arrays = read_npz(path)
    raw = {}
    for split in SPLIT_SUFFIXES:
        s = _split_suffix(path, split, arrays)
        if s is None:
            continue
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


class NpyRows:
    """Row r of a memory-mapped x (N, T, F) or (N, T) as (T, F)."""

    def __init__(self, x: Mapped):
        self.x = x

    def __len__(self) -> int:
        return self.x.shape[0]

    def __getitem__(self, r: int) -> np.ndarray:
        row = self.x.array[r]
        return row[:, None] if row.ndim == 1 else row


class _Member(NamedTuple):
    """One .npy member of an .npz: its header, and where its data starts in the .npz file (None: compressed)."""

    shape: tuple[int, ...]
    dtype: np.dtype
    fortran: bool
    header: int  # bytes of .npy header before the data, inside the member
    file_offset: int | None
    info: zipfile.ZipInfo


def _npz_headers(path: Path | str, *, quiet: bool) -> dict[str, _Member] | None:
    """The .npy headers of every member of an .npz, read without reading any data. A file that is not a
    readable .npz gives None when `quiet` (the in-memory reader then says what is wrong), else a DataError."""
    try:
        out = {}
        with zipfile.ZipFile(path) as zf, open(path, "rb") as raw:
            for info in zf.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                with zf.open(info) as f:
                    version = np.lib.format.read_magic(f)
                    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                    shape, fortran, dtype = read(f)
                    header = f.tell()
                offset = None
                if info.compress_type == zipfile.ZIP_STORED:
                    raw.seek(info.header_offset)
                    local = raw.read(30)  # the local file header: its name and extra field come before the data
                    if local[:4] != b"PK\x03\x04":
                        raise zipfile.BadZipFile(f"bad local header for member {info.filename}")
                    name_len, extra_len = struct.unpack("<HH", local[26:30])
                    offset = info.header_offset + 30 + name_len + extra_len + header
                out[info.filename[: -len(".npy")]] = _Member(tuple(shape), np.dtype(dtype), fortran, header, offset, info)
        return out
    except (OSError, zipfile.BadZipFile, ValueError, EOFError, struct.error) as e:
        if quiet:
            return None
        read_npz(path)  # raises the in-memory reader's precise DataError
        raise DataError(f"cannot read {path} as an .npz file: {e}.") from e


def _npz_decoded_bytes(members: dict[str, _Member]) -> int:
    """Bytes of every x array as float32."""
    return sum(4 * int(np.prod(m.shape, dtype=np.int64)) for k, m in members.items() if k in ("x", "x_train", "x_val", "x_test"))


def _mapped_member(path: Path | str, key: str, m: _Member, scratch: list) -> Mapped:
    """A member of the .npz as a memory map: in place when stored, else inflated once to a temporary .npy."""
    if m.file_offset is not None:
        return Mapped(path, m.file_offset, m.dtype, m.shape, fortran=m.fortran)
    if not scratch:
        scratch.append(Scratch("npz"))
    target = scratch[0] / f"{key}.npy"
    _logger.info("inflating compressed member %r of %s to %s to memory-map it", key, path, target)
    try:
        with zipfile.ZipFile(path) as zf, zf.open(m.info) as src, open(target, "wb") as out:
            shutil.copyfileobj(src, out, 1 << 22)  # 4 MiB at a time
    except (OSError, zipfile.BadZipFile, EOFError) as e:
        raise DataError(f"cannot read {path} as an .npz file: {e}.") from e
    return Mapped(target, m.header, m.dtype, m.shape, fortran=m.fortran, owner=scratch[0])


def _streamed_npz(path: Path | str, members: dict[str, _Member], seed: int, workers: int | None) -> Dataset:
    """`load_npz` with x memory-mapped (see the module docstring): the same checks on everything but x's values."""
    keys = sorted(members)
    scratch: list = []
    parts = {}
    with np.load(path, allow_pickle=False) as f:
        for split in SPLIT_SUFFIXES:
            s = _split_suffix(path, split, members)
            if s is None:
                continue
            m, source = members[f"x{s}"], f"{path} [x{s}]"
            if m.dtype.kind not in "biuf":
                raise DataError(f"{source}: x must hold numbers, got dtype {m.dtype}.")
            if len(m.shape) not in (2, 3):
                raise DataError(
                    f"{source}: expected x of shape (N, T, F) or (N, T) (items, time steps, features), got "
                    f"{m.shape}; images go in an image folder."
                )
            try:
                y = f[f"y{s}"]
                lengths = f[f"lengths{s}"] if f"lengths{s}" in members else None
            except ValueError as e:
                raise DataError(
                    f"cannot read {path}: {e}. Object (ragged) arrays are not supported: pad sequences to one length "
                    f"T and pass their lengths as a `lengths` array."
                ) from e
            except (OSError, zipfile.BadZipFile, EOFError) as e:
                raise DataError(f"cannot read {path} as an .npz file: {e}.") from e
            n, t = m.shape[0], m.shape[1]
            if y.ndim != 1 or len(y) != n:
                raise DataError(
                    f"{path}: y{s} must have shape (N,) with N = len(x{s}) = {n}, got y{s} of shape {y.shape}; "
                    f"one label per sequence."
                )
            if lengths is not None:
                lengths = check_lengths(lengths, n, t, source)
            shape = (n, t, m.shape[2] if len(m.shape) == 3 else 1)
            parts[split] = StreamedPart(NpyRows(_mapped_member(path, f"x{s}", m, scratch)), y, lengths, shape)
    if "train" not in parts:
        raise DataError(
            f"{path}: missing arrays 'x' and 'y' (the file has {', '.join(keys) or 'no arrays'}); "
            f"save with np.savez(path, x=..., y=..., lengths=...)."
        )
    return finish_streamed(str(path), parts, seed, "npz", workers)

