"""`centernet`: a single-stage, anchor-free dense object detector (CenterNet style, Zhou et al. 2019).

    image (B, C, H, W) ─► stem (2 conv blocks, full size) ─► Down ×n ─► deepest map (1/2^n)
        ─► Up (U-Net decoder stages, skips) back to 1/stride ─► 3x3 conv ─► heads, per location:
              K class-heatmap logits  ("an object of class k is centred here")
              2 box sizes (w, h) in input pixels / stride
              2 centre offsets (dx, dy) in output cells, in [0, 1): the sub-cell position of the centre

The output is one dense map `(B, K + 4, ceil(H / stride), ceil(W / stride))`: the fully convolutional
idea applied to detection, so the same weights run on any image size (a model trained on 64x64 images
reads 128x192 ones). `gridseq.tasks.detect` turns it into boxes (peaks of the heatmap, score threshold,
non-maximum suppression) and trains it (focal loss on the heatmap, L1 on size and offset at centres).

    >>> import torch
    >>> from gridseq import models
    >>> m = models.create("centernet", in_channels=3, num_classes=13, channels=(8, 16, 32))
    >>> m(torch.zeros(2, 3, 64, 64)).shape
    torch.Size([2, 17, 16, 16])
    >>> m(torch.zeros(1, 3, 97, 130)).shape
    torch.Size([1, 17, 25, 33])
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from gridseq import shapes
from gridseq._validation import check_int_tuple, check_positive_int
from gridseq.errors import ConfigError, ShapeError
from gridseq.models.registry import register
from gridseq.models.traits import Traits
from gridseq.nn.conv import Down, Up, double_conv

PRIOR = 0.05  # initial heatmap probability: the heads start near "no object" (focal-loss init, Lin et al. 2017)


@dataclass(frozen=True)
class CenterNetConfig:
    """Configuration of a `CenterNet`.

    Args:
        in_channels: C of the images.
        num_classes: K object classes (no background class: the heatmap is per class).
        channels: width of the stem and of each encoder stage; each stage after the first halves H
            and W, so there are len(channels) - 1 down-sampling stages. Default: (32, 64, 128).
        stride: output stride, a power of 2 no larger than 2^(len(channels) - 1): the decoder
            upsamples back (with skips) until the map is 1/stride of the input. Default: 4.
        head_channels: width of the 3x3 conv before the heads. Default: 64.
        batch_norm: BatchNorm after each conv. Default: True.
    """

    in_channels: int
    num_classes: int
    channels: tuple[int, ...] = (32, 64, 128)
    stride: int = 4
    head_channels: int = 64
    batch_norm: bool = True

    def __post_init__(self) -> None:
        check_positive_int(self.in_channels, "in_channels")
        check_positive_int(self.num_classes, "num_classes")
        object.__setattr__(self, "channels", check_int_tuple(self.channels, "channels"))
        check_positive_int(self.head_channels, "head_channels")
        check_positive_int(self.stride, "stride")
        depth = len(self.channels) - 1
        if self.stride & (self.stride - 1) or self.stride > 2 ** depth:
            raise ConfigError(f"stride must be a power of 2 at most 2^(len(channels) - 1) = {2 ** depth} (channels "
                              f"{self.channels}), got {self.stride}; use a smaller stride or more channels.")

    @property
    def up_stages(self) -> int:
        return len(self.channels) - 1 - int(math.log2(self.stride))


class CenterNet(nn.Module):
    """CenterNet-style detector: a U-Net encoder-decoder cut at 1/stride and per-location heads.

    Args:
        config: CenterNetConfig.
    Shape:
        - Input: (B, C, H, W) float, any H, W.
        - Output: (B, K + 4, ceil(H / stride), ceil(W / stride)): channels 0..K-1 heatmap logits,
          K..K+1 box width and height (input pixels / stride), K+2..K+3 centre offsets (x, y) in cells.
    Example:
        >>> CenterNet(CenterNet.Config(in_channels=1, num_classes=2, channels=(4, 8, 8)))(torch.zeros(1, 1, 33, 17)).shape
        torch.Size([1, 6, 9, 5])
    """

    Config = CenterNetConfig
    topology = "many-to-many"
    TRAITS = Traits(output_grid=True)

    def __init__(self, config: CenterNetConfig):
        super().__init__()
        self.config = c = config
        norm = "batch" if c.batch_norm else "none"
        ch = c.channels
        self.stem = double_conv(c.in_channels, ch[0], norm=norm)
        self.downs = nn.ModuleList(Down(i, o, norm=norm) for i, o in zip(ch[:-1], ch[1:]))
        # decoder: deepest first, up to the stage whose resolution is 1/stride
        pairs = list(zip(ch[:0:-1], ch[-2::-1]))[: c.up_stages]
        self.ups = nn.ModuleList(Up(deep, skip, skip, norm=norm) for deep, skip in pairs)
        width = ch[len(ch) - 1 - c.up_stages]
        self.neck = nn.Sequential(nn.Conv2d(width, c.head_channels, 3, padding=1), nn.ReLU(inplace=True))
        self.heatmap = nn.Conv2d(c.head_channels, c.num_classes, 1)
        self.box = nn.Conv2d(c.head_channels, 4, 1)
        nn.init.constant_(self.heatmap.bias, math.log(PRIOR / (1 - PRIOR)))

    def output_grid(self, size: tuple[int, int]) -> tuple[int, int, int]:
        """(K + 4, h, w) of the output for an input of spatial size `size` (H, W): each side ceil(side / stride).

        Example:
            >>> CenterNet(CenterNet.Config(in_channels=3, num_classes=2)).output_grid((97, 130))
            (6, 25, 33)
        """
        s = self.config.stride
        return (self.config.num_classes + 4, *(-(-side // s) for side in size))

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        if lengths is not None:
            raise ShapeError("centernet takes whole images and no lengths; pass lengths=None.")
        x = shapes.check_image(x, channels=self.config.in_channels)
        maps = [self.stem(x)]
        for down in self.downs:
            maps.append(down(maps[-1]))
        h = maps[-1]
        for i, up in enumerate(self.ups):
            h = up(h, maps[-2 - i])
        h = self.neck(h)
        return torch.cat([self.heatmap(h), self.box(h)], dim=1)


def _from_info(info) -> dict:
    return {"in_channels": info.input_shape[0], "num_classes": info.num_classes}


register(
    "centernet", CenterNet,
    description="CenterNet-style anchor-free detector: class heatmap + box size/offset per location, any image size",
    kinds=("image",), from_info=_from_info,
)
