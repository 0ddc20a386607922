"""Predictions from a trained run: raw inputs in, JSON-able predictions out, for every task kind.

`Predictor` is what `gridseq serve` runs for each model, and what a script uses to predict without the
command line. It reads new inputs exactly like the training data (`gridseq.data.prepare`), runs the
model through its task (`task.forward` / `task.predict`, `model.generate` for seq2seq,
`gridseq.textgen` for language models, `task.forecast` for forecasting) and turns the result into
plain lists and dicts:

    task       inputs (one entry per item)               predictions[i]          other fields
    classify   image / sequence / text / video           class name              probabilities[i]: {class: p}
    tag        sequence / text / video                   one class per step      probabilities[i]: per step {class: p}
    regress    sequence                                  {target: value}
    seq2seq    source text                               decoded text
    caption    image                                     decoded caption
    lm         prompt text ("" starts from a new line)   generated continuation
    forecast   history, (N, F) or (N,) original units    (steps,) or (steps, targets) forecast    targets
    transcribe (H, W) image or (S,) waveform array          transcript (text)
    segment    image of any size (H, W)                  (H, W) class indices    classes: class names
    detect     image of any size                         [{box: [x0, y0, x1, y1], class, score}, ...]   classes

Images come as nested arrays in the dataset's raw units, or as base64 PNG/JPEG/BMP/GIF strings (a
`data:image/...;base64,` prefix is allowed); sequences as (T, F) or (T,) arrays, optionally cut to
`lengths[i]` steps; text as strings; videos as .npy paths, frame-folder paths or (T, H, W[, C]) arrays.

    >>> p = Predictor.from_run("runs/digits-cnn-s0")  # doctest: +SKIP
    >>> out = p.predict([np.zeros((8, 8))], top_k=2)  # doctest: +SKIP
    >>> sorted(out), len(out["probabilities"][0])  # doctest: +SKIP
    (['predictions', 'probabilities'], 2)

Forward-only tasks (classify, tag, regress, seq2seq) split into `prepare` → `forward` → `decode`, so a
server can merge the prepared batches of concurrent requests (`concat_batches`) and run the model once.
Decoding is the task's own (`Task.decode`: classify, tag, regress, seq2seq, caption); transcription's
CTC decoding, which needs the model's output lengths, stays here.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from gridseq.data.contract import Batch, DatasetInfo
from gridseq.data.prepare import encode_texts, prepare_inputs
from gridseq.errors import ConfigError, DataError
from gridseq.tasks.base import top_probabilities  # noqa: F401 -- re-exported: serve.stream and scripts use it

FORWARD_TASKS = ("classify", "tag", "regress", "seq2seq", "caption", "transcribe")  # one model call per batch: can be micro-batched
TASKS = (*FORWARD_TASKS, "lm", "forecast", "segment", "detect")

# options each task accepts, with their defaults
OPTIONS: dict[str, dict[str, Any]] = {
    "classify": {"top_k": None, "invert": False},
    "tag": {"top_k": None},
    "regress": {},
    "seq2seq": {"beam": 1},
    "transcribe": {"beam": 1},
    "caption": {"beam": 1, "invert": False},
    "lm": {"length": 100, "temperature": 1.0, "top_k": None, "seed": None},
    "forecast": {"steps": None},
    "segment": {"invert": False},
    "detect": {"invert": False},
}
MAX_BEAM = 16
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
    """

    max_items: int | None = None
    max_length: int | None = None
    max_chars: int | None = None
    max_pixels: int | None = None
    max_generate: int | None = None


