"""Splits that stream: items decoded on demand, in `DataLoader` worker processes, a batch at a time.

A `StreamSplit` holds what is cheap to know about every item — its label and, for sequences, its length
(from headers or a one-time index) — and a picklable `source` that decodes item i. The trainer's
`BatchSampler` still decides the order (a pure function of seed, epoch and rank); `loader(batches)` hands
those index batches to `workers` processes, each of which decodes, prepares and augments whole batches,
with `prefetch` batches per worker in flight. Memory is bounded by batch size × workers × prefetch,
whatever the number of files, and the batches are the same whichever worker made them.

In-memory `Split`s and `StreamSplit`s answer the same calls — `len`, `y`, `lengths`, `batch(index)`,
`loader(batches, ...)` — so `fit`, `evaluate` and the tasks do not ask which one they have.

    >>> import numpy as np, torch
    >>> class Squares:  # any object with __len__ and __getitem__ returning one raw item
    ...     def __len__(self): return 6
    ...     def __getitem__(self, i): return np.full((1, 2, 2), i / 6, dtype=np.float32)
    >>> split = StreamSplit(Squares(), torch.tensor([0, 1, 0, 1, 0, 1]), workers=0)
    >>> [tuple(b.x.shape) for b in split.loader([torch.tensor([0, 1, 2]), torch.tensor([3, 4, 5])])]
    [(3, 1, 2, 2), (3, 1, 2, 2)]
"""

from __future__ import annotations

import ctypes
import functools
import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
import torch
from torch import Tensor

from gridseq._validation import check_positive_int
from gridseq.data.contract import Batch, augmented
from gridseq.data.padding import pad_batch
from gridseq.data.preprocessing import apply_preprocessing
from gridseq.errors import ConfigError, DataError, GridseqError

# a source whose decoded float32 items would take more than this share of available memory streams
STREAM_SHARE = 0.1
# ... and so does any source over 256 MiB decoded: reading a folder into memory peaks at about 4x its
# decoded size (the stacked items, the split copies, normalisation), so 4,000 photos at 128x128 (786 MB)
# took 3.3 GB in memory against about 1.2 GB streamed (benchmarks/data_scale.py)
STREAM_MAX_BYTES = 256 << 20
WORKER_NICE = 10  # decoder processes run at this niceness (see _worker_init)
STATS_SAMPLE = 512  # normalisation statistics of a streamed split come from this many training items


def default_workers() -> int:
    """Decoder processes when none are asked for: half the cores this process may use, 1 to 4.

    Decoding is a small share of a training step, and the training process's own threads use every core:
    a worker per core oversubscribes them. On 2 cores (4,000 photos at 128x128, cnn at batch 16, one epoch
    streamed), one worker trained at 59.6-67.9 samples/s and two at 41.2-57.0 (this VM's speed varied
    between runs: the same in-memory run measured 70.5 and 119.8); with one worker the streamed path ran
    at 0.91x the in-memory one (ratio of medians of 3 alternating runs, benchmarks/data_scale.py)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(4, cores // 2))


def available_memory() -> int:
    """Bytes of memory available to new allocations (MemAvailable on Linux), or 8 GiB if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 8 << 30


def should_stream(decoded_bytes: int, stream: bool | None) -> bool:
    """`stream` if given; otherwise whether `decoded_bytes` of float32 items would take a large share of
    memory (over 10% of what is available, or over 256 MiB)."""
    if stream is not None:
        if not isinstance(stream, bool):
            raise ConfigError(f"stream must be True, False or None (automatic), got {stream!r}.")
        return stream
    return decoded_bytes > min(STREAM_MAX_BYTES, STREAM_SHARE * available_memory())


