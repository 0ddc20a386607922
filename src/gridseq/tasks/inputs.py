"""Raw inputs for inference: request items (nested arrays, base64 images, strings) checked against
`InputLimits` and prepared into a `Batch` exactly like the training data.

What is read depends on the data kind (images, sequences, text, video), not on the task, so every task
uses these readers through `Task.prepare`; a task with its own inputs (transcription's waveforms,
forecasting's histories, segmentation's any-size images) overrides that. Also here: the checks of the
prediction options a task declares (`check_options`) and the input spec a server publishes (`input_spec`).
"""

from __future__ import annotations

import base64
import binascii
import io
import math
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gridseq.data.contract import Batch, DatasetInfo
from gridseq.data.prepare import encode_texts, prepare_inputs
from gridseq.errors import ConfigError, DataError

MAX_BEAM = 16
MAX_SEED = 2**32 - 1  # a sampler's seed (the published contract's range)
MAX_VALUE = float(np.finfo(np.float32).max)  # the largest number an input may hold (float32's)
_IMAGE_FORMATS = {"PNG": ".png", "JPEG": ".jpg", "BMP": ".bmp", "GIF": ".gif"}


@dataclass(frozen=True)
class InputLimits:
    """Bounds on what one `predict` call may ask for (None: unbounded). A server derives them from the
    model (see `gridseq.serve.limits`); a script usually leaves them unbounded.

    Args:
        max_items: items per call.
        max_length: steps of one sequence, tokens of one text or prompt, rows of a forecast history.
        max_chars: characters of one text.
        max_pixels: H·W of one image.
        max_generate: tokens one language-model call generates, steps one forecast covers.
        files: whether a string input may name a file on this machine (a video clip's .npy or frame
            folder); a server sets False, so a client cannot make it read its disk.
    """

    max_items: int | None = None
    max_length: int | None = None
    max_chars: int | None = None
    max_pixels: int | None = None
    max_generate: int | None = None
    files: bool = True


def layout(info: DatasetInfo) -> str:
    """How a model's inputs are laid out: "tokens", "image", "sequence", "video" or the data kind."""
    if info.kind == "tokens":
        return "tokens"
    return (info.preprocessing or {}).get("layout") or info.kind


# ---- options ------------------------------------------------------------------------------------------

def check_options(task: str, known: dict[str, Any], options: dict[str, Any] | None, limits: InputLimits) -> dict[str, Any]:
    """`known` (a task's options and their defaults) updated with `options`; ConfigError for unknown or
    out-of-range values. None values mean "the default"."""
    options = {k: v for k, v in (options or {}).items() if v is not None}
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ConfigError(f"option {unknown[0]!r} does not apply to a {task} model; its options: {', '.join(known) or 'none'}.")
    out = {**known, **options}
    for key in ("top_k", "length", "steps", "beam"):
        if out.get(key) is not None and (isinstance(out[key], bool) or not isinstance(out[key], int) or out[key] < 1):
            raise ConfigError(f"{key} must be a positive int, got {out[key]!r}.")
    if out.get("beam", 1) > MAX_BEAM:
        raise ConfigError(f"beam must be at most {MAX_BEAM}, got {out['beam']}.")
    for key in ("length", "steps"):
        if limits.max_generate is not None and out.get(key) is not None and out[key] > limits.max_generate:
            if key not in options:  # the task's default, not the client's ask: generate as much as allowed
                out[key] = limits.max_generate
                continue
            raise ConfigError(f"{key}={out[key]} is over this server's limit of {limits.max_generate}.")
    if "temperature" in out:
        t = out["temperature"]
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or not 0 <= t <= 100:
            raise ConfigError(f"temperature must be a number in [0, 100] (0 = most likely token), got {t!r}.")
    if "invert" in out and not isinstance(out["invert"], bool):
        raise ConfigError(f"invert must be true or false, got {out['invert']!r}.")
    if "seed" in out and out["seed"] is not None and (isinstance(out["seed"], bool) or not isinstance(out["seed"], int)
                                                      or not 0 <= out["seed"] <= MAX_SEED):
        raise ConfigError(f"seed must be an int in [0, {MAX_SEED}], got {out['seed']!r}.")
    return out


