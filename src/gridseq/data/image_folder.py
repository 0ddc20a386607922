"""Image folders: one sub-folder per class, PNG/JPEG/BMP/GIF files inside.

    photos/                      or, with your own splits:    photos/train/cat/..., photos/val/...,
      cat/  a.png  b.jpg ...                                  photos/test/...  (val/ is optional)
      dog/  c.png ...

Pixels are read as value / 255 (16-bit images as value / 65535), so they lie in [0, 1], then
normalised per channel with the training split's mean and std. Without predefined splits the test
split is a stratified 20% drawn with a constant seed and val is 10% of the rest drawn with `seed`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from gridseq._validation import check_int_tuple
from gridseq.data.build import RawSplit, divide, image_dataset
from gridseq.data.split import Dataset
from gridseq.data.splitting import encode_labels
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


def read_image(path: Path | str, *, channels: int | None = None, size: tuple[int, int] | None = None,
               resample: str = "bilinear") -> np.ndarray:
    """Read one image file as float32 (C, H, W) in [0, 1].

    Args:
        path: the image file.
        channels: 1 (grayscale, ITU-R 601 luma) or 3 (RGB). Default: the file's own (1 for grayscale).
        size: (H, W) to resize to, or None to keep the file's size.
        resample: "bilinear" or "box" (area average), Pillow's antialiased resampling.
    Raises:
        DataError: the file is missing, not an image, or corrupt (the message names it).
    """
    Image = _pil()
    path = Path(path)
    with _open(path) as img:
        try:
            img.load()
            if channels is None:
                channels = 1 if img.mode in _GRAY_MODES else 3
            if img.mode.startswith("I;16") or img.mode == "I":  # 16-bit grayscale
                out, peak = img.convert("I"), 65535.0
            else:
                out, peak = img.convert("L" if channels == 1 else "RGB"), 255.0
            if size is not None and out.size != (size[1], size[0]):
                method = Image.Resampling.BOX if resample == "box" else Image.Resampling.BILINEAR
                out = out.resize((size[1], size[0]), method)
            a = np.asarray(out, dtype=np.float32) / peak
        except (OSError, SyntaxError, ValueError) as e:
            raise DataError(f"cannot read image {path}: {e}. Remove or replace the file (is it truncated?).") from e
    if a.ndim == 2:
        a = a[None] if channels == 1 else np.repeat(a[None], 3, axis=0)  # (C, H, W)
    else:
        a = a.transpose(2, 0, 1)  # (H, W, C) -> (C, H, W)
    return np.ascontiguousarray(np.clip(a, 0.0, 1.0))


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


def load_image_folder(path: Path | str, seed: int, view: str, *, image_size: int | tuple[int, int] | None = None,
                      channels: int | None = None, grayscale: bool | None = None) -> Dataset:
    """Read an image folder as an image dataset (or, with view="sequence", as sequences of rows).

    Args:
        path: the folder: class sub-folders, or train/ (val/) test/ folders each holding class sub-folders.
        seed: seeds the validation split (the test split does not depend on it).
        view: "image" (N, C, H, W) or "sequence" (N, H, C·W).
        image_size: resize every image to (H, W) (an int means square). Default: keep the size, which
            every image must then share.
        channels: 1 (grayscale) or 3 (RGB). Default: 1 if every image is grayscale, else 3.
        grayscale: shorthand for channels=1 (True) or channels=3 (False).
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
