"""overhead/<model>: `gridseq.fit` against a minimal hand-written PyTorch loop.

Same architecture (the plain module is checked identical to the gridseq model with copied weights),
same tensors, batch size, optimizer (AdamW, lr 1e-3, weight decay 0.01), float32, threads. One
repetition is one epoch of `steps` batches, timed wall-clock around the whole `fit(...)` call (setup,
sampler, metrics, best-weights copy; the validation and test splits are empty) and around the whole
plain loop (optimizer construction, a fresh random order, gather, forward, loss, backward, step).

Three cases, interleaved:

- `fit`: gridseq.fit on the gridseq model, gradient clipping off (the plain loop does not clip);
- `plain`: the hand-written loop on the identical plain torch module — the judged baseline;
- `loop_on_gridseq_model`: the same hand-written loop on the gridseq model, which splits the
  overhead into the model's part (input checks, final-state gathering) and fit's part.

ratio = plain seconds / fit seconds (throughput of fit ÷ throughput of the plain loop), a ratio of medians, with
the range of the per-round ratios beside it. Where that range is wider than the effect being measured (the
overhead, |1 - ratio|, or the 3% the target allows, whichever is larger), the repetitions are too short for
the machine's noise: the steps per repetition double and the cases are timed again, up to 4x.
For variable-length data (bigru-varlen) both loops use gridseq's length-bucketing sampler and
packing, so both do the same work; bucketing itself is judged by varlen/bigru.
"""

from __future__ import annotations

import torch

import gridseq
from benchmarks import timing
from benchmarks.models import SPECS, Spec, check_identical
from gridseq.data.samplers import BatchSampler

TARGET = 0.97
FULL_STEPS = {"rnn-text": 40, "lstm-forecast": 60, "lstm-charlm": 16, "cnn-image": 40, "bigru-varlen": 16}


def _batches(spec: Spec, split, epoch: int) -> list[torch.Tensor]:
    if split.lengths is None:
        return list(torch.randperm(len(split)).split(spec.batch_size))
    sampler = BatchSampler(len(split), spec.batch_size, lengths=split.lengths, seed=0)
    sampler.set_epoch(epoch)
    return sampler.batches()


def plain_loop(model: torch.nn.Module, spec: Spec, split, epoch: int = 0) -> None:
    """One epoch of the minimal hand-written loop."""
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    for index in _batches(spec, split, epoch):
        x, y = split.x[index], split.y[index]
        if split.lengths is None:
            out = model(x)
        else:
            lengths = split.lengths[index]
            out = model(x[:, : int(lengths.max())], lengths)
        loss = spec.loss(out, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


MAX_DOUBLINGS = 2


def run_one(spec: Spec, budget: timing.Budget) -> timing.Entry:
    steps = budget.steps(FULL_STEPS[spec.key], minimum=6)
    widths = []
    for doubling in range(MAX_DOUBLINGS + 1):
        times, reported = _time_cases(spec, budget, steps)
        ratios = timing.paired_ratios(times["plain"], times["fit"])
        ratio = timing.median(times["plain"]) / timing.median(times["fit"])
        widths.append(round(max(ratios) - min(ratios), 4))
        if max(ratios) - min(ratios) <= max(abs(1 - ratio), 1 - TARGET) or doubling == MAX_DOUBLINGS:
            break
        steps *= 2
    med = {k: timing.median(v) for k, v in times.items()}
    items = steps * spec.batch_size
    figures = {
        "steps_per_rep": steps, "batch_size": spec.batch_size, "spread_by_steps": widths,
        "samples_per_s": {k: round(items / v, 1) for k, v in med.items()},
        "fit_reported_samples_per_s": round(timing.median(reported[budget.warmup:]), 1),
        "model_overhead_ratio": round(med["plain"] / med["loop_on_gridseq_model"], 4),
        "loop_overhead_ratio": round(med["loop_on_gridseq_model"] / med["fit"], 4),
        "max_abs_output_diff_same_weights": check_identical(spec),
        **{f"{k}_s": timing.summary(v) for k, v in times.items()},
    }
    note = ""
    if spec.key in ("rnn-text", "lstm-charlm"):
        note = "per-step LM on fixed batches through a benchmark task (the plain loop carries no state)"
    return timing.Entry(f"overhead/{spec.key}", med["plain"] / med["fit"], TARGET, figures, note, spread=(min(ratios), max(ratios)))


def _time_cases(spec: Spec, budget: timing.Budget, steps: int) -> tuple[dict[str, list[float]], list[float]]:
    """The three cases on an epoch of `steps` batches, interleaved: seconds per repetition, and fit's own samples/s."""
    data = spec.data(steps * spec.batch_size)
    fit_model, loop_model, plain_model = spec.gridseq(), spec.gridseq(), spec.plain()
    reported: list[float] = []
    epoch = iter(range(10**6))

    def fit_case() -> None:
        result = gridseq.fit(fit_model, data, epochs=1, batch_size=spec.batch_size, lr=1e-3, optimizer="adamw",
                             weight_decay=0.01, grad_clip=0, progress=False, device="cpu", seed=next(epoch))
        reported.append(result.samples_per_second)

    cases = {
        "fit": fit_case,
        "plain": lambda: plain_loop(plain_model, spec, data.train, next(epoch)),
        "loop_on_gridseq_model": lambda: plain_loop(loop_model, spec, data.train, next(epoch)),
    }
    return timing.interleaved(cases, budget), reported


def run(budget: timing.Budget, only: str | None = None) -> list[timing.Entry]:
    return [run_one(spec, budget) for key, spec in SPECS.items() if only is None or only in f"overhead/{key}"]