class StreamSplit:
    """One split whose items are decoded when a batch needs them.

    Args:
        source: a picklable object with `len(source)` and `source[i]` -> item i's raw x (a NumPy array
            or tensor): an image (C, H, W) in [0, 1] or a sequence (T_i, F) before preprocessing.
        y: (N,) int64 class indices (or (N, ...) targets), known without decoding.
        record: the preprocessing record applied to every decoded batch (normalisation and view, see
            `gridseq.data.preprocessing`); None for items that are ready as they are.
        lengths: (N,) int64 valid lengths of sequence items, or None.
        workers: decoder processes for `loader`; 0 decodes in this process. Default: `default_workers()`.
        prefetch: batches each worker prepares ahead. Default: 2.
        collate: turns the list of decoded items (and their lengths) into the batch's raw x, e.g. a
            stack for fixed-size items. Default: stack, or pad along time when `lengths` is given.
        y_source: for targets too large to hold for every item (segmentation masks), a picklable object
            with `y_source[i]` -> item i's target array, decoded with the item and stacked into the batch's
            y; then `y` is None and `split.y` raises a DataError. Default: None (targets are `y`).
    """

    def __init__(self, source, y: Tensor | None, *, record: dict[str, Any] | None = None, lengths: Tensor | None = None,
                 workers: int | None = None, prefetch: int = 2, collate: Callable | None = None, y_source=None):
        if (y is None) == (y_source is None):
            raise ValueError("StreamSplit: pass exactly one of y (targets known without decoding) and y_source")
        self.source, self.record, self.lengths, self.y_source = source, record, lengths, y_source
        self._y = None if y is None else torch.as_tensor(y)
        counts = [len(t) for t in (self._y, y_source, lengths) if t is not None]
        if any(c != len(source) for c in counts):
            raise ValueError(f"StreamSplit: source, y (or y_source) and lengths must have the same length, got "
                             f"{len(source)} and {counts}")
        self.workers = default_workers() if workers is None else check_positive_int(workers, "workers", minimum=0)
        self.prefetch = check_positive_int(prefetch, "prefetch")
        self.collate = collate
        self.texts = self.targets = None

    def __len__(self) -> int:
        return len(self.source)

    @property
    def y(self) -> Tensor:
        if self._y is None:
            raise DataError(
                f"this split streams the targets of its {len(self)} items (e.g. masks) from disk with the items and "
                f"holds no y tensor; take batches with split.batch(index) or split.loader(batches), or load the "
                f"dataset with stream=False to keep it in memory."
            )
        return self._y

    def _targets(self, index: Tensor) -> Tensor:
        """The targets of the items at `index`: gathered from `y`, or decoded from `y_source` and stacked."""
        if self.y_source is None:
            return self._y[index]
        items = [np.asarray(self.y_source[int(i)]) for i in index.tolist()]
        return torch.from_numpy(np.stack(items)) if items else torch.zeros(0, dtype=torch.int64)

    @property
    def x(self) -> Tensor:
        raise DataError(
            f"this split streams its {len(self)} items from disk and holds no x tensor; take batches with "
            f"split.batch(index) or split.loader(batches), or load the dataset with stream=False to keep it in memory."
        )

    def read(self, index: Tensor) -> tuple[Tensor, Tensor | None]:
        """Decode and prepare the items at `index`: (x, lengths) as the model sees them."""
        return self._prepare([self.source[int(i)] for i in index.tolist()], index)

    def _prepare(self, items: list, index: Tensor, raw_transform: Callable | None = None) -> tuple[Tensor, Tensor | None]:
        """Decoded raw items -> the batch's (x, lengths): collated, `raw_transform`ed (a function of the raw
        batch tensor, e.g. colour jitter in pixel units), normalised, in the dataset's view."""
        items = [np.asarray(a, dtype=np.float32) for a in items]
        lengths = None if self.lengths is None else self.lengths[index]
        if self.collate is not None:
            raw = self.collate(items)
        elif lengths is not None:
            raw = pad_batch(items, lengths)  # (B, T, ...) to the batch's longest item
        else:
            raw = np.stack(items) if items else np.zeros((0,), dtype=np.float32)
        if raw_transform is not None:
            raw = raw_transform(torch.from_numpy(raw)).numpy()
        if self.record is None:
            return torch.from_numpy(raw), lengths
        x, _ = apply_preprocessing(raw, None if lengths is None else lengths.numpy(), self.record)
        return x, lengths

    def augmented_batch(self, index: Tensor, augment: Callable | None, seed: int, epoch: int) -> Batch:
        """`batch(index)` augmented. A source that can decode through a geometric transform (images:
        `transformed(i, coefficients)`) crops, flips and rotates while it resizes, in one resampling of
        the file; any other source, or one whose targets are decoded too (`y_source`, moved by the policy's
        `augment_batch`), is decoded first and then augmented as a batch in memory is."""
        transformed = getattr(self.source, "transformed", None)
        if augment is None or transformed is None or not hasattr(augment, "pil_affine") or self.y_source is not None:
            return augmented(self.batch(index), index, augment, seed, epoch)
        d = augment.draws(index, seed, epoch)
        items = [transformed(int(i), functools.partial(augment.pil_affine, d[k])) for k, i in enumerate(index.tolist())]
        def pixels(raw: Tensor) -> Tensor:  # colour jitter and erasing, in pixel units before normalisation
            return augment.erase_(augment.colour(raw, d, normalised=False), index, seed=seed, epoch=epoch, normalised=False)

        x, lengths = self._prepare(items, index, pixels)
        return Batch(x, self._targets(index), lengths)

    def batch(self, index: Tensor | slice) -> Batch:
        """The items at `index` decoded in this process, as `Split.batch` returns them."""
        if isinstance(index, slice):
            index = torch.arange(len(self))[index]
        index = torch.as_tensor(index, dtype=torch.int64)
        x, lengths = self.read(index)
        return Batch(x, self._targets(index), lengths)

    def loader(self, batches: Iterable[Tensor], *, epoch: int = 0, seed: int = 0,
               augment: Callable | None = None) -> Iterator[Batch]:
        """The batches at `batches` (index tensors, in order), decoded by the workers; with `augment` (e.g. an
        `ImageAugment`), each batch is augmented by its items' (seed, epoch, index)."""
        batches = list(batches)
        if self.workers == 0 or len(batches) <= 1:
            return (self.augmented_batch(index, augment, seed, epoch) for index in batches)
        return _worker_batches(self, batches, augment, seed, epoch)


