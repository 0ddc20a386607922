"""Input limits derived from each model: how long a sequence, text or history one request may send.

A model trained on sequences of at most T steps gets `max(4·T, 512)` steps (texts: tokens) per item
unless `--max-length` says otherwise; fixed-length models take exactly their T anyway (the library
checks it). Characters per text follow from tokens: one per token for char-level vocabularies, 32 per
token for word-level ones.
"""

from __future__ import annotations

from gridseq.data.contract import DatasetInfo
from gridseq.predict import InputLimits
from gridseq.serve.settings import ServeSettings

LENGTH_FACTOR = 4
MIN_LENGTH = 512
CHARS_PER_WORD = 32
MAX_HISTORY = 100_000  # rows of a forecasting history


def limits_for(info: DatasetInfo, settings: ServeSettings) -> InputLimits:
    """The `InputLimits` for a model trained on `info`, under `settings`."""
    record = info.preprocessing or {}
    if record.get("layout") == "series":  # a forecaster's history: rows of the series
        max_length = settings.max_length or max(MAX_HISTORY, LENGTH_FACTOR * int(record.get("window", 1)))
    else:
        trained = int(info.input_shape[0]) if info.kind in ("sequence", "series", "tokens") and info.input_shape else 0
        max_length = settings.max_length or max(LENGTH_FACTOR * trained, MIN_LENGTH)
    level = ((record.get("vocab") or {}).get("level")) if info.kind == "tokens" else None
    max_chars = max_length * (CHARS_PER_WORD if level == "word" else 1) if info.kind == "tokens" else None
    return InputLimits(max_items=settings.max_items, max_length=max_length, max_chars=max_chars,
                       max_pixels=settings.max_pixels, max_generate=settings.max_generate, files=False)
