"""ceiling/*: achieved GFLOP/s of a training step as a share of the machine's fp32 GEMM GFLOP/s.

The GEMM figure is torch.mm of two 1024×1024 fp32 matrices, timed interleaved with the steps.

- ceiling/cnn-image: model 4 (the gridseq "cnn", no BatchNorm/dropout), one AdamW training step
  on a batch of 128; FLOPs counted by torch.utils.flop_counter (convolutions and matmuls, forward
  and backward). Target ≥ 0.4.
- ceiling/cnn-image-bf16: the same step under bf16 autocast (`--precision bf16`), as a share of the
  same fp32 GEMM ceiling (above 1 = faster than fp32 GEMMs could be); the figures also give the
  bf16 GEMM GFLOP/s and the share of it. Report only: it pays only where the processor has bf16
  arithmetic (docs/PERFORMANCE.md).
- ceiling/lstm-512: gridseq Recurrent("lstm", 512, 512), B=256, T=50, forward + backward; FLOPs
  counted analytically (the fused oneDNN LSTM kernel is invisible to the flop counter): per step
  2·B·(F+H)·4H forward, ×3 with backward. Report only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from benchmarks import timing
from benchmarks.models import SPECS
from gridseq.nn import Recurrent

TARGET_CNN = 0.4
N = 1024


def _gemm(a, b, reps: int) -> None:
    for _ in range(reps):
        torch.mm(a, b)


def run(budget: timing.Budget, only: str | None = None) -> list[timing.Entry]:
    names = ("ceiling/cnn-image", "ceiling/cnn-image-bf16", "ceiling/lstm-512")
    if only is not None and not any(only in n for n in names):
        return []
    a, b = torch.randn(N, N), torch.randn(N, N)
    a16, b16 = a.bfloat16(), b.bfloat16()

    cnn = SPECS["cnn-image"].gridseq().train()
    opt = torch.optim.AdamW(cnn.parameters(), lr=1e-3)
    images, labels = torch.randn(128, 1, 28, 28), torch.randint(0, 10, (128,))

    def cnn_step(reps: int, bf16: bool = False) -> None:
        for _ in range(reps):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = F.cross_entropy(cnn(images).float(), labels)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    counter = FlopCounterMode(display=False)
    with counter:
        cnn_step(1)
    cnn_flops = counter.get_total_flops()

    lstm = Recurrent("lstm", 512, 512)
    xb = torch.randn(256, 50, 512)

    def lstm_step(reps: int) -> None:
        for _ in range(reps):
            out, _ = lstm(xb)
            out.sum().backward()
            lstm.zero_grad(set_to_none=True)

    lstm_flops = 3 * 50 * 2 * 256 * (512 + 512) * 4 * 512
    r_gemm, r_cnn, r_lstm = budget.steps(20, 5), budget.steps(10, 3), 1
    times = timing.interleaved({
        "gemm": lambda: _gemm(a, b, r_gemm), "cnn": lambda: cnn_step(r_cnn), "lstm": lambda: lstm_step(r_lstm),
        "gemm_bf16": lambda: _gemm(a16, b16, r_gemm), "cnn_bf16": lambda: cnn_step(r_cnn, bf16=True),
    }, budget)
    gemm = 2 * N**3 * r_gemm / timing.median(times["gemm"]) / 1e9
    cnn_gf = cnn_flops * r_cnn / timing.median(times["cnn"]) / 1e9
    lstm_gf = lstm_flops * r_lstm / timing.median(times["lstm"]) / 1e9
    gemm16 = 2 * N**3 * r_gemm / timing.median(times["gemm_bf16"]) / 1e9
    cnn16_gf = cnn_flops * r_cnn / timing.median(times["cnn_bf16"]) / 1e9
    shared = {"gemm_gflops": round(gemm, 1), "threads": torch.get_num_threads()}
    return [e for e in (
        timing.Entry("ceiling/cnn-image", cnn_gf / gemm, TARGET_CNN,
                     {**shared, "step_gflop": round(cnn_flops / 1e9, 3), "achieved_gflops": round(cnn_gf, 1),
                      "ms_per_step": round(1e3 * timing.median(times["cnn"]) / r_cnn, 2)}),
        timing.Entry("ceiling/cnn-image-bf16", cnn16_gf / gemm, None,
                     {**shared, "bf16_gemm_gflops": round(gemm16, 1), "achieved_gflops": round(cnn16_gf, 1),
                      "share_of_bf16_gemm": round(cnn16_gf / gemm16, 3),
                      "ms_per_step": round(1e3 * timing.median(times["cnn_bf16"]) / r_cnn, 2)}),
        timing.Entry("ceiling/lstm-512", lstm_gf / gemm, None,
                     {**shared, "step_gflop": round(lstm_flops / 1e9, 3), "achieved_gflops": round(lstm_gf, 1),
                      "ms_per_step": round(1e3 * timing.median(times["lstm"]) / r_lstm, 2)}),
    ) if only is None or only in e.name]
