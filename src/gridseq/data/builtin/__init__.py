"""The catalog of built-in datasets: names → loader functions plus static metadata.

A built-in is a function `loader(seed, view, **options) -> Dataset` decorated with `@register_dataset`,
which records what `gridseq datasets` shows (sizes, classes, kinds) without generating any data:

    @register_dataset("digits", kind="image", views=("image", "sequence"), sizes=(1294, 144, 359),
                      num_classes=10, description="1,797 real 8x8 handwritten digits (scikit-learn)")
    def digits(seed: int, view: str) -> Dataset: ...

Every module of this package (one per built-in or family, e.g. digits.py, ucr.py) is imported on first lookup, so `import gridseq`
stays fast. A module may register a whole family under one prefix (the UCR/UEA archive as `ucr/<name>`)
and a hint for names under that prefix that are not there (`register_hint`), e.g. which package to
install — gridseq never downloads a dataset.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gridseq._validation import did_you_mean
from gridseq.errors import DataError

_logger = logging.getLogger(__name__)



@dataclass(frozen=True)
class DatasetEntry:
    """One built-in dataset.

    Args:
        name: the catalog name (lower case).
        loader: `loader(seed, view, **options) -> Dataset`.
        kind: the natural kind of its items ("image", "sequence", ...).
        views: the kinds it can be loaded as; the first is the default.
        sizes: (train, val, test) item counts.
        num_classes: K.
        variable_length: whether items have different lengths.
        description: one line for `gridseq datasets`.
    """

    name: str
    loader: Callable[..., Any]
    kind: str
    views: tuple[str, ...]
    sizes: tuple[int, int, int]
    num_classes: int
    variable_length: bool
    description: str

    def record(self) -> dict[str, Any]:
        """A row of the `gridseq datasets` table (JSON-able)."""
        train, val, test = self.sizes
        return {
            "name": self.name, "kind": self.kind, "views": list(self.views), "train": train, "val": val,
            "test": test, "num_classes": self.num_classes, "variable_length": self.variable_length,
            "description": self.description,
        }


_entries: dict[str, DatasetEntry] = {}
_loaded = False
_hints: dict[str, str] = {}  # name prefix -> what to say about an unknown name under it


def register_dataset(
    name: str,
    *,
    kind: str,
    sizes: tuple[int, int, int],
    num_classes: int,
    description: str,
    views: tuple[str, ...] | None = None,
    variable_length: bool = False,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: register the decorated loader under `name` (a second registration replaces the first)."""

    def decorate(loader: Callable[..., Any]) -> Callable[..., Any]:
        key = name.lower()
        if key in _entries:
            _logger.warning("overwriting dataset %r in the catalog with %s", key, loader.__qualname__)
        _entries[key] = DatasetEntry(
            key, loader, kind, tuple(views or (kind,)), tuple(sizes), num_classes, variable_length, description
        )
        return loader

    return decorate


def register_hint(prefix: str, message: str) -> None:
    """Say `message` (after the did-you-mean) when an unknown name starts with `prefix` (e.g. "ucr/")."""
    _hints[prefix.lower()] = message


def is_family_name(name: str) -> bool:
    """Whether `name` starts with a family prefix that has a hint (e.g. "ucr/"), so it is a name, not a path."""
    _ensure_loaded()
    return any(name.lower().startswith(prefix) for prefix in _hints)


def _ensure_loaded() -> None:
    """Import every module of this package once (each registers its built-ins), as `gridseq.models` does."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for found in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{found.name}")


def names() -> list[str]:
    """All built-in dataset names, sorted."""
    _ensure_loaded()
    return sorted(_entries)


def find(name: str) -> DatasetEntry | None:
    """The entry for `name` (case-insensitive), or None."""
    _ensure_loaded()
    return _entries.get(name.lower())


def entry(name: str) -> DatasetEntry:
    """The entry for `name`; DataError with the closest name and the full list if there is none."""
    found = find(name)
    hint = next((m for prefix, m in _hints.items() if name.lower().startswith(prefix)), None)
    if found is None and hint is not None:
        family = [n for n in names() if n.startswith(name.lower().split("/")[0] + "/")]
        raise DataError(f"unknown dataset {name!r}.{did_you_mean(name.lower(), family)} {hint}")
    if found is None:
        raise DataError(
            f"unknown dataset {name!r}.{did_you_mean(name.lower(), _entries)} Built-in datasets: "
            f"{', '.join(names())}; or pass a path to an image folder, a .npz or a .csv file "
            f"(see gridseq.datasets.names() or `gridseq datasets`)."
        )
    return found


def require(module: str, dataset: str):
    """`module` imported, or a DataError saying which package `dataset` needs and how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise DataError(
            f"dataset {dataset!r} needs the {module.split('.')[0]!r} package, which is not installed "
            f"({e}); install it with: pip install 'gridseq[datasets]'."
        ) from e

