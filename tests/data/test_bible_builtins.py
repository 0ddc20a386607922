"""The Bible built-ins (bible-en-es, bible-en) and the SWORD zText reader.

The reader and the alignment are tested on small zText modules written here (so they are tested without
the Debian packages), the built-ins on the real modules when sword-text-web and sword-text-sparv are
installed (else those tests skip with the message a user would get): sizes, no chapter in two splits,
missing and misaligned verses dropped, the DataError when the modules are absent.
"""

import unicodedata
import zlib

import numpy as np
import pytest
import torch

import gridseq.datasets as gd
from gridseq.data.builtin import bible
from gridseq.data.readers import sword
from gridseq.errors import DataError


# ------------------------------------------------------------------------------ a zText module, written here
def write_ztext(root, name, books, *, versification="KJV", extra_heading=None):
    """A SWORD library at `root` with one zText module: books = [(osis id, [[verse markup, ...] per chapter])],
    all in the OT; one compressed block per book. `extra_heading` is appended to the last book heading slot."""
    (root / "mods.d").mkdir(parents=True, exist_ok=True)
    (root / "mods.d" / f"{name}.conf").write_text(
        f"[{name}]\nDataPath=./modules/texts/ztext/{name}/\nModDrv=zText\nEncoding=UTF-8\nCompressType=ZIP\n"
        f"BlockType=BOOK\nVersification={versification}\nAbout=a long text\\\n continued=not a key\n")
    folder = root / "modules" / "texts" / "ztext" / name
    folder.mkdir(parents=True, exist_ok=True)
    blocks = [["", '<milestone type="x-importer"/>']]  # block 0: the empty slot 0 and the module heading
    slots = [(0, ""), (0, '<milestone type="x-importer"/>')]
    for b, (book, chapters) in enumerate(books):
        texts = [f'<div osisID="{book}" sID="b{b}" type="book"/>' + (extra_heading if b == len(books) - 1 and extra_heading else "")]
        for c, verses in enumerate(chapters, start=1):
            texts.append(f'<chapter n="{c}" osisID="{book}.{c}" sID="{book}.{c}"/>')
            texts.extend(verses)
        blocks.append(texts)
        slots.extend((b + 1, t) for t in texts)
    index, data, offsets = [], b"", {}
    for i, texts in enumerate(blocks):
        raw, at = b"", {}
        for t in dict.fromkeys(texts):
            at[t] = len(raw)
            raw += t.encode("utf-8")
        offsets[i] = at
        packed = zlib.compress(raw)
        index.append((len(data), len(packed), len(raw)))
        data += packed
    np.array(index, dtype=sword.BLOCK_ENTRY).tofile(folder / "ot.bzs")
    entries = [(blk, offsets[blk][t], len(t.encode("utf-8"))) for blk, t in slots]
    np.array(entries, dtype=sword.SLOT_ENTRY).tofile(folder / "ot.bzv")
    (folder / "ot.bzz").write_bytes(data)
    return root


def tagged(numbers, prefix):
    """A verse whose words carry Strong's numbers, each word three times (the lexicon needs >= 3 tags)."""
    return " ".join(f'<w lemma="strong:H{n:04d}">{prefix}{n}</w>' for n in numbers for _ in range(3)) + "."


def content(c, v):
    return [1000 * c + 10 * v + j for j in range(3)]


def synthetic_pair(root, *, shifted=True):
    """English and Spanish modules of one book, 3 chapters: chapter 1 aligned with Spanish 1:5 empty; chapter 2
    with the Spanish numbering shifted by one verse (aligned when not `shifted`); chapter 3 aligned with an
    English-only verse 9."""
    english = [[tagged(content(c, v), "e") for v in range(1, 9)] for c in (1, 2, 3)]
    english[2].append(tagged(content(3, 9), "e"))
    spanish = [[tagged(content(c, v), "s") for v in range(1, 9)] for c in (1, 2, 3)]
    if shifted:
        spanish[1] = [tagged(content(2, v + 1), "s") for v in range(1, 8)] + [tagged(content(2, 1), "s")]
    spanish[0][4] = ""
    write_ztext(root, bible.ENGLISH, [("Gen", english)], versification="NRSVA")
    write_ztext(root, bible.SPANISH, [("Gen", spanish)])
    return english, spanish


