"""Streamed dense data: segmentation folders and detection files whose images (and masks) are decoded per batch.

`streamed_masks` is `load_mask_folder` for a folder too large to decode up front: the same splits,
classes and preprocessing record, with `ImageFiles` and `MaskFiles` as the `StreamSplit` sources (masks
are targets too large to hold for every image, so they are decoded with their images: `y_source`).
`streamed_dense` builds the Dataset for both tasks, the streamed counterpart of
`gridseq.data.builtin.shapes_seg.dense_image_dataset`; detection boxes are small and stay in memory as `y`.
Normalisation statistics (and "balanced" class weights) come from `stats_sample`: up to 512 training
items, fewer when their decoded size would exceed 256 MiB, so loading stays bounded for large images.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from gridseq.data.contract import Dataset, DatasetInfo
from gridseq.data.partition import train_val_test
from gridseq.data.preprocessing import image_record
from gridseq.data.readers.image_folder import ImageFiles, _open
from gridseq.data.readers.mask_folder import (
    _INDEX_MASK_MODES,
    _RGB_MASK_MODES,
    IGNORE,
    UNLABELLED_VALUE,
    _class_names,
    _colours_to_classes,
    _mask_array,
    _missing_test,
    _resize_nearest,
)
from gridseq.data.stream import STATS_SAMPLE, StreamSplit, sample_for_stats
from gridseq.errors import DataError

_logger = logging.getLogger(__name__)

STATS_BYTES = 1 << 28  # a streamed dataset's statistics sample holds at most this many bytes of decoded items


class MaskFiles:
    """Mask files read on demand: `masks[i]` is file i as (H, W) int64 class indices, -100 where unlabelled.

    Every mask is checked as it is read, with a DataError naming the file: its size (after the nearest
    resize to `size` when `resize`), its kind (`rgb` colour masks, whose colours `palette` maps to classes,
    or index masks), and its values (class indices below `num_classes`, 255 = unlabelled).
    """

    def __init__(self, paths: list[Path], size: tuple[int, int], *, resize: bool, rgb: bool, palette,
                 num_classes: int):
        self.paths, self.size, self.resize, self.rgb = paths, size, resize, rgb
        self.palette, self.num_classes = palette, num_classes

    def __len__(self) -> int:
        return len(self.paths)

    def raw(self, i: int) -> np.ndarray:
        """Mask i at `size` as in the file: (H, W) indices, or (H, W, 3) uint8 colours."""
        path = self.paths[i]
        m = _mask_array(path)
        if self.resize and m.shape[:2] != self.size:
            m = _resize_nearest(m, self.size)
        if m.shape[:2] != self.size:
            raise DataError(f"mask {path} is {m.shape[0]}x{m.shape[1]} (HxW) but its image is {self.size[0]}x{self.size[1]}; "
                            f"a mask must have its image's size.")
        if (m.ndim == 3) != self.rgb:
            kind, others = ("an RGB colour mask", "index masks") if m.ndim == 3 else ("an index mask", "RGB colour masks")
            raise DataError(f"mask {path} is {kind} but the other masks are {others}; use one kind for all of them.")
        return m

    def __getitem__(self, i: int) -> np.ndarray:
        path, m = self.paths[i], self.raw(i)
        if m.ndim == 3:
            m = _colours_to_classes([m], [path], self.palette)[0][0]
        m = np.where(m == UNLABELLED_VALUE, IGNORE, m).astype(np.int64)
        labelled = m[m != IGNORE]
        if len(labelled) and labelled.min() < 0:
            raise DataError(f"mask {path} holds negative values; class indices start at 0.")
        if len(labelled) and labelled.max() >= self.num_classes:
            raise DataError(f"mask {path} holds class index {int(labelled.max())}, but there are only {self.num_classes} "
                            f"classes; fix the mask, or add class names (class_names= or classes.txt).")
        return m


def _mask_kind(pairs: list[tuple[Path, Path]], image_sizes: list[tuple[int, int]], size, root: Path) -> bool:
    """Whether the masks are RGB colour masks, from their headers; DataErrors for an unreadable mode, a mix
    of kinds, or (without `size`) a mask whose size is not its image's."""
    kinds = set()
    for (image_path, mask_path), (h, w) in zip(pairs, image_sizes):
        with _open(mask_path) as img:
            if img.mode not in _RGB_MASK_MODES + _INDEX_MASK_MODES:
                raise DataError(f"mask {mask_path} has image mode {img.mode!r}; expected a PNG of class indices "
                                f"(grayscale or paletted) or an RGB colour mask.")
            kinds.add(img.mode in _RGB_MASK_MODES)
            if size is None and (img.size[1], img.size[0]) != (h, w):
                raise DataError(f"mask {mask_path} is {img.size[1]}x{img.size[0]} (HxW) but its image {image_path} is "
                                f"{h}x{w}; a mask must have its image's size.")
    if len(kinds) > 1:
        raise DataError(f"masks in {root} mix RGB colour masks and index masks; use one kind for all of them.")
    return kinds == {True}


def _classes_from_masks(masks: MaskFiles):
    """(number of classes found, the colours found as a palette for RGB masks) from one pass over every mask."""
    _logger.info("reading %d masks once to find their classes (class_names= or classes.txt, and palette= for "
                 "colour masks, skip this)", len(masks))
    if masks.rgb:
        colours = set()
        for i in range(len(masks)):
            colours.update(map(tuple, np.unique(masks.raw(i).reshape(-1, 3), axis=0).tolist()))
        palette = [list(c) for c in sorted(colours, key=lambda c: (c != (0, 0, 0), c))]
        _logger.info("colour masks: %d colours become classes 0..%d: %s", len(palette), len(palette) - 1, palette)
        return len(palette), palette
    top = -1
    for i in range(len(masks)):
        m = masks.raw(i)
        labelled = m[m != UNLABELLED_VALUE]
        if len(labelled) and labelled.min() < 0:
            raise DataError(f"mask {masks.paths[i]} holds negative values; class indices start at 0.")
        top = max(top, int(labelled.max()) if len(labelled) else -1)
    return max(top + 1, 1), None


