"""Streamed audio and video at 10x the built-ins: peak memory of `gridseq train --stream` vs in memory.

Three user sources, each 10x (--scale) a built-in, generated under --root and written only when missing:

  dtmf     a file,transcript,split CSV of 16-bit 8 kHz WAVs: 10x the dtmf built-in's 4,000 / 400 / 1,000
           utterances (keys 0-9*#, 3-10 per recording, 0-20 dB SNR, as transcribe_builtin.dtmf_utterance)
  npy      a video folder of .npy clips (uint8 (10, 20, 20)): 10x moving-digits' 13,500 clips, 40 classes
           "digit-direction" (moving_digits.make_clips; the digits are drawn from all 1,797, not per split)
  frames   the same clips as frame folders (10 PNGs each)

For each, `gridseq train SOURCE --epochs 1` with the built-in's recipe (defaults.py) runs as a subprocess
twice, `--stream --workers 2` and `--no-stream`, and the peak memory of the whole process tree (gridseq and
its DataLoader workers) is the sum of PSS over the tree, sampled every 0.2 s (benchmarks/data_scale.py's
TreeMemory). The sizes: items, bytes on disk (file sizes and allocated blocks), decoded float32 bytes
(the items themselves, and the padded tensors the in-memory splits hold); lengths for audio come from the
WAV headers (the index a streamed load makes, timed).

--loader-only measures the data path alone instead of training: a process that loads the source (streamed
with 2 workers, or in memory) and takes every training batch of one epoch through `split.loader` (batches of
256, length-bucketed), no model — the same peak-PSS sampling, at a small fraction of a training run's time
(benchmarks/stream_text_series.py's loader measurement, on these sources).

--augment-check instead trains the dtmf recipe (8 epochs, in memory) on a 1x CSV (seed 0) and on a
1,000-utterance training subset of it (seeds 0 and 1), with and without --augment (SpecAugment masks + noise,
gridseq.data.augment.audio), and reports the validation cer / exact match that decide its default.

    python benchmarks/stream_modalities.py [--cases dtmf,npy,frames] [--scale 10] [--root /tmp/gridseq-modalities]
        [--workers 2] [--threads 1] [--out benchmarks/results/stream_modalities.json]

Cases measured by an earlier invocation at the same scale stay in the JSON unless measured again. Each run
uses --threads 1 by default: on a shared machine more threads spin-wait and slow the runs down many times.
    python benchmarks/stream_modalities.py --augment-check [--out benchmarks/results/stream_modalities_augment.json]
    python benchmarks/stream_modalities.py --loader-only [--cases dtmf,npy,frames] [--out benchmarks/results/stream_modalities_loader.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.data_scale import gridseq_command, run_measured  # noqa: E402
from benchmarks.stream_text_series import LOADER, measure as measure_process  # noqa: E402
from benchmarks.timing import machine  # noqa: E402

MIB = 2**20
OUT = Path(__file__).parent / "results" / "stream_modalities.json"
AUGMENT_OUT = Path(__file__).parent / "results" / "stream_modalities_augment.json"
LOADER_OUT = Path(__file__).parent / "results" / "stream_modalities_loader.json"
SPLITS = ("train", "val", "test")
CHUNK = 5000  # clips generated per call of make_clips

# the built-ins' recipes (gridseq/defaults.py), spelled out: a path matches only the "*" defaults
DTMF_RECIPE = ["--model", "crnn-ctc", "--batch-size", "32", "--lr", "3e-3", "--scheduler", "onecycle",
               "--model.channels=[16,32]", "--model.pools=[[2,2],[2,1]]", "--model.hidden_size=64",
               "--data.sample_rate=8000", "--data.n_mels=40"]
VIDEO_RECIPE = ["--model", "crnn", "--batch-size", "64", "--lr", "3e-3", "--scheduler", "cosine",
                "--model.channels=[16,32,64]", "--model.spatial=both", "--model.dropout=0.3", "--model.pooling=mean"]


# ---- the sources ------------------------------------------------------------------------------------------

def ensure_dtmf(root: Path, scale: int) -> Path:
    """root/dtmf-xSCALE/transcripts.csv and its WAVs (the CSV is written last: it marks a complete folder)."""
    from gridseq.data.audio import write_wav
    from gridseq.data.builtin.transcribe import DTMF_ALPHABET, DTMF_RATE, DTMF_SIZES, MAX_KEYS, MIN_KEYS, dtmf_utterance

    folder = root / f"dtmf-x{scale}"
    csv = folder / "transcripts.csv"
    if csv.exists():
        return csv
    t0 = time.perf_counter()
    lines = ["file,transcript,split"]
    for k, (split, n) in enumerate(zip(SPLITS, DTMF_SIZES)):
        rng = np.random.default_rng([scale, k])
        for i in range(n * scale):
            keys = "".join(rng.choice(list(DTMF_ALPHABET), int(rng.integers(MIN_KEYS, MAX_KEYS + 1))))
            wave = dtmf_utterance(keys, rng, float(rng.uniform(0.0, 20.0)))
            name = f"{split}/{i // 1000:03d}/{i:06d}.wav"
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            write_wav(folder / name, wave, DTMF_RATE)
            lines.append(f"{name},{keys},{split}")
    tmp = csv.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.rename(csv)
    print(f"wrote {len(lines) - 1} WAVs to {folder} in {time.perf_counter() - t0:.0f} s", flush=True)
    return csv


def ensure_clips(root: Path, scale: int, layout: str) -> Path:
    """root/moving-digits-xSCALE-LAYOUT/<digit-direction>/<clip>.npy (or <clip>/<t>.png frames)."""
    from PIL import Image

    from gridseq.data.builtin.digits import digits_raw
    from gridseq.data.builtin.moving_digits import DIRECTIONS, SIZES, make_clips

    folder = root / f"moving-digits-x{scale}-{layout}"
    done = folder / ".complete"
    if done.exists():
        return folder
    t0 = time.perf_counter()
    images, labels = digits_raw()
    names = [f"{d}-{direction}" for d in range(10) for direction in DIRECTIONS]
    for name in names:
        (folder / name).mkdir(parents=True, exist_ok=True)
    total = sum(SIZES) * scale
    for chunk in range(-(-total // CHUNK)):
        n = min(CHUNK, total - chunk * CHUNK)
        x, digit, direction = make_clips(images[:, 0], labels, n, 10, 20, np.random.default_rng([scale, chunk]),
                                          changes=False)
        pixels = np.round(x[:, :, 0] * 255).astype(np.uint8)  # (n, T, H, W)
        for k in range(n):
            path = folder / names[4 * int(digit[k]) + int(direction[k, 0])] / f"{chunk:03d}-{k:04d}"
            if layout == "npy":
                np.save(path.with_suffix(".npy"), pixels[k])
            else:
                path.mkdir(exist_ok=True)
                for t, frame in enumerate(pixels[k]):
                    Image.fromarray(frame).save(path / f"{t:02d}.png")
    done.write_text("")
    print(f"wrote {total} {layout} clips to {folder} in {time.perf_counter() - t0:.0f} s", flush=True)
    return folder


def disk_bytes(path: Path) -> dict:
    """Files, their total size and the blocks allocated for them (what `du` counts)."""
    files = size = blocks = 0
    for dirpath, _, names in os.walk(path):
        for name in names:
            st = os.stat(os.path.join(dirpath, name))
            files, size, blocks = files + 1, size + st.st_size, blocks + st.st_blocks * 512
    return {"files": files, "bytes": size, "allocated_bytes": blocks}


def sizes(case: str, source: Path) -> dict:
    """Items, bytes on disk and decoded float32 bytes; for audio the header index is timed."""
    if case == "dtmf":
        from gridseq.data import audio
        from gridseq.data.readers import transcripts as transcripts_reader

        rows = transcripts_reader._read_rows(source)
        rec = audio.front_end_record(sample_rate=8000, n_mels=40)
        t0 = time.perf_counter()
        lengths = [audio.wav_frames(source.parent / r["file"], rec) for r in rows]
        index_s = time.perf_counter() - t0
        padded = sum(len(ns) * max(ns) for ns in ([n for n, r in zip(lengths, rows) if r["split"] == s] for s in SPLITS))
        out = {"items": len(rows), "decoded_bytes": sum(lengths) * 40 * 4, "padded_bytes": padded * 40 * 4,
               "frames_mean": round(float(np.mean(lengths)), 1), "frames_max": max(lengths),
               "header_index_s": round(index_s, 2), **disk_bytes(source.parent)}
    else:
        items = sum(1 for c in source.iterdir() if c.is_dir() for _ in c.iterdir())
        out = {"items": items, "decoded_bytes": items * 10 * 20 * 20 * 4, "padded_bytes": items * 10 * 20 * 20 * 4,
               **disk_bytes(source)}
    return out


# ---- the runs ------------------------------------------------------------------------------------------------

THREADS = ["--threads", "1"]  # set by main(): CPU threads per run


def run_train(source: Path, extra: list[str]) -> dict:
    """One `gridseq train` subprocess: command, exit code, wall time, peak tree PSS, and its metrics."""
    with tempfile.TemporaryDirectory(prefix="gridseq-modalities-") as tmp:
        run_dir = Path(tmp) / "run"
        out = run_measured([*gridseq_command(), "train", str(source), *extra, *THREADS, "--run-dir", str(run_dir),
                            "--overwrite", "--no-progress"])
        if "error" in out:
            return out
        metrics = json.loads((run_dir / "metrics.json").read_text())
        return {**out, "val": metrics["val"], "test": metrics["test"], "train_seconds": round(metrics["train_seconds"], 1),
                "samples_per_second": round(metrics.get("samples_per_second", float("nan")), 1)}


def measure(case: str, source: Path, workers: int) -> dict:
    recipe = DTMF_RECIPE if case == "dtmf" else VIDEO_RECIPE
    out = {"source": str(source), "sizes": sizes(case, source)}
    for mode, flags in (("stream", ["--stream", "--workers", str(workers)]), ("memory", ["--no-stream"])):
        out[mode] = run_train(source, [*recipe, "--epochs", "1", *flags])
        print(f"{case} {mode}: {out[mode].get('peak_pss_mib')} MiB peak, {out[mode]['wall_s']} s"
              f"{'  ' + out[mode]['error'] if 'error' in out[mode] else ''}", flush=True)
    return out


def measure_loader(case: str, source: Path, workers: int) -> dict:
    """Peak PSS of loading `source` and taking one epoch of training batches, streamed and in memory (no model)."""
    out = {"source": str(source), "sizes": sizes(case, source)}
    options = ["--data.sample_rate=8000", "--data.n_mels=40"] if case == "dtmf" else []
    for mode, flags in (("stream", ["--stream", "--workers", str(workers)]), ("memory", ["--no-stream"])):
        out[mode] = measure_process([sys.executable, "-c", LOADER, str(source), *flags, *options],
                                    {**os.environ, "OMP_NUM_THREADS": "1"})
        print(f"{case} loader {mode}: {out[mode]['peak_pss_mib']} MiB peak, {out[mode]['seconds']} s", flush=True)
    return out


AUGMENT_RUNS = [("4000 train", 0), ("1000 train", 0), ("1000 train", 1)]  # (training set, seed)


def augment_check(root: Path, out: Path) -> dict:
    """Validation scores of the dtmf recipe with and without --augment, on a 1x CSV and a 1,000-item subset of
    its training rows; each run is written to `out` as it ends, and runs already there are not repeated."""
    csv = ensure_dtmf(root, 1)
    lines = csv.read_text().splitlines()
    small = csv.with_name("transcripts-1k.csv")
    if not small.exists():
        train = [line for line in lines[1:] if line.endswith(",train")][:1000]
        small.write_text("\n".join([lines[0], *train, *(line for line in lines[1:] if not line.endswith(",train"))]) + "\n")
    runs = json.loads(out.read_text())["runs"] if out.exists() else {}
    for name, seed in AUGMENT_RUNS:
        for augment in ("--no-augment", "--augment"):
            key = f"{name} {augment} seed {seed}"
            if key in runs and "error" not in runs[key]:
                continue
            source = csv if name == "4000 train" else small
            runs[key] = r = run_train(source, [*DTMF_RECIPE, "--epochs", "8", "--no-stream", augment, "--seed", str(seed)])
            print(f"{key}: val {r.get('val')}  {r.get('error', '')}", flush=True)
            out.write_text(json.dumps({"benchmark": "stream_modalities_augment", "machine": machine(),
                                       "threads": int(THREADS[1]), "runs": runs}, indent=2) + "\n")
    return runs


def print_table(results: dict) -> None:
    print(f"\n{'source':<8} {'items':>7} {'on disk':>9} {'decoded':>9} {'padded':>9} | {'mode':<7} {'peak PSS':>10} "
          f"{'main':>8} {'procs':>5} {'wall':>7} {'samples/s':>9}  test")
    for case, r in results.items():
        s = r["sizes"]
        head = (f"{case:<8} {s['items']:>7} {s['allocated_bytes'] / MIB:>7.0f}Mi {s['decoded_bytes'] / MIB:>7.0f}Mi "
                f"{s['padded_bytes'] / MIB:>7.0f}Mi")
        for mode in ("stream", "memory"):
            m = r[mode]
            test = m.get("error") or ", ".join(f"{k} {v:.3f}" for k, v in m["test"].items() if k != "loss")
            print(f"{head if mode == 'stream' else ' ' * len(head)} | {mode:<7} {m['peak_pss_mib']:>8.0f}Mi "
                  f"{m['peak_main_pss_mib']:>6.0f}Mi {m['max_processes']:>5} {m['wall_s']:>6.0f}s "
                  f"{m.get('samples_per_second', float('nan')):>9.0f}  {test}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="dtmf,npy,frames", help="comma-separated: dtmf, npy, frames")
    parser.add_argument("--scale", type=int, default=10, help="times the built-in's size (default: 10)")
    parser.add_argument("--workers", type=int, default=2, help="decoder processes of the streamed runs (default: 2)")
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads of each run (default: 1; on a shared machine more threads spin and slow down)")
    parser.add_argument("--root", default=os.path.join(tempfile.gettempdir(), "gridseq-modalities"))
    parser.add_argument("--augment-check", action="store_true", help="measure --augment on dtmf instead")
    parser.add_argument("--loader-only", action="store_true", help="the data path alone (load + one epoch of batches)")
    parser.add_argument("--out", help=f"JSON output (default: {OUT}, or {AUGMENT_OUT} with --augment-check)")
    args = parser.parse_args()
    THREADS[1] = str(args.threads)
    root = Path(args.root)
    root.mkdir(parents=True, exist_ok=True)
    if args.augment_check:
        out = Path(args.out or AUGMENT_OUT)
        out.parent.mkdir(parents=True, exist_ok=True)
        runs = augment_check(root, out)
        for key, r in runs.items():
            print(f"{key:<36} " + ", ".join(f"val {k} {v:.4f}" for k, v in r.get("val", {}).items()))
        print(f"wrote {out}")
        return
    if args.loader_only:
        out = Path(args.out or LOADER_OUT)
        results = json.loads(out.read_text())["cases"] if out.exists() else {}
        for case in args.cases.split(","):
            source = ensure_dtmf(root, args.scale) if case == "dtmf" else ensure_clips(root, args.scale, case)
            results[case] = {**measure_loader(case, source, args.workers), "machine": machine()}
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps({"benchmark": "stream_modalities_loader", "scale": args.scale, "cases": results},
                                      indent=2) + "\n")
        for case, r in results.items():
            s = r["sizes"]
            print(f"{case:<7} {s['items']:>7} items, {s['allocated_bytes'] / MIB:.0f} MiB on disk, {s['padded_bytes'] / MIB:.0f} "
                  f"MiB padded float32 | streamed {r['stream']['peak_pss_mib']:.0f} MiB, in memory {r['memory']['peak_pss_mib']:.0f} MiB")
        print(f"wrote {out}")
        return
    out = Path(args.out or OUT)
    results = {}
    if out.exists():  # cases measured before at this scale stay, unless measured again now
        before = json.loads(out.read_text())
        if before.get("scale") == args.scale:
            results = before.get("cases", {})
    for case in args.cases.split(","):
        source = ensure_dtmf(root, args.scale) if case == "dtmf" else ensure_clips(root, args.scale, case)
        results[case] = {**measure(case, source, args.workers), "machine": machine()}
    print_table(results)
    result = {"benchmark": "stream_modalities", "scale": args.scale, "workers": args.workers, "threads": args.threads,
              "cases": results}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
