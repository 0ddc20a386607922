"""Cleaning rules for text: what the text built-ins do to their raw strings, redone at predict time.

Every text dataset records the name of its rule in `info.preprocessing["clean"]`, and `clean_text(text,
rule)` applies it, so a new surname, tweet or date typed at `predict` goes through exactly the steps
its training text went through. Every rule puts the text in Unicode NFC (one code point per accented
letter, as the vocabulary expects); all but "none" also collapse runs of whitespace to one space.

- "none": NFC only — language-modelling text keeps its newlines and indentation.
- "squeeze": NFC and whitespace collapsed (user CSV/TSV text).
- "surname": zero-width characters (U+200B–U+200D, U+2060, U+FEFF) removed — Faker's Nepali and
  Sinhala lists spell half-forms with a zero-width joiner (श्रेष्\u200dठ) next to the plain
  conjunct (श्रेष्ठ), the same name twice —; a name wholly in parentheses unwrapped and a trailing
  parenthesised variant dropped; curly apostrophes (’ ‘) made "'"; stray leading/trailing punctuation
  removed (Faker's Tamil list has "அகுல்,"); an all-capitals Latin name title-cased ("CHEN" → "Chen").
- "tweet": HTML entities unescaped ("&amp;" → "&"), curly quotes made straight, "…" made "...",
  dashes "–"/"—" made "-". The sentiment corpus's broken byte sequences are repaired before this
  (see `repair_tweet_bytes`); new text at predict time is already proper Unicode.
- "date": the invisible marks CLDR puts in dates removed on purpose (U+200E/U+200F left-to-right
  and right-to-left marks, U+061C Arabic letter mark) and the no-break spaces U+00A0/U+202F made plain
  spaces: a person typing a date types neither, and a model should not learn that they matter.

    >>> clean_text("  (श्रेष्\u200dठ) ", "surname") == "श्रेष्ठ"
    True
    >>> clean_text("5\u200f/3\u200f/1987", "date"), clean_text("I\u2019m &amp; you", "tweet")
    ('5/3/1987', "I'm & you")
"""

from __future__ import annotations

import html
import re

from gridseq._validation import check_choice
from gridseq.data.vocab import normalize

CLEAN_RULES = ("none", "squeeze", "surname", "tweet", "date")

_SPACE = re.compile(r"\s+")
_ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"))
_QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-",
                         "\u2014": "-", "\u2026": "..."})
_DATE_MARKS = str.maketrans({"\u200e": None, "\u200f": None, "\u061c": None, "\u00a0": " ", "\u202f": " "})
_PARENS = re.compile(r"\s*\([^()]*\)")
_EDGE_PUNCT = ".,;:-'\" "


def squeeze(text: str) -> str:
    """NFC, whitespace runs (newlines and tabs included) → one space, stripped."""
    return _SPACE.sub(" ", normalize(text)).strip()


def clean_text(text: str, rule: str = "none") -> str:
    """`text` cleaned by `rule` (one of CLEAN_RULES; see the module docstring)."""
    check_choice(rule, "clean", CLEAN_RULES)
    if rule == "surname":
        return clean_surname(text)
    if rule == "tweet":
        return squeeze(html.unescape(text).translate(_QUOTES))
    if rule == "date":
        return squeeze(normalize(text).translate(_DATE_MARKS))
    if rule == "squeeze":
        return squeeze(text)
    return normalize(text)


def clean_surname(text: str) -> str:
    """One surname cleaned (see "surname" in the module docstring); may return "" for pure punctuation."""
    text = squeeze(normalize(text).translate(_ZERO_WIDTH).translate(_QUOTES))
    if text.startswith("(") and text.endswith(")") and text.count("(") == 1:
        text = text[1:-1]  # "(पाण्डे)" is the name itself
    text = squeeze(_PARENS.sub("", text))  # "عجرمة (العجارمة)": the parenthesised clan form is a variant
    text = text.strip(_EDGE_PUNCT)
    if text.isupper() and text.isascii() and len(text) > 1:
        text = text.title()  # Faker's romanised Taiwanese names are in capitals: "CHEN" -> "Chen"
    return text


