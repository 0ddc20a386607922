"""What `gridseq train`, `gridseq evaluate` and `gridseq predict` do, once cli.py has parsed the command
line: resolve settings (flags > defaults table > library defaults), load data, run, print.

A run directory's config.json "data" section is the recipe to rebuild the dataset:
`{"name": built-in name or absolute path, "seed": int, "view": "image" | "sequence" | null, "options": {...},
"info": DatasetInfo.to_json()}`; evaluate and predict reload from it, so they see exactly the splits and
preprocessing the model was trained with.
"""

from __future__ import annotations

import inspect
import logging
import re
import shutil
from pathlib import Path
from typing import Any

import torch

from gridseq import defaults
from gridseq.cli import EXIT_OK, console, print_json
from gridseq.cli_overrides import resolve
from gridseq.data.stream import StreamSplit
from gridseq.errors import CheckpointError, ConfigError, DataError

_logger = logging.getLogger(__name__)

# model shortcut flags → model config fields
_MODEL_FLAGS = {"hidden_size": "--hidden-size", "num_layers": "--num-layers", "bidirectional": "--bidirectional", "dropout": "--dropout"}
# train flags → gridseq.train.fit keyword arguments
_TRAIN_FLAGS = ("epochs", "batch_size", "lr", "optimizer", "weight_decay", "scheduler", "grad_clip", "patience", "device",
                "checkpoint_every", "precision", "augment")
# fit() arguments the command sets itself, so --train.KEY may not
_FIT_MANAGED = {"model", "data", "seed", "run_dir", "resume", "progress", "data_spec", "callbacks"}
_RUN_FILES = ("config.json", "model.safetensors", "metrics.json", "history.jsonl")


def cmd_train(args, raw_overrides: dict[str, str]) -> int:
    """`gridseq train`; under torchrun (WORLD_SIZE > 1 in the environment) one process of a distributed
    run: the process group comes up first and goes down last, and only rank 0 writes and prints."""
    from gridseq.train import distributed

    if args.threads:
        torch.set_num_threads(args.threads)  # see docs/PERFORMANCE.md: oversubscribed cores cost ~10x
    if not distributed.init_from_env(args.device or "auto"):
        return _train(args, raw_overrides)
    if not distributed.is_main():
        logging.getLogger("gridseq").setLevel(logging.ERROR)  # rank 0 alone logs notices and warnings
    try:
        code = _train(args, raw_overrides)
    except BaseException:
        distributed.shutdown(wait=False)  # other ranks may never reach a barrier now
        raise
    distributed.shutdown()
    return code


def _train(args, raw_overrides: dict[str, str]) -> int:
    from gridseq import datasets, models, train
    from gridseq.train import distributed

    entry = models.entry(args.model)
    fit_keys = [p for p in inspect.signature(train.fit).parameters if p not in _FIT_MANAGED]
    overrides = resolve(raw_overrides, model_cls_config=entry.config_cls, train_keys=fit_keys)
    model_kw = _model_settings(args, entry, overrides["model"])
    options = {k: v for k, v in (("image_size", args.image_size), ("label_column", args.label_column), ("task", args.task),
                                 ("stream", args.stream), ("workers", args.workers), ("cache", args.cache))
               if v is not None}
    options.update(overrides["data"])
    run_dir = _shared_run_dir(args, entry.name)

    dataset_ref = _dataset_ref(args.dataset)
    view = args.view or _builtin_view(args.dataset, entry)
    data = datasets.load(dataset_ref, seed=args.seed, view=view, **options)
    if view is None and data.info.kind == "image" and data.info.kind not in entry.kinds and "sequence" in entry.kinds:
        view = "sequence"  # user images for a recurrent model: read each image as a sequence of rows
        _logger.info("model %r does not take images: loading %s with view='sequence'", entry.name, args.dataset)
        data = datasets.load(dataset_ref, seed=args.seed, view=view, **options)
    table = defaults.lookup(args.dataset, entry.name, reader=_user_reader(dataset_ref, data.info))
    train_kw = {**table["train"], **overrides["train"], **{k: getattr(args, k) for k in _TRAIN_FLAGS if getattr(args, k) is not None}}
    model_kw = {**{k: v for k, v in table["model"].items() if k in _fields(entry)}, **model_kw}
    train.seed_everything(args.seed)  # the initial weights are part of what --seed reproduces
    model = models.create_for(entry.name, data.info, **model_kw)

    spec = {"name": dataset_ref, "seed": args.seed, "view": view, "options": _jsonable(options)}
    _logger.info("training %s on %s: %s", entry.name, args.dataset, train_kw)
    result = train.fit(model, data, seed=args.seed, run_dir=run_dir, resume=args.resume, progress=args.progress, data_spec=spec, **train_kw)

    if distributed.is_main():
        _print_metrics(f"test metrics ({entry.name} on {args.dataset})", result.test)
        console().print(f"trained in {result.train_seconds:.1f} s\nrun dir: {result.run_dir}", highlight=False, markup=False, soft_wrap=True)
    return EXIT_OK


