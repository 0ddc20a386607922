"""shapes-seg (generated scenes with class masks) and segmentation folders (images/ + masks/), plus the
colour masks and overlays written for predictions."""

import numpy as np
import pytest
from PIL import Image

import gridseq.datasets as gd
from gridseq.data.builtin.shapes_seg import CLASS_NAMES, _shape_mask, make_scenes, parse_size
from gridseq.data.readers.mask_folder import colorize, mask_paths, overlay, write_png
from gridseq.errors import ConfigError, DataError


def test_parse_size():
    assert parse_size("97x131") == (97, 131)
    assert parse_size(64) == (64, 64) and parse_size([20, 30]) == (20, 30) and parse_size("32") == (32, 32)
    for bad in ("97x", "0x10", 8, [1, 2, 3], True, 2000):
        with pytest.raises(ConfigError, match="size must be HxW"):
            parse_size(bad)


def test_scenes_are_seeded_and_masks_follow_the_geometry():
    x, y = make_scenes(30, (40, 50), np.random.default_rng(3))
    x2, y2 = make_scenes(30, (40, 50), np.random.default_rng(3))
    assert x.shape == (30, 3, 40, 50) and y.shape == (30, 40, 50) and x.dtype == np.float32 and y.dtype == np.int64
    assert np.array_equal(x, x2) and np.array_equal(y, y2)
    assert 0.0 <= x.min() and x.max() <= 1.0
    assert set(np.unique(y)) == {0, 1, 2, 3}  # every class shows up in 30 scenes
    assert 0.5 < (y == 0).mean() < 0.95  # mostly background, but not only
    # the shape masks: a circle of radius 10 covers ~pi r^2 pixels, a square 2 r^2, a triangle 3 sqrt(3)/4 r^2
    yy, xx = np.mgrid[0:60, 0:60].astype(np.float32)
    areas = [_shape_mask(k, yy, xx, 30.0, 30.0, 10.0, 0.7).sum() for k in (1, 2, 3)]
    assert areas == pytest.approx([np.pi * 100, 200, 3 * np.sqrt(3) / 4 * 100], rel=0.05)


def test_builtin_splits_sizes_and_the_size_option():
    a, b = gd.load("shapes-seg", seed=0, size=24, train_items=300), gd.load("shapes-seg", seed=1, size=24, train_items=300)
    assert (len(a.train), len(a.val), len(a.test)) == (300, 200, 400)
    assert a.info.task == "segment" and a.info.class_names == CLASS_NAMES and a.info.input_shape == (3, 24, 24)
    assert tuple(a.train.y.shape) == (300, 24, 24)
    assert a.info.preprocessing["image"]["any_size"] is True
    assert np.array_equal(a.test.y, b.test.y) and not np.array_equal(a.val.y, b.val.y)  # test fixed, val follows seed
    odd = gd.load("shapes-seg", size="17x31", train_items=10)
    assert tuple(odd.test.x.shape) == (400, 3, 17, 31) and tuple(odd.test.y.shape) == (400, 17, 31)
    assert abs(float(a.train.x.mean())) < 1e-3  # normalised with training statistics
    with pytest.raises(ConfigError, match="unknown option"):
        gd.load("shapes-seg", sizes=24)


def _folder(root, n=6, size=(12, 10), rgb_masks=False, names=None):
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    colours = np.array([[0, 0, 0], [255, 0, 0], [0, 0, 255]], dtype=np.uint8)
    for i in range(n):
        name = names[i] if names else f"img{i}"
        Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(root / "images" / f"{name}.jpg")
        mask = np.zeros(size, dtype=np.uint8)
        mask[2:6, 2:6] = 1
        mask[7:, 5:] = 2
        mask[0, 0] = 255  # unlabelled
        if rgb_masks:
            Image.fromarray(colours[np.minimum(mask, 2)]).save(root / "masks" / f"{name}.png")
        else:
            Image.fromarray(mask, "L").save(root / "masks" / f"{name}.png")
    return root


