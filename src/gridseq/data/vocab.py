"""Vocabularies: text ↔ token ids, built from the training split only.

Ids 0–3 are always the specials: `<pad>` (0, also the embedding's padding index), `<unk>` (1), `<bos>`
(2) and `<eos>` (3); real tokens follow in order of decreasing training frequency (ties by first
appearance), so a vocabulary is a pure function of the training text. Characters are Unicode code
points after NFC normalisation, so a precomposed "é" and "e" + combining accent are one token; words
are maximal runs of word characters or single other non-space characters.

A vocabulary serialises to a plain JSON record (`to_json` / `from_json`) that a run directory's
config.json keeps, so `predict` and `generate` need nothing else.

    >>> v = Vocab.build(["abbb", "abc"], level="char")  # b: 4, a: 2, c: 1
    >>> v.tokens[4:], v.encode("abz"), v.decode(v.encode("cab"))
    (('b', 'a', 'c'), [5, 4, 1], 'cab')
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from gridseq._validation import check_choice
from gridseq.constants import BOS, EOS, PAD, SPECIALS, UNK
from gridseq.errors import ConfigError, DataError

LEVELS = ("char", "word", "subword")  # subword: BPE from Hugging Face tokenizers (gridseq.data.subword)
_WORD = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def normalize(text: str) -> str:
    """NFC normal form: one code point per accented letter where Unicode has one."""
    return unicodedata.normalize("NFC", text)


def tokenize(text: str, level: str) -> list[str]:
    """`text` as a list of tokens: code points ("char") or words and punctuation marks ("word")."""
    text = normalize(text)
    if level == "subword":
        raise ConfigError("subword tokens come from a fitted tokenizer: use SubwordVocab.build(...).encode(text).")
    return list(text) if level == "char" else _WORD.findall(text.lower())


class Vocab:
    """A token ↔ id mapping with the four specials first.

    Args:
        tokens: every token in id order, starting with `SPECIALS`.
        level: "char" or "word" — how `encode` splits text.
    """

    def __init__(self, tokens: Sequence[str], level: str = "char"):
        check_choice(level, "level", ("char", "word"))
        tokens = tuple(tokens)
        if tokens[: len(SPECIALS)] != SPECIALS:
            raise ConfigError(f"a vocabulary starts with {SPECIALS}, got {tokens[:len(SPECIALS)]}.")
        if len(set(tokens)) != len(tokens):
            raise ConfigError("a vocabulary's tokens must be unique.")
        self.tokens, self.level = tokens, level
        self.index = {t: i for i, t in enumerate(tokens)}

    @classmethod
    def build(cls, texts: Iterable[str], level: str = "char", *, min_count: int = 1,
              max_size: int | None = None) -> Vocab:
        """The vocabulary of `texts` (the training split): tokens seen at least `min_count` times,
        the `max_size` most frequent (specials included) when given. Level "subword" returns a
        `SubwordVocab` (BPE of `max_size` tokens, default 4,000) instead."""
        check_choice(level, "level", LEVELS)
        if level == "subword":
            from gridseq.data.subword import SubwordVocab  # here: it imports this module's specials

            return SubwordVocab.build(texts, vocab_size=max_size, min_count=min_count)
        counts = Counter()
        for text in texts:
            counts.update(tokenize(text, level))
        if not counts:
            raise DataError("cannot build a vocabulary from empty text: the training split has no tokens.")
        # Counter keeps first-appearance order, and sorted() is stable, so ties stay in that order
        ranked = [t for t, n in sorted(counts.items(), key=lambda kv: -kv[1]) if n >= min_count and t not in SPECIALS]
        if max_size is not None:
            ranked = ranked[: max(0, max_size - len(SPECIALS))]
        return cls(SPECIALS + tuple(ranked), level)

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, text: str, *, bos: bool = False, eos: bool = False) -> list[int]:
        """Token ids of `text`; unseen tokens become `<unk>`."""
        ids = [self.index.get(t, UNK) for t in tokenize(text, self.level)]
        return ([BOS] if bos else []) + ids + ([EOS] if eos else [])

    def decode(self, ids: Iterable[int], *, stop_at_eos: bool = True) -> str:
        """Text of `ids`, skipping `<pad>` and `<bos>` and (by default) stopping at `<eos>`."""
        out = []
        for i in ids:
            i = int(i)
            if i == EOS and stop_at_eos:
                break
            if i in (PAD, BOS):
                continue
            out.append(self.tokens[i] if 0 <= i < len(self.tokens) else SPECIALS[UNK])
        return ("" if self.level == "char" else " ").join(out)

    def to_json(self) -> dict[str, Any]:
        return {"level": self.level, "tokens": list(self.tokens)}

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> Vocab:
        """The vocabulary of a `to_json` record (a `SubwordVocab` for level "subword")."""
        if record.get("level") == "subword":
            from gridseq.data.subword import SubwordVocab

            return SubwordVocab.from_json(record)
        return cls(record["tokens"], record["level"])

    def __repr__(self) -> str:
        return f"Vocab(level={self.level!r}, size={len(self)})"
