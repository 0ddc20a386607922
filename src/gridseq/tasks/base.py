"""The Task interface: what turns a model's output into a loss, metrics and predictions.

The trainer only ever talks to a `Task`, never to a model family, so a new kind of problem (tagging,
forecasting, segmentation, seq2seq) is a new `Task` subclass registered here — the training loop does
not change. A task says which model topologies can serve it, how to call the model on a `Batch`,
its loss, a metric accumulator, its primary metric and whether higher is better.
"""

from __future__ import annotations

import logging
import math
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from gridseq._validation import did_you_mean
from gridseq.data.contract import Batch, DatasetInfo, Split
from gridseq.errors import ConfigError
from gridseq.tasks import inputs
from gridseq.tasks.inputs import InputLimits

_logger = logging.getLogger(__name__)


class Metrics(ABC):
    """Accumulates a task's metrics over batches; `compute()` gives the totals.

    Accumulators keep their running sums as tensors on the model's device, so updating them costs
    no host↔device sync; only `compute()` reads them back. `state_dict()` / `load_state_dict()`
    (tensors only) let a checkpoint resume a half-finished epoch exactly.
    """

    @abstractmethod
    def update(self, output: Tensor, batch: Batch, loss: Tensor) -> None:
        """Add one batch: the model `output`, the `batch` it came from and its mean `loss`."""

    @abstractmethod
    def compute(self) -> dict[str, float]:
        """The metrics over every batch seen so far, by their snake_case names."""

    @abstractmethod
    def state_dict(self) -> dict[str, Tensor]:
        """The running sums as tensors (for checkpoints)."""

    @abstractmethod
    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        """Restore the running sums saved by `state_dict()` (already on the device to accumulate on)."""


