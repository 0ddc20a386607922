"""Subword vocabularies (level "subword"): byte-pair encoding from Hugging Face `tokenizers`, fitted on the
training split only, with the same interface and ids 0–3 as `gridseq.data.vocab.Vocab`.

What the tokenizer is (the choices a translation system makes, written down once):

- NFC normalisation, then SentencePiece-style pre-tokenisation (`Metaspace`: a space becomes "▁" and
  starts the next piece), so decoding is the exact inverse of encoding up to runs of spaces — the
  detokenised text that sacreBLEU scores is what `decode` returns, with no separate detokeniser;
- BPE merges learned from the training texts until the vocabulary holds `vocab_size` tokens (the four
  specials `<pad>`, `<unk>`, `<bos>`, `<eos>` first, then the training alphabet, then the merges); a
  character never seen in training becomes `<unk>`;
- case is kept (sacreBLEU scores cased text).

The whole tokenizer (merges, vocabulary, normaliser, pre-tokeniser, decoder) serialises to the JSON
record `to_json` returns — plain data in the run directory's config.json, loaded with
`tokenizers.Tokenizer.from_str`, never unpickled — so `gridseq predict RUN "sentence"` needs nothing else.

    >>> v = SubwordVocab.build(["the cat sat", "the cat ran"], vocab_size=30)
    >>> v.tokens[:4], v.decode(v.encode("the cat sat"))
    (('<pad>', '<unk>', '<bos>', '<eos>'), 'the cat sat')
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from gridseq.data.vocab import BOS, EOS, PAD, SPECIALS
from gridseq.errors import ConfigError, DataError

DEFAULT_SIZE = 4000
LEVEL = "subword"


def _tokenizers():
    try:
        import tokenizers
    except ImportError as e:
        raise ConfigError(
            f"subword vocabularies (level='subword') need Hugging Face tokenizers, which is not installed ({e}); "
            f"install it with: pip install 'gridseq[text]' (or pip install tokenizers)."
        ) from None
    return tokenizers


class SubwordVocab:
    """A BPE tokenizer with the four specials first; `encode`/`decode` as `Vocab`'s.

    Args:
        tokenizer: a `tokenizers.Tokenizer` whose ids 0–3 are `SPECIALS`.
    """

    level = LEVEL

    def __init__(self, tokenizer):
        found = tuple(tokenizer.id_to_token(i) for i in range(len(SPECIALS)))
        if found != SPECIALS:
            raise ConfigError(f"a subword vocabulary starts with {SPECIALS}, got {found}.")
        self.tokenizer = tokenizer
        self.tokens = tuple(tokenizer.id_to_token(i) for i in range(tokenizer.get_vocab_size()))

    @classmethod
    def build(cls, texts: Iterable[str], *, vocab_size: int | None = None, min_count: int = 1) -> SubwordVocab:
        """BPE fitted on `texts` (the training split): `vocab_size` tokens at most (specials included;
        default DEFAULT_SIZE), merging only pairs seen at least `min_count` times."""
        tk = _tokenizers()
        size = DEFAULT_SIZE if vocab_size is None else vocab_size
        if isinstance(size, bool) or not isinstance(size, int) or size <= len(SPECIALS):
            raise ConfigError(f"vocab_size of a subword vocabulary must be an int > {len(SPECIALS)} (the specials), "
                              f"got {size!r}.")
        texts = [t for t in texts if t.strip()]
        if not texts:
            raise DataError("cannot fit a subword vocabulary on empty text: the training split has no tokens.")
        tokenizer = tk.Tokenizer(tk.models.BPE(unk_token=SPECIALS[1]))
        tokenizer.normalizer = tk.normalizers.NFC()
        tokenizer.pre_tokenizer = tk.pre_tokenizers.Metaspace()
        tokenizer.decoder = tk.decoders.Metaspace()
        trainer = tk.trainers.BpeTrainer(vocab_size=size, min_frequency=min_count, special_tokens=list(SPECIALS),
                                         show_progress=False)
        tokenizer.train_from_iterator(texts, trainer)
        return cls(tokenizer)

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, text: str, *, bos: bool = False, eos: bool = False) -> list[int]:
        """Token ids of `text`; characters unseen in training become `<unk>`."""
        ids = self.tokenizer.encode(text, add_special_tokens=False).ids
        return ([BOS] if bos else []) + ids + ([EOS] if eos else [])

    def decode(self, ids: Iterable[int], *, stop_at_eos: bool = True) -> str:
        """The detokenised text of `ids`, skipping `<pad>` and `<bos>` and (by default) stopping at `<eos>`."""
        kept = []
        for i in ids:
            i = int(i)
            if i == EOS and stop_at_eos:
                break
            if i not in (PAD, BOS, EOS):
                kept.append(i if 0 <= i < len(self.tokens) else 1)
        return self.tokenizer.decode(kept, skip_special_tokens=False)

    def to_json(self) -> dict[str, Any]:
        return {"level": LEVEL, "model": "bpe", "size": len(self), "tokenizer": json.loads(self.tokenizer.to_str())}

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> SubwordVocab:
        return cls(_tokenizers().Tokenizer.from_str(json.dumps(record["tokenizer"])))

    def __repr__(self) -> str:
        return f"SubwordVocab(level='subword', size={len(self)})"
