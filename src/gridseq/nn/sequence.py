"""Reading a padded batch of recurrent outputs correctly: last valid step, final features, pooling.

A padded batch `(B, T, H)` holds shorter sequences followed by padding, so `outputs[:, -1]` is the
state after padding for every sequence shorter than T — and, for a bidirectional layer, its backward
half has only seen one step. These helpers take `lengths` and read only valid steps:

    last_valid(outputs, lengths)          outputs[b, lengths[b] - 1]                     (B, H)
    final_features(outputs, lengths, 2)   [forward at lengths[b] - 1, backward at step 0] (B, 2H)
    masked_mean / masked_max              mean / max over the valid steps                (B, H)

With `lengths=None` every sequence is taken to have the full length T.
"""

from __future__ import annotations

import torch
from torch import Tensor

from gridseq.errors import ShapeError
from gridseq.shapes import check_lengths


def length_mask(lengths: Tensor, time: int, device: torch.device | str | None = None) -> Tensor:
    """(B, T) bool, True at valid steps: mask[b, t] = t < lengths[b].

    Example:
        >>> length_mask(torch.tensor([2, 3]), 3).int().tolist()
        [[1, 1, 0], [1, 1, 1]]
    """
    lengths = lengths.to(device if device is not None else lengths.device)
    return torch.arange(time, device=lengths.device)[None, :] < lengths[:, None]  # (B, T)


def to_fixed_length(x: Tensor, lengths: Tensor | None, steps: int) -> Tensor:
    """Zero the padded steps of (B, T', F) and pad (or crop) the time axis to `steps`: (B, steps, F).

    For models with a fixed input length (mlp, cnn on sequences): a sequence is read as its valid steps
    followed by zeros, whatever padding its batch had.

    Example:
        >>> to_fixed_length(torch.ones(2, 3, 1), torch.tensor([1, 3]), 4)[..., 0].tolist()
        [[1.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 0.0]]
    """
    if lengths is not None:
        x = x * length_mask(lengths, x.shape[1], x.device).unsqueeze(-1).to(x.dtype)  # zero the padded steps
    return torch.nn.functional.pad(x, (0, 0, 0, steps - x.shape[1]))  # (B, steps, F)


def _checked(outputs: Tensor, lengths: Tensor | None, name: str) -> Tensor:
    """lengths (B,) int64 on outputs' device; T for every sequence when lengths is None."""
    if not isinstance(outputs, Tensor) or outputs.dim() != 3:
        shape = tuple(outputs.shape) if isinstance(outputs, Tensor) else type(outputs).__name__
        raise ShapeError(f"{name}: expected outputs of shape (B, T, H), got {shape}.")
    batch, time = outputs.shape[:2]
    lengths = check_lengths(lengths, batch, time)
    if lengths is None:
        return torch.full((batch,), time, dtype=torch.int64, device=outputs.device)
    return lengths.to(outputs.device)


def last_valid(outputs: Tensor, lengths: Tensor | None = None) -> Tensor:
    """Each sequence's output at its own last valid step.

    Note:
        For a bidirectional layer this is the *forward* direction's final state but the backward
        direction's *first* step; use `final_features` for the final state of both directions.

    Args:
        outputs: (B, T, H') recurrent outputs, padded along T.
        lengths: (B,) int64 valid lengths, or None (all T).

    Returns:
        (B, H'): outputs[b, lengths[b] - 1].

    Example:
        >>> out = torch.arange(6.).view(2, 3, 1)
        >>> last_valid(out, torch.tensor([1, 3])).flatten().tolist()
        [0.0, 5.0]
    """
    if lengths is None and isinstance(outputs, Tensor) and outputs.dim() == 3:
        return outputs[:, -1]  # every sequence has all T steps
    lengths = _checked(outputs, lengths, "last_valid")
    index = (lengths - 1).view(-1, 1, 1).expand(-1, 1, outputs.shape[2])  # (B, 1, H')
    return outputs.gather(1, index).squeeze(1)  # (B, H')


def final_features(outputs: Tensor, lengths: Tensor | None = None, num_directions: int = 1) -> Tensor:
    """The final state of every direction, read from the outputs of a (bi)directional layer.

    The forward half of the last dimension ends at each sequence's last valid step; the backward half
    ends at step 0 (it ran from the sequence's end back to its start). For the last layer of a
    `Recurrent` this equals `cat([h_n[-2], h_n[-1]], -1)` (bidirectional) or `h_n[-1]`.

    Args:
        outputs: (B, T, D*H) outputs of a `Recurrent` (or torch RNN with batch_first=True).
        lengths: (B,) int64 valid lengths, or None (all T).
        num_directions: D, 2 for a bidirectional layer. Default: 1.

    Returns:
        (B, D*H).

    Example:
        >>> out = torch.randn(2, 5, 2 * 4)
        >>> final_features(out, torch.tensor([3, 5]), num_directions=2).shape
        torch.Size([2, 8])
    """
    if num_directions not in (1, 2):
        raise ShapeError(f"final_features: num_directions must be 1 or 2, got {num_directions!r}.")
    if num_directions == 1:
        return last_valid(outputs, lengths)
    if outputs.dim() != 3 or outputs.shape[-1] % 2:
        raise ShapeError(
            f"final_features: expected bidirectional outputs (B, T, 2*H) with an even last dimension, "
            f"got {tuple(outputs.shape)}."
        )
    hidden = outputs.shape[-1] // 2
    forward = last_valid(outputs[..., :hidden], lengths)  # (B, H)
    backward = outputs[:, 0, hidden:]  # (B, H)
    return torch.cat([forward, backward], dim=-1)  # (B, 2H)


def masked_mean(outputs: Tensor, lengths: Tensor | None = None) -> Tensor:
    """Mean over each sequence's valid steps, (B, T, H') → (B, H').

    Example:
        >>> out = torch.tensor([[[1.], [3.], [100.]]])
        >>> masked_mean(out, torch.tensor([2])).tolist()
        [[2.0]]
    """
    lengths = _checked(outputs, lengths, "masked_mean")
    mask = length_mask(lengths, outputs.shape[1]).unsqueeze(-1)  # (B, T, 1)
    total = (outputs * mask).sum(dim=1)  # (B, H')
    return total / lengths.unsqueeze(-1).to(outputs.dtype)


def masked_max(outputs: Tensor, lengths: Tensor | None = None) -> Tensor:
    """Maximum over each sequence's valid steps, (B, T, H') → (B, H').

    Padded steps are excluded (not treated as zeros), so all-negative features pool correctly.

    Example:
        >>> out = torch.tensor([[[-2.], [-1.], [0.]]])
        >>> masked_max(out, torch.tensor([2])).tolist()
        [[-1.0]]
    """
    lengths = _checked(outputs, lengths, "masked_max")
    mask = length_mask(lengths, outputs.shape[1]).unsqueeze(-1)  # (B, T, 1)
    return outputs.masked_fill(~mask, float("-inf")).amax(dim=1)  # (B, H')