def split_surname_entry(entry: str) -> list[str]:
    """The names in one raw list entry: "X, van" is "van X" (Dutch sort order); "A,B" or "A;B" are two."""
    parts = [p.strip() for p in re.split(r"[,;]", entry) if p.strip()]
    if len(parts) == 2 and parts[1].islower():
        return [f"{parts[1]} {parts[0]}"]  # "Bourgondië, van" -> "van Bourgondië"
    return parts


# The sentiment corpus (several CrowdFlower "Data for Everyone" sets merged) is not valid UTF-8: each
# source set went through its own chain of wrong decodings, some bytes became "_", and the result is
# not reversible by any codec round trip (latin-1/cp1252/mac_roman in either order recover neither
# "’" nor "é"), nor by ftfy, which repairs text decoded once with the wrong codec. So the repair is
# a table of the byte sequences that recur with an unambiguous meaning — read from their contexts
# ("I\x8a\x97\xc8m", "\xe4\xf3\xec@user: ...\xe4\xf3\x9d") — and every other run of non-ASCII bytes
# (with the "_" glued to it), nearly all of them mangled emoji, is replaced by a space.
MOJIBAKE: dict[bytes, str] = {
    # US airline tweets
    b"\x8a\x97\xc8": "'", b"\x8a\x97\x93": '"', b"\x8a\x97\x9d": '"', b"\x8a\x97\x94": " - ",
    b"\x8a\x97_": "...",
    # driverless-car tweets (one level deeper: each sequence is longer)
    b"\xd5\xa2_\x8a\xce\x81\xd0": '"', b"\xd5\xa2_\x8a\xce\xeb\x9d": '"', b"\xd5\xa2_\x8a\xce_\x86\xa2": "'",
    b"\xd5\xa2_\x8a\xce\xeb_": "...", b"\xd5\xa2_\x8a\xce_\xd1\x9d": " - ", b"\xd5\xa2_\x8a\xce_\xd1\xd2": " - ",
    b"_\xd1\xe9": "'", b"_\xd1\x9d": '"', b"_\xd1\xd2": '"',
    # the other sets (Coachella, Deflategate, debates, ...)
    b"\xe4\xf3_": "...", b"\xe4\xf3\xec": '"', b"\xe4\xf3\x9d": '"', b"\xe4\xf3\xbb": "'", b"\xe4\xf3\xd6": "'",
    b"\xe4\xf3\xf1": " - ",
    # currency and accented letters that recur
    b"\x8c\xa3": "\u00a3", b"\xce\xa3": "\u00a3", b"\x92\xa9": "\u00e9",
}
_MOJIBAKE_KEYS = sorted(MOJIBAKE, key=len, reverse=True)  # longest first: sequences share prefixes
_KEY = b"|".join(re.escape(k) for k in _MOJIBAKE_KEYS)
_KNOWN_RUN = re.compile(b"(?:" + _KEY + b")+")
_KNOWN = re.compile(_KEY)
_GARBAGE = re.compile(rb"_?(?:[\x80-\xff]_?)+")  # a run of non-ASCII bytes with the "_" glued to it


def _repair_run(match: re.Match) -> str:
    run = match.group()
    if _KNOWN_RUN.fullmatch(run):  # only known sequences: "I\x8a\x97\xc8m" -> "I'm"
        return "".join(MOJIBAKE[k.group()] for k in _KNOWN.finditer(run))
    return " "  # anything else (a known sequence inside a longer run is part of a mangled emoji)


def repair_tweet_bytes(raw: bytes) -> str:
    """One corpus text (bytes as stored) repaired: runs of non-ASCII bytes made only of known sequences
    become their characters, every other run a space; then the "tweet" rule. A text that happens to
    be valid UTF-8 is repaired the same way: in this corpus that is chance ("Muձoz", "仫" for emoji)."""
    parts, last = [], 0
    for m in _GARBAGE.finditer(raw):
        parts += [raw[last:m.start()].decode("ascii"), _repair_run(m)]
        last = m.end()
    parts.append(raw[last:].decode("ascii"))
    return clean_text("".join(parts), "tweet")
