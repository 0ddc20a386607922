"""Transcription built-ins, generated offline and seeded: handwritten digit strings and DTMF key sequences.

- `digit-strings` (images): 3-10 of scikit-learn's real 8×8 handwritten digits, each scaled to
  10-14 px high (aspect ±15%, bilinear), slanted (shear ±0.25) and turned (±8°), placed left to
  right on a 16-row canvas with random gaps (0-4 px), vertical jitter, stroke intensity 0.7-1.0 and
  Gaussian pixel noise (std 0.05), clipped to [0, 1] → the digit string. Items are read column by
  column: x (T = width, F = 16). The 1,797 source digits are divided first — 20% (constant seed) only
  ever appear in test strings, 10% of the rest (from `seed`) in val strings — so the test measures
  reading handwriting never seen in training.
- `dtmf` (audio, 8 kHz): telephone keypad key sequences (3-10 of 0-9, *, #). Each key is the sum of
  its row tone (697, 770, 852, 941 Hz) and column tone (1209, 1336, 1477 Hz), as ITU-T Q.23
  defines them, each off by up to ±1.5% (what Q.24 receivers must accept), with random phases, the
  column tone 0.7-1.25× the row tone's amplitude ("twist"); tones last 40-100 ms, gaps 40-100 ms,
  with 20-300 ms of silence before and after; a random overall level (0.05-0.7 of full scale); then
  white Gaussian background noise at a signal-to-noise ratio drawn per utterance uniformly from
  [snr, snr + 20] dB (the tones' power over the noise's; option `snr`, default 0 dB: the noisiest
  utterances are as loud as the noise). Features: 40 log-mel bands every 10 ms (`gridseq.data.audio`).

Test items come from a generator with a constant seed; train and val from `seed`.
"""

from __future__ import annotations

import numpy as np
import torch

from gridseq._validation import check_positive_int
from gridseq.data import audio
from gridseq.data.builtin import register_dataset
from gridseq.data.builtin.digits import digits_raw
from gridseq.data.contract import Dataset
from gridseq.data.partition import TEST_SEED
from gridseq.data.readers.transcripts import transcribe_dataset
from gridseq.errors import ConfigError

DIGIT_ALPHABET = "0123456789"
STRING_HEIGHT = 16
STRING_SIZES = (8000, 800, 1000)
MIN_KEYS, MAX_KEYS = 3, 10

DTMF_ALPHABET = "0123456789*#"
DTMF_ROWS = (697.0, 770.0, 852.0, 941.0)  # Hz, ITU-T Q.23
DTMF_COLUMNS = (1209.0, 1336.0, 1477.0)
DTMF_KEYPAD = ("123", "456", "789", "*0#")
DTMF_SIZES = (4000, 400, 1000)
DTMF_RATE = 8000


def _rngs(name: str, seed: int) -> dict[str, np.random.Generator]:
    key = [ord(c) for c in name]
    return {"train": np.random.default_rng([seed, 1, *key]), "val": np.random.default_rng([seed, 2, *key]),
            "test": np.random.default_rng([TEST_SEED, 3, *key])}


# ---- digit-strings ------------------------------------------------------------------------------------

def digit_pools(seed: int) -> dict[str, np.ndarray]:
    """Indices of scikit-learn's 1,797 digits per split: test 20% (constant seed), val 10% of the rest."""
    n = len(digits_raw()[1])
    order = np.random.default_rng(TEST_SEED).permutation(n)
    n_test = round(0.2 * n)
    rest = np.sort(order[n_test:])
    shuffled = np.random.default_rng(seed).permutation(rest)
    n_val = round(0.1 * len(rest))
    return {"train": np.sort(shuffled[n_val:]), "val": np.sort(shuffled[:n_val]), "test": np.sort(order[:n_test])}


def _glyph(digit: np.ndarray, height: int, width: int, shear: float, angle: float) -> np.ndarray:
    """`digit` (8, 8) resampled to (height, width) through a shear and a rotation about its centre."""
    c, s = np.cos(angle), np.sin(angle)
    theta = torch.tensor([[c, -s + shear, 0.0], [s, c, 0.0]], dtype=torch.float32)[None]  # output -> input coordinates
    grid = torch.nn.functional.affine_grid(theta, [1, 1, height, width], align_corners=False)
    t = torch.from_numpy(digit)[None, None]
    return torch.nn.functional.grid_sample(t, grid, mode="bilinear", padding_mode="zeros", align_corners=False)[0, 0].numpy()


