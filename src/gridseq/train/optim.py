"""Optimizers, learning-rate schedules and the gradient-clipping default, built from fit's arguments.

Schedules step at a fixed point of the loop so that a resumed run replays them exactly:
"cosine" and "onecycle" step after every optimizer step (their horizon is epochs × steps per
epoch); "plateau" steps once per epoch on the validation primary metric.
"""

from __future__ import annotations

import torch
from torch import nn

from gridseq.errors import ConfigError
from gridseq.models.traits import traits

OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULERS = ("none", "cosine", "plateau", "onecycle")
PER_STEP_SCHEDULERS = ("cosine", "onecycle")
RECURRENT_CLIP = 1.0  # exploding gradients are the classic RNN failure; 1.0 is the usual norm bound


def build_optimizer(model: nn.Module, name: str, *, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """The optimizer `name` over `model`'s trainable parameters (SGD uses Nesterov momentum 0.9). Adam and
    AdamW take the model's own `adam_betas` when it declares them (a DCGAN's (0.5, 0.999))."""
    params = [p for p in model.parameters() if p.requires_grad]
    betas = tuple(traits(model).adam_betas or (0.9, 0.999))
    if not params:
        raise ConfigError(f"{type(model).__name__} has no trainable parameters; nothing for fit() to train.")
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, betas=betas)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, betas=betas)
    return torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)


def build_scheduler(optimizer: torch.optim.Optimizer, name: str, *, lr: float, total_steps: int, higher_is_better: bool):
    """The learning-rate schedule `name`, or None for "none".

    Args:
        optimizer: the optimizer to schedule.
        name: "none", "cosine" (to 0 over the run), "plateau" (halve after 2 epochs without
            improvement) or "onecycle" (warm up to `lr`, then anneal).
        lr: the peak learning rate (for onecycle).
        total_steps: epochs × optimizer steps per epoch.
        higher_is_better: the direction of the metric "plateau" watches.
    """
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
    if name == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=total_steps)
    if name == "plateau":
        mode = "max" if higher_is_better else "min"
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode=mode, factor=0.5, patience=2)
    return None


def is_recurrent(model: nn.Module) -> bool:
    """Whether `model` contains a recurrent layer (gridseq's Recurrent or any torch RNN/cell)."""
    kinds: tuple[type, ...] = (nn.RNNBase, nn.RNNCellBase)
    try:
        from gridseq.nn.recurrent import Recurrent

        kinds += (Recurrent,)
    except ImportError:  # the recurrent layers are optional to this module
        pass
    return any(isinstance(m, kinds) for m in model.modules())


def resolve_grad_clip(model: nn.Module, grad_clip: float | None) -> float | None:
    """The gradient-norm bound to use: `grad_clip` if given (0 = off), else 1.0 for recurrent models."""
    if grad_clip is None:
        return RECURRENT_CLIP if is_recurrent(model) else None
    return float(grad_clip) if grad_clip > 0 else None


def current_lr(optimizer: torch.optim.Optimizer) -> float:
    """The first parameter group's learning rate."""
    return float(optimizer.param_groups[0]["lr"])
