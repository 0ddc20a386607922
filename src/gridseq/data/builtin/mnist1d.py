"""`mnist1d`: MNIST-1D (Greydanus, 2020) made by the `mnist1d` package's own generator with its default
arguments: 4,000 train / 1,000 test series of length 40, the published split.

The generator already centres the data and scales it to std 1; the per-feature z-score with training
statistics on top is then nearly the identity, and is recorded like any other. Val (10% of train) follows `seed`.
"""

from __future__ import annotations

import random
from functools import lru_cache

import numpy as np

from gridseq.data.assemble import RawSplit, divide, sequence_dataset
from gridseq.data.builtin import register_dataset, require
from gridseq.data.builtin.digits import DIGIT_NAMES
from gridseq.data.contract import Dataset


@lru_cache(maxsize=1)
def mnist1d_raw() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    data_module = require("mnist1d.data", "mnist1d")
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
    x, y, x_test, y_test = mnist1d_raw()
    parts = divide(RawSplit(x, y), seed, test=RawSplit(x_test, y_test))
    return sequence_dataset("mnist1d", parts, DIGIT_NAMES, source="mnist1d")

