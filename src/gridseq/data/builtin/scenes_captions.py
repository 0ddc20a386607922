"""`scenes-captions`: seeded 32×32 colour images of 1–3 shapes, each with the one caption that describes it.

Every shape has a colour (red, green, blue, yellow, white; no colour twice in an image), a kind (circle,
square, triangle) and a size (small: radius 3–4 px, big: 6–7 px). The caption names the shapes in the
fixed colour order above — so the words are a function of the picture, and exact match is a fair
metric — and, between consecutive shapes, where the first lies relative to the second:

    1 shape    "a big yellow triangle"
    2 shapes   "a small red circle left of a big blue square"
    3 shapes   "a small red circle above a big green square right of a small white triangle"

The relation is the dominant axis of the offset between the two centres: "left of" / "right of" when
the horizontal offset is larger, "above" / "below" otherwise. Scenes are drawn by rejection so that
the relation is never borderline (the dominant offset is at least twice the other one) and shapes
never touch, so no pixel is ambiguous. Shapes are drawn anti-aliased (4×4 supersampling) on a dark
background of random shade, with colour jitter and a little pixel noise.

Splits follow gridseq's rule: the test images come from a constant seed and never change with
`seed`; train and val come from `seed` (independent streams). The 16 caption words form a fixed word-level
vocabulary after the four specials (`gridseq.data.vocab`); targets are caption ids + `<eos>`, padded
with `<pad>` (0), like seq2seq targets. `split.targets` keeps the caption strings.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from gridseq._validation import check_positive_int
from gridseq.data.builtin import register_dataset
from gridseq.data.contract import Dataset, DatasetInfo, Split
from gridseq.data.padding import pad_ids
from gridseq.data.partition import TEST_SEED
from gridseq.data.preprocessing import apply_preprocessing, image_record
from gridseq.data.vocab import SPECIALS, Vocab

SIZE = 32  # image side in pixels
COLOURS = {  # name -> RGB in [0, 1]; the caption names shapes in this order
    "red": (0.90, 0.12, 0.10), "green": (0.15, 0.80, 0.20), "blue": (0.15, 0.35, 1.00),
    "yellow": (0.95, 0.90, 0.15), "white": (0.95, 0.95, 0.95),
}
KINDS = ("circle", "square", "triangle")
RADII = {"small": (3.0, 4.0), "big": (6.0, 7.0)}  # half-extent range of each size, pixels
DOMINANCE = 2.0  # a relation's axis offset is at least this many times the other axis's offset
GAP = 1.5  # pixels between the bounding boxes of any two shapes (at least on one axis)
SUPERSAMPLE = 4
SPLIT_SIZES = (10000, 1000, 1000)  # train, val, test
# the caption words: a fixed vocabulary (the same ids for every seed and size), specials first
WORDS = ("a", "small", "big", *COLOURS, *KINDS, "left", "right", "of", "above", "below")


def relation(a: tuple[float, float], b: tuple[float, float]) -> str:
    """Where centre `a` (x, y) lies relative to `b`, in image coordinates (y grows downwards).

    Example:
        >>> relation((5, 10), (20, 12)), relation((10, 25), (12, 5))
        ('left of', 'below')
    """
    dx, dy = b[0] - a[0], b[1] - a[1]
    if abs(dx) >= abs(dy):
        return "left of" if dx > 0 else "right of"
    return "above" if dy > 0 else "below"


def caption(shapes: list[dict]) -> str:
    """The caption of shapes given as dicts with colour, kind, size, x, y (any order).

    Example:
        >>> caption([dict(colour="blue", kind="square", size="big", x=20, y=10),
        ...          dict(colour="red", kind="circle", size="small", x=6, y=11)])
        'a small red circle left of a big blue square'
    """
    order = sorted(shapes, key=lambda s: list(COLOURS).index(s["colour"]))
    words = []
    for i, s in enumerate(order):
        if i:
            words.append(relation((order[i - 1]["x"], order[i - 1]["y"]), (s["x"], s["y"])))
        words.append(f"a {s['size']} {s['colour']} {s['kind']}")
    return " ".join(words)


def _coverage(kind: str, cx: float, cy: float, r: float) -> tuple[slice, slice, np.ndarray]:
    """The fraction of each pixel a shape covers, over its bounding box: (rows, cols, (h, w) float)."""
    y0, y1 = max(int(np.floor(cy - r)) - 1, 0), min(int(np.ceil(cy + r)) + 2, SIZE)
    x0, x1 = max(int(np.floor(cx - r)) - 1, 0), min(int(np.ceil(cx + r)) + 2, SIZE)
    sub = (np.arange(SUPERSAMPLE) + 0.5) / SUPERSAMPLE
    ys = (np.arange(y0, y1)[:, None] + sub[None, :]).reshape(-1)[:, None] - cy  # sample rows, relative
    xs = (np.arange(x0, x1)[:, None] + sub[None, :]).reshape(-1)[None, :] - cx  # sample columns
    if kind == "circle":
        inside = xs**2 + ys**2 <= r * r
    elif kind == "square":
        side = r * 0.9  # same area ballpark as the circle: (1.8 r)^2 vs pi r^2
        inside = (np.abs(xs) <= side) & (np.abs(ys) <= side)
    else:  # triangle, apex up: |x| <= r * (y + r) / (2 r) for -r <= y <= r
        inside = (ys >= -r) & (ys <= r) & (np.abs(xs) <= (ys + r) / 2)
    h, w = y1 - y0, x1 - x0
    cover = inside.reshape(h, SUPERSAMPLE, w, SUPERSAMPLE).mean(axis=(1, 3))
    return slice(y0, y1), slice(x0, x1), cover


def _place(rng: np.random.Generator, count: int) -> list[dict] | None:
    """One scene of `count` shapes satisfying the placement rules, or None (the caller redraws).

    Shapes are placed in caption (colour) order; each takes the first of 64 candidate centres that
    keeps its distance from every earlier shape and a clear relation to the previous one.
    """
    colours = sorted(rng.choice(len(COLOURS), count, replace=False).tolist())
    shapes: list[dict] = []
    for c in colours:
        size = ("small", "big")[int(rng.integers(2))]
        r = float(rng.uniform(*RADII[size]))
        kind = KINDS[int(rng.integers(len(KINDS)))]
        xy = rng.uniform(r + 1, SIZE - 1 - r, (64, 2))  # candidate centres (x, y)
        ok = np.ones(len(xy), dtype=bool)
        for s in shapes:  # bounding boxes apart on at least one axis
            ok &= (np.abs(xy[:, 0] - s["x"]) >= r + s["r"] + GAP) | (np.abs(xy[:, 1] - s["y"]) >= r + s["r"] + GAP)
        if shapes:  # no diagonal offset to the previous shape: the relation would be a matter of opinion
            d = np.abs(xy - [shapes[-1]["x"], shapes[-1]["y"]])
            ok &= d.max(axis=1) >= DOMINANCE * d.min(axis=1)
        if not ok.any():
            return None
        x, y = xy[int(ok.argmax())].tolist()
        shapes.append(dict(colour=list(COLOURS)[c], kind=kind, size=size, r=r, x=x, y=y))
    return shapes


def render(shapes: list[dict], rng: np.random.Generator, out: np.ndarray | None = None) -> np.ndarray:
    """A (3, SIZE, SIZE) float32 image in [0, 1] of `shapes` (dicts with colour, kind, r, x, y), without noise."""
    image = np.empty((3, SIZE, SIZE), dtype=np.float32) if out is None else out
    image[:] = rng.uniform(0.0, 0.2)  # a dark grey background of random shade
    for s in shapes:
        rows, cols, cover = _coverage(s["kind"], s["x"], s["y"], s["r"])
        colour = np.clip(np.asarray(COLOURS[s["colour"]]) + rng.uniform(-0.06, 0.06, 3), 0, 1)
        patch = image[:, rows, cols]
        image[:, rows, cols] = patch * (1 - cover) + colour[:, None, None] * cover
    return image


def scenes(n: int, rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
    """`n` images (n, 3, SIZE, SIZE) float32 in [0, 1] and their captions, 1–3 shapes each (uniformly)."""
    images = np.empty((n, 3, SIZE, SIZE), dtype=np.float32)
    captions = []
    for i in range(n):
        count = int(rng.integers(1, 4))
        shapes = None
        while shapes is None:
            shapes = _place(rng, count)
        render(shapes, rng, images[i])
        captions.append(caption(shapes))
    images += 0.02 * rng.standard_normal(images.shape, dtype=np.float32)  # a little pixel noise
    np.clip(images, 0.0, 1.0, out=images)
    return images, captions


@lru_cache(maxsize=4)
def _raw(seed: int, sizes: tuple[int, int, int]) -> dict[str, tuple[np.ndarray, tuple[str, ...]]]:
    """{split: (images, captions)}: test from the constant TEST_SEED, train and val from `seed`."""
    streams = {"train": np.random.default_rng([seed, 1]), "val": np.random.default_rng([seed, 2]),
               "test": np.random.default_rng(TEST_SEED)}
    out = {}
    for (split, rng), n in zip(streams.items(), sizes):
        images, captions = scenes(n, rng)
        images.setflags(write=False)  # cached: shared by every load
        out[split] = (images, tuple(captions))
    return out


@register_dataset(
    "scenes-captions", kind="image", sizes=SPLIT_SIZES, num_classes=4 + len(WORDS),
    description="32x32 scenes of 1-3 coloured shapes -> a caption naming colours, shapes, sizes, relations (generated)",
)
def scenes_captions(seed: int, view: str, *, size: int = SPLIT_SIZES[0]) -> Dataset:
    """Images (N, 3, 32, 32), normalised with the training split's per-channel statistics, and caption
    targets (N, U) int64: word ids then `<eos>`, padded with 0 (task "caption").

    Args:
        size: training scenes; val and test keep 1,000 each. Default: 10000.

    Example:
        >>> ds = scenes_captions(0, "image", size=50)
        >>> tuple(ds.train.x.shape), ds.info.task, ds.train.targets[0].split()[0]
        ((50, 3, 32, 32), 'caption', 'a')
    """
    size = check_positive_int(size, "size", minimum=10)
    raw = _raw(seed, (size, SPLIT_SIZES[1], SPLIT_SIZES[2]))
    vocab = Vocab(SPECIALS + WORDS, "word")
    record = image_record("scenes-captions", raw["train"][0], "image", resize=True, resample="bilinear",
                          array_scale=1.0, task="caption", target_vocab=vocab.to_json(), target_level="word",
                          size=size)
    splits = {}
    for name, (images, captions) in raw.items():
        x, _ = apply_preprocessing(images, None, record)
        y, _ = pad_ids([vocab.encode(c, eos=True) for c in captions])
        splits[name] = Split(x, y, None, targets=list(captions))
    info = DatasetInfo(
        name="scenes-captions", kind="image", input_shape=(3, SIZE, SIZE), num_classes=len(vocab), class_names=(),
        task="caption", preprocessing=record,
    )
    return Dataset(info, splits["train"], splits["val"], splits["test"])
