"""CSV sequences in two formats (a header row is required in both).

Wide — one row per sequence, one feature per step (F = 1):

    label,length,t0,t1,t2,t3
    up,4,0.1,0.4,0.9,1.3
    down,3,0.9,0.5,0.2,

  Every column except the label (and `length`) is a time step, in file order. Rows of different
  lengths need a `length` column: cells past a row's length are padding and may be empty; without it
  every cell must be a number and an empty or NaN cell is an error (gridseq does not guess whether a
  gap is padding or a missing value).

Long — one row per time step, any number of features; sequences may have different lengths:

    id,time,x,y,label
    a,0,0.1,1.0,up
    a,1,0.4,0.8,up
    b,0,0.9,0.2,down

  Rows are grouped by `id` (sequences keep the order of their first row) and sorted by `time`
  (numerically if every time is a number, else as text, so ISO dates work). Feature columns are all
  columns except id, time and label unless `feature_columns` names them. Each sequence has one label.

The format is "long" when the file has both an id and a time column, else "wide"; pass
csv_format="wide"/"long" to insist. Labels are class names: numbers sort numerically, text
alphabetically.

Streaming (`stream=True`, or automatically when the values would take over 10% of available memory
or 256 MiB as float32, counted from the header and the number of lines): one pass reads the rows one
at a time, checks them as the in-memory reader does, and writes the values as float32 to a
temporary file (removed at exit) that items are memory-mapped from; only labels, lengths and, for
the long format, 24 bytes per row (sequence, time and order) stay in memory. The errors are the
same, though a file with several problems may report another one first.
"""

from __future__ import annotations

import array
import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from gridseq._validation import check_choice
from gridseq.data.contract import Dataset
from gridseq.data.padding import pad_sequences
from gridseq.data.readers.arrays import Flat, FlatWriter, Scratch, StreamedPart, finish_sequences, finish_streamed
from gridseq.data.stream import should_stream
from gridseq.errors import DataError

CSV_FORMATS = ("auto", "wide", "long")


