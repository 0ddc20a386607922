"""Real parallel text: `bible-en-es` (English → Spanish verse pairs, seq2seq) and `bible-en` (English running
text, character language modelling), from two public-domain Bibles that Debian packages as SWORD modules:

- the World English Bible (`engWEB2015eb`, package `sword-text-web`, versification NRSVA), and
- the Reina-Valera 1909 (`spaRV1909eb`, package `sword-text-sparv`, versification KJV),

read from /usr/share/sword (`apt-get install sword-text-web sword-text-sparv`) or a SWORD library folder
given as `path=DIR` (`--data.path DIR`: the folder holding mods.d/ and modules/) with gridseq's zText
reader (gridseq.data.readers.sword). Only the 66 books of the Protestant canon (CANON) are used: the
WEB's deuterocanonical books have no Spanish side, and its Greek Daniel sits in one heading slot.

Alignment by book, chapter and verse number, then every pair that cannot be trusted is dropped:

- *missing*: a verse that is empty or absent on one side (the versifications differ: NRSVA has 3 John
  1:15 and Revelation 12:18, KJV has not; a few verses are empty in one module);
- *misaligned*: where the Spanish module numbers verses as the Hebrew text does (a psalm's title as its
  verse 1, Numbers 13:1 = English 12:16, ...) the same number holds different content. Each pair is scored
  by lexical overlap — the English words mapped to Strong's numbers through the WEB's own word tags
  (`<w lemma="strong:H3290">Jacob</w>`; a word's most frequent number when it has ≥ 60% of its ≥ 3 tags),
  against the Strong's numbers tagged on the Spanish words — minus a length term (0.15 per robust standard
  deviation of log(Spanish/English characters) from its median). A pair is misaligned when pairing either
  verse with one of the three verses before or after the other (across chapter ends) scores more than
  MISALIGNED_MARGIN = 0.5 higher; a chapter with at least a third of its pairs misaligned is dropped whole
  (its numbering is shifted). `alignment_report()` holds the counts, also logged and in the record.

Splits are by chapter, never by verse (neighbouring verses share phrases): 10% of the chapters are test
chapters (drawn with the constant TEST_SEED), 10% of the rest val chapters (drawn with `seed`). `bible-en`
uses the same chapter split as `bible-en-es` (its test chapters are the same chapters), each split's text
being its chapters, one per line, in canonical order.
"""

from __future__ import annotations

import logging
import math
import re
import unicodedata
from collections import Counter, defaultdict
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import numpy as np

from gridseq._validation import check_choice, check_positive_int
from gridseq.data.builtin import register_dataset
from gridseq.data.contract import Dataset
from gridseq.data.partition import TEST_SEED
from gridseq.data.readers.sword import read_module, strongs, tagged_words, verse_text
from gridseq.data.text_assemble import lm_dataset, seq2seq_dataset
from gridseq.data.vocab import LEVELS
from gridseq.errors import DataError

_logger = logging.getLogger(__name__)

SWORD_ROOT = Path("/usr/share/sword")
ENGLISH, SPANISH = "engWEB2015eb", "spaRV1909eb"
PACKAGES = {ENGLISH: "sword-text-web", SPANISH: "sword-text-sparv"}
CANON = (  # OSIS book ids of the 66 books, in canonical order
    "Gen", "Exod", "Lev", "Num", "Deut", "Josh", "Judg", "Ruth", "1Sam", "2Sam", "1Kgs", "2Kgs", "1Chr", "2Chr", "Ezra",
    "Neh", "Esth", "Job", "Ps", "Prov", "Eccl", "Song", "Isa", "Jer", "Lam", "Ezek", "Dan", "Hos", "Joel", "Amos",
    "Obad", "Jonah", "Mic", "Nah", "Hab", "Zeph", "Hag", "Zech", "Mal", "Matt", "Mark", "Luke", "John", "Acts", "Rom",
    "1Cor", "2Cor", "Gal", "Eph", "Phil", "Col", "1Thess", "2Thess", "1Tim", "2Tim", "Titus", "Phlm", "Heb", "Jas",
    "1Pet", "2Pet", "1John", "2John", "3John", "Jude", "Rev",
)
MISALIGNED_MARGIN = 0.5
SHIFTED_CHAPTER_SHARE = 1 / 3
NEIGHBOURS = 3
LENGTH_WEIGHT = 0.15
TEST_FRACTION, VAL_FRACTION = 0.1, 0.1  # of the chapters
SUBWORDS = 2000  # BPE tokens per language of bible-en-es (a few thousand, as small NMT systems use)
_WORD = re.compile(r"\w+")

