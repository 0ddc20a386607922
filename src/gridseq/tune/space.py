"""Search spaces: what `gridseq tune` varies, per model family, and how a file changes it.

A space maps a setting's dotted name — `train.KEY` (a `gridseq.train.fit` argument) or `model.FIELD` (a
model config field) — to a distribution:

    {"type": "float", "low": 1e-4, "high": 3e-2, "log": true}    # continuous, optionally log-scaled
    {"type": "int", "low": 1, "high": 3}                         # integers (optional "step", "log")
    {"type": "categorical", "choices": [32, 64, 128]}            # one of the choices (lists allowed: [[32, 64], [32, 64, 128]])

The default space (`default_space`) offers the training settings every model shares (learning rate,
weight decay, schedule, batch size) and, for each model, the fields its config has among width, depth,
direction, dropout and pooling; a field the model lacks is never offered. A space file (JSON, or YAML
with PyYAML installed) is merged over the default key by key: an entry adds or replaces a setting, a
plain value (`"train.epochs": 50`) fixes it for every trial, and `null` removes it from the search.

    >>> space = default_space("lstm")
    >>> space["model.hidden_size"]["choices"]
    [32, 64, 128, 256]
    >>> "model.channels" in space
    False
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

from gridseq.errors import ConfigError

# shared by every model: the optimiser's settings
_TRAIN = {
    "train.lr": {"type": "float", "low": 1e-4, "high": 3e-2, "log": True},
    "train.weight_decay": {"type": "float", "low": 1e-6, "high": 1e-1, "log": True},
    "train.scheduler": {"type": "categorical", "choices": ["none", "cosine", "onecycle"]},
    "train.batch_size": {"type": "categorical", "choices": [16, 32, 64, 128]},
}

# model config fields → their range; offered only to models whose config has the field. `channels`
# differs by family (a tuple of stage widths for CNNs, one width for the TCN), so it is keyed by model.
_MODEL = {
    "hidden_size": {"type": "categorical", "choices": [32, 64, 128, 256]},
    "num_layers": {"type": "int", "low": 1, "high": 3},
    "bidirectional": {"type": "categorical", "choices": [False, True]},
    "dropout": {"type": "float", "low": 0.0, "high": 0.5},
    "pooling": {"type": "categorical", "choices": ["last", "mean", "max"]},
    "hidden": {"type": "categorical", "choices": [64, 128, 256]},
    "embedding_dim": {"type": "categorical", "choices": [32, 64, 128]},
}
_CHANNELS = {
    "cnn": [[16, 32], [32, 64], [32, 64, 128], [64, 128, 256]],
    "frame-cnn": [[16, 32], [32, 64], [32, 64, 128]],
    "resnet": [[16, 32, 64, 128], [32, 64, 128, 256], [64, 128, 256, 512]],
    "resnet1d": [[32, 64, 64], [64, 128, 128], [128, 256, 256]],
    "lstm-fcn": [[64, 128, 64], [128, 256, 128]],
    "tcn": [32, 64, 128],
}
_EXTRA = {
    "tcn": {"model.num_levels": {"type": "int", "low": 2, "high": 6},
            "model.kernel_size": {"type": "categorical", "choices": [3, 5, 7]}},
    "mlp": {"model.hidden": {"type": "categorical", "choices": [[128], [256, 256], [512, 256]]}},
    "resnet": {"model.blocks": {"type": "int", "low": 1, "high": 2}},
}
# fields that exist in a config but are not searched by default for that model: the LSTM-FCN's dropout
# is the paper's 0.8, far outside the others' range
_SKIP = {"lstm-fcn": {"dropout"}}
# families whose dropout acts only between stacked recurrent layers (torch.nn.LSTM's own dropout): with one
# layer it does nothing (and torch warns), so a trial samples it only when its num_layers is above 1 and runs
# with it off otherwise. crnn, crnn-ctc, seq2seq and the captioner also drop frame vectors, embeddings or the
# head's input, so their dropout counts with one layer too.
_STACKED_ONLY = {"rnn": {"model.dropout"}, "lstm": {"model.dropout"}, "gru": {"model.dropout"}}
OFF = 0.0  # the value a stacked-only setting takes in a one-layer trial (dropout off)

TYPES = ("float", "int", "categorical")


def default_space(model: str, *, fields: set[str] | None = None) -> dict[str, dict[str, Any]]:
    """The default search space for `model` (a registered name).

    Args:
        model: the model's registered name (its family decides the `channels` choices).
        fields: the model config's field names; None = read them from the registry.
    """
    if fields is None:
        import dataclasses

        from gridseq import models

        fields = {f.name for f in dataclasses.fields(models.entry(model).config_cls)}
    family = _family(model)
    space = copy.deepcopy(_TRAIN)
    for name, dist in _MODEL.items():
        if name in fields and name not in _SKIP.get(family, ()):
            space[f"model.{name}"] = copy.deepcopy(dist)
    if "channels" in fields and family in _CHANNELS:
        space["model.channels"] = {"type": "categorical", "choices": copy.deepcopy(_CHANNELS[family])}
    space.update(copy.deepcopy(_EXTRA.get(family, {})))
    return {k: v for k, v in space.items() if k.split(".", 1)[1] in fields or k.startswith("train.")}


def stacked_only(model: str) -> set[str]:
    """The settings of `model` that act only between stacked layers: a trial samples them only when its
    `model.num_layers` is above 1, and otherwise runs them at `OFF` (recorded in its "inactive" user
    attribute). {"model.dropout"} for rnn, lstm and gru; empty for every other family.

        >>> sorted(stacked_only("lstm")), sorted(stacked_only("crnn"))
        (['model.dropout'], [])
    """
    return set(_STACKED_ONLY.get(_family(model), ()))


def _family(model: str) -> str:
    if model in ("resnet18", "resnet34"):
        return "resnet"
    return model


def load_space_file(path: str | os.PathLike) -> dict[str, Any]:
    """The entries of a JSON or YAML space file (not yet merged or checked).

    Raises:
        ConfigError: the file is missing, unreadable, not a mapping, or YAML without PyYAML installed.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read the search-space file {os.fspath(path)}: {e.strerror or e}; give a JSON or YAML file "
                          f"(see docs/tune.md).") from e
    if p.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise ConfigError(f"{os.fspath(path)} is YAML, which needs PyYAML: pip install 'gridseq[tune]' "
                              f"(or write the space as JSON).") from None
        try:
            entries = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ConfigError(f"{os.fspath(path)} is not valid YAML: {e}") from None
    else:
        try:
            entries = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"{os.fspath(path)} is not valid JSON: {e.msg} at line {e.lineno}, column {e.colno}.") from None
    if not isinstance(entries, dict):
        raise ConfigError(f"{os.fspath(path)} must hold a mapping of settings to ranges, e.g. "
                          f'{{"train.lr": {{"type": "float", "low": 1e-4, "high": 1e-2, "log": true}}}}; got {type(entries).__name__}.')
    return entries


