"""Per-class loss weights of segmentation masks: checked from the user, or balanced from the training masks.

The readers of mask folders compute them when a dataset is loaded (`class_weights="balanced"`) and store
them in the dataset's record; `gridseq.tasks.segment` weighs its loss with them.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from gridseq.constants import IGNORE_INDEX
from gridseq.errors import ConfigError


def check_class_weights(weights, num_classes: int | None) -> list[float] | None:
    """`weights` as K positive finite floats (or None); ConfigError naming what is wrong."""
    if weights is None:
        return None
    try:
        values = [float(w) for w in weights]
    except (TypeError, ValueError):
        raise ConfigError(f"class_weights must be a list of numbers, one per class, got {weights!r}.") from None
    if num_classes is not None and len(values) != num_classes:
        raise ConfigError(f"class_weights must have one weight per class ({num_classes}), got {len(values)}: {weights!r}.")
    if not all(math.isfinite(v) and v > 0 for v in values):
        raise ConfigError(f"class_weights must be positive finite numbers, got {weights!r}.")
    return values


def balanced_weights(masks: Tensor, num_classes: int) -> list[float]:
    """Median-frequency class weights of (N, H, W) masks: median(freq) / freq_k (absent classes get 1).

    Example:
        >>> balanced_weights(torch.tensor([[[0, 0, 0, 1]]]), 2)
        [0.6666666666666666, 2.0]
    """
    counts = torch.bincount(masks[masks != IGNORE_INDEX].flatten(), minlength=num_classes)[:num_classes].double()
    freq = counts / counts.sum().clamp(min=1)
    median = freq[freq > 0].quantile(0.5) if bool((freq > 0).any()) else torch.tensor(1.0, dtype=torch.float64)
    return torch.where(freq > 0, median / freq.clamp(min=1e-12), torch.ones_like(freq)).tolist()
