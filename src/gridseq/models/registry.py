"""The model registry: names → (model class, config class, defaults), so the CLI and saved configs build
models by name.

A model family is a `torch.nn.Module` whose constructor takes one frozen config dataclass
(`Model.Config`) that validates itself in `__post_init__`. Each registered name is a family plus
default arguments, e.g. "lstm" = RNNModel with mode="lstm".
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from gridseq._validation import did_you_mean
from gridseq.constants import KINDS
from gridseq.errors import ConfigError

_logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelEntry:
    """One registered model name.

    Args:
        name: the registry name, e.g. "lstm".
        model_cls: the nn.Module family; its constructor takes `model_cls.Config`.
        description: one line for `gridseq models`.
        kinds: data kinds the model accepts ("image", "sequence", "tokens", "video", "series").
        defaults: arguments that make this name what it is (e.g. mode="gru").
        from_info: maps a dataset's `DatasetInfo` to the constructor arguments that depend on the data
            (input size or shape, number of classes, vocabulary), so `create_for(name, info)` works.
    """

    name: str
    model_cls: type[nn.Module]
    description: str
    kinds: tuple[str, ...]
    defaults: dict[str, Any] = field(default_factory=dict)
    from_info: Callable[[Any], dict[str, Any]] | None = None

    @property
    def config_cls(self) -> type:
        return self.model_cls.Config


_entries: dict[str, ModelEntry] = {}


def register(
    name: str,
    model_cls: type[nn.Module],
    *,
    description: str,
    kinds: tuple[str, ...],
    defaults: dict[str, Any] | None = None,
    from_info: Callable[[Any], dict[str, Any]] | None = None,
) -> ModelEntry:
    """Register `name`; a second registration of the same name replaces the first, with a warning.

    Raises:
        ConfigError: if `kinds` holds an unknown data kind or `model_cls` has no `Config` dataclass
            (caught when the family module is imported, not when a user first builds the model).
    """
    bad = [k for k in kinds if k not in KINDS]
    if isinstance(kinds, str) or bad:
        raise ConfigError(f"register({name!r}): kinds must be a tuple drawn from {', '.join(KINDS)}, got {kinds!r}.")
    if not dataclasses.is_dataclass(getattr(model_cls, "Config", None)):
        raise ConfigError(f"register({name!r}): {model_cls.__qualname__} needs a nested dataclass `Config` (its constructor's one argument).")
    if name in _entries:
        _logger.warning("overwriting model %r in the registry with %s", name, model_cls.__qualname__)
    entry = ModelEntry(name, model_cls, description, tuple(kinds), dict(defaults or {}), from_info)
    _entries[name] = entry
    return entry


def registered_name(model: nn.Module) -> str | None:
    """The registered name `create()` gave `model` (e.g. "lstm"), or None for a module it did not build."""
    return getattr(model, "gridseq_name", None)  # set by create(); the one place that reads it back


def model_name(model: nn.Module) -> str:
    """The registered name `create()` gave `model` (e.g. "lstm"), or its class name for a plain nn.Module."""
    return registered_name(model) or type(model).__name__


def names() -> list[str]:
    """All registered model names, sorted."""
    return sorted(_entries)


def entry(name: str) -> ModelEntry:
    """The registry entry for `name`; ConfigError naming the valid choices if there is none."""
    # exact name first, so families may register mixed-case names; then case-insensitively ("LSTM")
    key = name
    if key not in _entries and isinstance(name, str):
        key = next((n for n in _entries if n.lower() == name.lower()), name)
    if key not in _entries:
        raise ConfigError(
            f"unknown model {name!r}.{did_you_mean(name, _entries)} Valid models: {', '.join(names())} "
            f"(see gridseq.models.names() or `gridseq models`)."
        )
    return _entries[key]


def build_config(name: str, **kwargs):
    """The validated config for `name` with `kwargs` over the entry's defaults (None values dropped)."""
    e = entry(name)
    fields = {f.name: f for f in dataclasses.fields(e.config_cls)}
    params = {**e.defaults, **{k: v for k, v in kwargs.items() if v is not None}}
    unknown = [k for k in params if k not in fields]
    if unknown:
        listed = ", ".join(f"{k!r}" for k in unknown)
        hints = "".join(did_you_mean(k, fields) for k in unknown)
        plural = "s" if len(unknown) > 1 else ""
        raise ConfigError(f"unknown argument{plural} {listed} for model {e.name!r}.{hints} Valid arguments: {', '.join(fields)}.")
    required = [
        f for f, spec in fields.items()
        if spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING and f not in params
    ]
    if required:
        raise ConfigError(f"model {e.name!r} needs {', '.join(required)}; pass {required[0]}=... to create().")
    return e.config_cls(**params)


def create(name: str, **kwargs) -> nn.Module:
    """Build the registered model `name`; keyword arguments override its defaults.

    Example:
        >>> import torch
        >>> create("cnn", input_shape=(1, 28, 28), num_classes=10)(torch.zeros(2, 1, 28, 28)).shape
        torch.Size([2, 10])
    """
    config = build_config(name, **kwargs)
    model = entry(name).model_cls(config)
    model.gridseq_name = entry(name).name  # what save() writes, so load() rebuilds the same thing
    return model


def per_step_for(info) -> dict:
    """`{"per_step": True}` for datasets whose targets are scored at every step (`info.targets.per_step`: tagging,
    language modelling, CTC frames), so the model is many-to-many; else {} (for `from_info`)."""
    return {"per_step": True} if info.targets.per_step else {}


def create_for(name: str, info, **overrides) -> nn.Module:
    """Build `name` for a dataset: its `info` fills input size/shape and classes; `overrides` win.

    Raises:
        ConfigError: `name` does not take the dataset's kind of data; the message names the models that do
            (`gridseq.tasks.matching.create_for` names only those that also fit the dataset's task).
    """
    e = entry(name)
    if info.kind not in e.kinds:
        raise ConfigError(wrong_kind(e, info, [n for n in names() if info.kind in _entries[n].kinds]))
    from_data = e.from_info(info) if e.from_info else {}
    return create(name, **{**from_data, **overrides})


def wrong_kind(e: ModelEntry, info, suitable: list[str]) -> str:
    """The message refusing model `e` for a dataset of another kind of data, naming the `suitable` models."""
    return (f"model {e.name!r} takes {' or '.join(e.kinds)} data, but dataset {info.name!r} is {info.kind} data; "
            f"models for it: {', '.join(suitable) or 'none registered'}.")
