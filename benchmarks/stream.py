"""Streaming vs sliding-window recomputation: the cost of one new frame for causal video models.

A live video model must answer after every frame. Without state it reruns the model over a sliding
window of the last 16 frames (a sequence model: the last 100 steps); `model.stream()` keeps the
recurrent state, so a new frame costs one CNN pass and one recurrent step. Cases (batch 1, eval mode,
no autograd, 1 thread):

    crnn-20px     crnn as trained on moving-digits: 1x20x20 frames, CNN (16, 32), GRU 128
    crnn-64px     crnn on 3x64x64 frames, CNN (32, 64, 64), GRU 128: a camera-sized input
    convlstm-20px convlstm as trained on moving-digits (stem 16, ConvLSTM 32 at 10x10)
    gru-seq       gru on sequences of 32 features (the same interface on plain RNN models), window 100

For each, the time per new frame of `stream().step(frame)` and of `model(window)` over the last 16
frames (gru-seq: 100 steps), timed interleaved (gridseq's benchmarks/timing.py), median of the repetitions; the ratio
window / stream is judged against a 10x target. Printed as a table; JSON to benchmarks/results/.

    python benchmarks/stream.py [--quick] [--out benchmarks/results/stream.json]
    python benchmarks/run.py --only stream/           # the same entries in the runner's table
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.timing import FULL, QUICK, Entry, interleaved, machine, median, summary  # noqa: E402

from gridseq import models  # noqa: E402

WINDOW = 16  # frames a stateless video model reruns
SEQ_WINDOW = 100  # steps a stateless sequence model reruns
TARGET = 10.0
FRAMES = 48  # new frames per repetition


def _cases():
    """(name, model, one step's shape, window)."""
    yield "crnn-20px", models.create("crnn", input_shape=(1, 20, 20), num_classes=40), (1, 20, 20), WINDOW
    yield "crnn-64px", models.create("crnn", input_shape=(3, 64, 64), num_classes=40, channels=(32, 64, 64)), (3, 64, 64), WINDOW
    yield "convlstm-20px", models.create("convlstm", input_shape=(1, 20, 20), num_classes=40), (1, 20, 20), WINDOW
    yield "gru-seq", models.create("gru", input_size=32, num_classes=10), (32,), SEQ_WINDOW


def measure(name: str, model: torch.nn.Module, step_shape: tuple[int, ...], frames: int, budget,
            window_size: int = WINDOW) -> Entry:
    model.eval()
    torch.manual_seed(0)
    WINDOW = window_size  # noqa: N806 (the window of this case)
    video = torch.randn(1, WINDOW + frames, *step_shape)

    def streaming() -> float:
        s = model.stream(batch_size=1)
        for t in range(WINDOW):  # the history before the timed frames (not timed)
            s.step(video[:, t])
        t0 = time.perf_counter()
        for t in range(WINDOW, WINDOW + frames):
            s.step(video[:, t])
        return time.perf_counter() - t0

    def window() -> None:
        with torch.no_grad():
            for t in range(WINDOW, WINDOW + frames):
                model(video[:, t - WINDOW + 1 : t + 1])  # the last WINDOW frames, recomputed

    # the stream's answer is the window's answer when the window covers the whole history
    with torch.no_grad():
        s = model.stream()
        for t in range(WINDOW):
            y = s.step(video[:, t])
        torch.testing.assert_close(y, model(video[:, :WINDOW]), atol=1e-5, rtol=1e-5)
    times = interleaved({"stream": streaming, "window": window}, budget)
    per_stream, per_window = median(times["stream"]) / frames, median(times["window"]) / frames
    return Entry(
        name=f"stream/{name}", ratio=per_window / per_stream, target=TARGET,
        figures={"stream_ms_per_frame": round(1e3 * per_stream, 4), "window_ms_per_frame": round(1e3 * per_window, 4),
                 "window": WINDOW, "frames_per_rep": frames, "stream": summary(times["stream"]),
                 "window_times": summary(times["window"]),
                 "parameters": sum(p.numel() for p in model.parameters())},
    )


def run(budget, only: str | None = None) -> list[Entry]:
    """The entries for benchmarks/run.py (1 thread, as in `main`)."""
    frames = budget.steps(FRAMES)
    with_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return [measure(name, model, shape, frames, budget, window) for name, model, shape, window in _cases()
                if only is None or only in f"stream/{name}"]
    finally:
        torch.set_num_threads(with_threads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions and frames")
    parser.add_argument("--out", default="benchmarks/results/stream.json", help="write the results as JSON here")
    args = parser.parse_args()
    entries = run(QUICK if args.quick else FULL)
    print(f"{'case':<16} {'window':>6} {'stream ms/frame':>16} {'window ms/frame':>16} {'ratio':>7}  target {TARGET:.0f}x")
    for e in entries:
        f = e.figures
        print(f"{e.name.split('/')[1]:<16} {f['window']:>6} {f['stream_ms_per_frame']:>16.3f} {f['window_ms_per_frame']:>16.3f} "
              f"{e.ratio:>6.1f}x  {'met' if e.met else 'NOT met'}")
    result = {"benchmark": "stream", "machine": machine(), "budget": "quick" if args.quick else "full",
              "entries": [e.to_json() for e in entries]}
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
