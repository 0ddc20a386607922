"""Segmentation folders (images + per-pixel class masks), and colour masks / overlays for predictions.

    scenes/                          or, with your own splits:
      images/  a.png  b.jpg ...        scenes/train/images/ + scenes/train/masks/,
      masks/   a.png  b.png ...        scenes/test/...  (val/ is optional)
      classes.txt   (optional: one class name per line, line i = class i)

Every image needs a mask with the same file stem (`a.jpg` ↔ `a.png`) and the same H x W. A mask is a
PNG either of class indices (grayscale or paletted "P" mode, as Pascal VOC: pixel value = class; 255
marks unlabelled pixels, e.g. VOC's object borders) or an RGB colour mask, whose colours are mapped to
classes by the `palette` option (K [r, g, b] triples, class i = palette[i]); without a palette, the
distinct colours found become classes 0..K-1, black first, then in sorted order. Images are read as
value / 255 and normalised per channel with the training split's statistics. Without predefined
splits the test split is 20% drawn with a constant seed and val is 10% of the rest drawn with `seed`.

A folder whose decoded images and masks would take a large share of memory streams (as image folders
do, `gridseq.data.stream.should_stream`): only the file pairs are kept, and DataLoader workers decode
each batch's images and masks (`MaskFiles`) when it is needed. The splits are the same as in memory;
the normalisation statistics (and "balanced" class weights) come from up to 512 training items. The
classes come from `class_names`, classes.txt or, for RGB masks, `palette`; without them every mask is
read once at load time to find them. Mask values are checked as each mask is decoded (a DataError
names the file).

Writing predictions: `colorize(mask)` turns (H, W) class indices into an RGB colour mask with
`PALETTE` (background black), `overlay(image, mask)` blends it over the input image, and `write_png`
writes either atomically.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np

from gridseq._atomic import atomic_write
from gridseq._validation import check_int_tuple
from gridseq.constants import IGNORE_INDEX
from gridseq.data.contract import Dataset
from gridseq.data.partition import train_val_test
from gridseq.data.readers.image_folder import IMAGE_SUFFIXES, _check_channels, _open, _pil, read_image
from gridseq.data.stream import should_stream
from gridseq.errors import DataError

_logger = logging.getLogger(__name__)

IGNORE = IGNORE_INDEX  # the segment task's "no label here"
UNLABELLED_VALUE = 255  # index masks: this pixel value means "no label" (Pascal VOC's border value)
SPLIT_FOLDERS = ("train", "val", "test")
_GRAY = ("1", "L", "LA", "I", "I;16", "F")  # image modes read as one channel
_RGB_MASK_MODES = ("RGB", "RGBA")
_INDEX_MASK_MODES = ("P", "L", "1", "I", "I;16", "I;16B", "I;16L")
# class colours of written masks: background black, then well-separated hues (Pascal VOC's first ones)
PALETTE = np.array([
    [0, 0, 0], [230, 25, 75], [60, 180, 75], [0, 130, 200], [255, 225, 25], [145, 30, 180], [70, 240, 240],
    [245, 130, 48], [240, 50, 230], [210, 245, 60], [250, 190, 212], [0, 128, 128], [220, 190, 255],
    [170, 110, 40], [255, 250, 200], [128, 0, 0], [170, 255, 195], [128, 128, 0], [255, 215, 180], [0, 0, 128],
], dtype=np.uint8)


def is_mask_folder(path: Path | str) -> bool:
    """Whether `path` is laid out as a segmentation folder (images/ + masks/, directly or under train/)."""
    root = Path(path)
    return any((root / sub / "images").is_dir() and (root / sub / "masks").is_dir() for sub in ("", "train"))


def _files(folder: Path) -> dict[str, Path]:
    """{stem: file} of the images in `folder`; DataError for an empty folder or two files with one stem."""
    out: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if not p.is_file() or p.name.startswith(".") or p.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        if p.stem in out:
            raise DataError(f"{out[p.stem]} and {p} have the same name; each image (and mask) needs its own file stem.")
        out[p.stem] = p
    if not out:
        raise DataError(f"{folder} has no images; expected files ending in {', '.join(IMAGE_SUFFIXES)}.")
    return out


def _pairs(root: Path) -> list[tuple[Path, Path]]:
    """(image, mask) pairs of root/images and root/masks, matched by file stem."""
    images, masks = _files(root / "images"), _files(root / "masks")
    lonely = sorted(set(images) - set(masks))
    if lonely:
        raise DataError(f"{len(lonely)} image(s) in {root / 'images'} have no mask in {root / 'masks'} (e.g. "
                        f"{images[lonely[0]].name}; expected {lonely[0]}.png); every image needs a mask with the same name.")
    extra = sorted(set(masks) - set(images))
    if extra:
        raise DataError(f"{len(extra)} mask(s) in {root / 'masks'} have no image in {root / 'images'} (e.g. "
                        f"{masks[extra[0]].name}); remove them or add the images.")
    return [(images[s], masks[s]) for s in sorted(images)]


def _image_headers(paths: list[Path]) -> tuple[list[tuple[int, int]], bool]:
    """(H, W) of every image from its header (nothing decoded), and whether any is in colour."""
    sizes, color = [], False
    for p in paths:
        with _open(p) as img:
            sizes.append((img.size[1], img.size[0]))
            color = color or img.mode not in _GRAY
    return sizes, color


def _mask_array(path: Path) -> np.ndarray:
    """A mask file as (H, W) int64 class indices, or (H, W, 3) uint8 colours for RGB masks."""
    with _open(path) as img:
        try:
            img.load()
            if img.mode in _RGB_MASK_MODES:
                return np.asarray(img.convert("RGB"), dtype=np.uint8)
            if img.mode in _INDEX_MASK_MODES:
                # "P": the indices themselves (the file's palette only shows them), as Pascal VOC
                return np.asarray(img if img.mode != "1" else img.convert("L"), dtype=np.int64)
        except (OSError, ValueError) as e:
            raise DataError(f"cannot read mask {path}: {e}.") from e
        raise DataError(f"mask {path} has image mode {img.mode!r}; expected a PNG of class indices (grayscale or "
                        f"paletted) or an RGB colour mask.")


def _colours_to_classes(masks: list[np.ndarray], paths: list[Path], palette) -> tuple[list[np.ndarray], list]:
    """Map RGB masks to class indices with `palette` (or the sorted distinct colours, black first)."""
    if palette is None:
        found = np.unique(np.concatenate([m.reshape(-1, 3) for m in masks]), axis=0)
        found = sorted(map(tuple, found.tolist()), key=lambda c: (c != (0, 0, 0), c))
        palette = [list(c) for c in found]
        _logger.info("colour masks: %d colours become classes 0..%d: %s", len(palette), len(palette) - 1, palette)
    # colours as 24-bit codes, looked up by binary search in the sorted palette codes
    keys = np.array([(int(r) << 16) | (int(g) << 8) | int(b) for r, g, b in palette], dtype=np.int64)
    order = np.argsort(keys)
    sorted_keys = keys[order]
    out = []
    for m, p in zip(masks, paths):
        codes = (m[..., 0].astype(np.int64) << 16) | (m[..., 1].astype(np.int64) << 8) | m[..., 2]
        pos = np.clip(np.searchsorted(sorted_keys, codes), 0, len(keys) - 1)
        known = sorted_keys[pos] == codes
        if not known.all():
            r, g, b = (int(v) for v in m[~known][0])
            raise DataError(f"mask {p} has the colour ({r}, {g}, {b}), which is not in the palette {palette}; add it to "
                            f"the palette option or fix the mask.")
        out.append(order[pos].astype(np.int64))  # index in the palette = class
    return out, palette


def _read_split(pairs: list[tuple[Path, Path]], channels: int, size: tuple[int, int] | None):
    """Images (N, C, H, W) in [0, 1] and raw masks of one split, with the size checks."""
    images, masks = [], []
    for image_path, mask_path in pairs:
        x = read_image(image_path, channels=channels, size=size)
        m = _mask_array(mask_path)
        if size is not None and m.shape[:2] != size:
            m = _resize_nearest(m, size)
        if m.shape[:2] != x.shape[1:]:
            raise DataError(f"mask {mask_path} is {m.shape[0]}x{m.shape[1]} (HxW) but its image {image_path} is "
                            f"{x.shape[1]}x{x.shape[2]}; a mask must have its image's size.")
        images.append(x)
        masks.append(m)
    return images, masks


def _resize_nearest(m: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a mask (class indices must not be blended)."""
    rows = np.minimum((np.arange(size[0]) + 0.5) * m.shape[0] / size[0], m.shape[0] - 1).astype(np.int64)
    cols = np.minimum((np.arange(size[1]) + 0.5) * m.shape[1] / size[1], m.shape[1] - 1).astype(np.int64)
    return m[rows][:, cols]


