"""Probe datasets: synthetic long-range memory tasks and MNIST-1D with its positions shuffled.

- `adding` (Hochreiter & Schmidhuber 1997; the variant of Le, Jaitly & Hinton 2015): each step has two
  features, a value drawn uniformly from [0, 1) and a marker that is 1 at exactly two steps — one in
  the first half, one in the second — and 0 elsewhere. The target is the sum of the two marked values
  (task "regress", one target). Always answering 1 scores MSE 1/6 ≈ 0.167; "solved" means test
  MSE < 0.01. Option `length` (T, default 50): the number of steps.
- `copy` (copy memory; Hochreiter & Schmidhuber 1997, as in Arjovsky, Shah & Bengio 2016): 10 symbols
  drawn from 8, then `length` blanks, then a delimiter, then 10 more blanks; at the last 10 steps the
  model must output the 10 symbols in order. Inputs are one-hot over 10 input codes (0 blank, 1-8
  symbols, 9 delimiter), so T = length + 20 steps of 10 features. Task "tag": the last 10 steps are
  labelled with the symbol (class 0-7), every other step with -100 (not scored), so `accuracy` is the
  accuracy on the recalled symbols; "solved" means > 0.99. Guessing scores 1/8. Option `length`
  (default 50).
- `mnist1d-shuffled`: MNIST-1D with one fixed permutation of its 40 positions applied to every series,
  train and test alike (Greydanus 2020, "Scaling down deep learning", the shuffled-pixels experiment):
  the local structure a CNN's spatial prior relies on is gone, the information is not. The
  permutation is `numpy.random.RandomState(0).permutation(40)`, recorded in the dataset's info.

The generated datasets are the same on every machine: the test split comes from a generator seeded
by the task and the length only; the validation split (10% of the rest) follows `seed`.
"""

from __future__ import annotations

import numpy as np
import torch

from gridseq._validation import check_positive_int
from gridseq.constants import IGNORE_INDEX
from gridseq.data.assemble import RawSplit, divide, sequence_dataset
from gridseq.data.builtin import register_dataset
from gridseq.data.builtin.digits import DIGIT_NAMES
from gridseq.data.builtin.mnist1d import mnist1d_raw
from gridseq.data.contract import Dataset, DatasetInfo, Split

IGNORE = IGNORE_INDEX  # the tag task's "no label at this step" (as torch's cross_entropy ignore_index)
COPY_SYMBOLS, COPY_RECALL = 8, 10  # symbols to choose from, symbols to remember
ADDING_SIZES = (9000, 1000, 1000)
COPY_SIZES = (4500, 500, 1000)
SHUFFLE_SEED = 0
SOLVED = {"adding": ("mse", 0.01, False), "copy": ("accuracy", 0.99, True)}  # metric, threshold, higher is better


def _rng(task: str, length: int, part: str) -> np.random.Generator:
    # one generator per (task, length, part), independent of the user's seed and of each other
    key = [ord(c) for c in f"{task}/{part}"] + [length]
    return np.random.default_rng(key)