Key = tuple[str, int]  # (book, chapter)


def howto(root: Path) -> str:
    return (f"install the public-domain Bibles with: apt-get install sword-text-web sword-text-sparv (they go to "
            f"{SWORD_ROOT}), or pass a SWORD library folder holding mods.d/{ENGLISH}.conf and mods.d/{SPANISH}.conf "
            f"as --data.path DIR (path=DIR in Python); looked in {root}")


def _read(root: Path, name: str, dataset: str) -> dict[Key, list[str]]:
    if not (Path(root) / "mods.d").is_dir() or not any(
            p.stem.lower() == name.lower() for p in (Path(root) / "mods.d").glob("*.conf")):
        raise DataError(f"dataset {dataset!r} needs the SWORD module {name} (Debian package {PACKAGES[name]}), "
                        f"which is not here; {howto(root)}.")
    return _canon_verses(str(root), name)


@lru_cache(maxsize=4)
def _canon_verses(root: str, name: str) -> dict[Key, list[str]]:
    """The module's verse markup of the CANON books (read once per process: both built-ins use the English one)."""
    _, verses = read_module(Path(root), name)
    return {key: v for key, v in verses.items() if key[0] in CANON}


class Pair(NamedTuple):
    key: Key
    verse: int  # 1-based
    english: str
    spanish: str


class Alignment(NamedTuple):
    pairs: tuple[Pair, ...]
    report: dict[str, int]


def _lexicon(english: dict[Key, list[str]]) -> dict[str, str]:
    """English word (lower case) → its Strong's number, from the WEB's own word tags (see the module docstring)."""
    tags: Counter = Counter()  # (word, number) -> times
    for verses in english.values():
        for markup in verses:
            tags.update((word, n) for words, n in tagged_words(markup)
                        for word in ((words.lower(),) if words.isalpha() else _WORD.findall(words.lower())))
    counts: dict[str, Counter] = defaultdict(Counter)
    for (word, n), times in tags.items():
        counts[word][n] = times
    lexicon = {}
    for word, numbers in counts.items():
        number, top = numbers.most_common(1)[0]
        if sum(numbers.values()) >= 3 and top >= 0.6 * sum(numbers.values()):
            lexicon[word] = number
    return lexicon