# ---- the input spec -----------------------------------------------------------------------------------

def input_spec(info: DatasetInfo) -> dict[str, Any]:
    """What a model trained on `info` takes, as JSON-able values (its kind, shape, format)."""
    record = info.preprocessing or {}
    spec: dict[str, Any] = {"kind": info.kind}
    kind = layout(info)
    if kind == "image" or info.kind == "image":
        image = record.get("image", {})
        spec.update(kind="image", channels=image.get("channels"), size=image.get("size"), resize=image.get("resize"),
                    view=record.get("view"), format="nested array (C, H, W), (H, W), (H, W, C) or flat, in raw units; "
                                                     "or a base64 PNG/JPEG string")
        if image.get("any_size"):  # fully convolutional (segmentation): any H x W
            spec["any_size"] = True
    elif kind == "video":
        video = record.get("video", {})
        spec.update(channels=video.get("channels"), size=video.get("size"), frames=video.get("frames"),
                    format="a .npy path (T, H, W[, C]), a folder of frames, or a nested array (T, H, W[, C])")
    elif kind == "tokens":
        level = (record.get("vocab") or {}).get("level")
        spec.update(level=level, vocab_size=info.vocab_size, format="text")
    else:
        seq = record.get("sequence", {})
        spec.update(features=seq.get("features", info.num_features), length=seq.get("length"),
                    variable_length=info.variable_length, format="nested array (T, F) or (T,), optional lengths")
    return spec


# ---- items ----------------------------------------------------------------------------------------------

def check_items(inputs, lengths, info: DatasetInfo, limits: InputLimits, name: str) -> None:
    """DataError unless `inputs` is a non-empty list within the item limit, and `lengths` (if given)
    gives one length per sequence input."""
    if not isinstance(inputs, (list, tuple)) or not inputs:
        raise DataError("inputs must be a non-empty list with one entry per item.")
    if limits.max_items is not None and len(inputs) > limits.max_items:
        raise DataError(f"{len(inputs)} inputs in one request; this server takes at most {limits.max_items}: split the request.")
    if lengths is not None:
        if info.kind != "sequence" and (info.preprocessing or {}).get("layout") != "sequence":
            raise DataError(f"lengths apply to sequence inputs; model {name!r} takes {info.kind} data.")
        if len(lengths) != len(inputs):
            raise DataError(f"lengths has {len(lengths)} entries but there are {len(inputs)} inputs; give one length per input.")


def prepare(inputs: list, lengths: list[int] | None, info: DatasetInfo, limits: InputLimits, *, invert: bool = False) -> Batch:
    """Raw items → a `Batch`, read by the data kind (text, image, sequence, video) like the training data."""
    kind = layout(info)
    if kind == "tokens":
        return _texts(inputs, info, limits)
    if kind == "image":
        return _images(inputs, info, limits, invert)
    if kind == "sequence":
        items = [_sequence(i, item, None if lengths is None else lengths[i], limits) for i, item in enumerate(inputs)]
        bounds = value_bounds(info)
        for i, item in enumerate(inputs):  # the float64 numbers sent, so the check is the contract's exactly
            raw = np.asarray(item, dtype=np.float64)
            if bounds and raw.size and not (bounds[0] <= raw.min() and raw.max() <= bounds[1]):
                raise DataError(f"input {i} holds {raw.min() if raw.min() < bounds[0] else raw.max():.6g}; this model takes "
                                f"values in [{bounds[0]:.6g}, {bounds[1]:.6g}] (beyond them its normalisation overflows float32).")
        return prepare_inputs(items, info)
    if kind == "video":  # .npy / frame-folder paths or (T, H, W[, C]) arrays -> (B, T, C, H, W)
        from gridseq.data.readers.video import prepare_clips

        paths = [i for i, item in enumerate(inputs) if isinstance(item, str)]
        if paths and not limits.files:
            raise DataError(f"input {paths[0]} is a string; this server takes clips as (T, H, W[, C]) arrays of pixels in [0, 1], "
                            f"never paths to files on its disk.")
        # arrays: rectangular and finite first (a ragged clip is the client's error, not numpy's)
        return prepare_clips([item if isinstance(item, str) else as_numbers(item, f"input {i}") for i, item in enumerate(inputs)],
                             info.preprocessing)
    raise DataError(f"this model takes {info.kind} data, which cannot be prepared for prediction here.")


