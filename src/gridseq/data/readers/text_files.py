"""Your own text files as "tokens" datasets (UTF-8; a byte-order mark is allowed).

- `.txt` — one long text for a character language model (task "lm"): cut into the first 90% /
  next 5% / last 5% for train/val/test (contiguous, not shuffled), then into chunks of `chunk`
  characters with next-character targets. Newlines and indentation are kept.
- `.csv` with a header, one text column and one label column (task "classify"):

      text,label
      "What a lovely day",positive
      "Lost my keys again",negative

  The columns default to the first header name among TEXT_COLUMNS / LABEL_COLUMNS ("text", "label",
  ...; case-insensitive); name them with text_column=..., label_column=.... Tokens are words
  (`level="word"`, lower-cased) or characters (`level="char"`).
- `.tsv` of source<TAB>target pairs, one per line, no header (task "seq2seq"), e.g. "5 March 1987\t1987-03-05".
  Characters by default on both sides. Pairs are split by source: no source string is in two splits.

Splits: give your own with val_path=... / test_path=... (files of the same kind); otherwise the test
split is drawn with a constant seed (stratified for labels) and val from `seed`, as everywhere in
gridseq. The vocabulary comes from the training split only. Text is put in Unicode NFC; CSV and TSV
text also has its runs of whitespace collapsed.

Streaming (`stream=True`, or automatically when the token ids would take over 10% of available memory
or 256 MiB as int64 — estimated from the file's size before reading it: 16 bytes per byte for a
language model's x and y, 8 per byte for characters and 2 per byte for words): the file is read in
4 MiB blocks, never whole; one pass writes the cleaned texts to a temporary folder (removed at exit),
the vocabulary is built from the training texts, and the ids are written compactly for the splits to
stream (see `gridseq.data.text_assemble`). Only labels, offsets and, for .tsv, an 8-byte hash per pair
(the split by distinct source) stay in memory. The splits, vocabulary, record and batches are those
of the in-memory reader.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from gridseq._validation import check_choice, check_positive_int
from gridseq.data.contract import Dataset
from gridseq.data.partition import TEST_FRACTION, TEST_SEED, VAL_FRACTION, encode_labels, split_sizes, train_val_test
from gridseq.data.readers.arrays import Flat, FlatWriter, Mapped, Scratch
from gridseq.data.stream import should_stream
from gridseq.data.text_assemble import (
    SPLITS,
    NfcText,
    classify_dataset,
    divide_labelled,
    lm_dataset,
    seq2seq_dataset,
    stream_classify_dataset,
    stream_lm_dataset,
    stream_seq2seq_dataset,
)
from gridseq.data.text_clean import clean_text
from gridseq.data.vocab import LEVELS, normalize
from gridseq.errors import ConfigError, DataError

BLOCK = 1 << 22  # streamed files are read 4 MiB at a time
TOKEN_BYTES = {"char": 8, "word": 2}  # int64 bytes per byte of file, the streaming estimate

TEXT_COLUMNS = ("text", "sentence", "review", "tweet", "content", "document", "comment")
LABEL_COLUMNS = ("label", "sentiment", "class", "category", "target", "y")


def read_utf8(path: Path | str) -> str:
    """The file's text; DataError for a missing, non-UTF-8 or empty file (naming the line of a bad byte)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DataError(f"cannot read {path}: {e}.") from e
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise _not_utf8(path, raw[e.start], raw[: e.start].count(b"\n") + 1) from e
    if not text.strip():
        raise _empty(path)
    return text


def _not_utf8(path: Path, byte: int, line: int) -> DataError:
    return DataError(
        f"{path} is not UTF-8: byte 0x{byte:02x} on line {line} cannot be decoded; re-save the file "
        f"as UTF-8 (e.g. iconv -f latin1 -t utf-8 {path.name} > fixed{path.suffix})."
    )


def _empty(path: Path) -> DataError:
    return DataError(f"{path} is empty; expected {_WHAT.get(path.suffix.lower(), 'text')}.")


def utf8_blocks(path: Path | str) -> Iterator[str]:
    """The file's text, BLOCK bytes at a time (a byte-order mark dropped), with `read_utf8`'s DataErrors for
    a missing file or a non-UTF-8 byte (naming its line). The caller checks for an empty file."""
    path = Path(path)
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    newlines = 0
    try:
        with open(path, "rb") as f:
            while True:
                raw = f.read(BLOCK)
                try:
                    text = decoder.decode(raw, final=not raw)
                except UnicodeDecodeError as e:  # e.object: the bytes held back from the last block, then this one
                    raise _not_utf8(path, e.object[e.start], newlines + e.object[: e.start].count(b"\n") + 1) from e
                newlines += raw.count(b"\n")
                if text:
                    yield text
                if not raw:
                    return
    except OSError as e:
        raise DataError(f"cannot read {path}: {e}.") from e


