"""Training checkpoints without pickle: tensors in safetensors, everything else in JSON.

A checkpoint is any nested structure of dicts, lists, tuples, numbers, strings and tensors (model and
optimizer state dicts, RNG states, counters, history). `save_checkpoint` splits it into one
safetensors file (the tensors, keyed by their path in the structure) and one JSON file (the structure
with each tensor replaced by `{"__tensor__": key}`), then commits both with a small `manifest.json`
holding their names and SHA-256 digests:

    run_dir/checkpoint/
        tensors-00000120-1a2b3c4d.safetensors
        state-00000120-1a2b3c4d.json
        manifest.json          written last, atomically: the commit point

Each write uses new file names, so until the new manifest replaces the old one the previous
checkpoint stays complete and loadable; a run killed mid-write resumes from the previous one.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

from gridseq._atomic import atomic_write, atomic_write_json, atomic_write_text, ensure_dir
from gridseq.errors import CheckpointError

FORMAT_VERSION = 1
MANIFEST = "manifest.json"


def _encode(obj: Any, path: str, tensors: dict[str, Tensor]) -> Any:
    """Replace tensors in `obj` by references, collecting them in `tensors` under `path`."""
    if isinstance(obj, Tensor):
        if path in tensors:  # {"a.b": t, "a": {"b": t}} would otherwise share a name
            path = f"{path}#{len(tensors)}"
        # clone: safetensors refuses views and shared storage (e.g. tied weights)
        tensors[path] = obj.detach().to("cpu", copy=True).contiguous()
        return {"__tensor__": path}
    if isinstance(obj, dict):
        if all(isinstance(k, str) and not k.startswith("__") for k in obj):
            return {k: _encode(v, f"{path}.{k}", tensors) for k, v in obj.items()}
        # non-string keys (optimizer state is keyed by parameter index) keep their type this way
        return {"__items__": [[k, _encode(v, f"{path}.{k}", tensors)] for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v, f"{path}.{i}", tensors) for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_encode(v, f"{path}.{i}", tensors) for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"a checkpoint can store tensors, dicts, lists, tuples, numbers and strings, not {type(obj).__name__} (at {path!r}).")


def _decode(obj: Any, tensors: dict[str, Tensor], source: Path) -> Any:
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            key = obj["__tensor__"]
            if key not in tensors:
                raise CheckpointError(f"{source} refers to tensor {key!r}, which its safetensors file lacks; the checkpoint is corrupt.")
            return tensors[key]
        if "__items__" in obj:
            return {k: _decode(v, tensors, source) for k, v in obj["__items__"]}
        if "__tuple__" in obj:
            return tuple(_decode(v, tensors, source) for v in obj["__tuple__"])
        return {k: _decode(v, tensors, source) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_decode(v, tensors, source) for v in obj]
    return obj


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync_dir(directory: Path) -> None:
    # make the renames themselves durable (a crash of the machine, not only of the process)
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_checkpoint(directory: str | os.PathLike, state: dict[str, Any], *, step: int) -> Path:
    """Write `state` as a new checkpoint in `directory`, replacing the previous one only once complete.

    Args:
        directory: the checkpoint folder (created if needed), e.g. `run_dir / "checkpoint"`.
        state: nested dicts/lists/tuples of tensors, numbers and strings.
        step: the global training step, used in the file names (for people reading the folder).
    Returns:
        The path of the new manifest.
    Raises:
        OutputError: the folder or a file cannot be written (disk full, read-only, ...); the previous
            checkpoint is still the committed one, and this write's files are removed.
    """
    directory = ensure_dir(directory)
    tensors: dict[str, Tensor] = {}
    structure = _encode(state, "state", tensors)
    stem = f"{step:08d}-{uuid.uuid4().hex[:8]}"
    tensor_file, state_file = f"tensors-{stem}.safetensors", f"state-{stem}.json"
    try:
        atomic_write(directory / tensor_file, lambda tmp: save_file(tensors, tmp))
        atomic_write_text(directory / state_file, json.dumps(structure) + "\n")
        manifest = {
            "format_version": FORMAT_VERSION,
            "step": step,
            "files": {"tensors": tensor_file, "state": state_file},
            "sha256": {tensor_file: _sha256(directory / tensor_file), state_file: _sha256(directory / state_file)},
        }
        atomic_write_json(directory / MANIFEST, manifest)
    except BaseException:
        # not committed: the old manifest still names the previous files; give a full disk its space back
        for name in (tensor_file, state_file):
            (directory / name).unlink(missing_ok=True)
        raise
    _fsync_dir(directory)
    # the new checkpoint is committed: drop the previous one and any leftovers of interrupted writes
    for old in directory.iterdir():
        if old.name not in (MANIFEST, tensor_file, state_file) and old.is_file():
            old.unlink(missing_ok=True)
    return directory / MANIFEST


def has_checkpoint(directory: str | os.PathLike) -> bool:
    """Whether `directory` holds a committed checkpoint (its manifest exists)."""
    return (Path(directory) / MANIFEST).is_file()


def load_checkpoint(directory: str | os.PathLike) -> dict[str, Any]:
    """Read the checkpoint in `directory` back into the structure given to `save_checkpoint`.

    Raises:
        CheckpointError: naming the file that is missing, truncated or corrupt. Nothing is modified,
            so the files stay as they are for inspection.
    """
    directory = Path(directory)
    manifest_path = directory / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        files, digests = manifest["files"], manifest["sha256"]
        tensor_file, state_file = directory / files["tensors"], directory / files["state"]
    except FileNotFoundError:
        raise CheckpointError(f"{manifest_path} is missing; {directory} holds no training checkpoint.") from None
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as e:
        raise CheckpointError(f"{manifest_path} is corrupt ({type(e).__name__}: {e}); the checkpoint cannot be read.") from None
    if manifest.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{manifest_path} has format_version {manifest.get('format_version')!r}; this gridseq reads {FORMAT_VERSION}.")
    for path in (tensor_file, state_file):
        if not path.is_file():
            raise CheckpointError(f"{path} is missing; the checkpoint in {directory} is incomplete.")
        if _sha256(path) != digests.get(path.name):
            raise CheckpointError(
                f"{path} is truncated or corrupt (its SHA-256 does not match {MANIFEST}); "
                f"restore the file or start the run again without resume."
            )
    try:
        tensors = load_file(tensor_file)
        structure = json.loads(state_file.read_text(encoding="utf-8"))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"cannot read the checkpoint in {directory} ({type(e).__name__}: {e}).") from None
    return _decode(structure, tensors, state_file)


def capture_rng() -> dict[str, Any]:
    """The states of every random generator training touches: torch (CPU, CUDA), NumPy, Python."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos), "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Put every random generator back to a state from `capture_rng` (a checkpoint's)."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(list(state["cuda"]))
