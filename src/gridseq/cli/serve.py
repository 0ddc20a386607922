"""`gridseq serve RUN_DIR...`: run directories behind an HTTP and WebSocket API.

    gridseq serve runs/digits-cnn-s0 walks=runs/walks-lstm-s0 --token-file token.txt

`serve` binds to 127.0.0.1 unless --host says otherwise; with --token-file every request needs
`Authorization: Bearer <token>`. See docs/serving.md.
"""

from __future__ import annotations

import argparse
import sys

from gridseq.cli.common import EXIT_OK, non_negative_float, positive_int


def register(sub, parents) -> None:
    """Add the `serve` subcommand to the `gridseq` subparsers `sub`."""
    p = sub.add_parser("serve", parents=parents, help="serve trained runs over HTTP and WebSocket",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Serve run directories: GET /health, GET /models, POST /models/NAME/predict, "
                                   "WebSocket /models/NAME/stream, OpenAPI docs at /docs. Needs `pip install 'gridseq[serve]'`.",
                       epilog="Name a run in URLs with NAME=RUN_DIR (default: the directory's name).\n"
                              "Ctrl-C or SIGTERM stop accepting requests and let in-flight ones finish.")
    p.add_argument("runs", metavar="RUN_DIR", nargs="+", help="run directories written by `gridseq train` (or NAME=RUN_DIR)")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default: 8000; 0 picks a free one)")
    p.add_argument("--token-file", metavar="F", help="require `Authorization: Bearer <token>` with the token in this file")
    p.add_argument("--workers", type=positive_int, default=1, metavar="N", help="server processes, each with every model (default: 1)")
    b = p.add_argument_group("micro-batching")
    b.add_argument("--no-batching", dest="batching", action="store_false", help="run every request on its own")
    b.add_argument("--max-batch", type=positive_int, default=64, metavar="N", help="items per merged forward pass (default: 64)")
    b.add_argument("--max-wait-ms", type=non_negative_float, default=2.0, metavar="MS",
                   help="how long a request waits for others to share its pass (default: 2)")
    lim = p.add_argument_group("limits")
    lim.add_argument("--max-body-mb", type=non_negative_float, default=10.0, metavar="MB", help="largest request body (default: 10)")
    lim.add_argument("--max-items", type=positive_int, default=256, metavar="N", help="items per request (default: 256)")
    lim.add_argument("--max-length", type=positive_int, metavar="N",
                     help="steps / tokens per item (default: 4x the model's training length, at least 512)")
    lim.add_argument("--max-sessions", type=positive_int, default=16, metavar="N", help="concurrent WebSocket streams (default: 16)")
    lim.add_argument("--session-steps", type=positive_int, default=100_000, metavar="N", help="steps per stream (default: 100000)")
    lim.add_argument("--idle-timeout", type=non_negative_float, default=60.0, metavar="S",
                     help="close a stream silent for S seconds (default: 60; 0: never)")
    lim.add_argument("--shutdown-timeout", type=non_negative_float, default=30.0, metavar="S",
                     help="seconds in-flight requests get to finish on shutdown (default: 30)")
    p.add_argument("--threads", type=positive_int, default=1, metavar="N",
                   help="torch threads per process (default: 1, best for small models; raise it for large ones)")
    p.add_argument("--no-access-log", dest="access_log", action="store_false", help="do not log one line per request")
    p.set_defaults(handler=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    from gridseq import serve
    from gridseq.serve.settings import ServeSettings, parse_runs, read_token_file

    serve.check_installed()
    runs = parse_runs(args.runs)
    for path in runs.values():
        _check_run(path)  # fail now, with exit code 2, rather than after the server started
    token = read_token_file(args.token_file) if args.token_file else None
    settings = ServeSettings(runs=runs, host=args.host, port=args.port, token=token,
                             max_body_bytes=max(1, int(args.max_body_mb * 1024 * 1024)), batching=args.batching,
                             max_batch=args.max_batch, max_wait_ms=args.max_wait_ms, max_items=args.max_items,
                             max_length=args.max_length, max_sessions=args.max_sessions, session_steps=args.session_steps,
                             idle_timeout=args.idle_timeout, shutdown_timeout=args.shutdown_timeout, threads=args.threads)
    auth = "bearer token required" if token else "no authentication"
    sys.stdout.write(f"serving {', '.join(runs)} on http://{args.host}:{args.port} ({auth}); docs at /docs\n")
    sys.stdout.flush()
    serve.run(settings, workers=args.workers, token_file=args.token_file, access_log=args.access_log,
              log_level="debug" if getattr(args, "verbose", 0) >= 2 else "info")
    return EXIT_OK


def _check_run(path: str) -> None:
    """CheckpointError unless `path` is a run directory with a readable config.json and a data section."""
    from gridseq.runs import Run

    Run.open(path).info  # noqa: B018 -- reads config.json and its data section; the weights load in the server