def _estimate(paths, per_byte: float) -> int:
    """The streaming estimate: `per_byte` bytes of ids per byte of the files (0 for a missing file)."""
    total = 0
    for p in paths:
        try:
            total += os.path.getsize(p)
        except (OSError, TypeError):
            pass
    return int(total * per_byte)


_WHAT = {".txt": "text to model", ".csv": "a header row and one row per text",
         ".tsv": "one source<TAB>target pair per line"}


def _check_task(task: str, expected: str, path: Path | str) -> None:
    if task != expected:
        hints = {"lm": "a .txt file", "classify": "a .csv file with text and label columns",
                 "seq2seq": "a .tsv file of source<TAB>target lines"}
        raise ConfigError(
            f"{path}: a {Path(path).suffix} file is {expected!r} data, got task={task!r}; for {task!r} pass "
            f"{hints.get(task, 'another kind of file')}."
        )


def is_text_csv(path: Path | str, options: dict) -> bool:
    """Whether a .csv holds text to classify (not numeric sequences): text_column or view="tokens" is
    given, or the header has a column named like one of TEXT_COLUMNS."""
    if "text_column" in options or options.get("view") == "tokens":
        return True
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            header = next(csv.reader(f), [])
    except (OSError, UnicodeDecodeError, csv.Error):
        return False
    return any(c.strip().lower() in TEXT_COLUMNS for c in header)


# -------------------------------------------------------------------------------------- plain text: lm
def load_text_file(path: Path | str, seed: int, view: str, *, task: str = "lm", chunk: int = 128,
                   stream: bool | None = None, workers: int | None = None) -> Dataset:
    """A .txt file as a character language-modelling dataset (see the module docstring).

    Args:
        chunk: characters per item. Default: 128.
        stream: True reads the file in blocks and streams chunks from a compact file of ids, False reads it
            into memory; None (default) streams when x and y would take over 10% of available memory or
            256 MiB (16 bytes per byte of file).
        workers: loader processes of a streamed file (0: in the training process). Default: half the cores
            available, 1 to 4.
    Raises:
        DataError: an empty, unreadable or non-UTF-8 file; a split shorter than chunk + 1 characters.
    """
    _check_task(task, "lm", path)
    chunk = check_positive_int(chunk, "chunk", minimum=2)
    if should_stream(_estimate([path], 16), stream):
        scratch = Scratch("text")
        return stream_lm_dataset(str(path), nfc_file(path, scratch), chunk=chunk, source="txt", scratch=scratch,
                                 workers=workers)
    text = clean_text(read_utf8(path), "none")
    return lm_dataset(str(path), text, chunk=chunk, source="txt")


def nfc_file(path: Path | str, scratch: Scratch) -> NfcText:
    """The file's text in NFC, written to `scratch` in pieces cut after a newline (or before an ASCII
    character), where normalising never reaches across; DataError for an empty or non-UTF-8 file."""
    target = scratch / "text.utf8"
    chars, sizes, pending, content = [], [], "", False
    with open(target, "wb") as out:
        def emit(piece: str) -> None:
            nonlocal content
            piece = normalize(piece)
            data = piece.encode("utf-8")
            out.write(data)
            chars.append(len(piece))
            sizes.append(len(data))
            content = content or bool(piece.strip())

        for block in utf8_blocks(path):
            pending += block
            cut = pending.rfind("\n") + 1
            if cut == 0:  # no newline: before the last ASCII character of the last 64k
                cut = next((i for i in range(len(pending) - 1, max(0, len(pending) - 65536) - 1, -1)
                            if ord(pending[i]) < 128), 0)
            if cut > 0:
                emit(pending[:cut])
                pending = pending[cut:]
        if pending:
            emit(pending)
    if not content:
        raise _empty(Path(path))
    size = sum(sizes)
    return NfcText(Mapped(target, 0, np.uint8, (size,), owner=scratch), np.array(chars, dtype=np.int64),
                   np.array(sizes, dtype=np.int64))


# ----------------------------------------------------------------------------------- CSV: classify text
def _pick(header: list[str], given: str | None, guesses: tuple[str, ...], what: str, option: str, path) -> str:
    if given is not None:
        if given not in header:
            raise DataError(
                f"{path}: no {what} column {given!r}; the columns are {', '.join(map(repr, header))}. "
                f"Name the right one with {option}=...."
            )
        return given
    lower = {c.lower(): c for c in header}
    found = next((lower[g] for g in guesses if g in lower), None)
    if found is None:
        raise DataError(
            f"{path}: no {what} column; the columns are {', '.join(map(repr, header))}, and none is named "
            f"{' or '.join(map(repr, guesses[:3]))}. Name it with {option}=...."
        )
    return found