def load_mask_folder(path: Path | str, seed: int, view: str, *, image_size: int | tuple[int, int] | None = None,
                     channels: int | None = None, grayscale: bool | None = None, class_names: list[str] | None = None,
                     palette: list | None = None, class_weights=None, stream: bool | None = None,
                     workers: int | None = None) -> Dataset:
    """Read a segmentation folder (see the module docstring) as a "segment" dataset.

    Args:
        path: the folder: images/ + masks/, or train/ (val/) test/ folders each holding images/ + masks/.
        seed: seeds the validation split (the test split does not depend on it).
        view: must be "image".
        image_size: resize every image (bilinear) and mask (nearest) to (H, W). Default: keep the size,
            which every image must then share.
        channels: 1 (grayscale) or 3 (RGB). Default: 1 if every image is grayscale, else 3.
        grayscale: shorthand for channels=1 (True) or channels=3 (False).
        class_names: K names, class i first. Default: classes.txt in the folder, else "0".."K-1".
        palette: for RGB masks, K [r, g, b] colours, class i = palette[i]. Default: the colours found.
        class_weights: K loss weights, or "balanced" (median-frequency weights of the training masks).
        stream: True decodes images and masks on demand in worker processes, False decodes them all now;
            None (default) streams when they would take over 10% of available memory or over 256 MiB.
        workers: decoder processes of a streamed folder (0: decode in this process). Default: the
            cores available halved, 1 to 4.
    Returns:
        Dataset with x (N, C, H, W) and y (N, H, W) int64 (-100 where the mask holds 255), task "segment".
    Raises:
        DataError: missing images/ or masks/, an image without a mask (or the reverse), sizes that
            differ between an image and its mask, mixed sizes without image_size, mask values out of range.
    """
    from gridseq.data.builtin.shapes_seg import segment_dataset
    from gridseq.data.class_weights import balanced_weights, check_class_weights

    root = Path(path)
    if view != "image":
        raise DataError(f"segmentation folder {root} can only be read as images, not view={view!r}.")
    if not is_mask_folder(root):
        raise DataError(f"{root} is not a segmentation folder; expected {root}/images/ and {root}/masks/ (masks with the "
                        f"images' file names), or train/ and test/ folders each holding images/ and masks/.")
    size = None if image_size is None else check_int_tuple(
        (image_size, image_size) if isinstance(image_size, int) else image_size, "image_size", length=2)
    channels = _check_channels(channels, grayscale)
    predefined = (root / "train" / "images").is_dir()
    folders = {s: root / s for s in SPLIT_FOLDERS if (root / s / "images").is_dir()} if predefined else {"all": root}
    pairs = {name: _pairs(folder) for name, folder in folders.items()}
    sizes, color = _image_headers([i for ps in pairs.values() for i, _ in ps])
    if channels is None:
        channels = 3 if color else 1
    pixels = sum(size[0] * size[1] if size is not None else h * w for h, w in sizes)
    if should_stream(pixels * (4 * channels + 8), stream):  # float32 images + int64 masks
        from gridseq.data.readers.dense_stream import streamed_masks

        return streamed_masks(root, pairs, seed, channels, size, sizes, predefined=predefined, class_names=class_names,
                              palette=palette, class_weights=class_weights, workers=workers)

    images, masks, owners = {}, {}, {}
    for name, ps in pairs.items():
        images[name], masks[name] = _read_split(ps, channels, size)
        owners[name] = [m for _, m in ps]
    every = [x for xs in images.values() for x in xs]
    sizes = {x.shape[1:] for x in every}
    if len(sizes) > 1:
        a, b = list(sizes)[:2]
        raise DataError(f"images in {root} have different sizes ({a[0]}x{a[1]} and {b[0]}x{b[1]}, {len(sizes)} sizes in "
                        f"all); pass image_size=(H, W) to resize them all (CLI: --image-size).")
    all_masks = [m for ms in masks.values() for m in ms]
    rgb = [m.ndim == 3 for m in all_masks]
    if any(rgb) and not all(rgb):
        raise DataError(f"masks in {root} mix RGB colour masks and index masks; use one kind for all of them.")
    if all(rgb):
        mapped, palette = _colours_to_classes(all_masks, [p for ps in owners.values() for p in ps], palette)
        it = iter(mapped)
        masks = {name: [next(it) for _ in ms] for name, ms in masks.items()}
    masks = {name: [np.where(m == UNLABELLED_VALUE, IGNORE, m) for m in ms] for name, ms in masks.items()}
    labelled = np.concatenate([m[m != IGNORE] for ms in masks.values() for m in ms])
    if len(labelled) and labelled.min() < 0:
        raise DataError(f"masks in {root} hold negative values; class indices start at 0.")
    num_classes = int(labelled.max()) + 1 if len(labelled) else 1
    names = _class_names(root, class_names, num_classes, palette)
    if num_classes > len(names):
        raise DataError(f"masks in {root} hold class index {num_classes - 1}, but there are only {len(names)} class "
                        f"names ({', '.join(names)}); fix the masks or add names.")

    arrays = {name: (np.stack(images[name]), np.stack(masks[name]).astype(np.int64)) for name in images}
    if predefined:
        train_x, train_y = arrays["train"]
        index = train_val_test(np.zeros(len(train_x)), seed, test_given=True, val_given="val" in arrays)
        parts = {"train": (train_x[index["train"]], train_y[index["train"]])}
        parts["val"] = arrays["val"] if "val" in arrays else (train_x[index["val"]], train_y[index["val"]])
        parts["test"] = arrays["test"] if "test" in arrays else _missing_test(root)
    else:
        x, y = arrays["all"]
        if len(x) < 3:
            raise DataError(f"segmentation folder {root} has {len(x)} image(s); at least 3 are needed for train, val and test.")
        index = train_val_test(np.zeros(len(x)), seed)
        parts = {k: (x[v], y[v]) for k, v in index.items()}
    extra = {}
    if class_weights is not None:
        if class_weights == "balanced":
            import torch

            class_weights = balanced_weights(torch.from_numpy(parts["train"][1]), len(names))
        extra["class_weights"] = check_class_weights(class_weights, len(names))
    if palette is not None:
        extra["palette"] = [list(map(int, c)) for c in palette]
    return segment_dataset(str(path), parts, names, source="mask_folder", array_scale=1 / 255, **extra)


