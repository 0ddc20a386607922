"""Text at the command line: `gridseq generate` and `gridseq predict` on text runs.

    gridseq train pydoc --model lstm
    gridseq generate runs/pydoc-lstm-s0 --prompt "The " --length 300 --temperature 0.8 --seed 1
    gridseq predict runs/surnames-gru-s0 Nakamura Schmidt "O'Brien"
    gridseq predict runs/dates-seq2seq-s0 "3 de marzo de 1999" --beam 4

Generation streams its text to stdout as it is sampled. For classification runs on text, each INPUT
is one text; for seq2seq runs, each INPUT is a source text and the decoded target is printed.
"""

from __future__ import annotations

import argparse
import sys

from gridseq.cli import EXIT_OK, console, print_json
from gridseq.errors import ConfigError


def add_parser(sub, parents, positive_int, non_negative_float) -> None:
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


def predict_text(args: argparse.Namespace, model, info, texts: list[str], targets: list | None) -> int:
    """Predictions for `texts` with a text run: class probabilities, or decoded target sequences
    (through `gridseq.predict.Predictor`, as the server does)."""
    from gridseq.cli_run import _print_predictions
    from gridseq.predict import Predictor

    if info.task == "lm":
        raise ConfigError(f"{args.run_dir} is a language model; sample from it with `gridseq generate {args.run_dir} --prompt TEXT`.")
    predictor = Predictor(model, info)
    options = {"beam": args.beam} if info.task == "seq2seq" else {"top_k": args.top_k}
    records = []
    for start in range(0, len(texts), args.batch_size):
        chunk = texts[start : start + args.batch_size]
        out = predictor.predict(chunk, **options)
        if info.task == "seq2seq":
            records.extend({"input": t, "output": o} for t, o in zip(chunk, out["predictions"]))
        else:
            records.extend({"input": t, "label": label, "probabilities": p}
                           for t, label, p in zip(chunk, out["predictions"], out["probabilities"]))
    for record, target in zip(records, targets or []):
        record["target"] = target if isinstance(target, str) else info.class_names[target]
    if args.json:
        print_json(records)
    elif info.task == "seq2seq":
        out = console()
        for r in records:
            target = f"  (true: {r['target']})" if "target" in r else ""
            out.print(f"{r['input']}\t{r['output']}{target}", highlight=False, markup=False, soft_wrap=True)
    else:
        _print_predictions(records)
    return EXIT_OK
