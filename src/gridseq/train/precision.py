"""Mixed precision: `fit(precision=...)` / `gridseq train --precision`.

    fp32  full precision (the default; nothing changes)
    bf16  torch.autocast with bfloat16: matmuls and convolutions in bf16, reductions and losses in
          fp32; no loss scaling is needed (bf16 has fp32's exponent range). CUDA GPUs with bf16
          support (Ampere or newer), and CPUs.
    fp16  torch.autocast with float16 plus a GradScaler (small fp16 gradients would underflow to
          zero without loss scaling). CUDA only.

This is PyTorch's own AMP recipe, nothing more: `autocast(precision, device)` around forward and loss,
and `scaler(precision, device)` for the backward pass and optimizer step.

    >>> import torch
    >>> with autocast("bf16", torch.device("cpu")):
    ...     (torch.ones(2, 3) @ torch.ones(3, 4)).dtype
    torch.bfloat16
    >>> scaler("fp32", torch.device("cpu")) is None
    True
"""

from __future__ import annotations

import contextlib

import torch

from gridseq._validation import check_choice
from gridseq.errors import ConfigError

PRECISIONS = ("fp32", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def check(precision: str, device: torch.device) -> str:
    """`precision` if `device` can train in it; ConfigError naming what to use instead otherwise."""
    check_choice(precision, "precision", PRECISIONS)
    if precision == "fp16" and device.type != "cuda":
        raise ConfigError(f"precision 'fp16' needs a CUDA device (it uses a CUDA GradScaler), but training runs on {device}; "
                          f"use precision='bf16' or 'fp32' on the CPU.")
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError(f"precision 'bf16' is not supported by GPU {torch.cuda.get_device_name(device)} "
                          f"(it needs compute capability 8.0 or newer); use precision='fp16'.")
    if precision == "bf16" and device.type not in ("cuda", "cpu"):
        raise ConfigError(f"precision 'bf16' is supported on CUDA and the CPU, not on {device}; use precision='fp32'.")
    return precision


def autocast(precision: str, device: torch.device):
    """The context to run forward passes and losses in: torch.autocast for bf16/fp16, nothing for fp32."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=_DTYPES[precision])


def scaler(precision: str, device: torch.device) -> torch.amp.GradScaler | None:
    """A gradient scaler for fp16 (dynamic loss scaling), None otherwise."""
    if precision != "fp16":
        return None
    return torch.amp.GradScaler(device.type)