def merge(space: dict[str, Any], entries: dict[str, Any], *, fields: set[str], train_keys: set[str], where: str = "the space") -> tuple[dict, dict]:
    """`space` with `entries` merged over it, checked; returns (the search space, the fixed settings).

    An entry that is a mapping with "type" is a distribution, null removes the setting, any other value
    fixes it for every trial.

    Raises:
        ConfigError: an unknown setting or a malformed distribution (named, with what was expected).
    """
    space = dict(space)
    fixed: dict[str, Any] = {}
    for key, value in entries.items():
        check_key(key, fields=fields, train_keys=train_keys, where=where)
        space.pop(key, None)
        if value is None:
            continue
        if isinstance(value, dict) and "type" in value:
            space[key] = check_distribution(key, value, where=where)
        else:
            fixed[key] = value
    return space, fixed


def check_key(key: str, *, fields: set[str], train_keys: set[str], where: str) -> None:
    from gridseq._validation import did_you_mean

    section, _, name = key.partition(".")
    known = {"train": train_keys, "model": fields}.get(section)
    if known is None or not name:
        raise ConfigError(f"{where}: setting {key!r} must be 'train.KEY' or 'model.FIELD' (e.g. 'train.lr', 'model.hidden_size').")
    if name not in known:
        what = "a field of this model's config" if section == "model" else "a training setting (a gridseq.train.fit argument)"
        raise ConfigError(f"{where}: {key!r} is not {what}.{did_you_mean(name, sorted(known))} Known: {', '.join(sorted(known))}.")


