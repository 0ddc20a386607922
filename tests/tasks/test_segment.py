"""The segment task (loss, metrics, checks), prediction of masks, and the CLI path: train, evaluate at another
size, predict --out. The slow test trains shapes-seg and checks mIoU far above the all-background baseline."""

import base64
import io
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import gridseq
from gridseq import models, tasks
from gridseq.cli import main
from gridseq.data.contract import Batch, DatasetInfo, Split
from gridseq.errors import ConfigError, DataError, ShapeError
from gridseq.tasks.segment import balanced_weights, iou_from_confusion

pytestmark = pytest.mark.usefixtures("one_thread")
NAMES = ("background", "circle", "square")


def _info(**preprocessing):
    return DatasetInfo(name="seg", kind="image", input_shape=(1, 4, 4), num_classes=3, class_names=NAMES,
                       task="segment", preprocessing=preprocessing)


def _logits(mask, k=3):
    """Logits whose argmax is `mask` (B, H, W)."""
    return F.one_hot(mask, k).permute(0, 3, 1, 2).float() * 10


def test_loss_is_pixel_cross_entropy_over_labelled_pixels():
    task = tasks.get("segment", _info())
    out = torch.randn(2, 3, 4, 5)
    y = torch.randint(0, 3, (2, 4, 5))
    y[0, 0] = -100
    batch = Batch(torch.zeros(2, 1, 4, 5), y)
    expected = F.cross_entropy(out.permute(0, 2, 3, 1)[y != -100], y[y != -100])
    assert torch.allclose(task.loss(out, batch), expected, atol=1e-6)


def test_class_weights_from_the_dataset_and_configure():
    y = torch.tensor([[[0, 0, 1, 2]]])
    out = torch.randn(1, 3, 1, 4)
    weighted = tasks.get("segment", _info(class_weights=[1.0, 2.0, 3.0]))
    expected = F.cross_entropy(out, y, weight=torch.tensor([1.0, 2.0, 3.0]))
    assert torch.allclose(weighted.loss(out, Batch(torch.zeros(1, 1, 1, 4), y)), expected)
    plain = tasks.get("segment", _info()).configure(class_weights=[1.0, 2.0, 3.0])
    assert torch.allclose(plain.loss(out, Batch(torch.zeros(1, 1, 1, 4), y)), expected)
    with pytest.raises(ConfigError, match="one weight per class"):
        tasks.get("segment", _info()).configure(class_weights=[1.0, 2.0])
    with pytest.raises(ConfigError, match="positive"):
        tasks.get("segment", _info(class_weights=[1.0, 0.0, 1.0]))
    assert balanced_weights(torch.tensor([[[0, 0, 0, 1, -100]]]), 3) == [2 / 3, 2.0, 1.0]


def test_metrics_pixel_accuracy_iou_and_miou():
    task = tasks.get("segment", _info())
    y = torch.tensor([[[0, 0, 0, 1], [1, 1, 0, -100]]])  # class 2 absent from truth and prediction
    pred = torch.tensor([[[0, 0, 1, 1], [1, 0, 0, 2]]])
    m = task.metrics()
    m.update(_logits(pred), Batch(torch.zeros(1, 1, 2, 4), y), torch.tensor(0.5))
    out = m.compute()
    # labelled: 7 pixels, right: 5. class 0: tp 3, fp 1, fn 1 -> 3/5; class 1: tp 2, fp 1, fn 1 -> 2/4
    assert out["pixel_accuracy"] == pytest.approx(5 / 7)
    assert out["iou_background"] == pytest.approx(0.6) and out["iou_circle"] == pytest.approx(0.5)
    assert math.isnan(out["iou_square"])  # the -100 pixel predicted as square does not count
    assert out["miou"] == pytest.approx(0.55)
    assert out["loss"] == pytest.approx(0.5)
    # state_dict round trip, and a second batch adds to the totals
    again = task.metrics()
    again.load_state_dict(m.state_dict())
    again.update(_logits(y.clamp(min=0)), Batch(torch.zeros(1, 1, 2, 4), y), torch.tensor(0.5))
    assert again.compute()["pixel_accuracy"] == pytest.approx(12 / 14)
    assert iou_from_confusion(torch.tensor([[1, 0], [0, 0]])).tolist()[0] == 1.0


def test_majority_baseline_is_all_background():
    y = torch.zeros(2, 4, 4, dtype=torch.int64)
    y[0, :2, :2] = 1
    y[1, :1] = 2
    base = tasks.get("segment", _info()).baselines(Split(torch.zeros(2, 1, 4, 4), y))["majority"]
    assert base["pixel_accuracy"] == pytest.approx(24 / 32)
    assert base["miou"] == pytest.approx((24 / 32) / 3)


