"""The `gridseq` command: list datasets and models, train, evaluate and predict.

    gridseq datasets
    gridseq models
    gridseq train digits --model cnn
    gridseq evaluate runs/digits-cnn-s0 --split test
    gridseq predict runs/digits-cnn-s0 some.png --top-k 3
    gridseq forecast runs/sunspots-lstm-s0 --horizon 22 --plot forecast.png
    gridseq compare mnist1d
    gridseq serve runs/digits-cnn-s0 --token-file token.txt
    gridseq export runs/digits-cnn-s0 --format onnx
    gridseq inspect runs/digits-cnn-s0 --out pics

Exit codes: 0 success; 2 a usage or input error (any `GridseqError`), printed as one line
`gridseq: error: <message>`; 130 interrupted (Ctrl-C); 1 anything else, which is a bug and prints a
traceback. `python -m gridseq` is the same command. The commands that do work live in cli_run.py.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from collections.abc import Sequence

from gridseq import __version__
from gridseq._validation import did_you_mean
from gridseq.cli_overrides import split_overrides
from gridseq.errors import ConfigError, GridseqError

_logger = logging.getLogger(__name__)

EXIT_OK, EXIT_BUG, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class UsageError(ConfigError):
    """A command line argparse rejects (unknown flag, missing argument, bad value)."""


class _Parser(argparse.ArgumentParser):
    # argparse prints the usage block and exits; gridseq wants one line and the same exit path as
    # every other user error, so raise and let main() print it
    def error(self, message: str):
        choice = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        hint = did_you_mean(choice.group(1), re.findall(r"'([^']*)'", choice.group(2))) if choice else ""
        raise UsageError(f"{message}.{hint} See `{self.prog} --help`.")


def _number(cast, ok, expected: str):
    """An argparse `type` that parses with `cast` and accepts values for which `ok(value)` holds."""

    def parse(text: str):
        try:
            value = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text}")
        return value

    return parse


_positive_int = _number(int, lambda v: v >= 1, "a positive int")
_positive_float = _number(float, lambda v: v > 0, "a positive number")
_non_negative_float = _number(float, lambda v: v >= 0, "a number >= 0")
_non_negative_int = _number(int, lambda v: v >= 0, "an int >= 0")


def _image_size(text: str) -> tuple[int, int]:
    """'28x28' or '28' → (28, 28)."""
    parts = text.lower().split("x")
    try:
        size = tuple(int(p) for p in parts)
    except ValueError:
        size = ()
    if len(size) == 1:
        size = size * 2
    if len(size) != 2 or min(size) < 1:
        raise argparse.ArgumentTypeError(f"expected HxW such as 28x28 (or one number for a square), got {text!r}")
    return size


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser for every `gridseq` subcommand."""
    verbosity = _Parser(add_help=False)
    # SUPPRESS: -v after a subcommand must not reset a -v given before it
    verbosity.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                           help="log more (-v info, -vv debug)")

    parser = _Parser(prog="gridseq", parents=[verbosity],
                     description="CNNs, RNNs and CNN→RNN hybrids on PyTorch: train, evaluate, predict, generate, compare, inspect, serve and export from the command line.",
                     epilog="Exit codes: 0 ok, 2 usage or input error, 130 interrupted, 1 internal error (a bug).")
    parser.add_argument("--version", action="version", version=f"gridseq {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=_Parser)

    p = sub.add_parser("datasets", parents=[verbosity], help="list the built-in datasets",
                       description="List the built-in datasets: kind, split sizes, classes, whether lengths vary.")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")

    p = sub.add_parser("models", parents=[verbosity], help="list the registered models",
                       description="List the registered models: the data kinds each takes and a description.")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")

    p = sub.add_parser(
        "train", parents=[verbosity], help="train a model on a dataset", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train MODEL on DATASET and write a run directory (config.json, model.safetensors, metrics.json).",
        epilog="Any model config field can be set with --model.FIELD=VALUE (e.g. --model.hidden_size=256),\n"
               "any fit() argument with --train.KEY=VALUE and any dataset option with --data.KEY=VALUE;\n"
               "values are JSON when they parse (64, 0.1, true, [3,5]) and strings otherwise.\n"
               "Unset flags come from the per-dataset/model defaults table (gridseq/defaults.py).")
    p.add_argument("dataset", metavar="DATASET", help="a built-in dataset name (see `gridseq datasets`) or a path: image folder, .npz, .csv, .ts, .txt, .tsv or .json (COCO-style boxes)")
    p.add_argument("--model", required=True, metavar="NAME", help="a registered model (see `gridseq models`)")
    t = p.add_argument_group("training")
    t.add_argument("--epochs", type=_positive_int)
    t.add_argument("--batch-size", type=_positive_int)
    t.add_argument("--lr", type=_positive_float, help="learning rate")
    t.add_argument("--optimizer", help="e.g. adam, adamw, sgd")
    t.add_argument("--weight-decay", type=_non_negative_float)
    t.add_argument("--scheduler", help="learning-rate schedule, e.g. cosine, none")
    t.add_argument("--grad-clip", type=_non_negative_float, help="clip the gradient norm to this value (0: off)")
    t.add_argument("--patience", type=_positive_int, help="stop after this many epochs without a better validation score")
    t.add_argument("--seed", type=int, default=0, help="seeds data splits, weights and shuffling (default: 0)")
    t.add_argument("--device", help="cpu, cuda, cuda:1, mps or auto (under torchrun, cuda/auto: GPU LOCAL_RANK of each process)")
    t.add_argument("--precision", choices=("fp32", "bf16", "fp16"),
                   help="fp32 (default), bf16 (autocast; CUDA or CPU) or fp16 (autocast + grad scaling; CUDA)")
    t.add_argument("--threads", type=_positive_int, metavar="N",
                   help="CPU threads per operation (default: torch's, one per core); use 1 when several runs share the cores")
    t.add_argument("--checkpoint-every", type=_positive_int, metavar="N", help="also checkpoint every N optimizer steps (always at each epoch end)")
    t.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="show progress (default: a bar on a terminal, one line per epoch otherwise)")
    r = p.add_argument_group("run directory")
    r.add_argument("--run-dir", help="where to write the run (default: runs/<dataset>-<model>-s<seed>)")
    r.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its last checkpoint")
    r.add_argument("--overwrite", action="store_true", help="replace an existing run in --run-dir")
    m = p.add_argument_group("model (shortcuts for --model.FIELD)")
    m.add_argument("--hidden-size", type=_positive_int)
    m.add_argument("--num-layers", type=_positive_int)
    m.add_argument("--bidirectional", action=argparse.BooleanOptionalAction, default=None)
    m.add_argument("--dropout", type=_non_negative_float)
    d = p.add_argument_group("data")
    d.add_argument("--view", choices=("image", "sequence"),
                   help="how to present the data (default: what the model takes; images become row sequences for recurrent models)")
    d.add_argument("--image-size", type=_image_size, metavar="HxW", help="resize images from a folder to HxW")
    d.add_argument("--stream", action=argparse.BooleanOptionalAction, default=None,
                   help="image folders: decode images on demand in worker processes (--stream) or all up front "
                        "(--no-stream); default: stream when the decoded images would take over 10%% of available memory or 256 MiB")
    d.add_argument("--workers", type=_non_negative_int, metavar="N",
                   help="decoder processes of a streamed dataset (0: decode in the training process; default: the cores, at most 4)")
    d.add_argument("--cache", metavar="DIR",
                   help="image folders: keep the decoded, resized images in DIR after their first read (streams the folder)")
    d.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                   help="augment training images (random resized crop, flip, small rotation, colour jitter; seeded by "
                        "seed, epoch and item); default: on for image folders, off for built-ins")
    d.add_argument("--label-column", metavar="NAME", help="the label column of a CSV file (default: label)")
    d.add_argument("--task", choices=("classify", "lm", "seq2seq", "forecast"),
                   help="what to learn from a file: classify (CSV text+label), lm (plain text), seq2seq (TSV source/target), forecast (CSV series)")

    p = sub.add_parser("evaluate", parents=[verbosity], help="evaluate a trained run on one of its splits",
                       description="Reload the run's dataset exactly as it was trained (same seed, view and options) and print metrics.")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--split", choices=("test", "val", "train"), default="test", help="default: test")
    p.add_argument("--batch-size", type=_positive_int, default=256)
    p.add_argument("--beam", type=_positive_int, metavar="N", help="seq2seq and caption runs: decode with beam search of width N (default: greedy)")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.epilog = ("--data.KEY=VALUE changes one of the run's dataset options, e.g. --data.size=97x131 evaluates a "
                "shapes-seg model on images of another size (normalised with the run's own statistics).")

    p = sub.add_parser("predict", parents=[verbosity], help="predict labels with a trained run",
                       description="Predict the label and class probabilities of each input: image files, or .npz / .csv files "
                                   "of sequences (one prediction per row), prepared exactly like the training data.")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("inputs", metavar="INPUT", nargs="*", help="image files, .npz or .csv files; for text runs, the texts themselves")
    p.add_argument("--split", choices=("test", "val", "train"), help="predict on the run's own dataset split instead of INPUTs")
    p.add_argument("--invert", action="store_true", help="images: use 1 - pixel (dark ink on light paper, for a model trained on light on dark)")
    p.add_argument("--top-k", type=_positive_int, default=3, metavar="K", help="how many classes to list per item (default: 3)")
    p.add_argument("--batch-size", type=_positive_int, default=256)
    p.add_argument("--beam", type=_positive_int, default=1, metavar="N", help="seq2seq and caption runs: beam width (default: 1, greedy)")
    p.add_argument("--json", action="store_true", help="print JSON: one record per item")
    p.add_argument("--out", metavar="PATH", help="segmentation runs: write the colour mask to PATH (a .png for one input, "
                                                 "else a folder) and an overlay beside it (<name>_overlay.png); detection runs: the image "
                                                 "with its boxes drawn (PATH.png for one input, else PATH/<name>_boxes.png)")
    from gridseq import cli_forecast  # argparse only: cheap to import

    cli_forecast.add_parser(sub, [verbosity], _positive_int)
    from gridseq import cli_compare  # argparse only: cheap to import

    cli_compare.add_parser(sub, [verbosity], _positive_int)
    from gridseq import cli_text

    cli_text.add_parser(sub, [verbosity], _positive_int, _non_negative_float)
    from gridseq import cli_serve  # argparse only: cheap to import

    cli_serve.add_parser(sub, [verbosity], _positive_int, _non_negative_float)
    from gridseq import cli_inspect  # argparse only: cheap to import

    cli_inspect.add_parser(sub, [verbosity], _positive_int)
    from gridseq import cli_sample  # argparse only: cheap to import

    cli_sample.add_parser(sub, [verbosity], _positive_int)
    parser.subcommands = sub.choices  # name → subparser, for error messages
    return parser


