"""Streamed "tokens" datasets: the shapes of `gridseq.data.text_assemble`, with ids in memory-mapped files.

Streamed text (`stream_classify_dataset`, `stream_lm_dataset`, `stream_seq2seq_dataset`, fed by the
one-pass file readers in `text_io`): the vocabulary is built in one pass over the training texts as
above, then every item's ids are written once, back to back, to a temporary file (uint16 when the
vocabulary has at most 65,535 tokens, else int32; removed at exit) with (N+1,) offsets in memory.
`TokenStreamSplit` items slice that memory-mapped file, so lengths (and length buckets) come from the
offsets without reading an id, and a batch is padded to its longest item exactly as an in-memory
split's is. What such a split holds:

- `x` is a `TokenMatrix`: a lazy (N, T) int64 view (shape, dtype, `x[index]` gathers rows), so code
  that checks a split's layout works unchanged; `batch` / `loader` give the batches.
- `y`: class indices (N,) in memory (classify); for seq2seq (N, U) int64 padded targets in a
  memory-mapped file (a real tensor: the task checks all of them); for lm a `TokenMatrix` of the
  next-character windows.
- `texts` / `targets` are lazily available: a `LazyStrings` sequence (cleaned strings decoded on
  access, `list(split.texts)` reads them all), for lm a `LazyText` (`str(split.texts)` is the slice).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from gridseq.data.contract import Batch, Dataset, DatasetInfo
from gridseq.data.readers.arrays import Flat, FlatWriter, Mapped, Scratch
from gridseq.data.stream import StreamSplit
from gridseq.data.text_assemble import SPLITS, text_record
from gridseq.data.vocab import PAD, UNK, Vocab, normalize
from gridseq.errors import DataError


def id_dtype(vocab_size: int):
    """The smallest dtype that holds every id of a vocabulary: uint16 up to 65,535 tokens, else int32."""
    return np.uint16 if vocab_size <= np.iinfo(np.uint16).max else np.int32


class LazyStrings(Sequence):
    """Cleaned strings of a streamed split, decoded from UTF-8 on access: item i is row `index[i]` of `flat`."""

    def __init__(self, flat: Flat, index: np.ndarray):
        self.flat, self.index = flat, np.asarray(index, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        return bytes(self.flat[int(self.index[i])]).decode("utf-8")

    def __repr__(self) -> str:
        return f"LazyStrings({len(self)} strings)"


class LazyText:
    """One split's slice of a language-modelling text, kept in a UTF-8 file: `len` is its characters,
    `str(texts)` reads the whole slice, `texts[a:b]` reads it and slices it."""

    def __init__(self, data: Mapped, start: int, end: int, chars: int):
        self.data, self.start, self.end, self.chars = data, start, end, chars

    def __len__(self) -> int:
        return self.chars

    def __str__(self) -> str:
        return bytes(self.data.array[self.start: self.end]).decode("utf-8")

    def __getitem__(self, key) -> str:
        return str(self)[key]

    def __eq__(self, other) -> bool:
        return str(self) == (str(other) if isinstance(other, LazyText) else other)

    def __repr__(self) -> str:
        return f"LazyText({self.chars} characters)"


class TokenRows:
    """The items of a streamed classify/seq2seq split: item i is the int64 ids of row i of `flat`."""

    def __init__(self, flat: Flat):
        self.flat = flat

    def __len__(self) -> int:
        return len(self.flat)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.flat[i].astype(np.int64)


class TokenWindows:
    """The items of a streamed language-modelling split: item i is ids[start + i·chunk : start + (i+1)·chunk + 1],
    a chunk and the character after it (x is the first `chunk` ids, y the last)."""

    def __init__(self, ids: Mapped, start: int, n: int, chunk: int):
        self.ids, self.start, self.n, self.chunk = ids, start, n, chunk

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> np.ndarray:
        at = self.start + i * self.chunk
        return self.ids.array[at: at + self.chunk + 1].astype(np.int64)


class TokenMatrix:
    """A streamed split's (N, T) int64 ids as a lazy view: `shape`, `dtype`, `dim()`, `len`, and `m[index]`
    gathering rows (padded with 0 to T) into a tensor. Nothing is read until it is indexed.

    Args:
        split: the `TokenStreamSplit` whose items it shows.
        width: T, the longest item of the split.
        part: "x" (the inputs) or "y" (a language model's next-character targets).
    """

    dtype = torch.int64

    def __init__(self, split: TokenStreamSplit, width: int, part: str = "x"):
        self.split, self.width, self.part = split, width, part

    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self.split), self.width))

    def size(self, dim: int | None = None):
        return self.shape if dim is None else self.shape[dim]

    def dim(self) -> int:
        return 2

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, index) -> torch.Tensor:
        if isinstance(index, (int, np.integer)) or (torch.is_tensor(index) and index.dim() == 0):
            return self[torch.tensor([int(index)])][0]
        if isinstance(index, slice):
            index = torch.arange(len(self.split))[index]
        index = torch.as_tensor(index, dtype=torch.int64)
        b = self.split.batch(index)
        rows = b.y if self.part == "y" else b.x
        return torch.nn.functional.pad(rows, (0, self.width - rows.shape[1]), value=PAD)

    def tolist(self) -> list[list[int]]:
        return self[:].tolist()

    def __repr__(self) -> str:
        return f"TokenMatrix(shape={tuple(self.shape)}, streamed)"


class TokenStreamSplit(StreamSplit):
    """A streamed split of token ids (see the module docstring): items are int64 id arrays, batches are
    padded with `<pad>` (0) to their longest item, or (language modelling) windows cut into x and y.

    Args:
        source: `TokenRows` or `TokenWindows`.
        y: class indices (N,) or padded targets (N, U) int64; None for windows (y comes from them).
        lengths: (N,) int64 item lengths, or None for windows.
        texts, targets: the raw strings (`LazyStrings` / `LazyText`), or None.
        workers: loader processes. Default: half the cores available, 1 to 4.
    """

    def __init__(self, source, y: torch.Tensor | None, *, lengths: torch.Tensor | None, texts=None, targets=None,
                 workers: int | None = None):
        windows = y is None
        super().__init__(source, torch.empty((len(source), 0), dtype=torch.int64) if windows else y, lengths=lengths,
                         workers=workers)
        self.windows = windows
        self.y = TokenMatrix(self, source.chunk, "y") if windows else torch.as_tensor(y)
        self.width = source.chunk if windows else (int(lengths.max()) if len(lengths) else 0)
        self.texts, self.targets = texts, targets

    def __len__(self) -> int:
        return len(self.source)

    @property
    def y(self):
        """Class indices (N,), padded targets (N, U), or for windows a `TokenMatrix` of next-character ids."""
        return self._token_y

    @y.setter
    def y(self, value) -> None:
        self._token_y = value

    @property
    def x(self) -> TokenMatrix:
        return TokenMatrix(self, self.width)

    def read(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        b = self.batch(index)
        return b.x, b.lengths

    def batch(self, index) -> Batch:
        """The items at `index` read from the id file: x (B, T_batch) int64 padded with 0, as `Split.batch`."""
        if isinstance(index, slice):
            index = torch.arange(len(self))[index]
        index = torch.as_tensor(index, dtype=torch.int64)
        rows = [self.source[int(i)] for i in index.tolist()]
        if self.windows:
            w = torch.from_numpy(np.stack(rows)) if rows else torch.zeros((0, self.source.chunk + 1), dtype=torch.int64)
            return Batch(w[:, :-1].contiguous(), w[:, 1:].contiguous(), None)
        lengths = self.lengths[index]
        x = torch.full((len(rows), int(lengths.max()) if len(rows) else 0), PAD, dtype=torch.int64)
        for k, r in enumerate(rows):
            x[k, : len(r)] = torch.from_numpy(r)
        return Batch(x, self.y[index], lengths)


def _write_ids(path: Path, texts: Iterator[str], vocab: Vocab, scratch: Scratch, *, eos: bool = False) -> Flat:
    """Every text's ids (with `<eos>` when asked) back to back in `path`; DataError for a text with no tokens."""
    writer = FlatWriter(path, id_dtype(len(vocab)))
    for i, text in enumerate(texts):
        ids = vocab.encode(text, eos=eos)
        if not ids:
            writer.close()
            raise DataError(f"text {i} (0-based) {text!r} has no tokens after cleaning; every item needs at least one.")
        writer.add(ids)
    return writer.close(scratch)


def _padded_targets(path: Path, flat: Flat) -> torch.Tensor:
    """(N, U) int64 target ids padded with 0, in a memory-mapped file (`pad_ids` of the rows of `flat`)."""
    n, width = len(flat), int(flat.lengths.max()) if len(flat) else 0
    if n * width == 0:
        return torch.zeros((n, width), dtype=torch.int64)
    out = np.memmap(path, np.int64, mode="w+", shape=(n, width))
    for i in range(n):
        row = flat[i]
        out[i, : len(row)] = row
    out.flush()
    del out
    return torch.from_numpy(np.memmap(path, np.int64, mode="c", shape=(n, width)))  # copy-on-write: pages stay the file's


def stream_classify_dataset(name: str, texts: dict[str, tuple[Flat, np.ndarray, np.ndarray]], class_names: Sequence[str],
                            *, level: str, source: str, clean: str, scratch: Scratch, min_count: int = 1,
                            max_size: int | None = None, workers: int | None = None, **extra) -> Dataset:
    """`classify_dataset` streamed: texts[split] = (UTF-8 rows of cleaned texts, the rows of the split in
    order, class indices); the same vocabulary, record, info and batches."""
    train_flat, train_rows, _ = texts["train"]
    vocab = Vocab.build(LazyStrings(train_flat, train_rows), level, min_count=min_count, max_size=max_size)
    record = text_record(source, "classify", vocab, clean=clean, min_count=min_count, **extra)
    splits = {}
    for split in SPLITS:
        flat, rows, y = texts[split]
        strings = LazyStrings(flat, rows)
        ids = _write_ids(scratch / f"{split}.ids", iter(strings), vocab, scratch)
        splits[split] = TokenStreamSplit(TokenRows(ids), torch.as_tensor(np.asarray(y), dtype=torch.int64),
                                         lengths=torch.from_numpy(ids.lengths), texts=strings, workers=workers)
    return _token_dataset(name, splits, vocab, record, task="classify", num_classes=len(class_names),
                          class_names=tuple(class_names))


def stream_seq2seq_dataset(name: str, pairs: dict[str, tuple[Flat, Flat, np.ndarray]], *, source: str, clean: str,
                           scratch: Scratch, level: str = "char", target_level: str = "char", min_count: int = 1,
                           workers: int | None = None, **extra) -> Dataset:
    """`seq2seq_dataset` streamed: pairs[split] = (UTF-8 sources, UTF-8 targets, the rows of the split)."""
    sources, targets, rows = pairs["train"]
    vocab = Vocab.build(LazyStrings(sources, rows), level, min_count=min_count)
    target_vocab = Vocab.build(LazyStrings(targets, rows), target_level, min_count=min_count)
    record = text_record(source, "seq2seq", vocab, clean=clean, target_vocab=target_vocab.to_json(),
                         target_level=target_level, min_count=min_count, **extra)
    splits = {}
    for split in SPLITS:
        sources, targets, rows = pairs[split]
        src, tgt = LazyStrings(sources, rows), LazyStrings(targets, rows)
        ids = _write_ids(scratch / f"{split}.ids", iter(src), vocab, scratch)
        target_ids = _write_ids(scratch / f"{split}.target-ids", iter(tgt), target_vocab, scratch, eos=True)
        y = _padded_targets(scratch / f"{split}.targets.i64", target_ids)
        splits[split] = TokenStreamSplit(TokenRows(ids), y, lengths=torch.from_numpy(ids.lengths), texts=src,
                                         targets=tgt, workers=workers)
    return _token_dataset(name, splits, vocab, record, task="seq2seq", num_classes=len(target_vocab), class_names=())


def _token_dataset(name, splits, vocab, record, *, task: str, num_classes: int, class_names) -> Dataset:
    longest = max(s.width for s in splits.values())
    info = DatasetInfo(
        name=name, kind="tokens", input_shape=(longest,), num_classes=num_classes, class_names=class_names,
        variable_length=True, task=task, vocab_size=len(vocab), preprocessing=record,  # texts and pairs have lengths
    )
    return Dataset(info, splits["train"], splits["val"], splits["test"])


class NfcText(NamedTuple):
    """A cleaned (NFC) text in a UTF-8 file, cut into pieces at boundaries that normalisation never crosses
    (before an ASCII character), with each piece's characters and bytes."""

    data: Mapped
    chars: np.ndarray  # (P,) characters per piece
    sizes: np.ndarray  # (P,) bytes per piece

    def pieces(self, start: int = 0, end: int | None = None) -> Iterator[str]:
        """The text's characters [start, end) as strings, a piece at a time (a cut piece is normalised again,
        as slicing the whole text and normalising the slice would)."""
        end = int(self.chars.sum()) if end is None else end
        at, byte = 0, 0
        for chars, size in zip(self.chars.tolist(), self.sizes.tolist()):
            lo, hi = max(start, at), min(end, at + chars)
            if lo < hi:
                piece = bytes(self.data.array[byte: byte + size]).decode("utf-8")
                yield piece if (lo, hi) == (at, at + chars) else normalize(piece[lo - at: hi - at])
            at, byte = at + chars, byte + size
            if at >= end:
                break

    def byte_offset(self, char: int) -> int:
        """Where character `char` starts in the file."""
        at, byte = 0, 0
        for chars, size in zip(self.chars.tolist(), self.sizes.tolist()):
            if char < at + chars:
                piece = bytes(self.data.array[byte: byte + size]).decode("utf-8")
                return byte + len(piece[: char - at].encode("utf-8"))
            at, byte = at + chars, byte + size
        return byte


def _encode_chars(piece: str, codes: np.ndarray, ids: np.ndarray) -> Iterator[np.ndarray]:
    """Ids of a piece of character text, 64k characters at a time (the temporaries stay small), vectorised:
    `codes` are the vocabulary's code points sorted, `ids` theirs."""
    piece = normalize(piece)
    for start in range(0, len(piece), 1 << 16):
        points = np.frombuffer(piece[start: start + (1 << 16)].encode("utf-32-le"), dtype=np.uint32)
        if not len(codes):
            yield np.full(len(points), UNK)
            continue
        at = np.minimum(np.searchsorted(codes, points), len(codes) - 1)
        yield np.where(codes[at] == points, ids[at], UNK)


def stream_lm_dataset(name: str, text: NfcText, *, chunk: int, source: str, scratch: Scratch, clean: str = "none",
                      fractions: tuple[float, float, float] = (0.9, 0.05, 0.05), workers: int | None = None,
                      **extra) -> Dataset:
    """`lm_dataset` streamed: the same slices, vocabulary (from the training slice, one pass), record and
    chunks, with every character's id written once to a memory-mapped file that the chunks slice."""
    n = int(text.chars.sum())
    a = int(round(n * fractions[0]))
    b = a + int(round(n * fractions[1]))
    bounds = {"train": (0, a), "val": (a, b), "test": (b, n)}
    vocab = Vocab.build(text.pieces(0, a), "char")
    record = text_record(source, "lm", vocab, clean=clean, chunk=chunk, characters=n, **extra)
    points = np.array([ord(t) for t in vocab.tokens[4:]], dtype=np.uint32)
    order = np.argsort(points)
    codes, code_ids = points[order], (order + 4).astype(np.int32)
    writer = FlatWriter(scratch / "text.ids", id_dtype(len(vocab)))
    spans = {}
    for split, (lo, hi) in bounds.items():  # one id per character of each slice, slice after slice
        start = writer.total
        for piece in text.pieces(lo, hi):
            for ids in _encode_chars(piece, codes, code_ids):
                writer.add(ids)
        spans[split] = (start, writer.total)
    ids = writer.close(scratch).values
    splits = {}
    for split, (lo, hi) in bounds.items():
        start, end = spans[split]
        count = (end - start - 1) // chunk
        if count < 1:
            raise DataError(
                f"{name}: the {split} slice has {hi - lo} characters, fewer than chunk + 1 = {chunk + 1}; "
                f"use a longer text or a smaller chunk (chunk=...)."
            )
        texts = LazyText(text.data, text.byte_offset(lo), text.byte_offset(hi), hi - lo)
        splits[split] = TokenStreamSplit(TokenWindows(ids, start, count, chunk), None, lengths=None,
                                         texts=texts, workers=workers)
    info = DatasetInfo(
        name=name, kind="tokens", input_shape=(chunk,), num_classes=len(vocab), class_names=(),
        variable_length=False, task="lm", vocab_size=len(vocab), preprocessing=record,
    )
    return Dataset(info, splits["train"], splits["val"], splits["test"])
