"""Train/val/test splits and label encoding, shared by the built-ins and the file readers.

The rule everywhere: the test split is drawn with a constant seed, so it never changes with `--seed`
(scores stay comparable across runs), and the validation split is carved from the rest with the
run's `seed`. Both draws are stratified: every class keeps its share in every split.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from gridseq.errors import DataError

TEST_FRACTION = 0.2
VAL_FRACTION = 0.1
TEST_SEED = 20_240_601  # constant on purpose: the test split must not depend on the run's seed


def split_sizes(n: int, test_fraction: float = TEST_FRACTION, val_fraction: float = VAL_FRACTION) -> tuple[int, int, int]:
    """(train, val, test) sizes for `n` items: test = round(test_fraction·n), val = round(val_fraction·rest).

    Test and val get at least one item each, so every split can be evaluated; a fraction of 0 gives
    an empty split (used when the split is predefined). Needs a non-empty train split.

    Example:
        >>> split_sizes(1797)
        (1294, 144, 359)
    """
    n_test = _at_least_one(test_fraction * n, test_fraction)
    n_val = _at_least_one(val_fraction * (n - n_test), val_fraction)
    n_train = n - n_test - n_val
    if n_train < 1:
        raise DataError(
            f"too few items to split: {n} items give train/val/test = {n_train}/{n_val}/{n_test}; "
            f"provide at least 3 items (a few per class for a meaningful score)."
        )
    return n_train, n_val, n_test


def _at_least_one(x: float, fraction: float) -> int:
    return 0 if fraction == 0 else max(1, int(np.floor(x + 0.5)))


def stratified_sample(y: np.ndarray, count: int, seed: int) -> np.ndarray:
    """Indices (sorted) of `count` items drawn from labels `y` so each class keeps its proportion.

    Per-class quotas use the largest-remainder rule, so the quotas add up to exactly `count`; ties go
    to the lower class index. Which items fill a quota is a seeded permutation.
    """
    y = np.asarray(y)
    classes, counts = np.unique(y, return_counts=True)
    exact = counts * (count / max(len(y), 1))
    quota = np.floor(exact).astype(np.int64)
    remainder = exact - quota
    order = np.lexsort((np.arange(len(classes)), -remainder))  # largest remainder first
    quota[order[: count - int(quota.sum())]] += 1
    rng = np.random.default_rng(seed)
    picked = [rng.permutation(np.flatnonzero(y == c))[:q] for c, q in zip(classes, quota)]
    return np.sort(np.concatenate(picked)) if picked else np.zeros(0, np.int64)


def test_indices(y: np.ndarray, fraction: float = TEST_FRACTION) -> np.ndarray:
    """The test split of an undivided set: stratified, drawn with the constant TEST_SEED."""
    _, _, n_test = split_sizes(len(y), fraction, VAL_FRACTION)
    return stratified_sample(y, n_test, TEST_SEED)


def val_indices(y: np.ndarray, seed: int, fraction: float = VAL_FRACTION) -> np.ndarray:
    """The validation split carved from a training set with labels `y`: stratified, drawn with `seed`."""
    _, n_val, _ = split_sizes(len(y), 0.0, fraction)
    return stratified_sample(y, n_val, seed)


def fold_indices(y: np.ndarray | None, n: int, folds: int, seed: int) -> np.ndarray:
    """Fold number (0..folds-1) per item for k-fold cross-validation, stratified by the labels `y`.

    Each class's items are shuffled (seeded) and dealt round-robin, the next class continuing the deal
    where the last stopped, so every class is spread evenly over the folds and fold sizes differ by at
    most one. `y=None` deals all `n` items as one class (unstratified).

    Example:
        >>> np.bincount(fold_indices(np.array([0] * 6 + [1] * 4), 10, folds=2, seed=0))
        array([5, 5])
    """
    labels = np.zeros(n, dtype=np.int64) if y is None else np.asarray(y)
    rng = np.random.default_rng(seed)
    out = np.empty(n, dtype=np.int64)
    start = 0
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        out[idx] = (start + np.arange(len(idx))) % folds
        start += len(idx)
    return out


def train_val_test(y: np.ndarray, seed: int, *, test_given: bool = False, val_given: bool = False) -> dict[str, np.ndarray]:
    """Indices into `y` for the splits that are not predefined.

    Args:
        y: labels of the items to divide (all items, or the training items when test is predefined).
        seed: the run's seed; only the validation draw uses it.
        test_given: the source has its own test split, so none is drawn from `y`.
        val_given: the source has its own validation split, so none is carved from `y`.
    Returns:
        {"train": idx, "val": idx, "test": idx} with the predefined splits' entries absent.
    """
    rest = np.arange(len(y))
    out: dict[str, np.ndarray] = {}
    if not test_given:
        out["test"] = test_indices(y)
        rest = np.setdiff1d(rest, out["test"])
    if not val_given:
        val = rest[val_indices(y[rest], seed)]
        out["val"] = val
        rest = np.setdiff1d(rest, val)
    if len(rest) == 0:
        raise DataError(f"no training items left after splitting {len(y)} items; provide more data.")
    out["train"] = rest
    return out


def encode_labels(values: Sequence | np.ndarray, classes: Sequence[str] | None = None) -> tuple[np.ndarray, tuple[str, ...]]:
    """Map raw labels to class indices 0..K-1 in sorted order.

    Numbers (or strings that all read as numbers) sort numerically, so "2" comes before "10"; any
    other labels sort as strings. Integral numbers are named without a decimal point ("3", not "3.0").

    Args:
        values: one raw label per item.
        classes: the class names to map onto (e.g. from the training split); None derives them.
    Returns:
        (int64 indices, class names).
    Raises:
        DataError: a label is not one of `classes`.

    Example:
        >>> encode_labels(["10", "2", "2"])
        (array([1, 0, 0]), ('2', '10'))
    """
    names = [_label_name(v) for v in np.asarray(values).tolist()]
    if classes is None:
        unique = set(names)
        numeric = {n: _as_number(n) for n in unique}
        if all(v is not None for v in numeric.values()):
            classes = tuple(sorted(unique, key=lambda n: numeric[n]))
        else:
            classes = tuple(sorted(unique))
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted(set(names) - set(index))
    if unknown:
        raise DataError(
            f"labels {unknown[:5]} do not occur in the training data (classes: {', '.join(classes)}); "
            f"every class needs training examples."
        )
    return np.array([index[n] for n in names], dtype=np.int64), tuple(classes)


def _as_number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _label_name(v) -> str:
    if isinstance(v, bytes):
        v = v.decode()
    if isinstance(v, str):
        v = v.strip()
        number = _as_number(v)
        if number is None or not np.isfinite(number) or number != int(number):
            return v
        v = number
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)
