"""Audio augmentation on the fly, seeded by (seed, epoch, item): SpecAugment time and frequency masks and
additive noise on log-mel feature batches (B, T, F).

SpecAugment (Park et al., 2019) hides random stretches of time and random bands of frequency, so a model
cannot lean on any one frame or band; the noise blurs the exact feature values. Every draw of an item comes
from `numpy.random.default_rng([seed, epoch, item])` and is made for the item's own valid length, so the
same item in the same epoch is augmented the same way whatever batch it sits in, whichever process decodes
it and however many workers there are. Masks and noise stay inside each item's length: padding stays
exactly zero.

Masked cells take the item's per-band mean over its valid frames (0 for the per-utterance normalised
front end, `gridseq.data.audio`); the noise is Gaussian with a level drawn per item from [0, `noise`]
times the item's own feature std (1 when normalised).

    >>> import torch
    >>> aug = AudioAugment()
    >>> x, lengths = torch.randn(3, 50, 40), torch.tensor([50, 30, 12])
    >>> y = aug(x, torch.arange(3), seed=0, epoch=0, lengths=lengths)
    >>> tuple(y.shape), bool(torch.equal(y, aug(x, torch.arange(3), seed=0, epoch=0, lengths=lengths)))
    ((3, 50, 40), True)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from gridseq.data.augment import register
from gridseq.data.contract import Batch
from gridseq.errors import ConfigError


@dataclass(frozen=True)
class AudioAugment:
    """The augmentation policy for feature sequences (B, T, F) with lengths, e.g. log-mel frames.

    Args:
        time_masks: time masks per item. Default: 2.
        time_width: a time mask covers up to this many frames (width drawn from 0..max). Default: 3
            (30 ms at a 10 ms hop: less than the briefest DTMF key, 40 ms, so no one mask hides a key).
        time_share: ... and at most this share of the item's length (SpecAugment's p). Default: 0.05.
        freq_masks: frequency masks per item. Default: 1.
        freq_width: a frequency mask covers up to this many bands. Default: 4 (of 40 mel bands).
        noise: the noise std is drawn per item from [0, noise] × the item's feature std. Default: 0.1.
    """

    time_masks: int = 2
    time_width: int = 3
    time_share: float = 0.05
    freq_masks: int = 1
    freq_width: int = 4
    noise: float = 0.1

    def __post_init__(self) -> None:
        for name in ("time_masks", "time_width", "freq_masks", "freq_width"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"{name} must be a non-negative int, got {value!r}.")
        share = self.time_share
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share <= 1:
            raise ConfigError(f"time_share must be a number in [0, 1], got {share!r}.")
        if isinstance(self.noise, bool) or not isinstance(self.noise, (int, float)) or not 0 <= self.noise <= 10:
            raise ConfigError(f"noise must be a number in [0, 10] (a multiple of the features' std), got {self.noise!r}.")

    @classmethod
    def for_record(cls, record: dict[str, Any], **overrides) -> AudioAugment:
        """The default policy for features prepared by `record` (a dataset's `info.preprocessing`)."""
        return cls(**overrides)

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def item(self, x: np.ndarray, item: int, seed: int, epoch: int) -> np.ndarray:
        """One item's valid frames x (T, F) augmented with the draws of `default_rng([seed, epoch, item])`."""
        rng = np.random.default_rng([seed, epoch, item])
        t, f = x.shape
        out = x.copy()
        if self.noise > 0 and t:
            level = rng.uniform(0, self.noise) * float(x.std())
            out += (level * rng.standard_normal((t, f))).astype(np.float32)
        fill = x.mean(0) if t else np.zeros(f, np.float32)  # (F,): each band's mean over the valid frames
        widest = min(self.time_width, int(self.time_share * t))
        for _ in range(self.time_masks):
            w = int(rng.integers(0, widest + 1))
            start = int(rng.integers(0, t - w + 1))
            out[start : start + w] = fill
        for _ in range(self.freq_masks):
            w = int(rng.integers(0, min(self.freq_width, f) + 1))
            start = int(rng.integers(0, f - w + 1))
            out[:, start : start + w] = fill[start : start + w]
        return out

    def __call__(self, x: Tensor, items: Tensor, *, seed: int, epoch: int, lengths: Tensor | None = None) -> Tensor:
        """Augment a batch x (B, T, F) whose item b has `lengths[b]` valid frames (all T if None); `items` (B,)
        are the items' indices in their split."""
        if x.shape[0] == 0:
            return x
        a = x.detach().cpu().numpy()
        out = a.copy()
        valid = [a.shape[1]] * a.shape[0] if lengths is None else lengths.tolist()
        for b, (i, n) in enumerate(zip(items.tolist(), valid)):
            out[b, :n] = self.item(a[b, :n], int(i), seed, epoch)
        return torch.from_numpy(out).to(x.device, x.dtype)

    def augment_batch(self, batch: Batch, items: Tensor, *, seed: int, epoch: int) -> Batch:
        """`batch` with its x augmented within each item's length (the trainer's entry point)."""
        return Batch(self(batch.x, items, seed=seed, epoch=epoch, lengths=batch.lengths), batch.y, batch.lengths)


def _transcribed_audio(info) -> bool:
    record = info.preprocessing or {}
    return info.targets.kind == "transcript" and record.get("layout") == "audio"


# off by default, for the built-ins and for your own files alike: without it the dtmf recipe already reaches
# validation CER 0.000 on a generated 4,000-utterance file,transcript CSV (8 epochs, seed 0:
# benchmarks/results/stream_modalities_augment.json), so there it has nothing to improve;
# fit(augment=True) / --augment turn it on
register(AudioAugment, _transcribed_audio)
