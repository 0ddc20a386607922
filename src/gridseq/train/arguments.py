"""`fit`'s argument checks: every value a user passes, checked once at the door (ConfigError naming it)."""

from __future__ import annotations

import math
from typing import Any

from gridseq._validation import check_choice, check_positive_int
from gridseq.errors import ConfigError
from gridseq.train import optim, precision

SELECT = ("best", "last")  # which epoch's weights fit() keeps


def check_fit_args(a: dict[str, Any]) -> None:
    """ConfigError for the first bad value of `fit`'s arguments `a` (by name)."""
    check_positive_int(a["epochs"], "epochs")
    check_positive_int(a["batch_size"], "batch_size")
    check_choice(a["optimizer"], "optimizer", optim.OPTIMIZERS)
    check_choice(a["scheduler"], "scheduler", optim.SCHEDULERS)
    check_choice(a["select"], "select", SELECT)
    for name in ("lr", "weight_decay"):
        value = a[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0 or (name == "lr" and value == 0):
            raise ConfigError(f"{name} must be a {'positive' if name == 'lr' else 'non-negative'} number, got {value!r}.")
    clip = a["grad_clip"]
    if clip is not None and (isinstance(clip, bool) or not isinstance(clip, (int, float)) or clip < 0):
        raise ConfigError(f"grad_clip must be None (automatic), 0 (off) or a positive max gradient norm, got {clip!r}.")
    check_choice(a["precision"], "precision", precision.PRECISIONS)
    if a["channels_last"] not in (None, True, False):
        raise ConfigError(f"channels_last must be None (automatic), True or False, got {a['channels_last']!r}.")
    augment = a["augment"]
    if augment not in (None, True, False) and not (isinstance(augment, dict) and all(isinstance(k, str) for k in augment)):
        raise ConfigError(f"augment must be None (the default), True, False or a dict of the policy's settings, "
                          f"got {augment!r}.")
    if a["monitor"] is not None and (not isinstance(a["monitor"], str) or not a["monitor"]):
        raise ConfigError(f"monitor must be None (the task's primary metric) or a metric's name such as 'macro_f1', got {a['monitor']!r}.")
    smoothing = a["label_smoothing"]
    if isinstance(smoothing, bool) or not isinstance(smoothing, (int, float)) or not 0 <= smoothing < 1:
        raise ConfigError(f"label_smoothing must be a number in [0, 1) (e.g. 0.1), got {smoothing!r}.")
    for name in ("patience", "checkpoint_every"):
        if a[name] is not None:
            check_positive_int(a[name], name)
    if a["run_dir"] is None and (a["resume"] or a["checkpoint_every"]):
        raise ConfigError("resume and checkpoint_every need a run directory to keep checkpoints in; pass run_dir=...")
