"""One GRU layer and direction: the private kernel behind `gridseq.nn.recurrent.fused_direction` against
the public routes to the same arithmetic.

    python benchmarks/fused_direction.py [--out benchmarks/results/fused_direction.json]

Cases (1 thread, eval, `torch.inference_mode()`, F=8, H=64, T=100, batch 1 and 64), interleaved, median:

- `_VF.gru`: `torch._VF.gru`, what `fused_direction` calls (and `nn.GRU.forward` itself);
- `torch.gru`: the same function under the `torch` namespace (undocumented);
- `functional_call`: `torch.func.functional_call` of a one-layer `nn.GRU` with the layer's weights —
  the documented public route.

Ratios are each case's median over `_VF.gru`'s (> 1: slower than the private kernel).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.timing import Budget, interleaved, machine, median, summary

NAMES = ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")


def measure(batch: int, steps: int = 100, features: int = 8, hidden: int = 64, reps: int = 31) -> dict:
    torch.manual_seed(0)
    big = nn.GRU(features, hidden, batch_first=True, bidirectional=True).eval()
    one = nn.GRU(features, hidden, batch_first=True).eval()
    weights = [getattr(big, n + "_reverse") for n in NAMES]
    params = dict(zip(NAMES, weights))
    x, h0 = torch.randn(batch, steps, features), torch.zeros(1, batch, hidden)
    calls = 100 if batch == 1 else 10
    fns = {
        "_VF.gru": lambda: torch._VF.gru(x, h0, weights, True, 1, 0.0, False, False, True),
        "torch.gru": lambda: torch.gru(x, h0, weights, True, 1, 0.0, False, False, True),
        "functional_call": lambda: torch.func.functional_call(one, params, (x, h0)),
    }
    with torch.inference_mode():
        ref = fns["_VF.gru"]()[0]
        assert all(torch.allclose(f()[0], ref) for f in fns.values())

    def case(fn):
        def rep() -> float:
            with torch.inference_mode():
                t0 = time.perf_counter()
                for _ in range(calls):
                    fn()
                return (time.perf_counter() - t0) / calls
        return rep

    times = interleaved({k: case(f) for k, f in fns.items()}, Budget(reps=reps, warmup=2, scale=1.0))
    base = median(times["_VF.gru"])
    return {"batch": batch, "steps": steps, "calls_per_rep": calls, "reps": reps,
            "us_per_call": {k: round(median(v) * 1e6, 1) for k, v in times.items()},
            "over_private": {k: round(median(v) / base, 4) for k, v in times.items()},
            **{f"{k}_s": summary(v) for k, v in times.items()}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    results = [measure(1), measure(64)]
    for r in results:
        print(f"batch {r['batch']}: " + ", ".join(f"{k} {v} us ({r['over_private'][k]:.3f}x)" for k, v in r["us_per_call"].items()))
    if args.out:
        Path(args.out).write_text(json.dumps({"machine": machine(), "command": " ".join(sys.argv), "results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