def _setup_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    root = logging.getLogger("gridseq")
    root.setLevel(level)
    if not any(isinstance(h, _StderrHandler) for h in root.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("gridseq: %(levelname)s: %(message)s"))
        root.addHandler(handler)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time (tests and notebooks swap it)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value):
        pass


def console():
    """A rich Console on the current stdout (created per call so redirection is honoured)."""
    from rich.console import Console

    return Console(file=sys.stdout, soft_wrap=False)


def print_json(obj) -> None:
    sys.stdout.write(json.dumps(obj, indent=2) + "\n")


def cmd_datasets(args) -> int:
    from rich.table import Table

    from gridseq import datasets

    records = datasets.describe()
    if args.json:
        print_json(records)
        return EXIT_OK
    table = Table(title="gridseq datasets")
    for col, kw in (("name", {"no_wrap": True, "style": "bold"}), ("kind", {}), ("train", {"justify": "right"}),
                    ("val", {"justify": "right"}), ("test", {"justify": "right"}), ("classes", {"justify": "right"}),
                    ("lengths", {}), ("description", {})):
        table.add_column(col, **kw)
    for r in records:
        table.add_row(r["name"], r["kind"], str(r["train"]), str(r["val"]), str(r["test"]), str(r["num_classes"]),
                      "vary" if r["variable_length"] else "fixed", r["description"])
    console().print(table)
    return EXIT_OK


