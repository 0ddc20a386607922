"""reference-vs-fused/<mode>: `Recurrent(impl="reference")` against `impl="fused"`, training step.

One `Recurrent` layer (one set of weights, the implementation switched between repetitions), B=32,
T=100, F=32, H=128, forward + backward of the sum of the outputs, no optimizer. Uniform lengths
(the fused path's fastest case: no packing); the variable-length figure is kept beside it.

ratio = fused seconds / reference seconds (the reference path's throughput as a share of fused).
"""

from __future__ import annotations

import torch

from benchmarks import timing
from gridseq.nn import Recurrent

TARGET = 0.5
B, T, F_IN, H = 32, 100, 32, 128


def _step(layer: Recurrent, x: torch.Tensor, lengths: torch.Tensor | None, impl: str, reps: int) -> None:
    layer.impl = impl
    for _ in range(reps):
        out, _ = layer(x, lengths)
        out.sum().backward()
        layer.zero_grad(set_to_none=True)


def run_one(mode: str, budget: timing.Budget) -> timing.Entry:
    torch.manual_seed(0)
    layer = Recurrent(mode, F_IN, H)
    x = torch.randn(B, T, F_IN)
    lengths = torch.randint(T // 2, T + 1, (B,))
    lengths[0] = T
    steps = budget.steps(6, minimum=2)
    cases = {
        "fused": lambda: _step(layer, x, None, "fused", steps),
        "reference": lambda: _step(layer, x, None, "reference", steps),
        "fused_varlen": lambda: _step(layer, x, lengths, "fused", steps),
        "reference_varlen": lambda: _step(layer, x, lengths, "reference", steps),
    }
    times = timing.interleaved(cases, budget)
    med = {k: timing.median(v) / steps for k, v in times.items()}
    figures = {
        "shape": {"B": B, "T": T, "F": F_IN, "H": H}, "steps_per_rep": steps,
        "ms_per_step": {k: round(1e3 * v, 2) for k, v in med.items()},
        "varlen_ratio": round(med["fused_varlen"] / med["reference_varlen"], 4),
    }
    return timing.Entry(f"reference-vs-fused/{mode}", med["fused"] / med["reference"], TARGET, figures)


def run(budget: timing.Budget, only: str | None = None) -> list[timing.Entry]:
    return [run_one(m, budget) for m in ("rnn", "lstm", "gru") if only is None or only in f"reference-vs-fused/{m}"]
