"""`gridseq export RUN_DIR`: a run's model as an ONNX or TorchScript file, checked against PyTorch.

    gridseq export runs/walks-lstm-s0 --format onnx --out walks.onnx

The file is verified against PyTorch on sample inputs and the check is printed (exit 2 if it
fails). See docs/serving.md.
"""

from __future__ import annotations

import argparse
import sys

from gridseq.cli.common import EXIT_OK, print_json


def register(sub, parents) -> None:
    """Add the `export` subcommand to the `gridseq` subparsers `sub`."""
    p = sub.add_parser("export", parents=parents, help="export a trained run to ONNX or TorchScript",
                       description="Export a run's model with dynamic batch size and sequence length (image size for FCNs), "
                                   "then check the file against PyTorch on sample inputs (max abs diff <= 1e-4). "
                                   "Needs `pip install 'gridseq[export]'`.")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--format", choices=("onnx", "torchscript"), default="onnx", help="default: onnx")
    p.add_argument("--out", metavar="FILE", help="where to write (default: RUN_DIR/model.onnx or RUN_DIR/model.ts.pt)")
    p.add_argument("--no-check", dest="check", action="store_false", help="skip the comparison with PyTorch")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(handler=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    from gridseq.export import export

    report = export(args.run_dir, args.out, format=args.format, check=args.check)
    if args.json:
        print_json(report.to_json())
    else:
        sys.stdout.write("\n".join(report.lines()) + "\n")  # long paths stay on one line
    return EXIT_OK