def _missing_test(root: Path):
    raise DataError(f"{root}/train/ exists but {root}/test/ does not; add test/images + test/masks, or put all images "
                    f"in {root}/images and {root}/masks to have the test split drawn.")


def _class_names(root: Path, given, num_classes: int, palette) -> tuple[str, ...]:
    if given is not None:
        return tuple(str(n) for n in given)
    listed = root / "classes.txt"
    if listed.is_file():
        return tuple(line.strip() for line in listed.read_text(encoding="utf-8").splitlines() if line.strip())
    count = max(num_classes, len(palette) if palette is not None else 0)
    return tuple(str(k) for k in range(count))


# ---- new inputs --------------------------------------------------------------------------------------------

def prepare_segment_image(source, info, *, invert: bool = False):
    """One image of ANY size for a segmentation model, prepared like its training images: (1, C, H, W).

    Args:
        source: an image file path, or an array in the dataset's raw units ((C, H, W), (H, W) for one
            channel, or (H, W, C)).
        info: the training dataset's `DatasetInfo` (its preprocessing record: channels, scale, statistics).
        invert: use 1 - pixel. Default: False.
    Raises:
        DataError: an unreadable file or an array of the wrong layout.
    """
    from gridseq.data.preprocessing import apply_preprocessing

    record = info.preprocessing
    spec = record["image"]
    c = spec["channels"]
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise DataError(f"no such image file: {path}.")
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            raise DataError(f"{path}: the model takes images; expected a file ending in {', '.join(IMAGE_SUFFIXES)}.")
        x = read_image(path, channels=c)
    else:
        a = np.asarray(source, dtype=np.float32)
        if a.ndim == 2 and c == 1:
            a = a[None]
        elif a.ndim == 3 and a.shape[0] != c and a.shape[-1] == c:
            a = a.transpose(2, 0, 1)  # (H, W, C) -> (C, H, W)
        if a.ndim != 3 or a.shape[0] != c:
            layouts = f"({c}, H, W)" + (" or (H, W)" if c == 1 else f" or (H, W, {c})")
            raise DataError(f"expected an image array of shape {layouts}, got {tuple(a.shape)}.")
        x = a * spec["array_scale"]
    if not np.isfinite(x).all():
        raise DataError("image arrays contain NaN or Inf values.")
    out, _ = apply_preprocessing((1.0 - x if invert else x)[None], None, record)
    return out


