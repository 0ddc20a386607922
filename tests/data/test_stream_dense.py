"""Segmentation folders and detection files, streamed or in memory, and the augmentation that moves masks and
boxes with their images: the same splits and batches either way, seeded by (seed, epoch, item)."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import gridseq.datasets as gd
from gridseq.data.augment import augmentation_for
from gridseq.data.augment.dense import DetectAugment, SegmentAugment, move_boxes, move_masks
from gridseq.data.contract import Batch
from gridseq.data.samplers import BatchSampler
from gridseq.data.stream import StreamSplit
from gridseq.errors import ConfigError, DataError

pytestmark = pytest.mark.usefixtures("one_thread")

COLOURS = np.array([[0, 0, 0], [255, 0, 0], [0, 0, 255]], dtype=np.uint8)
STILL = dict(crop_scale=(1, 1), crop_ratio=(1, 1), rotation=0, brightness=0, contrast=0, saturation=0)


def _mask_folder(root, n=12, size=(16, 20), rgb=False, seed=0):
    """images/ + masks/ of `n` random images, each mask a rectangle of class 1 and one of class 2."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(root / "images" / f"im{i}.png")
        mask = np.zeros(size, dtype=np.uint8)
        top, left = rng.integers(0, size[0] - 6), rng.integers(0, size[1] - 6)
        mask[top:top + 5, left:left + 6] = 1
        mask[-3:, : rng.integers(2, size[1])] = 2
        mask[0, -1] = 255  # unlabelled
        image = COLOURS[np.minimum(mask, 2)] if rgb else mask
        Image.fromarray(image).save(root / "masks" / f"im{i}.png")
    return root


def _boxes_csv(root, n=14, size=(24, 32)):
    rng = np.random.default_rng(1)
    root.mkdir(parents=True, exist_ok=True)
    lines = ["image,x0,y0,x1,y1,class"]
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(root / f"im{i}.png")
        for _ in range(int(rng.integers(0, 3))):
            x0, y0 = rng.integers(0, size[1] - 8), rng.integers(0, size[0] - 8)
            lines.append(f"im{i}.png,{x0},{y0},{x0 + rng.integers(3, 8)},{y0 + rng.integers(3, 8)},{'ab'[i % 2]}")
        if lines[-1].split(",")[0] != f"im{i}.png":
            lines.append(f"im{i}.png,,,,,")
    (root / "boxes.csv").write_text("\n".join(lines) + "\n")
    return root / "boxes.csv"


