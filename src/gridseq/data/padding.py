"""Padding and collation: variable-length items into one batch, and which steps of a batch are real.

Every padded array in gridseq is padded with zeros (token ids with `<pad>` = 0) at the end of the time
axis (dim 1) and comes with (N,) int64 lengths; `valid_mask` says which steps are real. In-memory splits
are padded once to their longest item and trimmed to each batch's longest (`Split.batch`); streamed
splits pad each batch as its items are decoded (`pad_batch`).

    >>> x, lengths = pad_sequences([np.ones((3, 2)), np.ones((1, 2))])
    >>> x.shape, lengths.tolist(), valid_mask(x, lengths).tolist()
    ((2, 3, 2), [3, 1], [[True, True, True], [True, False, False]])
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from gridseq.data.vocab import PAD


def pad_sequences(items: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Stack items (T_i, ...) — sequences (T_i, F), clips (T_i, C, H, W) — into float32 (N, T_max, ...) with
    zero padding, plus (N,) int64 lengths. No items give an empty (0, 0, 0) array."""
    lengths = np.array([len(a) for a in items], dtype=np.int64)
    rest = tuple(items[0].shape[1:]) if len(items) else (0,)
    out = np.zeros((len(items), int(lengths.max()) if len(items) else 0, *rest), dtype=np.float32)
    for i, a in enumerate(items):
        out[i, : len(a)] = a
    return out, lengths


def valid_mask(x: np.ndarray, lengths: np.ndarray | None) -> np.ndarray:
    """(N, T) bool: True at the valid time steps of padded items x (N, T, ...)."""
    if lengths is None:
        return np.ones(x.shape[:2], dtype=bool)
    return np.arange(x.shape[1])[None, :] < np.asarray(lengths)[:, None]


def pad_batch(items: Sequence[np.ndarray], lengths: torch.Tensor) -> np.ndarray:
    """One batch of decoded items (T_i, ...) with their recorded `lengths`: (B, max(lengths), ...), every step
    past an item's length exactly zero, whatever the item held there."""
    raw = pad_sequences(items)[0][:, : int(lengths.max())]
    raw[~valid_mask(raw, lengths.numpy())] = 0.0
    return raw


def pad_ids(rows: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, T_max) int64 token ids padded with `<pad>` (0), and (N,) int64 lengths."""
    lengths = torch.tensor([len(r) for r in rows], dtype=torch.int64)
    x = torch.full((len(rows), int(lengths.max()) if len(rows) else 0), PAD, dtype=torch.int64)
    for i, r in enumerate(rows):
        x[i, : len(r)] = torch.tensor(r, dtype=torch.int64)
    return x, lengths