def read_text_csv(path: Path | str, text_column: str | None = None,
                  label_column: str | None = None) -> tuple[list[str], list[str], list[int], tuple[str, str]]:
    """(texts cleaned, labels, line numbers, (text column, label column)) of a text CSV."""
    rows = list(csv.reader(io.StringIO(read_utf8(path), newline="")))
    rows = [(i + 1, r) for i, r in enumerate(rows) if r and any(c.strip() for c in r)]
    header = [c.strip() for c in rows[0][1]]
    tcol = _pick(header, text_column, TEXT_COLUMNS, "text", "text_column", path)
    lcol = _pick(header, label_column, LABEL_COLUMNS, "label", "label_column", path)
    ti, li = header.index(tcol), header.index(lcol)
    texts, labels, lines = [], [], []
    for line, row in rows[1:]:
        cells = row + [""] * (len(header) - len(row))
        text, label = clean_text(cells[ti], "squeeze"), cells[li].strip()
        if not text or not label:
            empty = "text" if not text else "label"
            raise DataError(f"{path}, line {line}: empty {empty} ({tcol!r}, {lcol!r}); every row needs both.")
        texts.append(text)
        labels.append(label)
        lines.append(line)
    if not texts:
        raise DataError(f"{path} has a header but no rows; expected one row per text.")
    return texts, labels, lines, (tcol, lcol)


def load_text_csv(path: Path | str, seed: int, view: str, *, task: str = "classify", text_column: str | None = None,
                  label_column: str | None = None, level: str = "word", min_count: int = 1,
                  val_path: str | None = None, test_path: str | None = None, stream: bool | None = None,
                  workers: int | None = None) -> Dataset:
    """A CSV of texts and labels as a "tokens" classification dataset (see the module docstring).

    Args:
        text_column, label_column: column names. Default: guessed from TEXT_COLUMNS / LABEL_COLUMNS.
        level: "word" or "char". Default: "word".
        min_count: tokens seen fewer times in the training split become `<unk>`. Default: 1.
        val_path, test_path: your own val/test CSVs with the same columns. Default: drawn from this file.
        stream: True reads the files row by row and streams items from a compact file of ids, False reads
            them into memory; None (default) streams when the ids would take over 10% of available memory
            or 256 MiB (estimated from the files' size).
        workers: loader processes of a streamed file (0: in the training process). Default: half the cores
            available, 1 to 4.
    Raises:
        DataError: an empty or non-UTF-8 file, a missing column (the message lists the columns), an empty
            cell, a label seen only once, a class left without training examples, a val/test label absent
            from training.
    """
    _check_task(task, "classify", path)
    check_choice(level, "level", LEVELS)
    min_count = check_positive_int(min_count, "min_count")
    if should_stream(_estimate([path, val_path, test_path], TOKEN_BYTES[level]), stream):
        return _streamed_text_csv(path, seed, text_column, label_column, level, min_count, val_path, test_path, workers)
    texts, labels, lines, (tcol, lcol) = read_text_csv(path, text_column, label_column)
    given = {}
    for split, other in (("val", val_path), ("test", test_path)):
        if other is not None:
            t, lab, _, _ = read_text_csv(other, tcol, lcol)
            given[split] = (other, t, lab)
    classes = _classes(path, labels, lines, given)
    y = encode_labels(labels, classes)[0]
    parts = _divide_labelled(texts, y, seed, given, classes)
    _check_trained(path, classes, parts["train"][1])
    return classify_dataset(str(path), parts, classes, level=level, source="csv", clean="squeeze",
                            min_count=min_count, csv={"text_column": tcol, "label_column": lcol})


def _classes(path, labels: list[str], lines: list[int], given: dict) -> tuple[str, ...]:
    """The class names of the training labels, after the checks on singletons and on val/test labels."""
    if given:
        _, classes = encode_labels(labels)
        for split, (other, _, lab) in given.items():
            unseen = sorted(set(lab) - set(classes))
            if unseen:
                raise DataError(
                    f"{other}: label(s) {unseen[:5]} occur only in the {split} file, never in {path}; every class "
                    f"needs training examples (classes in training: {', '.join(classes)})."
                )
    else:
        _check_singletons(labels, lines, path)
        _, classes = encode_labels(labels)
    return classes


