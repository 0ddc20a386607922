"""Save and load models as data, not code: `config.json` (registry name + constructor arguments +
format version) and `model.safetensors`. Nothing here unpickles.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_model
from torch import nn

from gridseq._atomic import atomic_write, atomic_write_text
from gridseq.errors import CheckpointError, ConfigError
from gridseq.models import registry
from gridseq.models.traits import config_of

FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


def model_spec(model: nn.Module) -> dict:
    """`{"name": ..., "config": {...}}` for a model built by `gridseq.models.create`."""
    name, config = registry.registered_name(model), config_of(model)
    if name is None or config is None:
        raise ConfigError(
            f"{type(model).__name__} was not built by gridseq.models.create(); only registered models can be "
            f"saved as config + weights (for other modules use safetensors.torch.save_model directly)."
        )
    return {"name": name, "config": dataclasses.asdict(config)}


def save(model: nn.Module, directory: str | os.PathLike, *, extra: dict | None = None) -> Path:
    """Write `config.json` and `model.safetensors` for `model` into `directory` (created if needed).

    Args:
        model: a model built by `gridseq.models.create`.
        directory: the run or model directory.
        extra: more top-level sections for config.json (e.g. "data", "train"); "model" is reserved.
    Returns:
        The directory, as a Path.
    """
    from gridseq import __version__

    directory = Path(directory)
    header = {"format_version": FORMAT_VERSION, "gridseq_version": __version__, "torch_version": torch.__version__}
    # extra (e.g. a config read back from an earlier run) must not relabel what this writer wrote
    config = {**header, **{k: v for k, v in (extra or {}).items() if k not in header}, "model": model_spec(model)}
    try:
        text = json.dumps(config, indent=2, allow_nan=False) + "\n"
    except (TypeError, ValueError) as e:
        raise ConfigError(
            f"cannot save {directory / CONFIG_FILE}: the model config and `extra` must hold JSON-able values only "
            f"(str, int, float, bool, None, lists, dicts; no NaN) — {e}."
        ) from None
    # everything that can fail on bad input fails above, before either file is replaced
    atomic_write(directory / WEIGHTS_FILE, lambda tmp: save_model(model, tmp))
    atomic_write_text(directory / CONFIG_FILE, text)
    return directory


def read_config(directory: str | os.PathLike) -> dict:
    """The parsed `config.json` of a saved model or run directory; CheckpointError if unusable."""
    path = Path(directory) / CONFIG_FILE
    if not Path(directory).is_dir():
        raise CheckpointError(f"{directory} is not a directory; expected a saved model or run directory holding {CONFIG_FILE} and {WEIGHTS_FILE}.")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{path} is missing; a saved model directory holds {CONFIG_FILE} and {WEIGHTS_FILE} (written by gridseq.save or gridseq train).") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path} is not valid JSON ({e}); the file is corrupt — re-save the model.") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{path} holds a JSON {type(config).__name__}, expected an object; it was not written by gridseq.save.")
    version = config.get("format_version")
    if version != FORMAT_VERSION:
        newer = isinstance(version, int) and not isinstance(version, bool) and version > FORMAT_VERSION
        fix = "it was written by a newer gridseq: upgrade gridseq" if newer else "re-save the model with gridseq.save"
        raise CheckpointError(f"{path} has format_version {version!r}; this gridseq reads format_version {FORMAT_VERSION}: {fix}.")
    spec = config.get("model")
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str) or not isinstance(spec.get("config", {}), dict):
        raise CheckpointError(f"{path} has no 'model' section with a 'name' and a 'config' object; it was not written by gridseq.save.")
    return config


def load_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Tensors from a safetensors file; CheckpointError if it is missing or corrupt."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} is missing; expected the model weights written by gridseq.save.")
    try:
        return load_file(path)
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path} is corrupt or truncated ({e}); re-save the model or restore the file.") from None


def load_weights(model: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Load a safetensors file into `model`, strictly; CheckpointError naming any mismatch."""
    state = load_state_dict(path)
    expected = model.state_dict()
    # safetensors stores a tied tensor (e.g. shared embedding/output weights) under one name only
    for group in _tied_groups(expected):
        stored = next((k for k in group if k in state), None)
        for key in group:
            if stored is not None and key not in state:
                state[key] = state[stored]
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(v.shape)}" for k, v in expected.items() if k in state and state[k].shape != v.shape]
    if missing or unexpected or wrong:
        parts = [f"missing {missing[:5]}" if missing else "", f"unexpected {unexpected[:5]}" if unexpected else "", f"shape mismatch {wrong[:3]}" if wrong else ""]
        raise CheckpointError(f"{path} does not match the model in config.json: {'; '.join(p for p in parts if p)}.")
    model.load_state_dict(state, strict=True)
    return model


def _tied_groups(state: dict[str, torch.Tensor]) -> list[list[str]]:
    """Groups of state_dict names that are one tensor (same memory, shape and strides)."""
    groups: dict[tuple, list[str]] = {}
    for key, t in state.items():
        if t.device.type == "meta" or t.numel() == 0:
            continue
        where = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), t.stride(), t.dtype)
        groups.setdefault(where, []).append(key)
    return [g for g in groups.values() if len(g) > 1]


def load(directory: str | os.PathLike) -> nn.Module:
    """Rebuild a model saved by `gridseq.save` (or a `gridseq train` run directory), in eval mode."""
    config = read_config(directory)
    spec = config["model"]
    source = Path(directory) / CONFIG_FILE
    _check_size(spec, Path(directory) / WEIGHTS_FILE, source)
    try:
        model = registry.create(spec["name"], **spec.get("config", {}))
    except ConfigError as e:
        raise CheckpointError(f"{source} describes a model this gridseq cannot build: {e}") from None
    except (RuntimeError, MemoryError, TypeError, ValueError, OverflowError) as e:  # e.g. sizes no allocator serves
        raise CheckpointError(f"{source} describes a model that cannot be built ({type(e).__name__}: {str(e)[:200]}); "
                              f"the file is corrupt — restore it or re-save the model.") from None
    return load_weights(model, Path(directory) / WEIGHTS_FILE).eval()


def _check_size(spec: dict, weights: Path, source: Path) -> None:
    """CheckpointError when the model `spec` describes has more parameter bytes than the weights file holds (a
    corrupt config.json asking for a huge model), found on the meta device before any memory is allocated.
    Models that cannot be built on the meta device are not checked here (load_weights still compares shapes)."""
    if not weights.is_file():
        return
    try:
        with torch.device("meta"):
            skeleton = registry.create(spec["name"], **spec.get("config", {}))
    except Exception:  # noqa: BLE001 - only a pre-check: building for real below reports the error
        return
    needed = sum(p.numel() * p.element_size() for p in skeleton.parameters())
    if needed > weights.stat().st_size:
        load_state_dict(weights)  # a truncated or corrupt weights file is named as such first
        raise CheckpointError(f"{source} describes a model with {needed:,} bytes of parameters, but {weights} holds "
                              f"{weights.stat().st_size:,} bytes; one of the two files is corrupt or from another model.")
