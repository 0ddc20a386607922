"""Object-detection data from your own files: images plus their boxes, as a COCO-style JSON or a CSV.

Both become a "detect" `Dataset` (x (N, C, H, W) normalised with the training split's per-channel
statistics, y (N, M, 5) rows (x0, y0, x1, y1, class) in pixels, padded with class -1), and both work
from the command line: `gridseq train annotations.json --model centernet` or `gridseq train boxes.csv
--model centernet`, with options `--data.size=HxW`, `--data.images=DIR`, `--data.channels=1`.

COCO-style JSON: `images` ([{"id", "file_name"}, ...]), `annotations` ([{"image_id", "bbox": [x, y,
width, height] in pixels, "category_id"}, ...]) and `categories` ([{"id", "name"}, ...]); other keys are
ignored and annotations with "iscrowd": 1 are skipped. Classes are the categories in id order.

CSV, one row per box, header (case-insensitive; the names in brackets are accepted too, as written by
common labelling tools):

    image (file, filename), x0 (xmin), y0 (ymin), x1 (xmax), y1 (ymax), class (label)[, split]
    street/001.png,12,30,58,91,person
    street/001.png,70,44,96,60,car
    street/002.png,,,,,                      <- an image with no objects: empty box and class

Coordinates are pixels of the image file, x1 and y1 exclusive (a box over columns 12..57 has x0 = 12,
x1 = 58). Classes are the class names sorted. An optional `split` column (train / val / test) fixes the
splits; otherwise the test split is drawn with a constant seed (the same for every `--seed`) and val
from the rest with the run's seed.

Image files are named relative to `images` (default: the annotation file's folder). Every image is
resized to `size` (default: the first image's size) with its boxes scaled along, so the splits stack.

When the decoded images would take a large share of memory (`gridseq.data.stream.should_stream`; or
with `stream=True`) the images stream: the boxes (scaled with each image's size from its header) stay
in memory, and DataLoader workers decode each batch's images when it is needed. The splits are the same
as in memory; the normalisation statistics come from up to 512 training images.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import torch

from gridseq.data.builtin.shapes_detect import detect_dataset
from gridseq.data.builtin.shapes_seg import parse_size
from gridseq.data.contract import Dataset
from gridseq.data.partition import TEST_FRACTION, TEST_SEED, VAL_FRACTION, split_sizes
from gridseq.data.readers.image_folder import ImageFiles, _open, read_image
from gridseq.data.stream import should_stream
from gridseq.errors import DataError

SPLITS = ("train", "val", "test")
# CSV header -> the names accepted for it
CSV_COLUMNS = {"image": ("image", "file", "filename", "file_name"), "x0": ("x0", "xmin"), "y0": ("y0", "ymin"),
               "x1": ("x1", "xmax"), "y1": ("y1", "ymax"), "class": ("class", "label")}

Rows = list[list[float | str]]  # per image: [x0, y0, x1, y1, class name or index]


def csv_columns(path: str | os.PathLike) -> dict[str, str] | None:
    """{our name: the CSV's header name} if `path` is a CSV of boxes (all of CSV_COLUMNS present), else None."""
    path = Path(path)
    if path.suffix.lower() != ".csv" or not path.is_file():
        return None
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            header = next(csv.reader(f), [])
    except (UnicodeDecodeError, csv.Error):
        return None  # not a box file; the CSV readers report what is wrong with it
    names = {h.strip().lower(): h for h in header}
    found = {ours: next((names[a] for a in aliases if a in names), None) for ours, aliases in CSV_COLUMNS.items()}
    return None if None in found.values() else found


def load_detection_file(path: Path, seed: int, view: str, *, images=None, size=None, channels: int = 3,
                        val_fraction: float = VAL_FRACTION, test_fraction: float = TEST_FRACTION,
                        stream: bool | None = None, workers: int | None = None) -> Dataset:
    """`datasets.load` for a COCO-style `.json` or a boxes `.csv` (see the module docstring)."""
    reader = load_coco if Path(path).suffix.lower() == ".json" else load_boxes_csv
    return reader(path, images, size=size, channels=channels, seed=seed, val_fraction=val_fraction,
                  test_fraction=test_fraction, stream=stream, workers=workers)


def load_coco(annotations, images=None, *, size=None, channels: int = 3, seed: int = 0,
              val_fraction: float = VAL_FRACTION, test_fraction: float = TEST_FRACTION,
              stream: bool | None = None, workers: int | None = None) -> Dataset:
    """A `detect` Dataset from a COCO-style JSON of boxes and its image files.

    Args:
        annotations: path of the JSON file.
        images: the folder `file_name`s are relative to. Default: the JSON file's folder.
        size: (H, W), an int or "HxW" every image is resized to. Default: the first image's size.
        channels: 3 (RGB) or 1 (grayscale). Default: 3.
        seed: which images go to val (test is drawn with a constant seed).
        val_fraction, test_fraction: shares of the images held out (val: of those left after test).
        stream: True decodes images on demand in worker processes, False decodes them all now; None
            (default) streams when they would take over 10% of available memory or over 256 MiB.
        workers: decoder processes of streamed images (0: decode in this process). Default: half the cores
            available, 1 to 4.
    Raises:
        DataError: a missing file or key, an unknown category or image id, or an empty box.
    Example:
        >>> ds = load_coco("annotations.json", size=64)  # doctest: +SKIP
        >>> ds.info.task, tuple(ds.train.y.shape[2:])     # doctest: +SKIP
        ('detect', (5,))
    """
    path = _existing(annotations, "COCO-style JSON (images, annotations, categories)")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        cats = sorted(doc["categories"], key=lambda c: c["id"])
        entries, boxes = doc["images"], doc["annotations"]
    except (ValueError, KeyError, TypeError) as e:
        raise DataError(f"{path}: expected COCO-style JSON with 'images', 'annotations' and 'categories' lists ({e!r}).") from None
    if not entries or not cats:
        raise DataError(f"{path}: no images or no categories.")
    try:
        rows, names = _coco_rows(path, cats, entries, boxes)
    except DataError:  # (a ValueError too) already says what is wrong
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as e:  # an entry without its keys, or of the wrong type
        raise DataError(f"{path}: an image, annotation or category entry is malformed ({e!r}); each image needs 'id' "
                        f"and 'file_name', each annotation 'image_id', 'category_id' and 'bbox' [x, y, w, h], each "
                        f"category 'id'.") from None
    return _dataset(path, images, rows, names, None, size=size, channels=channels, seed=seed,
                    val_fraction=val_fraction, test_fraction=test_fraction, source="coco", stream=stream,
                    workers=workers)


def _coco_rows(path: Path, cats: list, entries: list, boxes: list) -> tuple[dict[str, Rows], list[str]]:
    """Each image file's box rows [x0, y0, x1, y1, class] and the class names, from COCO entries."""
    index = {c["id"]: i for i, c in enumerate(cats)}
    files = {entry["id"]: entry["file_name"] for entry in entries}
    rows: dict[str, Rows] = {name: [] for name in files.values()}
    for a in boxes:
        if a.get("iscrowd"):
            continue
        if a.get("image_id") not in files or a.get("category_id") not in index:
            raise DataError(f"{path}: annotation {a.get('id')} names image {a.get('image_id')!r} / category "
                            f"{a.get('category_id')!r}, not in 'images' / 'categories'.")
        x, y, bw, bh = (float(v) for v in a["bbox"])
        if bw <= 0 or bh <= 0:
            raise DataError(f"{path}: annotation {a.get('id')} has an empty bbox {a['bbox']} (COCO bbox is [x, y, width, height]).")
        rows[files[a["image_id"]]].append([x, y, x + bw, y + bh, index[a["category_id"]]])
    return rows, [str(c.get("name", c["id"])) for c in cats]


def load_boxes_csv(path, images=None, *, size=None, channels: int = 3, seed: int = 0,
                   val_fraction: float = VAL_FRACTION, test_fraction: float = TEST_FRACTION,
                   stream: bool | None = None, workers: int | None = None) -> Dataset:
    """A `detect` Dataset from a CSV with one row per box (see the module docstring).

    Args and Raises: as `load_coco`; a missing column, a non-number coordinate, an empty box or a bad
    split value is a DataError naming the line.
    """
    path = _existing(path, "CSV with a header image,x0,y0,x1,y1,class")
    columns = csv_columns(path)
    if columns is None:
        raise DataError(f"{path}: expected a header with the columns image, x0, y0, x1, y1, class (or filename, "
                        f"xmin, ymin, xmax, ymax, label).")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            table = list(csv.DictReader(f))
    except UnicodeDecodeError as e:
        raise DataError(f"{path} is not UTF-8 ({e.reason} at byte {e.start}); save it as UTF-8.") from None
    split_key = next((k for k in (table[0] if table else {}) if k.strip().lower() == "split"), None)
    rows: dict[str, Rows] = {}
    splits: dict[str, str] = {}
    for line, row in enumerate(table, start=2):
        name = (row[columns["image"]] or "").strip()
        if not name:
            raise DataError(f"{path}, line {line}: empty image name.")
        boxes = rows.setdefault(name, [])
        if split_key is not None:
            part = (row[split_key] or "train").strip().lower()
            if part not in SPLITS:
                raise DataError(f"{path}, line {line}: split must be train, val or test, got {part!r}.")
            splits[name] = part
        values = [(row[columns[k]] or "").strip() for k in ("x0", "y0", "x1", "y1", "class")]
        if not any(values):
            continue  # an image without objects
        try:
            x0, y0, x1, y1 = (float(v) for v in values[:4])
        except ValueError:
            raise DataError(f"{path}, line {line}: box coordinates must be numbers, got {values[:4]}.") from None
        if x1 <= x0 or y1 <= y0 or not values[4]:
            raise DataError(f"{path}, line {line}: expected x0 < x1, y0 < y1 and a class, got {values}.")
        boxes.append([x0, y0, x1, y1, values[4]])
    if not rows:
        raise DataError(f"{path} has a header but no rows; add one image,x0,y0,x1,y1,class line per box.")
    names = sorted({str(r[4]) for boxes in rows.values() for r in boxes})
    if not names:
        raise DataError(f"{path}: no boxes at all; label at least one object.")
    index = {n: i for i, n in enumerate(names)}
    for boxes in rows.values():
        for r in boxes:
            r[4] = index[str(r[4])]
    return _dataset(path, images, rows, names, splits or None, size=size, channels=channels, seed=seed,
                    val_fraction=val_fraction, test_fraction=test_fraction, source="boxes-csv", stream=stream,
                    workers=workers)


def _existing(path, what: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no such annotation file: {path}; pass a {what}.")
    return path


def _dataset(path: Path, images, rows: dict[str, Rows], names: list[str], splits: dict[str, str] | None, *,
             size, channels: int, seed: int, val_fraction: float, test_fraction: float, source: str,
             stream: bool | None = None, workers: int | None = None) -> Dataset:
    """Read and resize the images, scale their boxes, split, and build the Dataset."""
    folder = Path(images) if images is not None else path.parent
    files = list(rows)
    with _open(folder / files[0]) as img:  # the header only: whether to stream
        h, w = parse_size(size) if size is not None else (img.size[1], img.size[0])
    if should_stream(len(files) * channels * h * w * 4, stream):
        return _streamed(path, folder, rows, names, splits, (h, w), channels=channels, seed=seed,
                         val_fraction=val_fraction, test_fraction=test_fraction, source=source, workers=workers)
    first = read_image(folder / files[0], channels=channels)
    h, w = parse_size(size) if size is not None else first.shape[1:]
    xs = []
    y = np.full((len(files), max(1, max(len(r) for r in rows.values())), 5), -1.0, dtype=np.float32)
    for i, name in enumerate(files):
        image = read_image(folder / name, channels=channels)  # its own size, for the boxes' scale
        sx, sy = image.shape[2] / w, image.shape[1] / h
        if image.shape[1:] != (h, w):
            image = read_image(folder / name, channels=channels, size=(h, w))
        xs.append(image)
        for j, (x0, y0, x1, y1, cls) in enumerate(rows[name]):
            y[i, j] = [x0 / sx, y0 / sy, x1 / sx, y1 / sy, float(cls)]
    x = np.stack(xs)
    where = _where(path, files, splits, seed, val_fraction, test_fraction)
    parts = {part: (x[idx], y[idx]) for part, idx in where.items()}
    return detect_dataset(str(path), parts, names, source=source, size=[int(h), int(w)])


def _where(path: Path, files: list[str], splits: dict[str, str] | None, seed: int, val_fraction: float,
           test_fraction: float) -> dict[str, np.ndarray]:
    """{split: indices into `files`}: from the split column, else test drawn with the constant seed, val with `seed`."""
    if splits is not None:
        where = {part: np.array([i for i, f in enumerate(files) if splits[f] == part], dtype=np.int64) for part in SPLITS}
        if len(where["train"]) == 0:
            raise DataError(f"{path}: the split column leaves no training images.")
        return where
    _, n_val, n_test = split_sizes(len(files), test_fraction, val_fraction)
    test = np.sort(np.random.default_rng(TEST_SEED).permutation(len(files))[:n_test])
    rest = np.setdiff1d(np.arange(len(files)), test)
    val = np.sort(np.random.default_rng(seed).permutation(rest)[:n_val])
    return {"train": np.setdiff1d(rest, val), "val": val, "test": test}


def _streamed(path: Path, folder: Path, rows: dict[str, Rows], names: list[str], splits, size: tuple[int, int], *,
              channels: int, seed: int, val_fraction: float, test_fraction: float, source: str, workers) -> Dataset:
    """The images as `StreamSplit`s decoded per batch, the boxes in memory scaled by each image's header
    size: the splits, boxes and record of the in-memory path (statistics from up to 512 training images)."""
    from gridseq.data.readers.dense_stream import stats_sample, streamed_dense

    files = list(rows)
    h, w = size
    y = np.full((len(files), max(1, max(len(r) for r in rows.values())), 5), -1.0, dtype=np.float32)
    for i, name in enumerate(files):
        with _open(folder / name) as img:
            sx, sy = img.size[0] / w, img.size[1] / h
        for j, (x0, y0, x1, y1, cls) in enumerate(rows[name]):
            y[i, j] = [x0 / sx, y0 / sy, x1 / sx, y1 / sy, float(cls)]
    where = _where(path, files, splits, seed, val_fraction, test_fraction)
    sources = {part: (ImageFiles([folder / files[i] for i in idx], channels, size), torch.from_numpy(y[idx]), None)
               for part, idx in where.items()}
    train = sources["train"][0]
    sample = np.stack([train[int(i)] for i in stats_sample(len(train), channels * h * w * 4)])  # (S, C, H, W)
    return streamed_dense(str(path), sources, names, task="detect", sample=sample, workers=workers, source=source,
                          size=[int(h), int(w)])