def align(english: dict[Key, list[str]], spanish: dict[Key, list[str]]) -> Alignment:
    """Verse pairs by (book, chapter, verse) with the missing and misaligned ones dropped (module docstring)."""
    lexicon = _lexicon(english)
    keys = [k for k in spanish if k in english]  # canonical (module) order
    en_text = {k: [verse_text(m) for m in english[k]] for k in keys}
    es_text = {k: [verse_text(m) for m in spanish[k]] for k in keys}
    en_lex = {k: [{lexicon[w] for w in _WORD.findall(t.lower()) if w in lexicon} for t in en_text[k]] for k in keys}
    es_lex = {k: [strongs(m) for m in spanish[k]] for k in keys}
    report = Counter(chapters=len(keys), different_verse_counts=sum(len(english[k]) != len(spanish[k]) for k in keys),
                     chapters_only_english=sum(1 for k in english if k not in spanish),
                     chapters_only_spanish=sum(1 for k in spanish if k not in english))
    both = [(k, v) for k in keys for v in range(min(len(en_text[k]), len(es_text[k])))
            if en_text[k][v] and es_text[k][v]]
    report["missing"] = sum(max(len(en_text[k]), len(es_text[k])) for k in keys) - len(both)
    ratios = np.log([len(es_text[k][v]) / len(en_text[k][v]) for k, v in both])
    mid = float(np.median(ratios))
    spread = float(1.4826 * np.median(np.abs(ratios - mid))) or 1.0

    en_log = {k: [math.log(len(t)) if t else None for t in en_text[k]] for k in keys}
    es_log = {k: [math.log(len(t)) if t else None for t in es_text[k]] for k in keys}

    def score(ek: Key, ev: int, sk: Key, sv: int) -> float:
        e, s = en_log[ek][ev], es_log[sk][sv]
        if e is None or s is None:
            return -math.inf
        a, b = en_lex[ek][ev], es_lex[sk][sv]
        overlap = len(a & b) / max(1, len(a | b))
        return overlap - LENGTH_WEIGHT * abs(s - e - mid) / spread

    # each book's verses in order on each side, so neighbours cross chapter ends
    en_seq: dict[str, list[tuple[Key, int]]] = defaultdict(list)
    es_seq: dict[str, list[tuple[Key, int]]] = defaultdict(list)
    for k in keys:
        en_seq[k[0]].extend((k, v) for v in range(len(en_text[k])))
        es_seq[k[0]].extend((k, v) for v in range(len(es_text[k])))
    en_at = {kv: i for seq in en_seq.values() for i, kv in enumerate(seq)}
    es_at = {kv: i for seq in es_seq.values() for i, kv in enumerate(seq)}
    misaligned: set[tuple[Key, int]] = set()
    for k, v in both:
        own = score(k, v, k, v)
        if own + MISALIGNED_MARGIN >= 1.0:
            continue  # no rival can beat it by the margin: a score is at most 1 (full overlap, equal lengths)
        book = k[0]
        i, j = en_at[(k, v)], es_at[(k, v)]
        rivals = [score(k, v, *es_seq[book][jj]) for jj in range(max(0, j - NEIGHBOURS), j + NEIGHBOURS + 1)
                  if jj != j and jj < len(es_seq[book])]
        rivals += [score(*en_seq[book][ii], k, v) for ii in range(max(0, i - NEIGHBOURS), i + NEIGHBOURS + 1)
                   if ii != i and ii < len(en_seq[book])]
        if rivals and max(rivals) > own + MISALIGNED_MARGIN:
            misaligned.add((k, v))
    per_chapter = Counter(k for k, _ in both)
    bad_chapter = Counter(k for k, _ in misaligned)
    shifted = {k for k, n in bad_chapter.items() if n >= SHIFTED_CHAPTER_SHARE * per_chapter[k]}
    kept = [(k, v) for k, v in both if (k, v) not in misaligned and k not in shifted]
    report["misaligned"] = len(misaligned)
    report["shifted_chapters"] = len(shifted)
    report["dropped_in_shifted_chapters"] = sum(1 for k, v in both if k in shifted and (k, v) not in misaligned)
    report["pairs"] = len(kept)
    pairs = tuple(Pair(k, v + 1, en_text[k][v], es_text[k][v]) for k, v in kept)
    return Alignment(pairs, dict(report))


@lru_cache(maxsize=2)
def aligned(root: str) -> Alignment:
    english = _read(Path(root), ENGLISH, "bible-en-es")
    spanish = _read(Path(root), SPANISH, "bible-en-es")
    result = align(english, spanish)
    r = result.report
    _logger.info("bible-en-es: %d verse pairs in %d chapters; dropped %d missing on one side, %d misaligned, %d more in "
                 "%d chapters with shifted numbering", r["pairs"], r["chapters"], r["missing"], r["misaligned"],
                 r["dropped_in_shifted_chapters"], r["shifted_chapters"])
    return result


@lru_cache(maxsize=2)
def english_chapters(root: str) -> tuple[tuple[Key, str], ...]:
    """((book, chapter), the chapter's WEB text: its non-empty verses joined by spaces), in canonical order."""
    english = _read(Path(root), ENGLISH, "bible-en")
    out = []
    for key in sorted(english, key=lambda k: (CANON.index(k[0]), k[1])):
        text = " ".join(t for t in (verse_text(m) for m in english[key]) if t)
        if text:
            out.append((key, unicodedata.normalize("NFC", text)))
    return tuple(out)


def alignment_report(path=None) -> dict[str, int]:
    """The counts of the alignment (pairs kept, verses dropped and why) for the modules at `path`."""
    return dict(aligned(_root(path)).report)


def chapter_split(chapters: list[Key], seed: int) -> dict[str, set[Key]]:
    """Test chapters (a fixed draw), val chapters (drawn with `seed`), the rest train; from the canon's chapter list,
    so bible-en and bible-en-es share their test chapters whatever verses each keeps."""
    ordered = sorted(set(chapters), key=lambda k: (CANON.index(k[0]), k[1]))
    n_test = max(1, round(TEST_FRACTION * len(ordered)))
    test_at = np.random.default_rng(TEST_SEED).permutation(len(ordered))[:n_test]
    test = {ordered[i] for i in test_at}
    rest = [k for k in ordered if k not in test]
    n_val = max(1, round(VAL_FRACTION * len(rest)))
    val = {rest[i] for i in np.random.default_rng(seed).permutation(len(rest))[:n_val]}
    return {"train": set(rest) - val, "val": val, "test": test}