def check_distribution(key: str, dist: dict[str, Any], *, where: str = "the space") -> dict[str, Any]:
    """`dist` checked (see the module docstring for the forms)."""
    kind = dist.get("type")
    if kind not in TYPES:
        raise ConfigError(f"{where}: {key!r} has type {kind!r}; expected one of {', '.join(TYPES)}.")
    allowed = {"float": {"type", "low", "high", "log", "step"}, "int": {"type", "low", "high", "log", "step"},
               "categorical": {"type", "choices"}}[kind]
    unknown = set(dist) - allowed
    if unknown:
        raise ConfigError(f"{where}: {key!r} ({kind}) does not take {', '.join(sorted(unknown))}; it takes {', '.join(sorted(allowed - {'type'}))}.")
    if kind == "categorical":
        choices = dist.get("choices")
        if not isinstance(choices, list) or not choices:
            raise ConfigError(f"{where}: {key!r} needs a non-empty list of choices, got {choices!r}.")
        return {"type": kind, "choices": list(choices)}
    low, high = dist.get("low"), dist.get("high")
    number = int if kind == "int" else (int, float)
    if not all(isinstance(v, number) and not isinstance(v, bool) for v in (low, high)) or low > high:
        raise ConfigError(f"{where}: {key!r} needs numbers low <= high{' (integers)' if kind == 'int' else ''}, got low={low!r}, high={high!r}.")
    if dist.get("log") and low <= 0:
        raise ConfigError(f"{where}: {key!r} is log-scaled, so low must be > 0, got {low!r}.")
    if dist.get("log") and dist.get("step") is not None:
        raise ConfigError(f"{where}: {key!r} cannot have both log and step.")
    return dict(dist)


def suggest(trial, space: dict[str, dict[str, Any]], *, stacked: set[str] | frozenset = frozenset()) -> dict[str, Any]:
    """One value per setting of `space` from an Optuna trial; list-valued choices come back as lists.

    Args:
        stacked: settings that act only between stacked layers (`stacked_only`). With `model.num_layers`
            in `space` it is drawn first; a trial with one layer does not sample them (they are not in its
            `params`) but gets them at `OFF`, recorded in its "inactive" user attribute.
    """
    values: dict[str, Any] = {}
    inactive = {}
    layers = "model.num_layers"
    for key, dist in space.items():
        if key in values:
            continue
        if key in stacked and layers in space:
            if layers not in values:  # define-by-run: the depth decides whether this setting exists
                values[layers] = _suggest(trial, layers, space[layers])
            if values[layers] <= 1:
                values[key] = inactive[key] = OFF
                continue
        values[key] = _suggest(trial, key, dist)
    if inactive:
        trial.set_user_attr("inactive", inactive)
    return values


def _suggest(trial, key: str, dist: dict[str, Any]) -> Any:
    if dist["type"] == "float":
        return trial.suggest_float(key, dist["low"], dist["high"], log=bool(dist.get("log")), step=dist.get("step"))
    if dist["type"] == "int":
        return trial.suggest_int(key, dist["low"], dist["high"], log=bool(dist.get("log")), step=dist.get("step") or 1)
    # Optuna stores categorical choices as None/bool/int/float/str: lists go by their JSON text
    labels = [label(c) for c in dist["choices"]]
    return _unlabel(trial.suggest_categorical(key, labels))


def trial_settings(trial) -> dict[str, Any]:
    """A trial's searched settings: its `params` decoded, and the settings it ran with off (`suggest`)."""
    return {**decode_params(trial.params), **trial.user_attrs.get("inactive", {})}


def decode_params(params: dict[str, Any]) -> dict[str, Any]:
    """A finished trial's `params` as settings (list choices decoded from their JSON text)."""
    return {k: _unlabel(v) for k, v in params.items()}


def label(choice: Any) -> Any:
    """How Optuna stores a categorical choice: lists and mappings by their JSON text."""
    return json.dumps(list(choice) if isinstance(choice, tuple) else choice) if isinstance(choice, (list, tuple, dict)) else choice


def contains(dist: dict[str, Any], value: Any) -> bool:
    """Whether `value` is one `dist` can produce (bools never count as numbers)."""
    if dist["type"] == "categorical":
        return any(type(value) is type(c) and value == c for c in dist["choices"])
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (dist["type"] == "int" and not isinstance(value, int)):
        return False
    return dist["low"] <= value <= dist["high"]


def _unlabel(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in "[{":
        return json.loads(value)
    return value


def split_settings(settings: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Dotted settings → (fit keyword arguments, model config fields); list values of model fields become tuples."""
    train = {k.split(".", 1)[1]: v for k, v in settings.items() if k.startswith("train.")}
    model = {k.split(".", 1)[1]: tuple(v) if isinstance(v, list) else v for k, v in settings.items() if k.startswith("model.")}
    return train, model
