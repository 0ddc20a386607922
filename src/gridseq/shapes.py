"""Layout checks used by every public entry point.

gridseq is batch first, always:

    images      (B, C, H, W)        float
    sequences   (B, T, F)           float
    token ids   (B, T)              int64
    video       (B, T, C, H, W)     float
    lengths     (B,)                int64, 1 <= lengths <= T

Each check returns the (possibly cleaned) tensors and, on a mismatch, raises `ShapeError` naming
what came, what was expected and the likely fix — the (time, batch, feature) transposition, a
missing batch dimension, a channels-last image, bad lengths, float ids, NaN/Inf.

Validation happens at the door, once. A public entry point (a model's `forward` called from user code)
checks its inputs, then runs the rest inside `inputs_checked()`; the nested modules it calls (the
`Recurrent` of an RNN, the frame CNN and the `Recurrent` of a CRNN, the sequence helpers) call the same
checks, which inside that block only convert (lengths to int64 on the CPU, ids to int64) and skip the
scans and host syncs (NaN/Inf, id and length ranges). Called on its own, every module checks its inputs.

    >>> with inputs_checked():
    ...     check_finite(torch.tensor([float("nan")])).shape  # trusted: not scanned
    torch.Size([1])
"""

from __future__ import annotations

import math
from contextvars import ContextVar

import torch
from torch import Tensor

from gridseq.errors import ShapeError

# True while an entry point that has checked its inputs runs the modules below it (per thread and task)
_CHECKED: ContextVar[bool] = ContextVar("gridseq_inputs_checked", default=False)


class inputs_checked:  # a lower-case context manager, like torch.no_grad
    """Inside this block the checks of this module trust their inputs: the caller has checked them.

    An entry point runs its own checks first, then calls its nested modules inside the block, so a
    nested module does not repeat them (validation at the door, once). Re-entrant; per thread.

    Example:
        >>> x, lengths = check_sequence(torch.zeros(2, 5, 3), torch.tensor([5, 2]))  # the door: checked
        >>> with inputs_checked():
        ...     _ = check_sequence(x, lengths)  # nested: only converts
    """

    __slots__ = ("_token",)

    def __enter__(self) -> None:
        self._token = _CHECKED.set(True)

    def __exit__(self, *exc) -> None:
        _CHECKED.reset(self._token)


def trusted() -> bool:
    """Whether the current call runs inside `inputs_checked()` (its inputs were checked at the door)."""
    return _CHECKED.get()


def _shape(x: Tensor) -> tuple[int, ...]:
    return tuple(x.shape)


def _require_tensor(x, name: str) -> Tensor:
    if not isinstance(x, Tensor):
        raise ShapeError(f"{name} must be a torch.Tensor, got {type(x).__name__}; convert it with torch.as_tensor({name}).")
    return x


def check_finite(x: Tensor, name: str = "x") -> Tensor:
    """Raise ShapeError if a float tensor holds NaN or Inf (they would silently poison training)."""
    # a finite sum proves every value finite (NaN and Inf propagate) in one reduction without a mask; only a
    # sum that is not (those values, or finite ones overflowing) needs the exact, element-wise look
    if x.is_floating_point() and not _CHECKED.get() and not math.isfinite(float(x.detach().sum())) and not bool(torch.isfinite(x).all()):
        n_nan = int(torch.isnan(x).sum())
        n_inf = int(torch.isinf(x).sum())
        raise ShapeError(
            f"{name} contains {n_nan} NaN and {n_inf} Inf values; expected finite numbers. "
            f"Fill or drop missing values first (e.g. torch.nan_to_num({name}))."
        )
    return x


def _converted(lengths: Tensor | None) -> Tensor | None:
    """Trusted lengths, only converted to what `pack_padded_sequence` needs: int64 on the CPU."""
    return None if lengths is None else lengths.to(device="cpu", dtype=torch.int64)


def unpadded(lengths: Tensor | None, time: int) -> Tensor | None:
    """Checked lengths, or None when every sequence has all `time` steps (nothing to pack or mask).

    Example:
        >>> unpadded(torch.tensor([3, 3]), 3) is None, unpadded(torch.tensor([3, 1]), 3).tolist()
        (True, [3, 1])
    """
    if lengths is None or (lengths.numel() and int(lengths.min()) == time):
        return None
    return lengths


def _check_float(x: Tensor, name: str, expected: str, *, pixels: bool = False) -> None:
    if not x.is_floating_point():
        if pixels:
            hint = f"{name}.float() / 255 for 8-bit pixels" if x.dtype == torch.uint8 else f"{name}.float()"
        else:
            hint = f"{name}.float() (token ids go to a model built with vocab_size=...)"
        raise ShapeError(f"expected {name} of shape {expected} as a float tensor, got dtype {x.dtype}; convert with {hint}.")


