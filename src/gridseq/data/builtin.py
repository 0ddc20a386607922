"""Built-in datasets that ship with gridseq's dependencies: nothing is downloaded.

- `digits`: scikit-learn's bundled 1,797 real 8×8 handwritten digits. Pixels are 0..16 (ink counts
  in 4×4 blocks of a 32×32 bitmap), scaled to [0, 1] by /16, then normalised with the training
  split's mean and std. The test split (20%, stratified) is fixed; val (10% of the rest) follows `seed`.
- `mnist1d`: MNIST-1D (Greydanus, 2020) made by the `mnist1d` package's own generator with its default
  arguments: 4,000 train / 1,000 test series of length 40 — the published split. The generator already
  centres the data and scales it to std 1; the per-feature z-score with training statistics on top is
  then nearly the identity, and is recorded like any other. Val (10% of train) follows `seed`.
"""

from __future__ import annotations

import importlib
import importlib.util
import random
from functools import lru_cache
from pathlib import Path

import numpy as np

from gridseq.data.build import RawSplit, divide, image_dataset, sequence_dataset
from gridseq.data.catalog import register_dataset
from gridseq.data.split import Dataset
from gridseq.errors import DataError

DIGIT_NAMES = tuple(str(d) for d in range(10))


def _require(module: str, dataset: str):
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise DataError(
            f"dataset {dataset!r} needs the {module.split('.')[0]!r} package, which is not installed "
            f"({e}); install it with: pip install 'gridseq[datasets]'."
        ) from e


def _digits_file() -> Path | None:
    """scikit-learn's bundled digits.csv.gz, found without importing scikit-learn (~3 s), or None."""
    spec = importlib.util.find_spec("sklearn")
    for root in (spec.submodule_search_locations or []) if spec else []:
        path = Path(root) / "datasets" / "data" / "digits.csv.gz"
        if path.is_file():
            return path
    return None


@lru_cache(maxsize=1)
def _digits_raw() -> tuple[np.ndarray, np.ndarray]:
    path = _digits_file()
    if path is not None:
        # the file load_digits() itself reads: 64 pixel columns (0..16) then the label, one row per digit
        table = np.loadtxt(path, delimiter=",", dtype=np.float32)
        pixels, y = table[:, :-1].reshape(-1, 8, 8), table[:, -1].astype(np.int64)
    else:
        bunch = _require("sklearn.datasets", "digits").load_digits()
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
    x, y = _digits_raw()
    parts = divide(RawSplit(x, y), seed)
    # box resampling at predict time averages blocks of a larger digit image, as the originals were made
    return image_dataset("digits", parts, DIGIT_NAMES, view, resize=True, resample="box", array_scale=1 / 16,
                         source="digits")


@lru_cache(maxsize=1)
def _mnist1d_raw() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    data_module = _require("mnist1d.data", "mnist1d")
    # the generator reseeds the global `random` and numpy RNGs; put the caller's state back afterwards
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        data = data_module.make_dataset(data_module.get_dataset_args())
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
    arrays = (
        data["x"].astype(np.float32)[:, :, None],  # (4000, 40, 1): T=40 steps, F=1
        data["y"].astype(np.int64),
        data["x_test"].astype(np.float32)[:, :, None],
        data["y_test"].astype(np.int64),
    )
    for a in arrays:
        a.setflags(write=False)
    return arrays


@register_dataset(
    "mnist1d", kind="sequence", sizes=(3600, 400, 1000), num_classes=10,
    description="MNIST-1D: 1-D digit signals of length 40 (generated)",
)
def mnist1d(seed: int, view: str) -> Dataset:
    """MNIST-1D as sequences (N, 40, 1); the 1,000 test series are the generator's own test split.

    Example:
        >>> ds = mnist1d(0, "sequence")
        >>> tuple(ds.train.x.shape), len(ds.val), len(ds.test)
        ((3600, 40, 1), 400, 1000)
    """
    x, y, x_test, y_test = _mnist1d_raw()
    parts = divide(RawSplit(x, y), seed, test=RawSplit(x_test, y_test))
    return sequence_dataset("mnist1d", parts, DIGIT_NAMES, source="mnist1d")
