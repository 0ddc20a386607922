"""moving-digits / moving-digits-frames (generation, labels, splits, what one frame reveals) and user
videos (gridseq.data.readers.video: .npy clips, frame folders, class folders, predict-time preparation)."""

import numpy as np
import pytest
import torch

from gridseq.data.builtin.digits import digits_raw
from gridseq.data.builtin.moving_digits import (
    _MOVES,
    DIRECTIONS,
    factor_accuracy,
    make_clips,
    moving_digits,
    moving_digits_frames,
    render,
)
from gridseq.data.readers.video import is_video_folder, load_video_folder, prepare_clip, read_clip
from gridseq.errors import ConfigError, DataError


def _clips(n=400, frames=10, size=20, changes=False, seed=0):
    images, labels = digits_raw()
    return make_clips(images[:, 0], labels, n, frames, size, np.random.default_rng(seed), changes=changes)


def _shifted(frame, move):
    """`frame` (S, S) moved one pixel by direction `move` (no wrap needed: digits stay on the canvas)."""
    dr, dc = _MOVES[move]
    return np.roll(np.roll(frame, dr, axis=0), dc, axis=1)


def test_each_frame_is_the_previous_one_moved_in_the_labelled_direction():
    x, _, directions = _clips(200)
    assert x.shape == (200, 10, 1, 20, 20) and x.min() >= 0 and x.max() <= 1
    assert (directions == directions[:, :1]).all()  # one direction per clip
    for i in range(200):
        for t in range(1, 10):
            np.testing.assert_array_equal(x[i, t, 0], _shifted(x[i, t - 1, 0], directions[i, t]))


def test_digits_stay_whole_on_the_canvas():
    x, _, _ = _clips(300)
    ink = x.sum(axis=(2, 3, 4))  # (N, T): the same digit drawn whole has the same total ink in every frame
    np.testing.assert_allclose(ink, ink[:, :1].repeat(10, axis=1), rtol=1e-5)


def test_one_frame_says_nothing_about_the_direction():
    """The position of a frame has the same distribution for every direction (up to sampling noise)."""
    x, _, directions = _clips(12000)
    t = np.random.default_rng(1).integers(0, 10, len(x))
    frame = x[np.arange(len(x)), t, 0]  # one random frame per clip
    rows = (frame.sum(2) > 0).argmax(1)  # first inked row, a proxy for the position
    cols = (frame.sum(1) > 0).argmax(1)
    means = [(rows[directions[:, 0] == d].mean(), cols[directions[:, 0] == d].mean()) for d in range(4)]
    spread = np.ptp(np.array(means), axis=0)
    assert (spread < 0.2).all(), means


def test_frames_variant_changes_direction_and_labels_every_frame():
    x, _, directions = _clips(300, frames=16, changes=True)
    assert x.shape == (300, 16, 1, 20, 20) and directions.shape == (300, 16)
    assert (directions[:, 0] == directions[:, 1]).all()  # frame 0 carries the first move
    assert 0.1 < (directions[:, 2:] != directions[:, 1:-1]).mean() < 0.4
    for i in range(50):
        for t in range(1, 16):
            np.testing.assert_array_equal(x[i, t, 0], _shifted(x[i, t - 1, 0], directions[i, t]))


def test_render_places_the_digit_at_its_corner():
    clip = render(np.ones((1, 8, 8)), np.array([[[2, 3]]]), 12)
    assert clip[0, 0, 0, 2:10, 3:11].sum() == 64 and clip.sum() == 64


@pytest.fixture(scope="module")
def small():
    return moving_digits(0, "video", frames=9, size=17)


