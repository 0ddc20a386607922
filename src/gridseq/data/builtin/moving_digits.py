"""`moving-digits` and `moving-digits-frames`: real handwritten digits moving across a larger canvas.

Each clip shows one of scikit-learn's real 8×8 handwritten digits (pixels 0..16 scaled to [0, 1])
on a `size`×`size` canvas (default 20×20), moving 1 pixel per frame to the right, left, down or up:

- `moving-digits` (classify, many-to-one): `frames` frames (default 10), one direction per clip. The
  label is the pair (digit, direction), encoded as class `4 * digit + direction` (40 classes, named
  "7-left"); `factor_accuracy` scores the two halves separately. A clip runs along a segment of its
  axis, forwards or backwards, and the segment and the other coordinate are drawn so that every
  single frame's position has the same distribution whatever the direction: one frame shows the
  digit but says nothing about the direction, which lives only in the *order* of the frames — what a
  model that looks at frames one at a time (`frame-cnn`) cannot see.
- `moving-digits-frames` (tag, many-to-many, synchronous): `frames` frames (default 16); the direction
  changes at random (after each move with probability 0.2, to one of the 3 others) and bounces off
  the canvas edges; every frame is labelled with its direction, 4 classes — frame t ≥ 1 with the
  move from frame t-1 to frame t, frame 0 with the first move (which a one-way model cannot know
  yet: its ceiling is about 1 - 0.75 / frames, 0.953 for 16 frames).

Splits follow the handwriting: the digit images are split like the `digits` dataset (a fixed,
stratified 20% test set; 10% of the rest for validation drawn with `seed`), and each split's clips
are drawn from its own images only, so the test clips show handwriting never seen in training. The
test clips come from a generator seeded by the dataset and its options only; the train and val clips
follow `seed`. Frames are normalised with the training frames' mean and std.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from gridseq._validation import check_positive_int
from gridseq.data.assemble import RawSplit
from gridseq.data.builtin import register_dataset
from gridseq.data.builtin.digits import digits_raw
from gridseq.data.contract import Dataset
from gridseq.data.partition import train_val_test
from gridseq.data.readers.video import video_dataset
from gridseq.errors import ConfigError

DIRECTIONS = ("right", "left", "down", "up")
_MOVES = np.array([[0, 1], [0, -1], [1, 0], [-1, 0]])  # (row, column) step of each direction
SIZES = (12000, 500, 1000)  # clips per split
CHANGE_PROBABILITY = 0.2  # moving-digits-frames: chance of a new direction after each move
DIGIT = 8  # side of scikit-learn's digits


def _rng(name: str, part: str, seed: int, frames: int, size: int) -> np.random.Generator:
    # one generator per (dataset, split, options[, seed]); the test split's ignores the run's seed
    return np.random.default_rng([ord(c) for c in f"{name}/{part}"] + [seed, frames, size])


def render(digits: np.ndarray, positions: np.ndarray, size: int) -> np.ndarray:
    """Draw digit i with its top-left corner at positions[i, t] = (row, col) on frame t (a position
    past the edge wraps around; the generators keep digits on the canvas).

    Args:
        digits: (N, 8, 8) float images.  positions: (N, T, 2) int.  size: canvas side S.
    Returns:
        (N, T, 1, S, S) float32 clips.

    Example:
        >>> clip = render(np.ones((1, 8, 8)), np.array([[[0, 0], [0, 12]]]), 16)
        >>> clip.shape, clip[0, 1, 0, 0, 12:].tolist(), clip[0, 1, 0, 0, :4].tolist()  # wrapped
        ((1, 2, 1, 16, 16), [1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0])
    """
    n, t = positions.shape[:2]
    canvas = np.zeros((n, size, size), dtype=np.float32)
    canvas[:, :DIGIT, :DIGIT] = digits
    grid = np.arange(size)
    rows = (grid[None, None, :] - positions[:, :, 0:1]) % size  # (N, T, S): source row of each row
    cols = (grid[None, None, :] - positions[:, :, 1:2]) % size  # (N, T, S)
    frames = canvas[np.arange(n)[:, None, None, None], rows[:, :, :, None], cols[:, :, None, :]]  # (N, T, S, S)
    return frames[:, :, None]


def make_clips(images: np.ndarray, labels: np.ndarray, n: int, frames: int, size: int, rng: np.random.Generator,
               *, changes: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`n` clips of randomly chosen `images` (M, 8, 8) with digit `labels` (M,), moving 1 pixel per frame.

    Without `changes` a clip runs along a segment of its axis, forwards or backwards; the segment's
    start and the other coordinate are drawn so that every frame's position has the same distribution
    whatever the direction. With `changes` the direction changes at random and bounces off the edges.

    Returns:
        x (n, frames, 1, size, size) float32, digit (n,) int64, and the direction of every frame
        (n, frames) int64 (constant per clip unless `changes`).
    """
    pick = rng.integers(0, len(images), n)
    free = size - DIGIT  # positions 0..free keep the digit on the canvas
    if changes:
        positions, directions = _wandering(n, frames, free, rng)
    else:
        travel = frames - 1
        direction = rng.integers(0, 4, n)
        step = np.arange(frames)[None, :]  # (1, T)
        start = rng.integers(0, free - travel + 1, n)[:, None]
        forward = direction[:, None] % 2 == 0  # right and down run up the axis, left and up down it
        along = np.where(forward, start + step, start + travel - step)  # (n, T)
        # the other coordinate: a fixed draw from the same distribution as one frame's `along`
        across = rng.integers(0, free - travel + 1, n)[:, None] + rng.integers(0, frames, n)[:, None]
        across = np.broadcast_to(across, along.shape)
        horizontal = direction[:, None] < 2
        positions = np.stack([np.where(horizontal, across, along), np.where(horizontal, along, across)], axis=-1)
        directions = np.repeat(direction[:, None], frames, axis=1)
    return render(images[pick], positions, size), labels[pick].astype(np.int64), directions.astype(np.int64)