class Table:
    """A CSV file as a header and string rows, remembering each row's line number for error messages."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        try:
            with open(self.path, newline="", encoding="utf-8-sig") as f:
                reader = csv.reader(f)
                records = [(reader.line_num, row) for row in reader if row and any(c.strip() for c in row)]
        except (OSError, UnicodeDecodeError, csv.Error) as e:
            raise DataError(f"cannot read {self.path} as CSV: {e}.") from e
        if not records:
            raise DataError(f"{self.path} is empty; expected a header row and one row per sequence (wide) or step (long).")
        self.header = [c.strip() for c in records[0][1]]
        dup = sorted({c for c in self.header if self.header.count(c) > 1})
        if dup:
            raise DataError(f"{self.path}: duplicate column names {dup}; every column needs its own name.")
        self.lines = [line for line, _ in records[1:]]
        self.rows = []
        for line, row in records[1:]:
            if len(row) > len(self.header):
                raise DataError(f"{self.path}, line {line}: {len(row)} cells but the header has {len(self.header)} columns.")
            self.rows.append([c.strip() for c in row] + [""] * (len(self.header) - len(row)))
        if not self.rows:
            raise DataError(f"{self.path} has a header but no data rows.")

    @classmethod
    def header_only(cls, path: Path | str, header: list[str]) -> Table:
        """A table of `header` and no rows: what `resolve_spec` and the column checks read (streaming)."""
        table = cls.__new__(cls)
        table.path, table.header, table.lines, table.rows = Path(path), header, [], []
        return table

    def column(self, name: str) -> list[str]:
        i = self.header.index(name)
        return [r[i] for r in self.rows]

    def require(self, names: list[str], what: str) -> None:
        missing = [n for n in names if n not in self.header]
        if missing:
            raise DataError(
                f"{self.path}: no {what} column {missing[0]!r}; the columns are {', '.join(map(repr, self.header))}. "
                f"Name the right one (label_column=..., id_column=..., time_column=...)."
            )

    def number(self, row: int, col: int) -> float:
        """The cell as a float; DataError naming line and column if it is not a finite number."""
        return _number(self.path, self.lines[row], self.header[col], self.rows[row][col])


def _number(path: Path, line: int, column: str, cell: str) -> float:
    """`cell` as a float; DataError naming file, line and column if it is not a finite number."""
    try:
        value = float(cell)
    except ValueError:
        value = float("nan")
    if not np.isfinite(value):
        gap = cell == "" or cell.lower() == "nan"
        hint = (" Rows of different lengths (wide format) need a 'length' column; or use the long format."
                if gap else "")
        raise DataError(f"{path}, line {line}, column {column!r}: expected a number, got {cell!r}.{hint}")
    return value


def resolve_spec(table: Table, *, csv_format: str = "auto", label_column: str | None = "label", id_column: str = "id",
                 time_column: str = "time", length_column: str = "length",
                 feature_columns: list[str] | None = None) -> dict[str, Any]:
    """Which format and columns a CSV uses: the `csv` entry of the preprocessing record.

    `label_column=None` reads unlabelled data (for prediction).
    """
    check_choice(csv_format, "csv_format", CSV_FORMATS)
    if csv_format == "auto":
        csv_format = "long" if id_column in table.header and time_column in table.header else "wide"
    if label_column is not None:
        table.require([label_column], "label")
    if csv_format == "wide":
        length = length_column if length_column in table.header else None
        values = [c for c in table.header if c not in (label_column, length)]
        if not values:
            raise DataError(f"{table.path}: no value columns besides {label_column!r}; a wide CSV has one column per time step.")
        return {"format": "wide", "label_column": label_column, "length_column": length, "value_columns": values}
    table.require([id_column, time_column], "id/time")
    features = list(feature_columns) if feature_columns else [
        c for c in table.header if c not in (id_column, time_column, label_column)]
    table.require(features, "feature")
    if not features:
        raise DataError(f"{table.path}: no feature columns besides {id_column!r}, {time_column!r} and {label_column!r}.")
    return {"format": "long", "label_column": label_column, "id_column": id_column, "time_column": time_column,
            "feature_columns": features}


def read_items(table: Table, spec: dict[str, Any], *, labels: bool) -> tuple[np.ndarray, np.ndarray | None, list[str] | None]:
    """Sequences of `table` read per `spec`: (x (N, T, F) float32, lengths or None, labels or None).

    Args:
        labels: read the label column (required at training; at prediction it is read if present).
    """
    want = labels or (spec["label_column"] is not None and spec["label_column"] in table.header)
    if spec["format"] == "wide":
        return _read_wide(table, spec, want)
    return _read_long(table, spec, want)


def _read_wide(table: Table, spec: dict[str, Any], labels: bool):
    table.require(spec["value_columns"], "value")
    cols = [table.header.index(c) for c in spec["value_columns"]]
    t = len(cols)
    x = np.zeros((len(table.rows), t, 1), dtype=np.float32)
    lengths = None
    if spec["length_column"] is not None:
        table.require([spec["length_column"]], "length")
        lc = table.header.index(spec["length_column"])
        lengths = np.array([table.number(r, lc) for r in range(len(table.rows))])
        bad = np.flatnonzero((lengths < 1) | (lengths > t) | (np.mod(lengths, 1) != 0))
        if len(bad):
            r = int(bad[0])
            raise DataError(
                f"{table.path}, line {table.lines[r]}: length {table.rows[r][lc]!r} must be a whole number in "
                f"[1, {t}] (the number of value columns)."
            )
        lengths = lengths.astype(np.int64)
    for r in range(len(table.rows)):
        n = t if lengths is None else int(lengths[r])
        x[r, :n, 0] = [table.number(r, c) for c in cols[:n]]
    return x, lengths, _labels(table, spec) if labels else None


def _read_long(table: Table, spec: dict[str, Any], labels: bool):
    table.require([spec["id_column"], spec["time_column"], *spec["feature_columns"]], "id/time/feature")
    groups: dict[str, list[int]] = {}
    for r, key in enumerate(table.column(spec["id_column"])):
        groups.setdefault(key, []).append(r)
    times = table.column(spec["time_column"])
    numeric = all(_is_number(v) for v in times)
    label_cells = table.column(spec["label_column"]) if labels else None
    fcols = [table.header.index(c) for c in spec["feature_columns"]]
    items, names = [], []
    for key, rows in groups.items():
        rows.sort(key=lambda r: float(times[r]) if numeric else times[r])
        stamps = [times[r] for r in rows]
        if len(set(stamps)) != len(stamps):
            dup = next(s for s in stamps if stamps.count(s) > 1)
            raise DataError(f"{table.path}: sequence {key!r} has two rows at {spec['time_column']} = {dup!r}; one row per step.")
        items.append(np.array([[table.number(r, c) for c in fcols] for r in rows], dtype=np.float32))
        if labels:
            found = {label_cells[r] for r in rows}
            if len(found) != 1:
                raise DataError(f"{table.path}: sequence {key!r} has labels {sorted(found)}; a sequence has one label.")
            names.append(found.pop())
    x, lengths = pad_sequences(items)
    if len(set(lengths.tolist())) == 1:
        lengths = None  # every sequence has the same length: fixed-length data
    if labels:
        _check_labels(table, names)
    return x, lengths, names if labels else None


def _labels(table: Table, spec: dict[str, Any]) -> list[str]:
    names = table.column(spec["label_column"])
    _check_labels(table, names)
    return names


def _check_labels(table: Table, names: list[str]) -> None:
    empty = [i for i, n in enumerate(names) if n == ""]
    if empty:
        raise DataError(f"{table.path}: {len(empty)} item(s) have an empty label (item {empty[0]}, 0-based); label every sequence.")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def load_csv(path: Path | str, seed: int, view: str, *, csv_format: str = "auto", label_column: str = "label",
             id_column: str = "id", time_column: str = "time", length_column: str = "length",
             feature_columns: list[str] | None = None, stream: bool | None = None,
             workers: int | None = None) -> Dataset:
    """Read a wide or long CSV of labelled sequences (see the module docstring) as a "sequence" dataset.

    The test split is a stratified 20% drawn with a constant seed, val 10% of the rest drawn with `seed`;
    features are z-scored with training statistics (of 512 training items when streamed).

    Args:
        stream: True reads the file in one pass to a memory-mapped float32 file and streams items from
            it, False reads it into memory; None (default) streams when the values would take over 10%
            of available memory or 256 MiB as float32.
        workers: loader processes of a streamed file (0: in the training process). Default: half the cores
            available, 1 to 4.
    Raises:
        DataError: no label column (the message lists the columns), a cell that is not a number, rows of
            different lengths without a length column, duplicate time steps, a sequence with two labels.
    """
    columns = dict(csv_format=csv_format, label_column=label_column, id_column=id_column, time_column=time_column,
                   length_column=length_column, feature_columns=feature_columns)
    if stream is not False:
        streamed = _maybe_streamed(path, seed, columns, stream, workers)
        if streamed is not None:
            return streamed
    table = Table(path)
    spec = resolve_spec(table, **columns)
    x, lengths, labels = read_items(table, spec, labels=True)
    return finish_sequences(str(path), {"train": (x, np.asarray(labels), lengths)}, seed, "csv", csv=spec)


# ----------------------------------------------------------------------------------------- streaming
def _records(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(line number, cells) of the non-blank rows, one at a time: the header first, then data rows with
    their cells stripped and padded to the header's width (the checks of `Table`)."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            width = None
            for row in reader:
                if not row or not any(c.strip() for c in row):
                    continue
                if width is None:
                    width = len(row)
                    yield reader.line_num, [c.strip() for c in row]
                    continue
                if len(row) > width:
                    raise DataError(f"{path}, line {reader.line_num}: {len(row)} cells but the header has {width} columns.")
                yield reader.line_num, [c.strip() for c in row] + [""] * (width - len(row))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"cannot read {path} as CSV: {e}.") from e


def _maybe_streamed(path, seed: int, columns: dict, stream: bool | None, workers: int | None) -> Dataset | None:
    """The streamed dataset when `stream` asks for it or the values are large; None for the in-memory reader
    (which also reports what is wrong with a file when `stream` is None)."""
    path = Path(path)
    try:
        records = _records(path)
        header = next(records, (0, None))[1]
        if header is None:
            raise DataError(f"{path} is empty; expected a header row and one row per sequence (wide) or step (long).")
        dup = sorted({c for c in header if header.count(c) > 1})
        if dup:
            raise DataError(f"{path}: duplicate column names {dup}; every column needs its own name.")
        spec = resolve_spec(Table.header_only(path, header), **columns)
        width = len(spec["value_columns"]) if spec["format"] == "wide" else len(spec["feature_columns"])
    except DataError:
        if stream is None:
            return None  # the in-memory reader says what is wrong, exactly as without streaming
        raise
    if not should_stream(4 * width * _count_lines(path), stream):
        return None
    part = (_stream_wide if spec["format"] == "wide" else _stream_long)(path, header, spec, records, Scratch("csv"))
    return finish_streamed(str(path), {"train": part}, seed, "csv", workers, csv=spec)


def _count_lines(path: Path) -> int:
    """Newlines in the file (an upper bound on its rows), counted 4 MiB at a time."""
    count = 0
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            count += block.count(b"\n")
    return count + 1


class FlatRows:
    """Row r of a `Flat` of float32 values as (T_r, F)."""

    def __init__(self, flat: Flat, features: int):
        self.flat, self.features = flat, features

    def __len__(self) -> int:
        return len(self.flat)

    def __getitem__(self, r: int) -> np.ndarray:
        return self.flat[r].reshape(-1, self.features)


class GatheredRows:
    """Sequence g of a long CSV: its steps (rows of `steps`) at order[offsets[g]:offsets[g+1]], in time order."""

    def __init__(self, steps: Flat, order: np.ndarray, offsets: np.ndarray):
        self.steps, self.order, self.offsets = steps, order, offsets

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, g: int) -> np.ndarray:
        return self.steps.values.array[self.order[self.offsets[g]: self.offsets[g + 1]]]  # (T_g, F), a copy


def _stream_wide(path: Path, header: list[str], spec: dict[str, Any], records, scratch: Scratch) -> StreamedPart:
    cols = [header.index(c) for c in spec["value_columns"]]
    t, li = len(cols), header.index(spec["label_column"])
    lc = header.index(spec["length_column"]) if spec["length_column"] is not None else None
    writer = FlatWriter(scratch / "values.f32", np.float32)
    labels, lengths = [], array.array("q")
    for line, cells in records:
        n = t
        if lc is not None:
            value = _number(path, line, header[lc], cells[lc])
            if value < 1 or value > t or value % 1 != 0:
                raise DataError(f"{path}, line {line}: length {cells[lc]!r} must be a whole number in [1, {t}] "
                                f"(the number of value columns).")
            n = int(value)
            lengths.append(n)
        writer.add([_number(path, line, header[c], cells[c]) for c in cols[:n]])
        labels.append(cells[li])
    flat = writer.close(scratch)
    if not labels:
        raise DataError(f"{path} has a header but no data rows.")
    _check_labels(Table.header_only(path, header), labels)
    return StreamedPart(FlatRows(flat, 1), np.asarray(labels), np.frombuffer(lengths, dtype=np.int64) if lc is not None else None,
                        (len(labels), t, 1))


def _stream_long(path: Path, header: list[str], spec: dict[str, Any], records, scratch: Scratch) -> StreamedPart:
    fcols = [header.index(c) for c in spec["feature_columns"]]
    ic, tc, li = header.index(spec["id_column"]), header.index(spec["time_column"]), header.index(spec["label_column"])
    steps = FlatWriter(scratch / "steps.f32", np.float32, (len(fcols),))
    stamps = FlatWriter(scratch / "times.u8", np.uint8)
    ids: dict[str, int] = {}
    label_codes: dict[str, int] = {}
    codes, times, row_labels = array.array("i"), array.array("d"), array.array("i")
    numeric = True
    for line, cells in records:
        codes.append(ids.setdefault(cells[ic], len(ids)))
        stamp = cells[tc]
        stamps.add(np.frombuffer(stamp.encode(), dtype=np.uint8))
        if numeric:
            try:
                times.append(float(stamp))
            except ValueError:
                numeric = False
        steps.add([[_number(path, line, header[c], cells[c]) for c in fcols]])
        row_labels.append(label_codes.setdefault(cells[li], len(label_codes)))
    steps, stamps = steps.close(scratch), stamps.close(scratch)
    if not ids:
        raise DataError(f"{path} has a header but no data rows.")
    codes = np.frombuffer(codes, dtype=np.int32)
    text = (lambda r: bytes(stamps[r]).decode())
    if numeric:
        order = np.lexsort((np.frombuffer(times, dtype=np.float64), codes))  # by sequence, then time; stable
    else:  # ISO dates and other text sort as text
        order = np.array(sorted(range(len(codes)), key=lambda r: (codes[r], text(r))), dtype=np.int64)
    counts = np.bincount(codes, minlength=len(ids))
    offsets = np.concatenate([[0], np.cumsum(counts)])
    names = list(ids)
    labels = np.frombuffer(row_labels, dtype=np.int32)[order]
    label_names = list(label_codes)
    keys = np.frombuffer(times, dtype=np.float64)[order] if numeric else None
    for g in range(len(names)):  # the in-memory reader's checks, in its order: duplicate steps, then labels
        rows = order[offsets[g]: offsets[g + 1]]
        same = (keys[offsets[g] + 1: offsets[g + 1]] == keys[offsets[g]: offsets[g + 1] - 1]) if numeric else None
        if not numeric or same.any():
            stamp_list = [text(r) for r in rows]
            if len(set(stamp_list)) != len(stamp_list):
                dup = next(s for s in stamp_list if stamp_list.count(s) > 1)
                raise DataError(f"{path}: sequence {names[g]!r} has two rows at {spec['time_column']} = {dup!r}; one row per step.")
        found = np.unique(labels[offsets[g]: offsets[g + 1]])
        if len(found) != 1:
            raise DataError(f"{path}: sequence {names[g]!r} has labels {sorted(label_names[c] for c in found)}; a sequence has one label.")
    group_labels = [label_names[labels[offsets[g]]] for g in range(len(names))]
    _check_labels(Table.header_only(path, header), group_labels)
    lengths = None if len(set(counts.tolist())) == 1 else counts.astype(np.int64)
    return StreamedPart(GatheredRows(steps, order, offsets), np.asarray(group_labels), lengths,
                        (len(names), int(counts.max()), len(fcols)))
