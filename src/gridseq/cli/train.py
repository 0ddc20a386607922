"""`gridseq train DATASET --model NAME`: resolve the settings (flags > dotted overrides > the defaults
table > library defaults), load the data, fit, print the test metrics and write a run directory.

The run's config.json "data" section is the recipe `gridseq.runs.Run.reload_data` rebuilds the
dataset from: `{"name": built-in name or absolute path, "seed", "view", "options", "info"}`.
"""

from __future__ import annotations

import argparse
import inspect
import logging
import shutil
from pathlib import Path
from typing import Any

from gridseq import recipe
from gridseq.cli.common import EXIT_OK, console, image_size, non_negative_float, non_negative_int, positive_float, positive_int, print_metrics
from gridseq.cli.overrides import resolve
from gridseq.errors import ConfigError

_logger = logging.getLogger(__name__)

# model shortcut flags → model config fields
_MODEL_FLAGS = {"hidden_size": "--hidden-size", "num_layers": "--num-layers", "bidirectional": "--bidirectional", "dropout": "--dropout"}
# train flags → gridseq.train.fit keyword arguments
_TRAIN_FLAGS = ("epochs", "batch_size", "lr", "optimizer", "weight_decay", "scheduler", "grad_clip", "patience", "monitor", "device",
                "checkpoint_every", "precision", "augment", "label_smoothing")
# fit() arguments the command sets itself, so --train.KEY may not
_FIT_MANAGED = {"model", "data", "seed", "run_dir", "resume", "progress", "data_spec", "callbacks"}
_RUN_FILES = ("config.json", "model.safetensors", "metrics.json", "history.jsonl", "cv.json")


def register(sub, parents) -> None:
    """Add the `train` subcommand to the `gridseq` subparsers `sub`."""
    p = sub.add_parser(
        "train", parents=parents, help="train a model on a dataset", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train MODEL on DATASET and write a run directory (config.json, model.safetensors, metrics.json).",
        epilog="Any model config field can be set with --model.FIELD=VALUE (e.g. --model.hidden_size=256),\n"
               "any fit() argument with --train.KEY=VALUE and any dataset option with --data.KEY=VALUE;\n"
               "values are JSON when they parse (64, 0.1, true, [3,5]) and strings otherwise.\n"
               "Unset flags come from the per-dataset/model defaults table (gridseq/defaults.py).")
    p.add_argument("dataset", metavar="DATASET", help="a built-in dataset name (see `gridseq datasets`) or a path: image folder, .npz, .csv, .ts, .txt, .tsv or .json (COCO-style boxes)")
    p.add_argument("--model", required=True, metavar="NAME", help="a registered model (see `gridseq models`)")
    t = p.add_argument_group("training")
    t.add_argument("--epochs", type=positive_int)
    t.add_argument("--batch-size", type=positive_int)
    t.add_argument("--lr", type=positive_float, help="learning rate")
    t.add_argument("--optimizer", help="e.g. adam, adamw, sgd")
    t.add_argument("--weight-decay", type=non_negative_float)
    t.add_argument("--scheduler", help="learning-rate schedule, e.g. cosine, none")
    t.add_argument("--grad-clip", type=non_negative_float, help="clip the gradient norm to this value (0: off)")
    t.add_argument("--label-smoothing", type=non_negative_float, metavar="EPS",
                   help="smooth the training targets of classification, tagging and seq2seq: (1 - EPS)·one-hot + EPS/K (e.g. 0.1)")
    t.add_argument("--patience", type=positive_int, help="stop after this many epochs without a better validation score")
    t.add_argument("--monitor", metavar="METRIC",
                   help="the validation metric that picks the best epoch and drives --patience, e.g. macro_f1 (default: the task's primary)")
    t.add_argument("--cv", type=positive_int, metavar="K",
                   help="k-fold cross-validation on the training items (train + val; test is not read): per-fold and "
                        "mean scores and the best epoch count, written to cv.json (docs/training.md, Small data)")
    t.add_argument("--refit", action="store_true",
                   help="with --cv: then train on all training items for the chosen epoch count and report test metrics")
    t.add_argument("--seed", type=int, default=0, help="seeds data splits, weights and shuffling (default: 0)")
    t.add_argument("--device", help="cpu, cuda, cuda:1, mps or auto (under torchrun, cuda/auto: GPU LOCAL_RANK of each process)")
    t.add_argument("--precision", choices=("fp32", "bf16", "fp16"),
                   help="fp32 (default), bf16 (autocast; CUDA or CPU) or fp16 (autocast + grad scaling; CUDA)")
    t.add_argument("--threads", type=positive_int, metavar="N",
                   help="CPU threads per operation (default: torch's, one per core); use 1 when several runs share the cores")
    t.add_argument("--checkpoint-every", type=positive_int, metavar="N", help="also checkpoint every N optimizer steps (always at each epoch end)")
    t.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="show progress (default: a bar on a terminal, one line per epoch otherwise)")
    r = p.add_argument_group("run directory")
    r.add_argument("--run-dir", help="where to write the run (default: runs/<dataset>-<model>-s<seed>)")
    r.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its last checkpoint")
    r.add_argument("--overwrite", action="store_true", help="replace an existing run in --run-dir")
    m = p.add_argument_group("model (shortcuts for --model.FIELD)")
    m.add_argument("--hidden-size", type=positive_int)
    m.add_argument("--num-layers", type=positive_int)
    m.add_argument("--bidirectional", action=argparse.BooleanOptionalAction, default=None)
    m.add_argument("--dropout", type=non_negative_float)
    d = p.add_argument_group("data")
    d.add_argument("--view", choices=("image", "sequence"),
                   help="how to present the data (default: what the model takes; images become row sequences for recurrent models)")
    d.add_argument("--image-size", type=image_size, metavar="HxW", help="resize images from a folder to HxW")
    d.add_argument("--stream", action=argparse.BooleanOptionalAction, default=None,
                   help="image folders: decode images on demand in worker processes (--stream) or all up front "
                        "(--no-stream); default: stream when the decoded images would take over 10%% of available memory or 256 MiB")
    d.add_argument("--workers", type=non_negative_int, metavar="N",
                   help="decoder processes of a streamed dataset (0: decode in the training process; default: half the cores, 1 to 4)")
    d.add_argument("--cache", metavar="DIR",
                   help="image folders: keep the decoded, resized images in DIR after their first read (streams the folder)")
    d.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                   help="augment training batches, seeded by seed, epoch and item: images (random resized crop, flip, "
                        "small rotation, colour jitter), audio (SpecAugment masks, noise), series (jitter, scaling); "
                        "default: off; settings with --train.augment '{\"rotation\": 0}' (see docs/datasets.md, Augmentation)")
    d.add_argument("--label-column", metavar="NAME", help="the label column of a CSV file (default: label)")
    d.add_argument("--task", choices=("classify", "lm", "seq2seq", "forecast"),
                   help="what to learn from a file: classify (CSV text+label), lm (plain text), seq2seq (TSV source/target), forecast (CSV series)")
    p.set_defaults(handler=cmd_train, override_prefixes=("",))  # every section; `resolve` checks the keys