def _root(path) -> str:
    return str(Path(path).expanduser().resolve() if path is not None else SWORD_ROOT)


def _canon_chapters(root: str) -> list[Key]:
    return [k for k, _ in english_chapters(root)]


@register_dataset(
    "bible-en-es", kind="tokens", sizes=(24644, 2942, 3213), num_classes=2000, variable_length=True,
    description="World English Bible -> Reina-Valera 1909 verse pairs, seq2seq, split by chapter (Debian sword-text-*)",
)
def bible_en_es(seed: int, view: str, *, path=None, direction: str = "en-es", level: str = "subword",
                target_level: str = "subword", vocab_size: int = SUBWORDS, min_count: int = 1) -> Dataset:
    """Verse pairs (source ids (N, S) + lengths, target ids (N, U) ending in `<eos>`), split by chapter.

    Args:
        path: a SWORD library folder (mods.d/ + modules/). Default: /usr/share/sword.
        direction: "en-es" (English source, Spanish target) or "es-en". Default: "en-es".
        level, target_level: "subword" (BPE fitted on the training verses of each language, gridseq.data.subword),
            "char" or "word" tokens of the source and target. Default: "subword".
        vocab_size: tokens of each subword vocabulary (specials included); ignored by "char" and "word".
            Default: 2,000.
        min_count: tokens (subwords: merges) seen fewer times in the training pairs are not kept. Default: 1.
    """
    check_choice(direction, "direction", ("en-es", "es-en"))
    check_choice(level, "level", LEVELS)
    check_choice(target_level, "target_level", LEVELS)
    min_count = check_positive_int(min_count, "min_count")
    vocab_size = check_positive_int(vocab_size, "vocab_size", minimum=5)
    root = _root(path)
    result = aligned(root)
    split_of = {k: s for s, keys in chapter_split(_canon_chapters(root), seed).items() for k in keys}
    parts: dict[str, tuple[list[str], list[str]]] = {s: ([], []) for s in ("train", "val", "test")}
    for pair in result.pairs:
        source, target = (pair.english, pair.spanish) if direction == "en-es" else (pair.spanish, pair.english)
        parts[split_of[pair.key]][0].append(unicodedata.normalize("NFC", source))
        parts[split_of[pair.key]][1].append(unicodedata.normalize("NFC", target))
    return seq2seq_dataset("bible-en-es", parts, source="bible-en-es", clean="squeeze", level=level,
                           target_level=target_level, min_count=min_count, direction=direction,
                           max_size=vocab_size if "subword" in (level, target_level) else None,
                           modules=[ENGLISH, SPANISH], alignment=result.report)


@register_dataset(
    "bible-en", kind="tokens", sizes=(24769, 2925, 3313), num_classes=71, variable_length=False,
    description="World English Bible as running text, char-level language modelling, split by chapter",
)
def bible_en(seed: int, view: str, *, path=None, chunk: int = 128) -> Dataset:
    """The WEB's 66 books as next-character chunks x, y (N, chunk); each split is its chapters' text (one line
    per chapter, canonical order), cut into chunks.

    Args:
        path: a SWORD library folder (mods.d/ + modules/). Default: /usr/share/sword.
        chunk: characters per item. Default: 128.
    """
    chunk = check_positive_int(chunk, "chunk", minimum=2)
    root = _root(path)
    chapters = english_chapters(root)
    split_of = {k: s for s, keys in chapter_split([k for k, _ in chapters], seed).items() for k in keys}
    texts = {s: "".join(t + "\n" for k, t in chapters if split_of[k] == s) for s in ("train", "val", "test")}
    n = sum(len(t) for t in texts.values())
    # lm_dataset cuts one text at fractions of its length: cut exactly at the splits' boundaries
    fractions = (len(texts["train"]) / n, len(texts["val"]) / n, len(texts["test"]) / n)
    return lm_dataset("bible-en", texts["train"] + texts["val"] + texts["test"], chunk=chunk, source="bible-en",
                      clean="none", fractions=fractions, modules=[ENGLISH], chapters={s: sum(1 for v in split_of.values()
                      if v == s) for s in texts})
