"""Object-detection data from your own files: COCO-style JSON and box CSVs, through datasets.load and the CLI."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from gridseq import datasets
from gridseq.cli import main
from gridseq.data.readers.detection import csv_columns, load_boxes_csv, load_coco
from gridseq.errors import DataError

pytestmark = pytest.mark.usefixtures("one_thread")


def _images(folder, n, size=(40, 80)):
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(folder / f"im{i}.png")


def test_load_coco_scales_boxes_names_classes_and_splits(tmp_path):
    _images(tmp_path, 10)
    doc = {"images": [], "annotations": [], "categories": [{"id": 7, "name": "cat"}, {"id": 3, "name": "dog"}]}
    for i in range(10):
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
    # the test split is the same for every seed; val moves with it
    other = datasets.load(str(tmp_path / "ann.json"), seed=3, size="20x40", val_fraction=0.2, test_fraction=0.2)
    def raw(d):
        norm = {k: torch.tensor(d.info.preprocessing["normalize"][k]).view(-1, 1, 1) for k in ("mean", "std")}
        return d.test.x * norm["std"] + norm["mean"]  # pixels, before the training split's statistics

    assert torch.allclose(raw(other), raw(ds), atol=1e-5)
    assert not torch.allclose(raw(other)[:1], raw(ds)[1:2], atol=1e-3)  # a real check: images differ
    doc["annotations"][0]["category_id"] = 5
    (tmp_path / "bad.json").write_text(json.dumps(doc))
    with pytest.raises(DataError, match="category 5"):
        load_coco(tmp_path / "bad.json")
    with pytest.raises(DataError, match="no such annotation file"):
        load_coco(tmp_path / "missing.json")


def test_boxes_csv_takes_tool_headers_empty_images_and_a_split_column(tmp_path):
    _images(tmp_path, 4)
    (tmp_path / "boxes.csv").write_text(
        "filename,xmin,ymin,xmax,ymax,label,split\n"
        "im0.png,8,4,24,24,dog,train\nim0.png,40,10,60,30,cat,train\n"
        "im1.png,,,,,,train\n"  # no objects
        "im2.png,0,0,80,40,cat,val\nim3.png,10,10,20,20,dog,test\n")
    assert csv_columns(tmp_path / "boxes.csv")["x0"] == "xmin"
    ds = datasets.load(str(tmp_path / "boxes.csv"))  # dispatched by its header
    assert ds.info.task == "detect" and ds.info.class_names == ("cat", "dog")  # names sorted
    assert (len(ds.train), len(ds.val), len(ds.test)) == (2, 1, 1) and tuple(ds.train.x.shape[1:]) == (3, 40, 80)
    assert ds.train.y[0].tolist() == [[8, 4, 24, 24, 1], [40, 10, 60, 30, 0]]
    assert (ds.train.y[1, :, 4] == -1).all()  # the empty image: padding only
    half = load_boxes_csv(tmp_path / "boxes.csv", size="20x40")
    assert half.train.y[0, 0].tolist() == [4, 2, 12, 12, 1]


@pytest.mark.parametrize("body, message", [
    ("im0.png,8,4,x,24,dog\n", "must be numbers"),
    ("im0.png,30,4,20,24,dog\n", "x0 < x1"),
    ("im0.png,8,4,20,24,\n", "a class"),
    (",8,4,20,24,dog\n", "empty image name"),
])
def test_boxes_csv_errors_name_the_line(tmp_path, body, message):
    _images(tmp_path, 1)
    (tmp_path / "b.csv").write_text("image,x0,y0,x1,y1,class\n" + body)
    with pytest.raises(DataError, match=f"line 2: .*{message}|line 2: {message}"):
        load_boxes_csv(tmp_path / "b.csv")


def test_a_csv_without_the_box_columns_is_not_taken_for_boxes(tmp_path):
    (tmp_path / "t.csv").write_text("image,x0,y0,x1,class\nim0.png,1,2,3,dog\n")
    assert csv_columns(tmp_path / "t.csv") is None
    with pytest.raises(DataError, match="x0, y0, x1, y1"):
        load_boxes_csv(tmp_path / "t.csv")


def test_cli_trains_a_detector_on_a_boxes_csv_and_predicts(tmp_path, capsys):
    _images(tmp_path, 12, size=(32, 32))
    lines = [f"im{i}.png,{4 + i},6,{20 + i},22,{'ab'[i % 2]}" for i in range(12)]
    (tmp_path / "boxes.csv").write_text("image,x0,y0,x1,y1,class\n" + "\n".join(lines) + "\n")
    run = tmp_path / "run"
    assert main(["train", str(tmp_path / "boxes.csv"), "--model", "centernet", "--model.channels=[4,8,8]",
                 "--model.head_channels=8", "--epochs", "1", "--batch-size", "4", "--run-dir", str(run),
                 "--no-progress"]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert {"map50", "map50_95"} <= set(metrics["test"])
    capsys.readouterr()
    assert main(["predict", str(run), str(tmp_path / "im0.png"), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)[0]
    assert record["size"] == [32, 32] and isinstance(record["boxes"], list)
    assert main(["train", str(tmp_path / "missing.json"), "--model", "centernet", "--run-dir", str(tmp_path / "r2")]) == 2
