"""UCR/UEA archive datasets bundled in the `aeon` wheel, and your own `.ts` files, as "series" datasets.

Every classification problem whose `<Name>_TRAIN.ts` and `<Name>_TEST.ts` sit in a folder of aeon's
`datasets/data` is registered as `ucr/<name>` (lower case; lookups are case-insensitive): with aeon 1.6
that is ACSF1, ArrowHead, BasicMotions, Covid3Month_disc, GunPoint, ItalyPowerDemand, JapaneseVowels
(+ its equal-length `_eq` version), OSULeaf, PickupGestureWiimoteZ (+ `_eq`) and UnitTest. The folder
is found with `importlib.util.find_spec("aeon")`, which does not import aeon; the files are read by
gridseq's own reader (`gridseq.data.readers.ts_format`). Regression and timestamped files are skipped.
Nothing is ever downloaded: a name that is not bundled is a DataError listing the ones that are.

Splits: the archive's own train/test split; the test split is fixed, the validation split (10% of
train, stratified by class) is carved from train with `seed`.

Labels: class names are the header's `@classLabel` labels, ordered numerically when they are all
numbers ("2" before "10") and alphabetically otherwise (BasicMotions: Badminton, Running, Standing,
Walking); class i is the i-th name.

Normalisation (`normalize=`): "auto" (default) is "series" for univariate and "channel" for
multivariate data; "series" z-normalises every series, channel by channel, on its own valid steps,
as in the UCR archive papers; "channel" uses per-channel mean/std of the training split (the levels
of a multivariate series' channels often carry the class: JapaneseVowels' validation accuracy with a
GRU drops from 0.93 to 0.82 under "series"); "none" keeps raw values. The resolved choice is recorded
in `info.preprocessing` and applied again by `gridseq.datasets.prepare_inputs` at prediction time.

    >>> import gridseq.datasets as gd                          # doctest: +SKIP
    >>> ds = gd.load("ucr/GunPoint", seed=0)                   # doctest: +SKIP
    >>> tuple(ds.train.x.shape), len(ds.val), len(ds.test)     # doctest: +SKIP
    ((45, 150, 1), 5, 150)
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import logging
from pathlib import Path

import numpy as np

from gridseq.data.assemble import RawSplit, divide, series_dataset
from gridseq.data.builtin import register_dataset, register_hint
from gridseq.data.contract import Dataset
from gridseq.data.partition import VAL_FRACTION, encode_labels, split_sizes
from gridseq.data.readers.ts_format import TsData, count_cases, read_header, read_ts
from gridseq.errors import DataError

_logger = logging.getLogger(__name__)

PREFIX = "ucr/"
INSTALL_HINT = "The UCR/UEA datasets come from the files bundled in the aeon wheel: pip install 'gridseq[ucr]'."


def archive_folder() -> Path | None:
    """aeon's bundled data folder (`<aeon>/datasets/data`), found without importing aeon, or None."""
    try:
        spec = importlib.util.find_spec("aeon")
    except (ImportError, ValueError):
        return None
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).parent / "datasets" / "data"
    return folder if folder.is_dir() else None


def discover(folder: Path) -> dict[str, tuple[Path, Path]]:
    """{lower-case name: (train file, test file)} for every classification pair `<Name>_TRAIN.ts`/`_TEST.ts`."""
    found = {}
    for train in sorted(folder.glob("*/*_TRAIN.ts")):
        test = train.with_name(train.name[: -len("_TRAIN.ts")] + "_TEST.ts")
        if not test.is_file():
            continue
        try:
            header = read_header(train)
        except DataError as e:
            _logger.debug("skipping %s: %s", train, e)
            continue
        if header.classification and not header.timestamps and not header.regression:
            found[train.name[: -len("_TRAIN.ts")].lower()] = (train, test)
    return found


@functools.lru_cache(maxsize=32)
def _read(path: Path, missing: str) -> TsData:
    data = read_ts(path, missing=missing)
    data.x.setflags(write=False)  # cached: shared by every load
    return data


