"""Videos: reading clips (`.npy` arrays or folders of frames), the video preprocessing record, user folders.

A clip is either
    clip.npy       one array (T, H, W) (grayscale) or (T, H, W, C) with C in 1, 3, 4 — uint8 pixels
                   (read as value / 255) or floats already in [0, 1]
    clip/          a folder of frame images (png, jpg, bmp, gif, tif), taken in natural name order
                   (frame2.png before frame10.png)
and becomes float32 (T, C, H, W) in [0, 1]. A dataset of videos is a folder with one sub-folder per
class, each holding clips:

    videos/waving/clip1.npy   videos/waving/clip2/0001.png ...   videos/walking/clip7.npy

Clips may have different frame counts (then the splits carry `lengths`) but share one frame size and
channel count. A folder whose padded float32 clips would take a large share of memory streams
(`gridseq.data.stream.should_stream`): a one-time index reads only each clip's shape (an .npy file's
header, a frame folder's file count and first frame's header), DataLoader workers read the clips as
batches need them (.npy files through a memory map, copying only the clip itself), and the
normalisation statistics come from up to 512 training clips. The record stored with a model
(`DatasetInfo.preprocessing`) is

    {"source": ..., "layout": "video", "view": "video",
     "normalize": {"mean": [per channel], "std": [per channel]},   # training frames' statistics
     "video": {"size": [H, W], "channels": C, "frames": T or None}}

and `prepare_clip` applies it to a new clip at predict time.
"""

from __future__ import annotations

import re
import tokenize
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from gridseq.data.assemble import RawSplit, divide
from gridseq.data.contract import Batch, Dataset, DatasetInfo, Split
from gridseq.data.padding import pad_sequences
from gridseq.data.partition import encode_labels, train_val_test
from gridseq.data.stream import STATS_SAMPLE, StreamSplit, sample_for_stats, should_stream
from gridseq.errors import DataError

# what np.load raises for a damaged .npy: a bad header (its Python literal), a short or unreadable file, a file
# starting like a zip (np.load takes it for an .npz)
NPY_ERRORS = (ValueError, OSError, EOFError, SyntaxError, tokenize.TokenError, zipfile.BadZipFile)

FRAME_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff")
_GRAY_MODES = ("L", "1", "I;16", "I", "F")  # frame modes read as 1 channel when channels=None
STATS_BYTES = 256 << 20  # a streamed folder's statistics sample holds at most this many bytes of clips


def _natural_key(path: Path) -> list:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def is_clip(path: Path) -> bool:
    """Whether `path` is a clip: an .npy file or a folder holding frame images."""
    if path.is_file():
        return path.suffix.lower() == ".npy"
    return path.is_dir() and any(p.suffix.lower() in FRAME_SUFFIXES for p in path.iterdir())


def is_video_folder(path: Path | str) -> bool:
    """Whether `path` is a folder of class sub-folders holding clips (not an image folder)."""
    path = Path(path)
    if not path.is_dir():
        return False
    sub = {p.name for p in path.iterdir() if p.is_dir()}
    if "train" in sub and sub <= {"train", "val", "test"}:
        return False  # an image folder with its own splits: train/<class>/<image>
    for class_dir in (p for p in path.iterdir() if p.is_dir()):
        for item in class_dir.iterdir():
            return is_clip(item)  # the first entry decides: images directly inside mean an image folder
    return False