class SumMetrics(Metrics):
    """Metrics that are ratios of running sums: subclasses add named sums in `update` (tensors on the
    device, no sync) and turn them into metrics in `finish(sums)`.

    `self.add(loss_sum=..., correct=...)` accumulates; sums survive checkpoints through state_dict.
    """

    def __init__(self):
        self.sums: dict[str, Tensor] = {}

    def add(self, **values: Tensor | float) -> None:
        for name, value in values.items():
            value = value.detach().double() if isinstance(value, Tensor) else float(value)
            self.sums[name] = self.sums[name] + value if name in self.sums else value

    def compute(self) -> dict[str, float]:
        if not self.sums:
            return {}
        return self.finish({k: float(v) for k, v in self.sums.items()})

    @abstractmethod
    def finish(self, sums: dict[str, float]) -> dict[str, float]:
        """The metrics from the totals in `sums`."""

    def state_dict(self) -> dict[str, Tensor]:
        return {k: torch.as_tensor(v).cpu() for k, v in self.sums.items()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.sums = {k: v.clone().double() for k, v in state.items()}


class Task(ABC):
    """One kind of problem: loss, metrics, prediction and the model topologies that can serve it.

    Subclasses set the class attributes and implement `loss`, `metrics` and `predict`.

    Attributes:
        name: the registry name, the same string as `DatasetInfo.task` ("classify", ...).
        topologies: model topologies that produce the output this task needs.
        primary: the metric that picks the best epoch and drives early stopping.
        higher_is_better: whether a larger `primary` is better (accuracy) or worse (loss, mae).
    """

    name: ClassVar[str]
    topologies: ClassVar[tuple[str, ...]]
    primary: ClassVar[str]
    higher_is_better: ClassVar[bool]
    # inference: the prediction options the task accepts, with their defaults (checked by `check_options`)
    options: ClassVar[dict[str, Any]] = {}
    # whether one model call serves a whole prepared batch (`prepare` -> `infer` -> `decode`), so a server can
    # merge concurrent requests; otherwise `run` predicts for the raw inputs itself
    batchable: ClassVar[bool] = True
    # whether predictions are class names (the server lists the classes)
    has_classes: ClassVar[bool] = False
    # `gridseq predict`: the key of each record's prediction, and what --out draws (None: nothing)
    record_key: ClassVar[str] = "prediction"
    drawn: ClassVar[str | None] = None
    # streaming (`gridseq.serve.stream`): what one message of a stream may be for runs of this task — "steps" (one
    # step of a sequence or one token, through a recurrent model's carried state), "frames" (one video frame,
    # through the model's own `stream()`), "audio" (a chunk of samples; the reply is the transcript so far)
    streams: ClassVar[tuple[str, ...]] = ()
    stream_top_k: ClassVar[int | None] = None  # probabilities a stream reports per step by default (None: all)
    # what a run of this task generates from nothing but a prompt or a seed: "text" (`gridseq generate`),
    # "images" (`gridseq sample`), or None
    generates: ClassVar[str | None] = None
    # whether the targets are one class per step of the input sequence (tagging), so a comparison picks models
    # that emit one output per step (`gridseq.compare.plan`)
    step_labels: ClassVar[bool] = False
    # why the items of this task's data are not exchangeable, so k-fold cross-validation does not apply to it
    # (`gridseq.train.cross_validate`), or None
    not_exchangeable: ClassVar[str | None] = None
    # whether the loss is a cross-entropy over classes that `fit(label_smoothing=)` may smooth (`training_loss`)
    smooths_labels: ClassVar[bool] = False
    label_smoothing: float = 0.0  # set by the trainer; evaluation losses never smooth

    def __init__(self, info: DatasetInfo | None = None):
        self.info = info
        # K: class logits per item or step (a target vocabulary for lm/seq2seq); None without info
        self.num_classes = info.num_classes if info is not None else None

    def forward(self, model: nn.Module, batch: Batch) -> Tensor:
        """Run `model` on `batch`; lengths are passed only when the batch has them."""
        return model(batch.x) if batch.lengths is None else model(batch.x, batch.lengths)

    @abstractmethod
    def loss(self, output: Tensor, batch: Batch) -> Tensor:
        """The mean loss of `output` against `batch.y`, a scalar tensor with a gradient."""

    def training_loss(self, output: Tensor, batch: Batch) -> Tensor:
        """The loss the optimiser minimises: `loss`, with `label_smoothing` where the task takes it."""
        if self.label_smoothing:
            return self.loss(output, batch, label_smoothing=self.label_smoothing)
        return self.loss(output, batch)

    @abstractmethod
    def metrics(self) -> Metrics:
        """A fresh, empty metric accumulator."""

    @abstractmethod
    def predict(self, output: Tensor) -> Any:
        """Decode model output into predictions (for classify: labels and probabilities)."""

    # ---- inference: raw inputs -> Batch -> model output -> JSON-able records ---------------------------

    def check_predictable(self) -> None:
        """ConfigError if runs of this task take no inputs to predict for (e.g. an image generator)."""

    def elsewhere(self, run_dir) -> str | None:
        """Why `gridseq predict` does not serve runs of this task and which command does, or None."""
        return None

    def check_options(self, options: dict[str, Any] | None, limits: InputLimits | None = None) -> dict[str, Any]:
        """This task's `options` with their defaults filled in; ConfigError for unknown or out-of-range values."""
        return inputs.check_options(self.name, self.options, options, limits or InputLimits())

    def input_spec(self) -> dict[str, Any]:
        """What the model takes, as JSON-able values (kind, shape, format). Default: by the data kind."""
        return inputs.input_spec(self.info)

    def prepare(self, items: list, lengths: list[int] | None = None, *, limits: InputLimits | None = None,
                invert: bool = False) -> Batch:
        """Raw items (nested arrays, base64 images, texts, video paths) → a `Batch` the model takes, prepared
        like the training data, with every limit checked. Default: read by the data kind (`tasks.inputs`)."""
        return inputs.prepare(items, lengths, self.info, limits or InputLimits(), invert=invert)

    def read_file(self, path, *, invert: bool = False) -> Batch:
        """The items of one input file (an image, a .npz / .csv of sequences, a .npy clip or frame folder),
        prepared like the training data (`gridseq predict RUN_DIR FILE`)."""
        if inputs.layout(self.info) == "video":
            from gridseq.data.readers.video import prepare_clips

            return prepare_clips([path], self.info.preprocessing)
        from gridseq.data.prepare import prepare_inputs

        return prepare_inputs([path], self.info, invert=invert)

    def infer(self, model: nn.Module, batch: Batch, options: dict[str, Any]) -> Tensor:
        """The model's output for prediction on `batch` (already on the model's device). Default: `forward`."""
        return self.forward(model, batch)

    def decode(self, output: Tensor, batch: Batch, options: dict[str, Any], model: nn.Module | None = None) -> dict[str, list]:
        """JSON-able predictions for the items of `batch` from the model's `output` on it (on CPU, finite):
        {"predictions": [one per item], ...task-specific fields}. `options` are the prediction options the
        task accepts (e.g. top_k), already checked by the caller; `model` is the model that gave `output`.

        Raises:
            ConfigError: the task has no per-batch decoding (a generator, a forecaster: call predict()).
        """
        raise ConfigError(f"decode does not apply to {self.name!r} models; call predict().")

    def run(self, model: nn.Module, items: list, options: dict[str, Any], limits: InputLimits) -> dict[str, Any]:
        """Predictions for raw `items` when the task is not `batchable` (one model call per item, or a
        generation loop): {"predictions": [...], ...}. `options` are already checked."""
        raise ConfigError(f"{self.name!r} predicts batch by batch: prepare, infer, decode.")

    def decode_step(self, output: Tensor, vocab=None, top_k: int | None = None) -> dict[str, Any]:
        """A stream's reply for its latest step from the model's `output` (K,) for it: the most likely class
        and the `top_k` most likely classes' probabilities (all when None). `vocab`: the run's vocabulary,
        for token outputs."""
        probs = output.float().softmax(-1).tolist()
        names = self.info.class_names
        return {"prediction": names[max(range(len(probs)), key=probs.__getitem__)],
                "probabilities": top_probabilities(probs, names, top_k)}

    def fits(self, model: nn.Module) -> bool:
        """Whether `model`, of a topology this task takes, also gives the output it reads (default: yes;
        e.g. detection needs a dense detector's heads, not any per-pixel model)."""
        return True

    def check_split(self, split: Split, name: str) -> None:
        """Raise DataError if `split`'s targets cannot be used by this task. Default: accept."""

    def sampler(self, n: int, batch_size: int, lengths: Tensor | None, *, seed: int, rank: int = 0, world_size: int = 1):
        """The training batch order: an iterable of index tensors with `set_epoch(e)` and `len()`.
        Default: shuffled, length-bucketed batches (`gridseq.data.samplers.BatchSampler`)."""
        from gridseq.data.samplers import BatchSampler

        return BatchSampler(n, batch_size, lengths=lengths, shuffle=True, seed=seed, rank=rank, world_size=world_size)

    def eval_order(self, split: Split, batch_size: int):
        """Index batches for evaluation. Default: sorted by length, so variable-length batches
        carry little padding (metrics ignore order)."""
        order = torch.argsort(split.lengths, stable=True) if split.lengths is not None else torch.arange(len(split))
        return [index for index in order.split(batch_size) if len(index)]

    def reset(self) -> None:
        """Forget any state carried between batches (stateful tasks: a language model's hidden
        state); the trainer calls it at the start of every epoch and every evaluation."""

    def baselines(self, split: Split) -> dict[str, dict[str, float]]:
        """Metrics of reference predictors that need no model (e.g. forecasting's naive and
        seasonal-naive), by name, on `split`; `fit` stores them under "baselines" in metrics.json.
        Default: none."""
        return {}

    def monitor(self, name: str) -> None:
        """Make the metric `name` the one that picks the best epoch and drives early stopping (`fit`'s
        `monitor`): smaller is better for the names in `LOWER_IS_BETTER`, larger for any other."""
        if name != self.primary:
            self.primary, self.higher_is_better = name, name not in LOWER_IS_BETTER

    def is_better(self, value: float, best: float | None) -> bool:
        """Whether `value` of the primary metric beats `best` (None = nothing yet); NaN never does."""
        if math.isnan(value):
            return False
        if best is None:
            return True
        return value > best if self.higher_is_better else value < best

    def describe(self) -> dict[str, Any]:
        """The JSON-able summary stored in a run directory's config.json."""
        return {"name": self.name, "primary": self.primary, "higher_is_better": self.higher_is_better}


# metrics (of any task) where smaller is better; `Task.monitor` reads the direction of a monitored metric here
LOWER_IS_BETTER = frozenset({"loss", "mse", "rmse", "mae", "mase", "smape", "cer", "wer", "bits_per_char", "perplexity",
                             "fid"})

_tasks: dict[str, type[Task]] = {}


def register(task_cls: type[Task]) -> type[Task]:
    """Register a Task subclass under its `name` (usable as a class decorator)."""
    if task_cls.name in _tasks:
        _logger.warning("overwriting task %r with %s", task_cls.name, task_cls.__qualname__)
    _tasks[task_cls.name] = task_cls
    return task_cls


def names() -> list[str]:
    """All registered task names, sorted."""
    return sorted(_tasks)


def task_class(name: str | None) -> type[Task] | None:
    """The registered Task class `name` (its declarations, without building it for a dataset), or None."""
    return _tasks.get(name) if isinstance(name, str) else None


def streaming(mode: str) -> list[str]:
    """The registered tasks whose runs stream by `mode` ("steps", "frames" or "audio"; see `Task.streams`), sorted."""
    return [n for n in names() if mode in _tasks[n].streams]


def get(name: str, info: DatasetInfo | None = None) -> Task:
    """The task `name` for a dataset with `info`; ConfigError naming the valid tasks otherwise."""
    if name not in _tasks:
        raise ConfigError(f"unknown task {name!r}.{did_you_mean(name, _tasks)} Known tasks: {', '.join(names())}.")
    return _tasks[name](info)


def top_probabilities(probs: list[float], names, k: int | None) -> dict[str, float]:
    """{class: probability} for the k most likely classes (all when k is None), most likely first."""
    order = sorted(range(len(probs)), key=lambda j: -probs[j])[: k or len(probs)]
    return {names[j]: round(probs[j], 6) for j in order}
