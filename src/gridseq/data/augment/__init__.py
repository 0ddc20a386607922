"""On-the-fly augmentation of training batches, seeded by (seed, epoch, item), and the registry that picks a
policy for a dataset.

A policy is a class with `for_record(record)` (build it for a dataset's preprocessing record) and either
`__call__(x, items, seed=, epoch=)` or `augment_batch(batch, items, seed=, epoch=)` (for policies that move
targets with the inputs); each registers itself with the kind of data it applies to and whether it is on
by default. One file per kind of data:

    images.py   random resized crop, flip, small rotation, colour jitter (off by default)
    dense.py    the same geometry moving segmentation masks and detection boxes (off by default)
    audio.py    SpecAugment time and frequency masks, additive noise (off by default)
    series.py   jitter and scaling of sequences and time series (off by default)
"""

from __future__ import annotations

import dataclasses
from typing import Any

from gridseq.errors import ConfigError

# (policy class, predicate on DatasetInfo) per kind of data, most specific first; `for_record(record)`
# builds the policy, `default(info)` says whether it is on when fit(augment=None)
POLICIES: list[tuple[Any, Any]] = []


def register(policy_cls, applies, default=lambda info: False):
    """Make `policy_cls` the augmentation for datasets whose info satisfies `applies(info)`; `default(info)`
    says whether fit(augment=None) turns it on."""
    POLICIES.append((policy_cls, applies, default))
    return policy_cls


def augmentation_for(asked: bool | dict[str, Any] | None, info):
    """The augmentation policy `fit(augment=asked)` applies to a dataset's training batches, or None.

    `asked` is None (the policy's default for this data: off everywhere today), True or False, or a dict
    of the policy's settings (on, with those settings; e.g. {"rotation": 0, "brightness": 0} for images;
    lists are read as the tuples the ranges are).

    A policy is called as `policy(x, index, seed=, epoch=)` on a batch's x (or, when it has
    `augment_batch`, as `policy.augment_batch(batch, index, seed=, epoch=)` to move targets with the inputs).

    Raises:
        ConfigError: augmentation asked for data no policy covers, or a setting the policy does not have.
    """
    record = info.preprocessing or {}
    found = next(((cls, default) for cls, applies, default in POLICIES if applies(info)), None)
    settings = asked if isinstance(asked, dict) else {}
    if asked is None:
        asked = found is not None and found[1](info)
    if asked is False:
        return None
    if found is None:
        raise ConfigError(
            f"augment={asked!r}: gridseq has no augmentation for dataset {info.name!r} ({info.kind} data, task "
            f"{info.task!r}, view {record.get('view')!r}); it augments images classified from an image view, "
            f"images with their segmentation masks or detection boxes, audio features and series. Pass "
            f"augment=False (CLI: --no-augment)."
        )
    policy = found[0]
    known = [f.name for f in dataclasses.fields(policy) if f.name not in ("mean", "std")]
    unknown = [k for k in settings if k not in known]
    if unknown:
        raise ConfigError(f"augment: {policy.__name__} has no setting {unknown[0]!r}; its settings are "
                          f"{', '.join(known)}.")
    return policy.for_record(record, **{k: tuple(v) if isinstance(v, list) else v for k, v in settings.items()})


# each policy module registers itself on import (images first: the most specific predicates come first)
from gridseq.data.augment import audio as _audio  # noqa: E402,F401
from gridseq.data.augment import dense as _dense  # noqa: E402,F401
from gridseq.data.augment import images as _images  # noqa: E402,F401
from gridseq.data.augment import series as _series  # noqa: E402,F401
