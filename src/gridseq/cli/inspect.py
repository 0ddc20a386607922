"""`gridseq inspect RUN_DIR`: PNG pictures of what a trained network learned.

    gridseq inspect runs/digits-cnn-s0                       # filters.png, feature_maps.png
    gridseq inspect runs/surnames-lstm-s0 --index 5          # rnn_trace.png for test item 5
    gridseq inspect runs/dates-seq2seq-s0 --input "3 de marzo de 1999" --out pics
    gridseq inspect runs/dates-seq2seq-s0 --layer decoder.rnn

The pictures go to --out (default: RUN_DIR/inspect); see docs/inspect.md for what each one shows.
They need matplotlib (`pip install 'gridseq[plot]'`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from gridseq.cli.common import EXIT_OK, console, non_negative_int, positive_int, print_json


def register(sub, parents) -> None:
    """Add the `inspect` subcommand to the `gridseq` subparsers `sub`."""
    p = sub.add_parser(
        "inspect", parents=parents, help="draw what a trained network learned (filters, gates, attention) as PNGs",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Write PNGs of a trained run for one input: the first-layer conv filters (with edge scores) and "
                    "their feature maps, the gate activations and states of a recurrent layer over time, and the "
                    "attention weights of each decoded step (seq2seq, captioning). Each picture is drawn when the "
                    "model has the part it shows.",
        epilog="Files: filters.png, feature_maps.png (convolutions), rnn_trace.png (recurrent layers), "
               "attention.png (decoders with attention).\nWithout --input the item --index of the run's --split "
               "is shown, rebuilt as `gridseq evaluate` does.")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--input", metavar="X",
                   help="an image file, a .npz/.csv file of sequences (row --index), or for text runs the text itself")
    p.add_argument("--split", choices=("test", "val", "train"), default="test",
                   help="without --input: the split to take the item from (default: test)")
    p.add_argument("--index", type=non_negative_int, default=0, metavar="N",
                   help="which item of the split, or row of the --input file (default: 0)")
    p.add_argument("--out", metavar="DIR", help="where to write the PNGs (default: RUN_DIR/inspect)")
    p.add_argument("--layer", metavar="NAME",
                   help="the recurrent layer to trace, by module name, e.g. decoder.rnn (default: the first one)")
    p.add_argument("--beam", type=positive_int, default=1, metavar="N", help="decoders: beam width for attention.png (default: 1)")
    p.add_argument("--json", action="store_true", help="print what was written as JSON")
    p.set_defaults(handler=cmd_inspect)


def cmd_inspect(args: argparse.Namespace) -> int:
    from gridseq.inspect import inspect_run

    out = Path(args.out) if args.out else Path(args.run_dir) / "inspect"
    result = inspect_run(args.run_dir, out, input=args.input, split=args.split, index=args.index, beam=args.beam,
                         layer=args.layer)
    if args.json:
        print_json({"item": result.item, "files": [str(f) for f in result.files], "notes": result.notes,
                    "edge_scores": result.edge_scores})
        return EXIT_OK
    lines = [f"inspected {args.run_dir} on {result.item}:"] + [f"  {f}" for f in result.files] + result.notes
    console().print("\n".join(lines), highlight=False, markup=False, soft_wrap=True)
    return EXIT_OK
