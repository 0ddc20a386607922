"""The built-in catalog: digits and mnist1d sizes, layouts, splits, seeds, views, and the façade's errors."""

import random

import numpy as np
import pytest
import torch

import gridseq.datasets as gd
from gridseq.data.builtin.digits import digits_raw
from gridseq.data.builtin.mnist1d import mnist1d_raw
from gridseq.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def digits():
    return gd.load("digits", seed=0)


@pytest.fixture(scope="module")
def mnist1d():
    return gd.load("mnist1d", seed=0)


def _rows(split):
    return {tuple(r) for r in split.x.reshape(len(split), -1).tolist()}


def _raw(ds, split):
    """Undo the normalisation (its statistics come from the training split, so they follow the seed)."""
    norm = ds.info.preprocessing["normalize"]
    return split.x * norm["std"][0] + norm["mean"][0]


def test_digits_sizes_layout_and_dtypes(digits):
    assert [len(s) for s in digits.splits().values()] == [1294, 144, 359]
    assert sum(len(s) for s in digits.splits().values()) == 1797
    for s in digits.splits().values():
        assert s.x.dtype == torch.float32 and s.y.dtype == torch.int64 and s.lengths is None
        assert tuple(s.x.shape[1:]) == (1, 8, 8)
    info = digits.info
    assert (info.kind, info.input_shape, info.num_classes) == ("image", (1, 8, 8), 10)
    assert info.class_names == tuple("0123456789") and not info.variable_length


def test_digits_normalised_with_training_statistics(digits):
    assert abs(float(digits.train.x.mean())) < 1e-4
    assert abs(float(digits.train.x.std()) - 1) < 1e-3
    norm = digits.info.preprocessing["normalize"]
    x, _ = digits_raw()
    assert 0.2 < norm["mean"][0] < 0.4  # raw /16 lies in [0, 1]
    assert float(x.max()) == 1.0 and float(x.min()) == 0.0


def test_digits_test_split_is_fixed_and_val_follows_seed(digits):
    other = gd.load("digits", seed=1)
    assert torch.allclose(_raw(digits, digits.test), _raw(other, other.test), atol=1e-5)
    assert torch.equal(digits.test.y, other.test.y)
    assert _rows(digits.val) != _rows(other.val)
    again = gd.load("digits", seed=0)
    for a, b in zip(digits.splits().values(), again.splits().values()):
        assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)


def test_digits_test_split_is_stratified(digits):
    share = torch.bincount(digits.test.y, minlength=10).float() / len(digits.test)
    assert float(share.min()) > 0.08 and float(share.max()) < 0.12


def test_digits_sequence_view_is_rows_of_the_image(digits):
    seq = gd.load("digits", seed=0, view="sequence")
    assert (seq.info.kind, seq.info.input_shape) == ("sequence", (8, 8))
    assert seq.info.preprocessing["view"] == "sequence"
    assert torch.equal(seq.train.x, digits.train.x[:, 0])  # (N, 1, 8, 8) -> (N, T=8, F=8)


def test_digits_fast_path_matches_scikit_learn():
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x, y = digits_raw()
    assert np.array_equal(x[:, 0] * 16, bunch.images) and np.array_equal(y, bunch.target)


def test_mnist1d_generation_leaves_global_rngs_alone():
    if mnist1d_raw.cache_info().currsize:  # generate afresh (this test runs before the fixture in file order)
        mnist1d_raw.cache_clear()
    np.random.seed(123)
    random.seed(123)
    mnist1d_raw()
    a, b = np.random.rand(), random.random()
    np.random.seed(123)
    random.seed(123)
    assert (a, b) == (np.random.rand(), random.random())


def test_mnist1d_published_split(mnist1d):
    assert [len(s) for s in mnist1d.splits().values()] == [3600, 400, 1000]
    info = mnist1d.info
    assert (info.kind, info.input_shape, info.num_classes, info.variable_length) == ("sequence", (40, 1), 10, False)
    assert mnist1d.train.x.dtype == torch.float32 and tuple(mnist1d.test.x.shape) == (1000, 40, 1)
    _, _, x_test, y_test = mnist1d_raw()
    norm = info.preprocessing["normalize"]
    expected = (x_test - norm["mean"][0]) / norm["std"][0]
    assert torch.allclose(mnist1d.test.x, torch.tensor(expected), atol=1e-6)  # the generator's test set
    assert torch.equal(mnist1d.test.y, torch.tensor(y_test))


def test_mnist1d_val_carved_from_train_with_seed(mnist1d):
    other = gd.load("mnist1d", seed=5)
    assert torch.allclose(_raw(mnist1d, mnist1d.test), _raw(other, other.test), atol=1e-5)
    assert _rows(mnist1d.val) != _rows(other.val)
    assert len(_rows(mnist1d.train) | _rows(mnist1d.val)) == 4000
    assert not _rows(mnist1d.train) & _rows(mnist1d.val)


def test_describe_matches_what_load_gives(digits, mnist1d):
    records = {r["name"]: r for r in gd.describe()}
    assert set(records) == set(gd.names()) >= {"digits", "mnist1d"}
    for ds in (digits, mnist1d):
        r = records[ds.info.name]
        assert (r["train"], r["val"], r["test"]) == tuple(len(s) for s in ds.splits().values())
        assert r["num_classes"] == ds.info.num_classes and r["kind"] == ds.info.kind
        assert r["description"]


def test_names_are_case_insensitive():
    assert gd.load("DiGiTs").info.name == "digits"


def test_unknown_name_suggests_and_lists():
    with pytest.raises(DataError, match=r"unknown dataset 'digts'\. Did you mean 'digits'\?.*mnist1d"):
        gd.load("digts")


def test_missing_path_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="no such file or folder"):
        gd.load(tmp_path / "nope.npz")
    with pytest.raises(DataError, match="no such file or folder"):
        gd.load("data/missing.csv")


def test_unsupported_file_type(tmp_path):
    (tmp_path / "a.yaml").write_text("x")  # .txt is text for a language model, .json COCO-style boxes
    with pytest.raises(DataError, match=r"unsupported file type '\.yaml'.*\.json \(COCO-style boxes\)"):
        gd.load(tmp_path / "a.yaml")
    (tmp_path / "a.json").write_text("x")
    with pytest.raises(DataError, match="expected COCO-style JSON"):
        gd.load(tmp_path / "a.json")


def test_bad_view_lists_valid_views():
    with pytest.raises(ConfigError, match=r"valid views: 'sequence'"):
        gd.load("mnist1d", view="image")
    with pytest.raises(ConfigError, match=r"valid views: 'image', 'sequence'"):
        gd.load("digits", view="video")


def test_unknown_option_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown option 'image_size' for dataset 'digits'.*takes no options"):
        gd.load("digits", image_size=(8, 8))
    with pytest.raises(ConfigError, match="seed must be an int >= 0"):
        gd.load("digits", seed=-1)
