"""`.tsv` files of source<TAB>target pairs for seq2seq, in memory or streamed (see `text_files` for the
shared text rules: UTF-8, NFC, the vocabulary from the training split only).

Pairs are split by distinct source (the same source never lands in two splits); streamed, one pass in 4 MiB
blocks writes the cleaned sources and targets to a temporary folder and only an 8-byte hash per pair stays
in memory.
"""


from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from gridseq._validation import check_choice, check_positive_int
from gridseq.data.contract import Dataset
from gridseq.data.partition import TEST_FRACTION, TEST_SEED, VAL_FRACTION, split_sizes
from gridseq.data.readers.arrays import Flat, FlatWriter, Scratch
from gridseq.data.readers.text_files import (
    TOKEN_BYTES,
    _check_task,
    _empty,
    _estimate,
    read_utf8,
    utf8_blocks,
)
from gridseq.data.stream import should_stream
from gridseq.data.text_assemble import SPLITS, seq2seq_dataset
from gridseq.data.text_clean import clean_text
from gridseq.data.text_stream import stream_seq2seq_dataset
from gridseq.data.vocab import LEVELS
from gridseq.errors import DataError


def _pair(path: Path, number: int, line: str) -> tuple[str, str]:
    """Line `number` of a TSV as its cleaned (source, target); DataError unless it has exactly one tab and text on both sides."""
    tabs = line.count("\t")
    if tabs != 1:
        what = "no tab" if tabs == 0 else f"{tabs} tabs"
        raise DataError(
            f"{path}, line {number}: {what}; each line is source<TAB>target (exactly one tab), got {line[:60]!r}."
        )
    source, target = (clean_text(part, "squeeze") for part in line.split("\t"))
    if not source or not target:
        raise DataError(f"{path}, line {number}: empty {'source' if not source else 'target'}; both sides need text.")
    return source, target


def read_pairs(path: Path | str) -> tuple[list[str], list[str]]:
    """(sources, targets) of a TSV of source<TAB>target lines, both cleaned ("squeeze")."""
    sources, targets = [], []
    for number, line in enumerate(read_utf8(path).splitlines(), start=1):
        if not line.strip():
            continue
        source, target = _pair(path, number, line)
        sources.append(source)
        targets.append(target)
    return sources, targets


def load_pairs_tsv(path: Path | str, seed: int, view: str, *, task: str = "seq2seq", level: str = "char",
                   target_level: str = "char", min_count: int = 1, val_path: str | None = None,
                   test_path: str | None = None, stream: bool | None = None, workers: int | None = None) -> Dataset:
    """A TSV of source/target pairs as a "tokens" seq2seq dataset (see the module docstring).

    Args:
        level, target_level: "char", "word" or "subword" (BPE, gridseq.data.subword) tokens of sources and
            targets. Default: "char" for both.
        min_count: tokens seen fewer times in training become `<unk>`. Default: 1.
        val_path, test_path: your own val/test TSVs. Default: drawn from this file, by source string.
        stream: True reads the files in blocks and streams items from compact files of ids, False reads them
            into memory; None (default) streams when the ids would take over 10% of available memory or
            256 MiB (estimated from the files' size).
        workers: loader processes of a streamed file (0: in the training process). Default: half the cores
            available, 1 to 4.
    Raises:
        DataError: an empty or non-UTF-8 file, a line without exactly one tab (with its line number), an
            empty side, too few distinct sources to split.
    """
    _check_task(task, "seq2seq", path)
    check_choice(level, "level", LEVELS)
    check_choice(target_level, "target_level", LEVELS)
    min_count = check_positive_int(min_count, "min_count")
    per_byte = (TOKEN_BYTES[level] + TOKEN_BYTES[target_level]) / 2
    if should_stream(_estimate([path, val_path, test_path], per_byte), stream):
        scratch = Scratch("text")
        sources, targets, hashes = _scan_pairs(path, scratch, "pairs")
        given = {s: _scan_pairs(p, scratch, s) for s, p in (("val", val_path), ("test", test_path)) if p is not None}
        index = _divide_pair_rows(hashes, seed, given)
        pairs = {s: (sources, targets, idx) for s, idx in index.items()}
        pairs.update({s: (src, tgt, np.arange(len(src))) for s, (src, tgt, _) in given.items()})
        return stream_seq2seq_dataset(str(path), pairs, source="tsv", clean="squeeze", scratch=scratch, level=level,
                                      target_level=target_level, min_count=min_count, workers=workers)
    sources, targets = read_pairs(path)
    given = {s: read_pairs(p) for s, p in (("val", val_path), ("test", test_path)) if p is not None}
    parts = _divide_pairs(sources, targets, seed, given)
    return seq2seq_dataset(str(path), parts, source="tsv", clean="squeeze", level=level, target_level=target_level,
                           min_count=min_count)


