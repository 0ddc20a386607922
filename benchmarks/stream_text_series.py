"""Streaming text and sequence files: peak memory of `gridseq train` streamed vs in memory, and whether
series augmentation helps on validation.

Two parts:

  memory    sources 10x (--copies) the size of today's built-ins, written under --root when missing:
              pydoc-10x.txt        CPython's pydoc topics (the `pydoc` built-in) ten times over     -> task lm
              sentiment-10x.csv    the `sentiment` built-in's tweets ten times over, text,label     -> classify
              mnist1d-10x.npz      MNIST-1D's 5,000 sequences of 40 steps ten times over (np.savez) -> classify
              mnist1d-10x-wide.csv the same sequences as a wide CSV (label,t0..t39)                 -> classify
            For each, 1 epoch of `gridseq train FILE --model gru --hidden-size 16 --batch-size 256` (a small
            model: the data path is what is measured) as a subprocess, once with
            `--stream --workers 2` and once with `--no-stream`: wall time, test metric, and the peak memory of
            the whole process tree (gridseq + its DataLoader workers) as the sum of PSS
            (psutil `memory_full_info().pss`) over the process and its children, sampled every 0.2 s. The
            floor is the same sum for `python -c "import torch, gridseq.datasets"`. Then the data path
            alone: a process that loads the file and takes every training batch of one epoch (256 items,
            length-bucketed) through `split.loader`, no model — the same peak-PSS sampling.
  augment   validation accuracy with and without `SeriesAugment` (jitter 0.03, scaling 0.1), seeds 0-2, on
            a budget a shared 2-core machine can afford (1 torch thread): a 1-layer GRU of 32 on mnist1d for
            10 epochs (otherwise mnist1d's defaults: batch 64, lr 0.01, one-cycle), and the built-in GRU
            defaults on ucr/japanesevowels with 60 epochs instead of 200; the evidence for the default.

Prints tables and writes benchmarks/results/stream_text_series.json.

    python benchmarks/stream_text_series.py [--root /tmp/gridseq-stream-text] [--skip-memory] [--skip-augment]
        [--copies 10,100] [--only npz] [--skip-train] [--skip-loader] [--seeds 0,1,2] [--out benchmarks/results/stream_text_series.json]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.data_scale import run_measured  # noqa: E402
from benchmarks.timing import machine  # noqa: E402

MIB = 2**20
OUT = Path(__file__).parent / "results" / "stream_text_series.json"
COPIES = 10
TRAIN = ["--model", "gru", "--hidden-size", "16", "--batch-size", "256", "--epochs", "1", "--no-progress", "--seed", "0"]
# (dataset, GRU settings over its built-in defaults, training settings over its defaults)
AUGMENT_CASES = (("mnist1d", {"hidden_size": 32, "num_layers": 1, "bidirectional": False}, {"epochs": 10}),
                 ("ucr/japanesevowels", {}, {"epochs": 60}))


# ------------------------------------------------------------------------------------------- sources
def write_sources(root: Path, copies: int = COPIES, only: str | None = None) -> dict[str, dict]:
    """{name: {"path", "flags", "bytes"}} of the sources `copies` times the built-ins, written under `root`
    when missing (`only`: the sources whose name contains it)."""
    root.mkdir(parents=True, exist_ok=True)
    out = {}
    txt = root / f"pydoc-{copies}x.txt"
    if not txt.exists():
        from gridseq.data.builtin.text import pydoc_text

        txt.write_text("\n\n".join([pydoc_text()] * copies), encoding="utf-8")
    out["txt (lm)"] = {"path": txt, "flags": ["--task", "lm"]}
    sentiment = root / f"sentiment-{copies}x.csv"
    if not sentiment.exists():
        from gridseq.data.builtin.text import SENTIMENT_CLASSES, sentiment_table

        items, _ = sentiment_table()
        with open(sentiment, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["text", "label"])
            for _ in range(copies):
                w.writerows((text, SENTIMENT_CLASSES[label]) for text, label, _ in items)
    out["text csv (classify)"] = {"path": sentiment, "flags": []}
    npz, wide = root / f"mnist1d-{copies}x.npz", root / f"mnist1d-{copies}x-wide.csv"
    if not npz.exists() or not wide.exists():
        from gridseq.data.builtin.mnist1d import mnist1d_raw

        x, y, x_test, y_test = mnist1d_raw()
        x = np.tile(np.concatenate([x, x_test])[:, :, 0].astype(np.float32), (copies, 1))  # (5000·copies, 40)
        y = np.tile(np.concatenate([y, y_test]), copies)
        np.savez(npz, x=x, y=y)
        with open(wide, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["label", *(f"t{i}" for i in range(x.shape[1]))])
            w.writerows([int(label), *(f"{v:.5g}" for v in row)] for label, row in zip(y, x))
    out["npz (classify)"] = {"path": npz, "flags": []}
    out["series csv (classify)"] = {"path": wide, "flags": []}
    out = {k: v for k, v in out.items() if only is None or only in k}
    for v in out.values():
        v["bytes"] = os.path.getsize(v["path"])
    return out


# ---------------------------------------------------------------------------------------- memory
def measure(cmd: list[str], env: dict) -> dict:
    """Run `cmd`, sampling its process tree (benchmarks/data_scale.py's `run_measured`): peak PSS sums, wall time."""
    out = run_measured(cmd, env)
    if "error" in out:
        raise RuntimeError(f"{' '.join(cmd)} failed ({out['returncode']}): {out['error']}")
    return {"seconds": round(out["wall_s"], 1), "peak_pss_mib": out["peak_pss_mib"],
            "peak_main_pss_mib": out["peak_main_pss_mib"], "processes": out["max_processes"], "samples": out["samples"]}


def run_memory(root: Path, threads: int, copies: int, only: str | None) -> dict:
    sources = write_sources(root, copies, only)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    floor = measure([sys.executable, "-c", "import torch, gridseq.datasets"], env)
    rows = []
    for name, src in sources.items():
        for mode, flags in (("stream", ["--stream", "--workers", "2"]), ("memory", ["--no-stream"])):
            with tempfile.TemporaryDirectory() as tmp:
                cmd = [sys.executable, "-m", "gridseq", "train", str(src["path"]), *src["flags"], *TRAIN, *flags,
                       "--threads", str(threads), "--run-dir", str(Path(tmp) / "run")]
                print("running", " ".join(cmd[2:]), flush=True)
                m = measure(cmd, env)
                metrics = json.loads((Path(tmp) / "run" / "metrics.json").read_text())
            test = metrics.get("test", {})
            metric = "bits_per_char" if "bits_per_char" in test else "accuracy"
            rows.append({"copies": copies, "source": name, "file": Path(src["path"]).name, "file_mib": round(src["bytes"] / MIB, 1),
                         "mode": mode, "flags": " ".join(flags), **m, "test_metric": metric,
                         "test_value": round(float(test.get(metric, float("nan"))), 4),
                         "train_samples_per_second": round(float(metrics.get("samples_per_second", 0) or 0), 1)})
            print(f"  {mode}: {m['peak_pss_mib']} MiB peak PSS, {m['seconds']} s", flush=True)
    return {"floor": floor, "rows": rows, "threads": threads, "train_flags": " ".join(TRAIN)}


LOADER = """
import sys, time
import gridseq.datasets as gd
path, flags = sys.argv[1], sys.argv[2:]
options = {"task": "lm"} if path.endswith(".txt") else {}
options.update(stream=flags[0] == "--stream", workers=int(flags[2]) if flags[0] == "--stream" else 0)
options.update((f[7:].partition("=")[0], int(f.partition("=")[2])) for f in flags if f.startswith("--data."))  # e.g. --data.n_mels=40
t0 = time.perf_counter()
data = gd.load(path, **options)
loaded = time.perf_counter() - t0
split = data.train
batches = gd.BatchSampler(len(split), 256, lengths=split.lengths, seed=0).batches(0)
items = sum(len(b) for b in split.loader(batches))
print(loaded, items, time.perf_counter() - t0)
"""


def run_loader(root: Path, copies: int, only: str | None) -> list[dict]:
    """Peak PSS of loading each source and taking one epoch of training batches, streamed and in memory."""
    rows = []
    for name, src in write_sources(root, copies, only).items():
        for mode, flags in (("stream", ["--stream", "--workers", "2"]), ("memory", ["--no-stream"])):
            cmd = [sys.executable, "-c", LOADER, str(src["path"]), *flags]
            proc_out = measure(cmd, {**os.environ, "OMP_NUM_THREADS": "1"})
            rows.append({"copies": copies, "source": name, "file_mib": round(src["bytes"] / MIB, 1), "mode": mode,
                         **proc_out})
            print(f"  loader {name} {copies}x {mode}: {proc_out['peak_pss_mib']} MiB peak PSS, {proc_out['seconds']} s",
                  flush=True)
    return rows


def print_loader(rows: list[dict]) -> None:
    print("\ndata path only (load + one epoch of training batches of 256, no model)")
    print(f"{'source':<22} {'size':>5} {'file':>9} {'mode':<7} {'peak PSS':>10} {'main PSS':>10} {'procs':>5} {'wall s':>7}")
    for r in rows:
        print(f"{r['source']:<22} {r['copies']:>4}x {r['file_mib']:>7.1f}Mi {r['mode']:<7} {r['peak_pss_mib']:>8.1f}Mi "
              f"{r['peak_main_pss_mib']:>8.1f}Mi {r['processes']:>5} {r['seconds']:>7.1f}")


def print_memory(result: dict) -> None:
    print(f"\nfloor (python -c 'import torch, gridseq.datasets'): {result['floor']['peak_pss_mib']} MiB PSS")
    print(f"{'source':<22} {'size':>5} {'file':>9} {'mode':<7} {'peak PSS':>10} {'main PSS':>10} {'procs':>5} {'wall s':>7} {'test':>16}")
    for r in result["rows"]:
        print(f"{r['source']:<22} {r['copies']:>4}x {r['file_mib']:>7.1f}Mi {r['mode']:<7} {r['peak_pss_mib']:>8.1f}Mi "
              f"{r['peak_main_pss_mib']:>8.1f}Mi {r['processes']:>5} {r['seconds']:>7.1f} "
              f"{r['test_metric'][:8]:>8} {r['test_value']:.4f}")


# --------------------------------------------------------------------------------------- augment
def run_augment(seeds: list[int]) -> dict:
    """Validation (and test) accuracy of the built-in GRU defaults with augment off and on."""
    import torch

    import gridseq
    import gridseq.datasets as gd
    from gridseq import defaults
    from gridseq.train import seed_everything

    torch.set_num_threads(1)
    rows = []
    for dataset, model_kw, train_kw in AUGMENT_CASES:
        table = defaults.lookup(dataset, "gru")
        model_kw, train_kw = {**table["model"], **model_kw}, {**table["train"], **train_kw}
        for seed in seeds:
            data = gd.load(dataset, seed=seed)
            for augment in (False, True):
                seed_everything(seed)
                model = gridseq.models.create_for("gru", data.info, **model_kw)
                t0 = time.perf_counter()
                r = gridseq.fit(model, data, seed=seed, progress=False, device="cpu", augment=augment, **train_kw)
                rows.append({"dataset": dataset, "seed": seed, "augment": augment, "val_accuracy": r.val["accuracy"],
                             "test_accuracy": r.test["accuracy"], "seconds": round(time.perf_counter() - t0, 1)})
                print(f"  {dataset} seed {seed} augment={augment}: val {r.val['accuracy']:.4f} "
                      f"test {r.test['accuracy']:.4f}", flush=True)
    summary = {}
    for dataset in sorted({r["dataset"] for r in rows}):
        for augment in (False, True):
            picked = [r for r in rows if r["dataset"] == dataset and r["augment"] == augment]
            val, test = np.array([r["val_accuracy"] for r in picked]), np.array([r["test_accuracy"] for r in picked])
            summary[f"{dataset} augment={augment}"] = {"val_mean": round(float(val.mean()), 4),
                                                       "val_std": round(float(val.std()), 4),
                                                       "test_mean": round(float(test.mean()), 4), "runs": len(picked)}
    return {"policy": {"jitter": 0.03, "scaling": 0.1}, "cases": [list(c) for c in AUGMENT_CASES], "rows": rows,
            "summary": summary}


def print_augment(result: dict) -> None:
    print(f"\n{'dataset / augmentation':<36} {'val accuracy':>16} {'test accuracy':>14}")
    for key, s in result["summary"].items():
        print(f"{key:<36} {s['val_mean']:>8.4f} ± {s['val_std']:.4f} {s['test_mean']:>14.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=os.path.join(tempfile.gettempdir(), "gridseq-stream-text"),
                        help="where the 10x sources are written (kept between runs)")
    parser.add_argument("--out", default=str(OUT), help="write the results as JSON here")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-augment", action="store_true")
    parser.add_argument("--skip-train", action="store_true", help="memory: only the data-path measurement")
    parser.add_argument("--skip-loader", action="store_true", help="memory: only the gridseq train runs")
    parser.add_argument("--seeds", default="0,1,2", help="seeds of the augmentation runs")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of the training runs")
    parser.add_argument("--copies", default="10", help="sizes as multiples of the built-ins, e.g. 10,100")
    parser.add_argument("--only", help="memory: only the sources whose name contains this (e.g. npz)")
    args = parser.parse_args()
    result = {"benchmark": "stream_text_series", "machine": machine()}
    if not args.skip_memory:
        copies = [int(c) for c in args.copies.split(",")]
        if not args.skip_train:
            runs = [run_memory(Path(args.root), args.threads, c, args.only) for c in copies]
            result["memory"] = {**runs[0], "rows": [r for run in runs for r in run["rows"]]}
            print_memory(result["memory"])
        if not args.skip_loader:
            result["loader"] = [r for c in copies for r in run_loader(Path(args.root), c, args.only)]
            print_loader(result["loader"])
    if not args.skip_augment:
        result["augment"] = run_augment([int(s) for s in args.seeds.split(",")])
        print_augment(result["augment"])
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
