"""From strings to a "tokens" `Dataset`: vocabularies from the training split, ids, padding, the record.

Three task shapes share this module (the text built-ins and the user text files both end here):

- classify: x (N, T) int64 ids padded with 0 (`<pad>`), lengths (N,) ≥ 1, y (N,) class indices;
  `split.texts` holds the cleaned strings.
- lm: consecutive, non-overlapping chunks of one long text: x (N, chunk) and y (N, chunk) = the same
  ids shifted by one character (the next-character targets); the text's tail that does not fill a
  chunk is dropped. `split.texts` is the split's whole slice of the text.
- seq2seq: x (N, S) source ids + lengths, y (N, U) target ids ending in `<eos>` padded with 0 (no
  `<bos>`: the decoder prepends it); `split.texts` are the sources, `split.targets` the targets.

The preprocessing record of "tokens" data holds what `predict` needs to encode new raw text:

    {"source": "surnames", "layout": "tokens", "view": "tokens", "task": "classify",
     "clean": "surname",          # the text_clean rule applied before tokenising
     "level": "char",             # how the vocabulary splits text ("word" also lower-cases)
     "lowercase": false, "unicode": "NFC",
     "vocab": {"level": "char", "tokens": ["<pad>", "<unk>", "<bos>", "<eos>", "a", ...]},
     "target_vocab": {...},       # seq2seq only
     "chunk": 128, "sha256": "…"} # lm only

`encode_texts(texts, record)` is that encoding, the same function at load and at predict time.

Streamed text — the same three shapes with ids in memory-mapped files — is `gridseq.data.text_stream`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from gridseq.data.contract import Dataset, DatasetInfo, Split
from gridseq.data.padding import pad_ids
from gridseq.data.partition import train_val_test
from gridseq.data.text_clean import clean_text
from gridseq.data.vocab import Vocab, normalize
from gridseq.errors import DataError

SPLITS = ("train", "val", "test")


def encode_texts(texts: Sequence[str], record: dict[str, Any], *, clean: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Raw strings → (x (N, T) int64 padded with 0, lengths (N,) int64), as the dataset's inputs were made.

    Args:
        texts: one string per item.
        record: the dataset's preprocessing record (its "clean" rule and "vocab").
        clean: apply the record's cleaning rule first (False when `texts` are already clean).
    Raises:
        DataError: a text with no tokens (empty or only spaces after cleaning).
    """
    vocab = Vocab.from_json(record["vocab"])
    rule = record.get("clean", "none")
    rows = []
    for i, text in enumerate(texts):
        ids = vocab.encode(clean_text(text, rule) if clean else text)
        if not ids:
            raise DataError(f"text {i} (0-based) {text!r} has no tokens after cleaning; every item needs at least one.")
        rows.append(ids)
    return pad_ids(rows)


def text_record(source: str, task: str, vocab: Vocab, *, clean: str, **extra) -> dict[str, Any]:
    """The preprocessing record of "tokens" data (see the module docstring)."""
    return {
        "source": source, "layout": "tokens", "view": "tokens", "task": task, "clean": clean,
        "level": vocab.level, "lowercase": vocab.level == "word", "unicode": "NFC", "vocab": vocab.to_json(),
        **extra,
    }