def read_clip(path: Path | str, *, channels: int | None = None, mmap: bool = False) -> np.ndarray:
    """One clip as float32 (T, C, H, W) in [0, 1].

    Args:
        path: an .npy file (T, H, W) or (T, H, W, C), or a folder of frame images.
        channels: 1 (grayscale) or 3 (RGB) to convert frame images to; None keeps the first frame's
            (grayscale stays 1, anything else becomes 3). Ignored for .npy files. Default: None.
        mmap: open an .npy file as a memory map, so only the clip's converted copy is allocated.
            Default: False.

    Raises:
        DataError: not a clip, an unreadable file, a wrong number of dimensions, frames of different
            sizes, values out of range.

    Example:
        >>> import tempfile, os
        >>> f = os.path.join(tempfile.mkdtemp(), "clip.npy")
        >>> np.save(f, np.zeros((5, 12, 12), dtype=np.uint8))
        >>> read_clip(f).shape
        (5, 1, 12, 12)
    """
    path = Path(path)
    if path.is_dir():
        return _read_frames(path, channels)
    if path.suffix.lower() != ".npy" or not path.is_file():
        raise DataError(f"cannot read {path} as a video: expected a .npy array (T, H, W[, C]) or a folder of frame images.")
    try:
        a = np.load(path, allow_pickle=False, mmap_mode="r" if mmap else None)
    except NPY_ERRORS as e:
        raise DataError(f"cannot read {path} as a .npy array: {e}.") from e
    if not isinstance(a, np.ndarray):  # an .npz archive under a .npy name
        raise DataError(f"{path} is an .npz archive, not a .npy array; save each clip with np.save(path, clip).")
    return clip_from_array(a, str(path))


def clip_layout(shape: tuple[int, ...], dtype: np.dtype, source: str = "clip") -> tuple[int, tuple[int, int, int]]:
    """(T, (C, H, W)) of the clip an array of `shape` and `dtype` makes (alpha dropped), or the DataError
    `clip_from_array` raises for it — from an .npy header, before any pixel is read."""
    if dtype.kind not in "biuf":
        raise DataError(f"{source}: a video must hold numbers, got dtype {dtype}.")
    if len(shape) == 3:
        shape = (*shape, 1)  # (T, H, W) -> (T, H, W, 1): grayscale
    if len(shape) != 4 or shape[-1] not in (1, 3, 4):
        raise DataError(
            f"{source}: expected a video of shape (T, H, W) or (T, H, W, C) with C in 1, 3, 4 (frames, height, "
            f"width, channels last), got {tuple(shape)}; for (T, C, H, W) arrays save a.transpose(0, 2, 3, 1)."
        )
    t, h, w, c = map(int, shape)
    return t, (min(c, 3), h, w)


def clip_from_array(a: np.ndarray, source: str = "clip") -> np.ndarray:
    """An array (T, H, W) or (T, H, W, C) — uint8 0..255, bool, or floats in [0, 1] — as float32 (T, C, H, W)."""
    a = np.asarray(a)
    clip_layout(a.shape, a.dtype, source)
    if a.ndim == 3:
        a = a[..., None]  # (T, H, W) -> (T, H, W, 1): grayscale
    if a.shape[-1] == 4:
        a = a[..., :3]  # drop alpha
    if a.dtype.kind in "iu":
        if a.min() < 0 or a.max() > 255:
            raise DataError(f"{source}: integer pixels must lie in 0..255, got {a.min()}..{a.max()}.")
        a = a.astype(np.float32) / 255.0
    a = a.astype(np.float32)
    if not np.isfinite(a).all():
        raise DataError(f"{source}: the video holds NaN or Inf values.")
    if a.min() < 0 or a.max() > 1:
        raise DataError(f"{source}: float pixels must lie in [0, 1], got {a.min():.3g}..{a.max():.3g}; "
                        f"divide by the maximum (e.g. 255) first.")
    return np.ascontiguousarray(a.transpose(0, 3, 1, 2))  # (T, C, H, W)


def _frame_files(folder: Path) -> list[Path]:
    files = sorted((p for p in folder.iterdir() if p.suffix.lower() in FRAME_SUFFIXES), key=_natural_key)
    if not files:
        raise DataError(f"{folder}: no frame images ({', '.join(FRAME_SUFFIXES)}) in the folder.")
    return files


def _read_frames(folder: Path, channels: int | None) -> np.ndarray:
    from PIL import Image

    files = _frame_files(folder)
    frames = []
    for f in files:
        try:
            with Image.open(f) as im:
                if channels is None:
                    channels = 1 if im.mode in _GRAY_MODES else 3
                frames.append(np.asarray(im.convert("L" if channels == 1 else "RGB")))
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
            raise DataError(f"cannot read frame {f}: {e}.") from e
    sizes = {fr.shape[:2] for fr in frames}
    if len(sizes) > 1:
        raise DataError(f"{folder}: frames have different sizes {sorted(sizes)}; resize them to one size.")
    return clip_from_array(np.stack(frames), str(folder))


