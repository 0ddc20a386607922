"""`TimeDistributed`: apply a per-item module (e.g. a CNN on one frame) to every time step of a batch.

Consider a batch of 32 videos of 10 frames of 1×20×20 pixels: the input is (32, 10, 1, 20, 20). A
CNN takes images (B, C, H, W); `TimeDistributed(cnn)` folds time into the batch, runs the CNN ONCE
over the 320 frames and unfolds its output back to (32, 10, ...) — one batched call, no Python loop
over frames. With `lengths`, only the valid frames are encoded (padded frames neither cost time nor
reach BatchNorm's statistics) and the outputs at padded steps are zero.
"""

from __future__ import annotations

from torch import Tensor, nn

from gridseq.errors import ShapeError
from gridseq.nn.sequence import length_mask
from gridseq.shapes import check_lengths


class TimeDistributed(nn.Module):
    """Apply `module` (or one of its methods) to every step of (B, T, ...) inputs in one batched call.

    Args:
        module: takes (N, *S) and returns (N, *O), e.g. a `gridseq.models.cnn.CNN`.
        method: the name of the module's method to call, e.g. "forward_features" for a CNN's encoder
            without its classifier head. Default: "forward".

    Shape:
        - x: (B, T, *S), batch first.  - lengths: (B,) int64, optional (every item has T steps).
        - Output: (B, T, *O), zero at padded steps.

    Example:
        >>> import torch
        >>> from gridseq.models.cnn import CNN
        >>> cnn = CNN(CNN.Config(input_shape=(1, 20, 20), num_classes=10, channels=(8, 16)))
        >>> td = TimeDistributed(cnn, method="forward_features")
        >>> td(torch.zeros(4, 10, 1, 20, 20)).shape  # 16 channels x 5 x 5 per frame
        torch.Size([4, 10, 400])
    """

    def __init__(self, module: nn.Module, method: str = "forward") -> None:
        super().__init__()
        if not callable(getattr(module, method, None)):
            raise ShapeError(f"TimeDistributed: {type(module).__name__} has no method {method!r} to apply to every step.")
        self.module = module
        self.method = method

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        if x.dim() < 3:
            raise ShapeError(f"TimeDistributed expects x of shape (B, T, ...), got {tuple(x.shape)}.")
        batch, time = x.shape[:2]
        fn = getattr(self.module, self.method)
        lengths = check_lengths(lengths, batch, time)
        if lengths is None or bool((lengths == time).all()):
            out = fn(x.reshape(batch * time, *x.shape[2:]))  # (B*T, *O)
            return out.reshape(batch, time, *out.shape[1:])  # (B, T, *O)
        valid = length_mask(lengths, time, x.device)  # (B, T)
        out = fn(x[valid])  # (N_valid, *O): padded frames are never encoded
        full = out.new_zeros(batch, time, *out.shape[1:])
        full[valid] = out
        return full

    def extra_repr(self) -> str:
        return "" if self.method == "forward" else f"method={self.method!r}"
