"""What a comparison runs: the model set, each model's settings and the training budget.

A `ModelSpec` is one row of the comparison: a label ("gru", "bigru", "logreg"), the registered model
it builds and the config overrides that make it that row. `default_models` picks a set by the data's
kind and task; `resolve_settings` merges, for each (dataset, model), the per-dataset training defaults
(`gridseq.defaults`, the same table `gridseq train` reads), the probe datasets' defaults below, and
the comparison's budget (`epochs` for every model, or `budget_seconds` of training per model).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from gridseq import defaults
from gridseq._validation import did_you_mean
from gridseq.errors import ConfigError

FAMILIES = ("baseline", "convolutional", "recurrent", "hybrid")


@dataclass(frozen=True)
class ModelSpec:
    """One model of a comparison.

    Args:
        label: the name shown in reports, unique within a comparison.
        model: the registered model it builds (see `gridseq.models.names()`).
        overrides: model config fields set on top of the defaults, e.g. {"bidirectional": True}.
        family: "baseline" (no spatial or temporal prior), "convolutional", "recurrent" or "hybrid";
            the claims card compares families. Default: from the registered model.
        tuned: dotted settings found by `gridseq tune` ({"train.lr": ..., "model.hidden_size": ...}),
            applied over the defaults table (an `epochs` budget and `overrides` still win). Default: none.
    """

    label: str
    model: str
    overrides: dict[str, Any] = field(default_factory=dict)
    family: str | None = None
    tuned: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.family is None:
            object.__setattr__(self, "family", family_of(self.model))
        if self.family not in FAMILIES:
            raise ConfigError(f"family must be one of {', '.join(FAMILIES)}, got {self.family!r}.")


_FAMILY = {"mlp": "baseline", "cnn": "convolutional", "fcn": "convolutional", "tcn": "convolutional",
           "resnet": "convolutional", "resnet18": "convolutional", "resnet34": "convolutional",
           "resnet1d": "convolutional", "rnn": "recurrent", "lstm": "recurrent", "gru": "recurrent",
           "lstm-fcn": "hybrid"}


def family_of(model: str) -> str:
    """The family of a registered model name; models gridseq does not know are asked what they hold."""
    if model in _FAMILY:
        return _FAMILY[model]
    from gridseq import models

    built = models.entry(model)  # ConfigError for an unknown name
    name = built.model_cls.__module__ + "." + built.model_cls.__qualname__
    if any(k in name.lower() for k in ("rnn", "lstm", "gru", "recurrent")):
        return "recurrent"
    return "convolutional" if "conv" in name.lower() or "cnn" in name.lower() else "baseline"


# labels that are a registered model plus overrides
ALIASES: dict[str, ModelSpec] = {
    "logreg": ModelSpec("logreg", "mlp", {"hidden": (), "dropout": 0.0}, "baseline"),
    "bigru": ModelSpec("bigru", "gru", {"bidirectional": True}),
    "bilstm": ModelSpec("bilstm", "lstm", {"bidirectional": True}),
}

# default model sets: by dataset first, then by (kind, task), then by kind
_DEFAULT_SETS: dict[str, tuple[str, ...]] = {
    # MNIST-1D: the paper's four models (logistic regression, MLP, CNN, GRU) plus the vanilla RNN and
    # the LSTM for the gradient-flow claim; the GRU's defaults there are already bidirectional (2x64)
    "mnist1d": ("logreg", "mlp", "cnn", "rnn", "lstm", "gru"),
    "mnist1d-shuffled": ("logreg", "mlp", "cnn", "rnn", "lstm", "gru"),
    "adding": ("mlp", "cnn", "tcn", "rnn", "lstm", "gru"),
    "copy": ("tcn", "fcn", "rnn", "lstm", "gru"),
}
_KIND_SETS: dict[str, tuple[str, ...]] = {
    "image": ("mlp", "cnn", "fcn", "rnn", "lstm", "gru"),  # recurrent models read the rows
    "sequence": ("mlp", "cnn", "fcn", "tcn", "rnn", "lstm", "gru", "bigru"),
    "series": ("mlp", "cnn", "fcn", "tcn", "rnn", "lstm", "gru", "bigru"),
    "tokens": ("rnn", "lstm", "gru", "bigru"),
}
_PER_STEP_SET = ("tcn", "fcn", "rnn", "lstm", "gru")  # tasks scored at every step need many-to-many models

# training settings of the probe datasets (not in gridseq.defaults: they exist for comparisons).
# Adam without weight decay at 1e-3 is the setting of the long-memory papers; clipping is automatic
# for recurrent models (norm 1).
PROBE_TRAIN: dict[str, dict[str, Any]] = {
    "adding": {"batch_size": 64, "lr": 1e-3, "optimizer": "adam", "weight_decay": 0.0, "scheduler": "none"},
    "copy": {"batch_size": 64, "lr": 1e-3, "optimizer": "adam", "weight_decay": 0.0, "scheduler": "none"},
}
# datasets that train with another dataset's defaults, so two comparisons differ only in the data
DEFAULTS_OF = {"mnist1d-shuffled": "mnist1d"}
PROBE_BUDGET_SECONDS = 90.0  # per model, length and seed, when neither epochs nor a budget is given

# published figures to print beside ours: dataset -> metric -> label -> value
REFERENCES: dict[str, dict[str, Any]] = {
    "mnist1d": {
        "source": "Greydanus 2020, \"Scaling down deep learning\" (MNIST-1D), test accuracy",
        "metric": "accuracy",
        "values": {"logreg": 0.32, "mlp": 0.68, "cnn": 0.94, "gru": 0.91},
    },
    "seq-mnist": {
        "source": "Bai, Kolter & Koltun 2018, \"An Empirical Evaluation of Generic Convolutional and Recurrent Networks\", "
                  "sequential MNIST, test accuracy",
        "metric": "accuracy",
        "values": {"tcn": 0.990, "gru": 0.962, "lstm": 0.872},
    },
    "pmnist": {
        "source": "Bai, Kolter & Koltun 2018, permuted sequential MNIST, test accuracy",
        "metric": "accuracy",
        "values": {"tcn": 0.972, "gru": 0.873, "lstm": 0.857},
    },
    "fashion-mnist": {
        "source": "the Fashion-MNIST benchmark table (zalandoresearch/fashion-mnist README): 2 Conv+pooling+BN, "
                  "ResNet18 with augmentation, GRU+SVM; test accuracy",
        "metric": "accuracy",
        "values": {"cnn": 0.934, "resnet": 0.949, "gru": 0.897},
    },
    "mnist1d-shuffled": {
        "source": "Greydanus 2020, MNIST-1D with shuffled positions, test accuracy",
        "metric": "accuracy",
        "values": {"mlp": 0.68, "cnn": 0.56, "gru": 0.57},
    },
}


def parse_models(names: str | list | tuple | None, *, dataset: str, kind: str, task: str) -> list[ModelSpec]:
    """ModelSpecs from labels ("cnn,gru", a list of labels or ModelSpecs), or the default set.

    Raises:
        ConfigError: an unknown label (with the closest registered name), or a label twice.
    """
    from gridseq import models

    if names is None:
        labels: list = list(default_models(dataset, kind, task))
    elif isinstance(names, str):
        labels = [n.strip() for n in names.split(",") if n.strip()]
    else:
        labels = list(names)
    if not labels:
        raise ConfigError("models is empty; name at least one, e.g. models='cnn,gru'.")
    specs = []
    for item in labels:
        if isinstance(item, ModelSpec):
            specs.append(item)
        elif item in ALIASES:
            specs.append(ALIASES[item])
        else:
            known = [*models.names(), *ALIASES]
            if item not in models.names():
                raise ConfigError(f"unknown model {item!r}.{did_you_mean(item, known)} Models: {', '.join(sorted(known))}.")
            specs.append(ModelSpec(item, models.entry(item).name))
    seen = set()
    for s in specs:
        if s.label in seen:
            raise ConfigError(f"model {s.label!r} is listed twice; each model appears once in a comparison.")
        seen.add(s.label)
    return specs


def _step_labels(task: str | None) -> bool:
    """Whether the task `task` declares one class per step (`Task.step_labels`)."""
    from gridseq import tasks

    declared = tasks.task_class(task)
    return declared is not None and declared.step_labels


def default_models(dataset: str, kind: str, task: str) -> tuple[str, ...]:
    """The default labels for a dataset: its own set, or one by task and kind."""
    if dataset.lower() in _DEFAULT_SETS:
        return _DEFAULT_SETS[dataset.lower()]
    if _step_labels(task):
        return _PER_STEP_SET
    return _KIND_SETS.get(kind, _KIND_SETS["sequence"])


@dataclass(frozen=True)
class Budget:
    """How long every model trains: the defaults table's epochs, `epochs` for all, or `seconds` each."""

    epochs: int | None = None
    seconds: float | None = None

    def __post_init__(self) -> None:
        if self.epochs is not None and self.seconds is not None:
            raise ConfigError("give epochs or budget_seconds, not both: one training budget for every model.")
        if self.epochs is not None and (isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or self.epochs < 1):
            raise ConfigError(f"epochs must be a positive int, got {self.epochs!r}.")
        if self.seconds is not None and (isinstance(self.seconds, bool) or not isinstance(self.seconds, (int, float)) or not self.seconds > 0):
            raise ConfigError(f"budget_seconds must be a positive number, got {self.seconds!r}.")

    @property
    def kind(self) -> str:
        return "epochs" if self.epochs is not None else "seconds" if self.seconds is not None else "defaults"

    def describe(self) -> str:
        if self.epochs is not None:
            return f"{self.epochs} epochs for every model"
        if self.seconds is not None:
            return f"{self.seconds:g} s of training per model and seed"
        return "each model's training defaults for this dataset (gridseq/defaults.py)"


