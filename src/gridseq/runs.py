"""`Run`: the one reader of a run directory written by `gridseq train` or `gridseq.fit(run_dir=...)`.

    >>> run = Run.open("runs/digits-cnn-s0")  # doctest: +SKIP
    >>> run.info.num_classes, run.metrics["test"]["accuracy"] > 0.9  # doctest: +SKIP
    (10, True)
    >>> data = run.reload_data()  # the splits the model was trained and tested on  # doctest: +SKIP

config.json's "data" section is the recipe to rebuild the dataset:
`{"name": built-in name or absolute path, "seed": int, "view": "image" | "sequence" | null, "options": {...},
"info": DatasetInfo.to_json()}`. `reload_data` rebuilds it from that recipe, so evaluate, predict and
inspect see exactly the splits and preprocessing the model was trained with. The files themselves are
written by `gridseq.train.run_dir.RunDir`; nothing else reads them.
"""

from __future__ import annotations

import json
import os
from functools import cached_property
from pathlib import Path
from typing import Any

from torch import nn

from gridseq import io
from gridseq.errors import CheckpointError, DataError


class Run:
    """A trained run directory: its config, model, dataset info, data recipe and metrics.

    Open one with `Run.open(path)`; reading config.json happens there (so a bad directory fails at
    once), the weights load on first use of `model`.

    Attributes:
        path: the run directory.
        config: the parsed config.json (model, data, task, fit arguments, versions).
    """

    def __init__(self, path: str | os.PathLike, config: dict[str, Any]):
        self.path = Path(path)
        self.config = config
        self._where = os.fspath(path)  # as the user wrote it, for messages

    @classmethod
    def open(cls, path: str | os.PathLike) -> Run:
        """The run in `path`.

        Raises:
            CheckpointError: `path` is not a directory, or its config.json is missing or unreadable.
        """
        if not Path(path).is_dir():
            raise CheckpointError(f"{os.fspath(path)} is not a directory; expected a run directory written by `gridseq train` "
                                  f"(e.g. runs/digits-cnn-s0).")
        return cls(path, io.read_config(path))

    def __repr__(self) -> str:
        return f"Run({self._where!r}, model={self.model_name!r})"

    @property
    def model_name(self) -> str:
        """The registry name of the run's model, e.g. "cnn"."""
        return self.config["model"]["name"]

    @property
    def task_name(self) -> str | None:
        """The name of the task the run was trained for (e.g. "classify"), or None for a model saved without one."""
        return (self.config.get("task") or {}).get("name")

    @cached_property
    def model(self) -> nn.Module:
        """The trained model (the best weights), in eval mode. CheckpointError if the weights are unusable."""
        return io.load(self.path)

    @cached_property
    def info(self):
        """The `DatasetInfo` the model was trained on (classes, shapes, preprocessing record, task).

        Raises:
            CheckpointError: config.json has no data section (a model saved with `gridseq.save`), or an unreadable one.
        """
        from gridseq.data.contract import DatasetInfo

        data = self.config.get("data")
        if not isinstance(data, dict) or not isinstance(data.get("info"), dict):
            raise CheckpointError(f"{self._where}/config.json has no data section; this needs a run directory written by "
                                  f"`gridseq train` or gridseq.fit(run_dir=...) (a model saved with gridseq.save has no dataset).")
        try:
            return DatasetInfo.from_json(data["info"])
        except (TypeError, KeyError) as e:
            raise CheckpointError(f"{self._where}/config.json has an unreadable data info section ({e}); retrain the run.") from None

    @cached_property
    def task(self):
        """The run's `Task` (loss, metrics, decoding), built from its info and model."""
        from gridseq import tasks

        return tasks.for_data(self.info, self.model)

    @property
    def data_spec(self) -> dict[str, Any]:
        """The recipe of the run's dataset: {"name", "seed", "view", "options"}.

        Raises:
            CheckpointError: config.json does not say which dataset was used.
        """
        self.info  # noqa: B018 -- no data section at all: say that first
        spec = self.config["data"]
        if "name" not in spec:
            raise CheckpointError(f"{self._where}/config.json's data section does not say which dataset was used; "
                                  f"it was not written by `gridseq train`.")
        return {"name": spec["name"], "seed": spec.get("seed", 0), "view": spec.get("view"), "options": dict(spec.get("options", {}))}

    @property
    def metrics(self) -> dict[str, Any] | None:
        """metrics.json (best val and test metrics, timings, parameters); None while the run is unfinished.

        Raises:
            CheckpointError: metrics.json is corrupt.
        """
        from gridseq.train.run_dir import METRICS_FILE

        path = self.path / METRICS_FILE
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise CheckpointError(f"{path} is not valid JSON ({e}); the file is corrupt — retrain or restore the run.") from None

    def history(self) -> list[dict[str, Any]]:
        """One record per finished epoch (history.jsonl); [] before the first."""
        from gridseq.train.run_dir import HISTORY_FILE, read_history

        return read_history(self.path) if (self.path / HISTORY_FILE).is_file() else []

    def reload_data(self, changes: dict[str, Any] | None = None):
        """The run's dataset rebuilt from its recipe, checked against the info the model was trained with.

        Args:
            changes: loader options to replace (evaluate's --data.KEY=VALUE). A fully convolutional run
                (`any_size` images, e.g. segmentation) may then see another image size; its images are
                re-normalised with the run's own statistics. Default: None.
        Returns:
            the `Data` (its `.info` is the reloaded one; `self.info` is the run's).
        Raises:
            DataError: the data no longer matches the run (other classes or input shape).
            CheckpointError: config.json has no usable data section.
        """
        from gridseq import datasets

        info, spec = self.info, self.data_spec
        options = {k: tuple(v) if isinstance(v, list) else v for k, v in spec["options"].items()}
        options.update(changes or {})
        data = datasets.load(spec["name"], seed=spec["seed"], view=spec["view"], **options)
        # a fully convolutional run (segmentation) takes any H x W: only the channels must match
        any_size = bool(changes) and (info.preprocessing or {}).get("image", {}).get("any_size", False)
        compared = slice(0, 1) if any_size else slice(None)
        if tuple(data.info.class_names) != tuple(info.class_names) or (
                tuple(data.info.input_shape[compared]) != tuple(info.input_shape[compared])):
            raise DataError(f"dataset {spec['name']} no longer matches the run in {self._where}: it now has classes "
                            f"{list(data.info.class_names)} and input shape {data.info.input_shape}, the model was trained on "
                            f"{list(info.class_names)} and {info.input_shape}. Restore the data or train a new run.")
        if any_size:
            data = _renormalize(data, info)
        return data


def _renormalize(data, info):
    """`data`'s images normalised with `info`'s statistics instead of their own (an exact affine change)."""
    import torch

    from gridseq.data.stream import StreamSplit

    new, run = data.info.preprocessing.get("normalize"), info.preprocessing.get("normalize")
    if not new or not run or new == run:
        return data

    def stats(norm):
        return tuple(torch.tensor(norm[k], dtype=torch.float32).view(-1, 1, 1) for k in ("mean", "std"))

    (m1, s1), (m0, s0) = stats(new), stats(run)
    for split in data.splits().values():
        if isinstance(split, StreamSplit):  # prepared batch by batch: prepare them with the run's statistics
            split.record = {**split.record, "normalize": run}
        else:
            split.x = (split.x * s1 + m1 - m0) / s0  # raw pixels, then the run's z-score
    return data