def test_reader_lays_out_chapters_from_milestones(tmp_path):
    verses = [["<w>In</w> the beginning.", 'Second <note placement="foot">a note</note>verse.'],
              ['<title type="x-gen">Heading</title>Third &amp; last. <chapter eID="Gen.2"/> glossary text']]
    write_ztext(tmp_path, "Test", [("Gen", verses), ("Exod", [["x"], ["y", "z"]])])
    module, chapters = sword.read_module(tmp_path, "test")  # conf names are matched case-insensitively
    assert module.conf["Versification"] == "KJV" and "continued" not in module.conf
    assert list(chapters) == [("Gen", 1), ("Gen", 2), ("Exod", 1), ("Exod", 2)]
    assert [len(v) for v in chapters.values()] == [2, 1, 1, 2]  # the book heading slot is no verse
    assert sword.verse_text(chapters[("Gen", 1)][1]) == "Second verse."  # footnote removed
    assert sword.verse_text(chapters[("Gen", 2)][0]) == "Third & last."  # heading and what follows the chapter end
    assert sword.strongs(tagged([430, 7225], "w")) == {"H430", "H7225"}


def test_reader_skips_a_slot_holding_several_chapters(tmp_path):
    # osis2mod puts a book the versification lacks (WEB's Greek Daniel under NRSVA) into one heading slot
    dumped = "".join(f'<chapter n="{c}" osisID="DanGr.{c}" sID="DanGr.{c}"/>text' for c in (1, 2, 3))
    write_ztext(tmp_path, "Dumped", [("Dan", [["a", "b"], ["c"]]), ("Hos", [["d"]])], extra_heading=dumped)
    _, chapters = sword.read_module(tmp_path, "Dumped")
    assert list(chapters) == [("Dan", 1), ("Dan", 2), ("Hos", 1)] and chapters[("Dan", 2)] == ["c"]


def test_reader_rejects_chapters_out_of_order(tmp_path):
    root = write_ztext(tmp_path, "Broken", [("Gen", [["a"], ["b"], ["c"]])])
    bzz = root / "modules/texts/ztext/Broken/ot.bzz"
    index = np.fromfile(root / "modules/texts/ztext/Broken/ot.bzs", dtype=sword.BLOCK_ENTRY)
    start, size, _ = index[1].tolist()
    raw = zlib.decompress(bzz.read_bytes()[start: start + size]).replace(b'osisID="Gen.2"', b'osisID="Gen.5"')
    assert len(raw) == index[1]["inflated"]
    packed = zlib.compress(raw)
    data = bzz.read_bytes()
    bzz.write_bytes(data[:start] + packed)
    index[1] = (start, len(packed), len(raw))
    index.tofile(root / "modules/texts/ztext/Broken/ot.bzs")
    with pytest.raises(DataError, match="chapter Gen 5 follows"):
        sword.read_module(root, "Broken")


def test_align_drops_missing_and_misaligned_verses(tmp_path):
    synthetic_pair(tmp_path)
    english = bible._read(tmp_path, bible.ENGLISH, "test")
    spanish = bible._read(tmp_path, bible.SPANISH, "test")
    result = bible.align(english, spanish)
    kept = {(p.key[1], p.verse) for p in result.pairs}
    assert kept == {(1, v) for v in range(1, 9) if v != 5} | {(3, v) for v in range(1, 9)}
    r = result.report
    assert r["missing"] == 2  # Spanish 1:5 empty, English-only 3:9
    assert r["shifted_chapters"] == 1 and r["misaligned"] + r["dropped_in_shifted_chapters"] == 8
    assert r["different_verse_counts"] == 1 and r["pairs"] == 15
    pair = next(p for p in result.pairs if (p.key, p.verse) == (("Gen", 3), 2))
    assert pair.english.startswith("e3020 ") and pair.spanish.startswith("s3020 ")  # the same content