def cmd_models(args) -> int:
    from rich.table import Table

    from gridseq import models

    records = [{"name": n, "kinds": list(models.entry(n).kinds), "description": models.entry(n).description} for n in models.names()]
    if args.json:
        print_json(records)
        return EXIT_OK
    table = Table(title="gridseq models")
    table.add_column("name", no_wrap=True, style="bold")
    table.add_column("kinds", no_wrap=True)
    table.add_column("description")
    for r in records:
        table.add_row(r["name"], ", ".join(r["kinds"]), r["description"])
    console().print(table)
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `gridseq` command with `argv` (default: sys.argv[1:]) and return its exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = None
    try:
        try:
            rest, raw_overrides = split_overrides(argv)
            parser = build_parser()
            args, extra = parser.parse_known_args(rest)
            if extra:
                _unrecognized(parser, args.command, extra)
        except SystemExit as e:  # --help and --version exit 0 through argparse
            return int(e.code or 0) if not isinstance(e.code, str) else EXIT_USAGE
        command = args.command
        _setup_logging(getattr(args, "verbose", 0))
        if raw_overrides and args.command == "evaluate" and all(k.startswith("data.") for k in raw_overrides):
            pass  # evaluate on a variant of the run's dataset: its loader options changed (e.g. --data.size=97x131)
        elif raw_overrides and args.command != "train":
            raise UsageError(f"--{next(iter(raw_overrides))}=... is a train option; `gridseq {args.command}` takes none "
                             f"(see `gridseq {args.command} --help`)")
        if args.command == "datasets":
            return cmd_datasets(args)
        if args.command == "models":
            return cmd_models(args)
        from gridseq import cli_run

        if args.command == "train":
            return cli_run.cmd_train(args, raw_overrides)
        if args.command == "evaluate":
            return cli_run.cmd_evaluate(args, raw_overrides)
        if args.command == "forecast":
            from gridseq import cli_forecast

            return cli_forecast.cmd_forecast(args)
        if args.command == "compare":
            from gridseq import cli_compare

            return cli_compare.cmd_compare(args)
        if args.command == "generate":
            from gridseq import cli_text

            return cli_text.cmd_generate(args)
        if args.command == "inspect":
            from gridseq import cli_inspect

            return cli_inspect.cmd_inspect(args)
        if args.command == "sample":
            from gridseq import cli_sample

            return cli_sample.cmd_sample(args)
        if args.command in ("serve", "export"):
            from gridseq import cli_serve

            return cli_serve.cmd_serve(args) if args.command == "serve" else cli_serve.cmd_export(args)
        return cli_run.cmd_predict(args)
    except GridseqError as e:
        _error_line(" ".join(str(e).split()))  # one line even when the message has several
        return EXIT_USAGE
    except KeyboardInterrupt:
        _error_line("interrupted" + (" (continue with `gridseq train ... --resume`)" if command == "train" else ""))
        return EXIT_INTERRUPTED


def _unrecognized(parser: argparse.ArgumentParser, command: str, extra: list[str]):
    """UsageError for flags the subcommand does not know, with the closest one it does."""
    sub = parser.subcommands[command]
    flags = [o for action in sub._actions for o in action.option_strings]
    first = next((e.split("=")[0] for e in extra if e.startswith("-")), "")
    raise UsageError(f"unrecognized arguments: {' '.join(extra)}.{did_you_mean(first, flags)} See `{sub.prog} --help`.")


def _error_line(message: str) -> None:
    sys.stderr.write(f"gridseq: error: {message}\n")
    sys.stderr.flush()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