# ---- writing predictions ---------------------------------------------------------------------------------

def palette_for(num_classes: int, palette=None) -> np.ndarray:
    """(K, 3) uint8 colours: `palette` when given (e.g. a dataset's own), else `PALETTE`, cycled beyond 20."""
    if palette is not None:
        return np.asarray(palette, dtype=np.uint8).reshape(-1, 3)
    return PALETTE[np.arange(num_classes) % len(PALETTE)]


def colorize(mask, palette=None) -> np.ndarray:
    """(H, W) class indices → (H, W, 3) uint8 RGB colours.

    Example:
        >>> colorize(np.array([[0, 1]])).tolist()
        [[[0, 0, 0], [230, 25, 75]]]
    """
    mask = np.asarray(mask, dtype=np.int64)
    colours = palette_for(int(mask.max()) + 1 if mask.size else 1, palette)
    return colours[np.clip(mask, 0, len(colours) - 1)]


def overlay(image: np.ndarray, mask, palette=None, *, alpha: float = 0.5) -> np.ndarray:
    """The colour mask blended over `image` ((C, H, W) float in [0, 1], C = 1 or 3): (H, W, 3) uint8.

    Background (class 0) pixels keep the image's own colour.
    """
    rgb = np.repeat(image, 3, axis=0) if image.shape[0] == 1 else image[:3]
    base = (np.clip(rgb.transpose(1, 2, 0), 0, 1) * 255).astype(np.float32)  # (H, W, 3)
    colours = colorize(mask, palette).astype(np.float32)
    blend = np.where((np.asarray(mask) > 0)[..., None], (1 - alpha) * base + alpha * colours, base)
    return blend.round().astype(np.uint8)