def test_mask_folder_with_index_masks(tmp_path):
    root = _folder(tmp_path / "scenes", n=10)
    (root / "classes.txt").write_text("sky\ncar\nroad\n")
    ds = gd.load(root, class_weights="balanced")
    assert ds.info.task == "segment" and ds.info.class_names == ("sky", "car", "road")
    assert len(ds.train) + len(ds.val) + len(ds.test) == 10 and tuple(ds.train.x.shape[1:]) == (3, 12, 10)
    assert int(ds.train.y[0, 0, 0]) == -100 and int(ds.train.y[0, 3, 3]) == 1 and int(ds.train.y[0, 8, 8]) == 2
    weights = ds.info.preprocessing["class_weights"]
    assert len(weights) == 3 and weights[1] > weights[0]  # the rarer class weighs more


def test_mask_folder_with_colour_masks_and_a_palette(tmp_path):
    root = _folder(tmp_path / "rgb", rgb_masks=True)
    ds = gd.load(root)  # colours found: black first, then sorted: (0, 0, 255) then (255, 0, 0)
    assert int(ds.train.y[0, 3, 3]) == 2 and int(ds.train.y[0, 8, 8]) == 1
    ds = gd.load(root, palette=[[0, 0, 0], [255, 0, 0], [0, 0, 255]], class_names=["bg", "red", "blue"])
    assert int(ds.train.y[0, 3, 3]) == 1 and ds.info.preprocessing["palette"][1] == [255, 0, 0]
    with pytest.raises(DataError, match=r"colour \(0, 0, 255\), which is not in the palette"):
        gd.load(root, palette=[[0, 0, 0], [255, 0, 0]])


def test_mask_folder_errors_name_the_file(tmp_path):
    root = _folder(tmp_path / "a")
    (root / "masks" / "img3.png").unlink()
    with pytest.raises(DataError, match=r"img3.jpg; expected img3.png"):
        gd.load(root)
    root = _folder(tmp_path / "b")
    Image.fromarray(np.zeros((12, 10), dtype=np.uint8)).save(root / "masks" / "stray.png")
    with pytest.raises(DataError, match="stray.png"):
        gd.load(root)
    root = _folder(tmp_path / "c")
    Image.fromarray(np.zeros((11, 10), dtype=np.uint8)).save(root / "masks" / "img2.png")
    with pytest.raises(DataError, match=r"img2.png is 11x10 \(HxW\) but its image .*img2.jpg is 12x10"):
        gd.load(root)
    root = _folder(tmp_path / "d")
    Image.fromarray(np.zeros((20, 20, 3), dtype=np.uint8)).save(root / "images" / "img1.jpg")
    Image.fromarray(np.zeros((20, 20), dtype=np.uint8)).save(root / "masks" / "img1.png")
    with pytest.raises(DataError, match="different sizes.*image_size"):
        gd.load(root)
    assert tuple(gd.load(root, image_size=(8, 8)).train.y.shape[1:]) == (8, 8)  # masks resized nearest
    with pytest.raises(DataError, match="class index 2, but there are only 2 class names"):
        gd.load(_folder(tmp_path / "e"), class_names=["a", "b"])


def test_mask_folder_with_predefined_splits(tmp_path):
    _folder(tmp_path / "s" / "train", n=8)
    _folder(tmp_path / "s" / "test", n=3, names=["t0", "t1", "t2"])
    ds = gd.load(tmp_path / "s")
    assert (len(ds.train) + len(ds.val), len(ds.test)) == (8, 3)


def test_colour_masks_overlays_and_paths(tmp_path):
    mask = np.array([[0, 1], [2, 3]])
    rgb = colorize(mask)
    assert rgb.shape == (2, 2, 3) and rgb.dtype == np.uint8 and rgb[0, 0].tolist() == [0, 0, 0]
    assert len({tuple(c) for c in rgb.reshape(-1, 3).tolist()}) == 4
    image = np.full((1, 2, 2), 0.5, dtype=np.float32)
    blend = overlay(image, mask)
    assert blend[0, 0].tolist() == [128, 128, 128]  # background keeps the image
    assert blend[0, 1].tolist() != [128, 128, 128]
    path = write_png(tmp_path / "m.png", rgb)
    with Image.open(path) as img:
        assert img.size == (2, 2) and np.array_equal(np.asarray(img), rgb)
    assert [p.name for p in mask_paths(tmp_path / "x.png", ["a.jpg"])[0]] == ["x.png", "x_overlay.png"]
    with pytest.raises(DataError, match="pass a folder"):
        mask_paths(tmp_path / "x.png", ["a.jpg", "b.jpg"])
