"""`gridseq evaluate RUN_DIR`: the run's dataset rebuilt exactly as it was trained (same seed, view and
options, through `gridseq.runs.Run.reload_data`), one split evaluated, its metrics printed.

    gridseq evaluate runs/digits-cnn-s0 --split test
    gridseq evaluate runs/shapes-seg-fcn-s0 --data.size=97x131   # a variant of the run's dataset
    gridseq evaluate runs/digits-dcgan-s0                       # generators: loss terms, class_accuracy, fid
"""

from __future__ import annotations

from gridseq.cli.common import EXIT_OK, positive_int, print_json, print_metrics
from gridseq.errors import ConfigError


def register(sub, parents) -> None:
    """Add the `evaluate` subcommand to the `gridseq` subparsers `sub`."""
    p = sub.add_parser("evaluate", parents=parents, help="evaluate a trained run on one of its splits",
                       description="Reload the run's dataset exactly as it was trained (same seed, view and options) and print metrics.")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--split", choices=("test", "val", "train"), default="test", help="default: test")
    p.add_argument("--batch-size", type=positive_int, default=256)
    p.add_argument("--beam", type=positive_int, metavar="N", help="seq2seq and caption runs: decode with beam search of width N (default: greedy)")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.epilog = ("--data.KEY=VALUE changes one of the run's dataset options, e.g. --data.size=97x131 evaluates a "
                "shapes-seg model on images of another size (normalised with the run's own statistics).")
    p.set_defaults(handler=cmd_evaluate, override_prefixes=("data.",))


def cmd_evaluate(args, raw_overrides: dict[str, str] | None = None) -> int:
    from gridseq import train
    from gridseq.cli.overrides import parse_value
    from gridseq.runs import Run

    run = Run.open(args.run_dir)
    model = run.model
    changes = {k.partition(".")[2]: parse_value(v) for k, v in (raw_overrides or {}).items()}
    data = run.reload_data(changes)
    task = run.task
    for name, split in data.splits().items():  # as fit does; a generate-image task also learns its frozen
        task.check_split(split, name)          # scoring classifier from the train split (class_accuracy, fid)
    if args.beam is not None:
        if not hasattr(task, "configure"):
            raise ConfigError(f"--beam applies to seq2seq runs; {args.run_dir} is a {run.info.task} run.")
        task.configure(beam=args.beam)
    metrics = train.evaluate(model, data.splits()[args.split], task=task, batch_size=args.batch_size)
    if args.json:
        print_json(metrics)
    else:
        print_metrics(f"{args.split} metrics ({args.run_dir})", metrics)
    return EXIT_OK
