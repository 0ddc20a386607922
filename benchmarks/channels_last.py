"""Channels-last (NHWC) vs the default layout for one training step of gridseq's conv models on the CPU.

`gridseq.fit` trains conv models on 4D image batches channels-last by default (`channels_last=None`);
this measures what that buys: forward, backward and an AdamW step on the same model and batch in
both layouts, interleaved (warm-up, then 7 rounds of 5 steps each), median, 1 thread.

    python benchmarks/channels_last.py [--out benchmarks/results/channels_last.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

import gridseq

CASES = {  # name: (model factory, batch shape)
    "digits-cnn": (lambda: gridseq.models.create("cnn", input_shape=(1, 8, 8), num_classes=10), (64, 1, 8, 8)),
    "model4-cnn": (lambda: gridseq.models.create("cnn", input_shape=(1, 28, 28), num_classes=10, batch_norm=False,
                                                 dropout=0.0), (128, 1, 28, 28)),
    "unet": (lambda: gridseq.models.create("unet", in_channels=3, num_classes=4, channels=(16, 32, 64, 128)), (8, 3, 64, 64)),
    "centernet": (lambda: gridseq.models.create("centernet", in_channels=3, num_classes=13, channels=(16, 32, 64)),
                  (32, 3, 64, 64)),
}


def _step(factory, shape, channels_last: bool):
    torch.manual_seed(0)
    model = factory()
    x = torch.randn(*shape)
    if channels_last:
        model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), 1e-3)

    def step() -> None:
        opt.zero_grad()
        model(x).float().pow(2).mean().backward()
        opt.step()
    return step


def measure(factory, shape, rounds: int = 7, steps: int = 5) -> dict:
    runs = {"default": _step(factory, shape, False), "channels_last": _step(factory, shape, True)}
    for step in runs.values():
        step(), step()
    times = {k: [] for k in runs}
    for _ in range(rounds):
        for k, step in runs.items():
            t0 = time.perf_counter()
            for _ in range(steps):
                step()
            times[k].append((time.perf_counter() - t0) / steps)
    ms = {k: 1e3 * statistics.median(v) for k, v in times.items()}
    return {"ms_per_step": {k: round(v, 2) for k, v in ms.items()}, "speedup": round(ms["default"] / ms["channels_last"], 3)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=None)
    args = p.parse_args()
    torch.set_num_threads(1)
    results = {}
    for name, (factory, shape) in CASES.items():
        results[name] = measure(factory, shape)
        print(f"{name:12s} default {results[name]['ms_per_step']['default']:8.2f} ms  channels-last "
              f"{results[name]['ms_per_step']['channels_last']:8.2f} ms  speed-up {results[name]['speedup']:.2f}x", flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps({"torch": torch.__version__, "threads": 1, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