def ts_dataset(name: str, train: TsData, test: TsData | None, seed: int, *, normalize: str, source: str,
               **extra) -> Dataset:
    """A "series" Dataset from parsed `.ts` cases: `test` is the fixed test split (None: a stratified
    20% of `train` drawn with a constant seed); val is 10% of train, stratified, drawn with `seed`."""
    for part, what in ((train, "training"), (test, "test")):
        if part is not None and part.labels is None:
            raise DataError(f"{name}: the {what} file has no labels (@classLabel false); training needs "
                            f"'@classLabel true <labels>' and a label after each case.")
    declared = train.class_labels or tuple(train.labels)
    if test is not None and test.class_labels:
        declared = tuple(dict.fromkeys(declared + test.class_labels))
    _, classes = encode_labels(list(declared))
    features = {"train": train.x.shape[2], **({"test": test.x.shape[2]} if test is not None else {})}
    if len(set(features.values())) > 1:
        raise DataError(f"{name}: the train and test files need the same number of dimensions, got {features}.")
    splits = {"train": train, **({"test": test} if test is not None else {})}
    variable = any(s.lengths is not None for s in splits.values()) or len({s.x.shape[1] for s in splits.values()}) > 1
    raw = {}
    for split, data in splits.items():
        lengths = data.lengths
        if variable and lengths is None:
            lengths = np.full(len(data.x), data.x.shape[1], dtype=np.int64)
        raw[split] = RawSplit(data.x, encode_labels(data.labels, classes)[0], lengths)
    parts = divide(raw["train"], seed, test=raw.get("test"))
    return series_dataset(name, parts, classes, source=source, normalize=normalize, **extra)


def _archive_loader(key: str, train_path: Path, test_path: Path):
    def load(seed: int, view: str, *, normalize: str = "auto", missing: str = "interpolate") -> Dataset:
        return ts_dataset(PREFIX + key, _read(train_path, missing), _read(test_path, missing), seed,
                          normalize=normalize, source="ucr", ts={"missing": missing})

    load.__qualname__ = f"ucr_{key}"
    load.__doc__ = f"The UCR/UEA {train_path.parent.name} dataset from {train_path.parent}; see gridseq.data.builtin.ucr."
    return load


def _register_archive() -> None:
    folder = archive_folder()
    if folder is None:
        register_hint(PREFIX, f"aeon is not installed, so no UCR/UEA dataset is available. {INSTALL_HINT}")
        return
    pairs = discover(folder)
    try:
        version = importlib.metadata.version("aeon")
    except importlib.metadata.PackageNotFoundError:
        version = "?"
    for key, (train_path, test_path) in pairs.items():
        header = read_header(train_path)
        n_train, n_test = count_cases(train_path), count_cases(test_path)
        _, n_val, _ = split_sizes(n_train, 0.0, VAL_FRACTION)
        channels = f"{header.dimensions} channel(s)" if header.dimensions else "multivariate"
        length = ("variable length" if header.equal_length is False
                  else f"length {header.series_length}" if header.series_length else "fixed length")
        register_dataset(
            PREFIX + key, kind="series", sizes=(n_train - n_val, n_val, n_test),
            num_classes=len(set(encode_labels(list(header.class_labels))[1])),
            variable_length=header.equal_length is False,
            description=f"UCR/UEA {train_path.name[:-len('_TRAIN.ts')]}: {channels}, {length} (aeon {version})",
        )(_archive_loader(key, train_path, test_path))
    register_hint(PREFIX, f"The UCR/UEA datasets bundled in aeon {version} are: "
                          f"{', '.join(PREFIX + k for k in sorted(pairs))}. gridseq never downloads data: for another "
                          f"archive dataset, get its <Name>_TRAIN.ts and <Name>_TEST.ts files and pass the path of "
                          f"the _TRAIN.ts file (its _TEST.ts is found beside it).")


def load_ts(path: Path | str, seed: int, view: str, *, test_path: str | None = None, normalize: str = "auto",
            missing: str = "interpolate") -> Dataset:
    """Read your own `.ts` file(s) as a "series" dataset.

    Args:
        path: the training file (or the only file).
        seed: seeds the validation split.
        view: "series" (the only view).
        test_path: a `.ts` file with the test cases. Default: a file named like `path` with `_TRAIN.ts`
            replaced by `_TEST.ts` if it exists (the archive's convention), else a stratified 20% of
            `path`'s cases drawn with a constant seed.
        normalize: "auto", "series", "channel" or "none" (see the module docstring). Default: "auto".
        missing: "interpolate" or "error" (see `gridseq.data.readers.ts_format`). Default: "interpolate".
    Raises:
        DataError: a malformed file (file and line named), a missing test file, unlabelled cases.
    """
    path = Path(path)
    if test_path is None and path.name.upper().endswith("_TRAIN.TS"):
        sibling = path.with_name(path.name[: -len("_TRAIN.ts")] + "_TEST" + path.suffix)
        if sibling.is_file():
            _logger.info("using %s as the test split of %s", sibling, path)
            test_path = str(sibling)
    if test_path is not None and not Path(test_path).is_file():
        raise DataError(f"test_path {test_path} does not exist; pass an existing .ts file with the test cases.")
    test = read_ts(test_path, missing=missing) if test_path is not None else None
    return ts_dataset(str(path), read_ts(path, missing=missing), test, seed, normalize=normalize, source="ts",
                      ts={"missing": missing, "test_path": None if test_path is None else str(Path(test_path).resolve())})


_register_archive()
