"""scaling/*: how time grows with sequence length, image size and threads.

- scaling/rnn-length: inference (eval, no_grad) of an "lstm" model (F=16, H=128, B=32) at T, 2T,
  4T, 8T with T=50. ratio = 8·t(T) / t(8T): 1 is exactly linear, below 1 worse than linear.
- scaling/fcn-pixels: inference of a 2D U-Net "fcn" (3 stages) on 64², 128², 256² images (1×, 4×,
  16× the pixels), B=4. ratio = 16·t(64²) / t(256²).
- scaling/threads-<model>: training throughput of the plain loop on models 2 and 4 with 1 and 2
  intra-op threads. ratio = t(1 thread) / t(2 threads), the speed-up of the second core.

All report-only (no target in the issue beyond "linear"); the threads ratio depends on load most.
"""

from __future__ import annotations

import torch

import gridseq
from benchmarks import timing
from benchmarks.models import SPECS
from benchmarks.overhead import plain_loop


def _infer(model, x, reps: int) -> None:
    with torch.no_grad():
        for _ in range(reps):
            model(x)


def rnn_length(budget: timing.Budget) -> timing.Entry:
    model = gridseq.models.create("lstm", input_size=16, hidden_size=128, num_classes=4).eval()
    sizes = (50, 100, 200, 400)
    inputs = {t: torch.randn(32, t, 16) for t in sizes}
    reps = budget.steps(5, minimum=2)
    times = timing.interleaved({f"T={t}": (lambda t=t: _infer(model, inputs[t], reps)) for t in sizes}, budget)
    med = {k: timing.median(v) / reps for k, v in times.items()}
    figures = {"ms_per_batch": {k: round(1e3 * v, 2) for k, v in med.items()}, "batch": 32, "hidden": 128}
    return timing.Entry("scaling/rnn-length", 8 * med["T=50"] / med["T=400"], None, figures, "8·t(T)/t(8T); 1 = linear")


def fcn_pixels(budget: timing.Budget) -> timing.Entry:
    model = gridseq.models.create("fcn", in_channels=3, num_classes=4).eval()
    sizes = (64, 128, 256)
    inputs = {s: torch.randn(4, 3, s, s) for s in sizes}
    reps = budget.steps(3, minimum=1)
    times = timing.interleaved({f"{s}x{s}": (lambda s=s: _infer(model, inputs[s], reps)) for s in sizes}, budget)
    med = {k: timing.median(v) / reps for k, v in times.items()}
    figures = {"ms_per_batch": {k: round(1e3 * v, 2) for k, v in med.items()}, "batch": 4}
    return timing.Entry("scaling/fcn-pixels", 16 * med["64x64"] / med["256x256"], None, figures, "16·t(64²)/t(256²); 1 = linear")


def threads(key: str, budget: timing.Budget) -> timing.Entry:
    spec = SPECS[key]
    steps = budget.steps(20, minimum=4)
    data = spec.data(steps * spec.batch_size)
    model = spec.plain()
    before = torch.get_num_threads()

    def with_threads(n: int) -> None:
        torch.set_num_threads(n)
        try:
            plain_loop(model, spec, data.train)
        finally:
            torch.set_num_threads(before)

    times = timing.interleaved({"1": lambda: with_threads(1), "2": lambda: with_threads(2)}, budget)
    med = {k: timing.median(v) for k, v in times.items()}
    items = steps * spec.batch_size
    figures = {"samples_per_s": {f"{k}_threads": round(items / v, 1) for k, v in med.items()}}
    return timing.Entry(f"scaling/threads-{key}", med["1"] / med["2"], None, figures, "speed-up from 1 to 2 threads")


def run(budget: timing.Budget, only: str | None = None) -> list[timing.Entry]:
    jobs = {
        "scaling/rnn-length": lambda: rnn_length(budget),
        "scaling/fcn-pixels": lambda: fcn_pixels(budget),
        "scaling/threads-cnn-image": lambda: threads("cnn-image", budget),
        "scaling/threads-lstm-forecast": lambda: threads("lstm-forecast", budget),
    }
    return [job() for name, job in jobs.items() if only is None or only in name]
