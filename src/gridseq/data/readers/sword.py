"""SWORD Bible modules in the zText format (CrossWire's format; Debian's sword-text-* packages install them).

A module is a `mods.d/<name>.conf` file (key=value lines: DataPath, ModDrv=zText, CompressType, Encoding,
Versification, ...) and, under its DataPath, three files per testament (ot, nt), all little-endian:

    ot.bzs  one 12-byte entry per compressed block: uint32 offset into ot.bzz, uint32 compressed size,
            uint32 size once inflated (CompressType=ZIP: zlib; BZIP2 and XZ are read too)
    ot.bzv  one 10-byte entry per *slot* of the versification: uint32 block number, uint32 offset of the
            slot's text inside the inflated block, uint16 its size in bytes (0: an empty slot)
    ot.bzz  the compressed blocks, back to back

The slots follow the module's versification (KJV, NRSVA, ...): slot 0 is empty, slot 1 the module heading,
then per book one book-heading slot and per chapter one chapter-heading slot followed by one slot per
verse. The texts here are OSIS imported by osis2mod, which writes each chapter's start milestone,
`<chapter osisID="Gen.1" sID="Gen.1"/>`, into that chapter's heading slot — so the layout is read from
the module itself, without a table of chapter lengths per versification: a slot holding exactly one
chapter start is a chapter heading; the slots up to the next heading are its verses 1, 2, ..., less
the next book's heading slot when the next heading is a chapter 1. A slot holding several chapter
starts (osis2mod puts a book that the versification lacks, e.g. WEB's Greek Daniel under NRSVA, into
one heading slot) is not a heading. Chapters must then run 1, 2, 3, ... in every book, or the module is
rejected with a DataError.

`read_module(root, name)` gives {(book, chapter): [verse markup, ...]} in the module's order;
`verse_text(markup)` the plain text of a verse (footnotes and headings removed), `strongs(markup)` the
Strong's numbers of its `<w lemma="strong:H0430">` words.
"""

from __future__ import annotations

import bz2
import html
import lzma
import re
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np

from gridseq.errors import DataError

BLOCK_ENTRY = np.dtype([("offset", "<u4"), ("size", "<u4"), ("inflated", "<u4")])  # .bzs
SLOT_ENTRY = np.dtype([("block", "<u4"), ("offset", "<u4"), ("size", "<u2")])  # .bzv
_INFLATE = {"ZIP": zlib.decompress, "BZIP2": bz2.decompress, "XZ": lzma.decompress}

_CHAPTER_START = re.compile(r'<chapter\b[^>]*?\bosisID="([^".]+)\.(\d+)"[^>]*?\bsID=')
_CHAPTER_END = "<chapter eID"
_NOTE = re.compile(r"<note\b.*?</note>", re.S)  # footnotes and cross-references
_TITLE = re.compile(r"<title\b.*?</title>", re.S)  # section headings
_TAG = re.compile(r"<[^>]*>")
_STRONG = re.compile(r"strong:([HG])0*(\d+)")


class Module(NamedTuple):
    """A module's conf entries (keys as written) and the folder holding its data files."""

    name: str
    conf: dict[str, str]
    folder: Path


def read_conf(path: Path) -> dict[str, str]:
    """The key=value entries of a SWORD .conf (the first value of a repeated key; continuation lines of long
    values such as About= are skipped)."""
    entries: dict[str, str] = {}
    for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() and not line.startswith(("#", " ", "\t")) and key.strip().isidentifier():
            entries.setdefault(key.strip(), value.strip())
    return entries


def find_module(root: Path, name: str) -> Module:
    """The module `name` of the SWORD library at `root` (holding mods.d/ and modules/); DataError if absent."""
    root = Path(root)
    confs = [p for p in (root / "mods.d").glob("*.conf") if p.stem.lower() == name.lower()] if (root / "mods.d").is_dir() else []
    if not confs:
        raise DataError(f"no SWORD module {name!r} in {root} (no mods.d/{name}.conf).")
    conf = read_conf(confs[0])
    if conf.get("ModDrv", "").lower() != "ztext":
        raise DataError(f"SWORD module {name!r} is stored with ModDrv={conf.get('ModDrv')!r}; gridseq reads zText modules only.")
    folder = (root / conf.get("DataPath", "").lstrip("./")).resolve()
    return Module(name, conf, folder)


