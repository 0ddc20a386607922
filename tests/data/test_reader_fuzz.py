"""Fuzzing every file reader: truncated, bit-flipped, empty, huge-header and wrong-type files end in a
`DataError` (data) or a `CheckpointError` (run directories, checkpoints) — never another exception,
a hang or unbounded memory.

Each reader gets a small valid dataset; each case copies it and damages one of its files with a
seeded mutation, then loads it (`gridseq.datasets.load`, and a first batch of every split, so
streamed readers decode too; `gridseq.load` / `load_checkpoint` for runs). The cases run in a spawned
worker process with a per-case deadline (SIGALRM in the worker, a kill from here if it is stuck in C)
and a cap on its data segment (RLIMIT_DATA: what it had after importing the readers + 1 GiB, so a reader that believes a huge header fails with
MemoryError instead of swapping the machine); a killed worker is restarted and the case counted as a
hang.

    GRIDSEQ_FUZZ_CASES=500 python -m pytest -q tests/data/test_reader_fuzz.py -s   # more cases; prints the table

Default: 50 cases per reader (CI).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import shutil
import struct
import sys
import tempfile
import traceback
import zlib
from pathlib import Path

import pytest

CASES = int(os.environ.get("GRIDSEQ_FUZZ_CASES", "50"))
DEADLINE = 20  # seconds per case (the worker's alarm); the parent kills after DEADLINE + 10
HEAP = 1 << 30  # bytes a case may allocate above the worker's base
MUTATIONS = ("truncate", "bitflip", "empty", "huge-header", "wrong-type")


# --- the valid datasets ---------------------------------------------------------------------------

def _png(path: Path, size=(8, 8), mode="RGB", seed=0, values=None) -> None:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    shape = (*size, 3) if mode == "RGB" else size
    pixels = rng.integers(0, 255, shape, dtype=np.uint8) if values is None else values
    Image.fromarray(pixels, mode).save(path)


def build(reader: str, root: Path) -> tuple[Path, dict, list[Path]]:
    """(what to load, load options, the files a mutation may damage) for a valid dataset of `reader`."""
    import numpy as np

    root.mkdir(parents=True)
    if reader == "image_folder":
        for c in ("a", "b"):
            (root / c).mkdir()
            for i in range(4):
                _png(root / c / f"{i}.png", seed=i + (c == "b") * 10)
        return root, {}, sorted(root.rglob("*.png"))
    if reader == "mask_folder":
        (root / "images").mkdir()
        (root / "masks").mkdir()
        for i in range(6):
            _png(root / "images" / f"im{i}.png", (8, 8), seed=i)
            mask = np.zeros((8, 8), dtype=np.uint8)
            mask[2:5, 2:6] = 1 + i % 2
            _png(root / "masks" / f"im{i}.png", mode="L", values=mask)
        return root, {}, sorted(root.rglob("*.png"))
    if reader == "wav":
        from gridseq.data import audio

        lines = ["file,transcript"]
        rng = np.random.default_rng(0)
        for i in range(6):
            audio.write_wav(root / f"{i}.wav", 0.3 * rng.standard_normal(800), 8000)
            lines.append(f"{i}.wav,{'12'[i % 2]}{'34'[i % 2]}")
        (root / "transcripts.csv").write_text("\n".join(lines) + "\n")
        return root / "transcripts.csv", {}, [*sorted(root.glob("*.wav")), root / "transcripts.csv"]
    if reader == "csv":
        rows = ["label," + ",".join(f"t{t}" for t in range(5))]
        rows += [f"{'xy'[i % 2]}," + ",".join(f"{(i * 7 + t) % 5 / 4:.3f}" for t in range(5)) for i in range(20)]
        (root / "seq.csv").write_text("\n".join(rows) + "\n")
        return root / "seq.csv", {}, [root / "seq.csv"]
    if reader == "ts":
        series = "\n".join(f"{i},{i + 1},{i % 3}:{'ab'[i % 2]}" for i in range(20))
        (root / "Toy_TRAIN.ts").write_text("@problemName Toy\n@timeStamps false\n@univariate true\n@equalLength true\n"
                                           f"@seriesLength 3\n@classLabel true a b\n@data\n{series}\n")
        return root / "Toy_TRAIN.ts", {}, [root / "Toy_TRAIN.ts"]
    if reader == "npy_video":
        for c in ("left", "right"):
            (root / c).mkdir()
            for i in range(4):
                np.save(root / c / f"{i}.npy", np.random.default_rng(i).integers(0, 255, (4, 8, 8), dtype=np.uint8))
        return root, {}, sorted(root.rglob("*.npy"))
    if reader == "npz":
        rng = np.random.default_rng(0)
        np.savez(root / "walks.npz", x=rng.standard_normal((24, 6, 2)).astype(np.float32), y=rng.integers(0, 2, 24))
        return root / "walks.npz", {}, [root / "walks.npz"]
    if reader == "txt":
        (root / "corpus.txt").write_text("the quick brown fox jumps over the lazy dog. " * 40)
        return root / "corpus.txt", {"chunk": 16}, [root / "corpus.txt"]
    if reader == "tsv":
        (root / "pairs.tsv").write_text("".join(f"{w}\t{w[::-1]}\n" for w in ("abc", "hello", "fuzz", "ring", "tone", "dune") * 4))
        return root / "pairs.tsv", {}, [root / "pairs.tsv"]
    if reader == "text_csv":
        (root / "text.csv").write_text("text,label\n" + "".join(f"{'good fine' if i % 2 else 'bad awful'} {i},{'pn'[i % 2]}\n" for i in range(20)))
        return root / "text.csv", {}, [root / "text.csv"]
    if reader in ("coco_json", "box_csv"):
        for i in range(6):
            _png(root / f"im{i}.png", (16, 16), seed=i)
        if reader == "coco_json":
            doc = {"images": [{"id": i, "file_name": f"im{i}.png", "width": 16, "height": 16} for i in range(6)],
                   "annotations": [{"id": i, "image_id": i, "bbox": [2, 2, 8, 8], "category_id": 1 + i % 2} for i in range(6)],
                   "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}]}
            (root / "ann.json").write_text(json.dumps(doc))
            return root / "ann.json", {"size": 16}, [root / "ann.json", root / "im0.png"]
        (root / "boxes.csv").write_text("image,x0,y0,x1,y1,class\n" + "".join(f"im{i}.png,2,2,10,10,{'cd'[i % 2]}\n" for i in range(6)))
        return root / "boxes.csv", {"size": 16}, [root / "boxes.csv", root / "im1.png"]
    if reader == "run_dir":
        import gridseq
        from gridseq import models
        from gridseq.data.contract import DatasetInfo

        info = DatasetInfo(name="toy", kind="sequence", input_shape=(5, 2), num_classes=2, class_names=("a", "b"))
        gridseq.save(models.create_for("mlp", info), root, extra={"data": {"name": "toy", "info": info.to_json()}})
        return root, {}, [root / "config.json", root / "model.safetensors"]
    if reader == "checkpoint":
        import torch

        from gridseq.train.checkpoint import save_checkpoint

        save_checkpoint(root, {"model": {"w": torch.arange(6.0)}, "step": 3, "rng": [1, 2]}, step=3)
        return root, {}, sorted(root.iterdir())
    raise AssertionError(reader)


READERS = ("image_folder", "mask_folder", "wav", "csv", "ts", "npy_video", "npz", "txt", "tsv", "text_csv",
           "coco_json", "box_csv", "run_dir", "checkpoint")


# --- the damage -----------------------------------------------------------------------------------

def _huge_header(data: bytes, rng: random.Random) -> bytes:
    """The file's size fields set huge: PNG width/height, WAV chunk sizes and channels, .npy shapes,
    safetensors' header length, or else a number near the start made enormous."""
    big = rng.choice([2**31 - 1, 2**32 - 1, 10**12])
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 33:
        ihdr = struct.pack(">II", big % 2**31, big % 2**31) + data[24:29]
        return data[:16] + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr)) + data[33:]
    if data[:4] == b"RIFF" and len(data) > 44:
        out = bytearray(data)
        field = rng.choice([4, 22, 24, 40])  # RIFF size, channels, sample rate, data size
        out[field:field + (2 if field == 22 else 4)] = (65535).to_bytes(2, "little") if field == 22 else (big % 2**32).to_bytes(4, "little")
        return bytes(out)
    if data[:6] == b"\x93NUMPY":
        return data.replace(b"'shape': (", f"'shape': ({big}, ".encode(), 1)
    if data[:2] == b"PK":  # .npz: the first member's .npy header
        at = data.find(b"'shape': (")
        return data if at < 0 else data[:at] + f"'shape': ({big}, ".encode() + data[at + 10:]
    if len(data) > 8 and data[8:9] == b"{" and b"dtype" in data[:2000]:  # safetensors
        return struct.pack("<Q", big) + data[8:]
    import re

    numbers = list(re.finditer(rb"\d+", data[:4000]))
    if not numbers:
        return str(big).encode() + data
    m = rng.choice(numbers)
    return data[:m.start()] + str(big).encode() + data[m.end():]


