"""User data: image folders, .npz and CSV sequences — round trips and every DataError."""

import numpy as np
import pytest
import torch
from data_helpers import make_folder
from PIL import Image

import gridseq.datasets as gd
from gridseq.data.partition import split_sizes
from gridseq.errors import ConfigError, DataError


def items(ds):
    """{(class name, raw values rounded)} over all splits: the normalisation undone, valid steps only."""
    norm = ds.info.preprocessing["normalize"]
    mean, std = torch.tensor(norm["mean"]), torch.tensor(norm["std"])
    out = set()
    for split in ds.splits().values():
        for i in range(len(split)):
            x = split.x[i] * std + mean if ds.info.kind == "sequence" else split.x[i]
            if split.lengths is not None:
                x = x[: int(split.lengths[i])]
            out.add((ds.info.class_names[int(split.y[i])], tuple(np.round(x.flatten().tolist(), 4))))
    return out


# ---------------------------------------------------------------- image folders


def test_image_folder_splits_layout_and_normalisation(tmp_path):
    make_folder(tmp_path)
    ds = gd.load(tmp_path, seed=0)
    assert [len(s) for s in ds.splits().values()] == list(split_sizes(20))
    assert (ds.info.kind, ds.info.input_shape, ds.info.class_names) == ("image", (3, 5, 7), ("cat", "dog"))
    per_channel = ds.train.x.transpose(0, 1).reshape(3, -1)
    assert torch.allclose(per_channel.mean(1), torch.zeros(3), atol=1e-5)
    assert torch.allclose(per_channel.std(1), torch.ones(3), atol=1e-2)
    assert ds.info.preprocessing["image"]["array_scale"] == pytest.approx(1 / 255)
    assert torch.equal(gd.load(tmp_path, seed=3).test.y, ds.test.y)


def test_image_folder_pixels_are_read_as_value_over_255(tmp_path):
    made = make_folder(tmp_path, mode="L", counts={"a": 3, "b": 3})
    ds = gd.load(tmp_path)
    norm = ds.info.preprocessing["normalize"]
    assert ds.info.input_shape == (1, 5, 7)  # grayscale files give one channel
    raw = sorted(a.flatten().tolist() for arrays in made.values() for a in arrays)
    got = sorted((x * norm["std"][0] + norm["mean"][0]).flatten().mul(255).tolist() for s in ds.splits().values() for x in s.x)
    assert np.allclose(got, raw, atol=1e-3)


def test_image_folder_channels_resize_and_sequence_view(tmp_path):
    make_folder(tmp_path)
    gray = gd.load(tmp_path, grayscale=True, image_size=(4, 6))
    assert gray.info.input_shape == (1, 4, 6) and gray.info.preprocessing["image"]["resize"] is True
    seq = gd.load(tmp_path, view="sequence")
    assert (seq.info.kind, seq.info.input_shape, tuple(seq.train.x.shape[1:])) == ("sequence", (5, 21), (5, 21))
    with pytest.raises(ConfigError, match="contradicts"):
        gd.load(tmp_path, grayscale=True, channels=3)
    with pytest.raises(ConfigError, match="unknown option 'image_sizes'.*Did you mean 'image_size'"):
        gd.load(tmp_path, image_sizes=(4, 4))


def test_image_folder_honours_train_val_test_folders(tmp_path):
    make_folder(tmp_path / "train", {"a": 12, "b": 8})
    make_folder(tmp_path / "test", {"a": 3, "b": 2}, seed=1)
    ds = gd.load(tmp_path)
    assert [len(s) for s in ds.splits().values()] == [18, 2, 5]
    assert ds.test.y.tolist().count(0) == 3


def test_image_folder_errors(tmp_path):
    with pytest.raises(DataError, match="is empty"):
        gd.load(tmp_path)
    Image.new("L", (4, 4)).save(tmp_path / "loose.png")
    with pytest.raises(DataError, match="no class sub-folders.*1 images directly"):
        gd.load(tmp_path)
    (tmp_path / "only").mkdir()
    Image.new("L", (4, 4)).save(tmp_path / "only" / "1.png")
    with pytest.raises(DataError, match="has 1 class.*at least 2"):
        gd.load(tmp_path)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("x")
    with pytest.raises(DataError, match=r"class folder .*empty has no images \(1 other"):
        gd.load(tmp_path)


def test_image_folder_corrupt_image_is_named(tmp_path):
    make_folder(tmp_path)
    (tmp_path / "dog" / "broken.png").write_bytes(b"not a png at all")
    with pytest.raises(DataError, match=r"cannot read image .*dog/broken\.png"):
        gd.load(tmp_path)


