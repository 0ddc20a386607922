"""Image folders: one sub-folder per class, PNG/JPEG/BMP/GIF files inside.

    photos/                      or, with your own splits:    photos/train/cat/..., photos/val/...,
      cat/  a.png  b.jpg ...                                  photos/test/...  (val/ is optional)
      dog/  c.png ...

Pixels are read as value / 255 (16-bit images as value / 65535), so they lie in [0, 1], then
normalised per channel with the training split's mean and std. Without predefined splits the test
split is a stratified 20% drawn with a constant seed and val is 10% of the rest drawn with `seed`.

A folder whose decoded images would take a large share of memory streams (see
`gridseq.data.stream.should_stream`): only the file list and the labels are kept, the images are
decoded and resized by DataLoader workers as batches need them, and the normalisation statistics come
from 512 training images.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import numpy as np
import torch

from gridseq._validation import check_int_tuple
from gridseq.data.assemble import RawSplit, divide, image_dataset
from gridseq.data.contract import Dataset, DatasetInfo
from gridseq.data.partition import encode_labels, train_val_test
from gridseq.data.preprocessing import image_record
from gridseq.data.stream import CachedItems, StreamSplit, sample_for_stats, should_stream
from gridseq.errors import ConfigError, DataError

_logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
SPLIT_FOLDERS = ("train", "val", "test")
_GRAY_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")


def _pil():
    try:
        from PIL import Image
    except ImportError as e:
        raise DataError(f"reading images needs Pillow ({e}); install it with: pip install 'gridseq[images]'.") from e
    return Image


def _open(path: Path):
    Image = _pil()
    try:
        return Image.open(path)
    except (OSError, SyntaxError, ValueError) as e:  # PIL.UnidentifiedImageError is an OSError
        raise DataError(f"cannot read image {path}: {e}. Remove or replace the file (is it a real PNG/JPEG?).") from e
    except Image.DecompressionBombError as e:  # a header claiming billions of pixels: corrupt, or a hostile file
        raise DataError(f"cannot read image {path}: {e} Its header is probably corrupt; if the image really is that "
                        f"large, raise PIL.Image.MAX_IMAGE_PIXELS.") from None


def read_image(path: Path | str, *, channels: int | None = None, size: tuple[int, int] | None = None,
               resample: str = "bilinear", affine=None) -> np.ndarray:
    """Read one image file as float32 (C, H, W) in [0, 1].

    Args:
        path: the image file.
        channels: 1 (grayscale, ITU-R 601 luma) or 3 (RGB). Default: the file's own (1 for grayscale).
        size: (H, W) to resize to, or None to keep the file's size.
        resample: "bilinear" or "box" (area average), Pillow's antialiased resampling.
        affine: instead of resizing, a function of the file's (W, H) and the output (W, H) returning the coefficients of
            Pillow's `Image.transform(..., AFFINE)` to `size` (augmentation: crop, flip and rotation
            in the same resampling). Needs `size`.
    Raises:
        DataError: the file is missing, not an image, or corrupt (the message names it).
    """
    Image = _pil()
    path = Path(path)
    with _open(path) as img:
        try:
            if channels is None:
                channels = 1 if img.mode in _GRAY_MODES else 3
            if size is not None and img.format == "JPEG":
                # a large JPEG is decoded at 1/2, 1/4 or 1/8 scale (never below `size`): most of the decoding is skipped
                img.draft(img.mode, (size[1], size[0]))
            img.load()
            if img.mode.startswith("I;16") or img.mode == "I":  # 16-bit grayscale
                out, peak = img.convert("I"), 65535.0
            else:
                out, peak = img.convert("L" if channels == 1 else "RGB"), 255.0
            if affine is not None:
                out = out.transform((size[1], size[0]), Image.Transform.AFFINE, affine(out.size, (size[1], size[0])),
                                    resample=Image.Resampling.BILINEAR)
            elif size is not None and out.size != (size[1], size[0]):
                method = Image.Resampling.BOX if resample == "box" else Image.Resampling.BILINEAR
                out = out.resize((size[1], size[0]), method)
            pixels = np.asarray(out)  # (H, W) or (H, W, C), uint8 (int32 for 16-bit files)
        except (OSError, SyntaxError, ValueError) as e:
            raise DataError(f"cannot read image {path}: {e}. Remove or replace the file (is it truncated?).") from e
    if pixels.ndim == 2:
        pixels = pixels[None] if channels == 1 else np.repeat(pixels[None], 3, axis=0)  # (C, H, W)
    else:
        pixels = pixels.transpose(2, 0, 1)  # (H, W, C) -> (C, H, W)
    a = np.divide(pixels, np.float32(peak), out=np.empty(pixels.shape, dtype=np.float32), dtype=np.float32)
    return a if pixels.dtype == np.uint8 else np.clip(a, 0.0, 1.0, out=a)  # 8-bit pixels are in [0, 1] already


def _visible_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _class_files(folder: Path) -> dict[str, list[Path]]:
    """{class name: image files} for a folder of class sub-folders, with the DataErrors for bad layouts."""
    classes = _visible_dirs(folder)
    if not classes:
        loose = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES]
        found = f"found {len(loose)} images directly in it" if loose else "it has no sub-folders"
        raise DataError(
            f"image folder {folder} has no class sub-folders ({found}); expected one sub-folder per class, "
            f"e.g. {folder}/cat/1.png and {folder}/dog/2.png."
        )
    files = {}
    for d in classes:
        # hidden files are skipped: macOS writes "._name.png" resource forks beside real images
        images = sorted(p for p in d.iterdir()
                        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
        if not images:
            others = sum(1 for _ in d.iterdir())
            raise DataError(
                f"class folder {d} has no images ({others} other entries); expected files ending in "
                f"{', '.join(IMAGE_SUFFIXES)}. Add images or remove the folder."
            )
        files[d.name] = images
    return files


def _check_channels(channels, grayscale) -> int | None:
    if grayscale is not None:
        implied = 1 if grayscale else 3
        if channels is not None and channels != implied:
            raise ConfigError(f"grayscale={grayscale} contradicts channels={channels}; pass only one of them.")
        return implied
    if channels is not None and channels not in (1, 3):
        raise ConfigError(f"channels must be 1 (grayscale) or 3 (RGB), got {channels!r}.")
    return channels


def _scan(paths: list[Path]) -> tuple[dict[tuple[int, int], Path], bool]:
    """Read only the headers: {(H, W): first file of that size}, and whether any image is in colour."""
    sizes: dict[tuple[int, int], Path] = {}
    color = False
    for p in paths:
        with _open(p) as img:
            sizes.setdefault((img.size[1], img.size[0]), p)
            color = color or img.mode not in _GRAY_MODES
    return sizes, color


def _common_size(sizes: dict[tuple[int, int], Path]) -> tuple[int, int]:
    """The (H, W) every image shares, or a DataError naming two files that differ."""
    if len(sizes) > 1:
        (s1, p1), (s2, p2) = list(sizes.items())[:2]
        raise DataError(
            f"images have different sizes: {p1} is {s1[0]}x{s1[1]} (HxW) but {p2} is {s2[0]}x{s2[1]} "
            f"({len(sizes)} sizes in all); pass image_size=(H, W) to resize them all (CLI: --image-size)."
        )
    return next(iter(sizes))


class ImageFiles:
    """Image files read on demand: `files[i]` is file i as float32 (C, H, W) in [0, 1] at `size`."""

    def __init__(self, paths: list[Path], channels: int, size: tuple[int, int]):
        self.paths, self.channels, self.size = paths, channels, size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> np.ndarray:
        return read_image(self.paths[i], channels=self.channels, size=self.size)

    def transformed(self, i: int, affine) -> np.ndarray:
        """File i through an affine transform straight to `size` (see `read_image`'s `affine`)."""
        return read_image(self.paths[i], channels=self.channels, size=self.size, affine=affine)


def load_image_folder(path: Path | str, seed: int, view: str, *, image_size: int | tuple[int, int] | None = None,
                      channels: int | None = None, grayscale: bool | None = None, stream: bool | None = None,
                      workers: int | None = None, cache: str | os.PathLike | None = None) -> Dataset:
    """Read an image folder as an image dataset (or, with view="sequence", as sequences of rows).

    Args:
        path: the folder: class sub-folders, or train/ (val/) test/ folders each holding class sub-folders.
        seed: seeds the validation split (the test split does not depend on it).
        view: "image" (N, C, H, W) or "sequence" (N, H, C·W).
        image_size: resize every image to (H, W) (an int means square). Default: keep the size, which
            every image must then share.
        channels: 1 (grayscale) or 3 (RGB). Default: 1 if every image is grayscale, else 3.
        grayscale: shorthand for channels=1 (True) or channels=3 (False).
        stream: True decodes images on demand in worker processes, False decodes them all now;
            None (default) streams when the decoded images would take over 10% of available memory
            or over 256 MiB.
        workers: decoder processes of a streamed folder (0: decode in this process). Default: the
            cores available halved, 1 to 4.
        cache: a folder where a streamed folder keeps its decoded, resized images (8 bits per value) after
            their first read, so later epochs and later runs read bytes instead of decoding files; the
            geometric augmentation then works from the cached size. Default: None (no cache).
    Raises:
        DataError: empty folder, no class sub-folders, a class without images, an unreadable image,
            mixed sizes without image_size, fewer than 2 classes.
    """
    root = Path(path)
    size = None if image_size is None else check_int_tuple(
        (image_size, image_size) if isinstance(image_size, int) else image_size, "image_size", length=2)
    channels = _check_channels(channels, grayscale)
    if not any(root.iterdir()):
        raise DataError(f"image folder {root} is empty; expected one sub-folder of images per class.")
    sub = {d.name for d in _visible_dirs(root)}
    predefined = "train" in sub and sub <= set(SPLIT_FOLDERS)
    folders = {s: _class_files(root / s) for s in SPLIT_FOLDERS if s in sub} if predefined else {"all": _class_files(root)}

    class_set = folders.get("train", folders.get("all"))
    if len(class_set) < 2:
        raise DataError(
            f"image folder {root} has {len(class_set)} class ({', '.join(class_set)}); classification needs at "
            f"least 2 class sub-folders."
        )
    all_paths = [p for files in folders.values() for images in files.values() for p in images]
    sizes, color = _scan(all_paths)
    size_h_w = size or _common_size(sizes)
    channels = channels or (3 if color else 1)
    _logger.info("reading %d images from %s at %dx%d, %d channel(s)", len(all_paths), root, *size_h_w, channels)

    _, class_names = encode_labels(list(class_set))
    if cache is not None and stream is False:
        raise ConfigError("cache= keeps decoded images of a streamed folder; it does nothing with stream=False. "
                          "Drop one of them.")
    if should_stream(len(all_paths) * channels * size_h_w[0] * size_h_w[1] * 4, True if cache is not None else stream):
        return _streamed(str(path), folders, class_names, seed, view, channels, size_h_w, resize=size is not None,
                         predefined=predefined, workers=workers, cache=cache)
    raw = {}
    for split, files in folders.items():
        paths = [p for c in files for p in files[c]]
        labels, _ = encode_labels([c for c in files for _ in files[c]], class_names)
        x = np.stack([read_image(p, channels=channels, size=size_h_w) for p in paths])  # (N, C, H, W)
        raw[split] = RawSplit(x, labels)
    if predefined:
        parts = divide(raw["train"], seed, test=raw.get("test"), val=raw.get("val"))
    else:
        parts = divide(raw["all"], seed)
    return image_dataset(str(path), parts, class_names, view, resize=size is not None, resample="bilinear",
                         array_scale=1 / 255, source="image_folder")


def _streamed(name: str, folders: dict[str, dict[str, list[Path]]], class_names, seed: int, view: str, channels: int,
              size: tuple[int, int], *, resize: bool, predefined: bool, workers: int | None, cache) -> Dataset:
    """The folder as `StreamSplit`s: the same splits `divide` draws in memory, no image decoded but a
    bounded sample of the training split for the normalisation statistics."""
    listed = {}
    for split, files in folders.items():
        paths = [p for c in files for p in files[c]]
        labels, _ = encode_labels([c for c in files for _ in files[c]], class_names)
        listed[split] = (paths, labels)
    if predefined:
        paths, labels = listed["train"]
        index = train_val_test(labels, seed, test_given="test" in listed, val_given="val" in listed)
        parts = {s: ([paths[i] for i in idx], labels[idx]) for s, idx in index.items()}
        parts.update({s: listed[s] for s in ("val", "test") if s in listed})
    else:
        paths, labels = listed["all"]
        index = train_val_test(labels, seed)
        parts = {s: ([paths[i] for i in idx], labels[idx]) for s, idx in index.items()}
    train_paths = parts["train"][0]
    sample = np.stack([read_image(train_paths[i], channels=channels, size=size) for i in sample_for_stats(len(train_paths))])
    record = image_record("image_folder", sample, view, resize=resize, resample="bilinear", array_scale=1 / 255)
    _logger.info("streaming %d images from %s (statistics from %d training images)",
                 sum(len(p) for p, _ in parts.values()), name, len(sample))
    splits = {}
    for s, (p, y) in parts.items():
        source = ImageFiles(p, channels, size)
        if cache is not None:
            source = CachedItems(source, cache, f"{s}-{_cache_key(p, channels, size)}", (channels, *size))
        splits[s] = StreamSplit(source, torch.as_tensor(y, dtype=torch.int64), record=record, workers=workers)
    c, (h, w) = channels, size
    info = DatasetInfo(name=name, kind=view, input_shape=(c, h, w) if view == "image" else (h, c * w),
                       num_classes=len(class_names), class_names=tuple(class_names), preprocessing=record)
    return Dataset(info, splits["train"], splits["val"], splits["test"])


def _cache_key(paths: list[Path], channels: int, size: tuple[int, int]) -> str:
    """A name for the cached decoded images of `paths`: it changes when a file, its size or mtime, or the
    decoding settings change, so a stale cache is never read."""
    h = hashlib.sha256(f"{channels}:{size}".encode())
    for p in paths:
        st = p.stat()
        h.update(f"{p.resolve()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:20]