def digit_string(images: np.ndarray, labels: np.ndarray, pool: np.ndarray, rng: np.random.Generator,
                 noise: float = 0.05) -> tuple[np.ndarray, str]:
    """One generated line: ((T, 24) columns in [0, 1], its digit string), drawn from the digits in `pool`.

    Example:
        >>> x, y = digits_raw()
        >>> cols, text = digit_string(x[:, 0], y, np.arange(100), np.random.default_rng(0))
        >>> cols.shape[1], 3 <= len(text) <= 10
        (16, True)
    """
    n = int(rng.integers(MIN_KEYS, MAX_KEYS + 1))
    picks = rng.choice(pool, n)
    text = ""
    cursor = int(rng.integers(1, 5))  # left margin
    placed = []
    for k in picks:
        size = int(rng.integers(10, 15))
        # at least 8 columns per digit: every string keeps 2 CTC frames per digit at crnn-ctc's time reduction of 4
        width = max(8, round(size * rng.uniform(0.85, 1.15)))
        glyph = _glyph(images[k], size, width, rng.uniform(-0.25, 0.25), np.deg2rad(rng.uniform(-8, 8)))
        glyph = glyph * rng.uniform(0.7, 1.0)
        top = int(rng.integers(0, STRING_HEIGHT - size + 1))
        placed.append((cursor, top, glyph))
        cursor += width + int(rng.integers(0, 5))
        text += DIGIT_ALPHABET[int(labels[k])]
    total = cursor + int(rng.integers(1, 5))
    canvas = np.zeros((STRING_HEIGHT, total), dtype=np.float32)
    for left, top, glyph in placed:
        h, w = glyph.shape
        region = canvas[top: top + h, left: left + w]
        np.maximum(region, glyph[:, : region.shape[1]], out=region)  # touching neighbours: the darker ink wins
    canvas += rng.normal(0.0, noise, canvas.shape).astype(np.float32)
    return np.ascontiguousarray(np.clip(canvas, 0.0, 1.0).T), text  # (T = width, F = height)


@register_dataset(
    "digit-strings", kind="sequence", sizes=STRING_SIZES, num_classes=11, variable_length=True,
    description="lines of 3-10 real handwritten digits (scikit-learn) -> the digit string, CTC transcription",
)
def digit_strings(seed: int, view: str, *, size: int = STRING_SIZES[0]) -> Dataset:
    """Digit-string images as columns x (N, T, 16) with lengths, y (N, U) digit labels 1-10 (0 = blank).

    Args:
        size: training strings; val and test keep their sizes (800, 1000). Default: 8000.

    Example:
        >>> ds = digit_strings(0, "sequence", size=50)
        >>> ds.info.task, ds.train.x.shape[2], ds.info.class_names[:3], len(ds.test)
        ('transcribe', 16, ('<blank>', '0', '1'), 1000)
    """
    size = check_positive_int(size, "size")
    x, y = digits_raw()
    images = x[:, 0].copy()  # (1797, 8, 8) in [0, 1]; writable for torch
    pools, rngs = digit_pools(seed), _rngs("digit-strings", seed)
    counts = {"train": size, "val": STRING_SIZES[1], "test": STRING_SIZES[2]}
    parts = {}
    for split in ("train", "val", "test"):
        lines = [digit_string(images, y, pools[split], rngs[split]) for _ in range(counts[split])]
        parts[split] = ([a for a, _ in lines], [t for _, t in lines])
    record = {"source": "digit-strings", "layout": "image", "view": "sequence", "normalize": None,
              "image": {"height": STRING_HEIGHT, "ink": "auto"}, "size": size}
    return transcribe_dataset("digit-strings", parts, DIGIT_ALPHABET, record)


# ---- dtmf -------------------------------------------------------------------------------------------------

