"""Dotted config overrides on the command line, minGPT-style: `--model.hidden_size=256`,
`--train.lr=3e-4`, `--data.label_column=species`.

A value is parsed as JSON when it is valid JSON (`64`, `0.1`, `true`, `[3, 5]`, `null`) and is kept as a
string otherwise (`--model.mode=gru`); Python spellings `True`/`False`/`None` are accepted too. Keys are
checked before anything runs: an unknown key fails with the closest valid one, and a value of the wrong
type for a model config field fails with the expected type.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from typing import Any

from gridseq._validation import did_you_mean
from gridseq.errors import ConfigError

SECTIONS = ("model", "train", "data")
_PYTHON_LITERALS = {"True": True, "False": False, "None": None}


def split_overrides(argv: list[str]) -> tuple[list[str], dict[str, str]]:
    """Pull `--a.b=VALUE` and `--a.b VALUE` out of `argv`.

    Returns:
        (the other arguments in order, {"a.b": "VALUE"} with the raw string values). Arguments after a
        bare `--` are left alone.

    Example:
        >>> split_overrides(["train", "digits", "--model.hidden_size=8", "--epochs", "2"])
        (['train', 'digits', '--epochs', '2'], {'model.hidden_size': '8'})
    """
    rest: list[str] = []
    found: dict[str, str] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            rest.extend(argv[i:])
            break
        name = arg[2:].split("=", 1)[0] if arg.startswith("--") else ""
        if "." not in name:
            rest.append(arg)
            i += 1
            continue
        if "=" in arg:
            value = arg.split("=", 1)[1]
        elif i + 1 < len(argv) and not argv[i + 1].startswith("--"):
            i += 1
            value = argv[i]
        else:
            raise ConfigError(f"--{name} needs a value: write --{name}=VALUE.")
        found[name] = value
        i += 1
    return rest, found


def parse_value(text: str) -> Any:
    """`text` as JSON if it parses, `True`/`False`/`None` as Python spells them, else the string itself."""
    if text in _PYTHON_LITERALS:
        return _PYTHON_LITERALS[text]
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def resolve(raw: dict[str, str], *, model_cls_config: type, train_keys: list[str]) -> dict[str, dict[str, Any]]:
    """Check and parse raw overrides into sections.

    Args:
        raw: {"model.hidden_size": "64", ...} as returned by `split_overrides`.
        model_cls_config: the model's config dataclass; its fields are the valid "model." keys.
        train_keys: the valid "train." keys (keyword arguments of `gridseq.train.fit`).
    Returns:
        {"model": {...}, "train": {...}, "data": {...}} with parsed, type-checked values. "data." keys are
        passed to the dataset loader, which checks them.
    Raises:
        ConfigError: "Unknown config key: 'model.hiden_size'. Did you mean 'model.hidden_size'?" or a
            value of the wrong type.
    """
    fields = {f.name: f for f in dataclasses.fields(model_cls_config)}
    valid = [f"model.{f}" for f in fields] + [f"train.{k}" for k in train_keys]
    out: dict[str, dict[str, Any]] = {s: {} for s in SECTIONS}
    for key, text in raw.items():
        section, _, name = key.partition(".")
        known = (section == "model" and name in fields) or (section == "train" and name in train_keys)
        if not known and not (section == "data" and name and "." not in name):
            raise ConfigError(
                f"Unknown config key: {key!r}.{did_you_mean(key, valid)} Valid keys: {', '.join(valid)}, "
                f"or data.OPTION for the dataset loader."
            )
        value = parse_value(text)
        if section == "model":
            try:
                value = check_type(model_cls_config, name, value)
            except ConfigError as first:
                if value == text:
                    raise
                try:  # a str field given "123": keep the text
                    value = check_type(model_cls_config, name, text)
                except ConfigError:
                    raise first from None
        out[section][name] = value
    return out


def check_type(config_cls: type, name: str, value: Any) -> Any:
    """`value` checked (and list→tuple, int→float converted) against the annotation of field `name`.

    Range checks stay with the config's own `__post_init__`; this only catches e.g. a string where an
    int belongs, which the config may not check (a bool field given "yes").
    """
    try:
        hint = typing.get_type_hints(config_cls)[name]
    except Exception:  # an annotation that cannot be evaluated: leave it to the config
        return value
    ok, converted = _matches(hint, value)
    if not ok:
        raise ConfigError(
            f"model.{name} must be {_describe(hint)}, got {value!r}; e.g. --model.{name}={_example(hint)}."
        )
    return converted


def _matches(hint: Any, value: Any) -> tuple[bool, Any]:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True, value
    if origin in (typing.Union, types.UnionType):
        for arm in args:
            ok, converted = _matches(arm, value)
            if ok:
                return True, converted
        return False, value
    if hint is type(None):
        return value is None, value
    if origin is typing.Literal:
        return value in args, value
    if hint is bool:
        return isinstance(value, bool), value
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return ok, float(value) if ok else value
    if hint is str:
        return isinstance(value, str), value
    if origin in (tuple, list):
        if origin is tuple and args and args[-1] is not Ellipsis:  # fixed length, e.g. tuple[int, int]
            if not isinstance(value, (list, tuple)) or len(value) != len(args):
                return False, value
            item_hints = list(args)
        else:
            item = args[0] if args else Any
            if not isinstance(value, (list, tuple)):
                # one scalar for a variable-length tuple: configs broadcast it (check_int_tuple does)
                return _matches(item, value)[0], value
            item_hints = [item] * len(value)
        parts = [_matches(h, v) for h, v in zip(item_hints, value)]
        if not all(ok for ok, _ in parts):
            return False, value
        converted = [c for _, c in parts]
        return True, tuple(converted) if origin is tuple else converted
    return True, value  # an annotation we do not model (dict, a class): the config checks it


def _describe(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in args)
    if origin is typing.Literal:
        return "one of " + ", ".join(map(repr, args))
    if origin in (tuple, list):
        plural = {bool: "booleans", int: "ints", float: "numbers", str: "strings"}
        return "a list of " + (plural.get(args[0], "values") if args else "values")
    return {bool: "true or false", int: "an int", float: "a number", str: "a string", type(None): "null"}.get(hint, str(hint))


def _example(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return _example(next(a for a in args if a is not type(None)))
    if origin is typing.Literal:
        return str(args[0])
    if origin in (tuple, list):
        return "[3,5]"
    return {bool: "true", int: "64", float: "0.1", str: "NAME"}.get(hint, "VALUE")
