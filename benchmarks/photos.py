"""Synthetic photo folders for data-scale benchmarks, tests and docs: a bright disc or a bright square.

    folder/disc/000000.jpg ... folder/square/000001.jpg ...

Each photo is size x size RGB: a noisy background (coarse blotches plus per-pixel grain, dark) with
one bright shape of random position, size and colour on it. Photo i is class i % 2 (so the classes
are balanced) and is drawn from its own generator seeded by (seed, i), so a folder is the same
byte for byte whatever the number of worker processes.

    >>> from benchmarks.photos import write_photos
    >>> write_photos("/tmp/photos-100", 100)  # doctest: +SKIP
"""

from __future__ import annotations

import os
import shutil
from multiprocessing import Pool
from pathlib import Path

import numpy as np

CLASSES = ("disc", "square")
QUALITY = 90  # JPEG quality, as a camera or a web export would write


def make_photo(i: int, seed: int = 0, size: int = 224) -> tuple[np.ndarray, int]:
    """Photo i of a folder as (size, size, 3) uint8 and its class index (0 disc, 1 square)."""
    from PIL import Image

    rng = np.random.default_rng([seed, i])
    label = i % 2
    coarse = rng.integers(0, 110, (size // 8, size // 8, 3), dtype=np.uint8)  # blotches, upsampled below
    img = np.asarray(Image.fromarray(coarse).resize((size, size), Image.Resampling.BILINEAR), dtype=np.int16)
    img = img + rng.integers(-20, 21, (size, size, 3), dtype=np.int16)  # per-pixel grain
    r = rng.uniform(0.08, 0.25) * size  # disc radius, half the square's side
    cy, cx = rng.uniform(r, size - r, 2)
    yy, xx = np.ogrid[:size, :size]
    if label == 0:
        mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    else:
        mask = (np.abs(yy - cy) <= r) & (np.abs(xx - cx) <= r)
    colour = rng.integers(40, 256, 3)
    colour[rng.integers(3)] = rng.integers(210, 256)  # bright in at least one channel, any hue
    img[mask] = colour + rng.integers(-15, 16, (int(mask.sum()), 3))
    return np.clip(img, 0, 255).astype(np.uint8), label


def _write_range(args: tuple[str, int, int, int, int]) -> None:
    from PIL import Image

    folder, start, stop, seed, size = args
    for i in range(start, stop):
        pixels, label = make_photo(i, seed, size)
        Image.fromarray(pixels).save(Path(folder) / CLASSES[label] / f"{i:06d}.jpg", quality=QUALITY)


def write_photos(folder: str | os.PathLike, n: int, seed: int = 0, size: int = 224, *, workers: int = 1) -> Path:
    """Write n JPEG photos into folder/disc/ and folder/square/, replacing what was there.

    Args:
        folder: the image folder to write (created; its parent must be writable).
        n: number of photos, half of each class (photo i is class i % 2).
        seed: the folder's seed; the same (n, seed, size) always writes the same files. Default: 0.
        size: height and width in pixels. Default: 224.
        workers: processes to encode with (a multiprocessing Pool when > 1). Default: 1.
    Returns:
        The folder. It is written under a ".partial" name and renamed when complete, so a folder
        that exists is a whole one (an interrupted run leaves only the .partial folder).
    """
    folder = Path(folder)
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    for name in CLASSES:
        (partial / name).mkdir(parents=True)
    chunk = 500
    tasks = [(str(partial), a, min(a + chunk, n), seed, size) for a in range(0, n, chunk)]
    if workers > 1:
        with Pool(workers) as pool:
            pool.map(_write_range, tasks, chunksize=1)
    else:
        for t in tasks:
            _write_range(t)
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)
    return folder