def dtmf_tones(key: str) -> tuple[float, float]:
    """(row, column) frequencies in Hz of a keypad key.

    Example:
        >>> dtmf_tones("5"), dtmf_tones("#")
        ((770.0, 1336.0), (941.0, 1477.0))
    """
    for r, row in enumerate(DTMF_KEYPAD):
        if key in row:
            return DTMF_ROWS[r], DTMF_COLUMNS[row.index(key)]
    raise ConfigError(f"{key!r} is not a DTMF key; keys are {DTMF_ALPHABET}.")


def dtmf_utterance(keys: str, rng: np.random.Generator, snr_db: float, rate: int = DTMF_RATE) -> np.ndarray:
    """The waveform (S,) float32 of `keys` pressed in turn, with noise at `snr_db` dB (tone power / noise power).

    Example:
        >>> wave = dtmf_utterance("12#", np.random.default_rng(0), 20.0)
        >>> wave.dtype.name, 0.3 < len(wave) / 8000 < 1.3
        ('float32', True)
    """
    ms = lambda lo, hi: int(rng.integers(lo, hi + 1)) * rate // 1000  # noqa: E731
    parts = [np.zeros(ms(20, 300))]
    for i, key in enumerate(keys):
        n = ms(40, 100)
        t = np.arange(n) / rate
        low, high = dtmf_tones(key)
        twist = rng.uniform(0.7, 1.25)
        tone = (np.sin(2 * np.pi * low * rng.uniform(0.985, 1.015) * t + rng.uniform(0, 2 * np.pi))
                + twist * np.sin(2 * np.pi * high * rng.uniform(0.985, 1.015) * t + rng.uniform(0, 2 * np.pi)))
        parts.append(tone)
        parts.append(np.zeros(ms(40, 100) if i < len(keys) - 1 else ms(20, 300)))
    signal = np.concatenate(parts)
    tone_power = np.mean(np.concatenate(parts[1::2]) ** 2)
    noise = rng.normal(0.0, np.sqrt(tone_power / 10 ** (snr_db / 10)), signal.shape)
    wave = signal + noise
    level = np.exp(rng.uniform(np.log(0.05), np.log(0.7)))
    return (wave * level / np.abs(wave).max()).astype(np.float32)


@register_dataset(
    "dtmf", kind="sequence", sizes=DTMF_SIZES, num_classes=13, variable_length=True,
    description="telephone keypad tone sequences (DTMF, 8 kHz, noisy) -> the keys 0-9*#, CTC transcription",
)
def dtmf(seed: int, view: str, *, snr: float = 0.0, size: int = DTMF_SIZES[0]) -> Dataset:
    """DTMF recordings as 40 log-mel bands per 10 ms, x (N, T, 40) with lengths; y (N, U) key labels.

    Args:
        snr: the lowest signal-to-noise ratio in dB; each utterance's is uniform in [snr, snr + 20].
            Default: 0.
        size: training utterances; val and test keep their sizes (400, 1000). Default: 4000.

    Example:
        >>> ds = dtmf(0, "sequence", size=20)
        >>> ds.info.task, ds.train.x.shape[2], ds.info.num_classes, ds.info.preprocessing["audio"]["sample_rate"]
        ('transcribe', 40, 13, 8000)
    """
    size = check_positive_int(size, "size")
    if isinstance(snr, bool) or not isinstance(snr, (int, float)) or not -30 <= snr <= 60:
        raise ConfigError(f"snr must be a number of dB in [-30, 60], got {snr!r}.")
    rec = audio.front_end_record(sample_rate=DTMF_RATE, n_mels=40)
    rngs = _rngs("dtmf", seed)
    counts = {"train": size, "val": DTMF_SIZES[1], "test": DTMF_SIZES[2]}
    parts = {}
    for split in ("train", "val", "test"):
        rng, items, texts = rngs[split], [], []
        for _ in range(counts[split]):
            keys = "".join(rng.choice(list(DTMF_ALPHABET), int(rng.integers(MIN_KEYS, MAX_KEYS + 1))))
            wave = dtmf_utterance(keys, rng, float(rng.uniform(snr, snr + 20)))
            items.append(audio.log_mel(wave, rec))
            texts.append(keys)
        parts[split] = (items, texts)
    record = {"source": "dtmf", "layout": "audio", "view": "sequence", "normalize": None, "audio": rec,
              "snr_db": [float(snr), float(snr) + 20.0], "size": size}
    return transcribe_dataset("dtmf", parts, DTMF_ALPHABET, record)