def cmd_evaluate(args, raw_overrides: dict[str, str] | None = None) -> int:
    from gridseq import tasks, train
    from gridseq.cli_overrides import parse_value

    model, config = _open_run(args.run_dir)
    changes = {k.partition(".")[2]: parse_value(v) for k, v in (raw_overrides or {}).items()}
    data, info = _reload_data(config, args.run_dir, changes)
    task = tasks.for_data(info, model)
    if args.beam is not None:
        if not hasattr(task, "configure"):
            raise ConfigError(f"--beam applies to seq2seq runs; {args.run_dir} is a {info.task} run.")
        task.configure(beam=args.beam)
    metrics = train.evaluate(model, data.splits()[args.split], task=task, batch_size=args.batch_size)
    if args.json:
        print_json(metrics)
    else:
        _print_metrics(f"{args.split} metrics ({args.run_dir})", metrics)
    return EXIT_OK


def cmd_predict(args) -> int:
    from gridseq import cli_predict, datasets, tasks

    if bool(args.inputs) == bool(args.split):
        raise ConfigError("predict needs INPUT files or --split (not both): e.g. `gridseq predict RUN_DIR image.png` "
                          "or `gridseq predict RUN_DIR --split test`.")
    model, config = _open_run(args.run_dir)
    if getattr(model, "serves_task", None) == "generate-image":
        raise ConfigError(f"{args.run_dir} is an image generator; draw images with `gridseq sample {args.run_dir} --n 64 --out grid.png`.")
    if _run_info(config, args.run_dir).task == "forecast":
        raise ConfigError(f"{args.run_dir} is a forecasting run; use `gridseq forecast {args.run_dir}` to forecast with it.")
    if _run_info(config, args.run_dir).task == "transcribe":
        return cli_predict.predict_transcripts(args, model, config)
    if _run_info(config, args.run_dir).kind == "tokens":
        from gridseq.cli_text import predict_text

        if args.split:
            data, info = _reload_data(config, args.run_dir)
            split = data.splits()[args.split]
            return predict_text(args, model, info, list(split.texts), split.targets or split.y.tolist())
        return predict_text(args, model, _run_info(config, args.run_dir), list(args.inputs), None)
    if _run_info(config, args.run_dir).task == "segment":
        return cli_predict.predict_masks(args, model, config)
    if _run_info(config, args.run_dir).task == "detect":
        return cli_predict.predict_boxes(args, model, config)
    if args.out:
        raise ConfigError(f"--out writes segmentation masks; {args.run_dir} is a {_run_info(config, args.run_dir).task} run.")
    if _run_info(config, args.run_dir).task == "caption":
        return cli_predict.predict_captions(args, model, config)
    if args.split:
        data, info = _reload_data(config, args.run_dir)
        split = data.splits()[args.split]
        # one batch at a time: a streamed split is decoded as it is predicted
        batches = ((args.split, split.batch(slice(i, i + args.batch_size))) for i in range(0, len(split), args.batch_size))
        targets = split.y.tolist()
    else:
        info = _run_info(config, args.run_dir)
        batches = []
        for path in args.inputs:
            if not Path(path).exists():
                raise DataError(f"input {path} does not exist; pass image files, or .npz / .csv files of sequences.")
            if info.kind == "video":  # a .npy clip or a folder of frames
                from gridseq.data.readers.video import prepare_clips

                batches.append((path, prepare_clips([path], info.preprocessing)))
                continue
            batches.append((path, datasets.prepare_inputs([path], info, invert=args.invert)))
        targets = None
    task = tasks.for_data(info, model)
    records = []
    with torch.no_grad():
        for name, batch in batches:
            labels, probs = task.predict(task.forward(model, batch))
            # a split or a multi-row file names each item by its index: test[17], series.csv[3]
            first = len(records) if args.split else 0
            names = [f"{name}[{first + i}]" for i in range(len(batch))] if args.split or len(batch) > 1 else [name]
            records.extend(_records(names, labels, probs, info.class_names, args.top_k, batch.lengths))
    if targets is not None:
        for record, target in zip(records, targets):
            if isinstance(target, list):  # per-step targets; -100 marks an unlabelled step
                record["target"] = [info.class_names[t] for t in target if t >= 0]
            else:
                record["target"] = info.class_names[target]
    if args.json:
        print_json(records)
    else:
        _print_predictions(records)
    return EXIT_OK


