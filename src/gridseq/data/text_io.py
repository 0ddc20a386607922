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
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from gridseq._validation import check_choice, check_positive_int
from gridseq.data.split import Dataset
from gridseq.data.splitting import TEST_FRACTION, TEST_SEED, VAL_FRACTION, encode_labels, split_sizes, train_val_test
from gridseq.data.text_build import SPLITS, classify_dataset, divide_labelled, lm_dataset, seq2seq_dataset
from gridseq.data.text_clean import clean_text
from gridseq.data.vocab import LEVELS
from gridseq.errors import ConfigError, DataError

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
        line = raw[: e.start].count(b"\n") + 1
        raise DataError(
            f"{path} is not UTF-8: byte 0x{raw[e.start]:02x} on line {line} cannot be decoded; re-save the file "
            f"as UTF-8 (e.g. iconv -f latin1 -t utf-8 {path.name} > fixed{path.suffix})."
        ) from e
    if not text.strip():
        raise DataError(f"{path} is empty; expected {_WHAT.get(path.suffix.lower(), 'text')}.")
    return text


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
def load_text_file(path: Path | str, seed: int, view: str, *, task: str = "lm", chunk: int = 128) -> Dataset:
    """A .txt file as a character language-modelling dataset (see the module docstring).

    Args:
        chunk: characters per item. Default: 128.
    Raises:
        DataError: an empty, unreadable or non-UTF-8 file; a split shorter than chunk + 1 characters.
    """
    _check_task(task, "lm", path)
    chunk = check_positive_int(chunk, "chunk", minimum=2)
    text = clean_text(read_utf8(path), "none")
    return lm_dataset(str(path), text, chunk=chunk, source="txt")


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
                  val_path: str | None = None, test_path: str | None = None) -> Dataset:
    """A CSV of texts and labels as a "tokens" classification dataset (see the module docstring).

    Args:
        text_column, label_column: column names. Default: guessed from TEXT_COLUMNS / LABEL_COLUMNS.
        level: "word" or "char". Default: "word".
        min_count: tokens seen fewer times in the training split become `<unk>`. Default: 1.
        val_path, test_path: your own val/test CSVs with the same columns. Default: drawn from this file.
    Raises:
        DataError: an empty or non-UTF-8 file, a missing column (the message lists the columns), an empty
            cell, a label seen only once, a class left without training examples, a val/test label absent
            from training.
    """
    _check_task(task, "classify", path)
    check_choice(level, "level", LEVELS)
    min_count = check_positive_int(min_count, "min_count")
    texts, labels, lines, (tcol, lcol) = read_text_csv(path, text_column, label_column)
    given = {}
    for split, other in (("val", val_path), ("test", test_path)):
        if other is not None:
            t, lab, _, _ = read_text_csv(other, tcol, lcol)
            given[split] = (other, t, lab)
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
    y = encode_labels(labels, classes)[0]
    parts = _divide_labelled(texts, y, seed, given, classes)
    missing = [classes[c] for c in range(len(classes)) if c not in set(parts["train"][1].tolist())]
    if missing:
        raise DataError(
            f"{path}: class(es) {missing[:5]} have no training example after the split (too few rows: give each "
            f"class at least 3, or pass your own val_path/test_path)."
        )
    return classify_dataset(str(path), parts, classes, level=level, source="csv", clean="squeeze",
                            min_count=min_count, csv={"text_column": tcol, "label_column": lcol})


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
def read_pairs(path: Path | str) -> tuple[list[str], list[str]]:
    """(sources, targets) of a TSV of source<TAB>target lines, both cleaned ("squeeze")."""
    sources, targets = [], []
    for number, line in enumerate(read_utf8(path).splitlines(), start=1):
        if not line.strip():
            continue
        tabs = line.count("\t")
        if tabs != 1:
            what = "no tab" if tabs == 0 else f"{tabs} tabs"
            raise DataError(
                f"{path}, line {number}: {what}; each line is source<TAB>target (exactly one tab), got {line[:60]!r}."
            )
        source, target = (clean_text(part, "squeeze") for part in line.split("\t"))
        if not source or not target:
            raise DataError(f"{path}, line {number}: empty {'source' if not source else 'target'}; both sides need text.")
        sources.append(source)
        targets.append(target)
    return sources, targets


def load_pairs_tsv(path: Path | str, seed: int, view: str, *, task: str = "seq2seq", level: str = "char",
                   target_level: str = "char", min_count: int = 1, val_path: str | None = None,
                   test_path: str | None = None) -> Dataset:
    """A TSV of source/target pairs as a "tokens" seq2seq dataset (see the module docstring).

    Args:
        level, target_level: "char" or "word" tokens of sources and targets. Default: "char" for both.
        min_count: tokens seen fewer times in training become `<unk>`. Default: 1.
        val_path, test_path: your own val/test TSVs. Default: drawn from this file, by source string.
    Raises:
        DataError: an empty or non-UTF-8 file, a line without exactly one tab (with its line number), an
            empty side, too few distinct sources to split.
    """
    _check_task(task, "seq2seq", path)
    check_choice(level, "level", LEVELS)
    check_choice(target_level, "target_level", LEVELS)
    min_count = check_positive_int(min_count, "min_count")
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
