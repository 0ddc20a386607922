"""Convolutional building blocks for 1D signals `(B, C, T)` and 2D images `(B, C, H, W)`.

    Conv        Conv1d/Conv2d with "same" (any kernel, odd or even) or "causal" padding
    MaxPool     max pooling that never shrinks a side below 1 (a side shorter than the window is kept)
    ConvBlock   Conv + norm (batch | none) + activation (relu | gelu) + optional pooling
    Down        encoder stage of a fully convolutional net: pool by 2 (ceil), then two ConvBlocks
    Upsample    to an EXACT target size: transposed conv (then crop) or interpolation + 1x1 conv
    Up          decoder stage of a U-Net: Upsample to the skip's size, concatenate, two ConvBlocks

Channels come first after the batch here, as in torch.nn; the models turn gridseq's (B, T, F)
sequences into (B, F, T) before using these blocks. Every block takes `dims` (1 or 2) so the same
code builds 1D and 2D networks. Exact output sizes are the point of `Down`/`Up`: pooling rounds up
and upsampling crops back, so odd and tiny inputs (37x53, 8x8, 1xN) come out at their own size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gridseq._validation import check_choice, check_positive_int
from gridseq.errors import ConfigError

NORMS = ("batch", "none")
ACTIVATIONS = ("relu", "gelu")
PADDINGS = ("same", "causal")
UPSAMPLE_MODES = ("transpose", "interp")

_CONV = {1: nn.Conv1d, 2: nn.Conv2d}
_CONV_T = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d}
_BATCH_NORM = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d}
_MAX_POOL = {1: F.max_pool1d, 2: F.max_pool2d}
_INTERP = {1: "linear", 2: "bilinear"}


def check_dims(dims) -> int:
    """Return `dims` if it is 1 (signals) or 2 (images); ConfigError otherwise."""
    if dims not in (1, 2) or isinstance(dims, bool):
        raise ConfigError(f"dims must be 1 (sequences, (B, C, T)) or 2 (images, (B, C, H, W)), got {dims!r}.")
    return dims


def fit_to_size(x: Tensor, size: tuple[int, ...]) -> Tensor:
    """Crop or zero-pad the trailing spatial sides of `x` (at the end: right/bottom) to `size`.

    Shape:
        - x: (B, C, *S) with len(S) == len(size).  - Output: (B, C, *size).
    """
    pads: list[int] = []
    for have, want in zip(reversed(x.shape[2:]), reversed(size)):  # F.pad lists the last dim first
        pads += [0, want - have]  # negative padding crops
    return F.pad(x, pads) if any(pads) else x


class Conv(nn.Module):
    """Conv1d/Conv2d, stride 1, whose output keeps the input's size ("same") or only looks back ("causal").

    PyTorch's `padding="same"` copies the input for even kernels and warns each call; here the
    symmetric part of the padding goes to the convolution and only the odd extra step is padded
    explicitly (after the input, as PyTorch and Keras do).

    Args:
        in_channels: C_in.
        out_channels: C_out.
        kernel_size: window length per side (int). Default: 3.
        dims: 1 for (B, C, T), 2 for (B, C, H, W). Default: 2.
        dilation: spacing between taps. Default: 1.
        padding: "same" (centred window) or "causal" (window ends at the current step, 1D only):
            output step t then depends on inputs at steps <= t only. Default: "same".
        bias: add a learned bias. Default: True.
    Shape:
        - Input: (B, C_in, *S).  - Output: (B, C_out, *S) — same spatial size S.
    Example:
        >>> Conv(3, 8, 4, dims=1, padding="causal")(torch.zeros(2, 3, 10)).shape
        torch.Size([2, 8, 10])
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, *, dims: int = 2,
                 dilation: int = 1, padding: str = "same", bias: bool = True):
        super().__init__()
        check_dims(dims)
        check_positive_int(kernel_size, "kernel_size")
        check_positive_int(dilation, "dilation")
        check_choice(padding, "padding", PADDINGS)
        if padding == "causal" and dims != 1:
            raise ConfigError(f"padding='causal' needs dims=1 (a time axis), got dims={dims}; use padding='same' for images.")
        total = dilation * (kernel_size - 1)
        if padding == "causal":
            symmetric, self.extra = 0, [total, 0]
        else:
            symmetric, self.extra = total // 2, [0, total % 2] * dims
        self.conv = _CONV[dims](in_channels, out_channels, kernel_size, padding=symmetric, dilation=dilation, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        if any(self.extra):
            x = F.pad(x, self.extra)
        return self.conv(x)


class MaxPool(nn.Module):
    """Max pooling by `factor` on every side that is at least `factor` long; shorter sides are kept.

    So pooling can be stacked any number of times without a side ever reaching 0 — an 8x8 digit
    through four stages goes 8 → 4 → 2 → 1 → 1 instead of failing.

    Args:
        factor: window = stride. Default: 2.
        dims: 1 or 2. Default: 2.
        ceil_mode: round output sizes up (keeps the last odd row/column, used by `Down` so upsampling
            can crop back to the exact size) instead of down. Default: False.
    Shape:
        - Input: (B, C, *S).  - Output: (B, C, *S') with S'_i = `output_size(S)`.
    Example:
        >>> MaxPool(2, ceil_mode=True)(torch.zeros(1, 4, 37, 1)).shape
        torch.Size([1, 4, 19, 1])
    """

    def __init__(self, factor: int = 2, *, dims: int = 2, ceil_mode: bool = False):
        super().__init__()
        self.factor = check_positive_int(factor, "factor")
        self.dims = check_dims(dims)
        self.ceil_mode = ceil_mode

    def output_size(self, size: tuple[int, ...]) -> tuple[int, ...]:
        """Spatial size after pooling an input of spatial size `size`."""
        f = self.factor
        return tuple(s if s < f else (-(-s // f) if self.ceil_mode else s // f) for s in size)

    def forward(self, x: Tensor) -> Tensor:
        window = tuple(self.factor if s >= self.factor else 1 for s in x.shape[2:])
        if all(w == 1 for w in window):
            return x
        return _MAX_POOL[self.dims](x, window, window, ceil_mode=self.ceil_mode)

    def extra_repr(self) -> str:
        return f"factor={self.factor}, dims={self.dims}, ceil_mode={self.ceil_mode}"


class ConvBlock(nn.Module):
    """Conv ("same" or "causal" padding) → norm → activation → optional max pooling.

    Args:
        in_channels: C_in.
        out_channels: C_out.
        kernel_size: window length per side; even sizes work too. Default: 3.
        dims: 1 for (B, C, T), 2 for (B, C, H, W). Default: 2.
        norm: "batch" (BatchNorm; the conv then has no bias) or "none". Default: "batch".
        activation: "relu" or "gelu". Default: "relu".
        pool: max-pool factor after the activation, 1 for none; sides shorter than `pool` are not
            pooled (see `MaxPool`). Default: 1.
        dilation: conv dilation. Default: 1.
        padding: "same" or "causal" (1D only). Default: "same".
    Shape:
        - Input: (B, C_in, *S).  - Output: (B, C_out, *S'), S' = S if pool == 1 else
          `block.pool.output_size(S)` (each side // pool when it is at least pool long).
    Example:
        >>> ConvBlock(1, 32, pool=2)(torch.zeros(2, 1, 7, 8)).shape
        torch.Size([2, 32, 3, 4])
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, *, dims: int = 2,
                 norm: str = "batch", activation: str = "relu", pool: int = 1, dilation: int = 1,
                 padding: str = "same"):
        super().__init__()
        check_positive_int(in_channels, "in_channels")
        check_positive_int(out_channels, "out_channels")
        check_choice(norm, "norm", NORMS)
        check_choice(activation, "activation", ACTIVATIONS)
        check_positive_int(pool, "pool")
        # a bias before BatchNorm is cancelled by its mean subtraction
        self.conv = Conv(in_channels, out_channels, kernel_size, dims=dims, dilation=dilation,
                         padding=padding, bias=norm == "none")
        self.norm = _BATCH_NORM[dims](out_channels) if norm == "batch" else nn.Identity()
        self.act = nn.ReLU(inplace=True) if activation == "relu" else nn.GELU()
        self.pool = MaxPool(pool, dims=dims) if pool > 1 else nn.Identity()

    def output_size(self, size: tuple[int, ...]) -> tuple[int, ...]:
        """Spatial size of the output for an input of spatial size `size`."""
        return self.pool.output_size(size) if isinstance(self.pool, MaxPool) else tuple(size)

    def conv_bn_pairs(self) -> list[tuple[str, str]]:
        """The norm reads the conv's output unchanged (for `gridseq.nn.fuse.fold_batchnorm`)."""
        return [("conv", "norm")]

    def forward(self, x: Tensor) -> Tensor:
        return self.pool(self.act(self.norm(self.conv(x))))


def double_conv(in_channels: int, out_channels: int, kernel_size: int = 3, **block) -> nn.Sequential:
    """Two ConvBlocks, in → out → out: the unit of U-Net stages (`block` kwargs go to both)."""
    return nn.Sequential(
        ConvBlock(in_channels, out_channels, kernel_size, **block),
        ConvBlock(out_channels, out_channels, kernel_size, **block),
    )


class Down(nn.Module):
    """Encoder stage: max-pool by 2 (rounding up, sides of 1 kept), then two ConvBlocks.

    Args:
        in_channels: C_in.
        out_channels: C_out.
        kernel_size: conv window. Default: 3.
        dims: 1 or 2. Default: 2.
        norm, activation: as `ConvBlock`. Defaults: "batch", "relu".
    Shape:
        - Input: (B, C_in, *S).  - Output: (B, C_out, *ceil(S / 2)) (a side of 1 stays 1).
    Example:
        >>> Down(8, 16)(torch.zeros(1, 8, 37, 53)).shape
        torch.Size([1, 16, 19, 27])
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, *, dims: int = 2,
                 norm: str = "batch", activation: str = "relu"):
        super().__init__()
        self.pool = MaxPool(2, dims=dims, ceil_mode=True)
        self.convs = double_conv(in_channels, out_channels, kernel_size, dims=dims, norm=norm, activation=activation)

    def forward(self, x: Tensor) -> Tensor:
        return self.convs(self.pool(x))


class Upsample(nn.Module):
    """Resize a feature map to an exact target size, changing its channels.

    Args:
        in_channels: C_in.
        out_channels: C_out.
        dims: 1 or 2. Default: 2.
        mode: "transpose" — a learned transposed conv with kernel = stride = `scale`, then cropped (or
            zero-padded) to the target, so any target size works; "interp" — (bi)linear interpolation
            straight to the target size, then a 1x1 conv. Default: "transpose".
        scale: the expected up-sampling factor (used by "transpose"). Default: 2.
    Shape:
        - x: (B, C_in, *S).  - size: the target spatial size S_out.  - Output: (B, C_out, *S_out).
    Example:
        >>> Upsample(16, 8)(torch.zeros(1, 16, 19, 27), (37, 53)).shape
        torch.Size([1, 8, 37, 53])
    """

    def __init__(self, in_channels: int, out_channels: int, *, dims: int = 2, mode: str = "transpose", scale: int = 2):
        super().__init__()
        check_dims(dims)
        self.mode = check_choice(mode, "mode", UPSAMPLE_MODES)
        check_positive_int(scale, "scale")
        if mode == "transpose":
            self.proj = _CONV_T[dims](in_channels, out_channels, scale, stride=scale)
        else:
            self.proj = _CONV[dims](in_channels, out_channels, 1)
        self.dims = dims

    def forward(self, x: Tensor, size: tuple[int, ...]) -> Tensor:
        size = tuple(int(s) for s in size)
        if self.mode == "transpose":
            return fit_to_size(self.proj(x), size)
        return self.proj(F.interpolate(x, size=size, mode=_INTERP[self.dims], align_corners=False))


class Up(nn.Module):
    """U-Net decoder stage: upsample to the skip connection's size, concatenate it, two ConvBlocks.

    Args:
        in_channels: channels of the deeper map being upsampled.
        skip_channels: channels of the encoder map at the target resolution.
        out_channels: C_out.
        kernel_size: conv window. Default: 3.
        dims: 1 or 2. Default: 2.
        mode: "transpose" or "interp", see `Upsample`. Default: "transpose".
        norm, activation: as `ConvBlock`.
    Shape:
        - x: (B, C_in, *S_deep).  - skip: (B, C_skip, *S).  - Output: (B, C_out, *S) — the skip's size.
    Example:
        >>> Up(16, 8, 8)(torch.zeros(1, 16, 19, 27), torch.zeros(1, 8, 37, 53)).shape
        torch.Size([1, 8, 37, 53])
    """

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int, kernel_size: int = 3, *,
                 dims: int = 2, mode: str = "transpose", norm: str = "batch", activation: str = "relu"):
        super().__init__()
        self.up = Upsample(in_channels, out_channels, dims=dims, mode=mode)
        self.convs = double_conv(out_channels + skip_channels, out_channels, kernel_size, dims=dims, norm=norm,
                                 activation=activation)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        x = self.up(x, skip.shape[2:])
        return self.convs(torch.cat([x, skip], dim=1))  # (B, C_out + C_skip, *S)