def test_checks_name_the_problem():
    task = tasks.get("segment", _info())
    with pytest.raises(ShapeError, match=r"\(B, 3, 4, 4\)"):
        task.loss(torch.zeros(1, 3, 4, 5), Batch(torch.zeros(1, 1, 4, 4), torch.zeros(1, 4, 4, dtype=torch.int64)))
    with pytest.raises(ShapeError, match="dense model"):
        task.predict(torch.zeros(2, 3))
    with pytest.raises(DataError, match=r"\(N, H, W\) int64"):
        task.check_split(Split(torch.zeros(2, 1, 4, 4), torch.zeros(2, dtype=torch.int64)), "train")
    with pytest.raises(DataError, match="the size of their images"):
        task.check_split(Split(torch.zeros(2, 1, 4, 4), torch.zeros(2, 4, 5, dtype=torch.int64)), "train")
    with pytest.raises(DataError, match=r"\[0, 3\)"):
        task.check_split(Split(torch.zeros(1, 1, 2, 2), torch.full((1, 2, 2), 3)), "val")


def _tiny_run(tmp_path):
    run = tmp_path / "run"
    assert main(["train", "shapes-seg", "--model", "unet", "--data.size=16", "--data.train_items=300", "--model.channels=[4,8]", "--epochs", "1",
                 "--batch-size", "64", "--threads", "1", "--run-dir", str(run), "--no-progress"]) == 0
    return run


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    return _tiny_run(tmp_path_factory.mktemp("seg"))


def test_cli_train_evaluate_at_another_size_and_predict_masks(tiny_run, tmp_path, capsys):
    from PIL import Image

    metrics = json.loads((tiny_run / "metrics.json").read_text())
    assert {"miou", "pixel_accuracy", "iou_triangle"} <= set(metrics["test"])
    capsys.readouterr()
    assert main(["evaluate", str(tiny_run), "--data.size=21x27", "--json"]) == 0
    assert 0.0 <= json.loads(capsys.readouterr().out)["miou"] <= 1.0
    assert main(["evaluate", str(tiny_run), "--model.channels=[4]"]) == 2  # only data options apply
    # an odd-sized image file in, a colour mask and an overlay of the same size out
    image = tmp_path / "scene.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (23, 37, 3), dtype=np.uint8)).save(image)
    out = tmp_path / "pred" / "mask.png"
    assert main(["predict", str(tiny_run), str(image), "--out", str(out), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)[0]
    assert record["size"] == [23, 37] and sum(record["classes"].values()) == pytest.approx(1.0, abs=1e-3)
    for path in (out, out.with_name("mask_overlay.png")):
        with Image.open(path) as img:
            assert (img.size, img.mode) == ((37, 23), "RGB")
    assert main(["predict", str(tiny_run), str(image), str(image), "--out", str(tmp_path / "one.png")]) == 2
    assert main(["predict", str(tiny_run), "--split", "val", "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert len(records) == 200 and all(0 <= r["pixel_accuracy"] <= 1 and r["size"] == [16, 16] for r in records)


def test_predictor_returns_masks_at_each_input_size(tiny_run):
    from PIL import Image

    from gridseq.predict import Predictor

    p = Predictor.from_run(tiny_run)
    buf = io.BytesIO()
    Image.fromarray(np.zeros((9, 14, 3), dtype=np.uint8)).save(buf, format="PNG")
    out = p.predict([np.random.rand(3, 20, 31).tolist(), base64.b64encode(buf.getvalue()).decode()])
    masks = out["predictions"]
    assert np.array(masks[0]).shape == (20, 31) and np.array(masks[1]).shape == (9, 14)
    assert out["classes"] == ["background", "circle", "square", "triangle"]
    assert p.describe()["input"]["any_size"] is True
    with pytest.raises(DataError, match=r"\(3, H, W\)"):
        p.predict([np.zeros((5, 20, 31)).tolist()])


@pytest.mark.slow
def test_unet_learns_shapes_seg_and_predicts_odd_sizes():
    """A short run (2 epochs on 3,000 images) of the shapes-seg settings: far above the all-background
    baseline, also at 97x131. The documented full run (8 epochs on 6,000) reaches the targets; see docs/vision.md."""
    torch.set_num_threads(2)
    from gridseq.train import seed_everything

    seed_everything(0)
    data = gridseq.datasets.load("shapes-seg", train_items=3000)
    model = models.create_for("unet", data.info, channels=(16, 32, 64, 128))
    result = gridseq.fit(model, data, epochs=2, batch_size=8, lr=2e-3, scheduler="cosine", progress=False)
    baseline = tasks.get("segment", data.info).baselines(data.test)["majority"]["miou"]
    assert baseline < 0.25
    print(f"test miou {result.test['miou']:.4f} (majority baseline {baseline:.4f})")
    assert result.test["miou"] > 0.5  # measured 0.657 (2 threads, seed 0)
    odd = gridseq.datasets.load("shapes-seg", size="97x131", train_items=10)  # only its test split is used
    # normalise with the training run's statistics, as `gridseq evaluate --data.size=97x131` does
    stats = [{k: torch.tensor(d.info.preprocessing["normalize"][k]).view(-1, 1, 1) for k in ("mean", "std")} for d in (odd, data)]
    odd.test.x = (odd.test.x * stats[0]["std"] + stats[0]["mean"] - stats[1]["mean"]) / stats[1]["std"]
    model.eval()
    with torch.no_grad():
        out = model(odd.test.x[:4])
    assert out.shape == (4, 4, 97, 131)
    odd_miou = gridseq.evaluate(model, odd.test, info=odd.info)["miou"]
    print(f"97x131 test miou {odd_miou:.4f}")
    assert odd_miou > 0.5  # measured 0.677