def _coco(root, n=10, size=(20, 28)):
    rng = np.random.default_rng(2)
    root.mkdir(parents=True, exist_ok=True)
    doc = {"images": [], "annotations": [], "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}]}
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(root / f"c{i}.png")
        doc["images"].append({"id": i, "file_name": f"c{i}.png"})
        doc["annotations"].append({"id": i, "image_id": i, "bbox": [2, 3, 9, 7], "category_id": 1 + i % 2})
    (root / "ann.json").write_text(json.dumps(doc))
    return root / "ann.json"


def _same_data(streamed, memory):
    assert isinstance(streamed.train, StreamSplit) and not isinstance(memory.train, StreamSplit)
    assert streamed.info == memory.info  # fewer than 512 training items: the same statistics and record
    for name, split in streamed.splits().items():
        whole = split.batch(torch.arange(len(split)))
        assert torch.equal(whole.x, memory.splits()[name].x) and torch.equal(whole.y, memory.splits()[name].y)


# ---- streamed == in memory ---------------------------------------------------------------------------------

@pytest.mark.parametrize("options", [{}, {"class_weights": "balanced"}, {"image_size": (8, 10)}])
def test_a_streamed_mask_folder_has_the_in_memory_splits_and_batches(tmp_path, options):
    root = _mask_folder(tmp_path / "scenes")
    _same_data(gd.load(root, seed=3, stream=True, workers=0, **options), gd.load(root, seed=3, stream=False, **options))


def test_streamed_colour_masks_and_predefined_splits_match_memory(tmp_path):
    root = _mask_folder(tmp_path / "rgb", rgb=True)
    _same_data(gd.load(root, stream=True, workers=0), gd.load(root, stream=False))  # colours found by one pass
    named = {"class_names": ["bg", "red", "blue"]}  # named, but the colours are still found in the masks
    _same_data(gd.load(root, stream=True, workers=0, **named), gd.load(root, stream=False, **named))
    palette = [[0, 0, 0], [255, 0, 0], [0, 0, 255]]
    _same_data(gd.load(root, palette=palette, stream=True, workers=0), gd.load(root, palette=palette, stream=False))
    _mask_folder(tmp_path / "s" / "train", n=8)
    _mask_folder(tmp_path / "s" / "test", n=3, seed=1)
    _same_data(gd.load(tmp_path / "s", seed=1, stream=True, workers=0), gd.load(tmp_path / "s", seed=1, stream=False))


def test_streamed_detection_files_have_the_in_memory_splits_boxes_and_batches(tmp_path):
    csv = _boxes_csv(tmp_path / "csv")
    for size in (None, "16x20"):
        streamed = gd.load(str(csv), seed=2, size=size, stream=True, workers=0)
        memory = gd.load(str(csv), seed=2, size=size, stream=False)
        _same_data(streamed, memory)
        assert torch.equal(streamed.train.y, memory.train.y)  # boxes are small: they stay in memory
    coco = _coco(tmp_path / "coco")
    _same_data(gd.load(str(coco), size="16x16", stream=True, workers=0), gd.load(str(coco), size="16x16", stream=False))


def test_a_streamed_mask_split_holds_no_mask_tensor_and_says_how_to_get_batches(tmp_path):
    split = gd.load(_mask_folder(tmp_path / "scenes"), stream=True, workers=0).train
    with pytest.raises(DataError, match=r"streams the targets of its \d+ items .* split.batch\(index\)"):
        split.y
    assert tuple(split.batch(torch.arange(2)).y.shape) == (2, 16, 20)


def test_a_corrupt_or_wrong_mask_is_a_data_error_naming_the_file(tmp_path):
    root = _mask_folder(tmp_path / "scenes")
    (root / "classes.txt").write_text("bg\nbox\nfloor\n")  # names known: masks are first read in a batch
    data = gd.load(root, stream=True, workers=0)
    name = data.train.y_source.paths[0].name
    png = (root / "masks" / name).read_bytes()
    (root / "masks" / name).write_bytes(png[: len(png) // 2])  # truncated
    with pytest.raises(DataError, match=rf"cannot read mask .*{name}"):
        data.train.batch(torch.arange(3))
    data.train.workers = 2  # from a worker process: the same one-line error
    with pytest.raises(DataError, match=rf"cannot read mask .*{name}"):
        list(data.train.loader([torch.arange(3), torch.arange(3, 6)]))
    (root / "classes.txt").unlink()
    with pytest.raises(DataError, match=rf"cannot read mask .*{name}"):  # names unknown: the load reads every mask
        gd.load(root, stream=True, workers=0)
    Image.fromarray(np.full((16, 20), 7, dtype=np.uint8)).save(root / "masks" / name)
    (root / "classes.txt").write_text("bg\nbox\nfloor\n")
    with pytest.raises(DataError, match=rf"{name} holds class index 7, but there are only 3 classes"):
        gd.load(root, stream=True, workers=0).train.batch(torch.arange(len(data.train)))


# ---- augmentation moves the targets ------------------------------------------------------------------------

def test_a_flip_mirrors_the_mask_exactly_and_the_boxes_x_coordinates():
    x, y = torch.rand(3, 3, 6, 9), torch.randint(0, 4, (3, 6, 9))  # pixels in [0, 1] (colour clamps there)
    y[0, 0, 0] = -100
    seg = SegmentAugment(mean=(0.0,) * 3, std=(1.0,) * 3, flip=1.0, **STILL)
    out = seg.augment_batch(Batch(x, y), torch.arange(3), seed=0, epoch=0)
    assert torch.equal(out.y, y.flip(2)) and torch.allclose(out.x, x.flip(3), atol=1e-5)
    boxes = torch.tensor([[[1.0, 2.0, 4.0, 5.0, 1.0], [-1, -1, -1, -1, -1]], [[0.0, 0.0, 9.0, 6.0, 0.0], [6, 1, 8, 3, 2]]])
    det = DetectAugment(mean=(0.0,) * 3, std=(1.0,) * 3, flip=1.0, **STILL)
    moved = det.augment_batch(Batch(x[:2], boxes), torch.arange(2), seed=0, epoch=0).y
    real = boxes[..., 4] >= 0
    expected = torch.stack([9 - boxes[..., 2], boxes[..., 1], 9 - boxes[..., 0], boxes[..., 3], boxes[..., 4]], -1)
    assert torch.allclose(moved[real], expected[real], atol=1e-5)
    assert (moved[~real] == -1).all()  # padding stays padding


def test_moved_boxes_enclose_the_moved_object_pixels():
    """The same draws move a rectangle's mask (nearest) and its box (corners): the box is the mask's extent."""
    n, h, w = 12, 32, 40
    masks, boxes = torch.zeros(n, h, w, dtype=torch.int64), torch.zeros(n, 1, 5)
    rng = np.random.default_rng(0)
    for i in range(n):
        y0, x0 = rng.integers(0, h - 10), rng.integers(0, w - 12)
        y1, x1 = y0 + rng.integers(4, 10), x0 + rng.integers(4, 12)
        masks[i, y0:y1, x0:x1] = 1
        boxes[i, 0] = torch.tensor([x0, y0, x1, y1, 0.0])
    x = torch.zeros(n, 1, h, w)
    for rotation in (0.0, 10.0):
        options = dict(mean=(0.0,), std=(1.0,), rotation=rotation, min_visible=0.0, min_side=0.0)
        moved = DetectAugment(**options).augment_batch(Batch(x, boxes), torch.arange(n), seed=4, epoch=1).y
        options = {k: v for k, v in options.items() if not k.startswith("min_")}
        moved_masks = SegmentAugment(**options).augment_batch(Batch(x, masks), torch.arange(n), seed=4, epoch=1).y
        for i in range(n):
            rows, cols = torch.nonzero(moved_masks[i] == 1, as_tuple=True)
            if len(rows) == 0:  # the object left the crop: its box is dropped, or a sliver under a pixel is left
                assert moved[i, 0, 4] == -1 or float((moved[i, 0, 2:4] - moved[i, 0, :2]).min()) < 1.5
                continue
            extent = torch.tensor([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1], dtype=torch.float32)
            box = moved[i, 0, :4]
            assert (box[:2] <= extent[:2] + 1).all() and (box[2:] >= extent[2:] - 1).all()  # encloses the pixels
            if rotation == 0:
                assert torch.allclose(box, extent, atol=1.0)  # ... tightly, without rotation


def test_masks_are_resampled_nearest_and_ignored_where_the_crop_leaves_the_image():
    y = torch.randint(0, 5, (4, 20, 20))
    x = torch.randn(4, 3, 20, 20)
    still = SegmentAugment(mean=(0.0,) * 3, std=(1.0,) * 3, crop_scale=(1, 1), crop_ratio=(1, 1), rotation=30,
                           flip=0.0, brightness=0, contrast=0, saturation=0)
    out = still.augment_batch(Batch(x, y), torch.arange(4), seed=0, epoch=0)
    assert set(out.y.unique().tolist()) <= set(range(5)) | {-100}  # no blended class indices
    corners = out.y[:, [0, 0, -1, -1], [0, -1, 0, -1]]
    centre = out.y[:, 10, 10]
    assert (centre >= 0).all() and (corners == -100).sum() >= 4  # rotated past the border: no label there
    jitter = SegmentAugment(mean=(0.0,) * 3, std=(1.0,) * 3, crop_scale=(1, 1), crop_ratio=(1, 1), rotation=30, flip=0.0)
    coloured = jitter.augment_batch(Batch(x, y), torch.arange(4), seed=0, epoch=0)
    assert torch.equal(coloured.y, out.y) and not torch.allclose(coloured.x, out.x)  # colour changes images only
    shift = torch.tensor([[[1.0, 0.0, 0.5], [0.0, 1.0, 0.0]]])
    grid = F.affine_grid(shift, [1, 1, 1, 4], align_corners=False)
    assert move_masks(torch.tensor([[[3, -100, 1, 2]]]), grid).tolist() == [[[-100, 1, 2, -100]]]


def test_boxes_leaving_the_crop_are_dropped_and_the_rest_clipped():
    zoom = torch.tensor([[[0.5, 0.0, -0.5], [0.0, 1.0, 0.0]]], dtype=torch.float64)  # the left half, stretched
    y = torch.tensor([[[2.0, 0.0, 6.0, 4.0, 0.0], [30.0, 0.0, 38.0, 4.0, 1.0], [16.0, 0.0, 24.0, 4.0, 2.0],
                       [19.0, 0.0, 26.0, 4.0, 3.0], [5.0, 0.0, 5.5, 4.0, 4.0], [-1.0, -1.0, -1.0, -1.0, -1.0]]])
    out = move_boxes(y, zoom, (8, 40), min_visible=0.25, min_side=2.0)
    assert out[0, 0].tolist() == [4.0, 0.0, 12.0, 4.0, 0.0]  # inside: scaled by 2
    assert out[0, 1].tolist() == [-1.0] * 5  # in the right half: gone
    assert out[0, 2].tolist() == [32.0, 0.0, 40.0, 4.0, 2.0]  # half inside: clipped at the border
    assert out[0, 3].tolist() == [-1.0] * 5  # 1/7 of it inside: below min_visible
    assert out[0, 4].tolist() == [-1.0] * 5  # inside but 1 pixel wide: below min_side
    assert out[0, 5].tolist() == [-1.0] * 5  # padding stays padding
    with pytest.raises(ConfigError, match="min_visible"):
        DetectAugment(mean=(0.0,), std=(1.0,), min_visible=2)


def test_dense_augmentation_is_a_function_of_seed_epoch_and_item():
    x, y = torch.randn(6, 3, 12, 12), torch.randint(0, 3, (6, 12, 12))
    aug = SegmentAugment(mean=(0.0,) * 3, std=(1.0,) * 3)
    whole = aug.augment_batch(Batch(x, y), torch.arange(6), seed=0, epoch=1)
    part = aug.augment_batch(Batch(x[[4, 1]], y[[4, 1]]), torch.tensor([4, 1]), seed=0, epoch=1)
    assert torch.allclose(part.x, whole.x[[4, 1]], atol=1e-6) and torch.equal(part.y, whole.y[[4, 1]])
    other = aug.augment_batch(Batch(x, y), torch.arange(6), seed=0, epoch=2)
    assert not torch.equal(other.y, whole.y)


def test_policies_are_found_for_segment_and_detect_data_and_off_by_default(tmp_path):
    seg = gd.load(_mask_folder(tmp_path / "scenes"), stream=False)
    det = gd.load(str(_boxes_csv(tmp_path / "csv")), stream=False)
    assert isinstance(augmentation_for(True, seg.info), SegmentAugment)
    assert isinstance(augmentation_for(True, det.info), DetectAugment)
    assert augmentation_for(None, seg.info) is None and augmentation_for(None, det.info) is None


@pytest.mark.parametrize("task", ["segment", "detect"])
def test_workers_decode_the_same_augmented_batches_as_this_process_and_as_memory(tmp_path, task):
    if task == "segment":
        streamed = gd.load(_mask_folder(tmp_path / "scenes", n=16), stream=True, workers=0)
        memory = gd.load(tmp_path / "scenes", stream=False)
    else:
        csv = _boxes_csv(tmp_path / "csv", n=16)
        streamed, memory = gd.load(str(csv), stream=True, workers=0), gd.load(str(csv), stream=False)
    aug = augmentation_for(True, streamed.info)
    batches = BatchSampler(len(streamed.train), 4, seed=1).batches(0)
    here = list(streamed.train.loader(batches, epoch=2, seed=5, augment=aug))
    streamed.train.workers = 2
    there = list(streamed.train.loader(batches, epoch=2, seed=5, augment=aug))
    in_memory = list(memory.train.loader(batches, epoch=2, seed=5, augment=aug))
    assert len(here) == len(there) == len(in_memory) == len(batches)
    for a, b, c in zip(here, there, in_memory):
        assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
        assert torch.equal(a.x, c.x) and torch.equal(a.y, c.y)
    plain = streamed.train.batch(batches[0])
    assert not torch.equal(here[0].x, plain.x)  # augmented


def test_fit_augments_an_in_memory_segmentation_folder(tmp_path):
    from gridseq import fit, models

    data = gd.load(_mask_folder(tmp_path / "scenes"), stream=False)
    model = models.create_for("unet", data.info, channels=(4, 8))
    result = fit(model, data, epochs=1, batch_size=4, augment=True, seed=0)
    assert "miou" in result.val


@pytest.mark.parametrize("task", ["segment", "detect"])
def test_fit_on_streamed_dense_data_scores_as_in_memory(tmp_path, task):
    from gridseq import fit, models

    source = _mask_folder(tmp_path / "scenes") if task == "segment" else _boxes_csv(tmp_path / "boxes")
    scores = []
    for stream in (False, True):
        data = gd.load(source, stream=stream, workers=2)
        torch.manual_seed(0)
        model = models.create_for("unet" if task == "segment" else "centernet", data.info, channels=(4, 8, 8))
        scores.append(fit(model, data, epochs=2, batch_size=4, seed=0, device="cpu", progress=False).test)
    assert scores[0] == pytest.approx(scores[1], abs=1e-5)