def read_slots(module: Module, testament: str) -> list[str]:
    """Every slot's text of one testament ("ot" or "nt"), decoded; [] when the module lacks that testament."""
    files = [module.folder / f"{testament}.{ext}" for ext in ("bzs", "bzv", "bzz")]
    if not all(f.is_file() for f in files):
        return []
    kind = module.conf.get("CompressType", "ZIP").upper()
    if kind not in _INFLATE:
        raise DataError(f"SWORD module {module.name!r}: CompressType={kind} is not supported (ZIP, BZIP2, XZ are).")
    blocks_index = np.fromfile(files[0], dtype=BLOCK_ENTRY)
    slots = np.fromfile(files[1], dtype=SLOT_ENTRY)
    data = files[2].read_bytes()
    encoding = "utf-8" if module.conf.get("Encoding", "UTF-8").upper().replace("-", "") == "UTF8" else "latin-1"
    blocks: dict[int, bytes] = {}
    out = []
    for block, offset, size in slots.tolist():
        if size == 0:
            out.append("")
            continue
        if block not in blocks:
            if block >= len(blocks_index):
                raise DataError(f"SWORD module {module.name!r}: {files[1].name} points to block {block}, but "
                                f"{files[0].name} lists {len(blocks_index)} blocks; the module is damaged.")
            start, length, _ = blocks_index[block].tolist()
            try:
                blocks[block] = _INFLATE[kind](data[start: start + length])
            except (zlib.error, OSError, lzma.LZMAError, ValueError) as e:
                raise DataError(f"SWORD module {module.name!r}: block {block} of {files[2].name} does not inflate ({e}).") from e
        out.append(blocks[block][offset: offset + size].decode(encoding, errors="replace"))
    return out


def chapters(slots: list[str], where: str = "module") -> dict[tuple[str, int], list[str]]:
    """{(book, chapter): verse slots} of one testament's slots, laid out from the chapter milestones (see the
    module docstring); DataError when a book's chapters do not run 1, 2, 3, ..."""
    heads = []
    for i, text in enumerate(slots):
        found = _CHAPTER_START.findall(text)
        if len(found) == 1:
            heads.append((i, found[0][0], int(found[0][1])))
    out: dict[tuple[str, int], list[str]] = {}
    for k, (i, book, chapter) in enumerate(heads):
        previous = next(reversed(out)) if out else None  # the last (book, chapter) laid out
        expected = previous[1] + 1 if previous is not None and previous[0] == book else 1
        if chapter != expected or (chapter == 1 and (book, 1) in out):
            raise DataError(f"{where}: chapter {book} {chapter} follows {previous or 'nothing'}; the chapter "
                            f"layout cannot be read from this module's milestones.")
        end = heads[k + 1][0] if k + 1 < len(heads) else len(slots)
        if k + 1 < len(heads) and heads[k + 1][2] == 1:
            end -= 1  # the next book's heading slot
        out[(book, chapter)] = slots[i + 1: end]
    return out


def read_module(root: Path, name: str) -> tuple[Module, dict[tuple[str, int], list[str]]]:
    """The module and its {(book, chapter): [verse markup, ...]} over both testaments, in the module's order."""
    module = find_module(root, name)
    verses: dict[tuple[str, int], list[str]] = {}
    for testament in ("ot", "nt"):
        verses.update(chapters(read_slots(module, testament), f"SWORD module {name!r} ({testament})"))
    if not verses:
        raise DataError(f"SWORD module {name!r} in {module.folder}: no chapters found (no ot/nt .bzs/.bzv/.bzz files).")
    return module, verses


def _own_part(markup: str) -> str:
    # what follows a chapter's end milestone belongs to no verse (WEB appends its glossary to Revelation 22:21)
    return markup.split(_CHAPTER_END, 1)[0]


def verse_text(markup: str) -> str:
    """A verse's plain text: footnotes (<note>) and headings (<title>) removed, tags stripped, entities
    decoded, whitespace runs made one space."""
    text = _TAG.sub("", _TITLE.sub(" ", _NOTE.sub(" ", _own_part(markup))))
    return " ".join(html.unescape(text).split())


def strongs(markup: str) -> set[str]:
    """The Strong's numbers ("H430", "G2424") tagged on the words of a verse (footnotes excluded)."""
    return {a + b for a, b in _STRONG.findall(_NOTE.sub(" ", _own_part(markup)))}


_WORD_TAG = re.compile(r'<w\b[^>]*?\blemma="strong:([HG])0*(\d+)[^"]*"[^>]*>([^<]*)</w>')


def tagged_words(markup: str) -> list[tuple[str, str]]:
    """(word text, its first Strong's number) for each `<w lemma="strong:...">` word of a verse whose text holds no
    further markup (footnotes excluded): one regular-expression pass per verse."""
    return [(words, a + b) for a, b, words in _WORD_TAG.findall(_NOTE.sub(" ", _own_part(markup)))]
