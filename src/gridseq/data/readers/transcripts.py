"""Transcription data: (image or audio, transcript) pairs → a "transcribe" `Dataset`, for the built-ins and
for your own files; and the same preparation for `predict`.

Every item becomes a sequence x (T, F): an image line is read column by column (T = width, F = the
height it is scaled to, ink high and paper 0), a recording frame by frame (T = 10 ms frames, F = mel
bands, see `gridseq.data.audio`). Transcripts become label ids 1..K-1 over the dataset's alphabet
(id 0 is CTC's blank), padded with 0: y (N, U_max).

Your own data — a CSV with a header `file,transcript` (and optionally `split` = train/val/test), the
files named relative to the CSV's folder, all images (PNG/JPEG/BMP/GIF) or all WAV:

    lines/transcripts.csv        file,transcript
                                 a01.png,hello world
                                 a02.png,grid 42
    gridseq train lines/transcripts.csv --model crnn-ctc     (or: gridseq train lines/ — a folder
                                                               holding transcripts.csv)

The alphabet is every symbol of the training transcripts (or `alphabet=` given); a val/test transcript
with a symbol outside it is a DataError naming the file and the symbol. Without a `split` column the
test split is 20% drawn with a constant seed and val 10% of the rest drawn with `seed`.

Files whose features would take a large share of memory stream (`gridseq.data.stream.should_stream`):
each item's length comes from its header (a WAV's frame count, an image's width and height), so the
splits, the alphabet and the length buckets are known without decoding, and DataLoader workers read
the files and make their features as batches need them. The features are normalised per recording
(audio) or are pixels in [0, 1] (images), so streamed batches equal the in-memory ones exactly.

The preprocessing record (stored in the run's config.json):

    {"source": ..., "layout": "image" | "audio", "view": "sequence", "alphabet": "0123456789",
     "image": {"height": 24, "ink": "auto"},   # images: scale to this height; "auto" inverts light paper
     "audio": {front-end record}}               # audio: gridseq.data.audio.FRONT_END and overrides
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gridseq.data import audio  # noqa: F401 (augment_audio registers the audio policy)
from gridseq.data.contract import Batch, Dataset, DatasetInfo, Split
from gridseq.data.padding import pad_sequences
from gridseq.data.partition import TEST_FRACTION, TEST_SEED, VAL_FRACTION
from gridseq.data.stream import StreamSplit, should_stream
from gridseq.errors import ConfigError, DataError

SPLITS = ("train", "val", "test")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
AUDIO_SUFFIXES = (".wav",)
TRANSCRIPTS = "transcripts.csv"  # the file a folder must hold to be read as transcription data
BLANK_NAME = "<blank>"


# ---- transcripts ----------------------------------------------------------------------------------

def encode_transcripts(texts: Sequence[str], alphabet: str, names: Sequence[str] | None = None) -> torch.Tensor:
    """(N, U_max) int64 label ids (alphabet[i] → i + 1) padded with 0 (the blank).

    Raises:
        DataError: a transcript holds a symbol outside `alphabet` (the message names item and symbol).

    Example:
        >>> encode_transcripts(["10", "7"], "0123456789").tolist()
        [[2, 1], [8, 0]]
    """
    index = {ch: i + 1 for i, ch in enumerate(alphabet)}
    rows = []
    for i, text in enumerate(texts):
        bad = sorted({ch for ch in text if ch not in index})
        if bad:
            who = names[i] if names is not None else f"transcript {i}"
            raise DataError(f"{who}: transcript {text!r} holds {', '.join(map(repr, bad))}, not in the alphabet "
                            f"{alphabet!r} (the training transcripts' symbols); fix the transcript or pass alphabet=... "
                            f"with every symbol.")
        rows.append([index[ch] for ch in text])
    y = torch.zeros((len(rows), max((len(r) for r in rows), default=0) or 1), dtype=torch.int64)
    for i, r in enumerate(rows):
        y[i, : len(r)] = torch.tensor(r, dtype=torch.int64)
    return y


def transcribe_dataset(name: str, parts: dict[str, tuple[list[np.ndarray], list[str]]], alphabet: str,
                       record: dict[str, Any], names: dict[str, list[str]] | None = None) -> Dataset:
    """A "transcribe" Dataset from (T_i, F) float32 items and transcripts per split.

    Args:
        parts: {"train": (items, transcripts), "val": ..., "test": ...}.
        alphabet: the symbols, in label-id order (id i + 1 = alphabet[i]).
        record: the preprocessing record (see the module docstring); "alphabet" is added.
        names: item names per split for error messages (file names), optional.
    """
    record = {**record, "alphabet": alphabet}
    features = int(parts["train"][0][0].shape[1])
    splits = {}
    for split in SPLITS:
        items, texts = parts[split]
        if not items:
            x, lengths = torch.zeros(0, 1, features), torch.zeros(0, dtype=torch.int64)
        else:
            xa, la = pad_sequences(items)
            x, lengths = torch.from_numpy(xa), torch.from_numpy(la)
        y = encode_transcripts(texts, alphabet, names[split] if names else None)
        splits[split] = Split(x, y, lengths, targets=list(texts))
    longest = max(int(s.x.shape[1]) for s in splits.values())
    return Dataset(_info(name, longest, features, alphabet, record), splits["train"], splits["val"], splits["test"])


def _info(name: str, longest: int, features: int, alphabet: str, record: dict[str, Any]) -> DatasetInfo:
    return DatasetInfo(
        name=name, kind="sequence", input_shape=(longest, features), num_classes=len(alphabet) + 1,
        class_names=(BLANK_NAME, *alphabet), variable_length=True, task="transcribe", preprocessing=record,
    )


# ---- images ---------------------------------------------------------------------------------------

def image_columns(image: np.ndarray, height: int, ink: str = "auto") -> np.ndarray:
    """A grayscale line image (H, W) in [0, 1] → (T = W', F = height) float32 columns, ink high.

    The image is scaled to `height` rows keeping its aspect ratio (antialiased bilinear). With
    ink="auto" an image whose border is mostly light (dark ink on paper) is inverted, so ink is
    always high and paper near 0, as in the training images; "light" keeps it as it is, "dark" inverts.
    """
    a = np.asarray(image, dtype=np.float32)
    if a.ndim == 3 and a.shape[0] == 1:
        a = a[0]
    if a.ndim != 2 or min(a.shape) < 1:
        raise DataError(f"expected a grayscale image of shape (H, W), got {a.shape}.")
    if not np.isfinite(a).all():
        raise DataError("the image holds NaN or Inf.")
    border = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])
    if ink == "dark" or (ink == "auto" and np.median(border) > 0.5):
        a = 1.0 - a
    h, w = a.shape
    width = max(1, round(w * height / h))
    if (h, w) != (height, width):
        t = torch.from_numpy(np.ascontiguousarray(a))[None, None]
        a = torch.nn.functional.interpolate(t, size=(height, width), mode="bilinear", align_corners=False,
                                            antialias=True)[0, 0].numpy()
    return np.ascontiguousarray(np.clip(a, 0.0, 1.0).T)  # (W, H): the columns are the time steps


def read_image_columns(path: str | os.PathLike, height: int, ink: str = "auto") -> np.ndarray:
    """An image file → (T, height) columns (see `image_columns`)."""
    from gridseq.data.readers.image_folder import read_image

    return image_columns(read_image(path, channels=1)[0], height, ink)


# ---- any input --------------------------------------------------------------------------------------

def item_features(item, record: dict[str, Any], what: str = "input") -> np.ndarray:
    """One raw input → (T, F) features as the dataset's were made.

    `item` is a file path (an image, or a .wav for audio), or an array: a waveform (S,) at the
    record's sample rate for audio, a grayscale image (H, W) in [0, 1] for images.
    """
    layout = record.get("layout")
    if isinstance(item, (str, os.PathLike)):
        path = Path(item)
        if not path.is_file():
            raise DataError(f"{what} {path} does not exist.")
        suffix = path.suffix.lower()
        if layout == "audio":
            if suffix not in AUDIO_SUFFIXES:
                raise DataError(f"{what} {path}: this model transcribes audio; pass a .wav file.")
            return audio.log_mel(audio.read_wav(path, record["audio"]["sample_rate"]), record["audio"])
        if suffix not in IMAGE_SUFFIXES:
            raise DataError(f"{what} {path}: this model transcribes images; pass a PNG, JPEG, BMP or GIF file.")
        return read_image_columns(path, record["image"]["height"], record["image"].get("ink", "auto"))
    if layout == "audio":  # float64: log_mel checks the samples as sent, before its float32 cast
        return audio.log_mel(np.asarray(item, dtype=np.float64), record["audio"])
    a = np.asarray(item, dtype=np.float32)
    return image_columns(a, record["image"]["height"], record["image"].get("ink", "auto"))


def prepare_transcribe(inputs: Sequence, info: DatasetInfo, *, files: bool = False) -> Batch:
    """Raw inputs → a padded Batch with lengths for the model (see `item_features`).

    Args:
        inputs: arrays (a waveform (S,) or a grayscale image (H, W)), or with `files` also file paths.
        files: accept file paths (the command line); a server leaves it off, so no client can make it
            read files on the server's disk. Default: False.
    """
    record = info.preprocessing or {}
    if not files and any(isinstance(item, (str, os.PathLike)) for item in inputs):
        what = "a waveform array (S,) at the run's sample rate" if record.get("layout") == "audio" else "a grayscale image array (H, W) in [0, 1]"
        raise DataError(f"send each input as {what}; file paths are read by the command line only (gridseq predict RUN file).")
    items = [item_features(item, record, f"input {i}") for i, item in enumerate(inputs)]
    x, lengths = pad_sequences(items)
    return Batch(torch.from_numpy(x), None, torch.from_numpy(lengths))


# ---- your own files -----------------------------------------------------------------------------------

def is_transcript_csv(path: str | os.PathLike) -> bool:
    """Whether `path` is a CSV whose header is `file,transcript` (optionally with `split`)."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            header = next(csv.reader(f), [])
    except (OSError, UnicodeDecodeError):
        return False
    cols = [c.strip().lower() for c in header]
    return cols[:2] == ["file", "transcript"] and set(cols) <= {"file", "transcript", "split"}


def transcript_source(path: str | os.PathLike) -> Path | None:
    """The transcript CSV a path stands for: the CSV itself, or a folder's `transcripts.csv`; else None."""
    path = Path(path)
    if path.is_dir():
        path = path / TRANSCRIPTS
    return path if path.is_file() and path.suffix.lower() == ".csv" and is_transcript_csv(path) else None


def _read_rows(csv_path: Path) -> list[dict[str, str]]:
    with open(csv_path, newline="", encoding="utf-8-sig") as f:
        rows = [{k.strip().lower(): (v or "") for k, v in row.items() if k is not None} for row in csv.DictReader(f)]
    if not rows:
        raise DataError(f"{csv_path} has a header but no rows; add one `file,transcript` line per item.")
    return rows


def _assign_splits(rows: list[dict[str, str]], seed: int, csv_path: Path) -> list[str]:
    if "split" in rows[0]:
        out = [r["split"].strip().lower() or "train" for r in rows]
        bad = sorted(set(out) - set(SPLITS))
        if bad:
            raise DataError(f"{csv_path}: split column values must be train, val or test, got {bad[0]!r}.")
        return out
    n = len(rows)
    if n < 3:
        raise DataError(f"{csv_path} has {n} items; a train/val/test split needs at least 3 (or a split column).")
    out = ["train"] * n
    n_test = max(1, round(TEST_FRACTION * n))
    order = np.random.default_rng(TEST_SEED).permutation(n)
    for i in order[:n_test]:
        out[i] = "test"
    rest = np.sort(order[n_test:])
    for i in np.random.default_rng(seed).permutation(rest)[: max(1, round(VAL_FRACTION * len(rest)))]:
        out[i] = "val"
    return out


def load_transcripts(path: str | os.PathLike, seed: int, view: str, *, alphabet: str | None = None, height: int = 32,
                     ink: str = "auto", sample_rate: int = 16000, n_mels: int = 40, stream: bool | None = None,
                     workers: int | None = None) -> Dataset:
    """Read a transcript CSV (or a folder holding transcripts.csv) and its image or WAV files.

    Args:
        alphabet: the symbols, in label order. Default: every symbol of the training transcripts, sorted.
        height: images are scaled to this many rows (F). Default: 32.
        ink: "auto", "light" (light ink on dark, kept) or "dark" (dark ink on paper, inverted). Default: "auto".
        sample_rate: audio is resampled to this rate (Hz) before the log-mel front end. Default: 16000.
        n_mels: mel bands (F) for audio. Default: 40.
        stream: True reads the files on demand in worker processes (lengths from the headers), False
            makes every item's features now; None (default) streams when the padded float32 features
            would take over 10% of available memory or over 256 MiB.
        workers: decoder processes of streamed data (0: decode in this process). Default: half the cores
            available, 1 to 4.
    Raises:
        DataError: a missing or unreadable file, mixed images and audio, a transcript symbol outside
            `alphabet`, an empty training split.
    """
    csv_path = transcript_source(path)
    if csv_path is None:
        raise DataError(f"{path} is not transcription data: expected a CSV with the header `file,transcript` or a "
                        f"folder holding {TRANSCRIPTS}.")
    if ink not in ("auto", "light", "dark"):
        raise ConfigError(f"ink must be 'auto', 'light' or 'dark', got {ink!r}.")
    rows = _read_rows(csv_path)
    files = [csv_path.parent / r.get("file", "").strip() for r in rows]
    suffixes = {f.suffix.lower() for f in files}
    if suffixes <= set(AUDIO_SUFFIXES):
        record = {"layout": "audio", "audio": audio.front_end_record(sample_rate=int(sample_rate), n_mels=int(n_mels))}
    elif suffixes <= set(IMAGE_SUFFIXES):
        if isinstance(height, bool) or not isinstance(height, int) or height < 8:
            raise ConfigError(f"height must be an int >= 8 (image rows after scaling), got {height!r}.")
        record = {"layout": "image", "image": {"height": height, "ink": ink}}
    else:
        raise DataError(f"{csv_path}: files must be all images ({', '.join(IMAGE_SUFFIXES)}) or all WAV audio, got "
                        f"suffixes {', '.join(sorted(s or '(none)' for s in suffixes))}.")
    record.update(source=str(csv_path), view="sequence", normalize=None)
    which = _assign_splits(rows, seed, csv_path)
    if stream is not False:
        lengths = _index_lengths(rows, files, record, csv_path)
        per_split = [[n for n, w in zip(lengths, which) if w == s] for s in SPLITS]
        padded = sum(len(ns) * max(ns, default=0) for ns in per_split)  # steps of the (N, T_max) in-memory splits
        if should_stream(padded * _features(record) * 4, stream):
            return _streamed(csv_path, rows, files, which, lengths, record, alphabet, workers)
    parts: dict[str, tuple[list, list]] = {s: ([], []) for s in SPLITS}
    names: dict[str, list[str]] = {s: [] for s in SPLITS}
    for row, file, split in zip(rows, files, which):
        if not file.is_file():
            raise DataError(f"{csv_path}: file {file} (row {row.get('file')!r}) does not exist.")
        parts[split][0].append(item_features(file, record, "file"))
        parts[split][1].append(row.get("transcript", ""))
        names[split].append(str(file))
    if not parts["train"][0]:
        raise DataError(f"{csv_path}: the training split is empty.")
    alphabet = _alphabet(alphabet, parts["train"][1])
    return transcribe_dataset(str(csv_path), parts, alphabet, record, names)


def _alphabet(alphabet: str | None, train_texts: list[str]) -> str:
    if alphabet is None:
        alphabet = "".join(sorted(set("".join(train_texts))))
    if not isinstance(alphabet, str) or not alphabet or len(set(alphabet)) != len(alphabet):
        raise ConfigError(f"alphabet must be a non-empty string of distinct symbols, got {alphabet!r}.")
    return alphabet


# ---- streamed -----------------------------------------------------------------------------------------

def _features(record: dict[str, Any]) -> int:
    """F of the items `record` makes: mel bands (audio) or the image height."""
    return int(record["audio"]["n_mels"] if record["layout"] == "audio" else record["image"]["height"])


def item_length(file: Path, record: dict[str, Any]) -> int:
    """T of `item_features(file, record)` from the file's header alone: a WAV's frame count through the
    front end's hop, an image's width scaled to the record's height."""
    if record["layout"] == "audio":
        return audio.wav_frames(file, record["audio"])
    from gridseq.data.readers.image_folder import _open

    with _open(file) as img:
        w, h = img.size
    return max(1, round(w * record["image"]["height"] / h))  # as image_columns scales it


def _index_lengths(rows: list[dict[str, str]], files: list[Path], record: dict[str, Any], csv_path: Path) -> list[int]:
    """Every item's T from its header (no samples or pixels read), checking that the files exist."""
    lengths = []
    for row, file in zip(rows, files):
        if not file.is_file():
            raise DataError(f"{csv_path}: file {file} (row {row.get('file')!r}) does not exist.")
        lengths.append(item_length(file, record))
    return lengths


class TranscriptFiles:
    """Transcription files read on demand: `files[i]` is file i's (T_i, F) features (see `item_features`).

    Args:
        paths: the files.  record: the preprocessing record.  lengths: each file's T from its header;
            a file that decodes to another length changed since it was indexed (a DataError naming it).
    """

    def __init__(self, paths: list[str], record: dict[str, Any], lengths: list[int]):
        self.paths, self.record, self.lengths = paths, record, lengths

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> np.ndarray:
        x = item_features(Path(self.paths[i]), self.record, "file")
        if len(x) != self.lengths[i]:
            raise DataError(f"file {self.paths[i]} decodes to {len(x)} frames but its header gave {self.lengths[i]} "
                            f"when the data was loaded; it changed since (load the data again) or its header is wrong.")
        return x


def _streamed(csv_path: Path, rows: list[dict[str, str]], files: list[Path], which: list[str], lengths: list[int],
              record: dict[str, Any], alphabet: str | None, workers: int | None) -> Dataset:
    """The CSV's items as `StreamSplit`s: the in-memory path's splits, alphabet and labels, no file decoded."""
    parts: dict[str, tuple[list[str], list[str], list[int]]] = {s: ([], [], []) for s in SPLITS}
    for row, file, split, n in zip(rows, files, which, lengths):
        parts[split][0].append(str(file))
        parts[split][1].append(row.get("transcript", ""))
        parts[split][2].append(n)
    if not parts["train"][0]:
        raise DataError(f"{csv_path}: the training split is empty.")
    alphabet = _alphabet(alphabet, parts["train"][1])
    record = {**record, "alphabet": alphabet}
    if record["layout"] == "audio":
        audio.import_reader()
    splits = {}
    for split, (paths, texts, ns) in parts.items():
        y = encode_transcripts(texts, alphabet, paths)
        splits[split] = StreamSplit(TranscriptFiles(paths, record, ns), y, lengths=torch.tensor(ns, dtype=torch.int64),
                                    workers=workers)
        splits[split].targets = list(texts)
    info = _info(str(csv_path), max(lengths), _features(record), alphabet, record)
    return Dataset(info, splits["train"], splits["val"], splits["test"])
