"""Teacher forcing over the batch's own target width against the split's: the bible-en-es seq2seq defaults
(GRU, Luong attention, hidden 128, 2,000 subwords per side), training batches of 64 as the trainer draws
them (shuffled, bucketed by source length), one AdamW step per batch, interleaved, median of repetitions.

A split pads every target to its longest (120 subwords for bible-en-es), while a batch's longest target is
~40-70. "full width" runs the decoder and the output layer over all 120 steps (what `Seq2SeqTask` did before
`trim_targets`); "batch width" stops at the batch's longest target. The loss is the same either way (padding
is ignored), which the benchmark checks.

    python benchmarks/seq2seq_targets.py [--batches 12] [--reps 3] [--threads 1] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.timing import machine, median
from gridseq import defaults, models, recipe, tasks
from gridseq.data.vocab import PAD
from gridseq.errors import DataError
from gridseq.tasks.seq2seq import trim_targets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=12)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", help="write the figures as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    try:
        data, _, _ = recipe.load_for_model("bible-en-es", "seq2seq", seed=0, view=None, options={})
    except DataError as e:
        sys.exit(f"skipped: {e}")
    table = defaults.lookup("bible-en-es", "seq2seq")
    torch.manual_seed(0)
    model = models.create_for("seq2seq", data.info, **table["model"]).train()
    task = tasks.for_data(data.info, model)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    sampler = task.sampler(len(data.train), table["train"]["batch_size"], data.train.lengths, seed=0)
    batches = [data.train.batch(i) for i in sampler.batches(0)[: args.batches]]

    def step(batch, trimmed: bool) -> None:
        y = trim_targets(batch.y) if trimmed else batch.y
        loss = F.cross_entropy(model(batch.x, batch.lengths, target=y).flatten(0, 1), y.flatten(), ignore_index=PAD)
        opt.zero_grad()
        loss.backward()
        opt.step()

    with torch.no_grad():
        for b in batches[:3]:  # the same loss at either width (eval mode: no dropout draws)
            model.eval()
            a, c = (F.cross_entropy(model(b.x, b.lengths, target=y).flatten(0, 1), y.flatten(), ignore_index=PAD)
                    for y in (trim_targets(b.y), b.y))
            assert torch.allclose(a, c, atol=1e-5), (float(a), float(c))
        model.train()

    times: dict[str, list[float]] = {"full width": [], "batch width": []}
    for rep in range(args.reps + 1):  # the first round warms up
        for name in (times if rep % 2 else reversed(list(times))):
            start = time.perf_counter()
            for b in batches:
                step(b, name == "batch width")
            if rep:
                times[name].append(time.perf_counter() - start)
    full, trimmed = median(times["full width"]), median(times["batch width"])
    widths = [int(trim_targets(b.y).shape[1]) for b in batches]
    print(f"{'':12} {'s per batch':>11}  target steps")
    print(f"{'full width':12} {full / len(batches):11.3f}  {batches[0].y.shape[1]}")
    print(f"{'batch width':12} {trimmed / len(batches):11.3f}  {min(widths)}-{max(widths)} (mean {sum(widths) / len(widths):.0f})")
    print(f"batch width is {full / trimmed:.2f}x faster")
    if args.out:
        result = {"name": "seq2seq/batch-width-targets", "ratio": round(full / trimmed, 4), "target": None,
                  "figures": {"full_width_s_per_batch": full / len(batches), "batch_width_s_per_batch": trimmed / len(batches),
                              "split_target_width": int(batches[0].y.shape[1]), "batch_target_widths": widths,
                              "batches": len(batches), "reps": args.reps, "threads": args.threads, "model": table["model"]},
                  "machine": machine()}
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
