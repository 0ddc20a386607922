"""The `gridseq` command line: the table of commands, the parser built from it, and `main`.

Each command lives in its own module of `gridseq.cli` and registers its parser and its handler
(`register(sub, parents)` adds the subparser and sets `handler=`; a command that takes dotted
overrides also sets `override_prefixes=`). `main` parses, checks the overrides, and calls the
handler the parsed subcommand names; it turns every `GridseqError` — and an OS failure a user must fix
(no such folder, permission denied, read-only file system, disk full, too many open files) — into one
line and exit code 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from gridseq import __version__
from gridseq._atomic import describe, is_user_fixable
from gridseq._validation import did_you_mean
from gridseq.cli import compare, datasets, evaluate, export, forecast, generate, inspect, models, predict, sample, serve, train, tune
from gridseq.cli.common import EXIT_INTERRUPTED, EXIT_TERMINATED, EXIT_USAGE, Parser, UsageError
from gridseq.cli.overrides import split_overrides
from gridseq.errors import GridseqError, Interrupted, Terminated

_logger = logging.getLogger(__name__)

# the commands in the order `gridseq --help` lists them
COMMANDS = (datasets, models, train, tune, evaluate, predict, forecast, compare, generate, serve, export, inspect, sample)


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser for every `gridseq` subcommand, one per module of `COMMANDS`."""
    verbosity = Parser(add_help=False)
    # SUPPRESS: -v after a subcommand must not reset a -v given before it
    verbosity.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                           help="log more (-v info, -vv debug)")

    parser = Parser(prog="gridseq", parents=[verbosity],
                    description="CNNs, RNNs and CNN→RNN hybrids on PyTorch: train, tune, evaluate, predict, generate, compare, inspect, serve and export from the command line.",
                    epilog="Exit codes: 0 ok, 2 usage or input error, 130 interrupted by Ctrl-C, 143 stopped by SIGTERM (training: both checkpointed, continue with --resume), 1 internal error (a bug).")
    parser.add_argument("--version", action="version", version=f"gridseq {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=Parser)
    for command in COMMANDS:
        command.register(sub, [verbosity])
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
        prefixes = getattr(args, "override_prefixes", ())
        if raw_overrides and not all(k.startswith(prefixes) for k in raw_overrides):
            raise UsageError(f"--{next(iter(raw_overrides))}=... is a train option; `gridseq {args.command}` takes none "
                             f"(see `gridseq {args.command} --help`)")
        # a command that takes dotted overrides gets them (train: every section; evaluate: data.KEY)
        return args.handler(args, raw_overrides) if prefixes else args.handler(args)
    except GridseqError as e:
        _error_line(" ".join(str(e).split()))  # one line even when the message has several
        return EXIT_USAGE
    except OSError as e:  # a write not routed through gridseq._atomic (e.g. a library's own file output)
        if not is_user_fixable(e):
            raise
        _error_line(describe(e))
        return EXIT_USAGE
    except Terminated as e:  # SIGTERM during training: checkpointed at a step boundary
        _error_line(str(e))
        return EXIT_TERMINATED
    except Interrupted as e:  # Ctrl-C during training: checkpointed at a step boundary
        _error_line(str(e))
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:  # elsewhere, or a second Ctrl-C during training
        _error_line("interrupted" + (" (continue with `gridseq train ... --resume` from the last checkpoint)" if command == "train" else ""))
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