def video_record(source: str, train_x: np.ndarray, train_lengths: np.ndarray | None, **extra) -> dict[str, Any]:
    """The record for videos, with per-channel statistics of the valid training frames (N, T, C, H, W)."""
    frames = train_x if train_lengths is None else train_x[np.arange(train_x.shape[1])[None] < train_lengths[:, None]]
    values = frames.reshape(-1, *train_x.shape[2:]).transpose(1, 0, 2, 3).reshape(train_x.shape[2], -1)  # (C, ...)
    std = values.std(axis=1, dtype=np.float64)
    std[std < 1e-12] = 1.0
    return {
        "source": source, "layout": "video", "view": "video",
        "normalize": {"mean": values.mean(axis=1, dtype=np.float64).tolist(), "std": std.tolist()},
        "video": {"size": [int(train_x.shape[3]), int(train_x.shape[4])], "channels": int(train_x.shape[2]),
                  "frames": None if train_lengths is not None else int(train_x.shape[1])},
        **extra,
    }


def apply_video(raw: np.ndarray, lengths: np.ndarray | None, record: dict[str, Any]) -> tuple[Tensor, Tensor | None]:
    """Normalise raw clips (N, T, C, H, W) in [0, 1] with the record; padded frames are exactly zero."""
    x = np.array(raw, dtype=np.float32)
    norm = record.get("normalize")
    if norm:
        mean = np.asarray(norm["mean"], dtype=np.float32)[None, None, :, None, None]
        std = np.asarray(norm["std"], dtype=np.float32)[None, None, :, None, None]
        x = (x - mean) / std
    if lengths is not None:
        x[np.arange(x.shape[1])[None] >= np.asarray(lengths)[:, None]] = 0.0
    return torch.from_numpy(np.ascontiguousarray(x)), None if lengths is None else torch.as_tensor(lengths, dtype=torch.int64)


def prepare_clip(clip: np.ndarray | str | Path, record: dict[str, Any]) -> Tensor:
    """A new clip (an .npy path, a frame folder, or an array (T, H, W[, C])) as the model's input (1, T, C, H, W).

    Raises:
        DataError: the clip's frame size or channels differ from the training data's.
    """
    spec = record["video"]
    if isinstance(clip, (str, Path)):
        a = read_clip(clip, channels=spec["channels"])
        source = str(clip)
    else:
        a, source = clip_from_array(clip), "clip"
    c, (h, w) = spec["channels"], spec["size"]
    if a.shape[1] != c and c == 1 and a.shape[1] == 3:
        a = a.mean(axis=1, keepdims=True)  # RGB clip for a grayscale model
    if a.shape[1:] != (c, h, w):
        raise DataError(
            f"{source}: the model takes frames of {c} channel(s) at {h}x{w}, got {a.shape[1]} channel(s) at "
            f"{a.shape[2]}x{a.shape[3]}; resize the frames to {h}x{w}."
        )
    return apply_video(a[None], None, record)[0]


def prepare_clips(inputs: list, record: dict[str, Any]) -> Batch:
    """New clips (paths of .npy files or frame folders, or arrays (T, H, W[, C])) as one `Batch` for the
    model: x (B, T_max, C, H, W) prepared like the training data, lengths (B,) when frame counts differ.

    Raises:
        DataError: an unreadable clip, or frames of another size or channel count than the training data's.
    """
    if not isinstance(inputs, (list, tuple)) or not inputs:
        raise DataError("no clips to prepare: pass at least one .npy file, frame folder or (T, H, W[, C]) array.")
    clips = []
    for i, item in enumerate(inputs):
        if isinstance(item, str) and not Path(item).exists():
            raise DataError(f"input {i}: {item} does not exist; pass a .npy video, a folder of frames or an array.")
        clips.append(prepare_clip(item if isinstance(item, (str, Path)) else np.asarray(item), record)[0])
    lengths = torch.tensor([len(c) for c in clips], dtype=torch.int64)
    x = torch.nn.utils.rnn.pad_sequence(clips, batch_first=True)  # (B, T_max, C, H, W), zero-padded
    return Batch(x, None, None if bool((lengths == x.shape[1]).all()) else lengths)


