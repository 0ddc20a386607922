"""What every `gridseq` command shares: exit codes, the one-line usage error, argument types, the
console and the printers of JSON and metric tables.

Nothing here imports another module of `gridseq.cli`, so every command module can import it.
"""

from __future__ import annotations

import argparse
import json
import re
import sys

from gridseq._validation import did_you_mean
from gridseq.errors import ConfigError

# 130 and 143: 128 + the signal (SIGINT, SIGTERM), the codes a shell gives a process those signals kill
EXIT_OK, EXIT_BUG, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 1, 2, 130, 143


class UsageError(ConfigError):
    """A command line argparse rejects (unknown flag, missing argument, bad value)."""


class Parser(argparse.ArgumentParser):
    # argparse prints the usage block and exits; gridseq wants one line and the same exit path as
    # every other user error, so raise and let main() print it
    def error(self, message: str):
        choice = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        hint = did_you_mean(choice.group(1), re.findall(r"'([^']*)'", choice.group(2))) if choice else ""
        raise UsageError(f"{message}.{hint} See `{self.prog} --help`.")


def number(cast, ok, expected: str):
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


positive_int = number(int, lambda v: v >= 1, "a positive int")
positive_float = number(float, lambda v: v > 0, "a positive number")
non_negative_float = number(float, lambda v: v >= 0, "a number >= 0")
non_negative_int = number(int, lambda v: v >= 0, "an int >= 0")


def image_size(text: str) -> tuple[int, int]:
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


def console():
    """A rich Console on the current stdout (created per call so redirection is honoured)."""
    from rich.console import Console

    return Console(file=sys.stdout, soft_wrap=False)


def print_json(obj) -> None:
    sys.stdout.write(json.dumps(obj, indent=2) + "\n")


def print_metrics(title: str, metrics: dict) -> None:
    """`title`, then a two-column table of metric names and values."""
    from rich.table import Table

    table = Table()
    table.add_column("metric", no_wrap=True)
    table.add_column("value", justify="right", no_wrap=True)
    for key, value in metrics.items():
        table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    out = console()
    out.print(title, highlight=False, markup=False)
    out.print(table)