def check_lengths(lengths: Tensor | None, batch: int, time: int, *, name: str = "lengths") -> Tensor | None:
    """Check per-sequence lengths `(B,)` against a batch of B sequences padded to T steps.

    Returns the lengths as an int64 CPU tensor (what `pack_padded_sequence` needs), or None.
    """
    if lengths is None or _CHECKED.get():
        return _converted(lengths)
    lengths = _require_tensor(lengths, name)
    if lengths.dim() != 1:
        raise ShapeError(f"expected {name} of shape (B,) = ({batch},), got {_shape(lengths)}; pass one length per sequence.")
    if lengths.is_floating_point() or lengths.dtype == torch.bool:
        raise ShapeError(f"expected {name} as integers (int64), got dtype {lengths.dtype}; use {name}.long().")
    if lengths.shape[0] != batch:
        raise ShapeError(
            f"{name} has {lengths.shape[0]} entries but the batch holds B={batch} sequences; "
            f"expected {name} of shape (B,) = ({batch},)."
        )
    lengths = lengths.to(device="cpu", dtype=torch.int64)
    if batch and int(lengths.min()) < 1:
        raise ShapeError(
            f"{name} must be >= 1, got a length of {int(lengths.min())}; drop empty sequences before batching."
        )
    if batch and int(lengths.max()) > time:
        raise ShapeError(
            f"{name} must be <= T={time} (the padded time dimension, dim 1 of (B, T, ...)), got a length of "
            f"{int(lengths.max())}; check that x is (batch, time, ...) and that lengths belong to this batch."
        )
    return lengths


def _transposed_hint(x: Tensor, lengths: Tensor | None) -> str | None:
    """If `lengths` fits dim 0 as time and dim 1 as batch, x is almost surely (T, B, ...)."""
    if lengths is None or not isinstance(lengths, Tensor) or lengths.dim() != 1 or x.dim() < 2:
        return None
    t, b = x.shape[0], x.shape[1]
    if lengths.shape[0] == b != t and lengths.numel() and int(lengths.max()) <= t:
        return (
            f"got {_shape(x)} with {b} lengths; this looks like (time, batch, ...) — gridseq expects "
            f"(batch, time, ...): pass x.transpose(0, 1)."
        )
    return None


def check_sequence(
    x: Tensor, lengths: Tensor | None = None, *, features: int | None = None, name: str = "x"
) -> tuple[Tensor, Tensor | None]:
    """Check a float sequence batch `(B, T, F)` (F = `features` if given) and its lengths."""
    if _CHECKED.get():
        return x, _converted(lengths)
    x = _require_tensor(x, name)
    hint = _transposed_hint(x, lengths)
    if hint:
        raise ShapeError(hint)
    f = "F" if features is None else str(features)
    expected = f"(B, T, {f})"
    if x.dim() == 2 and not x.is_floating_point() and features != 1:
        raise ShapeError(
            f"expected {name} of shape {expected} as floats, got {_shape(x)} {x.dtype}: these look like token ids; "
            f"use a model built with vocab_size=... (it embeds ids), or one-hot encode them to (B, T, vocab_size)."
        )
    if x.dim() == 2 and (features is None or x.shape[-1] == features):
        raise ShapeError(
            f"expected {name} of shape {expected}, got {_shape(x)}: the batch dimension is missing; "
            f"for one sequence pass {name}.unsqueeze(0)."
        )
    if x.dim() == 2 and features == 1:
        raise ShapeError(
            f"expected {name} of shape (B, T, 1), got {_shape(x)}: univariate series need a feature "
            f"dimension; pass {name}.unsqueeze(-1)."
        )
    if x.dim() != 3:
        raise ShapeError(f"expected {name} of shape {expected} (batch, time, features), got {x.dim()}D {_shape(x)}.")
    _check_float(x, name, expected)
    if features is not None and x.shape[2] != features:
        if x.shape[1] == features:
            fix = f"this looks like (batch, features, time): pass {name}.transpose(1, 2)."
        else:
            fix = "the model was built for a different number of features."
        raise ShapeError(f"expected {name} of shape (B, T, {features}) with F={features} (input_size), got {_shape(x)}; {fix}")
    check_finite(x, name)
    return x, check_lengths(lengths, x.shape[0], x.shape[1])


def check_tokens(
    x: Tensor, lengths: Tensor | None = None, *, vocab_size: int | None = None, name: str = "x"
) -> tuple[Tensor, Tensor | None]:
    """Check a batch of token ids `(B, T)` int64 (every id < `vocab_size` if given) and its lengths."""
    if _CHECKED.get():
        return x.long(), _converted(lengths)
    x = _require_tensor(x, name)
    if x.is_floating_point():
        raise ShapeError(
            f"expected {name} as int64 token ids of shape (B, T), got dtype {x.dtype} {_shape(x)}; "
            f"token ids must be integers ({name}.long()) — or, if these are real-valued features, "
            f"build the model with input_size=... instead of vocab_size."
        )
    hint = _transposed_hint(x, lengths)
    if hint:
        raise ShapeError(hint)
    if x.dim() == 1:
        raise ShapeError(
            f"expected {name} of shape (B, T) token ids, got {_shape(x)}: the batch dimension is missing; "
            f"for one sequence pass {name}.unsqueeze(0)."
        )
    if x.dim() != 2:
        raise ShapeError(f"expected {name} of shape (B, T) token ids, got {x.dim()}D {_shape(x)}.")
    if x.numel() and (int(x.min()) < 0 or (vocab_size is not None and int(x.max()) >= vocab_size)):
        allowed = "be >= 0" if vocab_size is None else f"lie in [0, vocab_size={vocab_size})"
        raise ShapeError(
            f"token ids must {allowed}, got ids from {int(x.min())} to {int(x.max())}; "
            f"encode the text with the vocabulary the model was built with."
        )
    return x.long(), check_lengths(lengths, x.shape[0], x.shape[1])