def video_dataset(name: str, parts: dict[str, RawSplit], class_names, *, source: str, task: str = "classify",
                  **extra) -> Dataset:
    """Splits of raw clips (N, T, C, H, W) in [0, 1] → a "video" Dataset normalised with training statistics."""
    record = video_record(source, parts["train"].x, parts["train"].lengths, **extra)
    splits = {}
    for split_name, part in parts.items():
        x, lengths = apply_video(part.x, part.lengths, record)
        splits[split_name] = Split(x, torch.as_tensor(part.y, dtype=torch.int64), lengths)
    train = parts["train"].x
    longest = max(int(p.x.shape[1]) for p in parts.values())
    info = DatasetInfo(
        name=name, kind="video", input_shape=(longest, *map(int, train.shape[2:])), num_classes=len(class_names),
        class_names=tuple(class_names), variable_length=parts["train"].lengths is not None, task=task,
        preprocessing=record,
    )
    return Dataset(info, splits["train"], splits["val"], splits["test"])


def load_video_folder(path: Path | str, seed: int, view: str, *, channels: int | None = None,
                      stream: bool | None = None, workers: int | None = None) -> Dataset:
    """A folder of class sub-folders of clips (see the module docstring) as a "video" dataset.

    The test split is a stratified 20% drawn with a constant seed, val 10% of the rest with `seed`.

    Args:
        channels: 1 or 3: the channels frame images are read with. Default: each clip's first frame's.
        stream: True reads clips on demand in worker processes, False reads them all now; None (default)
            streams when the padded float32 clips would take over 10% of available memory or over 256 MiB.
        workers: decoder processes of a streamed folder (0: decode in this process). Default: the
            cores available halved, 1 to 4.
    Raises:
        DataError: no clips, clips of different frame sizes or channels.
    """
    root = Path(path)
    names, labels = _list_clips(root)
    if stream is not False:
        frames, (c, h, w) = _index_clips(root, names, channels)
        y, classes = encode_labels(np.asarray(labels))
        index = train_val_test(y, seed)
        padded = sum(len(idx) * int(frames[idx].max(initial=0)) for idx in index.values())  # frames of the splits in memory
        if should_stream(padded * c * h * w * 4, stream):
            return _streamed(root, names, frames, (c, h, w), y, classes, index, channels, workers)
    clips = [read_clip(item, channels=channels) for item in names]
    shapes = {c.shape[1:] for c in clips}
    if len(shapes) > 1:
        first = {s: next(n for n, c in zip(names, clips) if c.shape[1:] == s) for s in shapes}
        _differ(root, first)
    x, lengths = pad_sequences(clips)
    variable = len(set(lengths.tolist())) > 1
    y, classes = encode_labels(np.asarray(labels))
    parts = divide(RawSplit(x, y, lengths if variable else None), seed)
    return video_dataset(str(root), parts, classes, source="video-folder")


def _list_clips(root: Path) -> tuple[list[Path], list[str]]:
    """The clips of every class sub-folder (classes by name, clips in natural name order) and their class names."""
    names, labels = [], []
    for class_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for item in sorted(class_dir.iterdir(), key=_natural_key):
            if is_clip(item):
                names.append(item)
                labels.append(class_dir.name)
    if not names:
        raise DataError(f"{root}: no clips found; expected class sub-folders holding .npy videos or folders of frames.")
    return names, labels


def _differ(root: Path, first: dict[tuple[int, int, int], Path]):
    listed = "; ".join(f"{s} e.g. {n}" for s, n in first.items())
    raise DataError(f"{root}: clips differ in (C, H, W): {listed}; resize them to one frame size.")