class Predictor:
    """A trained model with its dataset info: prepares raw inputs, predicts, decodes to JSON-able values.

    Args:
        model: the trained model (put in eval mode here).
        info: the training dataset's `DatasetInfo` (preprocessing record, classes, task).
        name: what to call it (a server's URL name). Default: the model's registry name.
        limits: `InputLimits` checked on every call. Default: unbounded.

    Raises:
        ConfigError: a task kind this module cannot serve.
    """

    def __init__(self, model: nn.Module, info: DatasetInfo, *, name: str | None = None, limits: InputLimits | None = None):
        from gridseq import tasks

        self.model = model.eval()
        self.info = info
        self.task = tasks.for_data(info, model)
        if self.task.name == "generate-image":  # a generator takes no inputs to label
            raise ConfigError("this run is an image generator (task generate-image): draw images with "
                              "`gridseq sample RUN_DIR --n 64 --out grid.png` instead of predict.")
        if info.task not in TASKS:
            raise ConfigError(f"predicting for task {info.task!r} is not supported; supported tasks: {', '.join(TASKS)}.")
        self.name = name or getattr(model, "gridseq_name", type(model).__name__)
        self.limits = limits or InputLimits()
        self.device = next((p.device for p in model.parameters()), torch.device("cpu"))
        record = info.preprocessing or {}
        self.target_vocab = None
        self.vocab = None
        if info.kind == "tokens":
            from gridseq.data.vocab import Vocab

            self.vocab = Vocab.from_json(record["vocab"])
            if "target_vocab" in record:
                self.target_vocab = Vocab.from_json(record["target_vocab"])
        if info.task == "caption":  # image in, words out: the caption vocabulary turns ids into text
            from gridseq.data.vocab import Vocab

            self.target_vocab = Vocab.from_json(record["target_vocab"])

    @classmethod
    def from_run(cls, run_dir: str | os.PathLike, *, name: str | None = None, limits: InputLimits | None = None) -> Predictor:
        """Load a `gridseq train` run directory (config.json + model.safetensors; nothing is unpickled)
        through `gridseq.runs.Run`.

        Raises:
            CheckpointError: not a run directory, or one without a data section (a bare `gridseq.save`).
        """
        from gridseq.runs import Run

        run = Run.open(run_dir)
        model = run.model
        return cls(model, run.info, name=name or run.path.name, limits=limits)

    # ---- what the model takes -----------------------------------------------------------------------

    @property
    def batchable(self) -> bool:
        """Whether one model call serves a whole batch (so concurrent requests can be merged)."""
        return self.info.task in FORWARD_TASKS

    def describe(self) -> dict[str, Any]:
        """Name, task, data kind, classes and the input spec, as JSON-able values."""
        info, record = self.info, self.info.preprocessing or {}
        spec: dict[str, Any] = {"kind": info.kind}
        if info.task == "forecast":
            spec.update(columns=record.get("columns"), window=record.get("window"), horizon=record.get("horizon"),
                        targets=record.get("targets"), format="history (N, F) or (N,) in original units, N >= window")
        elif info.kind == "image" or record.get("layout") == "image":
            image = record.get("image", {})
            spec.update(kind="image", channels=image.get("channels"), size=image.get("size"), resize=image.get("resize"),
                        view=record.get("view"), format="nested array (C, H, W), (H, W), (H, W, C) or flat, in raw units; "
                                                         "or a base64 PNG/JPEG string")
            if image.get("any_size"):  # fully convolutional (segmentation): any H x W
                spec["any_size"] = True
        elif record.get("layout") == "video":
            video = record.get("video", {})
            spec.update(channels=video.get("channels"), size=video.get("size"), frames=video.get("frames"),
                        format="a .npy path (T, H, W[, C]), a folder of frames, or a nested array (T, H, W[, C])")
        elif info.kind == "tokens":
            spec.update(level=self.vocab.level if self.vocab else None, vocab_size=info.vocab_size, format="text")
        else:
            seq = record.get("sequence", {})
            spec.update(features=seq.get("features", info.num_features), length=seq.get("length"),
                        variable_length=info.variable_length, format="nested array (T, F) or (T,), optional lengths")
        spec["limits"] = {k: v for k, v in vars(self.limits).items() if v is not None}
        return {
            "name": self.name, "model": getattr(self.model, "gridseq_name", type(self.model).__name__), "task": info.task,
            "classes": list(info.class_names) if info.task in ("classify", "tag", "regress", "segment", "detect") else None,
            "input": spec, "options": dict(OPTIONS[info.task]),
        }

    def check_options(self, options: dict[str, Any] | None) -> dict[str, Any]:
        """The task's options with defaults filled in; ConfigError for unknown or out-of-range values."""
        options = {k: v for k, v in (options or {}).items() if v is not None}
        known = OPTIONS[self.info.task]
        unknown = sorted(set(options) - set(known))
        if unknown:
            accepted = ", ".join(known) or "none"
            raise ConfigError(f"option {unknown[0]!r} does not apply to a {self.info.task} model; its options: {accepted}.")
        out = {**known, **options}
        for key in ("top_k", "length", "steps", "beam"):
            if out.get(key) is not None and (isinstance(out[key], bool) or not isinstance(out[key], int) or out[key] < 1):
                raise ConfigError(f"{key} must be a positive int, got {out[key]!r}.")
        if out.get("beam", 1) > MAX_BEAM:
            raise ConfigError(f"beam must be at most {MAX_BEAM}, got {out['beam']}.")
        limit = self.limits.max_generate
        for key in ("length", "steps"):
            if limit is not None and out.get(key) is not None and out[key] > limit:
                raise ConfigError(f"{key}={out[key]} is over this server's limit of {limit}.")
        if "temperature" in out:
            t = out["temperature"]
            if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or not 0 <= t <= 100:
                raise ConfigError(f"temperature must be a number in [0, 100] (0 = most likely token), got {t!r}.")
        if "invert" in out and not isinstance(out["invert"], bool):
            raise ConfigError(f"invert must be true or false, got {out['invert']!r}.")
        if "seed" in out and out["seed"] is not None and (isinstance(out["seed"], bool) or not isinstance(out["seed"], int)):
            raise ConfigError(f"seed must be an int, got {out['seed']!r}.")
        return out

    # ---- the whole path -----------------------------------------------------------------------------

    def predict(self, inputs: list, lengths: list[int] | None = None, **options) -> dict[str, Any]:
        """Predictions for `inputs` (see the module docstring for what each task takes and returns).

        Raises:
            DataError / ShapeError: inputs the model cannot read (the message names the item).
            ConfigError: an unknown or out-of-range option.
        """
        options = self.check_options(options)
        self._check_items(inputs, lengths)
        if self.info.task == "lm":
            return {"predictions": self._generate(inputs, options)}
        if self.info.task == "forecast":
            return self._forecast(inputs, options)
        if self.info.task in ("segment", "detect"):  # any image size: one model call per image
            return self._segment(inputs, options)
        batch = self.prepare(inputs, lengths, invert=options.get("invert", False))
        return self.decode(self.forward(batch, options), batch, options)

    # ---- prepare / forward / decode (forward tasks) ---------------------------------------------------

    def prepare(self, inputs: list, lengths: list[int] | None = None, *, invert: bool = False) -> Batch:
        """Raw items → a `Batch` the model takes, prepared like the training data, with every limit checked."""
        self._check_items(inputs, lengths)
        record = self.info.preprocessing or {}
        layout = record.get("layout")
        if self.info.task == "transcribe":  # image or waveform arrays -> columns or log-mel frames
            from gridseq.data.readers.transcripts import prepare_transcribe

            batch = prepare_transcribe(inputs, self.info)
            limit = self.limits.max_length
            if limit is not None and int(batch.lengths.max()) > limit:
                i = int(batch.lengths.argmax())
                raise DataError(f"input {i} gives {int(batch.lengths[i])} steps (columns or frames); this server takes at most {limit}.")
            return batch
        if self.info.kind == "tokens":
            return self._texts(inputs)
        if layout == "image":
            return self._images(inputs, invert)
        if layout == "sequence":
            items = [self._sequence(i, item, None if lengths is None else lengths[i]) for i, item in enumerate(inputs)]
            return prepare_inputs(items, self.info)
        if layout == "video":  # .npy / frame-folder paths or (T, H, W[, C]) arrays -> (B, T, C, H, W)
            from gridseq.data.readers.video import prepare_clips

            return prepare_clips(inputs, record)
        raise DataError(f"model {self.name!r} takes {self.info.kind} data, which cannot be prepared for prediction here.")

    @torch.inference_mode()
    def forward(self, batch: Batch, options: dict[str, Any] | None = None) -> Tensor:
        """The model's output on a prepared batch: logits / values, or decoded target ids for seq2seq."""
        options = options or {}
        batch = batch.to(self.device)
        if self.info.task == "seq2seq":
            return self.model.generate(batch.x, batch.lengths, beam=options.get("beam", 1))
        if self.info.task == "caption":
            return self.model.generate(batch.x, beam=options.get("beam", 1))
        return self.task.forward(self.model, batch)

    def decode(self, output: Tensor, batch: Batch, options: dict[str, Any] | None = None) -> dict[str, list]:
        """JSON-able predictions for the items of `batch` from the model's `output` on it (`Task.decode`)."""
        options = options or {}
        task, names = self.info.task, self.info.class_names
        output = output.detach().cpu()
        if output.is_floating_point() and not bool(torch.isfinite(output).all()):
            raise DataError("the model produced NaN or Inf for these inputs (values far outside the range it was trained on?).")
        if task == "transcribe":  # CTC frames come from the model's output_lengths of this very batch
            from gridseq.tasks.transcribe import decode as ctc_decode
            from gridseq.tasks.transcribe import label_text

            frames = self.model.output_lengths(batch.lengths) if hasattr(self.model, "output_lengths") else batch.lengths
            ids = ctc_decode(output, frames, options.get("beam", 1))
            return {"predictions": [label_text(row, names) for row in ids]}
        return self.task.decode(output, batch, options)

    # ---- inputs -------------------------------------------------------------------------------------

    def _check_items(self, inputs, lengths) -> None:
        if not isinstance(inputs, (list, tuple)) or not inputs:
            raise DataError("inputs must be a non-empty list with one entry per item.")
        limit = self.limits.max_items
        if limit is not None and len(inputs) > limit:
            raise DataError(f"{len(inputs)} inputs in one request; this server takes at most {limit}: split the request.")
        if lengths is not None:
            if self.info.kind != "sequence" and (self.info.preprocessing or {}).get("layout") != "sequence":
                raise DataError(f"lengths apply to sequence inputs; model {self.name!r} takes {self.info.kind} data.")
            if len(lengths) != len(inputs):
                raise DataError(f"lengths has {len(lengths)} entries but there are {len(inputs)} inputs; give one length per input.")

    def _texts(self, inputs: list) -> Batch:
        for i, text in enumerate(inputs):
            _check_text(text, i, self.limits.max_chars)
        batch = encode_texts(list(inputs), self.info.preprocessing)
        limit = self.limits.max_length
        if limit is not None and int(batch.lengths.max()) > limit:
            i = int(batch.lengths.argmax())
            raise DataError(f"text input {i} has {int(batch.lengths[i])} tokens; this server takes at most {limit}.")
        return batch

    def _sequence(self, i: int, item, length: int | None) -> np.ndarray:
        a = as_numbers(item, f"input {i}")
        if a.ndim not in (1, 2):
            raise DataError(f"input {i} has shape {a.shape}; a sequence is (T, F) or (T,) for one feature per step.")
        if length is not None:
            if isinstance(length, bool) or not isinstance(length, int) or not 1 <= length <= len(a):
                raise DataError(f"lengths[{i}] = {length!r} must be an int in [1, {len(a)}] (the steps input {i} holds).")
            a = a[:length]
        if len(a) == 0:
            raise DataError(f"input {i} has no steps; a sequence needs at least one.")
        limit = self.limits.max_length
        if limit is not None and len(a) > limit:
            raise DataError(f"input {i} has {len(a)} steps; this server takes at most {limit}.")
        return a

    def _images(self, inputs: list, invert: bool) -> Batch:
        if not any(isinstance(item, str) for item in inputs):
            return prepare_inputs([self._image_array(i, item) for i, item in enumerate(inputs)], self.info, invert=invert)
        # encoded images go through the library's file reader (same decoding, resizing and scaling as training)
        with tempfile.TemporaryDirectory(prefix="gridseq-img-") as tmp:
            items, files = [], {}
            for i, item in enumerate(inputs):
                if isinstance(item, str):
                    items.append(str(self._image_file(i, item, Path(tmp) / f"input{i}")))
                    files[items[-1]] = f"input {i}"
                else:
                    items.append(self._image_array(i, item))
            try:
                return prepare_inputs(items, self.info, invert=invert)
            except DataError as e:  # name the request's item, not the temporary file
                message = str(e)
                for path, name in files.items():
                    message = message.replace(path, name)
                raise DataError(message) from None

    def _image_array(self, i: int, item) -> np.ndarray:
        a = as_numbers(item, f"input {i}")
        pixels = math.prod(a.shape[-2:]) if a.ndim >= 2 else a.size
        if self.limits.max_pixels is not None and pixels > self.limits.max_pixels:
            raise DataError(f"input {i} has {pixels} pixels per channel; this server takes at most {self.limits.max_pixels}.")
        return a

    def _image_file(self, i: int, text: str, path: Path) -> Path:
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
        if self.limits.max_pixels is not None and w * h > self.limits.max_pixels:
            raise DataError(f"input {i} is {w}x{h} pixels; this server takes at most {self.limits.max_pixels} pixels per image.")
        path = path.with_suffix(_IMAGE_FORMATS[fmt])
        path.write_bytes(raw)
        return path

    # ---- segmentation -------------------------------------------------------------------------------

    @torch.inference_mode()
    def _segment(self, images: list, options: dict[str, Any]) -> dict[str, Any]:
        """One mask per image, each at its image's own size (so one model call per image); for detect
        runs, each image's boxes (`gridseq.tasks.detect.box_records`) instead."""
        from gridseq.data.readers.mask_folder import prepare_segment_image

        masks = []
        with tempfile.TemporaryDirectory(prefix="gridseq-img-") as tmp:
            for i, item in enumerate(images):
                source = self._image_file(i, item, Path(tmp) / f"input{i}") if isinstance(item, str) else self._image_array(i, item)
                try:
                    x = prepare_segment_image(source, self.info, invert=options.get("invert", False))
                except DataError as e:  # name the request's item, not the temporary file
                    raise DataError(str(e).replace(str(source), f"input {i}")) from None
                output = self.task.forward(self.model, Batch(x).to(self.device)).cpu()
                if not bool(torch.isfinite(output).all()):
                    raise DataError(f"the model produced NaN or Inf for input {i} (values far outside the training range?).")
                if self.info.task == "detect":
                    from gridseq.tasks.detect import box_records

                    masks.append(box_records(self.task.predict(output, image_size=tuple(x.shape[2:]))[0], self.info.class_names))
                    continue
                masks.append(self.task.predict(output)[0][0].tolist())  # (H, W) class indices
        return {"predictions": masks, "classes": list(self.info.class_names)}

    # ---- generation and forecasting -----------------------------------------------------------------

    def _generate(self, prompts: list, options: dict[str, Any]) -> list[str]:
        from gridseq.textgen import stream_text

        out = []
        for i, prompt in enumerate(prompts):
            _check_text(prompt, i, self.limits.max_chars, empty_ok=True)
            limit = self.limits.max_length
            if limit is not None and prompt and len(self.vocab.encode(prompt)) > limit:
                raise DataError(f"prompt {i} is over this server's limit of {limit} tokens.")
            seed = None if options["seed"] is None else options["seed"] + i
            pieces = stream_text(self.model, prompt, vocab=self.vocab, length=options["length"],
                                 temperature=options["temperature"], top_k=options["top_k"], seed=seed)
            out.append("".join(pieces))
        return out

    def _forecast(self, histories: list, options: dict[str, Any]) -> dict[str, Any]:
        record = self.info.preprocessing
        columns = len(record["columns"])
        out = []
        for i, item in enumerate(histories):
            a = as_numbers(item, f"input {i}").astype(np.float64)
            if a.ndim == 1 and columns == 1:
                a = a[:, None]  # (N,) -> (N, 1)
            if a.ndim != 2 or a.shape[1] != columns:
                raise DataError(f"input {i} has shape {a.shape}; a history is (N, {columns}) with the columns {record['columns']}"
                                + (" or (N,)" if columns == 1 else "") + ".")
            limit = self.limits.max_length
            if limit is not None and len(a) > limit:
                raise DataError(f"input {i} has {len(a)} steps of history; this server takes at most {limit}.")
            values = self.task.forecast(self.model, a, options["steps"])  # (steps, F_out)
            if not np.isfinite(values).all():
                raise DataError(f"the forecast for input {i} is not finite (a history far outside the training range?).")
            out.append(values[:, 0].tolist() if values.shape[1] == 1 else values.tolist())
        return {"predictions": out, "targets": list(record["targets"])}


# ---- helpers ------------------------------------------------------------------------------------------

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
    if a.size and np.abs(a).max() > np.finfo(np.float32).max:
        raise DataError(f"{what} holds a number too large for float32.")
    return a.astype(np.float32)


def _check_text(text, i: int, max_chars: int | None, *, empty_ok: bool = False) -> None:
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
