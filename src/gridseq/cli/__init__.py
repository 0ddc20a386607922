"""The `gridseq` command: list datasets and models, train, tune, evaluate, predict, forecast, generate,
compare, inspect, sample, serve and export.

    gridseq datasets
    gridseq models
    gridseq train digits --model cnn
    gridseq tune mnist1d --model gru --trials 30 --timeout 1200
    gridseq evaluate runs/digits-cnn-s0 --split test
    gridseq predict runs/digits-cnn-s0 some.png --top-k 3
    gridseq forecast runs/sunspots-lstm-s0 --horizon 22 --plot forecast.png
    gridseq compare mnist1d
    gridseq serve runs/digits-cnn-s0 --token-file token.txt
    gridseq export runs/digits-cnn-s0 --format onnx
    gridseq inspect runs/digits-cnn-s0 --out pics

Exit codes: 0 success; 2 a usage or input error (any `GridseqError`), printed as one line
`gridseq: error: <message>`; 130 interrupted (Ctrl-C) and 143 training stopped by SIGTERM, training after
checkpointing at a step boundary (continue with `--resume`); 1 anything else, which is a bug and prints a
traceback. `python -m gridseq` is the same command.

One module per command (`gridseq.cli.train`, `gridseq.cli.predict`, ...), each with `register(sub,
parents)` (its parser and handler); `gridseq.cli.app` holds the table of commands and `main`;
`gridseq.cli.common` the exit codes, argument types and console they share; `gridseq.cli.overrides`
the dotted `--model.FIELD=VALUE` overrides. Nothing outside this package imports it.
"""

from gridseq.cli.app import COMMANDS, build_parser, main

__all__ = ["COMMANDS", "build_parser", "main"]
