"""prepare_inputs: new raw items come out exactly as the dataset prepared the same items."""

import numpy as np
import pytest
import torch
from data_helpers import make_folder
from PIL import Image

import gridseq.datasets as gd
from gridseq.data.builtin.digits import digits_raw
from gridseq.data.builtin.mnist1d import mnist1d_raw
from gridseq.data.contract import DatasetInfo
from gridseq.data.partition import train_val_test
from gridseq.errors import DataError


@pytest.fixture(scope="module")
def digits():
    ds = gd.load("digits", seed=2)
    x, y = digits_raw()
    test = train_val_test(y, seed=2)["test"]
    return ds, x[test, 0] * 16  # the test items in scikit-learn's units (0..16)


def save_png(path, pixels16, scale=1):
    """A digit (8, 8) in 0..16 as an 8-bit PNG (0..255), optionally blown up by pixel repetition."""
    a = np.round(pixels16 * 255 / 16).astype(np.uint8)
    Image.fromarray(np.kron(a, np.ones((scale, scale), np.uint8))).save(path)
    return path


def test_digits_raw_arrays_match_the_dataset_exactly(digits):
    ds, raw = digits
    assert torch.equal(gd.prepare_inputs(raw, ds.info).x, ds.test.x)
    assert torch.equal(gd.prepare_inputs(raw.reshape(len(raw), 64), ds.info).x, ds.test.x)  # load_digits().data
    assert torch.equal(gd.prepare_inputs([raw[0], raw[1]], ds.info).x, ds.test.x[:2])  # a list of single items


def test_digits_png_matches_the_dataset(tmp_path, digits):
    ds, raw = digits
    paths = [save_png(tmp_path / f"{i}.png", raw[i]) for i in range(5)]
    batch = gd.prepare_inputs(paths, ds.info)
    assert batch.x.shape == (5, 1, 8, 8) and batch.y is None and batch.lengths is None
    # 8-bit PNGs round 0..16 to 0..255, an error of at most 0.5/255 before normalisation
    assert torch.allclose(batch.x, ds.test.x[:5], atol=0.5 / 255 / ds.info.preprocessing["normalize"]["std"][0] + 1e-6)
    big = gd.prepare_inputs(save_png(tmp_path / "big.png", raw[0], scale=4), ds.info)  # 32x32 box-averaged to 8x8
    assert torch.allclose(big.x, batch.x[:1], atol=1e-5)


def test_digits_invert_for_dark_ink_on_white(tmp_path, digits):
    ds, raw = digits
    Image.fromarray(255 - np.round(raw[0] * 255 / 16).astype(np.uint8)).save(tmp_path / "paper.png")
    plain = gd.prepare_inputs(save_png(tmp_path / "ink.png", raw[0]), ds.info).x
    assert torch.allclose(gd.prepare_inputs(tmp_path / "paper.png", ds.info, invert=True).x, plain, atol=1e-5)


def test_digits_sequence_view_is_applied(tmp_path, digits):
    _, raw = digits
    seq = gd.load("digits", seed=2, view="sequence")
    batch = gd.prepare_inputs(raw, seq.info)
    assert torch.equal(batch.x, seq.test.x) and batch.x.shape[1:] == (8, 8)
    info = DatasetInfo.from_json(seq.info.to_json())  # as a run directory stores it
    from_png = gd.prepare_inputs(save_png(tmp_path / "d.png", raw[3]), info).x
    assert from_png.shape == (1, 8, 8) and torch.allclose(from_png[0], seq.test.x[3], atol=0.02)


def test_mnist1d_arrays_match_the_dataset_exactly():
    ds = gd.load("mnist1d")
    _, _, x_test, _ = mnist1d_raw()
    assert torch.equal(gd.prepare_inputs(x_test[:, :, 0], ds.info).x, ds.test.x)  # (N, T) for F = 1
    assert torch.equal(gd.prepare_inputs(list(x_test[:3, :, 0]), ds.info).x, ds.test.x[:3])
    with pytest.raises(DataError, match=r"exactly T=40 steps, got one of 38"):
        gd.prepare_inputs(x_test[:2, :38], ds.info)
    with pytest.raises(DataError, match=r"expected sequences with F=1 features"):
        gd.prepare_inputs(np.zeros((2, 40, 3)), ds.info)