def cmd_train(args, raw_overrides: dict[str, str]) -> int:
    """`gridseq train`; under torchrun (WORLD_SIZE > 1 in the environment) one process of a distributed
    run: the process group comes up first and goes down last, and only rank 0 writes and prints."""
    import torch

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
    from gridseq import defaults, models, train
    from gridseq.tasks import matching
    from gridseq.train import distributed

    _check_cv_flags(args)

    entry = models.entry(args.model)
    fit_keys = [p for p in inspect.signature(train.fit).parameters if p not in _FIT_MANAGED]
    overrides = resolve(raw_overrides, model_cls_config=entry.config_cls, train_keys=fit_keys)
    model_kw = _model_settings(args, entry, overrides["model"])
    options = {k: v for k, v in (("image_size", args.image_size), ("label_column", args.label_column), ("task", args.task),
                                 ("stream", args.stream), ("workers", args.workers), ("cache", args.cache))
               if v is not None}
    options.update(overrides["data"])
    run_dir = _shared_run_dir(args, entry.name)

    data, spec, reader = recipe.load_for_model(args.dataset, entry.name, seed=args.seed, view=args.view, options=options)
    table = defaults.lookup(args.dataset, entry.name, reader=reader)
    flags = {k: getattr(args, k) for k in _TRAIN_FLAGS if getattr(args, k) is not None}
    settings = {**table["train"], **overrides["train"]}
    if flags.get("augment") is True and isinstance(settings.get("augment"), dict):
        del flags["augment"]  # --augment turns augmentation on; the policy's settings (--train.augment or the table) stay
    train_kw = {**settings, **flags}
    model_kw = {**{k: v for k, v in table["model"].items() if k in _fields(entry)}, **model_kw}
    if args.cv:
        return _cross_validate(args, entry, data, model_kw, train_kw, run_dir, spec)
    train.seed_everything(args.seed)  # the initial weights are part of what --seed reproduces
    model = matching.create_for(entry.name, data.info, **model_kw)

    _logger.info("training %s on %s: %s", entry.name, args.dataset, train_kw)
    result = train.fit(model, data, seed=args.seed, run_dir=run_dir, resume=args.resume, progress=args.progress, data_spec=spec, **train_kw)

    if distributed.is_main():
        print_metrics(f"test metrics ({entry.name} on {args.dataset})", result.test)
        console().print(f"trained in {result.train_seconds:.1f} s\nrun dir: {result.run_dir}", highlight=False, markup=False, soft_wrap=True)
    return EXIT_OK


