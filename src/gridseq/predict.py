"""Predictions from a trained run: raw inputs in, JSON-able predictions out, for every task kind.

`Predictor` is what `gridseq serve` runs for each model, and what a script uses to predict without the
command line. It reads new inputs exactly like the training data (`gridseq.data.prepare`), runs the
model through its task and turns the result into plain lists and dicts:

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

Every step is the task's own (`gridseq.tasks.Task`): its options and their defaults (`Task.options`,
checked by `Task.check_options`), its input spec (`Task.input_spec`), and either `prepare` (raw items →
`Batch`) → `infer` (the model's output) → `decode` (JSON-able records) for `batchable` tasks, which a
server can micro-batch by merging the prepared batches of concurrent requests, or `run` (raw items →
records) for the others (generation, forecasting, any-size images). The Predictor itself knows no task
by name: it holds the model, its device and the limits, and checks what comes back.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import Tensor, nn

from gridseq.data.contract import Batch, DatasetInfo
from gridseq.errors import DataError
from gridseq.models import registry
from gridseq.nn.fuse import count_batchnorm, fold_batchnorm
from gridseq.tasks.base import top_probabilities  # noqa: F401 -- re-exported: serve.stream and scripts use it
from gridseq.tasks.inputs import MAX_BEAM, InputLimits, as_numbers, check_items  # noqa: F401 -- re-exported


class Predictor:
    """A trained model with its dataset info: prepares raw inputs, predicts, decodes to JSON-able values.

    Args:
        model: the trained model (put in eval mode here). A model with BatchNorm layers is predicted
            with a copy that has them folded into the convolutions before them (`gridseq.nn.fuse`).
        info: the training dataset's `DatasetInfo` (preprocessing record, classes, task).
        name: what to call it (a server's URL name). Default: the model's registry name.
        limits: `InputLimits` checked on every call. Default: unbounded.

    Raises:
        ConfigError: a task kind that takes no inputs to predict for (an image generator).
    """

    def __init__(self, model: nn.Module, info: DatasetInfo, *, name: str | None = None, limits: InputLimits | None = None):
        from gridseq import tasks

        model.eval()
        # inference only: BatchNorm folded into the convolutions before it (a copy; the caller's model is untouched)
        self.model = fold_batchnorm(model) if count_batchnorm(model) else model
        self.info = info
        self.task = tasks.for_data(info, model)
        self.task.check_predictable()
        self.name = name or registry.model_name(model)
        self.limits = limits or InputLimits()
        self.device = next((p.device for p in model.parameters()), torch.device("cpu"))
        record = info.preprocessing or {}
        from gridseq.data.vocab import Vocab

        # the input vocabulary of a text model; the output one of a model that writes text (seq2seq, caption)
        self.vocab = Vocab.from_json(record["vocab"]) if info.kind == "tokens" and "vocab" in record else None
        self.target_vocab = Vocab.from_json(record["target_vocab"]) if "target_vocab" in record else None

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
        return self.task.batchable

    @property
    def options(self) -> dict[str, Any]:
        """The options the task accepts, with their defaults."""
        return dict(self.task.options)

    def describe(self) -> dict[str, Any]:
        """Name, task, data kind, classes and the input spec, as JSON-able values."""
        spec = self.task.input_spec()
        spec["limits"] = {k: v for k, v in vars(self.limits).items() if v is not None}
        return {
            "name": self.name, "model": registry.model_name(self.model), "task": self.info.task,
            "classes": list(self.info.class_names) if self.task.has_classes else None,
            "input": spec, "options": self.options,
        }

    def check_options(self, options: dict[str, Any] | None) -> dict[str, Any]:
        """The task's options with defaults filled in; ConfigError for unknown or out-of-range values."""
        return self.task.check_options(options, self.limits)

    # ---- the whole path -----------------------------------------------------------------------------

    def predict(self, inputs: list, lengths: list[int] | None = None, **options) -> dict[str, Any]:
        """Predictions for `inputs` (see the module docstring for what each task takes and returns).

        Raises:
            DataError / ShapeError: inputs the model cannot read (the message names the item).
            ConfigError: an unknown or out-of-range option.
        """
        options = self.check_options(options)
        check_items(inputs, lengths, self.info, self.limits, self.name)
        if not self.task.batchable:
            with torch.inference_mode():
                return self.task.run(self.model, list(inputs), options, self.limits)
        batch = self.prepare(inputs, lengths, invert=options.get("invert", False))
        return self.decode(self.forward(batch, options), batch, options)

    # ---- prepare / forward / decode (batchable tasks) -------------------------------------------------

    def prepare(self, inputs: list, lengths: list[int] | None = None, *, invert: bool = False) -> Batch:
        """Raw items → a `Batch` the model takes, prepared like the training data, with every limit checked."""
        check_items(inputs, lengths, self.info, self.limits, self.name)
        return self.task.prepare(inputs, lengths, limits=self.limits, invert=invert)

    @torch.inference_mode()
    def forward(self, batch: Batch, options: dict[str, Any] | None = None) -> Tensor:
        """The model's output on a prepared batch: logits / values, or decoded target ids for seq2seq."""
        return self.task.infer(self.model, batch.to(self.device), options or {})

    def decode(self, output: Tensor, batch: Batch, options: dict[str, Any] | None = None) -> dict[str, list]:
        """JSON-able predictions for the items of `batch` from the model's `output` on it (`Task.decode`)."""
        output = output.detach().cpu()
        if output.is_floating_point() and not bool(torch.isfinite(output).all()):
            raise DataError("the model produced NaN or Inf for these inputs (values far outside the range it was trained on?).")
        return self.task.decode(output, batch, options or {}, model=self.model)
