"""`shapes-seg`: seeded synthetic scenes for semantic segmentation, with per-pixel class masks.

Each RGB image holds a textured background (a random colour gradient plus noise) and several shapes —
circles, squares and equilateral triangles (squares and triangles randomly rotated) — each in a random
colour (never within 0.3, summed over RGB, of what it covers) with its own texture (flat, stripes or
speckle), drawn one after another so later shapes occlude earlier ones. The mask gives every pixel its class: 0 background, 1 circle, 2 square,
3 triangle (the shape visible on top). Colour says nothing about the class; only geometry does.
Gaussian pixel noise (std 0.04) goes over everything; pixels are clipped to [0, 1].

Shapes keep their size in pixels (circumradius 8-15) whatever the image size; the number of shapes
grows with the image's area (4 on average on 64x64, at least 1), so a larger image looks like a wider
view of the same world. That makes `size` a fair test of a model trained at another size: option `size` (an int for a square,
"HxW" such as "97x131", or [H, W]; default 64x64) generates the same kind of scenes at any size.

Splits (6,000 train / 200 val / 400 test; option `train_items` changes the 6,000): the test images
come from a generator seeded by the name, the size and the part only, so they are the same on every
machine and for every `seed`; train and val are drawn from one pool and `seed` decides which 200 are val. Pixels are normalised per channel
with the training split's mean and std, recorded like every image dataset's.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from gridseq._validation import check_positive_int
from gridseq.data.builtin import register_dataset
from gridseq.data.contract import Dataset, DatasetInfo, Split
from gridseq.data.preprocessing import apply_preprocessing, image_record
from gridseq.errors import ConfigError

CLASS_NAMES = ("background", "circle", "square", "triangle")
SIZES = (6000, 200, 400)
DEFAULT_SIZE = (64, 64)
RADIUS = (8.0, 15.0)  # the shapes' circumradius in pixels, uniform
NOISE = 0.04
MIN_CONTRAST = 0.3  # a shape's colours differ from what it covers (at its centre) by this much, summed over RGB
_PER_PIXEL = 4.0 / (64 * 64)  # 4 shapes on average on a 64x64 image


def parse_size(size) -> tuple[int, int]:
    """(H, W) from 64, "64", "97x131" or [97, 131]; ConfigError otherwise.

    Example:
        >>> parse_size("97x131"), parse_size(32)
        ((97, 131), (32, 32))
    """
    value = size
    if isinstance(value, str):
        try:
            value = [int(p) for p in value.lower().split("x")]
        except ValueError:
            value = None
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = [int(value)] * 2
    if isinstance(value, (list, tuple)) and len(value) == 1:
        value = list(value) * 2
    ok = isinstance(value, (list, tuple)) and len(value) == 2 and all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value)
    if not ok or min(value) < 16 or max(value) > 1024:
        raise ConfigError(f"size must be HxW with both sides in [16, 1024] (e.g. 64, \"97x131\" or [97, 131]), got {size!r}.")
    return int(value[0]), int(value[1])


def _shape_mask(kind: int, yy: np.ndarray, xx: np.ndarray, cy: float, cx: float, r: float, angle: float) -> np.ndarray:
    """Boolean (H, W) mask of one shape centred at (cy, cx) with circumradius r."""
    dy, dx = yy - cy, xx - cx
    if kind == 1:  # circle
        return dy * dy + dx * dx <= r * r
    c, s = np.cos(angle), np.sin(angle)
    u, v = c * dx + s * dy, -s * dx + c * dy  # rotated coordinates
    if kind == 2:  # square with half-side r / sqrt(2): its corners lie on the circumcircle
        half = r / np.sqrt(2.0)
        return (np.abs(u) <= half) & (np.abs(v) <= half)
    # equilateral triangle: three half-planes at distance r/2 from the centre (the inradius)
    inside = np.ones_like(u, dtype=bool)
    for k in range(3):
        a = angle + np.pi / 2 + k * 2 * np.pi / 3  # outward normals 120 degrees apart
        inside &= (np.cos(a) * dx + np.sin(a) * dy) <= r / 2
    return inside


def _colour(rng: np.random.Generator, behind: np.ndarray) -> np.ndarray:
    """A random RGB colour at least `MIN_CONTRAST` (sum of channel differences) from `behind` (3,)."""
    while True:
        colour = rng.uniform(0.0, 1.0, 3)
        if np.abs(colour - behind).sum() >= MIN_CONTRAST:
            return colour[:, None, None]


def _texture(rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray, behind: np.ndarray) -> np.ndarray:
    """(3, H, W) colour field of one shape: a random colour, flat, striped or speckled."""
    colour = _colour(rng, behind)
    style = rng.integers(0, 3)
    if style == 0:
        return np.broadcast_to(colour, (3, *yy.shape))
    if style == 1:
        period, theta = rng.uniform(3.0, 8.0), rng.uniform(0, np.pi)
        wave = np.sin(2 * np.pi * (np.cos(theta) * xx + np.sin(theta) * yy) / period)[None]
        other = _colour(rng, behind)
        return np.where(wave > 0, colour, other)
    return colour + rng.normal(0.0, 0.12, (3, *yy.shape))


def make_scenes(n: int, size: tuple[int, int], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """`n` scenes: images (n, 3, H, W) float32 in [0, 1] and masks (n, H, W) int64 in 0..3.

    Example:
        >>> x, y = make_scenes(2, (37, 53), np.random.default_rng(0))
        >>> x.shape, y.shape, int(y.max()) <= 3
        ((2, 3, 37, 53), (2, 37, 53), True)
    """
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    x = np.empty((n, 3, h, w), dtype=np.float32)
    y = np.zeros((n, h, w), dtype=np.int64)
    mean_shapes = _PER_PIXEL * h * w
    for i in range(n):
        # background: a gradient between two random colours along a random direction, plus speckle
        theta = rng.uniform(0, 2 * np.pi)
        ramp = (np.cos(theta) * xx + np.sin(theta) * yy) / max(h, w)
        ramp = (ramp - ramp.min()) / max(float(ramp.max() - ramp.min()), 1e-6)
        c0, c1 = rng.uniform(0.0, 1.0, (2, 3, 1, 1))
        img = c0 + (c1 - c0) * ramp[None] + rng.normal(0.0, 0.06, (3, h, w))
        count = 1 + rng.poisson(max(mean_shapes - 1.0, 0.0))  # at least one shape
        for _ in range(count):
            kind = int(rng.integers(1, 4))
            r = rng.uniform(*RADIUS)
            # centres at least r/2 inside the frame: a shape may be cut by the border, never mostly hidden
            cy, cx = rng.uniform(r / 2, h - 1 - r / 2), rng.uniform(r / 2, w - 1 - r / 2)
            inside = _shape_mask(kind, yy, xx, cy, cx, r, rng.uniform(0, 2 * np.pi))
            behind = img[:, min(int(cy), h - 1), min(int(cx), w - 1)]  # what the shape covers, at its centre
            img = np.where(inside[None], _texture(rng, yy, xx, behind), img)  # later shapes occlude earlier ones
            y[i][inside] = kind
        x[i] = np.clip(img + rng.normal(0.0, NOISE, img.shape), 0.0, 1.0)
    return x, y


def _rng(size: tuple[int, int], part: str) -> np.random.Generator:
    # one generator per (size, part), independent of the user's seed
    return np.random.default_rng([ord(c) for c in f"shapes-seg/{part}"] + list(size))


def dense_image_dataset(name: str, parts: dict[str, tuple[np.ndarray, np.ndarray]], class_names, *, task: str,
                        target: Callable[[np.ndarray], torch.Tensor], source: str, array_scale: float = 1.0,
                        **extra) -> Dataset:
    """A Dataset for a fully convolutional task from raw images (N, C, H, W) in [0, 1] and per-image targets.

    Normalises every split with the training split's per-channel statistics (the record is kept in
    `info.preprocessing`, so `predict` prepares new images the same way; its image entry has
    `"any_size": True`: the model is fully convolutional) and turns each split's targets into a tensor
    with `target`.
    """
    train_x = parts["train"][0]
    record = image_record(source, train_x, "image", resize=False, resample="bilinear", array_scale=array_scale, **extra)
    record["image"]["any_size"] = True
    splits = {}
    for split_name, (x, y) in parts.items():
        xt, _ = apply_preprocessing(x, None, record)
        splits[split_name] = Split(xt, target(y))
    info = DatasetInfo(name=name, kind="image", input_shape=tuple(int(s) for s in train_x.shape[1:]),
                       num_classes=len(class_names), class_names=tuple(class_names), task=task,
                       preprocessing=record)
    return Dataset(info, splits["train"], splits["val"], splits["test"])


def segment_dataset(name: str, parts: dict[str, tuple[np.ndarray, np.ndarray]], class_names, *, source: str,
                    array_scale: float = 1.0, **extra) -> Dataset:
    """A `segment` Dataset from raw images (N, C, H, W) in [0, 1] and masks (N, H, W) int64 (see
    `dense_image_dataset`)."""
    return dense_image_dataset(name, parts, class_names, task="segment", source=source, array_scale=array_scale,
                               target=lambda y: torch.from_numpy(np.ascontiguousarray(y, dtype=np.int64)), **extra)


@register_dataset(
    "shapes-seg", kind="image", sizes=SIZES, num_classes=len(CLASS_NAMES),
    description="segmentation: circles, squares, triangles with texture and occlusion, per-pixel masks "
                "(generated; options size, default 64x64, and train_items)",
)
def shapes_seg(seed: int, view: str, *, size=DEFAULT_SIZE, train_items: int = SIZES[0]) -> Dataset:
    """shapes-seg at `size`: x (N, 3, H, W) normalised, y (N, H, W) int64 class masks; task "segment".

    Args:
        seed: picks the validation images from the training pool.
        view: "image".
        size: (H, W), an int for a square, or "HxW". Default: 64x64.
        train_items: training images (val 200 and test 400 stay). Default: 6000.
    Example:
        >>> ds = shapes_seg(0, "image", size="40x56", train_items=100)
        >>> tuple(ds.train.x.shape), tuple(ds.test.y.shape), ds.info.task
        ((100, 3, 40, 56), (400, 40, 56), 'segment')
    """
    size = parse_size(size)
    train = check_positive_int(train_items, "train_items")
    _, val, test = SIZES
    x, y = make_scenes(train + val, size, _rng(size, "train"))
    x_test, y_test = make_scenes(test, size, _rng(size, "test"))
    order = np.random.default_rng(seed).permutation(train + val)
    parts = {"train": (x[order[:train]], y[order[:train]]), "val": (x[order[train:]], y[order[train:]]),
             "test": (x_test, y_test)}
    return segment_dataset("shapes-seg", parts, CLASS_NAMES, source="shapes-seg", size=list(size))
