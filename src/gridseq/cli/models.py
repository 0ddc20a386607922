"""`gridseq models`: the registered models, as a table or JSON."""

from __future__ import annotations

from gridseq.cli.common import EXIT_OK, console, print_json


def register(sub, parents) -> None:
    """Add the `models` subcommand to the `gridseq` subparsers `sub`."""
    p = sub.add_parser("models", parents=parents, help="list the registered models",
                       description="List the registered models: the data kinds each takes and a description.")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(handler=cmd_models)


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