def value_bounds(info: DatasetInfo) -> tuple[float, float] | None:
    """The raw values a sequence model takes: those whose normalised value ((x - mean) / std, per feature)
    stays within half of float32's range, for every feature (one interval for all); None without
    per-feature statistics. The server's OpenAPI contract publishes the same interval."""
    norm = (info.preprocessing or {}).get("normalize")
    if not norm or "std" not in norm or "mean" not in norm:
        return None
    mean, std = np.asarray(norm["mean"], dtype=np.float64).ravel(), np.asarray(norm["std"], dtype=np.float64).ravel()
    reach = MAX_VALUE / 2 * std
    return float(max(-MAX_VALUE, (mean - reach).max())), float(min(MAX_VALUE, (mean + reach).min()))


def check_length(batch: Batch, limits: InputLimits, what: str) -> Batch:
    """`batch`, or DataError if one of its items is longer than `limits.max_length` `what`."""
    limit = limits.max_length
    if limit is not None and batch.lengths is not None and int(batch.lengths.max()) > limit:
        i = int(batch.lengths.argmax())
        raise DataError(f"input {i} gives {int(batch.lengths[i])} {what}; this server takes at most {limit}.")
    return batch


def _texts(inputs: list, info: DatasetInfo, limits: InputLimits) -> Batch:
    for i, text in enumerate(inputs):
        check_text(text, i, limits.max_chars)
    batch = encode_texts(list(inputs), info.preprocessing)
    limit = limits.max_length
    if limit is not None and int(batch.lengths.max()) > limit:
        i = int(batch.lengths.argmax())
        raise DataError(f"text input {i} has {int(batch.lengths[i])} tokens; this server takes at most {limit}.")
    return batch


def _sequence(i: int, item, length: int | None, limits: InputLimits) -> np.ndarray:
    a = as_numbers(item, f"input {i}")
    if a.ndim not in (1, 2):
        raise DataError(f"input {i} has shape {a.shape}; a sequence is (T, F) or (T,) for one feature per step.")
    if length is not None:
        if isinstance(length, bool) or not isinstance(length, int) or not 1 <= length <= len(a):
            raise DataError(f"lengths[{i}] = {length!r} must be an int in [1, {len(a)}] (the steps input {i} holds).")
        a = a[:length]
    if len(a) == 0:
        raise DataError(f"input {i} has no steps; a sequence needs at least one.")
    if limits.max_length is not None and len(a) > limits.max_length:
        raise DataError(f"input {i} has {len(a)} steps; this server takes at most {limits.max_length}.")
    return a


def _images(inputs: list, info: DatasetInfo, limits: InputLimits, invert: bool) -> Batch:
    if not any(isinstance(item, str) for item in inputs):
        return prepare_inputs([image_array(i, item, limits) for i, item in enumerate(inputs)], info, invert=invert)
    # encoded images go through the library's file reader (same decoding, resizing and scaling as training)
    with tempfile.TemporaryDirectory(prefix="gridseq-img-") as tmp:
        items, files = [], {}
        for i, item in enumerate(inputs):
            if isinstance(item, str):
                items.append(str(image_file(i, item, Path(tmp) / f"input{i}", limits)))
                files[items[-1]] = f"input {i}"
            else:
                items.append(image_array(i, item, limits))
        try:
            return prepare_inputs(items, info, invert=invert)
        except DataError as e:  # name the request's item, not the temporary file
            message = str(e)
            for path, name in files.items():
                message = message.replace(path, name)
            raise DataError(message) from None


def images_one_by_one(images: list, limits: InputLimits) -> Iterator[tuple[int, Any]]:
    """(i, source) for each image item: its array, or the path of a temporary file holding its decoded
    base64 string (valid until the next item), for readers that take any image size one at a time."""
    with tempfile.TemporaryDirectory(prefix="gridseq-img-") as tmp:
        for i, item in enumerate(images):
            yield i, (image_file(i, item, Path(tmp) / f"input{i}", limits) if isinstance(item, str) else image_array(i, item, limits))