def _wandering(n: int, frames: int, free: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Positions (n, T, 2) and per-frame directions (n, T) of digits that change direction at random
    (after each move with probability CHANGE_PROBABILITY) and bounce off the canvas edges."""
    positions = np.zeros((n, frames, 2), dtype=np.int64)
    positions[:, 0] = rng.integers(0, free + 1, (n, 2))
    moves = np.zeros((n, frames), dtype=np.int64)  # moves[:, t]: the move into frame t (t >= 1)
    current = rng.integers(0, 4, n)
    for t in range(1, frames):
        if t > 1:
            change = rng.random(n) < CHANGE_PROBABILITY
            current = np.where(change, (current + rng.integers(1, 4, n)) % 4, current)  # any other direction
        target = positions[:, t - 1] + _MOVES[current]
        off = ((target < 0) | (target > free)).any(axis=1)
        current = np.where(off, current ^ 1, current)  # bounce: right<->left, down<->up
        positions[:, t] = positions[:, t - 1] + _MOVES[current]
        moves[:, t] = current
    moves[:, 0] = moves[:, 1]  # frame 0 carries the first move
    return positions, moves


def _parts(name: str, seed: int, frames: int, size: int, changes: bool) -> dict[str, tuple[np.ndarray, ...]]:
    images, labels = digits_raw()
    images = images[:, 0]  # (1797, 8, 8) in [0, 1]
    index = train_val_test(labels, seed)  # the digits dataset's own split of the handwriting
    out = {}
    for part, n in zip(("train", "val", "test"), SIZES):
        rng = _rng(name, part, 0 if part == "test" else seed, frames, size)
        out[part] = make_clips(images[index[part]], labels[index[part]], n, frames, size, rng, changes=changes)
    return out


def _check_options(frames: int, size: int, *, one_way: bool) -> None:
    check_positive_int(frames, "frames", minimum=2)
    check_positive_int(size, "size", minimum=DIGIT + 1)
    if one_way and size - DIGIT < frames - 1:
        raise ConfigError(
            f"a digit moving 1 pixel per frame for {frames} frames needs a canvas of at least {DIGIT + frames - 1} "
            f"pixels (size), got size={size}; raise size or lower frames."
        )


@register_dataset(
    "moving-digits", kind="video", sizes=SIZES, num_classes=40,
    description="real 8x8 digits moving on a 20x20 canvas; label (digit, direction): 40 classes (video)",
)
def moving_digits(seed: int, view: str, *, frames: int = 10, size: int = 20) -> Dataset:
    """Clips (N, frames, 1, size, size); label 4 * digit + direction (see the module docstring).

    Example:
        >>> ds = moving_digits(0, "video")
        >>> tuple(ds.train.x.shape), ds.info.num_classes, ds.info.class_names[4 * 7 + 1]
        ((12000, 10, 1, 20, 20), 40, '7-left')
    """
    _check_options(frames, size, one_way=True)
    parts = {}
    for part, (x, digit, direction) in _parts("moving-digits", seed, frames, size, changes=False).items():
        parts[part] = RawSplit(x, digit * len(DIRECTIONS) + direction[:, 0])
    names = tuple(f"{d}-{direction}" for d in range(10) for direction in DIRECTIONS)
    return video_dataset("moving-digits", parts, names, source="moving-digits", frames=frames, size=size,
                         factors={"digit": 10, "direction": len(DIRECTIONS)})


@register_dataset(
    "moving-digits-frames", kind="video", sizes=SIZES, num_classes=4,
    description="moving digits that change direction; every frame labelled with its direction (per-frame tag)",
)
def moving_digits_frames(seed: int, view: str, *, frames: int = 16, size: int = 20) -> Dataset:
    """Clips (N, frames, 1, size, size); y (N, frames): each frame's direction of motion; task "tag".

    Example:
        >>> ds = moving_digits_frames(0, "video")
        >>> tuple(ds.train.x.shape), tuple(ds.train.y.shape), ds.info.task
        ((12000, 16, 1, 20, 20), (12000, 16), 'tag')
    """
    _check_options(frames, size, one_way=False)
    parts = {part: RawSplit(x, direction) for part, (x, _, direction)
             in _parts("moving-digits-frames", seed, frames, size, changes=True).items()}
    return video_dataset("moving-digits-frames", parts, DIRECTIONS, source="moving-digits-frames", task="tag",
                         frames=frames, size=size)


def factor_accuracy(pred: Tensor | np.ndarray, y: Tensor | np.ndarray, factors: dict[str, int] | None = None) -> dict[str, float]:
    """Accuracy of each factor of a combined label `y = digit * 4 + direction` (the last factor varies fastest).

    Args:
        pred, y: (N,) predicted and true class indices.
        factors: {name: size} in order; Default: {"digit": 10, "direction": 4}.
    Returns:
        {"digit_accuracy": ..., "direction_accuracy": ...}.

    Example:
        >>> factor_accuracy(np.array([4 * 7 + 1, 4 * 3 + 2]), np.array([4 * 7 + 2, 4 * 3 + 2]))
        {'digit_accuracy': 1.0, 'direction_accuracy': 0.5}
    """
    factors = factors or {"digit": 10, "direction": len(DIRECTIONS)}
    pred, y = torch.as_tensor(np.asarray(pred)), torch.as_tensor(np.asarray(y))
    if pred.shape != y.shape:
        raise ConfigError(f"factor_accuracy: pred and y must have the same shape, got {tuple(pred.shape)} and {tuple(y.shape)}.")
    out, stride = {}, 1
    for name, size in reversed(list(factors.items())):
        out[f"{name}_accuracy"] = float(((pred // stride) % size == (y // stride) % size).double().mean())
        stride *= size
    return dict(reversed(list(out.items())))
