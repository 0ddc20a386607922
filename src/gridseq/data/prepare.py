"""New inputs for a trained model, prepared exactly like its training data (`gridseq predict`).

The dataset's preprocessing record (`DatasetInfo.preprocessing`, saved in every run directory) says
how: the same image reading (channels, resize, [0, 1] scaling), the same normalisation statistics,
the same view — through the same `apply_preprocessing` the dataset used.

What each kind of model accepts:

- image data: image files (.png, .jpg, .jpeg, .bmp, .gif), read as pixel / 255 and resized to the
  training size when the dataset was resized (`digits`: any size, box-averaged to 8×8); or arrays in
  the dataset's raw units (`digits`: 0..16 as scikit-learn gives them; image folders: 0..255), as a
  batch (N, C, H, W), (N, H, W) for one channel, (N, H, W, C), or flat (N, C·H·W).
- sequence data: .npz files with `x` (and `lengths`), .csv files in the training format (or, for
  data that did not come from a CSV, the wide/long format of the CSV reader without labels), or
  arrays: a batch (N, T, F) / (N, T) for F = 1. Fixed-length data needs exactly the training length.
- time series ("series", e.g. ucr/gunpoint): as sequences, plus `.ts` files (labelled or
  `@classLabel false`), read with the training data's missing-value rule; each series is then
  normalised as in training (per series, or with the training split's per-channel statistics).

- text ("tokens": surnames, sentiment, dates, user CSV/TSV text): strings, cleaned by the dataset's
  rule and encoded with the training vocabulary (unseen tokens become `<unk>`), padded, with lengths.

A list may mix files and single items (one array per item: (C, H, W) / (H, W) for images,
(T, F) / (T,) for sequences); the items come out in order.

Note: the digits are light ink (16) on a dark background (0). A scan of dark ink on white paper must
be inverted first: pass invert=True.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from gridseq.data.contract import Batch, DatasetInfo
from gridseq.data.padding import pad_sequences
from gridseq.data.preprocessing import apply_preprocessing
from gridseq.data.readers.csv_sequences import Table, read_items, resolve_spec
from gridseq.data.readers.image_folder import IMAGE_SUFFIXES, read_image
from gridseq.data.readers.npz import as_sequences, read_npz
from gridseq.data.readers.ts_format import read_ts
from gridseq.errors import DataError


def prepare_inputs(inputs: Any, info: DatasetInfo, *, invert: bool = False) -> Batch:
    """Read and prepare `inputs` for a model trained on the dataset described by `info`.

    Args:
        inputs: a file path, a batch array/tensor in raw units, or a list of paths and single items.
        info: the training dataset's info; its `preprocessing` record drives every step.
        invert: images only: use 1 - pixel (dark ink on light paper → light on dark). Default: False.
    Returns:
        Batch(x, y=None, lengths): x in the layout the model takes, lengths for variable-length data.
    Raises:
        DataError: an unreadable or missing file, an unsupported file type, a shape that does not
            match the training data.

    Example:
        >>> import numpy as np, gridseq.datasets as gd
        >>> info = gd.load("digits").info
        >>> gd.prepare_inputs(np.zeros((2, 8, 8)), info).x.shape
        torch.Size([2, 1, 8, 8])
    """
    record = info.preprocessing
    if not record or "layout" not in record:
        raise DataError(
            f"dataset {info.name!r} has no preprocessing record, so new inputs cannot be prepared like its "
            f"training data; retrain with this version of gridseq."
        )
    sources = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
    batch_array = not isinstance(inputs, (list, tuple))
    if not sources:
        raise DataError("no inputs to prepare: pass at least one file or array.")
    if record["layout"] == "image":
        raw = np.concatenate([_images(s, record, batch_array, invert) for s in sources])
        x, _ = apply_preprocessing(raw, None, record)
        return Batch(x)
    if record["layout"] == "sequence":
        x, lengths = _sequences(sources, record, batch_array, info.variable_length)
        x, lengths = apply_preprocessing(x, lengths, record)
        return Batch(x, None, lengths)
    if record["layout"] == "tokens":
        return encode_texts(sources, record)
    raise DataError(f"prepare_inputs does not support {record['layout']!r} data.")


def encode_texts(texts: list, record: dict[str, Any]) -> Batch:
    """Strings → token ids as the training texts were made: the dataset's cleaning rule, then its
    vocabulary (unseen tokens become `<unk>`); (N, T) padded with 0, with lengths."""
    from gridseq.data.text_assemble import encode_texts as encode

    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise DataError(f"text input {i} is {type(text).__name__}, expected a string (this model reads text).")
    x, lengths = encode(texts, record)
    return Batch(x, None, lengths)


def _to_numpy(a) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().numpy()
    a = np.asarray(a)
    if a.dtype.kind not in "biuf":
        raise DataError(f"expected numbers, got an array of dtype {a.dtype}.")
    return a.astype(np.float32)


def _path(source) -> Path | None:
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise DataError(f"{path} is a folder; pass the files in it." if path.is_dir() else f"no such file: {path}.")
        return path
    return None


def _images(source, record: dict[str, Any], batch_array: bool, invert: bool) -> np.ndarray:
    """(n, C, H, W) in [0, 1] from one path or array."""
    spec = record["image"]
    c, (h, w) = spec["channels"], spec["size"]
    path = _path(source)
    if path is not None:
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            raise DataError(f"{path}: the model takes images; expected a file ending in {', '.join(IMAGE_SUFFIXES)}.")
        img = read_image(path, channels=c, resample=spec["resample"], size=(h, w) if spec["resize"] else None)
        if img.shape[1:] != (h, w):
            raise DataError(
                f"{path} is {img.shape[1]}x{img.shape[2]} (HxW) but the model was trained on {h}x{w} images; "
                f"resize it to {h}x{w} (or train with image_size=(H, W), which resizes at prediction too)."
            )
        x = img[None]
    else:
        x = _image_array(_to_numpy(source), c, h, w, batch_array) * spec["array_scale"]
    if not np.isfinite(x).all():
        raise DataError("image arrays contain NaN or Inf values.")
    return 1.0 - x if invert else x


def _image_array(a: np.ndarray, c: int, h: int, w: int, batch: bool) -> np.ndarray:
    if not batch:
        a = a[None]  # one item: add the batch dimension
    n = a.shape[0]
    if a.shape[1:] == (c, h, w):
        return a
    if c == 1 and a.shape[1:] == (h, w):
        return a[:, None]  # (N, H, W) -> (N, 1, H, W)
    if a.shape[1:] == (h, w, c):
        return a.transpose(0, 3, 1, 2)  # channels last -> (N, C, H, W)
    if a.ndim == 2 and a.shape[1] == c * h * w:
        return a.reshape(n, c, h, w)
    layouts = [f"({c}, {h}, {w})", f"({h}, {w})" if c == 1 else f"({h}, {w}, {c})"]
    if batch:
        layouts = ["(N, " + shape[1:] for shape in layouts] + [f"(N, {c * h * w})"]
    what = "a batch" if batch else "an item"
    raise DataError(
        f"expected image arrays of shape {' or '.join(layouts)} like the training images, got {what} of shape "
        f"{tuple(a.shape if batch else a.shape[1:])}."
    )


def _sequences(sources: list, record: dict[str, Any], batch_array: bool, variable: bool):
    """Padded (N, T, F) and (N,) lengths (or None for fixed-length data) from paths and arrays."""
    chunks: list[tuple[np.ndarray, np.ndarray | None]] = []
    for s in sources:
        path = _path(s)
        if path is None:
            a = _to_numpy(s)
            chunks.append(as_sequences(a if batch_array else a[None], None, "input array"))
        elif path.suffix.lower() == ".npz":
            arrays = read_npz(path)
            if "x" not in arrays:
                raise DataError(f"{path}: missing array 'x' (the file has {', '.join(sorted(arrays))}).")
            chunks.append(as_sequences(arrays["x"], arrays.get("lengths"), str(path)))
        elif path.suffix.lower() == ".csv":
            table = Table(path)
            x, lengths, _ = read_items(table, _csv_spec(table, record), labels=False)
            chunks.append((x, lengths))
        elif path.suffix.lower() == ".ts":
            data = read_ts(path, missing=record.get("ts", {}).get("missing", "interpolate"))
            chunks.append((data.x, data.lengths))
        else:
            raise DataError(f"{path}: the model takes sequences; expected a .npz, .csv or .ts file, or an array.")
    features = record["sequence"]["features"]
    items = []
    for x, lengths in chunks:
        if x.shape[2] != features:
            raise DataError(
                f"expected sequences with F={features} features per step (as in training), got shape {x.shape} "
                f"(N, T, F); check that the data is (batch, time, feature)."
            )
        lengths = np.full(len(x), x.shape[1]) if lengths is None else lengths
        items.extend(x[i, :n] for i, n in enumerate(lengths))
    x, lengths = pad_sequences(items)
    length = record["sequence"]["length"]
    if variable:
        return x, lengths
    if length is not None and (lengths != length).any():
        bad = int(lengths[lengths != length][0])
        raise DataError(
            f"the model was trained on sequences of exactly T={length} steps, got one of {bad} steps; "
            f"pad or crop to {length} (only variable-length datasets accept other lengths)."
        )
    return x, None


def _csv_spec(table: Table, record: dict[str, Any]) -> dict[str, Any]:
    """The training CSV's columns, or for other data a spec guessed from this file's header."""
    if "csv" in record:
        return record["csv"]
    label = "label" if "label" in table.header else None
    return resolve_spec(table, label_column=label)