def image_array(i: int, item, limits: InputLimits) -> np.ndarray:
    a = as_numbers(item, f"input {i}")
    pixels = math.prod(a.shape[-2:]) if a.ndim >= 2 else a.size
    if limits.max_pixels is not None and pixels > limits.max_pixels:
        raise DataError(f"input {i} has {pixels} pixels per channel; this server takes at most {limits.max_pixels}.")
    return a


def image_file(i: int, text: str, path: Path, limits: InputLimits) -> Path:
    """A base64 image string written to `path` + its format's suffix, after checking its header."""
    from PIL import Image, UnidentifiedImageError

    payload = text.split(",", 1)[1] if text.startswith("data:") and "," in text else text
    try:
        raw = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise DataError(f"input {i} is a string but not base64 image data; send an image as base64 PNG/JPEG, or an array.") from None
    try:
        with Image.open(io.BytesIO(raw)) as img:  # reads the header only
            fmt, (w, h) = img.format, img.size
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        raise DataError(f"input {i} is not a readable PNG, JPEG, BMP or GIF image.") from None
    if fmt not in _IMAGE_FORMATS:
        raise DataError(f"input {i} is a {fmt} image; send PNG, JPEG, BMP or GIF.")
    if limits.max_pixels is not None and w * h > limits.max_pixels:
        raise DataError(f"input {i} is {w}x{h} pixels; this server takes at most {limits.max_pixels} pixels per image.")
    path = path.with_suffix(_IMAGE_FORMATS[fmt])
    path.write_bytes(raw)
    return path


def as_numbers(item, what: str) -> np.ndarray:
    """A nested list (or array) of numbers as float32; DataError for strings, ragged lists, NaN or Inf."""
    if isinstance(item, str):
        raise DataError(f"{what} is a string; this model takes numbers (a nested array).")
    try:
        a = np.asarray(item, dtype=np.float64)
    except (ValueError, TypeError):
        raise DataError(f"{what} is not a rectangular array of numbers (ragged or mixed nesting).") from None
    if a.size and not np.isfinite(a).all():
        raise DataError(f"{what} holds NaN or Inf (or a number too large for float32); send finite numbers.")
    if a.size and np.abs(a).max() > MAX_VALUE:
        raise DataError(f"{what} holds a number too large for float32.")
    return a.astype(np.float32)


def check_text(text, i: int, max_chars: int | None, *, empty_ok: bool = False) -> None:
    """DataError unless `text` is a (non-empty, unless `empty_ok`) valid-Unicode string within `max_chars`."""
    if not isinstance(text, str):
        raise DataError(f"input {i} is {type(text).__name__}, expected a string (this model reads text).")
    if not text and not empty_ok:
        raise DataError(f"text input {i} is empty; pass non-empty text.")
    if max_chars is not None and len(text) > max_chars:
        raise DataError(f"text input {i} has {len(text)} characters; this server takes at most {max_chars}.")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise DataError(f"text input {i} is not valid Unicode (it holds a lone surrogate).") from None


def predict_images(task, model, images: list, options: dict[str, Any], limits: InputLimits, decode_one) -> list:
    """One prediction per image, each at its image's own size (so one model call per image), for fully
    convolutional tasks (segment, detect): `decode_one(output (1, C, h, w), x (1, C, H, W))` makes it."""
    import torch

    from gridseq.data.readers.mask_folder import prepare_segment_image

    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    out = []
    for i, source in images_one_by_one(images, limits):
        try:
            x = prepare_segment_image(source, task.info, invert=options.get("invert", False))
        except DataError as e:  # name the request's item, not the temporary file
            raise DataError(str(e).replace(str(source), f"input {i}")) from None
        output = task.forward(model, Batch(x).to(device)).cpu()
        if not bool(torch.isfinite(output).all()):
            raise DataError(f"the model produced NaN or Inf for input {i} (values far outside the training range?).")
        out.append(decode_one(output, x))
    return out