def _wrong_type(rng: random.Random) -> bytes:
    return rng.choice([
        b"\x89PNG\r\n\x1a\n" + bytes(rng.randrange(256) for _ in range(64)),
        b"PK\x03\x04" + bytes(40),
        b'[1, 2, 3]', b'{"a": {"b": [null, true]}}', b"\x00" * 512, b"\xff\xfe" + "text".encode("utf-16-le"),
        bytes(rng.randrange(256) for _ in range(rng.randrange(1, 2048))),
        b"RIFF\x24\x00\x00\x00WAVEfmt ", b"\x93NUMPY\x01\x00v\x00{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }",
    ])


def mutate(path: Path, kind: str, rng: random.Random) -> None:
    data = path.read_bytes()
    if kind == "truncate":
        data = data[:rng.randrange(max(1, len(data)))]
    elif kind == "bitflip":
        out = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(len(out))
            out[i] ^= 1 << rng.randrange(8)
        data = bytes(out)
    elif kind == "empty":
        data = b""
    elif kind == "huge-header":
        data = _huge_header(data, rng)
    else:
        data = _wrong_type(rng)
    path.write_bytes(data)


# --- one case, in the worker ------------------------------------------------------------------------

def _load(reader: str, target: Path, options: dict) -> None:
    if reader == "run_dir":
        import gridseq

        gridseq.load(target)
        return
    if reader == "checkpoint":
        from gridseq.train.checkpoint import load_checkpoint

        load_checkpoint(target)
        return
    from gridseq import datasets
    from gridseq.data.readers.detection import load_detection_file

    if reader in ("coco_json", "box_csv"):  # the reader itself: a damaged CSV may no longer look like a boxes CSV
        data = load_detection_file(target, 0, "image", **options)
    else:
        data = datasets.load(str(target), **options)
    for split in data.splits().values():  # decode a first batch: streamed readers read files here
        if len(split):
            for _ in split.loader([list(range(min(len(split), 4)))], epoch=0, seed=0, augment=None):
                pass