def streamed_masks(root: Path, pairs: dict[str, list[tuple[Path, Path]]], seed: int, channels: int, size, image_sizes,
                   *, predefined: bool, class_names, palette, class_weights, workers) -> Dataset:
    """The folder as `StreamSplit`s of images and masks decoded per batch: the splits `load_mask_folder`
    draws in memory, with the same classes, record and (from at most 512 training items) statistics."""
    from gridseq.data.class_weights import balanced_weights, check_class_weights

    every = [pair for ps in pairs.values() for pair in ps]
    if size is None:
        found = set(image_sizes)
        if len(found) > 1:
            a, b = list(found)[:2]
            raise DataError(f"images in {root} have different sizes ({a[0]}x{a[1]} and {b[0]}x{b[1]}, {len(found)} sizes "
                            f"in all); pass image_size=(H, W) to resize them all (CLI: --image-size).")
    h_w = size or image_sizes[0]
    rgb = _mask_kind(every, image_sizes, size, root)
    if predefined:
        if "test" not in pairs:
            _missing_test(root)
        train = pairs["train"]
        index = train_val_test(np.zeros(len(train)), seed, test_given=True, val_given="val" in pairs)
        parts = {"train": [train[i] for i in index["train"]],
                 "val": pairs["val"] if "val" in pairs else [train[i] for i in index["val"]], "test": pairs["test"]}
    else:
        if len(every) < 3:
            raise DataError(f"segmentation folder {root} has {len(every)} image(s); at least 3 are needed for train, val and test.")
        parts = {k: [every[i] for i in v] for k, v in train_val_test(np.zeros(len(every)), seed).items()}

    def masks_of(ps, num_classes):
        return MaskFiles([m for _, m in ps], h_w, resize=size is not None, rgb=rgb, palette=palette if rgb else None,
                         num_classes=num_classes)

    # the classes: named (class_names=, classes.txt) and, for colour masks, coloured (palette=), or found in the masks
    named = class_names is not None or (root / "classes.txt").is_file()
    found_classes = 1
    if (rgb and palette is None) or (not rgb and not named):
        found_classes, found_palette = _classes_from_masks(masks_of(every, 0))
        palette = palette if palette is not None else found_palette
    names = _class_names(root, class_names, found_classes, palette)

    train_images = ImageFiles([i for i, _ in parts["train"]], channels, h_w)
    balanced = isinstance(class_weights, str) and class_weights == "balanced"
    sample = stats_sample(len(train_images), h_w[0] * h_w[1] * (4 * channels + (8 if balanced else 0)))
    images = np.stack([train_images[int(i)] for i in sample])  # (S, C, H, W)
    extra = {}
    if class_weights is not None:
        if balanced:
            train_masks = masks_of(parts["train"], len(names))
            masks = np.stack([train_masks[int(i)] for i in sample])  # (S, H, W)
            class_weights = balanced_weights(torch.from_numpy(masks), len(names))
        extra["class_weights"] = check_class_weights(class_weights, len(names))
    if palette is not None:
        extra["palette"] = [list(map(int, c)) for c in palette]
    sources = {s: (ImageFiles([i for i, _ in ps], channels, h_w), None, masks_of(ps, len(names))) for s, ps in parts.items()}
    _logger.info("streaming %d images and masks from %s (statistics from %d training images)", len(every), root, len(sample))
    return streamed_dense(str(root), sources, names, task="segment", sample=images, workers=workers,
                          source="mask_folder", array_scale=1 / 255, **extra)


def stats_sample(n: int, item_bytes: int) -> np.ndarray:
    """Indices of the training items a streamed dataset's statistics come from: up to 512 (`sample_for_stats`),
    fewer when their decoded items would exceed `STATS_BYTES` (256 MiB)."""
    return sample_for_stats(n, max(1, min(STATS_SAMPLE, STATS_BYTES // max(item_bytes, 1))))


def streamed_dense(name: str, sources: dict[str, tuple], class_names, *, task: str, sample: np.ndarray, workers,
                   source: str, array_scale: float = 1.0, **extra) -> Dataset:
    """A Dataset of `StreamSplit`s for a fully convolutional task: the streamed counterpart of
    `gridseq.data.builtin.shapes_seg.dense_image_dataset`, with the same record and info.

    Args:
        sources: {split: (images source, targets y or None, targets source or None)} for train, val and test.
        sample: (S, C, H, W) raw training images in [0, 1], for the normalisation statistics.
        workers: decoder processes (see `StreamSplit`).
    """
    record = image_record(source, sample, "image", resize=False, resample="bilinear", array_scale=array_scale, **extra)
    record["image"]["any_size"] = True
    splits = {s: StreamSplit(images, y, record=record, workers=workers, y_source=targets)
              for s, (images, y, targets) in sources.items()}
    info = DatasetInfo(name=name, kind="image", input_shape=tuple(int(v) for v in sample.shape[1:]),
                       num_classes=len(class_names), class_names=tuple(class_names), task=task, preprocessing=record)
    return Dataset(info, splits["train"], splits["val"], splits["test"])