def test_synthetic_modules_load_through_path(tmp_path):
    synthetic_pair(tmp_path, shifted=False)
    ds = gd.load("bible-en-es", seed=0, path=str(tmp_path))
    assert ds.info.task == "seq2seq" and ds.info.preprocessing["alignment"]["pairs"] == 23
    assert sorted(len(s) for s in (ds.train, ds.val, ds.test)) == [7, 8, 8]  # one chapter each
    assert all(text.startswith("e") for text in ds.test.texts) and all(t.startswith("s") for t in ds.test.targets)
    reverse = gd.load("bible-en-es", seed=0, path=str(tmp_path), direction="es-en")
    assert reverse.test.texts == ds.test.targets
    lm = gd.load("bible-en", seed=0, path=str(tmp_path), chunk=8)
    assert lm.info.task == "lm" and lm.info.preprocessing["chapters"] == {"train": 1, "val": 1, "test": 1}


def test_absent_modules_say_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setattr(bible, "SWORD_ROOT", tmp_path)
    for name in ("bible-en-es", "bible-en"):
        with pytest.raises(DataError) as e:
            gd.load(name)
        message = str(e.value)
        assert "apt-get install sword-text-web sword-text-sparv" in message and "--data.path DIR" in message
        assert bible.ENGLISH in message


# ------------------------------------------------------------------------------------------ the real modules
@pytest.fixture(scope="module")
def real():
    try:
        return bible.aligned(str(bible.SWORD_ROOT))
    except DataError as e:
        if "needs the SWORD module" in str(e):
            pytest.skip(str(e))
        raise


def test_real_alignment_counts(real):
    r = real.report
    assert r["chapters"] == 1189 and r["pairs"] > 30000
    assert r["missing"] > 0 and r["misaligned"] > 0
    # every verse slot of the shared chapters is kept or counted as dropped once
    english = bible._read(bible.SWORD_ROOT, bible.ENGLISH, "test")
    spanish = bible._read(bible.SWORD_ROOT, bible.SPANISH, "test")
    slots = sum(max(len(english[k]), len(spanish[k])) for k in spanish)
    assert r["pairs"] + r["missing"] + r["misaligned"] + r["dropped_in_shifted_chapters"] == slots
    kept = {(p.key, p.verse): p for p in real.pairs}
    assert kept[(("Gen", 1), 1)].spanish.startswith("EN el principio crió Dios")
    assert (("3John", 1), 15) not in kept  # NRSVA has 3 John 1:15, KJV has not
    assert (("Num", 13), 1) not in kept  # Spanish numbering shifted (its 13:1 is the English 12:16)
    assert (("Judg", 14), 19) not in kept and (("Judg", 14), 18) in kept


def test_real_split_by_chapter(real):
    chapters = [k for k, _ in bible.english_chapters(str(bible.SWORD_ROOT))]
    a, b = bible.chapter_split(chapters, 0), bible.chapter_split(chapters, 1)
    assert a["test"] == b["test"] and a["val"] != b["val"]
    for split in (a, b):
        assert not (split["train"] & split["val"]) and not (split["train"] & split["test"]) and not (split["val"] & split["test"])
        assert set.union(*split.values()) == set(chapters)
    ds = gd.load("bible-en-es", seed=0)
    expected = {s: [p for p in real.pairs if p.key in a[s]] for s in a}
    for s, split in ds.splits().items():
        assert len(split) == len(expected[s]) and split.texts == [nfc(p.english) for p in expected[s]]
        assert split.targets == [nfc(p.spanish) for p in expected[s]]
    assert (len(ds.train), len(ds.val), len(ds.test)) == catalog_sizes("bible-en-es")
    assert ds.train.x.dtype == torch.int64 and ds.train.lengths.min() >= 1


def test_real_bible_en_running_text(real):
    lm = gd.load("bible-en", seed=0, chunk=128)
    assert lm.info.task == "lm" and tuple(lm.train.x.shape)[1] == 128
    assert (len(lm.train), len(lm.val), len(lm.test)) == catalog_sizes("bible-en")
    lines = {s: set(str(split.texts).splitlines()) for s, split in lm.splits().items()}
    assert not (lines["train"] & lines["test"]) and not (lines["val"] & lines["test"])  # a chapter per line
    assert lm.info.preprocessing["characters"] > 3_500_000
    assert str(lm.train.texts).startswith("In the beginning, God created the heavens and the earth.")


def nfc(text):
    return unicodedata.normalize("NFC", text)


def catalog_sizes(name):
    return {r["name"]: (r["train"], r["val"], r["test"]) for r in gd.describe()}[name]
