"""gridseq.datasets: built-in datasets and your own files, loaded as train/val/test splits of tensors.

    >>> import gridseq.datasets as gd
    >>> ds = gd.load("digits", seed=0)
    >>> ds.info.kind, tuple(ds.train.x.shape)
    ('image', (1294, 1, 8, 8))
    >>> tuple(gd.load("digits", view="sequence").train.x.shape)  # 8 rows of 8 pixels
    (1294, 8, 8)

`load` takes a built-in name (see `names()`, case-insensitive; the UCR/UEA archive datasets bundled in
aeon are `ucr/<name>`) or a path: a folder of images (one sub-folder per class), a `.npz` or a `.csv`
of sequences, a `.ts` file of time series. Nothing is ever downloaded. The test split
never depends on `seed`; the validation split does. See docs/datasets.md for the file formats.
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gridseq._validation import check_positive_int, did_you_mean
from gridseq.data import builtin as catalog
from gridseq.data.builtin.forecast_series import load_series_file
from gridseq.data.builtin.ucr import load_ts
from gridseq.data.contract import Batch, Dataset, DatasetInfo, Split
from gridseq.data.prepare import prepare_inputs
from gridseq.data.preprocessing import check_view
from gridseq.data.readers.csv_sequences import load_csv
from gridseq.data.readers.detection import csv_columns as boxes_csv_columns
from gridseq.data.readers.detection import load_detection_file
from gridseq.data.readers.from_torch import from_torch
from gridseq.data.readers.image_folder import load_image_folder
from gridseq.data.readers.mask_folder import is_mask_folder, load_mask_folder
from gridseq.data.readers.npz import load_npz
from gridseq.data.readers.text_files import is_text_csv, load_text_csv, load_text_file
from gridseq.data.readers.text_pairs import load_pairs_tsv
from gridseq.data.readers.transcripts import load_transcripts, transcript_source
from gridseq.data.readers.video import is_video_folder, load_video_folder
from gridseq.data.samplers import BatchSampler, iterate
from gridseq.data.targets import targets_of
from gridseq.errors import ConfigError, DataError

__all__ = [
    "names", "load", "describe", "prepare_inputs", "from_torch", "BatchSampler", "iterate",
    "Dataset", "DatasetInfo", "Split", "Batch",
]

# file suffix -> (reader, layout of its items); a folder is an image folder
FILE_READERS: dict[str, tuple[Callable[..., Dataset], str]] = {
    ".npz": (load_npz, "sequence"), ".csv": (load_csv, "sequence"), ".ts": (load_ts, "series"),
    ".txt": (load_text_file, "tokens"), ".tsv": (load_pairs_tsv, "tokens"),  # text: language model, seq2seq
    ".json": (load_detection_file, "image"),  # COCO-style boxes (object detection)
}


def names() -> list[str]:
    """The built-in dataset names, sorted."""
    return catalog.names()


def describe() -> list[dict[str, Any]]:
    """One record per built-in for the `gridseq datasets` table, from static metadata (nothing is generated).

    Returns:
        Dicts with name, kind, views, train, val, test, num_classes, variable_length, description.
    """
    return [catalog.entry(n).record() for n in names()]


def load(name_or_path: str | os.PathLike, seed: int = 0, *, view: str | None = None, **options) -> Dataset:
    """Load a built-in dataset or a data file/folder as a `Dataset` (info + train/val/test splits).

    Args:
        name_or_path: a built-in name (case-insensitive; a built-in wins over a folder of the same name:
            write ./digits for the folder), a path to an image folder, a .npz, .csv, .ts, .txt, .tsv or
            .json file, or "module:function" naming a function that returns a Dataset (your own data,
            e.g. through `from_torch`; the module is imported).
        seed: seeds the validation split; the test split is fixed. Default: 0.
        view: "image" or "sequence" (an image as a sequence of its rows: T = H, F = C·W). Default: the
            data's own kind.
        **options: reader options — image folders: image_size=(H, W), channels=1|3, grayscale=True;
            CSV: csv_format, label_column, id_column, time_column, length_column, feature_columns;
            .ts files: test_path, normalize, missing; ucr/<name>: normalize ("series" | "channel" |
            "none"), missing ("interpolate" | "error"). A series CSV to forecast: task="forecast" with
            time_column, value_columns, targets, window, horizon, season, val_size, test_size,
            transform, relative, missing (see gridseq.data.series); sunspots, co2, airline take the
            same window/period options. Text (see gridseq.data.readers.text_files): a .txt file (language model:
            chunk), a .csv with a text column (classify: text_column, label_column, level, min_count,
            val_path, test_path), a .tsv of source<TAB>target lines (seq2seq: level, target_level,
            min_count, val_path, test_path); surnames/sentiment/dates/pydoc take their own options
            (sentiment: level, min_confidence, min_count; dates: heldout, size; pydoc: chunk). Boxes for
            object detection, a COCO-style .json or a .csv of image,x0,y0,x1,y1,class rows (see
            gridseq.data.readers.detection): images, size, channels, val_fraction, test_fraction.
    Returns:
        The Dataset; `dataset.info.preprocessing` records how raw inputs were prepared.
    Raises:
        DataError: an unknown name (with the closest match and the list), a missing path, an unreadable file.
        ConfigError: an unknown option or view, a bad seed.
    """
    seed = check_positive_int(seed, "seed", minimum=0)
    if isinstance(name_or_path, str):
        # names may hold a "/" (ucr/gunpoint): the catalog is asked first, the file system second
        found = catalog.find(name_or_path)
        if found is None and _FACTORY.fullmatch(name_or_path) and not os.path.exists(name_or_path):
            if options:
                raise ConfigError(f"dataset {name_or_path!r} is built by a function, which takes no options; got {sorted(options)}.")
            return _from_factory(name_or_path)
        if found is None and not os.path.exists(name_or_path) and (
                not _looks_like_path(name_or_path) or catalog.is_family_name(name_or_path)):
            catalog.entry(name_or_path)  # raises DataError with did-you-mean and the list
        if found is not None:
            view = check_view(view, found.kind, found.name)
            return _call(found.loader, f"dataset {found.name!r}", options, seed, view)
    path = Path(name_or_path)
    if not path.exists():
        raise DataError(f"no such file or folder: {path}; pass a built-in name ({', '.join(names())}) or an existing path.")
    if transcript_source(path) is not None:
        reader, layout = load_transcripts, "sequence"  # file,transcript CSV (or a folder holding transcripts.csv)
    elif path.is_dir() and is_video_folder(path):  # class sub-folders of .npy clips / frame folders
        reader, layout = load_video_folder, "video"
    elif path.is_dir():
        # images/ + masks/ (segmentation), else one sub-folder per class
        reader, layout = (load_mask_folder if is_mask_folder(path) else load_image_folder), "image"
    elif boxes_csv_columns(path) is not None:
        reader, layout = load_detection_file, "image"  # image,x0,y0,x1,y1,class rows (object detection)
    elif targets_of(options.get("task")).kind == "window" and path.suffix.lower() == ".csv":
        reader, layout = load_series_file, "series"  # a time column and value columns, cut into windows
    elif path.suffix.lower() == ".csv" and is_text_csv(path, {**options, "view": view}):
        reader, layout = load_text_csv, "tokens"  # a text column and a label column
    elif path.suffix.lower() in FILE_READERS:
        reader, layout = FILE_READERS[path.suffix.lower()]
    else:
        raise DataError(
            f"cannot read {path}: unsupported file type {path.suffix or '(none)'!r}; expected a folder of images "
            f"(one sub-folder per class), a .npz, .csv, .ts, .txt, .tsv or .json (COCO-style boxes) file."
        )
    view = check_view(view, layout, str(path))
    return _call(reader, str(path), options, path, seed, view)


_FACTORY = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")  # "package.module:function"


def _from_factory(reference: str) -> Dataset:
    """The Dataset returned by the function `reference` names ("module:function"; e.g. the `name` given to
    `from_torch`, so `gridseq evaluate` can rebuild a run's data); the module is imported, as `torchrun` would."""
    module_name, function = reference.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise DataError(f"cannot import {module_name!r} for dataset {reference!r}: {e}. Put it on PYTHONPATH "
                        f"(the run's data is built by {reference}()).") from e
    factory = getattr(module, function, None)
    if not callable(factory):
        raise DataError(f"{module_name!r} has no function {function!r}; dataset {reference!r} names a function "
                        f"returning a gridseq Dataset (e.g. through gridseq.datasets.from_torch).")
    data = factory()
    if not isinstance(data, Dataset):
        raise DataError(f"{reference}() returned {type(data).__name__}, expected a gridseq Dataset "
                        f"(wrap torch datasets with gridseq.datasets.from_torch).")
    return data


def _looks_like_path(text: str) -> bool:
    return any(sep in text for sep in ("/", "\\", os.sep)) or Path(text).suffix.lower() in FILE_READERS


def _call(reader: Callable[..., Dataset], what: str, options: dict[str, Any], *args) -> Dataset:
    """`reader(*args, **options)`, after checking the options against the reader's keyword-only arguments."""
    valid = [p.name for p in inspect.signature(reader).parameters.values() if p.kind is p.KEYWORD_ONLY]
    unknown = [k for k in options if k not in valid]
    if unknown:
        accepted = f"valid options: {', '.join(valid)}" if valid else "it takes no options"
        raise ConfigError(f"unknown option {unknown[0]!r} for {what}.{did_you_mean(unknown[0], valid)} ({accepted}).")
    return reader(*args, **options)