def _fields(entry) -> set[str]:
    import dataclasses

    return {f.name for f in dataclasses.fields(entry.config_cls)}


def _model_settings(args, entry, dotted: dict[str, Any]) -> dict[str, Any]:
    """Model config values from the shortcut flags and --model.FIELD, checked against the model's fields."""
    fields = _fields(entry)
    settings = {}
    for name, flag in _MODEL_FLAGS.items():
        value = getattr(args, name)
        if value is None:
            continue  # not given: the defaults table or the model's own default decides
        if name not in fields:
            raise ConfigError(f"{flag} does not apply to model {entry.name!r} (its config has no {name!r}); "
                              f"its settings are: {', '.join(sorted(fields))}.")
        if name in dotted and dotted[name] != value:
            raise ConfigError(f"{flag}={value} and --model.{name}={dotted[name]} disagree; give one of them.")
        settings[name] = value
    return {**settings, **dotted}


def _builtin_view(dataset: str, entry) -> str | None:
    """The view of a built-in dataset that `entry`'s model takes (None: its natural kind, or not a built-in).

    Decided from the catalog's static metadata, so a model that cannot take the data fails before
    anything is generated or read.
    """
    from gridseq import datasets, models

    record = next((r for r in datasets.describe() if r["name"] == dataset.lower() and not _is_pathlike(dataset)), None)
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


def _is_pathlike(name: str) -> bool:
    return "/" in name or "\\" in name or Path(name).suffix != ""


def _dataset_ref(name: str) -> str:
    """Built-in names stay names (a built-in wins over a folder of the same name, as in datasets.load);
    existing paths become absolute so evaluate and predict work from any folder."""
    from gridseq import datasets

    if not _is_pathlike(name) and name.lower() in datasets.names():
        return name
    path = Path(name).expanduser()
    return str(path.resolve()) if path.exists() else name


def _user_reader(dataset_ref: str, info) -> str | None:
    """The reader that loaded user files (their defaults are "<reader>" entries), None for a built-in."""
    from gridseq import datasets

    if dataset_ref.lower() in datasets.names():
        return None
    return (info.preprocessing or {}).get("source")


def _run_name(dataset: str) -> str:
    stem = Path(dataset.rstrip("/\\")).stem if _is_pathlike(dataset) else dataset
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", stem) or "data"


def _prepare_run_dir(args, model_name: str) -> Path:
    """The run directory; refuses to replace an existing run unless --resume or --overwrite."""
    if args.resume and args.overwrite:
        raise ConfigError("--resume continues the run in --run-dir and --overwrite replaces it; give one of them.")
    run_dir = Path(args.run_dir or Path("runs") / f"{_run_name(args.dataset)}-{model_name}-s{args.seed}")
    if args.resume or not run_dir.exists() or not any(run_dir.iterdir()):
        return run_dir
    is_run = any((run_dir / f).exists() for f in _RUN_FILES) or any(run_dir.glob("checkpoint*"))
    if not is_run:
        raise ConfigError(f"{run_dir} exists, is not empty and is not a gridseq run directory; choose another --run-dir.")
    if not args.overwrite:
        finished = (run_dir / "metrics.json").exists()
        state = "holds a finished run" if finished else "holds an unfinished run"
        raise ConfigError(f"{run_dir} {state}; pass --resume to continue it, --overwrite to replace it, or another --run-dir.")
    _logger.warning("--overwrite: removing the run in %s", run_dir)
    shutil.rmtree(run_dir)
    return run_dir


def _shared_run_dir(args, model_name: str) -> Path:
    """`_prepare_run_dir` on rank 0 only (it may remove a run with --overwrite); every rank gets its
    answer, the run directory or the same ConfigError."""
    from gridseq.train import distributed

    return distributed.on_main(lambda: _prepare_run_dir(args, model_name))


