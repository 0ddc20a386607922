"""BatchNorm folded into the convolution before it (`gridseq.nn.fuse.fold_batchnorm`) vs the model as trained,
for inference on the CPU.

Each case runs the same eval-mode model on the same batch in both forms, interleaved (warm-up, then
`--rounds` rounds of `--calls` calls each, under `torch.inference_mode`), and reports the median time
per call and the speed-up (unfolded / folded: above 1 = folding is faster), at batch 1 (latency) and a
larger batch (throughput), with the largest output difference between the two forms.

    python benchmarks/fold_bn.py [--threads 1] [--out benchmarks/results/fold_bn.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import gridseq
from benchmarks import timing
from gridseq.nn.fuse import count_batchnorm, fold_batchnorm

CASES = {  # name: (model factory, input shape of one item, the larger batch)
    "cnn-28px": (lambda: gridseq.models.create("cnn", input_shape=(1, 28, 28), num_classes=10), (1, 28, 28), 64),
    "resnet-28px": (lambda: gridseq.models.create("resnet", input_shape=(1, 28, 28), num_classes=10), (1, 28, 28), 64),
    "crnn-ctc-lines": (lambda: gridseq.models.create("crnn-ctc", input_size=32, num_classes=11), (96, 32), 32),
    "unet-64px": (lambda: gridseq.models.create("unet", in_channels=3, num_classes=4, channels=(16, 32, 64, 128)),
                  (3, 64, 64), 8),
}


def measure(factory, item_shape, batch: int, rounds: int, calls: int) -> dict:
    torch.manual_seed(0)
    model = factory().eval()
    for m in model.modules():  # statistics a trained model would have, not the initial 0 / 1
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    folded = fold_batchnorm(model)
    x = torch.randn(batch, *item_shape)
    forms = {"unfolded": model, "folded": folded}

    def repeat(m):
        def run() -> None:
            for _ in range(calls):
                m(x)
        return run
    with torch.inference_mode():
        diff = float((model(x) - folded(x)).abs().max())
        times = timing.interleaved({k: repeat(m) for k, m in forms.items()}, timing.Budget(reps=rounds, warmup=2, scale=1.0))
    times = {k: [t / calls for t in v] for k, v in times.items()}
    ms = {k: 1e3 * statistics.median(v) for k, v in times.items()}
    spread = {k: round(1e3 * (max(v) - min(v)), 3) for k, v in times.items()}
    return {"batch": batch, "ms_per_call": {k: round(v, 3) for k, v in ms.items()}, "spread_ms": spread,
            "speedup": round(ms["unfolded"] / ms["folded"], 3), "max_abs_diff": diff,
            "batchnorms": [count_batchnorm(model), count_batchnorm(folded)]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "fold_bn.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = {}
    print(f"| case | batch | unfolded ms | folded ms | speed-up | max abs diff | BatchNorms before → after |  ({args.threads} thread(s))")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, (factory, shape, big) in CASES.items():
        for batch in (1, big):
            r = measure(factory, shape, batch, args.rounds, args.calls if batch == 1 else max(2, args.calls // 4))
            results[f"{name}/b{batch}"] = r
            print(f"| {name} | {batch} | {r['ms_per_call']['unfolded']} | {r['ms_per_call']['folded']} | "
                  f"{r['speedup']} | {r['max_abs_diff']:.1e} | {r['batchnorms'][0]} → {r['batchnorms'][1]} |", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"threads": args.threads, "torch": torch.__version__, "cases": results}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
