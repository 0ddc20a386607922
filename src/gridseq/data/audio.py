"""The audio front end: waveform → log-mel spectrogram (T frames, F mel bands), normalised per utterance.

    waveform (S,) at `sample_rate` ─► torch.stft (Hann window) ─► power ─► mel filterbank ─► log ─► per-band
    mean and global std of *this* utterance ─► (T, n_mels) float32

Every parameter lives in one JSON-able record (`FRONT_END` plus the dataset's overrides), stored in a
run directory's config.json, so `gridseq predict RUN_DIR file.wav` prepares a new recording exactly as
the training audio was prepared without any other input.

The mel filterbank is the HTK formula (mel = 2595 · log10(1 + f / 700), triangular filters with peak 1
spaced evenly on the mel scale), written here in a few lines: librosa would pull numba/llvmlite
(~150 MB) for one matrix, and torchaudio pins torch's exact version. `mel_filterbank` is checked
against hand-computed values in tests/data/test_transcribe_data.py.

WAV files are read with `scipy.io.wavfile` (scipy comes with scikit-learn; `pip install 'gridseq[audio]'`):
8/16/32-bit integer and float PCM, mono or multi-channel (channels are averaged). A file at another
sample rate is **resampled** to the model's rate with `scipy.signal.resample_poly` (polyphase,
anti-aliased), so any rate works; rates below 1 kHz are refused as almost certainly wrong. A recording's
length in frames is known from its header alone (`wav_frames`), so streamed audio is bucketed by length
without decoding it.

    >>> rec = front_end_record(sample_rate=8000, n_mels=40)
    >>> wave = np.sin(2 * np.pi * 697 * np.arange(8000) / 8000).astype(np.float32)
    >>> log_mel(wave, rec).shape  # 1 s at a 10 ms hop
    (101, 40)
"""

from __future__ import annotations

import io
import math
import os
import struct
import wave as _wave
from typing import Any

import numpy as np
import torch

from gridseq.errors import ConfigError, DataError

# defaults of the front end; a dataset may override any of them (all end up in its preprocessing record)
FRONT_END: dict[str, Any] = {
    "sample_rate": 8000,  # Hz
    "n_fft": 256,  # 32 ms at 8 kHz: 31 Hz bins, fine enough to tell DTMF's 697 and 770 Hz apart
    "hop_length": 80,  # 10 ms between frames
    "win_length": 200,  # 25 ms Hann window, the usual speech analysis window
    "n_mels": 40,
    "f_min": 0.0,
    "f_max": None,  # None = sample_rate / 2
    "log_floor": 1e-6,  # log(power + floor): silence stays finite
    "normalize": "utterance",  # per mel band mean 0, whole-utterance std 1; or "none"
}
MIN_SAMPLE_RATE = 1000
MAX_SAMPLE = 1e12  # largest |sample| of a waveform: (1e12 x a window of samples)^2 stays within float32


def front_end_record(**overrides) -> dict[str, Any]:
    """The front-end parameters (`FRONT_END` with `overrides`), checked; ConfigError for unknown keys."""
    unknown = sorted(set(overrides) - set(FRONT_END))
    if unknown:
        raise ConfigError(f"unknown audio front-end setting {unknown[0]!r}; valid settings: {', '.join(FRONT_END)}.")
    rec = {**FRONT_END, **overrides}
    for key in ("sample_rate", "n_fft", "hop_length", "win_length", "n_mels"):
        if isinstance(rec[key], bool) or not isinstance(rec[key], int) or rec[key] < 1:
            raise ConfigError(f"audio setting {key} must be a positive int, got {rec[key]!r}.")
    if rec["win_length"] > rec["n_fft"]:
        raise ConfigError(f"win_length ({rec['win_length']}) must be at most n_fft ({rec['n_fft']}).")
    if rec["f_max"] is None:
        rec["f_max"] = rec["sample_rate"] / 2
    if not 0 <= rec["f_min"] < rec["f_max"] <= rec["sample_rate"] / 2:
        raise ConfigError(f"need 0 <= f_min < f_max <= sample_rate / 2, got f_min={rec['f_min']}, f_max={rec['f_max']}, "
                          f"sample_rate={rec['sample_rate']}.")
    if rec["normalize"] not in ("utterance", "none"):
        raise ConfigError(f"audio setting normalize must be 'utterance' or 'none', got {rec['normalize']!r}.")
    return rec


