"""`shapes-detect`: seeded synthetic scenes for object detection — coloured shapes and real handwritten
digits, with a box and a class per object.

Each RGB image has a textured background (a random colour gradient plus noise, as `shapes-seg`) and
1-6 objects on 64x64 (the most grows with the area on larger images): circles, squares and equilateral
triangles (squares and triangles randomly rotated, each a random colour at least 0.3 away, summed over
RGB, from what it covers), and scikit-learn's real 8x8 handwritten digits scaled up (bilinear) and
painted in a random colour at least 0.8 from what it covers. Objects are 12-26 pixels across; a new object may overlap the ones already
drawn (box IoU up to 0.3, and it occludes them), so objects overlap at times. Gaussian pixel noise (std
0.04) goes over everything.

Classes (13): circle, square, triangle, digit 0, ..., digit 9. Boxes are tight around the object's
pixels (a digit's box: its pixels of at least a third of full ink), in pixels, (x0, y0, x1, y1) with
x1, y1 exclusive. `y` is `(N, M, 5)` float32 rows (x0, y0, x1, y1, class), padded with class -1.

Splits (6,000 train / 200 val / 400 test; option `train_items`): the test scenes come from a generator
seeded by the name, size and part only, and use the digits' held-out handwriting (the last 20% of
scikit-learn's 1,797 images; train and val use the first 80%), so test digits are written by hands the
model never saw. Option `size` (64, "96x128" or [H, W]; default 64x64) makes larger scenes of the same
objects — the test of a model trained at 64x64 on larger images. Pixels are normalised per channel with
the training split's statistics.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from gridseq._validation import check_positive_int
from gridseq.data.builtin import _digits_raw
from gridseq.data.catalog import register_dataset
from gridseq.data.shapes_seg import _colour, _shape_mask, _texture, dense_image_dataset, parse_size
from gridseq.data.split import Dataset

CLASS_NAMES = ("circle", "square", "triangle", *(f"digit {d}" for d in range(10)))
SIZES = (6000, 200, 400)
DEFAULT_SIZE = (64, 64)
OBJECT = (12.0, 26.0)  # object side in pixels, uniform
MAX_OVERLAP = 0.3  # the largest box IoU between objects
NOISE = 0.04
DIGIT_CONTRAST = 0.8  # a digit's colour differs from what it covers by this much, summed over RGB
DIGIT_TRAIN_SHARE = 0.8  # the first 80% of the digit images for train/val scenes, the rest for test
_PER_PIXEL = 6.0 / (64 * 64)  # at most 6 objects on 64x64


def _iou(a, boxes: list) -> float:
    best = 0.0
    for b in boxes:
        w = min(a[2], b[2]) - max(a[0], b[0])
        h = min(a[3], b[3]) - max(a[1], b[1])
        inter = max(w, 0) * max(h, 0)
        union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
        best = max(best, inter / union if union > 0 else 0.0)
    return best


def _tight(mask: np.ndarray) -> list[float] | None:
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if len(rows) == 0:
        return None
    return [float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1)]


def make_scenes(n: int, size: tuple[int, int], rng: np.random.Generator, digits: np.ndarray):
    """`n` scenes: images (n, 3, H, W) float32 in [0, 1] and boxes (n, M, 5) float32 (class -1 = padding).

    Args:
        digits: (images (D, 8, 8) in [0, 1], labels (D,)): the handwriting to draw digits from.
    Example:
        >>> x, y = make_scenes(3, (40, 56), np.random.default_rng(0), _digit_pool("train"))
        >>> x.shape, y.shape[0], y.shape[2], bool((y[:, :, 4] >= 0).sum(axis=1).min() >= 1)
        ((3, 3, 40, 56), 3, 5, True)
    """
    images, labels = digits
    h, w = size
    most = max(1, int(round(_PER_PIXEL * h * w)))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    x = np.empty((n, 3, h, w), dtype=np.float32)
    boxes_all = []
    for i in range(n):
        theta = rng.uniform(0, 2 * np.pi)
        ramp = (np.cos(theta) * xx + np.sin(theta) * yy) / max(h, w)
        ramp = (ramp - ramp.min()) / max(float(ramp.max() - ramp.min()), 1e-6)
        c0, c1 = rng.uniform(0.0, 1.0, (2, 3, 1, 1))
        img = c0 + (c1 - c0) * ramp[None] + rng.normal(0.0, 0.06, (3, h, w))
        count = int(rng.integers(1, most + 1))
        boxes: list[list[float]] = []
        for _ in range(count):
            for _attempt in range(20):
                side = rng.uniform(*OBJECT)
                top, left = rng.uniform(0, h - side), rng.uniform(0, w - side)
                if _iou([left, top, left + side, top + side], boxes) <= MAX_OVERLAP:
                    break
            else:
                continue  # no room left
            cls = int(rng.integers(0, len(CLASS_NAMES)))
            cy, cx = top + side / 2, left + side / 2
            behind = img[:, min(int(cy), h - 1), min(int(cx), w - 1)]
            if cls < 3:  # a shape whose circumradius fits the square box
                inside = _shape_mask(cls + 1, yy, xx, cy - 0.5, cx - 0.5, side / 2, rng.uniform(0, 2 * np.pi))
                box = _tight(inside)
                if box is None:
                    continue
                img = np.where(inside[None], _texture(rng, yy, xx, behind), img)
            else:
                pick = rng.choice(np.flatnonzero(labels == cls - 3))
                s = max(int(round(side)), 8)
                ink = F.interpolate(torch.from_numpy(np.array(images[pick], dtype=np.float32))[None, None], size=(s, s),
                                    mode="bilinear", align_corners=False)[0, 0].numpy().clip(0, 1)
                t, l = int(round(top)), int(round(left))
                t, l = min(t, h - s), min(l, w - s)
                alpha = np.zeros((h, w), dtype=np.float32)
                alpha[t:t + s, l:l + s] = ink
                box = _tight(alpha >= 1 / 3)
                if box is None:
                    continue
                colour = _colour(rng, behind)
                while np.abs(colour[:, 0, 0] - behind).sum() < DIGIT_CONTRAST:  # thin strokes need more contrast
                    colour = _colour(rng, behind)
                img = img * (1 - alpha[None]) + colour * alpha[None]
            boxes.append(box + [float(cls)])
        x[i] = np.clip(img + rng.normal(0.0, NOISE, img.shape), 0.0, 1.0)
        boxes_all.append(boxes)
    m = max(1, max(len(b) for b in boxes_all))
    y = np.full((n, m, 5), -1.0, dtype=np.float32)
    for i, b in enumerate(boxes_all):
        if b:
            y[i, : len(b)] = b
    return x, y


def _digit_pool(part: str) -> tuple[np.ndarray, np.ndarray]:
    x, y = _digits_raw()
    cut = int(len(x) * DIGIT_TRAIN_SHARE)
    keep = slice(0, cut) if part == "train" else slice(cut, None)
    return x[keep, 0], y[keep]


def _rng(size: tuple[int, int], part: str) -> np.random.Generator:
    return np.random.default_rng([ord(c) for c in f"shapes-detect/{part}"] + list(size))


def _pad(y: np.ndarray, m: int) -> np.ndarray:
    out = np.full((len(y), m, 5), -1.0, dtype=np.float32)
    out[:, : y.shape[1]] = y
    return out


def detect_dataset(name: str, parts: dict, class_names, *, source: str, **extra) -> Dataset:
    """A `detect` Dataset from raw images (N, C, H, W) in [0, 1] and boxes (N, M, 5) per split.

    Normalises every split with the training split's per-channel statistics (kept in
    `info.preprocessing`, whose image entry has `"any_size": True`: the detector is fully convolutional)
    and pads every split's boxes to the same M.
    """
    m = max(y.shape[1] for _, y in parts.values())
    return dense_image_dataset(name, parts, class_names, task="detect", source=source,
                               target=lambda y: torch.from_numpy(_pad(y, m)), **extra)


@register_dataset(
    "shapes-detect", kind="image", sizes=SIZES, num_classes=len(CLASS_NAMES),
    description="detection: 1-6 coloured shapes and real handwritten digits per image, boxes + 13 classes "
                "(generated; options size, default 64x64, and train_items)",
)
def shapes_detect(seed: int, view: str, *, size=DEFAULT_SIZE, train_items: int = SIZES[0]) -> Dataset:
    """shapes-detect at `size`: x (N, 3, H, W) normalised, y (N, M, 5) boxes; task "detect".

    Args:
        seed: picks the validation images from the training pool.
        view: "image".
        size: (H, W), an int for a square, or "HxW". Default: 64x64.
        train_items: training images (val 200 and test 400 stay). Default: 6000.
    Example:
        >>> ds = shapes_detect(0, "image", size="48x80", train_items=50)
        >>> tuple(ds.train.x.shape), tuple(ds.test.y.shape[::2]), ds.info.task
        ((50, 3, 48, 80), (400, 5), 'detect')
    """
    size = parse_size(size)
    train = check_positive_int(train_items, "train_items")
    _, val, test = SIZES
    x, y = make_scenes(train + val, size, _rng(size, "train"), _digit_pool("train"))
    x_test, y_test = make_scenes(test, size, _rng(size, "test"), _digit_pool("test"))
    order = np.random.default_rng(seed).permutation(train + val)
    parts = {"train": (x[order[:train]], y[order[:train]]), "val": (x[order[train:]], y[order[train:]]),
             "test": (x_test, y_test)}
    return detect_dataset("shapes-detect", parts, CLASS_NAMES, source="shapes-detect", size=list(size))


# ---- user data: COCO-style JSON ------------------------------------------------------------------------

def load_coco(annotations, images=None, *, size=None, channels: int = 3, seed: int = 0, val_fraction: float = 0.1,
              test_fraction: float = 0.1) -> Dataset:
    """A `detect` Dataset from a COCO-style JSON of boxes and its image files.

    The JSON needs `images` ([{"id", "file_name"}, ...]), `annotations` ([{"image_id", "bbox": [x, y,
    width, height] in pixels, "category_id"}, ...]) and `categories` ([{"id", "name"}, ...]); other keys
    are ignored, and annotations with "iscrowd": 1 are skipped. Classes are the categories sorted by id.
    Every image is resized to `size` (its boxes scaled with it), so the splits stack into tensors.

    Args:
        annotations: path of the JSON file.
        images: the folder `file_name`s are relative to. Default: the JSON file's folder.
        size: (H, W), an int or "HxW" every image is resized to. Default: the first image's size.
        channels: 3 (RGB) or 1 (grayscale). Default: 3.
        seed: which images go to val and test.
        val_fraction, test_fraction: shares of the images held out. Defaults: 0.1 each.
    Raises:
        DataError: a missing file or key, an unknown category or image id, or an empty box.
    Example:
        >>> ds = load_coco("annotations.json", size=64)  # doctest: +SKIP
        >>> ds.info.task, tuple(ds.train.y.shape[2:])     # doctest: +SKIP
        ('detect', (5,))
    """
    import json
    from pathlib import Path

    from gridseq.data.image_folder import read_image
    from gridseq.errors import DataError

    path = Path(annotations)
    if not path.is_file():
        raise DataError(f"no such annotation file: {path}; pass a COCO-style JSON (images, annotations, categories).")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        cats = sorted(doc["categories"], key=lambda c: c["id"])
        entries, boxes = doc["images"], doc["annotations"]
    except (ValueError, KeyError, TypeError) as e:
        raise DataError(f"{path}: expected COCO-style JSON with 'images', 'annotations' and 'categories' lists ({e!r}).") from None
    if not entries or not cats:
        raise DataError(f"{path}: no images or no categories.")
    index = {c["id"]: i for i, c in enumerate(cats)}
    folder = Path(images) if images is not None else path.parent
    first = read_image(folder / entries[0]["file_name"], channels=channels)
    h, w = parse_size(size) if size is not None else first.shape[1:]
    xs, per_image, position = [], [], {}
    for i, entry in enumerate(entries):
        image = read_image(folder / entry["file_name"], channels=channels)  # its own size, for the boxes' scale
        scale = (image.shape[2] / w, image.shape[1] / h)
        if image.shape[1:] != (h, w):
            image = read_image(folder / entry["file_name"], channels=channels, size=(h, w))
        xs.append(image)
        position[entry["id"]] = i
        per_image.append((*scale, []))
    for a in boxes:
        if a.get("iscrowd"):
            continue
        if a.get("image_id") not in position or a.get("category_id") not in index:
            raise DataError(f"{path}: annotation {a.get('id')} names image {a.get('image_id')!r} / category "
                            f"{a.get('category_id')!r}, not in 'images' / 'categories'.")
        sx, sy, rows = per_image[position[a["image_id"]]]
        x, y, bw, bh = (float(v) for v in a["bbox"])
        if bw <= 0 or bh <= 0:
            raise DataError(f"{path}: annotation {a.get('id')} has an empty bbox {a['bbox']} (COCO bbox is [x, y, width, height]).")
        rows.append([x / sx, y / sy, (x + bw) / sx, (y + bh) / sy, float(index[a["category_id"]])])
    m = max(1, max(len(r) for _, _, r in per_image))
    y = np.full((len(entries), m, 5), -1.0, dtype=np.float32)
    for i, (_, _, rows) in enumerate(per_image):
        if rows:
            y[i, : len(rows)] = rows
    x = np.stack(xs)
    n = len(x)
    n_test, n_val = int(round(n * test_fraction)), int(round(n * val_fraction))
    if n - n_test - n_val < 1:
        raise DataError(f"{path}: {n} images leave none for training with val_fraction {val_fraction} and test_fraction {test_fraction}.")
    order = np.random.default_rng(seed).permutation(n)
    test, val, train = order[:n_test], order[n_test:n_test + n_val], order[n_test + n_val:]
    parts = {"train": (x[train], y[train]), "val": (x[val], y[val]), "test": (x[test], y[test])}
    names = [str(c.get("name", c["id"])) for c in cats]
    return detect_dataset(str(path), parts, names, source="coco", size=[int(h), int(w)])
