"""`torch.compile` (inductor, CPU) against eager: compile time, steady-state speed, and when it pays.

Cases (float32, the same model and batch in both forms, timed interleaved after the compiled form's
first calls — which compile — are done):

    cnn-28px-train     the Fashion-MNIST cnn defaults (channels 32-64-128, hidden 256), batch 128: a
                       training step (forward, backward, AdamW)
    cnn-28px-latency   the same network, eval, batch 1, `inference_mode`
    lstm-step-train    one reference LSTM layer (B=32, T=100, F=32, H=128; reference-vs-fused's shape):
                       the per-step loop with `torch.compile(lstm_step)` as its step, against the
                       hand-written recurrence (`gridseq.nn._recurrence`) and the fused kernel
    lstm-text-train    the `lstm` model (fused kernel) on the same batch: a training step
    crnn-20px-stream   `crnn` streaming one 20x20 frame (stream/crnn-20px's model) with its frame CNN
                       compiled

For each: the compile time (wall time of the compiled form's first calls, minus one eager call),
eager and compiled ms per call (median), the speed-up (eager / compiled: above 1 = compiled is
faster), and the break-even: how many calls the compile time needs before it has paid for itself
(none when compiled is not faster).

    python benchmarks/compile.py [--threads 2] [--quick] [--out benchmarks/results/compile.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import gridseq
from benchmarks import timing
from gridseq.nn import Recurrent
from gridseq.nn.cells import lstm_step


def _train_step(model, x, y, optimizer):
    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
    return step


def _repeat(fn, calls):
    def run() -> None:
        for _ in range(calls):
            fn()
    return run


def _first_calls(fn, n: int = 2) -> float:
    """Wall time of the first `n` calls (where compilation happens)."""
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return time.perf_counter() - t0


def _compare(forms: dict, budget: timing.Budget, calls: int, compiled: str = "compiled") -> dict:
    """Compile time of `forms[compiled]`, then every form timed interleaved, ms per call."""
    _first_calls(forms["eager"], 1)  # warm
    eager_one = _first_calls(forms["eager"], 1)
    compile_s = _first_calls(forms[compiled]) - 2 * eager_one
    times = timing.interleaved({k: _repeat(f, calls) for k, f in forms.items()}, budget)
    ms = {k: 1e3 * statistics.median(v) / calls for k, v in times.items()}
    spread = {k: round(1e3 * (max(v) - min(v)) / calls, 3) for k, v in times.items()}
    saved = ms["eager"] - ms[compiled]
    return {"compile_seconds": round(max(compile_s, 0.0), 2), "ms_per_call": {k: round(v, 3) for k, v in ms.items()},
            "spread_ms": spread, "speedup": round(ms["eager"] / ms[compiled], 3),
            "break_even_calls": round(1e3 * compile_s / saved) if saved > 0 else None}


def cnn_train(budget, calls):
    torch.manual_seed(0)
    make = lambda: gridseq.models.create("cnn", input_shape=(1, 28, 28), num_classes=10, channels=(32, 64, 128),
                                         hidden=256, dropout=0.3)
    eager, other = make(), make()
    other.load_state_dict(eager.state_dict())
    compiled = torch.compile(other)
    x, y = torch.randn(128, 1, 28, 28), torch.randint(0, 10, (128,))
    forms = {"eager": _train_step(eager, x, y, torch.optim.AdamW(eager.parameters(), 1e-3)),
             "compiled": _train_step(compiled, x, y, torch.optim.AdamW(other.parameters(), 1e-3))}
    return _compare(forms, budget, calls)


def cnn_latency(budget, calls):
    torch.manual_seed(0)
    model = gridseq.models.create("cnn", input_shape=(1, 28, 28), num_classes=10, channels=(32, 64, 128), hidden=256).eval()
    compiled = torch.compile(model)
    x = torch.randn(1, 1, 28, 28)

    def infer(m):
        def call() -> None:
            with torch.inference_mode():
                m(x)
        return call
    return _compare({"eager": infer(model), "compiled": infer(compiled)}, budget, calls)


def lstm_step_train(budget, calls):
    torch.manual_seed(0)
    layer = Recurrent("lstm", 32, 128, impl="reference")
    x = torch.randn(32, 100, 32)
    step = torch.compile(lstm_step)

    def run(impl, step_fn):
        def call() -> None:
            layer.impl = impl
            layer._step = step_fn
            out, _ = layer(x)
            out.sum().backward()
            layer.zero_grad(set_to_none=True)
        return call
    per_step = lambda *a, **k: lstm_step(*a, **k)
    forms = {"eager": run("reference", per_step), "compiled": run("reference", step),
             "hand_written": run("reference", layer._cell_step), "fused": run("fused", layer._cell_step)}
    result = _compare(forms, budget, calls)
    result["note"] = "eager = the per-step loop through autograd; hand_written = gridseq's default reference path"
    return result


def lstm_text_train(budget, calls):
    torch.manual_seed(0)
    make = lambda: gridseq.models.create("lstm", input_size=32, num_classes=10, hidden_size=128)
    eager, other = make(), make()
    other.load_state_dict(eager.state_dict())
    compiled = torch.compile(other)
    x, y = torch.randn(32, 100, 32), torch.randint(0, 10, (32,))
    forms = {"eager": _train_step(eager, x, y, torch.optim.AdamW(eager.parameters(), 1e-3)),
             "compiled": _train_step(compiled, x, y, torch.optim.AdamW(other.parameters(), 1e-3))}
    return _compare(forms, budget, calls)


def crnn_stream(budget, calls):
    torch.manual_seed(0)
    model = gridseq.models.create("crnn", input_shape=(1, 20, 20), num_classes=40).eval()
    other = gridseq.models.create("crnn", input_shape=(1, 20, 20), num_classes=40).eval()
    other.load_state_dict(model.state_dict())
    other.frame_encoder = torch.compile(other.frame_encoder)
    frame = torch.randn(1, 1, 20, 20)
    streams = {"eager": model.stream(), "compiled": other.stream()}

    def step(s):
        def call() -> None:
            with torch.no_grad():
                s.step(frame)
        return call
    result = _compare({k: step(s) for k, s in streams.items()}, budget, calls)
    with torch.no_grad():  # the same logits after the same frames
        torch.testing.assert_close(streams["eager"].step(frame), streams["compiled"].step(frame), atol=1e-4, rtol=1e-4)
    return result


CASES = {"cnn-28px-train": (cnn_train, 10), "cnn-28px-latency": (cnn_latency, 200), "lstm-step-train": (lstm_step_train, 3),
         "lstm-text-train": (lstm_text_train, 5), "crnn-20px-stream": (crnn_stream, 200)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--quick", action="store_true", help="fewer repetitions and calls")
    parser.add_argument("--only", default=None, help="the cases whose name contains this")
    parser.add_argument("--out", default="benchmarks/results/compile.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    budget = timing.QUICK if args.quick else timing.FULL
    results = {}
    for name, (fn, calls) in CASES.items():
        if args.only and args.only not in name:
            continue
        calls = budget.steps(calls, minimum=1)
        r = results[name] = fn(budget, calls)
        ms = r["ms_per_call"]
        print(f"{name:18s} compile {r['compile_seconds']:7.1f} s   eager {ms['eager']:9.3f} ms   compiled "
              f"{ms['compiled']:9.3f} ms   speed-up {r['speedup']:.2f}x   break-even "
              f"{r['break_even_calls'] if r['break_even_calls'] is not None else 'never'}"
              + "".join(f"   {k} {v:.3f} ms" for k, v in ms.items() if k not in ("eager", "compiled")), flush=True)
    out = {"benchmark": "compile", "command": " ".join(sys.argv), "threads": args.threads, "budget": "quick" if args.quick else "full",
           "torch": torch.__version__, "machine": timing.machine(), "results": results}
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(out, f, indent=2)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
