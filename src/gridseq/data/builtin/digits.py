"""`digits`: scikit-learn's bundled 1,797 real 8x8 handwritten digits, nothing downloaded.

Pixels are 0..16 (ink counts in 4x4 blocks of a 32x32 bitmap), scaled to [0, 1] by /16, then normalised
with the training split's mean and std. The test split (20%, stratified) is fixed; val (10% of the rest)
follows `seed`.
"""

from __future__ import annotations

import importlib
import importlib.util
from functools import lru_cache
from pathlib import Path

import numpy as np

from gridseq.data.assemble import RawSplit, divide, image_dataset
from gridseq.data.builtin import register_dataset, require
from gridseq.data.contract import Dataset

DIGIT_NAMES = tuple(str(d) for d in range(10))


def _digits_file() -> Path | None:
    """scikit-learn's bundled digits.csv.gz, found without importing scikit-learn (~3 s), or None."""
    spec = importlib.util.find_spec("sklearn")
    for root in (spec.submodule_search_locations or []) if spec else []:
        path = Path(root) / "datasets" / "data" / "digits.csv.gz"
        if path.is_file():
            return path
    return None


@lru_cache(maxsize=1)
def digits_raw() -> tuple[np.ndarray, np.ndarray]:
    path = _digits_file()
    if path is not None:
        # the file load_digits() itself reads: 64 pixel columns (0..16) then the label, one row per digit
        table = np.loadtxt(path, delimiter=",", dtype=np.float32)
        pixels, y = table[:, :-1].reshape(-1, 8, 8), table[:, -1].astype(np.int64)
    else:
        bunch = require("sklearn.datasets", "digits").load_digits()
        pixels, y = bunch.images.astype(np.float32), bunch.target.astype(np.int64)
    x = pixels[:, None] / 16.0  # (N, 1, 8, 8) in [0, 1]
    x.setflags(write=False)  # cached: shared by every load
    y.setflags(write=False)
    return x, y


@register_dataset(
    "digits", kind="image", views=("image", "sequence"), sizes=(1294, 144, 359), num_classes=10,
    description="1,797 real 8x8 handwritten digits (scikit-learn)",
)
def digits(seed: int, view: str) -> Dataset:
    """The 8×8 digits as images (N, 1, 8, 8), or with view="sequence" as rows (N, 8, 8).

    Example:
        >>> ds = digits(0, "image")
        >>> tuple(ds.train.x.shape), len(ds.val), len(ds.test)
        ((1294, 1, 8, 8), 144, 359)
    """
    x, y = digits_raw()
    parts = divide(RawSplit(x, y), seed)
    # box resampling at predict time averages blocks of a larger digit image, as the originals were made
    return image_dataset("digits", parts, DIGIT_NAMES, view, resize=True, resample="box", array_scale=1 / 16,
                         source="digits")