def run_case(reader: str, seed: int, work: Path, cache: dict) -> tuple[str, str]:
    """(outcome, detail): outcome "ok" (the damaged file still reads), "DataError"/"CheckpointError",
    or "unexpected" with the exception and where it came from."""
    from gridseq.errors import CheckpointError, DataError

    if reader not in cache:
        cache[reader] = build(reader, work / "seed" / reader)
    target, options, files = cache[reader]
    rng = random.Random(f"{reader}-{seed}")
    case = work / "case"
    shutil.rmtree(case, ignore_errors=True)
    seed_root = work / "seed" / reader
    shutil.copytree(seed_root, case)
    victim = case / rng.choice(files).relative_to(seed_root)
    kind = MUTATIONS[seed % len(MUTATIONS)]
    mutate(victim, kind, rng)
    where = f"{kind} {victim.relative_to(case)}"
    try:
        _load(reader, case / target.relative_to(seed_root) if target != seed_root else case, options)
    except (DataError, CheckpointError) as e:
        return type(e).__name__, where
    except BaseException as e:  # noqa: BLE001 - anything else is what this test looks for
        frame = traceback.extract_tb(e.__traceback__)[-1]
        return "unexpected", f"{where}: {type(e).__name__}: {str(e)[:300]} at {frame.filename}:{frame.lineno}"
    return "ok", where


