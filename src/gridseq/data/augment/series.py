"""Time-series augmentation on the fly, seeded by (seed, epoch, item): jitter and scaling.

The two transforms of Um et al. (2017) and Iwana & Uchida (2021) that keep a series' shape: *jitter*
adds Gaussian noise N(0, jitter²) to every valid step of every feature, *scaling* multiplies the whole
item by one factor drawn from N(1, scaling²). Both act on the normalised batch (B, T, F), so the
defaults (0.03 and 0.1) are in units of the data's standard deviation; padding past an item's length
stays exactly zero.

Every item's draws come from `numpy.random.default_rng([seed, epoch, item])` for its own valid steps
only, so an item is augmented the same way whatever batch it is in, however wide that batch is padded,
and whichever DataLoader worker prepares it — a resumed run sees the same batches.

Registered for sequence and series classification (raw sequences, not images viewed as rows); off by
default (`fit(augment=True)`, CLI `--augment`, turns it on): the built-ins' recipes were chosen without
it. `benchmarks/stream_text_series.py --skip-memory` measures validation accuracy with and without it
(mnist1d and ucr/japanesevowels with a GRU, seeds 0-2).

    >>> import torch
    >>> from gridseq.data.contract import Batch
    >>> aug = SeriesAugment()
    >>> b = Batch(torch.zeros(3, 5, 2), torch.tensor([0, 1, 0]), torch.tensor([5, 3, 4]))
    >>> out = aug.augment_batch(b, torch.arange(3), seed=0, epoch=0)
    >>> tuple(out.x.shape), bool((out.x[1, 3:] == 0).all())
    ((3, 5, 2), True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from gridseq.data.augment import register
from gridseq.data.contract import Batch
from gridseq.errors import ConfigError


@dataclass(frozen=True)
class SeriesAugment:
    """The augmentation policy for sequences and time series (B, T, F), normalised.

    Args:
        jitter: standard deviation of the additive Gaussian noise, in normalised units. Default: 0.03.
        scaling: standard deviation of the per-item multiplicative factor around 1. Default: 0.1.
    """

    jitter: float = 0.03
    scaling: float = 0.1

    def __post_init__(self) -> None:
        for name in ("jitter", "scaling"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ConfigError(f"{name} must be a finite number >= 0 (a standard deviation), got {value!r}.")

    @classmethod
    def for_record(cls, record: dict[str, Any], **overrides) -> SeriesAugment:
        """The default policy for sequences prepared by `record` (the same whatever the normalisation)."""
        return cls(**overrides)

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def draws(self, item: int, steps: int, features: int, seed: int, epoch: int) -> tuple[float, np.ndarray]:
        """One item's scaling factor and (steps, features) jitter noise, from `default_rng([seed, epoch, item])`."""
        rng = np.random.default_rng([seed, epoch, item])
        factor = 1.0 + self.scaling * rng.standard_normal()
        noise = (self.jitter * rng.standard_normal((steps, features))).astype(np.float32)
        return factor, noise

    def __call__(self, x: Tensor, items: Tensor, *, seed: int, epoch: int, lengths: Tensor | None = None) -> Tensor:
        """Augment a normalised batch x (B, T, F); `items` (B,) are the items' indices in their split, `lengths`
        (B,) their valid lengths (None: every item has all T steps)."""
        if x.shape[0] == 0:
            return x
        b, t, f = x.shape
        out = x.clone()
        for k, item in enumerate(items.tolist()):
            n = t if lengths is None else int(lengths[k])
            factor, noise = self.draws(int(item), n, f, seed, epoch)
            out[k, :n] = out[k, :n] * factor + torch.from_numpy(noise).to(x.dtype)
        return out

    def augment_batch(self, batch: Batch, items: Tensor, *, seed: int, epoch: int) -> Batch:
        """`batch` with its x augmented over each item's own valid steps (padding stays zero)."""
        return Batch(self(batch.x, items, seed=seed, epoch=epoch, lengths=batch.lengths), batch.y, batch.lengths)


def _classified_sequences(info) -> bool:
    record = info.preprocessing or {}
    return info.kind in ("sequence", "series") and record.get("layout") == "sequence" and info.targets.item_class


register(SeriesAugment, _classified_sequences)  # off by default: see the module docstring
