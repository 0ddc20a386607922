"""bf16 autocast against fp32 on the CPU, for training steps and for inference, on gridseq's seed models.

`gridseq train --precision bf16` runs the forward pass and the loss under `torch.autocast("cpu",
torch.bfloat16)` (gridseq.train.precision; the weights and optimizer stay fp32). Whether that pays
depends on the processor: bf16 matrix units (AMX, `amx_bf16` in /proc/cpuinfo) or bf16 dot products
(`avx512_bf16`) make oneDNN's bf16 convolutions and GEMMs faster; without them autocast only adds casts.
Each case runs the same model on the same batch in both precisions, interleaved (warm-up, then
`--rounds` rounds of `--steps` steps), median; speed-up = fp32 time / bf16 time (above 1 = bf16 faster).

    python benchmarks/precision.py [--threads 2] [--out benchmarks/results/precision.json]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import gridseq
from benchmarks import timing
from gridseq.train import precision

CASES = {  # name: (model factory, input factory for a batch)
    "cnn-28px": (lambda: gridseq.models.create("cnn", input_shape=(1, 28, 28), num_classes=10),
                 lambda g: torch.randn(128, 1, 28, 28, generator=g)),
    "resnet-28px": (lambda: gridseq.models.create("resnet", input_shape=(1, 28, 28), num_classes=10),
                    lambda g: torch.randn(64, 1, 28, 28, generator=g)),
    "lstm-text": (lambda: gridseq.models.create("lstm", vocab_size=60, num_classes=10, hidden_size=128),
                  lambda g: torch.randint(1, 60, (64, 40), generator=g)),
    "gru-sequence": (lambda: gridseq.models.create("gru", input_size=40, num_classes=10, hidden_size=128),
                     lambda g: torch.randn(64, 100, 40, generator=g)),
}


def cpu_flags() -> list[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = set(re.search(r"^flags\s*:(.*)$", text, re.MULTILINE).group(1).split()) if "flags" in text else set()
    return sorted(f for f in flags if "bf16" in f or f.startswith("amx") or f == "avx512f")


def _runner(factory, x: torch.Tensor, amp: str, train: bool):
    torch.manual_seed(0)
    model = factory().train(train)
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    y = torch.zeros(x.shape[0], dtype=torch.int64)
    device = torch.device("cpu")

    def step() -> None:
        if train:
            opt.zero_grad()
            with precision.autocast(amp, device):
                loss = F.cross_entropy(model(x).float(), y)
            loss.backward()
            opt.step()
        else:
            with torch.inference_mode(), precision.autocast(amp, device):
                model(x)
    return step


def measure(factory, x: torch.Tensor, train: bool, rounds: int, steps: int) -> dict:
    runs = {amp: _runner(factory, x, amp, train) for amp in ("fp32", "bf16")}

    def repeat(step):
        def run() -> None:
            for _ in range(steps):
                step()
        return run
    times = timing.interleaved({k: repeat(step) for k, step in runs.items()}, timing.Budget(reps=rounds, warmup=1, scale=1.0))
    ms = {k: 1e3 * statistics.median(v) / steps for k, v in times.items()}
    spread = {k: [round(1e3 * min(v) / steps, 2), round(1e3 * max(v) / steps, 2)] for k, v in times.items()}
    return {"ms_per_step": {k: round(v, 2) for k, v in ms.items()}, "min_max_ms": spread,
            "speedup": round(ms["fp32"] / ms["bf16"], 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "precision.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    flags = cpu_flags()
    print(f"CPU flags: {' '.join(flags) or 'none of avx512f / *bf16 / amx*'}; {args.threads} thread(s)")
    print("| case | mode | fp32 ms | bf16 ms | speed-up (fp32 / bf16) |")
    print("| --- | --- | --- | --- | --- |")
    results = {}
    g = torch.Generator().manual_seed(0)
    for name, (factory, inputs) in CASES.items():
        x = inputs(g)
        for mode in ("train", "inference"):
            r = measure(factory, x, mode == "train", args.rounds, args.steps)
            results[f"{name}/{mode}"] = r
            print(f"| {name} | {mode} | {r['ms_per_step']['fp32']} | {r['ms_per_step']['bf16']} | {r['speedup']} |",
                  flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"threads": args.threads, "torch": torch.__version__, "cpu_flags": flags,
                                    "cases": results}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