def adding_items(n: int, length: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """`n` adding-problem items: x (n, length, 2) float32 [value, marker], y (n, 1) float32.

    Example:
        >>> x, y = adding_items(3, 10, np.random.default_rng(0))
        >>> x.shape, y.shape, x[..., 1].sum(axis=1).tolist()
        ((3, 10, 2), (3, 1), [2.0, 2.0, 2.0])
    """
    if length < 2:
        raise ValueError(f"the adding problem needs length >= 2, got {length}")
    values = rng.random((n, length), dtype=np.float32)
    half = length // 2
    first = rng.integers(0, half, n)  # one marker in each half
    second = rng.integers(half, length, n)
    markers = np.zeros((n, length), dtype=np.float32)
    rows = np.arange(n)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    y = (values[rows, first] + values[rows, second])[:, None]
    return np.stack([values, markers], axis=-1), y.astype(np.float32)


def copy_items(n: int, length: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """`n` copy-memory items: x (n, length + 20, 10) one-hot float32, y (n, length + 20) int64 (-100 but
    at the last 10 steps, which hold the symbols to recall, 0-7).

    Example:
        >>> x, y = copy_items(2, 5, np.random.default_rng(0))
        >>> x.shape, (y[0] != -100).sum().item(), bool((x.sum(-1) == 1).all())
        ((2, 25, 10), 10, True)
    """
    steps = length + 2 * COPY_RECALL
    symbols = rng.integers(0, COPY_SYMBOLS, (n, COPY_RECALL))  # classes 0-7; input codes 1-8
    codes = np.zeros((n, steps), dtype=np.int64)  # 0 = blank
    codes[:, :COPY_RECALL] = symbols + 1
    codes[:, COPY_RECALL + length - 1] = COPY_SYMBOLS + 1  # the delimiter: "recall now", 10 steps before the end
    x = np.eye(COPY_SYMBOLS + 2, dtype=np.float32)[codes]  # (n, steps, 10)
    y = np.full((n, steps), IGNORE, dtype=np.int64)
    y[:, -COPY_RECALL:] = symbols
    return x, y


def _check_length(length: int) -> int:
    return check_positive_int(length, "length", minimum=2)


def _generated(name: str, length: int, seed: int, sizes: tuple[int, int, int], make) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    train, val, test = sizes
    x, y = make(train + val, length, _rng(name, length, "train"))
    x_test, y_test = make(test, length, _rng(name, length, "test"))
    order = np.random.default_rng(seed).permutation(train + val)
    return {"train": (x[order[:train]], y[order[:train]]), "val": (x[order[train:]], y[order[train:]]),
            "test": (x_test, y_test)}


def _dataset(name: str, parts: dict, *, task: str, num_classes: int, class_names: tuple[str, ...], record: dict) -> Dataset:
    splits = {k: Split(torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.ascontiguousarray(y)))
              for k, (x, y) in parts.items()}
    x = parts["train"][0]
    info = DatasetInfo(name=name, kind="sequence", input_shape=(int(x.shape[1]), int(x.shape[2])),
                       num_classes=num_classes, class_names=class_names, task=task, preprocessing=record)
    return Dataset(info, splits["train"], splits["val"], splits["test"])


@register_dataset(
    "adding", kind="sequence", sizes=ADDING_SIZES, num_classes=1,
    description="adding problem: sum the 2 marked values of a long sequence (regression; option length)",
)
def adding(seed: int, view: str, *, length: int = 50) -> Dataset:
    """The adding problem with `length` steps: x (N, length, 2), y (N, 1) float; task "regress".

    Example:
        >>> ds = adding(0, "sequence", length=20)
        >>> tuple(ds.train.x.shape), tuple(ds.train.y.shape), ds.info.task
        ((9000, 20, 2), (9000, 1), 'regress')
    """
    length = _check_length(length)
    parts = _generated("adding", length, seed, ADDING_SIZES, adding_items)
    record = {"source": "adding", "layout": "sequence", "view": "sequence", "normalize": None,
              "sequence": {"features": 2, "length": length}, "length": length,
              "solved": {"metric": "mse", "below": 0.01, "baseline_mse": 1 / 6}}
    return _dataset("adding", parts, task="regress", num_classes=1, class_names=("sum",), record=record)


@register_dataset(
    "copy", kind="sequence", sizes=COPY_SIZES, num_classes=COPY_SYMBOLS,
    description="copy memory: recall 10 symbols after a delay (per-step tagging; option length)",
)
def copy(seed: int, view: str, *, length: int = 50) -> Dataset:
    """Copy memory with a delay of `length` blanks: x (N, length + 20, 10), y (N, length + 20); task "tag".

    Example:
        >>> ds = copy(0, "sequence", length=30)
        >>> tuple(ds.train.x.shape), ds.info.task, ds.info.num_classes
        ((4500, 50, 10), 'tag', 8)
    """
    length = _check_length(length)
    parts = _generated("copy", length, seed, COPY_SIZES, copy_items)
    record = {"source": "copy", "layout": "sequence", "view": "sequence", "normalize": None,
              "sequence": {"features": COPY_SYMBOLS + 2, "length": length + 2 * COPY_RECALL}, "length": length,
              "solved": {"metric": "accuracy", "above": 0.99, "chance": 1 / COPY_SYMBOLS}}
    names = tuple(str(s) for s in range(1, COPY_SYMBOLS + 1))
    return _dataset("copy", parts, task="tag", num_classes=COPY_SYMBOLS, class_names=names, record=record)


def shuffle_permutation(steps: int = 40) -> np.ndarray:
    """The fixed permutation of `mnist1d-shuffled`'s positions."""
    return np.random.RandomState(SHUFFLE_SEED).permutation(steps)


@register_dataset(
    "mnist1d-shuffled", kind="sequence", sizes=(3600, 400, 1000), num_classes=10,
    description="MNIST-1D with one fixed permutation of its 40 positions (spatial priors stop helping)",
)
def mnist1d_shuffled(seed: int, view: str) -> Dataset:
    """MNIST-1D (N, 40, 1) with the positions of every series permuted by one fixed permutation.

    Example:
        >>> ds = mnist1d_shuffled(0, "sequence")
        >>> tuple(ds.train.x.shape), len(ds.info.preprocessing["permutation"])
        ((3600, 40, 1), 40)
    """
    x, y, x_test, y_test = mnist1d_raw()
    perm = shuffle_permutation(x.shape[1])
    parts = divide(RawSplit(x[:, perm], y), seed, test=RawSplit(x_test[:, perm], y_test))
    return sequence_dataset("mnist1d-shuffled", parts, DIGIT_NAMES, source="mnist1d", permutation=perm.tolist())