def _check_trained(path, classes: tuple[str, ...], train_y: np.ndarray) -> None:
    missing = [classes[c] for c in range(len(classes)) if c not in set(np.asarray(train_y).tolist())]
    if missing:
        raise DataError(
            f"{path}: class(es) {missing[:5]} have no training example after the split (too few rows: give each "
            f"class at least 3, or pass your own val_path/test_path)."
        )


def _scan_text_csv(path, text_column: str | None, label_column: str | None, scratch: Scratch,
                   name: str) -> tuple[Flat, list[str], list[int], tuple[str, str]]:
    """`read_text_csv` a row at a time: the cleaned texts go to a UTF-8 file in `scratch`, the labels and
    line numbers stay in memory."""
    path = Path(path)
    writer = FlatWriter(scratch / f"{name}.utf8", np.uint8)
    header, labels, lines = None, [], []
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            for i, row in enumerate(csv.reader(f)):
                if not row or not any(c.strip() for c in row):
                    continue
                if header is None:
                    header = [c.strip() for c in row]
                    tcol = _pick(header, text_column, TEXT_COLUMNS, "text", "text_column", path)
                    lcol = _pick(header, label_column, LABEL_COLUMNS, "label", "label_column", path)
                    ti, li = header.index(tcol), header.index(lcol)
                    continue
                cells = row + [""] * (len(header) - len(row))
                text, label = clean_text(cells[ti], "squeeze"), cells[li].strip()
                if not text or not label:
                    empty = "text" if not text else "label"
                    raise DataError(f"{path}, line {i + 1}: empty {empty} ({tcol!r}, {lcol!r}); every row needs both.")
                writer.add(np.frombuffer(text.encode("utf-8"), dtype=np.uint8))
                labels.append(label)
                lines.append(i + 1)
    except UnicodeDecodeError:
        for _ in utf8_blocks(path):  # raises the DataError naming the line of the bad byte
            pass
        raise
    except csv.Error as e:
        raise DataError(f"cannot read {path} as CSV: {e}.") from e
    except OSError as e:
        raise DataError(f"cannot read {path}: {e}.") from e
    if header is None:
        raise _empty(path)
    if not labels:
        raise DataError(f"{path} has a header but no rows; expected one row per text.")
    return writer.close(scratch), labels, lines, (tcol, lcol)


def _streamed_text_csv(path, seed, text_column, label_column, level, min_count, val_path, test_path, workers) -> Dataset:
    """`load_text_csv` streamed (see the module docstring): the same checks, splits and vocabulary."""
    scratch = Scratch("text")
    flat, labels, lines, (tcol, lcol) = _scan_text_csv(path, text_column, label_column, scratch, "texts")
    given = {}
    for split, other in (("val", val_path), ("test", test_path)):
        if other is not None:
            f, lab, _, _ = _scan_text_csv(other, tcol, lcol, scratch, split)
            given[split] = (other, f, lab)
    classes = _classes(path, labels, lines, given)
    y = encode_labels(labels, classes)[0]
    if given:
        index = train_val_test(y, seed, test_given="test" in given, val_given="val" in given)
    else:
        index = divide_labelled(y, seed)
    parts = {s: (flat, idx, y[idx]) for s, idx in index.items()}
    for split, (_, f, lab) in given.items():
        parts[split] = (f, np.arange(len(lab)), encode_labels(lab, classes)[0])
    _check_trained(path, classes, parts["train"][2])
    return stream_classify_dataset(str(path), parts, classes, level=level, source="csv", clean="squeeze",
                                   scratch=scratch, min_count=min_count, workers=workers,
                                   csv={"text_column": tcol, "label_column": lcol})


def _check_singletons(labels: list[str], lines: list[int], path) -> None:
    values, counts = np.unique(np.asarray(labels), return_counts=True)
    once = [str(v) for v, c in zip(values, counts) if c == 1]
    if once:
        line = lines[labels.index(once[0])]
        raise DataError(
            f"{path}: label(s) {once[:5]} occur only once (first: line {line}); a class needs examples to train "
            f"on and to test on — add rows, merge the label into another, or drop it."
        )


def _divide_labelled(texts, y, seed, given, classes):
    if not given:
        return {s: ([texts[i] for i in idx], y[idx]) for s, idx in divide_labelled(y, seed).items()}
    index = train_val_test(y, seed, test_given="test" in given, val_given="val" in given)
    parts = {s: ([texts[i] for i in idx], y[idx]) for s, idx in index.items()}
    for split, (_, t, lab) in given.items():
        parts[split] = (t, encode_labels(lab, classes)[0])
    return {s: parts[s] for s in SPLITS}


# ----------------------------------------------------------------------------------------- TSV: seq2seq
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
        level, target_level: "char" or "word" tokens of sources and targets. Default: "char" for both.
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
