"""Test accuracy of `gridseq train DATASET --model MODEL` on MNIST, Fashion-MNIST and sequential / permuted MNIST
at the full budget, beside published figures.

Each cell runs exactly the command a user types — `gridseq train DATASET --model MODEL --seed SEED`, with
the settings of the defaults table (`gridseq.defaults`) and nothing else but `--threads` (speed only) and,
when asked, `--epochs` — in-process through `gridseq.cli.main`, then reads the run's metrics.json. Every
finished run is added to the JSON file at once (a rerun of a cell replaces it), so an interrupted grid
keeps its results.

    python benchmarks/real_images.py                                  # every cell, seed 0
    python benchmarks/real_images.py --cells fashion-mnist:cnn mnist:cnn --threads 1
    python benchmarks/real_images.py --table-only                     # print the table from the JSON
    python benchmarks/real_images.py --record runs/fashion-mnist-cnn-s0  # add a finished default run

Writes benchmarks/results/real_images.json (one record per run: test and best validation accuracy, the
validation accuracy of every epoch, epochs, seconds, training samples/s, the resolved settings and the
machine with its load average, since the machine the numbers come from is shared).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.timing import machine
from benchmarks.ucr_table import append
from gridseq import cli, defaults
from gridseq.data.augment.images import ImageAugment
from gridseq.train import read_history

# (dataset, model) cells; the GRU reads each image as 28 rows of 28 pixels (the row view, chosen by the CLI)
CELLS = (("mnist", "cnn"), ("fashion-mnist", "cnn"), ("fashion-mnist", "gru"), ("fashion-mnist", "resnet"),
         ("seq-mnist", "tcn"), ("pmnist", "tcn"))
# Published test accuracy, the references: the Fashion-MNIST benchmark table of the dataset's
# README (zalandoresearch/fashion-mnist: "2 Conv+pooling+BN" 0.934, ResNet18 with augmentation 0.949,
# GRU+SVM 0.897) and 0.992-0.994 on MNIST for the 2-conv networks of the same table; for the pixel sequences,
# Bai, Kolter & Koltun 2018 (TCN 99.0 / 97.2 on sequential / permuted MNIST).
PUBLISHED = {
    ("mnist", "cnn"): "0.992-0.994 (2 conv layers)",
    ("fashion-mnist", "cnn"): "0.934 (2 Conv+pooling+BN)",
    ("fashion-mnist", "gru"): "0.897 (GRU+SVM)",
    ("fashion-mnist", "resnet"): "0.949 (ResNet18 + augmentation)",
    ("seq-mnist", "tcn"): "0.990 (TCN, Bai et al. 2018)",
    ("pmnist", "tcn"): "0.972 (TCN, Bai et al. 2018)",
}
TARGETS = {("mnist", "cnn"): 0.995, ("fashion-mnist", "cnn"): 0.935, ("fashion-mnist", "gru"): 0.90,
           ("fashion-mnist", "resnet"): 0.95, ("seq-mnist", "tcn"): 0.98, ("pmnist", "tcn"): 0.95}
OUT = Path(__file__).parent / "results" / "real_images.json"


def run_cell(dataset: str, model: str, seed: int, threads: int, epochs: int | None) -> dict:
    """`gridseq train DATASET --model MODEL --seed SEED --threads T [--epochs E]`; its record."""
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        argv = ["train", dataset, "--model", model, "--seed", str(seed), "--threads", str(threads),
                "--run-dir", str(run_dir), "--no-progress", *(["--epochs", str(epochs)] if epochs else [])]
        if cli.main(argv) != 0:
            raise SystemExit(f"gridseq {' '.join(argv)} failed")
        return record_of(run_dir, threads, epochs)


def record_of(run_dir: Path, threads: int, epochs: int | None = None) -> dict:
    """The record of a finished `gridseq train` run directory.

    Raises:
        SystemExit: the run's settings are not the defaults table's for its dataset and model (a run made
            with other flags would be recorded under a command that does not make it).
    """
    metrics = json.loads((run_dir / "metrics.json").read_text())
    config = json.loads((run_dir / "config.json").read_text())
    history = read_history(run_dir)
    dataset, model, seed = config["data"]["name"], config["model"]["name"], config["seed"]
    settings = defaults.lookup(dataset, model)
    expected = {**settings["train"], **({"epochs": epochs} if epochs else {})}
    if isinstance(expected.get("augment"), dict):  # a run records the whole policy, as ImageAugment.to_json writes it
        expected["augment"] = ImageAugment(mean=(0.0,), std=(1.0,), **expected["augment"]).to_json()
    differ = {k: (config["train"].get(k), v) for k, v in expected.items() if config["train"].get(k) != v}
    differ.update({k: (config["model"]["config"].get(k), v) for k, v in settings["model"].items()
                   if config["model"]["config"].get(k) != (list(v) if isinstance(v, tuple) else v)})
    if differ:
        raise SystemExit(f"{run_dir}: settings differ from the defaults of {dataset} / {model} (run, default): {differ}")
    command = f"gridseq train {dataset} --model {model} --seed {seed} --threads {threads}"
    return {
        "dataset": dataset, "model": model, "seed": seed,
        "command": command + (f" --epochs {epochs}" if epochs else ""),
        "test_accuracy": metrics["test"]["accuracy"], "val_accuracy": metrics.get("val", {}).get("accuracy"),
        "best_epoch": metrics.get("best_epoch"), "epochs": config["train"]["epochs"],
        "val_accuracy_by_epoch": [round(h["val_accuracy"], 4) for h in history],
        "epoch_seconds": [round(h["seconds"], 1) for h in history],
        "train_seconds": round(metrics["train_seconds"], 1),
        "samples_per_second": round(metrics.get("samples_per_second", 0.0), 1),
        "train": config["train"], "model_config": config["model"], "machine": machine(),
    }


def table(records: list[dict]) -> str:
    """Markdown: one row per cell (the latest run of each), with the target and the published figure."""
    lines = ["| command | test accuracy | target | published | best val (epoch) | epochs | time (s) | samples/s |",
             "|---|---|---|---|---|---|---|---|"]
    for r in records:
        key = (r["dataset"], r["model"])
        lines.append(f"| `{r['command']}` | {r['test_accuracy']:.4f} | {TARGETS.get(key, '–')} | "
                     f"{PUBLISHED.get(key, '–')} | {r['val_accuracy']:.4f} ({r['best_epoch']}) | {r['epochs']} | "
                     f"{r['train_seconds']:.0f} | {r['samples_per_second']:.0f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", nargs="+", default=[f"{d}:{m}" for d, m in CELLS],
                        help="DATASET:MODEL cells to run (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (the machine is shared: one thread avoids oversubscribing it)")
    parser.add_argument("--epochs", type=int, default=None, help="override the defaults table's epochs")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--table-only", action="store_true", help="only print the table from the JSON")
    parser.add_argument("--record", nargs="+", type=Path, default=[], metavar="RUN_DIR",
                        help="add finished `gridseq train` run directories instead of training (their settings "
                             "must be the defaults table's; --threads says what they ran with)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for run_dir in args.record:
        record = record_of(run_dir, args.threads, args.epochs)
        append(args.out, record, ("dataset", "model", "seed", "epochs"))
    if not args.table_only and not args.record:
        for cell in args.cells:
            dataset, _, model = cell.partition(":")
            record = run_cell(dataset, model, args.seed, args.threads, args.epochs)
            append(args.out, record, ("dataset", "model", "seed", "epochs"))
            print(f"{record['command']}: test {record['test_accuracy']:.4f} ({record['train_seconds']:.0f} s)", flush=True)
    records = json.loads(args.out.read_text()) if args.out.exists() else []
    print(table(records))


if __name__ == "__main__":
    main()
