"""latency/<model>: batch-1 predict latency through `Predictor` against the bare torch module.

The two recurrent seed models of benchmarks/models.py (rnn-text: Embedding → RNN(128) → Dense(65) per
step; bigru-varlen: BiGRU(64) many-to-one), one sequence of T=100 steps, eval mode, no autograd
(`torch.inference_mode()` for every case, as `Predictor.forward` uses). The plain module gets the gridseq
model's weights (outputs checked identical) and the same tensor. Three cases, interleaved:

- `plain`: the identical plain PyTorch module called on x — the judged baseline;
- `model`: the gridseq model called on (x, lengths) from user code (its input checks run once);
- `predictor`: `Predictor.forward(Batch(x, lengths=lengths))` — the prepared-batch path `predict` and the
  server take (task dispatch, device move, the model's checks), without raw-input parsing or decoding.

One repetition times `calls` back-to-back calls and keeps the mean per call; the ratio is the median
of `predictor` over the median of `plain` (target ≤ 1.2×); `model / plain` is reported beside it.

    python benchmarks/run.py --only latency --threads 1
"""

from __future__ import annotations

import time

import torch

from benchmarks import timing
from benchmarks.models import SPECS, copy_weights
from gridseq.data.contract import Batch
from gridseq.predict import Predictor

TARGET = 1.2
STEPS = 100
KEYS = ("rnn-text", "bigru-varlen")


def _inputs(key: str) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    if key == "rnn-text":
        x = torch.randint(1, 65, (1, STEPS), generator=g)
    else:
        x = torch.randn(1, STEPS, 8, generator=g)
    return x, torch.tensor([STEPS])


def run_one(key: str, budget: timing.Budget) -> timing.Entry:
    spec = SPECS[key]
    torch.manual_seed(0)
    model, plain = spec.gridseq().eval(), spec.plain().eval()
    copy_weights(model, plain)
    predictor = Predictor(model, spec.data(8).info)
    x, lengths = _inputs(key)
    batch = Batch(x, lengths=lengths)
    with torch.inference_mode():
        diff = float((predictor.forward(batch).reshape(-1) - plain(x).reshape(-1)).abs().max())
    calls = budget.steps(100, minimum=20)

    def case(fn):
        def one() -> float:
            with torch.inference_mode():
                t0 = time.perf_counter()
                for _ in range(calls):
                    fn()
                return (time.perf_counter() - t0) / calls
        return one

    cases = {
        "plain": case(lambda: plain(x)),
        "model": case(lambda: model(x, lengths)),
        "predictor": case(lambda: predictor.forward(batch)),
    }
    reps = timing.Budget(reps=max(21, budget.reps * 5), warmup=2, scale=budget.scale)
    times = timing.interleaved(cases, reps)
    med = {k: timing.median(v) for k, v in times.items()}
    figures = {
        "steps": STEPS, "batch_size": 1, "calls_per_rep": calls, "reps": reps.reps,
        "ms_per_call": {k: round(v * 1e3, 4) for k, v in med.items()},
        "model_over_plain": round(med["model"] / med["plain"], 4),
        "predictor_over_plain": round(med["predictor"] / med["plain"], 4),
        "max_abs_output_diff_same_weights": diff,
        **{f"{k}_s": timing.summary(v) for k, v in times.items()},
    }
    note = (f"predictor {med['predictor'] * 1e3:.3f} ms, model {med['model'] * 1e3:.3f} ms, "
            f"plain {med['plain'] * 1e3:.3f} ms (model/plain {med['model'] / med['plain']:.2f})")
    return timing.Entry(f"latency/{key}", med["predictor"] / med["plain"], TARGET, figures, note, higher=False)


def run(budget: timing.Budget, only: str | None = None) -> list[timing.Entry]:
    return [run_one(key, budget) for key in KEYS if only is None or only in f"latency/{key}"]
