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
stream (see `gridseq.data.text_stream`). Only labels, offsets and, for .tsv, an 8-byte hash per pair
(the split by distinct source) stay in memory. The splits, vocabulary, record and batches are those
of the in-memory reader.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from gridseq._validation import check_choice, check_positive_int
from gridseq.data.contract import Dataset
from gridseq.data.partition import encode_labels, train_val_test
from gridseq.data.readers.arrays import Flat, FlatWriter, Mapped, Scratch
from gridseq.data.stream import should_stream
from gridseq.data.text_assemble import (
    SPLITS,
    classify_dataset,
    divide_labelled,
    lm_dataset,
)
from gridseq.data.text_clean import clean_text
from gridseq.data.text_stream import NfcText, stream_classify_dataset, stream_lm_dataset
from gridseq.data.vocab import LEVELS, normalize
from gridseq.errors import ConfigError, DataError

BLOCK = 1 << 22  # streamed files are read 4 MiB at a time
TOKEN_BYTES = {"char": 8, "word": 2, "subword": 3}  # int64 bytes per byte of file, the streaming estimate

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
