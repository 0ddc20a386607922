"""IDX files, the format MNIST and Fashion-MNIST are distributed in (LeCun et al.), plain or gzipped.

An IDX file is a 4-byte magic number — two zero bytes, a type code (0x08 unsigned byte, 0x09 signed
byte, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64) and the number of dimensions D — then D
big-endian uint32 sizes, then the values in C order, big-endian:

    train-images-idx3-ubyte: 0x00000803, 60000, 28, 28, then 60000·28·28 pixels (uint8, 0 = background)
    train-labels-idx1-ubyte: 0x00000801, 60000, then 60000 labels (uint8)

`read_idx(path)` returns the array (read-only, uint8 stays uint8); `find_idx(folder, stem)` finds
`stem`, `stem.gz` or the `stem` with a dot before "idx" (`train-images.idx3-ubyte`, as some mirrors
name them).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from gridseq.errors import DataError

_TYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
          0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def find_idx(folder: Path, stem: str) -> Path | None:
    """`folder/stem` or its .gz (or the same with "-idx" written ".idx"), whichever exists first, or None."""
    for name in (stem, stem.replace("-idx", ".idx")):
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    return None


def read_idx(path: Path) -> np.ndarray:
    """The array stored in an IDX file (gzipped when its name ends in .gz), in its own dtype, read-only.

    Raises:
        DataError: the file is not IDX (wrong magic, unknown type code, or a size that does not match).
    """
    path = Path(path)
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _TYPES:
        raise DataError(f"{path}: not an IDX file (magic bytes {raw[:4].hex() or 'missing'}; expected 0000 then a "
                        f"type code such as 08 and the number of dimensions).")
    dtype, ndim = _TYPES[raw[2]], raw[3]
    shape = tuple(int(s) for s in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = 4 + 4 * ndim + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        raise DataError(f"{path}: IDX header says shape {shape} ({expected} bytes), but the file holds {len(raw)} bytes; "
                        f"it is truncated or not an IDX file.")
    values = np.frombuffer(raw, dtype=dtype, offset=4 + 4 * ndim).reshape(shape)
    if dtype.byteorder == ">":
        values = values.astype(dtype.newbyteorder("="))
    values.setflags(write=False)
    return values
