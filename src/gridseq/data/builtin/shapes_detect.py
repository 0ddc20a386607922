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

Splits (12,000 train / 400 val / 400 test; option `train_items`): each split has its own generator and
its own handwriting — train scenes draw digits from the first 70% of scikit-learn's 1,797 images, val
from the next 10%, test from the last 20% — so val and test digits are written by hands the model never
saw, and choices made on val reflect that. Val and test scenes are seeded by the name, size and part
only (the same for every `--seed`); training scenes also by the seed, and each digit they draw is varied
(rotation, shear, scale, stroke weight; `AUGMENT`). Option `size` (64, "96x128" or [H, W]; default 64x64) makes larger scenes of the same
objects — the test of a model trained at 64x64 on larger images. Pixels are normalised per channel with
the training split's statistics.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from gridseq._validation import check_positive_int
from gridseq.data.builtin import register_dataset
from gridseq.data.builtin.digits import digits_raw
from gridseq.data.builtin.shapes_seg import _colour, _shape_mask, _texture, dense_image_dataset, parse_size
from gridseq.data.contract import Dataset

CLASS_NAMES = ("circle", "square", "triangle", *(f"digit {d}" for d in range(10)))
SIZES = (12000, 400, 400)  # 12,000 training scenes: val mAP@0.5 0.954 vs 0.916 with 6,000
DEFAULT_SIZE = (64, 64)
OBJECT = (12.0, 26.0)  # object side in pixels, uniform
MAX_OVERLAP = 0.3  # the largest box IoU between objects
NOISE = 0.04
DIGIT_CONTRAST = 0.8  # a digit's colour differs from what it covers by this much, summed over RGB
# handwriting by part: train scenes draw from the first 70% of the digit images, val from the next
# 10% and test from the last 20%, so validation, like test, sees hands the model never trained on
DIGIT_SHARES = {"train": (0.0, 0.7), "val": (0.7, 0.8), "test": (0.8, 1.0)}
# training scenes vary each digit they draw (unseen hands write differently): a random rotation,
# shear, per-axis scale and stroke weight (ink ** gamma: below 1 thickens, above 1 thins)
AUGMENT = {"rotate": 0.25, "shear": 0.3, "scale": (0.8, 1.0), "gamma": (0.6, 1.6)}
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


def _vary(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """`ink` (s, s) in [0, 1] under a random rotation, shear and per-axis scale about its centre, then a
    random stroke weight (`AUGMENT`); the same size, zeros where the warp looks outside."""
    a = AUGMENT
    angle, shear = rng.uniform(-a["rotate"], a["rotate"]), rng.uniform(-a["shear"], a["shear"])
    sx, sy = rng.uniform(*a["scale"], 2)
    # affine_grid maps output to input coordinates: the inverse of the warp
    warp = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]) @ np.array([[1, shear], [0, 1]]) \
        @ np.diag([sx, sy])
    theta = torch.from_numpy(np.linalg.inv(warp)).float()
    grid = F.affine_grid(torch.cat([theta, torch.zeros(2, 1)], 1)[None], [1, 1, *ink.shape], align_corners=False)
    out = F.grid_sample(torch.from_numpy(ink)[None, None], grid, align_corners=False)[0, 0].numpy().clip(0, 1)
    return out ** rng.uniform(*a["gamma"])


def make_scenes(n: int, size: tuple[int, int], rng: np.random.Generator, digits: np.ndarray, *,
                augment: bool = False):
    """`n` scenes: images (n, 3, H, W) float32 in [0, 1] and boxes (n, M, 5) float32 (class -1 = padding).

    Args:
        digits: (images (D, 8, 8) in [0, 1], labels (D,)): the handwriting to draw digits from.
        augment: vary every digit drawn (`AUGMENT`: rotation, shear, scale, stroke weight), for training
            scenes. Without it the scenes are exactly those of a generator that never augments.
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
                if augment:
                    ink = _vary(ink, rng)
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
    x, y = digits_raw()
    lo, hi = DIGIT_SHARES[part]
    keep = slice(int(len(x) * lo), int(len(x) * hi))
    return x[keep, 0], y[keep]


def _rng(size: tuple[int, int], part: str, seed: int | None = None) -> np.random.Generator:
    return np.random.default_rng([ord(c) for c in f"shapes-detect/{part}"] + list(size) + ([] if seed is None else [seed]))


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
        seed: picks the training scenes (val and test are the same for every seed).
        view: "image".
        size: (H, W), an int for a square, or "HxW". Default: 64x64.
        train_items: training images (val 400 and test 400 stay). Default: 12000.
    Example:
        >>> ds = shapes_detect(0, "image", size="48x80", train_items=50)
        >>> tuple(ds.train.x.shape), tuple(ds.test.y.shape[::2]), ds.info.task
        ((50, 3, 48, 80), (400, 5), 'detect')
    """
    size = parse_size(size)
    train = check_positive_int(train_items, "train_items")
    _, val, test = SIZES
    parts = {"train": make_scenes(train, size, _rng(size, "train", seed), _digit_pool("train"), augment=True),
             "val": make_scenes(val, size, _rng(size, "val"), _digit_pool("val")),
             "test": make_scenes(test, size, _rng(size, "test"), _digit_pool("test"))}
    return detect_dataset("shapes-detect", parts, CLASS_NAMES, source="shapes-detect", size=list(size))