def test_image_folder_truncated_image_is_named(tmp_path):
    make_folder(tmp_path, size=(40, 40))
    data = (tmp_path / "cat" / "3.png").read_bytes()
    (tmp_path / "cat" / "3.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"cannot read image .*cat/3\.png"):
        gd.load(tmp_path)


def test_image_folder_mixed_sizes_need_image_size(tmp_path):
    make_folder(tmp_path)
    Image.new("RGB", (9, 9)).save(tmp_path / "cat" / "big.png")
    with pytest.raises(DataError, match=r"different sizes.*big\.png is 9x9.*pass image_size=\(H, W\)"):
        gd.load(tmp_path)
    assert gd.load(tmp_path, image_size=(5, 7)).info.input_shape == (3, 5, 7)


# ---------------------------------------------------------------- .npz


def test_npz_fixed_length_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(30, 12)).round(3), np.array(["up", "down", "flat"] * 10)
    np.savez(tmp_path / "s.npz", x=x, y=y)
    ds = gd.load(tmp_path / "s.npz")
    assert (ds.info.kind, ds.info.input_shape, ds.info.variable_length) == ("sequence", (12, 1), False)
    assert ds.info.class_names == ("down", "flat", "up")
    assert items(ds) == {(str(c), tuple(np.round(r, 4))) for c, r in zip(y, x)}


def test_npz_variable_length_normalises_valid_steps_only(tmp_path):
    rng = np.random.default_rng(1)
    lengths = rng.integers(2, 16, size=40)
    x = np.full((40, 16, 3), np.nan)
    for i, n in enumerate(lengths):
        x[i, :n] = rng.normal(5.0, 2.0, size=(n, 3))
    np.savez(tmp_path / "v.npz", x=x, y=np.arange(40) % 2, lengths=lengths)
    ds = gd.load(tmp_path / "v.npz")
    assert ds.info.variable_length and ds.info.input_shape == (int(lengths.max()), 3)  # padding beyond it trimmed
    tr = ds.train
    mask = torch.arange(tr.x.shape[1])[None] < tr.lengths[:, None]
    valid = tr.x[mask]  # (steps, F)
    assert torch.allclose(valid.mean(0), torch.zeros(3), atol=1e-5)
    assert torch.allclose(valid.std(0), torch.ones(3), atol=1e-2)
    assert torch.all(tr.x[~mask] == 0)  # NaN padding became zeros
    b = tr.batch(torch.arange(4))
    assert b.x.shape[1] == int(tr.lengths[:4].max())


def test_npz_predefined_splits(tmp_path):
    rng = np.random.default_rng(2)
    np.savez(tmp_path / "p.npz", x=rng.normal(size=(20, 5, 2)), y=np.arange(20) % 2,
             x_val=rng.normal(size=(4, 5, 2)), y_val=[0, 1, 0, 1], x_test=rng.normal(size=(6, 5, 2)), y_test=[1] * 6)
    ds = gd.load(tmp_path / "p.npz", seed=0)
    assert [len(s) for s in ds.splits().values()] == [20, 4, 6]
    assert ds.test.y.tolist() == [1] * 6


@pytest.mark.parametrize("arrays, message", [
    ({"x": np.zeros((4, 5))}, r"missing array 'y'"),
    ({"y": np.zeros(4)}, r"missing array 'x'"),
    ({"inputs": np.zeros(4)}, r"missing arrays 'x' and 'y' \(the file has inputs\)"),
    ({"x": np.zeros((4, 5)), "y": np.zeros(3)}, r"y must have shape \(N,\) with N = len\(x\) = 4"),
    ({"x": np.zeros((4, 5)), "y": np.zeros(4), "lengths": [1, 2, 6, 3]}, r"lengths must lie in \[1, T=5\].*item 2 has length 6"),
    ({"x": np.zeros((4, 5)), "y": np.zeros(4), "lengths": [1, 2]}, r"expected lengths of shape \(N,\) = \(4,\)"),
    ({"x": np.zeros((4, 5, 2, 2)), "y": np.zeros(4)}, r"expected x of shape \(N, T, F\) or \(N, T\)"),
    ({"x": np.array([[1.0, np.nan]] * 4), "y": np.zeros(4)}, r"item 0 \(0-based\) has NaN"),
    ({"x": np.zeros((4, 5)), "y": np.zeros(4), "x_test": np.zeros((2, 6)), "y_test": np.zeros(2)}, r"different lengths T"),
])
def test_npz_errors(tmp_path, arrays, message):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataError, match=message):
        gd.load(tmp_path / "bad.npz")


def test_npz_unreadable_and_ragged(tmp_path):
    (tmp_path / "junk.npz").write_bytes(b"garbage")
    with pytest.raises(DataError, match="cannot read .*junk.npz"):
        gd.load(tmp_path / "junk.npz")
    ragged = np.empty(2, dtype=object)
    ragged[:] = [np.zeros(3), np.zeros(4)]
    np.savez(tmp_path / "ragged.npz", x=ragged, y=np.zeros(2))
    with pytest.raises(DataError, match="Object .ragged. arrays are not supported"):
        gd.load(tmp_path / "ragged.npz")


