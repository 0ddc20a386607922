"""Probes that explain the numbers: gradient flow through time, receptive fields, memory span.

- `gradient_flow`: ‖∂L/∂h_t‖ at every step t of a recurrent model's last layer (forward direction),
  the mean over a batch of test items. h_t is the state the recurrence itself carries, so its
  gradient sums the direct path to the loss and the path through every later step — the quantity
  whose exponential decay is "the vanishing gradient". Measured on gridseq's reference path (the
  same weights as the fused kernels) with `retain_grad` on each step's new state.
- `receptive_field`: how many input steps one position of a convolutional feature map sees,
  computed from the conv and pooling layers (kernel, dilation, stride), and `input_steps_seen`: how
  many steps of a 4T-step input the model's (last) output actually depends on, measured by gradient.
- `memory_span`: from a length sweep, the longest length each model solved.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from gridseq.data.contract import Split


def recurrent_layer(model: nn.Module):
    """The model's first gridseq `Recurrent` layer, or None."""
    from gridseq.nn.recurrent import Recurrent

    return next((m for m in model.modules() if isinstance(m, Recurrent)), None)


def probe_batch(split: Split, n: int = 64) -> tuple[Tensor, Tensor | None, Tensor]:
    """The `n` longest test items (first ones on ties): x, lengths, and their indices."""
    if split.lengths is None:
        index = torch.arange(min(n, len(split)))
    else:
        index = torch.argsort(split.lengths, descending=True, stable=True)[:n]
    batch = split.batch(index)
    return batch.x, batch.lengths, index


def gradient_flow(model: nn.Module, task, split: Split, n: int = 64) -> dict[str, Any] | None:
    """‖∂L/∂h_t‖ for t = 0..T-1 of the last recurrent layer's forward direction (see the module docstring).

    Args:
        model: a model holding a gridseq `Recurrent` layer; None is returned for any other model.
        task: the dataset's Task (its loss is L).
        split: the items (the `n` longest are used; steps past an item's length are left out of the mean).

    Returns:
        {"norms": [T floats], "first_to_last": norms[0] / norms[-1], "layer": "layer{l}/forward", "items": n}.
    """
    layer = recurrent_layer(model)
    if layer is None or len(split) == 0:
        return None
    x, lengths, index = probe_batch(split, n)
    y = split.y[index][:, : x.shape[1]] if split.y.dim() == 2 and split.y.dtype == torch.int64 else split.y[index]
    from gridseq.data.contract import Batch

    batch = Batch(x, y, lengths)
    last = layer.num_layers - 1
    w_hh_last = layer._weights(last, 0)[1]  # the forward direction's recurrent weight of the last layer
    states: list[Tensor] = []
    step = layer._step

    def recording_step(xp, state, w_hh, b_hh, *args, **kwargs):
        new, internals = step(xp, state, w_hh, b_hh, *args, **kwargs)
        if w_hh is w_hh_last and torch.is_grad_enabled():
            new[0].retain_grad()
            states.append(new[0])
        return new, internals

    was_training, impl = model.training, layer.impl
    model.eval()  # no dropout: the gradient of the function the model computes
    layer.impl = "reference"
    layer._step = recording_step
    try:
        with torch.enable_grad():
            model.zero_grad(set_to_none=True)
            output = task.forward(model, batch)
            loss = task.loss(output, batch)
            loss.backward()
    finally:
        layer._step = step  # the instance attribute shadows the original; put it back
        layer.impl = impl
        model.train(was_training)
        model.zero_grad(set_to_none=True)
    if not states or any(s.grad is None for s in states):
        return None
    grads = torch.stack([s.grad for s in states], dim=1)  # (B, T, H)
    norms = grads.norm(dim=-1)  # (B, T)
    if lengths is not None:
        valid = torch.arange(norms.shape[1])[None, :] < lengths[:, None]
        mean = (norms * valid).sum(0) / valid.sum(0).clamp_min(1)
    else:
        mean = norms.mean(0)
    values = [float(v) for v in mean]
    ratio = values[0] / values[-1] if values[-1] > 0 else math.nan
    return {"norms": values, "first_to_last": ratio, "layer": f"layer{last}/forward", "items": int(x.shape[0])}


# ---- receptive fields -------------------------------------------------------------------------------

def receptive_field(model: nn.Module) -> int | None:
    """Steps (or pixels along one side) one position of the last conv feature map sees, from every
    Conv1d/Conv2d and pooling layer in the order they were registered; None for models without convs.

    Example:
        >>> from gridseq import models
        >>> receptive_field(models.create("tcn", input_size=1, num_classes=2))  # 1 + 2*(3-1)*(2**4-1)
        61
    """
    from gridseq.nn.conv import MaxPool

    rf, jump, convs = 1, 1, 0
    for m in model.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d)):
            k, d, s = _first(m.kernel_size), _first(m.dilation), _first(m.stride)
            rf += (k - 1) * d * jump
            jump *= s
            convs += 1
        elif isinstance(m, MaxPool):
            rf += (m.factor - 1) * jump
            jump *= m.factor
        elif isinstance(m, (nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d)):
            k, s = _first(m.kernel_size), _first(m.stride or m.kernel_size)
            rf += (k - 1) * jump
            jump *= s
    return rf if convs else None


def _first(v) -> int:
    return int(v[0]) if isinstance(v, (tuple, list)) else int(v)


def input_steps_seen(model: nn.Module, split: Split, factor: int = 4, n: int = 8, seed: int = 0) -> dict[str, Any] | None:
    """How many of the steps of a factor·T-step input the model's output depends on (by gradient).

    The output is the logits (their sum), or for per-step models the last step's logits. Returns
    {"steps": seen, "of": factor·T, "all": seen == factor·T}, or None for inputs without a time axis.
    """
    if split.x.dim() != 3:
        return None
    gen = torch.Generator().manual_seed(seed)
    steps = split.x.shape[1] * factor
    x = torch.randn(n, steps, split.x.shape[2], generator=gen, requires_grad=True)
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            out = model(x, torch.full((n,), steps, dtype=torch.int64))
            if out.dim() == 3:
                out = out[:, -1]
            out.sum().backward()
    except TypeError:
        return None
    finally:
        model.train(was_training)
        model.zero_grad(set_to_none=True)
    touched = (x.grad.abs().sum(dim=(0, 2)) > 0).nonzero()
    seen = int(touched.max() - touched.min() + 1) if len(touched) else 0
    return {"steps": seen, "of": steps, "all": seen == steps}


# ---- memory span ---------------------------------------------------------------------------------------

def solved(value: float | None, threshold: float, higher_is_better: bool) -> bool:
    """Whether a metric value meets the "solved" threshold (adding: mse < 0.01; copy: accuracy > 0.99)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return False
    return value > threshold if higher_is_better else value < threshold


def longest_solved(by_length: dict[int, float | None], threshold: float, higher_is_better: bool) -> int:
    """The longest length whose metric meets the threshold (0 if none)."""
    ok = [length for length, v in by_length.items() if solved(v, threshold, higher_is_better)]
    return max(ok) if ok else 0
