"""The VAE's sampling temperature T (z ~ N(0, T²·I)) against class_accuracy and fid of its samples, on
one split of each run's own dataset, scored by the generate-image task's frozen classifier exactly as
`gridseq evaluate` scores them. Choose T on val; read test once, for the chosen T.

    python benchmarks/vae_temperature.py --split val runs/fashion-mnist-vae-s0 [--temperatures 1 0.8 0.6]

Prints one table row per (run, T) and writes the rows as JSON (--out).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import torch

from gridseq import train
from gridseq._atomic import atomic_write_text
from gridseq.runs import Run


def score(run_dir: str, split_name: str, temperatures: list[float], batch_size: int = 256) -> list[dict]:
    run = Run.open(run_dir)
    model, task, data = run.model, run.task, run.reload_data()
    if not hasattr(model.config, "temperature"):
        raise SystemExit(f"{run_dir} holds a {run.model_name!r} model; only vae has a sampling temperature")
    for name, split in data.splits().items():  # the frozen classifier learns from the train split
        task.check_split(split, name)
    rows = []
    for t in temperatures:
        model.config = dataclasses.replace(model.config, temperature=t)
        start = time.perf_counter()
        metrics = train.evaluate(model, data.splits()[split_name], task=task, batch_size=batch_size)
        rows.append({"run": run_dir, "split": split_name, "temperature": t,
                     "class_accuracy": round(metrics["class_accuracy"], 4), "fid": round(metrics["fid"], 1),
                     "seconds": round(time.perf_counter() - start, 1)})
        print(f"| {run_dir} | {split_name} | {t:g} | {rows[-1]['class_accuracy']:.4f} | {rows[-1]['fid']:.1f} |", flush=True)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", metavar="RUN_DIR")
    p.add_argument("--split", default="val", choices=("train", "val", "test"))
    p.add_argument("--temperatures", type=float, nargs="+", default=[1.0, 0.8, 0.6, 0.4])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default="benchmarks/results/vae_temperature.json")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print("| run | split | temperature | class_accuracy | fid |\n| --- | --- | --- | --- | --- |")
    rows = [row for run in args.runs for row in score(run, args.split, args.temperatures)]
    atomic_write_text(Path(args.out), json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