def check_image(x: Tensor, *, channels: int | None = None, size: tuple[int, int] | None = None, name: str = "x") -> Tensor:
    """Check an image batch `(B, C, H, W)` (C = `channels`, (H, W) = `size` if given)."""
    if _CHECKED.get():
        return x
    x = _require_tensor(x, name)
    c = "C" if channels is None else str(channels)
    hw = "H, W" if size is None else f"{size[0]}, {size[1]}"
    expected = f"(B, {c}, {hw})"
    if x.dim() == 3 and (channels is None or x.shape[0] == channels):
        # without a channel count to compare, a small last dim is the usual sign of an (H, W, C) image
        looks_last = channels is None and x.shape[-1] in (1, 3, 4) and x.shape[0] not in (1, 3, 4)
        also = f", or {name}.permute(2, 0, 1).unsqueeze(0) if it is channels-last (H, W, C)" if looks_last else ""
        raise ShapeError(
            f"expected {name} of shape {expected}, got {_shape(x)}: the batch dimension is missing; "
            f"for one image pass {name}.unsqueeze(0){also}."
        )
    if x.dim() == 3 and channels is not None and x.shape[-1] == channels:
        raise ShapeError(
            f"expected {name} of shape {expected}, got {_shape(x)}: this looks like one channels-last (H, W, C) "
            f"image; pass {name}.permute(2, 0, 1).unsqueeze(0)."
        )
    if x.dim() == 3 and channels == 1:
        raise ShapeError(
            f"expected {name} of shape {expected}, got {_shape(x)}: grayscale images need a channel dimension; "
            f"pass {name}.unsqueeze(1)."
        )
    if x.dim() != 4:
        raise ShapeError(f"expected {name} of shape {expected} (batch, channels, height, width), got {x.dim()}D {_shape(x)}.")
    _check_float(x, name, expected, pixels=True)
    if channels is not None and x.shape[1] != channels:
        if x.shape[-1] == channels:
            fix = f"this looks like channels-last (B, H, W, C): pass {name}.permute(0, 3, 1, 2)."
        else:
            fix = f"the model was built for {channels} channels."
        raise ShapeError(f"expected {name} of shape {expected}, got {_shape(x)}; {fix}")
    if size is not None and tuple(x.shape[2:]) != tuple(size):
        raise ShapeError(
            f"expected {name} of shape {expected}, got {_shape(x)}: the model takes {size[0]}x{size[1]} images; "
            f"resize them (fully convolutional models such as 'fcn' take any size)."
        )
    check_finite(x, name)
    return x


def check_video(
    x: Tensor, lengths: Tensor | None = None, *, channels: int | None = None, name: str = "x"
) -> tuple[Tensor, Tensor | None]:
    """Check a video batch `(B, T, C, H, W)` and its per-video frame counts."""
    if _CHECKED.get():
        return x, _converted(lengths)
    x = _require_tensor(x, name)
    c = "C" if channels is None else str(channels)
    expected = f"(B, T, {c}, H, W)"
    if x.dim() == 4 and (channels is None or x.shape[1] == channels):
        raise ShapeError(
            f"expected {name} of shape {expected}, got {_shape(x)}: the batch dimension is missing; "
            f"for one video pass {name}.unsqueeze(0)."
        )
    if x.dim() != 5:
        raise ShapeError(f"expected {name} of shape {expected} (batch, time, channels, height, width), got {x.dim()}D {_shape(x)}.")
    hint = _transposed_hint(x, lengths)
    if hint:
        raise ShapeError(hint)
    _check_float(x, name, expected, pixels=True)
    if channels is not None and x.shape[2] != channels:
        if x.shape[-1] == channels:
            fix = f"this looks like channels-last frames (B, T, H, W, C): pass {name}.permute(0, 1, 4, 2, 3)."
        elif x.shape[1] == channels:
            fix = f"this looks like (B, C, T, H, W): pass {name}.transpose(1, 2)."
        else:
            fix = f"the model was built for {channels} channels."
        raise ShapeError(f"expected {name} of shape {expected}, got {_shape(x)}; {fix}")
    check_finite(x, name)
    return x, check_lengths(lengths, x.shape[0], x.shape[1])
