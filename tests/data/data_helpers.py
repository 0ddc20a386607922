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