def test_moving_digits_dataset(small):
    ds = small
    assert ds.info.kind == "video" and ds.info.task == "classify" and ds.info.num_classes == 40
    assert tuple(ds.info.input_shape) == (9, 1, 17, 17)
    assert ds.info.class_names[4 * 3 + DIRECTIONS.index("up")] == "3-up"
    assert (len(ds.train), len(ds.val), len(ds.test)) == (12000, 500, 1000)
    assert ds.info.preprocessing["layout"] == "video" and ds.info.preprocessing["factors"] == {"digit": 10, "direction": 4}
    assert abs(float(ds.train.x.mean())) < 1e-3 and abs(float(ds.train.x.std()) - 1) < 1e-2  # normalised
    counts = torch.bincount(ds.train.y, minlength=40)
    assert counts.min() > 200  # every (digit, direction) pair is there


def _raw(ds, split):
    norm = ds.info.preprocessing["normalize"]
    return getattr(ds, split).x * norm["std"][0] + norm["mean"][0]


def test_test_split_is_fixed_and_train_follows_the_seed(small):
    other = moving_digits(1, "video", frames=9, size=17)
    torch.testing.assert_close(_raw(small, "test"), _raw(other, "test"), atol=1e-5, rtol=0)  # only the stats differ
    assert torch.equal(small.test.y, other.test.y)
    assert not torch.equal(small.train.y, other.train.y)


def test_moving_digits_frames_dataset_is_a_tag_task():
    ds = moving_digits_frames(0, "video", frames=12, size=14)
    assert ds.info.task == "tag" and ds.info.class_names == DIRECTIONS
    assert tuple(ds.train.y.shape) == (12000, 12) and ds.train.y.dtype == torch.int64


def test_options_are_checked():
    with pytest.raises(ConfigError, match="needs a canvas of at least 17 pixels"):
        moving_digits(0, "video", frames=10, size=16)
    with pytest.raises(ConfigError, match="frames must be an int >= 2"):
        moving_digits_frames(0, "video", frames=1)


def test_factor_accuracy():
    y = np.array([4 * 7 + 1, 4 * 3 + 2, 4 * 0 + 0])
    pred = np.array([4 * 7 + 2, 4 * 3 + 2, 4 * 5 + 0])
    assert factor_accuracy(pred, y) == {"digit_accuracy": 2 / 3, "direction_accuracy": 2 / 3}
    with pytest.raises(ConfigError, match="same shape"):
        factor_accuracy(pred[:2], y)


# ---------------------------------------------------------------- user videos


def test_read_clip_from_npy_arrays(tmp_path):
    gray = np.random.default_rng(0).integers(0, 256, (5, 10, 12), dtype=np.uint8)
    np.save(tmp_path / "g.npy", gray)
    clip = read_clip(tmp_path / "g.npy")
    assert clip.shape == (5, 1, 10, 12) and clip.dtype == np.float32
    np.testing.assert_allclose(clip[:, 0], gray / 255.0, rtol=1e-6)
    rgb = np.random.default_rng(0).random((4, 6, 6, 3)).astype(np.float32)
    np.save(tmp_path / "c.npy", rgb)
    np.testing.assert_allclose(read_clip(tmp_path / "c.npy"), rgb.transpose(0, 3, 1, 2))


@pytest.mark.parametrize(("array", "message"), [
    (np.zeros((5, 10)), r"expected a video of shape \(T, H, W\)"),
    (np.zeros((5, 3, 10, 10)), r"for \(T, C, H, W\) arrays save a.transpose\(0, 2, 3, 1\)"),
    (np.full((2, 4, 4), 3.0), r"float pixels must lie in \[0, 1\]"),
    (np.full((2, 4, 4), np.nan), "NaN"),
])
def test_read_clip_errors(tmp_path, array, message):
    np.save(tmp_path / "bad.npy", array)
    with pytest.raises(DataError, match=message):
        read_clip(tmp_path / "bad.npy")


def _write_frames(folder, frames):
    from PIL import Image

    folder.mkdir(parents=True)
    for i, f in enumerate(frames):
        Image.fromarray(f).save(folder / f"frame{i}.png")