class _Decoder(torch.utils.data.Dataset):
    """What a worker runs: an index batch in, (x, y, lengths) of the prepared, augmented batch out."""

    def __init__(self, split: StreamSplit, augment, seed: int, epoch: int):
        self.split, self.augment, self.seed, self.epoch = split, augment, seed, epoch

    def __getitem__(self, index: Tensor):
        b = self.split.augmented_batch(index, self.augment, self.seed, self.epoch)
        return b.x, b.y, b.lengths


def _worker_init(_worker_id: int) -> None:
    """Set up a decoder process: a lower CPU priority, and a fixed malloc mmap threshold.

    Priority: the training process's threads use every core, and a decoder competing with them on equal
    terms can hold up a parallel operator until its time slice ends. At `WORKER_NICE` the scheduler
    favours the training threads; with `prefetch` batches queued, the decoding is still done before it
    is needed, and where cores are idle the niceness changes nothing. A precaution rather than a measured
    gain: on 2 cores (4,000 photos, cnn, 3 alternating runs each) streamed training ran at a median 63.8
    samples/s with it and 60.2 without, within the runs' spread (docs/datasets.md).

    Malloc: glibc raises its mmap threshold to the size of each large block freed, up to 32 MiB, so after
    the first batch every batch-sized tensor comes from the heap, interleaved with the decoder's smaller
    blocks, and the fragmented heap is never returned: a worker decoding and augmenting 64 photos of
    128x128 grew by ~15 MB per batch (600 MB after 40 batches). A fixed threshold turns the dynamic
    adjustment off, so batch-sized blocks are mapped and unmapped whole."""
    try:
        os.nice(WORKER_NICE)
    except OSError:  # not permitted here: decode at the same priority
        pass
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc: nothing to do
        return
    libc.mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD: blocks of 1 MiB and more are mmap()ed