def hz_to_mel(f):
    """HTK mel scale: 2595 · log10(1 + f / 700); 1000 Hz ≈ 1000 mel."""
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def mel_to_hz(m):
    """Inverse of `hz_to_mel`."""
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, f_min: float = 0.0, f_max: float | None = None) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) triangular filters: filter m rises from centre m-1 to a peak of 1 at
    centre m and falls to 0 at centre m+1, the n_mels + 2 centres evenly spaced in mel (HTK, no area
    normalisation — the log and the per-utterance normalisation make the scale irrelevant).

    Example:
        >>> fb = mel_filterbank(8000, 256, 40)
        >>> fb.shape, float(fb.max()) <= 1.0
        ((40, 129), True)
    """
    f_max = sample_rate / 2 if f_max is None else f_max
    bins = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)  # the STFT's bin frequencies
    centres = mel_to_hz(np.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2))
    lower, peak, upper = centres[:-2, None], centres[1:-1, None], centres[2:, None]
    rising = (bins - lower) / (peak - lower)
    falling = (upper - bins) / (upper - peak)
    return np.clip(np.minimum(rising, falling), 0.0, None).astype(np.float32)


_BANKS: dict[tuple, torch.Tensor] = {}


def _bank(rec: dict[str, Any]) -> torch.Tensor:
    key = (rec["sample_rate"], rec["n_fft"], rec["n_mels"], rec["f_min"], rec["f_max"])
    if key not in _BANKS:
        _BANKS[key] = torch.from_numpy(mel_filterbank(*key))
    return _BANKS[key]


def num_frames(samples: int, rec: dict[str, Any]) -> int:
    """Frames `log_mel` makes from `samples` samples (torch.stft with center=True: 1 + S // hop; a
    waveform of at most n_fft / 2 samples is first zero-padded to n_fft / 2 + 1)."""
    padded = rec["n_fft"] // 2 + 1 if samples <= rec["n_fft"] // 2 else samples
    return 1 + padded // rec["hop_length"]


def log_mel(waveform, rec: dict[str, Any]) -> np.ndarray:
    """(T, n_mels) float32 log-mel features of a mono waveform at `rec["sample_rate"]`.

    Args:
        waveform: (S,) samples, any scale (the per-utterance normalisation removes the level).
        rec: the front-end record (`front_end_record`).
    Raises:
        DataError: an empty or non-finite waveform, or one with samples beyond ±`MAX_SAMPLE`.
    """
    raw = np.asarray(waveform, dtype=np.float64)
    if raw.size and np.isfinite(raw).all() and np.abs(raw).max() > MAX_SAMPLE:
        raise DataError(f"the waveform holds a sample of {np.abs(raw).max():.3g}; samples must lie within "
                        f"±{MAX_SAMPLE:.0e} (WAV audio is in [-1, 1]; beyond that the spectrum overflows float32).")
    x = torch.as_tensor(raw.astype(np.float32))
    if x.dim() != 1 or x.numel() == 0:
        raise DataError(f"expected a mono waveform of shape (S,) with S >= 1 samples, got shape {tuple(x.shape)}.")
    if not bool(torch.isfinite(x).all()):
        raise DataError("the waveform holds NaN or Inf samples.")
    window = torch.hann_window(rec["win_length"])
    if x.numel() <= rec["n_fft"] // 2:  # reflect padding needs more samples than half a window
        x = torch.nn.functional.pad(x, (0, rec["n_fft"] // 2 + 1 - x.numel()))
    spec = torch.stft(x, rec["n_fft"], rec["hop_length"], rec["win_length"], window, center=True,
                      return_complex=True)  # (n_fft // 2 + 1, T)
    power = spec.abs().square()
    mel = _bank(rec) @ power  # (n_mels, T)
    feats = torch.log(mel + rec["log_floor"]).T  # (T, n_mels)
    if rec["normalize"] == "utterance":
        feats = feats - feats.mean(0, keepdim=True)
        feats = feats / (feats.std() + 1e-5)  # one std for the whole utterance: keeps the contrast between bands
    return feats.contiguous().numpy().astype(np.float32)


def _scipy(what: str):
    try:
        import scipy.io.wavfile
        import scipy.signal

        return scipy
    except ImportError as e:
        raise DataError(f"{what} needs scipy, which is not installed ({e}); install it with: pip install 'gridseq[audio]'.") from e


def import_reader() -> None:
    """Import the WAV reader (scipy.io.wavfile, scipy.signal) now, so DataLoader workers forked later inherit
    it: each would otherwise import it on its first file (~0.5 s per worker and loader on an idle CPU)."""
    _scipy("reading WAV files")


def read_wav(path: str | os.PathLike, sample_rate: int) -> np.ndarray:
    """A WAV file as a mono float32 waveform at `sample_rate` (averaging channels, resampling if needed).

    Integer PCM is scaled to [-1, 1]; float files are taken as they are.

    Raises:
        DataError: not a readable WAV file, an empty one, or a sample rate below 1 kHz.
    """
    scipy = _scipy("reading WAV files")
    try:
        # from memory, not the file: scipy then reads the samples the file holds, where from a file it allocates
        # what the header claims first (a corrupt size field asked for gigabytes)
        with open(path, "rb") as f:
            rate, data = scipy.io.wavfile.read(io.BytesIO(f.read()))
    # ZeroDivisionError: a header with 0 channels; UnboundLocalError: scipy's reader on a file without a data chunk
    except (ValueError, OSError, EOFError, _wave.Error, struct.error, ZeroDivisionError, UnboundLocalError) as e:
        raise DataError(f"cannot read {path} as a WAV file ({e}); audio must be PCM or float WAV (convert other "
                        f"formats first, e.g. `ffmpeg -i in.mp3 out.wav`).") from None
    if data.size == 0:
        raise DataError(f"{path} holds no audio samples.")
    if rate < MIN_SAMPLE_RATE:
        raise DataError(f"{path} has a sample rate of {rate} Hz, below {MIN_SAMPLE_RATE} Hz; the file header is probably wrong.")
    if data.dtype.kind in "iu":
        info = np.iinfo(data.dtype)
        scale = float(max(-info.min, info.max))
        offset = 0.0 if data.dtype.kind == "i" else (info.max + 1) / 2  # 8-bit WAV is unsigned around 128
        data = (data.astype(np.float64) - offset) / scale
    data = data.astype(np.float32)
    if data.ndim == 2:
        data = data.mean(axis=1)  # (S, channels) -> mono
    return resample(data, rate, sample_rate)


def wav_header(path: str | os.PathLike) -> tuple[int, int] | None:
    """(sample rate, frames) from a WAV file's header alone, without reading the samples; None when the
    file is not a plain RIFF/RIFX WAV this reads (e.g. RF64, or a corrupt header), so the caller decodes
    it instead (and `read_wav` says what is wrong).

    Frames are counted as `scipy.io.wavfile.read` returns them: the data chunk's whole frames, as far
    as the file holds them (a truncated file has fewer than its header claims).

    Raises:
        DataError: the file cannot be opened.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[8:12] != b"WAVE" or head[:4] not in (b"RIFF", b"RIFX"):
                return None
            order = "little" if head[:4] == b"RIFF" else "big"
            rate = block = None
            while True:
                chunk = f.read(8)  # id (4 bytes), size (4 bytes); chunks are padded to an even size
                if len(chunk) < 8:
                    return None  # no data chunk
                size = int.from_bytes(chunk[4:], order)
                if chunk[:4] == b"fmt ":
                    fmt = f.read(size + size % 2)
                    if len(fmt) < 16:
                        return None
                    rate, block = int.from_bytes(fmt[4:8], order), int.from_bytes(fmt[12:14], order)  # block: bytes per frame
                elif chunk[:4] == b"data":
                    if rate is None or not block:
                        return None
                    available = os.fstat(f.fileno()).st_size - f.tell()
                    return rate, min(size, max(available, 0)) // block
                else:
                    f.seek(size + size % 2, os.SEEK_CUR)
    except OSError as e:
        raise DataError(f"cannot read {path} as a WAV file ({e}).") from None


