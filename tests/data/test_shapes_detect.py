"""shapes-detect: seeded scenes with 1-6 boxed objects (shapes and real digits), splits, sizes, options."""

import numpy as np
import pytest
import torch

from gridseq import datasets
from gridseq.data.builtin.shapes_detect import CLASS_NAMES, _digit_pool, make_scenes
from gridseq.errors import ConfigError

pytestmark = pytest.mark.usefixtures("one_thread")


def _real(y):
    return y[y[..., 4] >= 0]


def test_scenes_hold_1_to_6_tight_boxes_inside_the_image():
    x, y = make_scenes(60, (64, 64), np.random.default_rng(0), _digit_pool("train"))
    assert x.shape == (60, 3, 64, 64) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    counts = (y[..., 4] >= 0).sum(axis=1)
    assert counts.min() >= 1 and counts.max() <= 6 and y.shape[1] == counts.max()
    boxes = _real(y)
    assert (boxes[:, 0] >= 0).all() and (boxes[:, 1] >= 0).all() and (boxes[:, 2] <= 64).all() and (boxes[:, 3] <= 64).all()
    sides = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    assert sides.min() >= 6 and sides.max() <= 27  # objects 12-26 pixels across (a digit's ink is narrower)
    assert set(boxes[:, 4].astype(int)) == set(range(len(CLASS_NAMES)))
    # padding rows are all -1
    assert (y[y[..., 4] < 0] == -1).all()
    again = make_scenes(60, (64, 64), np.random.default_rng(0), _digit_pool("train"))
    assert np.array_equal(again[0], x) and np.array_equal(again[1], y)  # seeded


def test_overlaps_happen_but_stay_below_0_3():
    from gridseq.tasks.detect import box_iou

    _, y = make_scenes(200, (64, 64), np.random.default_rng(1), _digit_pool("train"))
    worst = []
    for boxes in y:
        b = torch.from_numpy(_real(boxes)[:, :4])
        iou = box_iou(b, b).fill_diagonal_(0)
        worst.append(float(iou.max()) if len(b) > 1 else 0.0)
    worst = np.array(worst)
    assert (worst > 0).mean() > 0.1  # overlapping at times
    assert worst.max() <= 0.5  # placement keeps square boxes at IoU <= 0.3; tight boxes (a thin 1) move some


def test_dataset_splits_seed_and_sizes():
    a = datasets.load("shapes-detect", train_items=30, size="48x80")
    b = datasets.load("shapes-detect", train_items=30, size="48x80", seed=1)
    assert a.info.task == "detect" and a.info.num_classes == 13 and a.info.class_names[3] == "digit 0"
    assert tuple(a.train.x.shape) == (30, 3, 48, 80) and len(a.val) == 400 and len(a.test) == 400
    assert a.info.preprocessing["image"]["any_size"] is True
    assert a.train.y.shape[1:] == a.test.y.shape[1:] and a.train.y.shape[2] == 5
    assert torch.equal(a.test.y, b.test.y) and torch.equal(a.val.y, b.val.y)  # val and test fixed
    assert not torch.equal(a.train.y, b.train.y)  # training scenes by seed
    # larger images hold more objects (6 at most on 64x64, up to 6 x area / 64^2)
    _, big = make_scenes(20, (96, 128), np.random.default_rng(0), _digit_pool("test"))
    assert (big[..., 4] >= 0).sum(axis=1).max() > 6
    with pytest.raises(ConfigError, match="size"):
        datasets.load("shapes-detect", size="8x8")


def test_val_and_test_digits_come_from_held_out_handwriting():
    pools = {part: _digit_pool(part) for part in ("train", "val", "test")}
    assert sum(len(x) for x, _ in pools.values()) == 1797
    for _, labels in pools.values():
        assert set(labels.tolist()) == set(range(10))
    # disjoint: no val or test image is a training image
    seen = {x.tobytes() for x in pools["train"][0]}
    assert not any(x.tobytes() in seen for part in ("val", "test") for x in pools[part][0] if x.any())


def test_augmented_training_digits_vary_but_keep_tight_boxes_and_unaugmented_scenes_do_not_change():
    plain = make_scenes(40, (64, 64), np.random.default_rng(5), _digit_pool("train"))
    again = make_scenes(40, (64, 64), np.random.default_rng(5), _digit_pool("train"), augment=False)
    assert np.array_equal(plain[0], again[0])
    x, y = make_scenes(40, (64, 64), np.random.default_rng(5), _digit_pool("train"), augment=True)
    assert not np.array_equal(x, plain[0])
    boxes = _real(y)
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 2:4] <= 64).all() and (boxes[:, 2] > boxes[:, 0]).all()
    # the warp keeps a digit recognisable in size: its box stays within the object's 12-26 pixels
    digits = boxes[boxes[:, 4] >= 3]
    sides = np.maximum(digits[:, 2] - digits[:, 0], digits[:, 3] - digits[:, 1])
    assert sides.min() >= 4 and sides.max() <= 27


def test_vary_rotates_and_thickens_strokes():
    from gridseq.data.builtin.shapes_detect import _vary

    ink = np.zeros((20, 20), dtype=np.float32)
    ink[2:18, 9:11] = 1.0  # a vertical bar
    outs = [_vary(ink, np.random.default_rng(s)) for s in range(30)]
    assert all(o.shape == ink.shape and 0 <= o.min() and o.max() <= 1 for o in outs)
    assert len({round(float((o > 1 / 3).sum())) for o in outs}) > 5  # stroke weight and scale differ
    cols = [np.flatnonzero((o > 0.5).any(axis=0)) for o in outs]
    assert max(c[-1] - c[0] for c in cols if len(c)) > 3  # some bars lean (rotation / shear)

