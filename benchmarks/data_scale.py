"""Data at real scale: memory and throughput of `gridseq train` on folders of 1k to 64k JPEG photos.

Three measurements, on folders of N 224x224 JPEG photos of two classes (a bright disc or square on
a noisy background; benchmarks/photos.py), cached under --root and written only when missing:

  memory     `gridseq train FOLDER --model cnn --epochs 1 --image-size 128x128` as a subprocess, for
             each N in --sizes: peak memory of the whole process tree (gridseq + its DataLoader
             workers), the sum of PSS over the tree sampled every 0.2 s; wall time, test accuracy and
             samples/s from the run's metrics.json. Targets: peak < 2.5 GiB at every N, and growth from
             the smallest to the largest N (1k -> 64k) < 400 MiB.
  loader     images/s of gridseq's streaming loader alone (decode + resize + augment, 2 workers)
             against the same pipeline written by hand with a torch Dataset + DataLoader, on the 4k
             folder, 30 batches of 64 after 5 warm-up batches. Reported, no target.
  stream     training samples/s of `--stream` over `--no-stream` on the 4k folder (target >= 0.9), and of
             `--stream --cache DIR` with a warm cache (reported): ratios of the medians of --repeats
             runs each, run in alternating order.

    python benchmarks/data_scale.py --sizes 1000,4000
    python benchmarks/data_scale.py [--sizes 1000,4000,16000,64000] [--root /tmp/gridseq-photos]
        [--out benchmarks/results/data_scale.json] [--skip-train] [--skip-loader] [--repeats 3] [--threads N]
        [--train-args "--batch-size 128"]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.photos import write_photos  # noqa: E402
from benchmarks.timing import machine  # noqa: E402

MIB = 2**20
PEAK_TARGET_MIB = 2.5 * 1024  # 2.5 GiB at every size
GROWTH_TARGET_MIB = 400  # from 1k to 64k photos
STREAM_TARGET = 0.9  # --stream samples/s over --no-stream
LOADER_N = 4000  # the folder the loader and stream comparisons use
POOL_FROM = 64000  # folders this large are written by a Pool of 2
OUT = Path(__file__).parent / "results" / "data_scale.json"


def ensure_folder(root: Path, n: int, seed: int = 0) -> dict:
    """The photo folder root/photos-N, written if missing; with the seconds writing it took."""
    folder = root / f"photos-{n}"
    if folder.is_dir():
        return {"path": str(folder), "cached": True, "seconds": None}
    t0 = time.perf_counter()
    write_photos(folder, n, seed=seed, workers=2 if n >= POOL_FROM else 1)
    seconds = time.perf_counter() - t0
    print(f"wrote {n} photos to {folder} in {seconds:.1f} s", flush=True)
    return {"path": str(folder), "cached": False, "seconds": round(seconds, 2)}


class TreeMemory(threading.Thread):
    """Samples the sum of PSS over a process and all its descendants until `stop` is set."""

    def __init__(self, pid: int, interval: float = 0.2):
        super().__init__(daemon=True)
        self.root, self.interval, self.stop = psutil.Process(pid), interval, threading.Event()
        self.peak = self.peak_main = self.max_procs = self.samples = 0

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                procs = [self.root, *self.root.children(recursive=True)]
            except psutil.Error:  # the root has exited
                break
            pss = []
            for p in procs:
                try:
                    pss.append(p.memory_full_info().pss)
                except psutil.Error:  # a worker that exited between listing and reading
                    pss.append(0)
            self.peak, self.peak_main = max(self.peak, sum(pss)), max(self.peak_main, pss[0])
            self.max_procs, self.samples = max(self.max_procs, sum(1 for v in pss if v)), self.samples + 1
            self.stop.wait(self.interval)


def gridseq_command() -> list[str]:
    script = Path(sys.executable).with_name("gridseq")
    return [str(script)] if script.exists() else [sys.executable, "-m", "gridseq"]


def run_measured(cmd: list[str], env: dict | None = None) -> dict:
    """Run `cmd` as a subprocess, sampling its process tree (see `TreeMemory`): the command, exit code, wall time,
    peak PSS of the tree and of the main process, the most processes seen; on failure also "error", the
    last line of its stderr."""
    with tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=env)
        memory = TreeMemory(proc.pid)
        memory.start()
        code = proc.wait()
        wall = time.perf_counter() - t0
        memory.stop.set()
        memory.join()
        err.seek(0)
        stderr = err.read().strip()
    out = {"command": shlex.join(cmd), "returncode": code, "wall_s": round(wall, 2),
           "peak_pss_mib": round(memory.peak / MIB, 1), "peak_main_pss_mib": round(memory.peak_main / MIB, 1),
           "max_processes": memory.max_procs, "samples": memory.samples}
    if code != 0:
        out["error"] = stderr.splitlines()[-1] if stderr else f"exit code {code}"
    return out


def run_train(folder: str, extra: list[str]) -> dict:
    """One `gridseq train` subprocess: command, exit code, wall time, peak tree PSS, and its metrics."""
    with tempfile.TemporaryDirectory(prefix="gridseq-data-scale-") as tmp:
        run_dir = Path(tmp) / "run"
        out = run_measured([*gridseq_command(), "train", folder, "--model", "cnn", "--epochs", "1", "--image-size",
                            "128x128", "--run-dir", str(run_dir), "--overwrite", *extra])
        if "error" in out:
            return out
        metrics = json.loads((run_dir / "metrics.json").read_text())
        return {**out, "test_accuracy": metrics["test"].get("accuracy"),
                "samples_per_second": round(metrics["samples_per_second"], 1),
                "train_seconds": round(metrics["train_seconds"], 2)}


def _images_per_s(batches, count, n_batches: int = 30, warmup: int = 5) -> dict:
    """images/s over `n_batches` batches after `warmup` (which absorb the workers' start-up)."""
    it = iter(batches)
    for _ in range(warmup):
        next(it)
    t0, images = time.perf_counter(), 0
    for _, batch in zip(range(n_batches), it):
        images += count(batch)
    seconds = time.perf_counter() - t0
    return {"images_per_s": round(images / seconds, 1), "images": images, "seconds": round(seconds, 3)}


class HandWrittenPhotos(torch.utils.data.Dataset):
    """The pipeline a user writes by hand: Pillow decode, RGB, bilinear resize, random flip, normalise."""

    MEAN, STD = torch.tensor([0.485, 0.456, 0.406])[:, None, None], torch.tensor([0.229, 0.224, 0.225])[:, None, None]

    def __init__(self, folder: str | os.PathLike, size: tuple[int, int] = (128, 128)):
        classes = sorted(p for p in Path(folder).iterdir() if p.is_dir())
        self.items = [(f, k) for k, c in enumerate(classes) for f in sorted(c.glob("*.jpg"))]
        self.size = size

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        from PIL import Image

        path, label = self.items[i]
        with Image.open(path) as img:
            img = img.convert("RGB").resize((self.size[1], self.size[0]), Image.Resampling.BILINEAR)
        x = torch.from_numpy(np.array(img)).permute(2, 0, 1).float() / 255  # (H, W, C) -> (C, H, W)
        if torch.rand(()) < 0.5:
            x = x.flip(-1)
        return (x - self.MEAN) / self.STD, label


def handwritten_images_per_s(folder: str, *, workers: int = 2, batch_size: int = 64) -> dict:
    loader = torch.utils.data.DataLoader(HandWrittenPhotos(folder), batch_size=batch_size, num_workers=workers,
                                         shuffle=True, generator=torch.Generator().manual_seed(0))
    return _images_per_s(loader, lambda b: len(b[0]))


def gridseq_loader_images_per_s(folder: str, *, workers: int = 2, batch_size: int = 64) -> dict:
    """gridseq's streaming loader alone: decode + resize + augment in `workers` processes."""
    import gridseq.datasets as gd
    from gridseq.data.augment import augmentation_for

    data = gd.load(folder, image_size=(128, 128), stream=True, workers=workers)
    sampler = gd.BatchSampler(len(data.train), batch_size, seed=0)
    # the augmentation `gridseq train` applies to a photo folder by default
    it = data.train.loader(sampler.batches(0), epoch=0, augment=augmentation_for(None, data.info))
    shapes = set()
    out = _images_per_s(it, lambda b: shapes.add((tuple(b.x.shape[1:]), str(b.x.dtype))) or len(b.x))
    return {**out, "batch_shapes": sorted(str(s) for s in shapes)}


def measure_loaders(folder: str) -> dict:
    out = {"folder": folder, "workers": 2, "batch_size": 64, "batches": 30, "warmup": 5,
           "handwritten": handwritten_images_per_s(folder)}
    out["gridseq"] = gridseq_loader_images_per_s(folder)
    out["ratio"] = round(out["gridseq"]["images_per_s"] / out["handwritten"]["images_per_s"], 3)
    return out


def measure_stream(folder: str, extra: list[str], repeats: int = 3) -> dict:
    """Training samples/s of `--no-stream`, `--stream` and `--stream` with a warm `--cache` (filled by one run
    first, not counted), `repeats` runs each in alternating order (ABC CBA ...) so that a drift in the
    machine's speed falls on all; each streamed mode's ratio of medians to `--no-stream`, with the ratio
    of every round's runs."""
    with tempfile.TemporaryDirectory(prefix="gridseq-data-scale-cache-") as cache:
        modes = {"no-stream": ["--no-stream"], "stream": ["--stream"], "stream-cached": ["--stream", "--cache", cache]}
        out: dict = {"repeats": repeats, "cache_warmup": run_train(folder, [*modes["stream-cached"], *extra])}
        runs: dict[str, list[dict]] = {m: [] for m in modes}
        for r in range(repeats):
            for mode in (list(modes) if r % 2 == 0 else list(modes)[::-1]):
                runs[mode].append(run := run_train(folder, [*modes[mode], *extra]))
                print(f"train {mode} ({r + 1}/{repeats}): "
                      + (run.get("error") or f"{run['samples_per_second']:.1f} samples/s"), flush=True)
    out.update(runs)
    sps = {m: [r["samples_per_second"] for r in rs if "samples_per_second" in r] for m, rs in runs.items()}
    if all(len(v) == repeats for v in sps.values()):
        out["median_samples_per_second"] = median = {m: float(np.median(v)) for m, v in sps.items()}
        for mode, key in (("stream", "ratio"), ("stream-cached", "cached_ratio")):
            out[key] = round(median[mode] / median["no-stream"], 3)
            out[f"{key.removesuffix('ratio')}round_ratios"] = [round(a / b, 3) for a, b in zip(sps[mode], sps["no-stream"])]
    return out


def _met(ok: bool | None) -> str:
    return {True: "[green]yes[/]", False: "[red]no[/]", None: "report"}[ok]


def print_table(res: dict) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"gridseq data at real scale — {res['machine']['logical_cpus']} cores, torch {res['torch']}")
    for col in ("case", "value", "target", "met", "note"):
        table.add_column(col, justify="right" if col in ("value", "target") else "left")
    for n, g in res["generation"].items():
        table.add_row(f"write {n} photos", "cached" if g["cached"] else f"{g['seconds']:.1f} s", "—", "report", "")
    for n, r in res.get("memory", {}).items():
        if "error" in r:
            table.add_row(f"train {n}: peak PSS", f"{r['peak_pss_mib']:.0f} MiB", "", _met(None), escape(r["error"][:60]))
            continue
        table.add_row(f"train {n}: peak PSS", f"{r['peak_pss_mib']:.0f} MiB", f"< {PEAK_TARGET_MIB:.0f}",
                      _met(r["peak_pss_mib"] < PEAK_TARGET_MIB),
                      f"{r['wall_s']:.0f} s wall, {r['samples_per_second']:.0f} samples/s, test acc {r['test_accuracy']:.3f}")
    if "growth" in res:
        g = res["growth"]
        table.add_row(f"peak growth {g['from']} -> {g['to']}", f"{g['mib']:.0f} MiB", f"< {GROWTH_TARGET_MIB}",
                      _met(g["mib"] < GROWTH_TARGET_MIB), "")
    if "loader" in res:
        ld = res["loader"]
        table.add_row("loader: hand-written", f"{ld['handwritten']['images_per_s']:.0f} img/s", "—", "report", "")
        table.add_row("loader: gridseq", f"{ld['gridseq']['images_per_s']:.0f} img/s", "—", "report",
                      f"{ld['ratio']:.2f}x hand-written")
    if "stream" in res:
        s = res["stream"]
        errors = [r["error"] for m in ("no-stream", "stream", "stream-cached") for r in s[m] if "error" in r]
        if "ratio" not in s:
            table.add_row("train --stream / --no-stream", "—", f"≥ {STREAM_TARGET}", "failed", escape(errors[0][:90]))
        else:
            med = s["median_samples_per_second"]
            for label, key, target, mode in (("train --stream / --no-stream", "ratio", STREAM_TARGET, "stream"),
                                             ("  with a warm --cache", "cached_ratio", None, "stream-cached")):
                rounds = s[f"{key.removesuffix('ratio')}round_ratios"]
                table.add_row(label, f"{s[key]:.2f}", f"≥ {target}" if target else "—",
                              _met(s[key] >= target) if target else _met(None),
                              f"medians of {s['repeats']}: {med[mode]:.0f} / {med['no-stream']:.0f} samples/s; "
                              f"rounds {min(rounds):.2f}-{max(rounds):.2f}")
    Console(width=None if sys.stdout.isatty() else 120).print(table)  # a log file gets unwrapped rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="1000,4000,16000,64000", help="photo counts, comma-separated")
    p.add_argument("--root", default="/tmp/gridseq-photos", help="where the photo folders are cached")
    p.add_argument("--out", default=str(OUT), help=f"JSON results (default: {OUT})")
    p.add_argument("--skip-train", action="store_true", help="no `gridseq train` runs (memory, stream)")
    p.add_argument("--skip-loader", action="store_true", help="no loader throughput comparison")
    p.add_argument("--repeats", type=int, default=3, help="runs of each training mode (medians reported)")
    p.add_argument("--threads", type=int, default=None, help="torch threads, here and for `gridseq train --threads`")
    p.add_argument("--train-args", default="", help="extra `gridseq train` arguments, e.g. '--batch-size 128'")
    args = p.parse_args(argv)
    sizes = sorted(int(s) for s in args.sizes.split(","))
    extra = shlex.split(args.train_args) + (["--threads", str(args.threads)] if args.threads else [])
    if args.threads:
        torch.set_num_threads(args.threads)
    root = Path(args.root)
    root.mkdir(parents=True, exist_ok=True)
    needed = sorted(set(sizes) | ({LOADER_N} if not (args.skip_train and args.skip_loader) else set()))
    res = {"command": shlex.join([Path(sys.executable).name, *sys.argv]), "machine": machine(),
           "physical_cores": psutil.cpu_count(logical=False), "torch": torch.__version__,
           "train_args": extra, "generation": {n: ensure_folder(root, n) for n in needed}}
    folder = {n: res["generation"][n]["path"] for n in needed}
    if not args.skip_train:
        res["memory"] = {}
        for n in sizes:
            res["memory"][n] = r = run_train(folder[n], extra)
            print(f"train {n}: peak {r['peak_pss_mib']:.0f} MiB, {r['wall_s']:.0f} s"
                  + (f", error: {r['error']}" if "error" in r else ""), flush=True)
        ok = [n for n in sizes if "error" not in res["memory"][n]]
        if len(ok) > 1:
            lo, hi = res["memory"][ok[0]]["peak_pss_mib"], res["memory"][ok[-1]]["peak_pss_mib"]
            res["growth"] = {"from": ok[0], "to": ok[-1], "mib": round(hi - lo, 1)}
    if not args.skip_loader:
        res["loader"] = measure_loaders(folder[LOADER_N])
    if not args.skip_train:
        res["stream"] = measure_stream(folder[LOADER_N], extra, args.repeats)
    res["targets"] = {"peak_pss_mib": PEAK_TARGET_MIB, "growth_mib": GROWTH_TARGET_MIB, "stream_ratio": STREAM_TARGET}
    res["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    print_table(res)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
