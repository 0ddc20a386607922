"""`gridseq generate RUN_DIR`: text sampled from a trained language model, streamed to stdout.

    gridseq train pydoc --model lstm
    gridseq generate runs/pydoc-lstm-s0 --prompt "The " --length 300 --temperature 0.8 --seed 1

Generation streams its text to stdout as it is sampled. (`gridseq predict` on text runs lives in
`gridseq.cli.predict`.)
"""

from __future__ import annotations

import argparse
import sys

from gridseq.cli.common import EXIT_OK, non_negative_float, positive_int


def register(sub, parents) -> None:
    """Add the `generate` subcommand to the `gridseq` subparsers `sub`."""
    p = sub.add_parser("generate", parents=parents, help="generate text with a trained language model",
                       description="Sample text from a language-model run (e.g. `gridseq train pydoc --model lstm`), "
                                   "streaming it as it is generated.")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--prompt", default="", help="text to start from (default: a new line)")
    p.add_argument("--length", type=positive_int, default=200, metavar="N", help="tokens to generate (default: 200)")
    p.add_argument("--temperature", type=non_negative_float, default=1.0, metavar="T",
                   help="softmax temperature; 0 = always the most likely token (default: 1)")
    p.add_argument("--top-k", type=positive_int, metavar="K", help="sample among the K most likely tokens only")
    p.add_argument("--seed", type=int, help="seed the sampler: the same seed gives the same text")
    p.set_defaults(handler=cmd_generate)


def cmd_generate(args: argparse.Namespace) -> int:
    from gridseq.textgen import stream_text

    pieces = stream_text(args.run_dir, args.prompt, length=args.length, temperature=args.temperature,
                         top_k=args.top_k, seed=args.seed)  # checks everything before any output
    out = sys.stdout
    out.write(args.prompt)
    for piece in pieces:
        out.write(piece)
        out.flush()
    out.write("\n")
    return EXIT_OK
