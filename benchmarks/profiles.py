"""torch.profiler tables for the targets benchmarks/run.py misses: where the time of one training step goes.

    python benchmarks/profiles.py [--out benchmarks/results/profiles.txt]

Cases (1 thread, after 3 warm-up steps, 5 profiled steps; forward, backward and an AdamW step):

    lstm-reference   Recurrent(impl="reference") LSTM, B=32, T=100, F=32, H=128 (reference-vs-fused/lstm)
    lstm-fused       the same layer, impl="fused"
    cnn-image        model 4 (Conv32-Pool-Conv64-Pool-Dense128-Dense10, 28x28, B=128), channels-last as
                     gridseq.fit trains it (keras/cnn-image-train)

For each: the number of operator calls per step, the top operators by self CPU time, and the total.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

import gridseq
from gridseq.nn import Recurrent

STEPS = 5


def _lstm(impl: str):
    torch.manual_seed(0)
    layer = Recurrent("lstm", 32, 128, impl=impl)
    head = torch.nn.Linear(128, 10)
    params = [*layer.parameters(), *head.parameters()]
    opt = torch.optim.AdamW(params, 1e-3)
    x, y = torch.randn(32, 100, 32), torch.randint(0, 10, (32,))

    def step() -> None:
        opt.zero_grad()
        out, _ = layer(x)
        torch.nn.functional.cross_entropy(head(out[:, -1]), y).backward()
        opt.step()
    return step


def _cnn():
    torch.manual_seed(0)
    model = gridseq.models.create("cnn", input_shape=(1, 28, 28), num_classes=10, batch_norm=False, dropout=0.0)
    model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    x = torch.randn(128, 1, 28, 28).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (128,))

    def step() -> None:
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return step


CASES = {"lstm-reference": lambda: _lstm("reference"), "lstm-fused": lambda: _lstm("fused"), "cnn-image": _cnn}


def table(name: str, step, rows: int = 12) -> str:
    for _ in range(3):
        step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(STEPS):
            step()
    events = prof.key_averages()
    calls = sum(e.count for e in events) / STEPS
    total_ms = sum(e.self_cpu_time_total for e in events) / 1e3 / STEPS
    head = f"## {name}: {total_ms:.1f} ms of operator self time per step, {calls:.0f} operator calls per step"
    return head + "\n" + events.table(sort_by="self_cpu_time_total", row_limit=rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=None)
    args = p.parse_args()
    torch.set_num_threads(1)
    text = f"torch {torch.__version__}, 1 thread, {STEPS} profiled steps each\n\n" + "\n\n".join(
        table(name, build()) for name, build in CASES.items())
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