def _worker_batches(split: StreamSplit, batches: list[Tensor], augment, seed: int, epoch: int) -> Iterator[Batch]:
    loader = torch.utils.data.DataLoader(
        _Decoder(split, augment, seed, epoch), sampler=batches, batch_size=None,
        num_workers=min(split.workers, len(batches)), prefetch_factor=split.prefetch, worker_init_fn=_worker_init,
    )
    try:
        for x, y, lengths in loader:
            yield Batch(x, y, lengths)
    except GridseqError as e:  # re-raised from a worker with its traceback as the message: keep the error's own line
        lines = str(e).strip().splitlines()
        if "Original Traceback" not in str(e) or not lines:
            raise
        raise type(e)(lines[-1].split(": ", 1)[-1]) from None
    except RuntimeError as e:  # a worker died (killed, out of memory) or raised: one readable line
        if "DataLoader worker" in str(e):
            raise DataError(f"a data loading worker failed: {e}. Retry with workers=0 (CLI: --workers 0) "
                            f"to see the failing item's error in this process.") from e
        raise


def sample_for_stats(n: int, count: int = STATS_SAMPLE) -> np.ndarray:
    """Up to `count` item indices of n, drawn with a constant seed, sorted (bounded normalisation statistics)."""
    if n <= count:
        return np.arange(n)
    return np.sort(np.random.default_rng(0).choice(n, size=count, replace=False))


class CachedItems:
    """A source's items kept as uint8 in one flat file once decoded, so later epochs read bytes instead of
    decoding files again.

    Item i lives at offset i × C·H·W of `<folder>/<key>.u8`; byte i of `<key>.done` says whether it has been
    written. Files are read and written with pread/pwrite, not memory-mapped, so the cache costs page cache
    (which the kernel reclaims) rather than process memory; workers write disjoint items. Items are
    quantised to 8 bits on their first read too, so every epoch sees the same values.

    Args:
        source: items (C, H, W) float32 in [0, 1] of one `shape`.
        folder: the cache folder (created).
        key: names the files; derive it from everything that changes the decoded items (files, size, channels).
        shape: (C, H, W) of every item.
    """

    def __init__(self, source, folder, key: str, shape: tuple[int, ...]):
        self.source, self.shape = source, tuple(shape)
        self.item_bytes = int(np.prod(self.shape))
        folder = os.fspath(folder)
        try:
            os.makedirs(folder, exist_ok=True)
            self.data_path, self.done_path = os.path.join(folder, f"{key}.u8"), os.path.join(folder, f"{key}.done")
            for path, size in ((self.data_path, self.item_bytes * len(source)), (self.done_path, len(source))):
                if not os.path.exists(path) or os.path.getsize(path) != size:
                    with open(path, "wb") as f:
                        f.truncate(size)  # sparse: nothing is written until an item is decoded
        except OSError as e:
            raise DataError(f"cannot create the decoded-image cache in {folder}: {e.strerror or e}. Pass a writable "
                            f"folder as cache= (CLI: --cache DIR), or no cache.") from e
        self._fds: tuple[int, int] | None = None
        self._pid = None

    def __len__(self) -> int:
        return len(self.source)

    def __getstate__(self):
        return {**self.__dict__, "_fds": None, "_pid": None}

    def _files(self) -> tuple[int, int]:
        if self._fds is None or self._pid != os.getpid():  # each process opens its own descriptors
            self._fds = (os.open(self.data_path, os.O_RDWR), os.open(self.done_path, os.O_RDWR))
            self._pid = os.getpid()
        return self._fds

    def __getitem__(self, i: int) -> np.ndarray:
        data, done = self._files()
        if os.pread(done, 1, i) == b"\x01":
            raw = np.frombuffer(os.pread(data, self.item_bytes, i * self.item_bytes), dtype=np.uint8)
        else:
            raw = np.round(np.asarray(self.source[i], dtype=np.float32) * 255).astype(np.uint8).ravel()
            try:
                os.pwrite(data, raw.tobytes(), i * self.item_bytes)
                os.pwrite(done, b"\x01", i)  # after the bytes: a crash in between leaves the item undone
            except OSError as e:
                raise DataError(f"cannot write the decoded-image cache {self.data_path}: {e.strerror or e}. Free space "
                                f"or pass another cache folder.") from e
        return raw.reshape(self.shape).astype(np.float32) / 255.0
