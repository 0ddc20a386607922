"""Helpers shared by the data tests (imported as a plain module: pytest puts this folder on sys.path)."""

import numpy as np
from PIL import Image


def make_folder(root, counts=None, size=(5, 7), mode="RGB", seed=0):
    """Class sub-folders of random PNGs; returns {class: [arrays]}."""
    rng = np.random.default_rng(seed)
    made = {}
    for c, n in (counts or {"cat": 10, "dog": 10}).items():
        (root / c).mkdir(parents=True)
        shape = (*size, 3) if mode == "RGB" else size
        made[c] = [rng.integers(0, 256, size=shape, dtype=np.uint8) for _ in range(n)]
        for i, a in enumerate(made[c]):
            Image.fromarray(a, mode).save(root / c / f"{i}.png")
    return made


def photo_folder(root, n_per_class=24, size=(20, 24), seed=0):
    """Two learnable classes of JPEG photos: a bright square or a bright disc on noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: size[0], : size[1]]
    for c in ("disc", "square"):
        (root / c).mkdir(parents=True)
        for i in range(n_per_class):
            a = rng.integers(0, 90, size=(*size, 3)).astype(np.uint8)
            cy, cx, r = rng.integers(6, size[0] - 6), rng.integers(6, size[1] - 6), 4
            inside = ((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r) if c == "disc" else (
                (abs(yy - cy) <= r) & (abs(xx - cx) <= r))
            a[inside] = rng.integers(180, 256, size=3)
            Image.fromarray(a).save(root / c / f"{i}.jpg", quality=90)
    return root