def test_read_clip_from_a_frame_folder_in_natural_order(tmp_path):
    frames = [np.full((6, 8), 20 * i, dtype=np.uint8) for i in range(12)]  # frame10 after frame9
    _write_frames(tmp_path / "clip", frames)
    clip = read_clip(tmp_path / "clip")
    assert clip.shape == (12, 1, 6, 8)
    np.testing.assert_allclose(clip[:, 0, 0, 0], [20 * i / 255 for i in range(12)], rtol=1e-6)


def test_load_video_folder_with_variable_lengths(tmp_path):
    rng = np.random.default_rng(0)
    for label in ("left", "right"):
        (tmp_path / label).mkdir()
        for i in range(10):
            np.save(tmp_path / label / f"c{i}.npy", rng.integers(0, 256, (3 + i % 4, 8, 8), dtype=np.uint8))
    _write_frames(tmp_path / "left" / "c99", [np.zeros((8, 8), dtype=np.uint8)] * 5)
    assert is_video_folder(tmp_path)
    ds = load_video_folder(tmp_path, 0, "video")
    assert ds.info.kind == "video" and ds.info.class_names == ("left", "right") and ds.info.variable_length
    assert len(ds.train) + len(ds.val) + len(ds.test) == 21
    assert ds.train.x.shape[2:] == (1, 8, 8) and ds.train.lengths is not None
    for split in (ds.train, ds.val, ds.test):  # padded frames are exactly zero
        for x, n in zip(split.x, split.lengths):
            assert x[n:].abs().sum() == 0


def test_an_image_folder_is_not_a_video_folder(tmp_path):
    from PIL import Image

    (tmp_path / "cat").mkdir()
    Image.fromarray(np.zeros((4, 4), dtype=np.uint8)).save(tmp_path / "cat" / "a.png")
    assert not is_video_folder(tmp_path)


def test_load_video_folder_rejects_mixed_frame_sizes(tmp_path):
    (tmp_path / "a").mkdir()
    np.save(tmp_path / "a" / "x.npy", np.zeros((3, 8, 8), dtype=np.uint8))
    np.save(tmp_path / "a" / "y.npy", np.zeros((3, 9, 8), dtype=np.uint8))
    with pytest.raises(DataError, match="resize them to one frame size"):
        load_video_folder(tmp_path, 0, "video")


def test_prepare_clip_normalises_like_training_and_checks_the_size(tmp_path, small):
    record = small.info.preprocessing
    raw = _clips(1, frames=9, size=17)[0][0, :, 0]  # (T, H, W) in [0, 1]
    x = prepare_clip(raw, record)
    assert x.shape == (1, 9, 1, 17, 17)
    mean, std = record["normalize"]["mean"][0], record["normalize"]["std"][0]
    torch.testing.assert_close(x[0, :, 0], torch.from_numpy((raw - mean) / std).float())
    np.save(tmp_path / "clip.npy", (raw * 255).round().astype(np.uint8))
    assert prepare_clip(tmp_path / "clip.npy", record).shape == (1, 9, 1, 17, 17)
    with pytest.raises(DataError, match="resize the frames to 17x17"):
        prepare_clip(np.zeros((4, 20, 20), dtype=np.float32), record)


def test_datasets_load_reads_a_video_folder_and_checks_the_view(tmp_path):
    import gridseq.datasets as gd

    rng = np.random.default_rng(0)
    for label in ("a", "b"):
        (tmp_path / label).mkdir()
        for i in range(6):
            np.save(tmp_path / label / f"c{i}.npy", rng.integers(0, 256, (4, 6, 6), dtype=np.uint8))
    ds = gd.load(str(tmp_path))
    assert ds.info.kind == "video" and tuple(ds.info.input_shape) == (4, 1, 6, 6) and not ds.info.variable_length
    with pytest.raises(ConfigError, match="valid views: 'video'"):
        gd.load("moving-digits", view="image")