def write_png(path: Path | str, rgb: np.ndarray) -> Path:
    """Write an (H, W, 3) uint8 array as a PNG, atomically."""
    Image = _pil()
    img = Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8), "RGB")
    return atomic_write(path, lambda tmp: img.save(tmp, format="PNG"))


def raw_image(x, record: dict) -> np.ndarray:
    """Undo a record's normalisation: prepared (C, H, W) → pixels in [0, 1] (for overlays)."""
    a = np.asarray(x, dtype=np.float32)
    norm = record.get("normalize") or {}
    if "mean" in norm:
        a = a * np.asarray(norm["std"], dtype=np.float32)[:, None, None] + np.asarray(norm["mean"], dtype=np.float32)[:, None, None]
    return np.clip(a, 0.0, 1.0)


def mask_paths(out: Path | str, names: list[str]) -> list[tuple[Path, Path]]:
    """Where `gridseq predict --out OUT` writes each input's (colour mask, overlay).

    One input and OUT ending in .png: OUT itself and OUT's stem + "_overlay.png" beside it; otherwise OUT
    is a folder holding <name>_mask.png and <name>_overlay.png per input.

    Example:
        >>> [str(p) for p in mask_paths("out/mask.png", ["a.jpg"])[0]]
        ['out/mask.png', 'out/mask_overlay.png']
        >>> [str(p) for p in mask_paths("out", ["x/a.jpg", "test[3]"])[1]]
        ['out/test_3_mask.png', 'out/test_3_overlay.png']
    """
    masks = output_paths(out, names, "mask")
    if masks == [Path(out)]:  # one input written to OUT itself
        return [(masks[0], masks[0].with_name(masks[0].stem + "_overlay.png"))]
    return [(m, m.with_name(m.stem.removesuffix("_mask") + "_overlay.png")) for m in masks]


def output_paths(out: Path | str, names: list[str], kind: str) -> list[Path]:
    """Where `gridseq predict --out OUT` writes one PNG per input: OUT itself for one input and OUT
    ending in .png, otherwise OUT/<name>_<kind>.png (the input's name made safe for a file name).

    Example:
        >>> [str(p) for p in output_paths("out", ["x/a.jpg", "test[3]"], "boxes")]
        ['out/a_boxes.png', 'out/test_3_boxes.png']
    """
    out = Path(out)
    if len(names) == 1 and out.suffix.lower() == ".png":
        return [out]
    if out.suffix.lower() == ".png":
        raise DataError(f"--out {out} names one file but there are {len(names)} inputs; pass a folder instead.")
    stems = [re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(n).stem if Path(n).suffix else n).strip("_") or "image" for n in names]
    return [out / f"{s}_{kind}.png" for s in stems]