def resampled_length(samples: int, rate: int, target: int) -> int:
    """Samples `resample` makes from `samples` at `rate` Hz: ceil(S · up / down) (scipy's resample_poly)."""
    if rate == target:
        return samples
    g = math.gcd(int(rate), int(target))
    up, down = target // g, rate // g
    return -(-samples * up // down)


def wav_frames(path: str | os.PathLike, rec: dict[str, Any]) -> int:
    """Feature frames (T) `log_mel(read_wav(path, ...), rec)` makes, from the file's header: no sample is
    read for a plain RIFF WAV (other files are decoded once to count them).

    Raises:
        DataError: as `read_wav` does, for an empty file, a rate below 1 kHz or a corrupt header.
    """
    header = wav_header(path)
    if header is None:  # a layout the header reader does not know: scipy reads it (or says why it cannot)
        return len(log_mel(read_wav(path, rec["sample_rate"]), rec))
    rate, frames = header
    if frames == 0:
        raise DataError(f"{path} holds no audio samples.")
    if rate < MIN_SAMPLE_RATE:
        raise DataError(f"{path} has a sample rate of {rate} Hz, below {MIN_SAMPLE_RATE} Hz; the file header is probably wrong.")
    return num_frames(resampled_length(frames, rate, rec["sample_rate"]), rec)


def resample(waveform: np.ndarray, rate: int, target: int) -> np.ndarray:
    """`waveform` from `rate` to `target` Hz (polyphase, anti-aliased); unchanged if the rates match."""
    if rate == target:
        return waveform
    scipy = _scipy("resampling audio")
    g = math.gcd(int(rate), int(target))
    return scipy.signal.resample_poly(waveform, target // g, rate // g).astype(np.float32)


def write_wav(path: str | os.PathLike, waveform: np.ndarray, sample_rate: int) -> None:
    """Write a mono float waveform in [-1, 1] as 16-bit PCM (for examples and tests)."""
    scipy = _scipy("writing WAV files")
    pcm = (np.clip(np.asarray(waveform, dtype=np.float64), -1, 1) * 32767).round().astype(np.int16)
    scipy.io.wavfile.write(os.fspath(path), sample_rate, pcm)