def _open_run(run_dir: str):
    from gridseq import train

    if not Path(run_dir).is_dir():
        raise CheckpointError(f"{run_dir} is not a directory; expected a run directory written by `gridseq train` (e.g. runs/digits-cnn-s0).")
    return train.open_run(run_dir)  # the model comes back in eval mode


def _run_info(config: dict, run_dir: str):
    from gridseq.data.contract import DatasetInfo

    data = config.get("data")
    if not isinstance(data, dict) or "info" not in data:
        raise CheckpointError(f"{run_dir}/config.json has no data section; evaluate and predict need a run directory "
                              f"written by `gridseq train` (a model saved with gridseq.save has no dataset).")
    return DatasetInfo.from_json(data["info"])


def _reload_data(config: dict, run_dir: str, changes: dict | None = None):
    """The run's dataset rebuilt from its recipe, checked against the info the model was trained with.

    `changes` (evaluate's --data.KEY=VALUE) replace loader options; a fully convolutional run
    (`any_size` images, e.g. segmentation) may then see another image size, and the images are
    re-normalised with the run's own statistics."""
    from gridseq import datasets

    info = _run_info(config, run_dir)
    spec = config["data"]
    if "name" not in spec:
        raise CheckpointError(f"{run_dir}/config.json's data section does not say which dataset was used; "
                              f"it was not written by `gridseq train`.")
    options = {k: tuple(v) if isinstance(v, list) else v for k, v in spec.get("options", {}).items()}
    options.update(changes or {})
    data = datasets.load(spec["name"], seed=spec.get("seed", 0), view=spec.get("view"), **options)
    # a fully convolutional run (segmentation) takes any H x W: only the channels must match
    any_size = bool(changes) and (info.preprocessing or {}).get("image", {}).get("any_size", False)
    compared = slice(0, 1) if any_size else slice(None)
    if tuple(data.info.class_names) != tuple(info.class_names) or (
            tuple(data.info.input_shape[compared]) != tuple(info.input_shape[compared])):
        raise DataError(f"dataset {spec['name']} no longer matches the run in {run_dir}: it now has classes "
                        f"{list(data.info.class_names)} and input shape {data.info.input_shape}, the model was trained on "
                        f"{list(info.class_names)} and {info.input_shape}. Restore the data or train a new run.")
    if any_size:
        data = _renormalize(data, info)
    return data, info


def _renormalize(data, info):
    """`data`'s images normalised with `info`'s statistics instead of their own (an exact affine change)."""
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


def _jsonable(options: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in options.items()}


def _records(names: list[str], labels, probs, class_names, top_k: int, lengths=None) -> list[dict]:
    """One JSON-able record per item: its name, predicted class name and top-k class probabilities; for a
    per-step (tag) run, the class name of every step (cut to the item's length) instead."""
    if labels.dim() == 2:
        steps = lengths.tolist() if lengths is not None else [labels.shape[1]] * len(labels)
        return [{"input": name, "labels": [class_names[c] for c in row[:n]]}
                for name, row, n in zip(names, labels.tolist(), steps)]
    top_p, top_i = probs.topk(min(top_k, probs.shape[1]), dim=1)
    return [
        {"input": name, "label": class_names[label], "probabilities": {class_names[i]: round(p, 6) for p, i in zip(p_row, i_row)}}
        for name, label, p_row, i_row in zip(names, labels.tolist(), top_p.tolist(), top_i.tolist())
    ]


def _print_metrics(title: str, metrics: dict) -> None:
    from rich.table import Table

    table = Table()
    table.add_column("metric", no_wrap=True)
    table.add_column("value", justify="right", no_wrap=True)
    for key, value in metrics.items():
        table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    out = console()
    out.print(title, highlight=False, markup=False)
    out.print(table)


def _print_predictions(records: list[dict]) -> None:
    out = console()
    for r in records:
        if "labels" in r:  # one class per step
            target = f"  (true: {' '.join(r['target'])})" if "target" in r else ""
            out.print(f"{r['input']}\t{' '.join(r['labels'])}{target}", highlight=False, markup=False, soft_wrap=True)
            continue
        probs = ", ".join(f"{c} {p:.3f}" for c, p in r["probabilities"].items())
        target = f"  (true: {r['target']})" if "target" in r else ""
        out.print(f"{r['input']}\t{r['label']}\t[{probs}]{target}", highlight=False, markup=False, soft_wrap=True)
