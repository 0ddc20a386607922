"""`gridseq datasets`: the built-in datasets, as a table or JSON."""

from __future__ import annotations

from gridseq.cli.common import EXIT_OK, console, print_json


def register(sub, parents) -> None:
    """Add the `datasets` subcommand to the `gridseq` subparsers `sub`."""
    p = sub.add_parser("datasets", parents=parents, help="list the built-in datasets",
                       description="List the built-in datasets: kind, split sizes, classes, whether lengths vary.")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(handler=cmd_datasets)


def cmd_datasets(args) -> int:
    from rich.table import Table

    from gridseq import datasets

    records = datasets.describe()
    if args.json:
        print_json(records)
        return EXIT_OK
    table = Table(title="gridseq datasets")
    for col, kw in (("name", {"no_wrap": True, "style": "bold"}), ("kind", {}), ("train", {"justify": "right"}),
                    ("val", {"justify": "right"}), ("test", {"justify": "right"}), ("classes", {"justify": "right"}),
                    ("lengths", {}), ("description", {})):
        table.add_column(col, **kw)
    for r in records:
        table.add_row(r["name"], r["kind"], str(r["train"]), str(r["val"]), str(r["test"]), str(r["num_classes"]),
                      "vary" if r["variable_length"] else "fixed", r["description"])
    console().print(table)
    return EXIT_OK