# ---------------------------------------------------------------- CSV


def test_csv_wide_round_trip_with_numeric_labels(tmp_path):
    rng = np.random.default_rng(3)
    x, y = np.round(rng.normal(size=(24, 6)), 3), np.array([10, 2, 1] * 8)
    lines = ["t0,t1,t2,t3,t4,t5,label"] + [",".join(map(str, r)) + f",{c}" for r, c in zip(x, y)]
    (tmp_path / "w.csv").write_text("\n".join(lines) + "\n")
    ds = gd.load(tmp_path / "w.csv")
    assert ds.info.class_names == ("1", "2", "10")
    assert (ds.info.input_shape, ds.info.variable_length) == ((6, 1), False)
    assert ds.info.preprocessing["csv"]["format"] == "wide"
    assert items(ds) == {(str(c), tuple(np.round(r, 4))) for c, r in zip(y, x)}


def test_csv_wide_ragged_rows_need_a_length_column(tmp_path):
    (tmp_path / "r.csv").write_text("label,a,b,c\nx,1,2,3\ny,4,5,\n")
    with pytest.raises(DataError, match=r"line 3, column 'c': expected a number, got ''.*'length' column"):
        gd.load(tmp_path / "r.csv")
    rows = ["label,length,a,b,c"] + [f"{'xy'[i % 2]},{1 + i % 3}," + ",".join(str(i + k) for k in range(1 + i % 3)) for i in range(12)]
    (tmp_path / "ok.csv").write_text("\n".join(rows) + "\n")
    ds = gd.load(tmp_path / "ok.csv")
    assert ds.info.variable_length and ds.info.input_shape == (3, 1)
    assert items(ds) == {("xy"[i % 2], tuple(float(i + k) for k in range(1 + i % 3))) for i in range(12)}
    (tmp_path / "long.csv").write_text("label,length,a,b\nx,3,1,2\n")
    with pytest.raises(DataError, match=r"line 2: length '3' must be a whole number in \[1, 2\]"):
        gd.load(tmp_path / "long.csv")


def test_csv_long_round_trip_sorts_time_and_keeps_lengths(tmp_path):
    rng = np.random.default_rng(4)
    seqs = {f"s{i}": (rng.normal(size=(3 + i % 4, 2)).round(3), "ab"[i % 2]) for i in range(16)}
    rows = [(k, t, *v, lab) for k, (a, lab) in seqs.items() for t, v in enumerate(a)]
    rows = [rows[i] for i in rng.permutation(len(rows))]  # time order must come from the time column
    text = "id,time,f1,f2,label\n" + "".join(f"{k},{t},{u},{v},{lab}\n" for k, t, u, v, lab in rows)
    (tmp_path / "l.csv").write_text(text)
    ds = gd.load(tmp_path / "l.csv")
    assert ds.info.variable_length and ds.info.input_shape == (6, 2)
    assert ds.info.preprocessing["csv"]["feature_columns"] == ["f1", "f2"]
    assert items(ds) == {(lab, tuple(np.round(a.flatten(), 4))) for a, lab in seqs.values()}


def test_csv_label_column_errors_and_option(tmp_path):
    (tmp_path / "c.csv").write_text("a,b,target\n1,2,x\n3,4,y\n5,6,x\n")
    with pytest.raises(DataError, match=r"no label column 'label'; the columns are 'a', 'b', 'target'"):
        gd.load(tmp_path / "c.csv")
    assert gd.load(tmp_path / "c.csv", label_column="target").info.class_names == ("x", "y")


@pytest.mark.parametrize("text, message", [
    ("id,time,v,label\na,0,1,x\na,0,2,x\nb,0,3,y\n", r"sequence 'a' has two rows at time = '0'"),
    ("id,time,v,label\na,0,1,x\na,1,2,y\nb,0,3,y\n", r"sequence 'a' has labels \['x', 'y'\]"),
    ("id,time,v,label\na,0,oops,x\nb,0,3,y\nc,0,3,y\n", r"line 2, column 'v': expected a number, got 'oops'"),
    ("label,a\n", r"has a header but no data rows"),
    ("", r"is empty"),
    ("label,a,a\nx,1,2\n", r"duplicate column names \['a'\]"),
    ("label,a\nx,1,2\n", r"line 2: 3 cells but the header has 2 columns"),
])
def test_csv_errors(tmp_path, text, message):
    (tmp_path / "e.csv").write_text(text)
    with pytest.raises(DataError, match=message):
        gd.load(tmp_path / "e.csv")
