"""varlen/bigru: model 5 trained by `gridseq.fit` (length-bucketing sampler + packing) against random
batches padded to the longest length (200) with a plain BiGRU that reads the padded batch — what a
Keras `pad_sequences` pipeline without masking does.

A third case, `random_packed`, is a plain loop over random batches (no bucketing) trimmed to each
batch's own longest item and packed: it separates what bucketing buys from what packing costs.
After the timed epochs (the same number for every case), each model's accuracy is measured on a
held-out set of the same synthetic task (the class reads the first and last valid steps).

ratio = padded seconds per epoch / gridseq seconds per epoch (throughput gain of gridseq).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

import gridseq
from benchmarks import timing
from benchmarks.models import SPECS, varlen_data
from gridseq.data.samplers import BatchSampler, padded_fraction

TARGET = 2.0
FULL_STEPS = 16


def _loop(model, split, batch_size: int, *, pad_to_max: bool) -> None:
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    for index in torch.randperm(len(split)).split(batch_size):
        x, y, lengths = split.x[index], split.y[index], split.lengths[index]
        out = model(x) if pad_to_max else model(x[:, : int(lengths.max())], lengths)
        loss = F.cross_entropy(out, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def _accuracy(model, split, *, lengths: bool) -> float:
    model.eval()
    with torch.no_grad():
        out = model(split.x, split.lengths) if lengths else model(split.x)
    return float((out.argmax(1) == split.y).float().mean())


def run(budget: timing.Budget, only: str | None = None) -> list[timing.Entry]:
    if only is not None and only not in "varlen/bigru":
        return []
    spec = SPECS["bigru-varlen"]
    steps = budget.steps(FULL_STEPS, minimum=6)
    data = varlen_data(steps * spec.batch_size, seed=1)
    test = varlen_data(1024, seed=2).train
    torch.manual_seed(0)
    ours, padded, packed = spec.gridseq(), spec.plain(), spec.plain()
    padded.load_state_dict(packed.state_dict())
    epoch = iter(range(10**6))
    cases = {
        "gridseq": lambda: gridseq.fit(ours, data, epochs=1, batch_size=spec.batch_size, grad_clip=0, progress=False,
                                       device="cpu", seed=next(epoch)) and None,
        "padded": lambda: _loop(padded, data.train, spec.batch_size, pad_to_max=True),
        "random_packed": lambda: _loop(packed, data.train, spec.batch_size, pad_to_max=False),
    }
    times = timing.interleaved(cases, budget)
    med = {k: timing.median(v) for k, v in times.items()}
    sampler = BatchSampler(len(data.train), spec.batch_size, lengths=data.train.lengths, seed=0)
    random_batches = list(torch.randperm(len(data.train)).split(spec.batch_size))
    items = len(data.train)
    figures = {
        "items_per_epoch": items, "epochs_trained": budget.warmup + budget.reps,
        "samples_per_s": {k: round(items / v, 1) for k, v in med.items()},
        "padded_fraction": {"gridseq_buckets": round(padded_fraction(data.train.lengths, sampler.batches()), 3),
                            "random_trimmed": round(padded_fraction(data.train.lengths, random_batches), 3),
                            "pad_to_max": round(1 - float(data.train.lengths.float().mean()) / data.train.x.shape[1], 3)},
        "test_accuracy": {"gridseq": round(_accuracy(ours, test, lengths=True), 4),
                          "padded": round(_accuracy(padded, test, lengths=False), 4),
                          "random_packed": round(_accuracy(packed, test, lengths=True), 4)},
        "bucketing_only_ratio": round(med["random_packed"] / med["gridseq"], 4),
        **{f"{k}_s": timing.summary(v) for k, v in times.items()},
    }
    return [timing.Entry("varlen/bigru", med["padded"] / med["gridseq"], TARGET, figures,
                         "accuracy after the same epochs is in figures.test_accuracy (report, not judged)")]