def clip_shape(path: Path, channels: int | None = None) -> tuple[int, tuple[int, int, int]]:
    """(T, (C, H, W)) of the clip `read_clip(path, channels=channels)` returns, from headers alone: an .npy
    file's header (its data is memory-mapped, not read), or a frame folder's file count and first frame's header.

    Raises:
        DataError: an unreadable header, or a shape that is not a video.
    """
    if path.is_dir():
        from PIL import Image

        files = _frame_files(path)
        try:
            with Image.open(files[0]) as im:  # opening reads the header only
                c = channels if channels is not None else (1 if im.mode in _GRAY_MODES else 3)
                return len(files), (c, im.size[1], im.size[0])
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
            raise DataError(f"cannot read frame {files[0]}: {e}.") from e
    try:
        a = np.load(path, allow_pickle=False, mmap_mode="r")
    except NPY_ERRORS as e:
        raise DataError(f"cannot read {path} as a .npy array: {e}.") from e
    if not isinstance(a, np.ndarray):  # an .npz archive under a .npy name
        raise DataError(f"{path} is an .npz archive, not a .npy array; save each clip with np.save(path, clip).")
    return clip_layout(a.shape, a.dtype, str(path))


def _index_clips(root: Path, names: list[Path], channels: int | None) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Every clip's frame count (N,) and the (C, H, W) they share, from headers; DataError if they differ."""
    frames, first = np.zeros(len(names), dtype=np.int64), {}
    for i, item in enumerate(names):
        frames[i], chw = clip_shape(item, channels)
        first.setdefault(chw, item)
    if len(first) > 1:
        _differ(root, first)
    return frames, next(iter(first))


class ClipFiles:
    """Clips read on demand: `clips[i]` is clip i as float32 (T_i, C, H, W) in [0, 1] (.npy files memory-mapped).

    Args:
        paths: the clips (.npy files or frame folders).  channels: as `read_clip`'s.
        frames: each clip's T from the index.  chw: the (C, H, W) every clip has. A clip that reads
            otherwise changed since it was indexed (a DataError naming it).
    """

    def __init__(self, paths: list[str], channels: int | None, frames: list[int], chw: tuple[int, int, int]):
        self.paths, self.channels, self.frames, self.chw = paths, channels, frames, chw

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> np.ndarray:
        clip = read_clip(self.paths[i], channels=self.channels, mmap=True)
        if clip.shape != (self.frames[i], *self.chw):
            raise DataError(f"{self.paths[i]}: reads as (T, C, H, W) = {clip.shape} but was indexed as "
                            f"{(self.frames[i], *self.chw)} when the data was loaded; it changed since (load the data again).")
        return clip


class ClipBatch:
    """Decoded clips (T_i, C, H, W) -> the batch's x (B, T_max, C, H, W) normalised by `record`, padded
    frames exactly zero (as `apply_video` prepares the in-memory splits)."""

    def __init__(self, record: dict[str, Any], variable: bool):
        self.record, self.variable = record, variable

    def __call__(self, clips: list[np.ndarray]) -> np.ndarray:
        raw, lengths = pad_sequences(clips)
        return apply_video(raw, lengths if self.variable else None, self.record)[0].numpy()


def _streamed(root: Path, names: list[Path], frames: np.ndarray, chw: tuple[int, int, int], y: np.ndarray, classes,
              index: dict[str, np.ndarray], channels: int | None, workers: int | None) -> Dataset:
    """The folder as `StreamSplit`s: the splits `divide` draws in memory, no clip read but a bounded sample
    of the training split for the normalisation statistics."""
    variable = len(set(frames.tolist())) > 1
    every = ClipFiles([str(p) for p in names], channels, frames.tolist(), chw)
    train = index["train"]
    clip_bytes = int(frames.max()) * int(np.prod(chw)) * 4
    sample = train[sample_for_stats(len(train), max(1, min(STATS_SAMPLE, STATS_BYTES // clip_bytes)))]
    x, lengths = pad_sequences([every[int(i)] for i in sample])
    record = video_record("video-folder", x, lengths if variable else None)
    splits = {}
    for split, idx in index.items():
        source = ClipFiles([every.paths[i] for i in idx], channels, frames[idx].tolist(), chw)
        splits[split] = StreamSplit(source, torch.as_tensor(y[idx], dtype=torch.int64),
                                    lengths=torch.as_tensor(frames[idx]) if variable else None,
                                    collate=ClipBatch(record, variable), workers=workers)
    info = DatasetInfo(
        name=str(root), kind="video", input_shape=(int(frames.max()), *chw), num_classes=len(classes),
        class_names=tuple(classes), variable_length=variable, task="classify", preprocessing=record,
    )
    return Dataset(info, splits["train"], splits["val"], splits["test"])
