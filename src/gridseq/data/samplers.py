"""Batches of item indices: shuffled, length-bucketed, sharded — a pure function of (seed, epoch, rank).

The trainer resumes mid-epoch by building the same epoch's order again and skipping the batches it has
done, so the order must depend on nothing but `seed`, `epoch`, `rank` and `world_size` (no global RNG,
no state carried between epochs).

Length bucketing: a batch costs as much as its longest item, so a random batch of lengths 5..200 is
mostly padding. Within chunks of `chunk_batches` batches of a shuffled order, items are sorted by
length and cut into batches; the batches are then shuffled. Batches hold similar lengths, every index
still comes exactly once per epoch, and batch composition still changes between epochs.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch import Tensor

from gridseq._validation import check_positive_int
from gridseq.data.contract import Batch, Split
from gridseq.errors import ConfigError


class BatchSampler:
    """Index batches for one split, one epoch at a time.

    Args:
        n: number of items in the split.
        batch_size: items per batch (the last batch may be smaller unless `drop_last`).
        lengths: (n,) item lengths for bucketing, or None.
        shuffle: draw a new order every epoch. Default: True. Without it, items come in index order.
        seed: seeds the order together with the epoch. Default: 0.
        bucket: batch items of similar length. Default (None): when lengths vary and `shuffle`.
            Without shuffling, bucketing sorts the whole split by length.
        drop_last: drop the smaller last batch. Default: False.
        rank: this process's index among `world_size` (DDP). Default: 0.
        world_size: number of processes. Each rank gets a disjoint share of n // world_size items
            (the few left over change every epoch when shuffling) in the same number of batches:
            step k of every rank together is one global batch of batch_size·world_size items, the
            one a single process with that batch size would take (bucketing sorts and shuffles
            global batches, so ranks of one step hold similar lengths). Default: 1.
        chunk_batches: bucketing sorts within chunks of this many batches. Default: 50.

    Example:
        >>> s = BatchSampler(10, 4, seed=1)
        >>> [len(b) for b in s], len(s)
        ([4, 4, 2], 3)
    """

    def __init__(self, n: int, batch_size: int, *, lengths=None, shuffle: bool = True, seed: int = 0,
                 bucket: bool | None = None, drop_last: bool = False, rank: int = 0, world_size: int = 1,
                 chunk_batches: int = 50):
        self.n = check_positive_int(n, "n", minimum=0)
        self.batch_size = check_positive_int(batch_size, "batch_size")
        self.world_size = check_positive_int(world_size, "world_size")
        self.rank = check_positive_int(rank, "rank", minimum=0)
        self.chunk_batches = check_positive_int(chunk_batches, "chunk_batches")
        if self.rank >= self.world_size:
            raise ConfigError(f"rank must be in [0, world_size={world_size}), got {rank}.")
        seed = check_positive_int(int(seed) if isinstance(seed, np.integer) else seed, "seed", minimum=0)
        self.lengths = None
        if lengths is not None:
            self.lengths = np.asarray(torch.as_tensor(lengths).cpu(), dtype=np.int64)
            if self.lengths.shape != (self.n,):
                raise ConfigError(f"lengths must have shape (n,) = ({self.n},), got {self.lengths.shape}.")
        varies = self.lengths is not None and len(np.unique(self.lengths)) > 1
        self.bucket = bool(varies and shuffle) if bucket is None else bool(bucket)
        if self.bucket and self.lengths is None:
            raise ConfigError("bucket=True needs lengths: pass lengths=split.lengths.")
        self.shuffle, self.seed, self.drop_last = shuffle, int(seed), drop_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Use the order of `epoch` on the next iteration (call it at the start of every epoch)."""
        self.epoch = check_positive_int(epoch, "epoch", minimum=0)

    @property
    def share(self) -> int:
        """Items this rank sees per epoch."""
        return self.n // self.world_size

    def __len__(self) -> int:
        full, rest = divmod(self.share, self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    def batches(self, epoch: int | None = None) -> list[Tensor]:
        """This rank's batches for `epoch` (default: the epoch set last), as int64 index tensors."""
        epoch = self.epoch if epoch is None else epoch
        # every rank builds the same global batches of batch_size·world_size items and takes its
        # slice of each: shares are disjoint, every rank takes the same number of steps, and with
        # bucketing the ranks of one step hold similar lengths (no rank waits on a longer batch)
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(self.n) if self.shuffle else np.arange(self.n)
        kept = order[: self.share * self.world_size]
        rng = np.random.default_rng([self.seed, epoch, 1])  # the same on every rank
        if self.bucket:
            kept = self._bucketed(kept)
        size = self.batch_size * self.world_size
        cuts = [kept[i : i + size] for i in range(0, len(kept), size)]
        if self.drop_last and cuts and len(cuts[-1]) < size:
            cuts.pop()
        if self.bucket and self.shuffle:
            cuts = [cuts[i] for i in rng.permutation(len(cuts))]
        # a length-sorted global batch dealt round-robin gives each rank a similar range of lengths
        return [torch.from_numpy(np.ascontiguousarray(c[self.rank :: self.world_size], dtype=np.int64)) for c in cuts]

    def _bucketed(self, order: np.ndarray) -> np.ndarray:
        """`order` sorted by length within chunks of chunk_batches global batches (the whole split if not shuffling)."""
        chunk = self.chunk_batches * self.batch_size * self.world_size if self.shuffle else max(len(order), 1)
        parts = []
        for i in range(0, len(order), chunk):
            part = order[i : i + chunk]
            parts.append(part[np.argsort(self.lengths[part], kind="stable")])
        return np.concatenate(parts) if parts else order

    def __iter__(self) -> Iterator[Tensor]:
        return iter(self.batches())


def iterate(split: Split, sampler: BatchSampler) -> Iterator[Batch]:
    """The batches of `split` in the sampler's order: `split.batch(idx)` for each index tensor."""
    for index in sampler:
        yield split.batch(index)


def padded_fraction(lengths: Tensor, batches: list[Tensor]) -> float:
    """The share of padded steps over all batches, each padded to its own longest item (a cost measure)."""
    padded = total = 0
    for b in batches:
        lb = lengths[b]
        padded += int(lb.max()) * len(lb)
        total += int(lb.sum())
    return 1.0 - total / padded if padded else 0.0


class StreamSampler:
    """Batches of consecutive chunks for stateful training (truncated backpropagation through time).

    A split of n consecutive text chunks is read as `streams` parallel streams, each a contiguous run
    of `steps = n // streams` chunks; batch k holds chunk k of every stream, so row b of batch k+1
    continues row b of batch k and the hidden state can be carried from one batch to the next. The
    order is the same every epoch. With several processes, each rank takes its own streams.

    Args:
        n: number of chunks.
        batch_size: streams per rank (fewer when the split is too short).
        remainder: also yield the chunks left over by `n // streams` as a last, smaller batch (for
            evaluation: every chunk is scored). Default: False.
        rank, world_size: as in `BatchSampler`.

    Example:
        >>> [b.tolist() for b in StreamSampler(7, 2, remainder=True)]
        [[0, 3], [1, 4], [2, 5], [6]]
    """

    def __init__(self, n: int, batch_size: int, *, remainder: bool = False, rank: int = 0, world_size: int = 1):
        self.n = check_positive_int(n, "n", minimum=0)
        check_positive_int(batch_size, "batch_size")
        self.world_size = check_positive_int(world_size, "world_size")
        self.rank = check_positive_int(rank, "rank", minimum=0)
        if self.rank >= self.world_size:
            raise ConfigError(f"rank must be in [0, world_size={world_size}), got {rank}.")
        self.streams = max(1, min(batch_size, self.n // self.world_size))
        total = self.streams * self.world_size
        self.steps = self.n // total
        self.remainder = remainder and self.world_size == 1 and self.n > total * self.steps

    def set_epoch(self, epoch: int) -> None:
        """Accepted for the trainer's sake: the order does not change between epochs."""

    def __len__(self) -> int:
        return self.steps + int(self.remainder)

    def batches(self) -> list[Tensor]:
        starts = (torch.arange(self.streams) * self.world_size + self.rank) * self.steps  # this rank's streams
        out = [starts + k for k in range(self.steps)]
        if self.remainder:
            out.append(torch.arange(self.streams * self.steps, self.n))
        return out

    def __iter__(self) -> Iterator[Tensor]:
        return iter(self.batches())