def resolve_budget(dataset: str, epochs: int | None, seconds: float | None) -> Budget:
    """The budget asked for; probe datasets without one get `PROBE_BUDGET_SECONDS` per model."""
    if epochs is None and seconds is None and dataset.lower() in PROBE_TRAIN:
        return Budget(seconds=PROBE_BUDGET_SECONDS)
    return Budget(epochs, seconds)


# what makes a model emit one output per step, for tasks scored at every step (rnn and tcn read it
# from the dataset's info themselves)
PER_STEP_OVERRIDES: dict[str, dict[str, Any]] = {"fcn": {"head": "dense"}}


def resolve_settings(dataset: str, spec: ModelSpec, budget: Budget, task: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(fit keyword arguments, model config overrides) for `spec` on `dataset` (whose task is `task`).

    Precedence, highest first: the spec's overrides, the budget, the probe defaults, the defaults table.
    """
    from gridseq import models

    table = defaults.lookup(DEFAULTS_OF.get(dataset.lower(), dataset), spec.model)
    tuned_train = {k.split(".", 1)[1]: v for k, v in spec.tuned.items() if k.startswith("train.")}
    tuned_model = {k.split(".", 1)[1]: tuple(v) if isinstance(v, list) else v for k, v in spec.tuned.items() if k.startswith("model.")}
    train = {**table["train"], **PROBE_TRAIN.get(dataset.lower(), {}), **tuned_train}
    if budget.epochs is not None:
        train["epochs"] = budget.epochs
    fields = {f.name for f in dataclasses.fields(models.entry(spec.model).config_cls)}
    model_kw = {**{k: v for k, v in table["model"].items() if k in fields}, **tuned_model}
    if _step_labels(task):
        model_kw.update(PER_STEP_OVERRIDES.get(spec.model, {}))
    unknown = [k for k in spec.overrides if k not in fields]
    if unknown:
        raise ConfigError(f"{spec.label}: unknown argument {unknown[0]!r} for model {spec.model!r}.{did_you_mean(unknown[0], fields)}")
    model_kw.update(spec.overrides)
    return train, model_kw


def apply_tuned(specs: list[ModelSpec], tuned: dict[str, Any] | list | None, dataset: str) -> list[ModelSpec]:
    """`specs` with the settings of `gridseq tune` results: `tuned` maps a label to a tune output folder
    (or its best.json); a list of folders is matched to labels by the model each was tuned for.

    Raises:
        ConfigError: an unreadable best.json, one tuned for another model or dataset, or a label not compared.
    """
    from gridseq import recipe
    from gridseq.tune.report import read_best

    if not tuned:
        return specs
    pairs = list(tuned.items()) if isinstance(tuned, dict) else [(None, where) for where in tuned]
    by_label = {s.label: s for s in specs}
    out = dict(by_label)
    for label, where in pairs:
        best = read_best(where)
        label = label or best["model"]
        spec = by_label.get(label)
        if spec is None:
            raise ConfigError(f"tuned settings for {label!r} ({where}), but the comparison has no such model; models: "
                              f"{', '.join(by_label)}. Name it with --models, or give LABEL=DIR.")
        if best["model"] != spec.model:
            raise ConfigError(f"{where} was tuned for model {best['model']!r}, not {spec.model!r} ({label}).")
        if recipe.dataset_ref(str(best["dataset"])).lower() != recipe.dataset_ref(str(dataset)).lower():
            raise ConfigError(f"{where} was tuned on {best['dataset']!r}, not {dataset!r}: settings chosen on one dataset's "
                              f"validation split say nothing about another's.")
        params = dict(best["params"])
        if best.get("cv") and best.get("epochs"):
            params["train.epochs"] = best["epochs"]  # the epoch count cross-validation chose
        out[label] = dataclasses.replace(spec, tuned=params)
    return [out[s.label] for s in specs]