def _worker(conn) -> None:
    import resource
    import signal

    import torch

    torch.set_num_threads(1)
    import gridseq.datasets  # noqa: F401 - imported before measuring: the readers' own footprint is the base
    import gridseq.io  # noqa: F401

    status = Path("/proc/self/status").read_text()
    base = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmData:"))) * 1024
    resource.setrlimit(resource.RLIMIT_DATA, (base + HEAP, resource.RLIM_INFINITY))

    def alarm(signum, frame):
        raise TimeoutError(f"case took over {DEADLINE} s")

    signal.signal(signal.SIGALRM, alarm)
    cache: dict = {}
    work = Path(tempfile.mkdtemp(prefix="gridseq-fuzz-"))
    try:
        while True:
            job = conn.recv()
            if job is None:
                return
            signal.alarm(DEADLINE)
            try:
                outcome = run_case(*job, work, cache)
            finally:
                signal.alarm(0)
            conn.send(outcome)
    finally:
        shutil.rmtree(work, ignore_errors=True)


class Fuzzer:
    """A spawned worker that runs cases one at a time, restarted when a case kills or hangs it."""

    def __init__(self):
        self.ctx = multiprocessing.get_context("spawn")
        self.proc = None

    def _start(self):
        self.conn, child = self.ctx.Pipe()
        self.proc = self.ctx.Process(target=_worker, args=(child,), daemon=True)
        self.proc.start()

    def run(self, reader: str, seed: int) -> tuple[str, str]:
        if self.proc is None or not self.proc.is_alive():
            self._start()
        self.conn.send((reader, seed))
        if self.conn.poll(DEADLINE + 10 + (60 if seed == 0 else 0)):  # the first case also imports and builds
            try:
                return self.conn.recv()
            except (EOFError, OSError):  # the worker died mid-answer
                pass
        self.proc.kill()
        self.proc.join()
        self.proc = None
        return "hang-or-crash", f"case {seed}: the worker was killed or died"

    def close(self):
        if self.proc is not None and self.proc.is_alive():
            self.conn.send(None)
            self.proc.join(10)


@pytest.fixture(scope="module")
def fuzzer():
    sys.path.insert(0, str(Path(__file__).parent))  # the spawned worker imports this module
    f = Fuzzer()
    yield f
    f.close()


@pytest.mark.parametrize("reader", READERS)
def test_damaged_files_end_in_a_data_or_checkpoint_error(fuzzer, reader):
    counts: dict[str, int] = {}
    bad = []
    for seed in range(CASES):
        outcome, detail = fuzzer.run(reader, seed)
        counts[outcome] = counts.get(outcome, 0) + 1
        if outcome in ("unexpected", "hang-or-crash"):
            bad.append(f"case {seed}: {detail}")
    print(f"\nfuzz {reader}: {CASES} cases: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    assert not bad, "\n".join(bad[:15])
    assert counts.get("DataError", 0) + counts.get("CheckpointError", 0) > 0  # the damage was seen at all
