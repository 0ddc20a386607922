"""Run gridseq's performance benchmarks, print a table and write JSON.

    python benchmarks/run.py [--quick] [--only NAME] [--out results.json] [--threads N]
                             [--keras-python /path/to/python]

Every ratio compares cases measured side by side in this run (interleaved repetitions, warm-up,
median); see benchmarks/timing.py. `--only` keeps the benchmarks whose name contains NAME
(e.g. `overhead`, `overhead/cnn-image`, `varlen`, `latency`). The Keras comparison runs in this interpreter
when `keras` imports, or in `--keras-python` (an interpreter with keras + tensorflow + torch +
gridseq), and is skipped with a note otherwise.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `python benchmarks/run.py` imports the benchmarks package

import torch  # noqa: E402

from benchmarks import timing  # noqa: E402

GROUPS = ("overhead", "latency", "reference-vs-fused", "varlen", "stream", "scaling", "ceiling", "keras")


def _modules():
    from benchmarks import ceiling, keras_bench, latency, overhead, recurrent, scaling, stream, varlen

    return {"overhead": overhead, "latency": latency, "reference-vs-fused": recurrent, "varlen": varlen, "stream": stream,
            "scaling": scaling, "ceiling": ceiling, "keras": keras_bench}


def _fmt(x, digits: int = 3) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


def print_table(entries: list[timing.Entry], header: dict) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"gridseq benchmarks — {header['mode']}, {header['machine']['torch_threads']} threads, "
                        f"load {header['machine']['loadavg']}")
    for col in ("benchmark", "ratio", "target", "met", "note"):
        table.add_column(col, justify="right" if col in ("ratio", "target") else "left")
    for e in entries:
        target = None if e.target is None else ("≥ " if e.higher else "≤ ") + _fmt(e.target, 2)
        met = {True: "[green]yes[/]", False: "[red]no[/]", None: "report"}[e.met]
        if e.skipped:
            met = "skipped"
        ratio = _fmt(e.ratio) + ("\n({:.2f}–{:.2f})".format(*e.spread) if e.spread else "")  # the per-round range
        table.add_row(e.name, ratio, target or "—", met, escape(e.note[:70]))
    Console().print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller work per repetition (≤ 5 min on 2 idle cores)")
    parser.add_argument("--only", help="run the benchmarks whose name contains this text")
    parser.add_argument("--out", default=None, help="write the JSON results here")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--keras-python", default=None, help="interpreter with keras for the Keras comparison")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)
    budget = timing.QUICK if args.quick else timing.FULL
    mode = "quick" if args.quick else "full"
    started = time.time()
    load_before = [round(x, 2) for x in os.getloadavg()]
    entries: list[timing.Entry] = []
    for group, module in _modules().items():
        t0 = time.time()
        try:
            kw = {"keras_python": args.keras_python} if group == "keras" else {}
            found = module.run(budget, args.only, **kw)  # each module keeps only the names containing --only
        except Exception as e:  # one broken benchmark must not lose the others' results
            logging.exception("benchmark group %s failed", group)
            found = [timing.Entry(f"{group}/error", None, None, {}, f"{type(e).__name__}: {e}", skipped=True)]
        entries.extend(found)
        if found:
            print(f"[{group}: {len(found)} result(s) in {time.time() - t0:.0f}s]", file=sys.stderr, flush=True)
    header = {
        "mode": mode, "budget": {"reps": budget.reps, "warmup": budget.warmup, "scale": budget.scale},
        "command": " ".join([Path(sys.executable).name, *sys.argv]), "seconds": round(time.time() - started, 1),
        "machine": {**timing.machine(), "loadavg_at_start": load_before},
    }
    print_table(entries, header)
    if args.out:
        Path(args.out).write_text(json.dumps({**header, "results": [e.to_json() for e in entries]}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
