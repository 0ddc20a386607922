"""Per-dataset, per-model training defaults: the one place `gridseq train` looks up sensible settings,
so that `gridseq train digits --model cnn` needs no other flag.

Precedence (highest first): an explicit command-line flag, then this table, then `gridseq.train.fit`'s
own defaults (for training settings) or the model's config defaults (for architecture settings).

Each entry maps (dataset, model) to two optional sections: "train" (keyword arguments of
`gridseq.train.fit`, e.g. epochs, lr) and "model" (model config fields, e.g. hidden_size). "*" matches
any dataset or model; user files (image folders, .npz, .csv) match only "*" entries. More specific
entries win key by key: ("*", "*") < (dataset, "*") < ("*", model) < (dataset, model).

    >>> lookup("digits", "cnn")["train"]["epochs"]
    15
"""

from __future__ import annotations

import copy
from typing import Any

# The numbers are starting points for a laptop CPU (a minute or two per run), not tuned optima.
TABLE: dict[tuple[str, str], dict[str, dict[str, Any]]] = {
    ("*", "*"): {"train": {"epochs": 10}},
    # 1,797 8x8 digits: a small CNN reaches ~97% in a few seconds per epoch
    ("digits", "*"): {"train": {"epochs": 15, "batch_size": 64}},
    # as a sequence (8 rows of 8 pixels) the recurrent models need more passes over the small set
    ("digits", "rnn"): {"train": {"epochs": 30, "lr": 3e-3}},
    ("digits", "lstm"): {"train": {"epochs": 30, "lr": 3e-3}},
    ("digits", "gru"): {"train": {"epochs": 30, "lr": 3e-3}},
    # MNIST-1D: 4,000 training series of length 40; the textbook contrast needs ~30 epochs to show
    ("mnist1d", "*"): {"train": {"epochs": 30, "batch_size": 64}},
    ("mnist1d", "rnn"): {"train": {"lr": 1e-3, "grad_clip": 1.0}, "model": {"hidden_size": 128}},
    ("mnist1d", "lstm"): {"train": {"lr": 3e-3}, "model": {"hidden_size": 128}},
    ("mnist1d", "gru"): {"train": {"lr": 3e-3}, "model": {"hidden_size": 128}},
}

SECTIONS = ("train", "model")


def lookup(dataset: str, model: str, table: dict | None = None) -> dict[str, dict[str, Any]]:
    """The merged defaults for training `model` on `dataset`.

    Args:
        dataset: a built-in dataset name; a path (user data) matches only the "*" entries.
        model: a registered model name.
        table: the table to read. Default: `TABLE`.
    Returns:
        `{"train": {...}, "model": {...}}`, a fresh copy the caller may change.
    """
    table = TABLE if table is None else table
    merged: dict[str, dict[str, Any]] = {section: {} for section in SECTIONS}
    for key in (("*", "*"), (dataset, "*"), ("*", model), (dataset, model)):
        for section, values in table.get(key, {}).items():
            merged[section].update(copy.deepcopy(values))
    return merged
