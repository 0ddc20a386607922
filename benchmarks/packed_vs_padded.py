"""Packed vs padded variable-length recurrence: the bidirectional GRU(64) of model 5 (lengths uniform
in 5..200, batches of 64 bucketed by length), one Adam step per batch, 1 thread, interleaved, median
of 5 repetitions. Packed = torch's `pack_padded_sequence` path; padded = `Recurrent._run_padded`, the
path gridseq's fused GRU/Elman layers now take.

    python benchmarks/packed_vs_padded.py [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from torch.nn.utils.rnn import pack_padded_sequence

from gridseq.nn.recurrent import Recurrent

B, F, H, BATCHES, REPS = 64, 16, 64, 20, 5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="write the figures as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    layer = Recurrent("gru", F, H, bidirectional=True)
    head = torch.nn.Linear(2 * H, 5)
    opt = torch.optim.Adam([*layer.parameters(), *head.parameters()])
    lengths = torch.sort(torch.randint(5, 201, (B * BATCHES,)))[0].view(BATCHES, B)  # bucketed

    def epoch(packed: bool) -> float:
        start = time.perf_counter()
        for lens in lengths:
            x = torch.randn(B, int(lens.max()), F)
            if packed:
                _, h = layer.rnn(pack_padded_sequence(x, lens, batch_first=True, enforce_sorted=False))
            else:
                _, h = layer._run_padded(x, lens, None)
            loss = head(torch.cat([h[0], h[1]], -1)).logsumexp(-1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        return time.perf_counter() - start

    epoch(True), epoch(False)  # warm-up
    times = {"packed": [], "padded": []}
    for _ in range(REPS):
        times["packed"].append(epoch(True))
        times["padded"].append(epoch(False))
    packed, padded = statistics.median(times["packed"]), statistics.median(times["padded"])
    result = {"name": "recurrent/packed-vs-padded-bigru", "ratio": packed / padded, "target": 1.0, "met": packed / padded >= 1.0,
              "figures": {"packed_seconds": packed, "padded_seconds": padded, "batches": BATCHES, "batch_size": B, "threads": 1}}
    print(f"packed {packed:.2f} s  padded {padded:.2f} s  per {BATCHES} batches  -> padded is {packed / padded:.2f}x faster")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
