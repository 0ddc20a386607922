"""shapes-detect: seeded scenes with 1-6 boxed objects (shapes and real digits), splits, sizes, options."""

import numpy as np
import pytest
import torch

from gridseq import datasets
from gridseq.data.shapes_detect import CLASS_NAMES, _digit_pool, make_scenes
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
    assert worst.max() <= 0.45  # placement keeps square boxes at IoU <= 0.3; tight boxes move a little


def test_dataset_splits_seed_and_sizes():
    a = datasets.load("shapes-detect", train_items=30, size="48x80")
    b = datasets.load("shapes-detect", train_items=30, size="48x80", seed=1)
    assert a.info.task == "detect" and a.info.num_classes == 13 and a.info.class_names[3] == "digit 0"
    assert tuple(a.train.x.shape) == (30, 3, 48, 80) and len(a.val) == 200 and len(a.test) == 400
    assert a.info.preprocessing["image"]["any_size"] is True
    assert a.train.y.shape[1:] == a.test.y.shape[1:] and a.train.y.shape[2] == 5
    assert torch.equal(a.test.y, b.test.y) and not torch.equal(a.val.y, b.val.y)  # test fixed, val by seed
    # larger images hold more objects (6 at most on 64x64, up to 6 x area / 64^2)
    _, big = make_scenes(20, (96, 128), np.random.default_rng(0), _digit_pool("test"))
    assert (big[..., 4] >= 0).sum(axis=1).max() > 6
    with pytest.raises(ConfigError, match="size"):
        datasets.load("shapes-detect", size="8x8")


def test_test_digits_come_from_held_out_handwriting():
    train_imgs, _ = _digit_pool("train")
    test_imgs, test_labels = _digit_pool("test")
    assert len(train_imgs) + len(test_imgs) == 1797 and set(test_labels.tolist()) == set(range(10))


def test_load_coco_scales_boxes_names_classes_and_trains(tmp_path):
    import json

    from PIL import Image

    from gridseq.data.shapes_detect import load_coco
    from gridseq.errors import DataError

    rng = np.random.default_rng(0)
    doc = {"images": [], "annotations": [], "categories": [{"id": 7, "name": "cat"}, {"id": 3, "name": "dog"}]}
    for i in range(10):
        Image.fromarray(rng.integers(0, 255, (40, 80, 3), dtype=np.uint8)).save(tmp_path / f"im{i}.png")
        doc["images"].append({"id": 100 + i, "file_name": f"im{i}.png", "width": 80, "height": 40})
        doc["annotations"].append({"id": i, "image_id": 100 + i, "bbox": [8, 4, 16, 20], "category_id": 7 if i % 2 else 3})
    doc["annotations"].append({"id": 99, "image_id": 100, "bbox": [0, 0, 80, 40], "category_id": 7, "iscrowd": 1})
    (tmp_path / "ann.json").write_text(json.dumps(doc))
    ds = load_coco(tmp_path / "ann.json", size="20x40", val_fraction=0.2, test_fraction=0.2)
    assert ds.info.task == "detect" and ds.info.class_names == ("dog", "cat")  # sorted by category id
    assert (len(ds.train), len(ds.val), len(ds.test)) == (6, 2, 2) and tuple(ds.train.x.shape[1:]) == (3, 20, 40)
    rows = torch.cat([ds.train.y, ds.val.y, ds.test.y])[:, 0]
    assert rows[:, :4].tolist() == [[4.0, 2.0, 12.0, 12.0]] * 10  # half size: [8, 4, 16, 20] xywh -> xyxy / 2
    assert sorted(rows[:, 4].tolist()) == [0.0] * 5 + [1.0] * 5
    doc["annotations"][0]["category_id"] = 5
    (tmp_path / "bad.json").write_text(json.dumps(doc))
    with pytest.raises(DataError, match="category 5"):
        load_coco(tmp_path / "bad.json")
    with pytest.raises(DataError, match="no such annotation file"):
        load_coco(tmp_path / "missing.json")