def _check_cv_flags(args) -> None:
    """--cv K / --refit: the combinations that make sense (before any data is read)."""
    from gridseq.train import distributed

    if args.refit and not args.cv:
        raise ConfigError("--refit retrains on all training items for the epoch count cross-validation chose; "
                          "give --cv K with it (e.g. --cv 5 --refit).")
    if args.cv is None:
        return
    if args.cv < 2:
        raise ConfigError(f"--cv needs K >= 2 folds (k-fold cross-validation), got {args.cv}; e.g. --cv 5.")
    if args.resume:
        raise ConfigError("--cv cannot --resume: cross-validation keeps no checkpoints; rerun it (with --overwrite "
                          "to replace the run directory).")
    if distributed.is_distributed():
        raise ConfigError("--cv runs in one process (its folds train one after the other); run it without torchrun.")


def _cross_validate(args, entry, data, model_kw: dict, train_kw: dict, run_dir: Path, spec: dict) -> int:
    """`--cv K [--refit]`: k-fold cross-validation on train + val, cv.json, then optionally the refit."""
    from gridseq import train
    from gridseq._atomic import atomic_write_json, ensure_dir
    from gridseq.tasks import matching

    def build():
        return matching.create_for(entry.name, data.info, **model_kw)

    cv = train.cross_validate(build, data, folds=args.cv, seed=args.seed, progress=args.progress, **train_kw)
    ensure_dir(run_dir)
    atomic_write_json(run_dir / "cv.json", {"dataset": spec["name"], "model": entry.name, "model_settings": recipe.jsonable(model_kw),
                                            "train": recipe.jsonable(train_kw), **cv.to_json()})
    out = console()
    out.print(f"{args.cv}-fold cross-validation ({entry.name} on {args.dataset}, {cv.items} training items; "
              f"held-out {cv.primary} after {_epochs(cv.best_epochs)}):", highlight=False, markup=False, soft_wrap=True)
    for i, (score, n) in enumerate(zip(cv.scores, cv.fold_sizes)):
        out.print(f"  fold {i + 1}: {score:.4f} ({n} held out)", highlight=False, markup=False)
    out.print(f"  mean {cv.mean:.4f} ± {cv.std:.4f}\nchosen epochs: {cv.best_epochs} of {len(cv.mean_curve)} "
              f"(best mean held-out {cv.primary})\ncv: {run_dir / 'cv.json'}", highlight=False, markup=False, soft_wrap=True)
    if not args.refit:
        return EXIT_OK
    refit_kw = {k: v for k, v in train_kw.items() if k not in ("epochs", "select", "patience")}  # refit: the chosen count, last weights
    result = train.refit(build, data, epochs=cv.best_epochs, seed=args.seed, cv=cv, run_dir=run_dir,
                         progress=args.progress, data_spec=spec, **refit_kw)
    print_metrics(f"test metrics ({entry.name} on {args.dataset}, refit on all {cv.items} training items "
                  f"for {_epochs(cv.best_epochs)})", result.test)
    out.print(f"trained in {result.train_seconds:.1f} s\nrun dir: {result.run_dir}", highlight=False, markup=False, soft_wrap=True)
    return EXIT_OK


def _epochs(n: int) -> str:
    return f"{n} epoch" if n == 1 else f"{n} epochs"


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


def _prepare_run_dir(args, model_name: str) -> Path:
    """The run directory; refuses to replace an existing run unless --resume or --overwrite."""
    if args.resume and args.overwrite:
        raise ConfigError("--resume continues the run in --run-dir and --overwrite replaces it; give one of them.")
    run_dir = Path(args.run_dir or Path("runs") / f"{recipe.run_name(args.dataset)}-{model_name}-s{args.seed}")
    if args.resume or not run_dir.exists() or not any(run_dir.iterdir()):
        return run_dir
    is_run = any((run_dir / f).exists() for f in _RUN_FILES) or any(run_dir.glob("checkpoint*"))
    if not is_run:
        raise ConfigError(f"{run_dir} exists, is not empty and is not a gridseq run directory; choose another --run-dir.")
    if not args.overwrite:
        finished = (run_dir / "metrics.json").exists()
        state = ("holds a finished run" if finished else "holds a cross-validation result (cv.json)"
                 if (run_dir / "cv.json").exists() and not (run_dir / "config.json").exists() else "holds an unfinished run")
        raise ConfigError(f"{run_dir} {state}; pass --resume to continue it, --overwrite to replace it, or another --run-dir.")
    _logger.warning("--overwrite: removing the run in %s", run_dir)
    shutil.rmtree(run_dir)
    return run_dir


def _shared_run_dir(args, model_name: str) -> Path:
    """`_prepare_run_dir` on rank 0 only (it may remove a run with --overwrite); every rank gets its
    answer, the run directory or the same ConfigError."""
    from gridseq.train import distributed

    return distributed.on_main(lambda: _prepare_run_dir(args, model_name))
