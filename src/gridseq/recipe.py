"""From what a user names — a dataset (built-in or path) and a model — to the loaded Dataset and the
data recipe a run records (config.json's "data" section, which `gridseq.runs.Run.reload_data` reads back).

`gridseq train` and `gridseq tune` load their data through `load_for_model`, so a tuned trial sees
exactly the splits and view that `gridseq train` with the same settings sees.

    >>> data, spec, reader = load_for_model("digits", "cnn", seed=0)  # doctest: +SKIP
    >>> spec["name"], spec["view"], reader  # doctest: +SKIP
    ('digits', None, None)
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from gridseq.errors import ConfigError

_logger = logging.getLogger(__name__)


def load_for_model(dataset: str, model: str, *, seed: int = 0, view: str | None = None, options: dict[str, Any] | None = None):
    """Load `dataset` in the view `model` takes; returns (Dataset, data recipe, user reader or None).

    Args:
        dataset: a built-in name or a path (a built-in wins over a folder of the same name).
        model: a registered model name.
        seed: the dataset seed (splits, generation).
        view: "image" or "sequence"; None = what the model takes (images become row sequences for
            recurrent models).
        options: dataset options (`gridseq.datasets.load` keyword arguments).

    Returns:
        (data, spec, reader): the Dataset; the recipe `{"name", "seed", "view", "options"}` with a
        path made absolute; the reader that loaded user files (for `gridseq.defaults.lookup`'s
        "<reader>" entries), None for a built-in.

    Raises:
        ConfigError: the model cannot take the data (naming the models that can).
    """
    from gridseq import datasets, models

    entry = models.entry(model)
    options = dict(options or {})
    ref = dataset_ref(dataset)
    view = view or builtin_view(dataset, entry)
    data = datasets.load(ref, seed=seed, view=view, **options)
    if view is None and data.info.kind == "image" and data.info.kind not in entry.kinds and "sequence" in entry.kinds:
        view = "sequence"  # user images for a recurrent model: read each image as a sequence of rows
        _logger.info("model %r does not take images: loading %s with view='sequence'", entry.name, dataset)
        data = datasets.load(ref, seed=seed, view=view, **options)
    spec = {"name": ref, "seed": seed, "view": view, "options": jsonable(options)}
    return data, spec, user_reader(ref, data.info)


def builtin_view(dataset: str, entry) -> str | None:
    """The view of a built-in dataset that `entry`'s model takes (None: its natural kind, or not a built-in).

    Decided from the catalog's static metadata, so a model that cannot take the data fails before
    anything is generated or read.
    """
    from gridseq import datasets, models

    record = next((r for r in datasets.describe() if r["name"] == dataset.lower() and not is_pathlike(dataset)), None)
    if record is None or record["kind"] in entry.kinds:
        return None
    views = record.get("views") or [record["kind"]]
    usable = [v for v in views if v in entry.kinds]
    if not usable:
        fitting = [n for n in models.names() if set(models.entry(n).kinds) & set(views)]
        raise ConfigError(f"model {entry.name!r} takes {' or '.join(entry.kinds)} data, but dataset {record['name']!r} is "
                          f"{' or '.join(views)} data; models for it: {', '.join(fitting)}.")
    _logger.info("model %r does not take %s data: loading %s with view=%r", entry.name, record["kind"], record["name"], usable[0])
    return usable[0]


def is_pathlike(name: str) -> bool:
    return "/" in name or "\\" in name or Path(name).suffix != ""


def dataset_ref(name: str) -> str:
    """Built-in names stay names (a built-in wins over a folder of the same name, as in datasets.load);
    existing paths become absolute so evaluate and predict work from any folder."""
    from gridseq import datasets

    if not is_pathlike(name) and name.lower() in datasets.names():
        return name
    path = Path(name).expanduser()
    return str(path.resolve()) if path.exists() else name


def user_reader(ref: str, info) -> str | None:
    """The reader that loaded user files (their defaults are "<reader>" entries), None for a built-in."""
    from gridseq import datasets

    if ref.lower() in datasets.names():
        return None
    return (info.preprocessing or {}).get("source")


def jsonable(options: dict) -> dict:
    """`options` with tuples as lists, as JSON holds them."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in options.items()}


def run_name(dataset: str) -> str:
    """A folder name for runs on `dataset`: a built-in's name, a path's stem ("ucr/gunpoint" -> "gunpoint")."""
    stem = Path(dataset.rstrip("/\\")).stem if is_pathlike(dataset) else dataset
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", stem) or "data"
