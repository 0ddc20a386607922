"""Split rules and label encoding."""

import numpy as np
import pytest

from gridseq.data.partition import encode_labels, split_sizes, stratified_sample, train_val_test
from gridseq.errors import DataError


def test_split_sizes_round_and_keep_every_split_non_empty():
    assert split_sizes(1797) == (1294, 144, 359)
    assert split_sizes(4000, 0.0) == (3600, 400, 0)
    assert split_sizes(3) == (1, 1, 1)
    with pytest.raises(DataError, match="too few items"):
        split_sizes(2)


def test_train_val_test_cover_every_item_once_and_only_val_follows_seed():
    y = np.repeat(np.arange(4), [50, 30, 15, 5])
    a, b = train_val_test(y, seed=0), train_val_test(y, seed=1)
    for parts in (a, b):
        joined = np.concatenate(list(parts.values()))
        assert sorted(joined.tolist()) == list(range(len(y)))
    assert np.array_equal(a["test"], b["test"])
    assert not np.array_equal(a["val"], b["val"])
    assert np.array_equal(train_val_test(y, seed=0)["val"], a["val"])


def test_stratified_sample_keeps_class_proportions_and_exact_count():
    y = np.repeat(np.arange(3), [100, 60, 40])
    idx = stratified_sample(y, 40, seed=3)
    assert len(idx) == 40 and len(np.unique(idx)) == 40
    assert np.bincount(y[idx]).tolist() == [20, 12, 8]


def test_predefined_splits_are_not_drawn():
    y = np.repeat(np.arange(2), 20)
    parts = train_val_test(y, seed=0, test_given=True)
    assert set(parts) == {"train", "val"} and len(parts["val"]) == 4


def test_encode_labels_sorts_numbers_numerically_and_text_alphabetically():
    idx, names = encode_labels(["10", "2", "9", "2"])
    assert names == ("2", "9", "10") and idx.tolist() == [2, 0, 1, 0]
    idx, names = encode_labels(np.array([3.0, 1.0, 3.0]))
    assert names == ("1", "3") and idx.tolist() == [1, 0, 1]
    idx, names = encode_labels(["dog", "cat", "ant"])
    assert names == ("ant", "cat", "dog") and idx.tolist() == [2, 1, 0]
    assert encode_labels(["b"], ("a", "b"))[0].tolist() == [1]
    with pytest.raises(DataError, match=r"labels \['zebra'\] do not occur in the training data"):
        encode_labels(["zebra"], ("a", "b"))