def divide_labelled(y: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """Indices per split: stratified test (constant seed) and val (from `seed`), as for every dataset."""
    index = train_val_test(np.asarray(y), seed)
    return {name: index[name] for name in SPLITS}


def classify_dataset(name: str, parts: dict[str, tuple[list[str], np.ndarray]], class_names: Sequence[str], *,
                     level: str, source: str, clean: str, min_count: int = 1, max_size: int | None = None,
                     **extra) -> Dataset:
    """A "tokens" classification dataset from cleaned texts and class indices per split.

    Args:
        parts: {"train": (texts, y), "val": ..., "test": ...}; texts already cleaned by `clean`.
        level: "char" or "word" tokens; the vocabulary comes from the training texts only.
        min_count, max_size: passed to `Vocab.build`.
    """
    vocab = Vocab.build(parts["train"][0], level, min_count=min_count, max_size=max_size)
    record = text_record(source, "classify", vocab, clean=clean, min_count=min_count, **extra)
    splits = {}
    for split in SPLITS:
        texts, y = parts[split]
        x, lengths = encode_texts(texts, record, clean=False)
        splits[split] = Split(x, torch.as_tensor(np.asarray(y), dtype=torch.int64), lengths, texts=list(texts))
    longest = max(int(s.x.shape[1]) for s in splits.values())
    info = DatasetInfo(
        name=name, kind="tokens", input_shape=(longest,), num_classes=len(class_names),
        class_names=tuple(class_names), variable_length=True, task="classify", vocab_size=len(vocab),
        preprocessing=record,
    )
    return Dataset(info, splits["train"], splits["val"], splits["test"])


def slice_text(text: str, fractions: tuple[float, float, float] = (0.9, 0.05, 0.05)) -> dict[str, str]:
    """Fixed contiguous train/val/test slices of `text` (not shuffled: a language model reads on)."""
    n = len(text)
    a = int(round(n * fractions[0]))
    b = a + int(round(n * fractions[1]))
    return {"train": text[:a], "val": text[a:b], "test": text[b:]}


def lm_dataset(name: str, text: str, *, chunk: int, source: str, clean: str = "none",
               fractions: tuple[float, float, float] = (0.9, 0.05, 0.05), **extra) -> Dataset:
    """A character language-modelling dataset from one long text (already cleaned, NFC).

    Each split is cut into non-overlapping chunks: x = ids[i·chunk : (i+1)·chunk], y = the same window
    shifted by one (the next character of every position). Vocabulary from the training slice only.
    """
    text = normalize(text)
    slices = slice_text(text, fractions)
    vocab = Vocab.build([slices["train"]], "char")
    record = text_record(source, "lm", vocab, clean=clean, chunk=chunk, characters=len(text), **extra)
    splits = {}
    for split, part in slices.items():
        ids = torch.tensor(vocab.encode(part), dtype=torch.int64)
        n = (len(ids) - 1) // chunk
        if n < 1:
            raise DataError(
                f"{name}: the {split} slice has {len(part)} characters, fewer than chunk + 1 = {chunk + 1}; "
                f"use a longer text or a smaller chunk (chunk=...)."
            )
        x = ids[: n * chunk].view(n, chunk)  # (N, chunk)
        y = ids[1: n * chunk + 1].view(n, chunk)  # (N, chunk): next character of each position
        splits[split] = Split(x.clone(), y.clone(), None, texts=part)
    info = DatasetInfo(
        name=name, kind="tokens", input_shape=(chunk,), num_classes=len(vocab), class_names=(),
        variable_length=False, task="lm", vocab_size=len(vocab), preprocessing=record,
    )
    return Dataset(info, splits["train"], splits["val"], splits["test"])


def seq2seq_dataset(name: str, parts: dict[str, tuple[list[str], list[str]]], *, source: str, clean: str,
                    level: str = "char", target_level: str = "char", min_count: int = 1, max_size: int | None = None,
                    **extra) -> Dataset:
    """A sequence-to-sequence "tokens" dataset from cleaned (source, target) strings per split.

    Source and target vocabularies come from the training pairs only (`max_size` tokens each at most,
    specials included: a subword vocabulary's size); targets end in `<eos>`.
    """
    vocab = Vocab.build(parts["train"][0], level, min_count=min_count, max_size=max_size)
    target_vocab = Vocab.build(parts["train"][1], target_level, min_count=min_count, max_size=max_size)
    record = text_record(source, "seq2seq", vocab, clean=clean, target_vocab=target_vocab.to_json(),
                         target_level=target_level, min_count=min_count, **extra)
    splits = {}
    for split in SPLITS:
        sources, targets = parts[split]
        x, lengths = encode_texts(sources, record, clean=False)
        y, _ = pad_ids([target_vocab.encode(t, eos=True) for t in targets])
        splits[split] = Split(x, y, lengths, texts=list(sources), targets=list(targets))
    longest = max(int(s.x.shape[1]) for s in splits.values())
    info = DatasetInfo(
        name=name, kind="tokens", input_shape=(longest,), num_classes=len(target_vocab), class_names=(),
        variable_length=True, task="seq2seq", vocab_size=len(vocab), preprocessing=record,
    )
    return Dataset(info, splits["train"], splits["val"], splits["test"])
