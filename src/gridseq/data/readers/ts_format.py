"""gridseq's reader for the `.ts` format of the UCR/UEA time-series archives (and sktime/aeon).

A `.ts` file is a header of `@key value` lines, then `@data`, then one case per line. Lines starting with
`#` or `%` are comments. A case lists its channels ("dimensions") separated by `:`, each a comma-separated series,
then (with `@classLabel true`) its label after a last `:`:

    @problemName Toy
    @timeStamps false
    @univariate false
    @dimensions 2
    @equalLength false
    @classLabel true up down
    @data
    0.1,0.4,0.9:1.0,1.1,1.3:up
    0.9,0.5:0.2,0.1:down

What is supported: univariate and multivariate cases, equal and unequal lengths, labelled
(`@classLabel true <labels>`) and unlabelled (`@classLabel false`, or no `@classLabel` line: e.g. new
series to predict) files. Not supported (a DataError says so): `@timeStamps true` (the `(t, v)` tuple
syntax) and regression files (`@targetLabel true`). Header keys are case-insensitive (the archive
spells `@timeStamps` and `@timestamps`). A header that promises `@equalLength true`, `@seriesLength`,
`@dimensions` or a label list must be kept by every case; a broken promise is an error naming the
file and the line, as is any cell that is not a number.

Missing values are written `?` (or `NaN`), and are handled in one documented way — never silently
zero-filled:

1. Trailing steps where every channel is missing are cut off: the case ends at its last step with any
   value (the archive pads unequal-length series with NaN to the longest; aeon does the same).
2. `missing="interpolate"` (default): every other gap is filled per channel by linear interpolation
   between the nearest values on both sides; a gap at a channel's start or end takes the nearest
   value. `missing="error"`: any gap that is left after step 1 is a DataError naming file, line and
   channel.
3. A case with a channel that has no value at all is always an error.

Labels stay strings here; `gridseq.data.partition.encode_labels` maps them to class indices
(numeric labels sort numerically, others alphabetically).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gridseq._validation import check_choice
from gridseq.data.padding import pad_sequences
from gridseq.errors import DataError

MISSING = ("interpolate", "error")
_MISSING_TOKENS = {"?", "nan", "NaN", "NAN"}
_COMMENTS = ("#", "%")
_FLAGS = ("timestamps", "univariate", "equallength", "missing", "classlabel", "targetlabel")


@dataclass(frozen=True)
class TsData:
    """The cases of one `.ts` file.

    Args:
        name: the @problemName (or the file's stem).
        x: (N, T, F) float32, padded with zeros past each case's length.
        lengths: (N,) int64 lengths, or None when every case has the same length.
        labels: N label strings, or None for an unlabelled file.
        class_labels: the labels the header declares (`@classLabel true ...`), in file order, or None.
        filled: how many missing values were interpolated (after cutting trailing all-missing steps).
    """

    name: str
    x: np.ndarray
    lengths: np.ndarray | None
    labels: list[str] | None
    class_labels: tuple[str, ...] | None
    filled: int = 0


@dataclass(frozen=True)
class TsHeader:
    """The parsed header: what the file promises about its cases; `data_line` is the 1-based line of @data."""

    name: str
    classification: bool
    class_labels: tuple[str, ...] | None
    regression: bool
    timestamps: bool
    dimensions: int | None
    equal_length: bool | None
    series_length: int | None
    data_line: int


def read_header(path: Path | str) -> TsHeader:
    """The header of a `.ts` file, without reading its cases (used to discover archive datasets)."""
    path = Path(path)
    lines = []
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                lines.append(line)
                if line.strip().lower().startswith("@data"):
                    break
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read {path} as a .ts file: {e}.") from e
    return _parse_header(lines, str(path), Path(path).stem)


def count_cases(path: Path | str) -> int:
    """The number of cases (non-empty, non-comment lines after @data), counted without parsing them."""
    seen_data, count = False, 0
    with open(path, "rb") as f:
        for line in f:
            text = line.strip()
            if not text or text.startswith(tuple(c.encode() for c in _COMMENTS)):
                continue
            if seen_data:
                count += 1
            elif text.lower().startswith(b"@data"):
                seen_data = True
    return count


def read_ts(path: Path | str, *, missing: str = "interpolate") -> TsData:
    """Read a `.ts` file (see the module docstring for the format and the handling of missing values).

    Args:
        path: the file.
        missing: "interpolate" or "error", for gaps other than trailing all-missing steps. Default: "interpolate".
    Returns:
        TsData with x (N, T, F), lengths (or None), labels (or None).
    Raises:
        DataError: an unreadable file, a malformed header or case (file and line named), timestamps,
            regression targets, a missing value with missing="error".
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read {path} as a .ts file: {e}.") from e
    return parse_ts(text, source=str(path), missing=missing)


def parse_ts(text: str, *, source: str = "<string>", missing: str = "interpolate") -> TsData:
    """Parse the text of a `.ts` file; `source` names it in error messages. See `read_ts`.

    Example:
        >>> d = parse_ts("@classLabel true a b\\n@data\\n1,2,3:a\\n4,5:b\\n")
        >>> d.x.shape, d.lengths.tolist(), d.labels
        ((2, 3, 1), [3, 2], ['a', 'b'])
    """
    check_choice(missing, "missing", MISSING)
    lines = text.splitlines()
    header = _parse_header(lines, source, Path(source).stem)
    if header.timestamps:
        raise DataError(f"{source}: @timeStamps true is not supported; gridseq reads series of equally spaced "
                        f"values (write each channel as 'v1,v2,...' and set @timeStamps false).")
    if header.regression:
        raise DataError(f"{source}: a regression file (@targetLabel true); gridseq classifies .ts data, "
                        f"which needs @classLabel true and a list of class labels.")
    items, labels, filled = [], [], 0
    for number, line in enumerate(lines[header.data_line:], start=header.data_line + 1):
        line = line.strip()
        if not line or line.startswith(_COMMENTS):
            continue
        item, label, gaps = _parse_case(line, number, source, header, missing)
        if header.equal_length and items and len(item) != len(items[0]):
            raise DataError(f"{source}, line {number}: @equalLength true, but this case has {len(item)} steps and the "
                            f"first has {len(items[0])}; fix the file or set @equalLength false.")
        if header.series_length is not None and header.equal_length and len(item) != header.series_length:
            raise DataError(f"{source}, line {number}: @seriesLength {header.series_length}, but this case has "
                            f"{len(item)} steps.")
        if items and item.shape[1] != items[0].shape[1]:
            raise DataError(f"{source}, line {number}: {item.shape[1]} dimensions, but the first case has "
                            f"{items[0].shape[1]}; every case needs the same channels.")
        items.append(item)
        labels.append(label)
        filled += gaps
    if not items:
        raise DataError(f"{source}: no cases after @data; a .ts file lists one case per line after the header.")
    x, lengths = pad_sequences(items)
    if len(set(lengths.tolist())) == 1:
        lengths = None  # every case has the same length: fixed-length data
    return TsData(header.name, x, lengths, labels if header.classification else None, header.class_labels, filled)


def _parse_header(lines: list[str], source: str, default_name: str) -> TsHeader:
    values: dict[str, list[str]] = {}
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith(_COMMENTS):
            continue
        if not line.startswith("@"):
            raise DataError(f"{source}, line {number}: expected a header line '@key value' or '@data', got "
                            f"{line[:40]!r}; the cases start after a line '@data'.")
        if not line[1:].split():
            raise DataError(f"{source}, line {number}: a lone '@'; expected a header line '@key value' or '@data'.")
        key, *rest = line[1:].split()
        key = key.lower()
        if key == "data":
            return _header(values, source, default_name, number)
        values[key] = rest
        if key in _FLAGS:
            if not rest or rest[0].lower() not in ("true", "false"):
                raise DataError(f"{source}, line {number}: @{line[1:].split()[0]} must be followed by true or false, "
                                f"got {' '.join(rest) or 'nothing'!r}.")
        if key in ("dimensions", "serieslength"):
            if len(rest) != 1 or not rest[0].isdigit() or int(rest[0]) < 1:
                raise DataError(f"{source}, line {number}: @{line[1:].split()[0]} must be a positive whole number, "
                                f"got {' '.join(rest) or 'nothing'!r}.")
    raise DataError(f"{source}: no '@data' line; a .ts file has a header of '@key value' lines, then '@data', "
                    f"then one case per line.")


def _header(values: dict[str, list[str]], source: str, default_name: str, data_line: int) -> TsHeader:
    def flag(key: str) -> bool | None:
        return values[key][0].lower() == "true" if key in values else None

    classification = bool(flag("classlabel"))
    labels = tuple(values["classlabel"][1:]) if classification else None
    if classification and not labels:
        raise DataError(f"{source}: @classLabel true needs the list of class labels on the same line "
                        f"(e.g. '@classLabel true 1 2 3').")
    if classification and len(set(labels)) != len(labels):
        raise DataError(f"{source}: @classLabel lists a label twice: {' '.join(labels)}.")
    dims = int(values["dimensions"][0]) if "dimensions" in values else (1 if flag("univariate") else None)
    length = int(values["serieslength"][0]) if "serieslength" in values else None
    name = " ".join(values.get("problemname", [])) or default_name
    return TsHeader(name, classification, labels, bool(flag("targetlabel")), bool(flag("timestamps")), dims,
                    flag("equallength"), length, data_line)


def _parse_case(line: str, number: int, source: str, header: TsHeader, missing: str) -> tuple[np.ndarray, str | None, int]:
    """One case as (T, F) float32 (trailing all-missing steps cut, other gaps handled) and its label."""
    fields = line.split(":")
    label = None
    if header.classification:
        if len(fields) < 2:
            raise DataError(f"{source}, line {number}: expected 'values:label' (@classLabel true), found no ':label'.")
        label = fields.pop().strip()
        if label not in header.class_labels:
            raise DataError(f"{source}, line {number}: label {label!r} is not one of the @classLabel labels "
                            f"({' '.join(header.class_labels)}).")
    if header.dimensions is not None and len(fields) != header.dimensions:
        raise DataError(f"{source}, line {number}: {len(fields)} dimension(s) (':'-separated), but the header says "
                        f"{header.dimensions}." + (" Is the label missing or @classLabel wrong?" if not header.classification else ""))
    channels = []
    for c, field in enumerate(fields):
        cells = field.split(",")
        values = np.empty(len(cells), dtype=np.float64)
        for t, cell in enumerate(cells):
            cell = cell.strip()
            if cell in _MISSING_TOKENS:
                values[t] = math.nan
                continue
            try:
                values[t] = float(cell)
            except ValueError:
                hint = " (timestamped '(t,v)' values need @timeStamps support, which gridseq lacks)" if "(" in cell else ""
                raise DataError(f"{source}, line {number}, dimension {c + 1}, step {t + 1}: expected a number or '?', "
                                f"got {cell!r}{hint}.") from None
            if not math.isfinite(values[t]):
                raise DataError(f"{source}, line {number}, dimension {c + 1}, step {t + 1}: {cell!r} is not finite.")
        channels.append(values)
    steps = max(len(v) for v in channels)
    x = np.full((steps, len(channels)), np.nan)
    for c, values in enumerate(channels):
        x[: len(values), c] = values  # a shorter channel is missing at its end
    present = ~np.isnan(x)
    if not present.any(axis=0).all():
        c = int(np.flatnonzero(~present.any(axis=0))[0])
        raise DataError(f"{source}, line {number}: dimension {c + 1} has no values (all missing).")
    x = x[: int(np.flatnonzero(present.any(axis=1))[-1]) + 1]  # cut trailing all-missing steps
    gaps = int(np.isnan(x).sum())
    if gaps and missing == "error":
        t, c = np.argwhere(np.isnan(x))[0]
        raise DataError(f"{source}, line {number}, dimension {c + 1}, step {t + 1}: missing value; pass "
                        f"missing='interpolate' to fill gaps by linear interpolation.")
    if gaps:
        steps_axis = np.arange(len(x))
        for c in range(x.shape[1]):
            bad = np.isnan(x[:, c])
            if bad.any():  # np.interp holds the end values beyond the first/last known step
                x[bad, c] = np.interp(steps_axis[bad], steps_axis[~bad], x[~bad, c])
    return x.astype(np.float32), label, gaps