def _divide_pairs(sources, targets, seed, given):
    """Split by distinct source (first-appearance order): test with TEST_SEED, val with `seed`."""
    unique = list(dict.fromkeys(sources))
    _, v, t = split_sizes(len(unique), 0.0 if "test" in given else TEST_FRACTION, 0.0 if "val" in given else VAL_FRACTION)
    order = np.random.default_rng(TEST_SEED).permutation(len(unique))
    test_keys = set(unique[i] for i in order[:t])
    rest = [i for i in range(len(unique)) if unique[i] not in test_keys]
    val_keys = set(unique[rest[i]] for i in np.random.default_rng(seed).permutation(len(rest))[:v])
    parts = {s: ([], []) for s in SPLITS}
    for source, target in zip(sources, targets):
        split = "test" if source in test_keys else "val" if source in val_keys else "train"
        parts[split][0].append(source)
        parts[split][1].append(target)
    parts.update({s: (list(src), list(tgt)) for s, (src, tgt) in given.items()})
    return parts


def _lines(path) -> Iterator[tuple[int, str]]:
    """(number, line) of the file as `read_utf8(path).splitlines()` numbers them, read a block at a time;
    DataError for an empty file."""
    carry, number, content = "", 0, False
    for block in utf8_blocks(path):
        lines = (carry + block).splitlines(keepends=True)
        last = lines[-1] if lines else ""
        # the last line may go on in the next block (or be the "\r" of a "\r\n" split between blocks)
        carry = last if last == last.splitlines()[0] or last.endswith("\r") else ""
        for line in lines[: len(lines) - 1 if carry else len(lines)]:
            number += 1
            content = content or bool(line.strip())
            yield number, line.splitlines()[0] if line.splitlines() else ""
    if carry:
        content = content or bool(carry.strip())
        yield number + 1, carry.splitlines()[0]
    if not content:
        raise _empty(Path(path))


def _scan_pairs(path, scratch: Scratch, name: str) -> tuple[Flat, Flat, np.ndarray]:
    """`read_pairs` a line at a time: cleaned sources and targets to UTF-8 files in `scratch`, and an 8-byte
    hash of every source (the split by distinct source) in memory."""
    path = Path(path)
    src = FlatWriter(scratch / f"{name}.sources.utf8", np.uint8)
    tgt = FlatWriter(scratch / f"{name}.targets.utf8", np.uint8)
    hashes = []
    for number, line in _lines(path):
        if not line.strip():
            continue
        source, target = _pair(path, number, line)
        data = source.encode("utf-8")
        src.add(np.frombuffer(data, dtype=np.uint8))
        tgt.add(np.frombuffer(target.encode("utf-8"), dtype=np.uint8))
        hashes.append(hashlib.blake2b(data, digest_size=8).digest())
    return src.close(scratch), tgt.close(scratch), np.frombuffer(b"".join(hashes), dtype=np.uint64)


def _divide_pair_rows(hashes: np.ndarray, seed: int, given: dict) -> dict[str, np.ndarray]:
    """`_divide_pairs` on source hashes: the rows of each split (distinct sources in first-appearance order,
    test with TEST_SEED, val with `seed`). Two different sources share a 64-bit hash with odds ~N²/2⁶⁵."""
    unique, first, inverse = np.unique(hashes, return_index=True, return_inverse=True)
    rank = np.empty(len(unique), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(unique))
    source = rank[inverse.reshape(-1)]  # each pair's source, numbered by first appearance
    n = len(unique)
    _, v, t = split_sizes(n, 0.0 if "test" in given else TEST_FRACTION, 0.0 if "val" in given else VAL_FRACTION)
    test = np.zeros(n, dtype=bool)
    test[np.random.default_rng(TEST_SEED).permutation(n)[:t]] = True
    rest = np.flatnonzero(~test)
    val = np.zeros(n, dtype=bool)
    val[rest[np.random.default_rng(seed).permutation(len(rest))[:v]]] = True
    in_test, in_val = test[source], val[source]
    return {"train": np.flatnonzero(~in_test & ~in_val), "val": np.flatnonzero(in_val), "test": np.flatnonzero(in_test)}