def test_image_folder_files_match_the_dataset(tmp_path):
    make_folder(tmp_path / "train", {"a": 6, "b": 6})
    made = make_folder(tmp_path / "test", {"a": 2, "b": 2}, seed=1)
    ds = gd.load(tmp_path, view="sequence")
    paths = [tmp_path / "test" / c / f"{i}.png" for c in made for i in range(len(made[c]))]
    assert torch.equal(gd.prepare_inputs(paths, ds.info).x, ds.test.x)
    raw = np.stack([a for c in made for a in made[c]])  # (N, H, W, C) in 0..255
    assert torch.allclose(gd.prepare_inputs(raw, ds.info).x, ds.test.x, atol=1e-5)


def test_image_size_mismatch(tmp_path):
    make_folder(tmp_path, size=(5, 7))
    Image.new("RGB", (9, 9)).save(tmp_path / "other.png")
    fixed = gd.load(tmp_path)
    with pytest.raises(DataError, match=r"other\.png is 9x9 .* trained on 5x7"):
        gd.prepare_inputs(tmp_path / "other.png", fixed.info)
    resized = gd.load(tmp_path, image_size=(5, 7))
    assert gd.prepare_inputs(tmp_path / "other.png", resized.info).x.shape == (1, 3, 5, 7)
    with pytest.raises(DataError, match=r"expected image arrays of shape \(N, 3, 5, 7\) or \(N, 5, 7, 3\)"):
        gd.prepare_inputs(np.zeros((2, 6, 6)), fixed.info)


def test_npz_and_csv_files_match_the_dataset(tmp_path):
    rng = np.random.default_rng(0)
    lengths = rng.integers(2, 9, size=24)
    x = rng.normal(size=(24, 8, 2))
    np.savez(tmp_path / "t.npz", x=x, y=np.arange(24) % 3, lengths=lengths, x_test=x[:5], y_test=[0, 1, 2, 0, 1],
             lengths_test=lengths[:5])
    ds = gd.load(tmp_path / "t.npz")
    np.savez(tmp_path / "new.npz", x=x[:5], lengths=lengths[:5])
    batch = gd.prepare_inputs(tmp_path / "new.npz", ds.info)
    assert torch.equal(batch.lengths, ds.test.lengths) and torch.equal(batch.x, ds.test.x)

    rows = "".join(f"s{i},{t},{x[i, t, 0]},{x[i, t, 1]},{i % 3}\n" for i in range(24) for t in range(lengths[i]))
    (tmp_path / "l.csv").write_text("id,time,a,b,label\n" + rows)
    ds = gd.load(tmp_path / "l.csv")
    batch = gd.prepare_inputs(tmp_path / "l.csv", ds.info)
    assert batch.lengths.tolist() == lengths.tolist()
    prepared = {tuple(np.round(batch.x[i, :n].flatten().tolist(), 5)) for i, n in enumerate(batch.lengths)}
    in_dataset = {tuple(np.round(s.x[i, :n].flatten().tolist(), 5)) for s in ds.splits().values() for i, n in enumerate(s.lengths)}
    assert prepared == in_dataset
    # a CSV without the label column predicts too
    (tmp_path / "nolabel.csv").write_text("id,time,a,b\n" + "".join(r.rsplit(",", 1)[0] + "\n" for r in rows.splitlines()))
    assert torch.equal(gd.prepare_inputs(tmp_path / "nolabel.csv", ds.info).x, batch.x)


def test_prepare_errors(tmp_path, digits):
    ds, _ = digits
    with pytest.raises(DataError, match="no such file"):
        gd.prepare_inputs(tmp_path / "missing.png", ds.info)
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(DataError, match="the model takes images"):
        gd.prepare_inputs(tmp_path / "a.txt", ds.info)
    (tmp_path / "bad.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(DataError, match=r"cannot read image .*bad\.png"):
        gd.prepare_inputs([tmp_path / "bad.png"], ds.info)
    with pytest.raises(DataError, match=r"expected image arrays of shape \(N, 1, 8, 8\) or \(N, 8, 8\) or \(N, 64\)"):
        gd.prepare_inputs(np.zeros((3, 7, 7)), ds.info)
    mnist = gd.load("mnist1d").info
    with pytest.raises(DataError, match="the model takes sequences"):
        gd.prepare_inputs(tmp_path / "bad.png", mnist)
    bare = DatasetInfo("x", "image", (1, 8, 8), 10, tuple("0123456789"))
    with pytest.raises(DataError, match="no preprocessing record"):
        gd.prepare_inputs(np.zeros((1, 8, 8)), bare)
