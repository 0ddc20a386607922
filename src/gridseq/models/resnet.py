"""ResNet for images (He et al. 2016, "Deep residual learning for image recognition"): a strided stem,
stages of BasicBlocks, global average pooling, dropout and a linear layer.

    x (B, C, H, W) ─► stem: Conv k×k stride s → BN → ReLU [→ MaxPool 3×3 stride 2]
                   ─► stage 1 (stride 1) ─► stage 2 (stride 2) ─► … ─► (B, C_last, H', W')
                   ─► mean over H', W' ─► (B, C_last) = forward_features ─► Dropout → Linear ─► (B, K)

Registered names (presets over one `ResNet` family):

    resnet      small, for photos on a laptop CPU: widths 32-64-128-256, one block per stage, 3×3/2 stem + max-pool
    resnet18    torchvision's: BasicBlocks (2, 2, 2, 2), widths 64-128-256-512, 7×7/2 stem + 3×3/2 max-pool
    resnet34    as resnet18 with (3, 4, 6, 3) blocks

Small images (shorter side <= 32 px: digits, MNIST, CIFAR-sized folders) get a stride-1 stem without
max-pool unless `stem_stride` / `stem_pool` say otherwise, as the CIFAR ResNets of He et al. do.
Any image size works: every down-sampling step (the strided stem, the max-pool, the first block of
stages 2+) maps a side n to ceil(n / 2), so a side never drops below 1 — an 8×8 image through
resnet18 with the photo stem goes 8 → 4 → 2 → 2 → 1 → 1 → 1, and a 1×1 map just keeps convolving.
Split timm-style into `forward_features` (pooled, (B, num_features)) and `forward_head`, so the
network can encode video frames through `gridseq.nn.TimeDistributed(model, method="forward_features")`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch import Tensor, nn

from gridseq import shapes
from gridseq._validation import check_int_tuple, check_positive_int, check_probability
from gridseq.errors import ConfigError, ShapeError
from gridseq.models import registry
from gridseq.models.traits import Traits

# the largest shorter side of a "small" image (8x8 digits, 28x28 MNIST, 32x32 CIFAR): unless told
# otherwise its stem keeps full resolution — on 8x8 digits a 1/4 stem cost 5 points of validation
# accuracy (0.941 vs 0.988, seeds 0-2, 15 epochs)
SMALL_IMAGE = 32


@dataclass(frozen=True)
class ResNetConfig:
    """Configuration of `ResNet`. The defaults are the "resnet" preset.

    Args:
        input_shape: (C, H, W) of one image; the network is fully convolutional up to the pooling, so
            H and W only fix what `forward` accepts.
        num_classes: K.
        channels: width of each stage; stage i > 0 halves H and W in its first block. Default:
            (32, 64, 128, 256) — half of resnet18's widths; with one block per stage and the 3x3
            stem, 9x fewer multiply-adds than resnet18 (0.066 G vs 0.59 G per 128x128 image).
        blocks: BasicBlocks per stage (one int for every stage). Default: 1 — half the
            multiply-adds of (2, 2, 2, 2).
        stem_channels: width of the stem conv; None for channels[0]. Default: None.
        stem_kernel: odd window of the stem conv: 3 (cheap, for small photos) or 7 (torchvision). Default: 3.
        stem_stride: stride of the stem conv; None chooses 2 for photos and 1 (full resolution)
            for small images, whose shorter side is at most `SMALL_IMAGE` = 32 px. Default: None.
        stem_pool: a 3x3 stride-2 max-pool after the stem, so stage 1 runs at 1/4 resolution with
            stride 2; None chooses True for photos, False for small images. Default: None.
        dropout: before the linear layer. Default: 0.
        zero_init_last: start the last BatchNorm of every block at zero, so each block begins as the
            identity (Goyal et al. 2017; timm's default). Default: True.
    """

    input_shape: tuple[int, ...]
    num_classes: int
    channels: tuple[int, ...] = (32, 64, 128, 256)
    blocks: tuple[int, ...] | int = 1
    stem_channels: int | None = None
    stem_kernel: int = 3
    stem_stride: int | None = None
    stem_pool: bool | None = None
    dropout: float = 0.0
    zero_init_last: bool = True

    def __post_init__(self) -> None:
        input_shape = check_int_tuple(self.input_shape, "input_shape")
        if len(input_shape) != 3:
            raise ConfigError(f"input_shape must be (C, H, W) of one image, got {self.input_shape!r}.")
        check_positive_int(self.num_classes, "num_classes")
        channels = check_int_tuple(self.channels, "channels")
        if not channels:
            raise ConfigError("channels must name at least one stage width, e.g. (32, 64, 128, 256).")
        blocks = check_int_tuple(self.blocks, "blocks")
        if len(blocks) == 1:
            blocks = blocks * len(channels)
        if len(blocks) != len(channels):
            raise ConfigError(
                f"blocks must have one entry per stage (len(channels) = {len(channels)}) or be one int, got {self.blocks!r}."
            )
        stem_channels = channels[0] if self.stem_channels is None else check_positive_int(self.stem_channels, "stem_channels")
        check_positive_int(self.stem_kernel, "stem_kernel")
        if self.stem_kernel % 2 == 0:
            raise ConfigError(f"stem_kernel must be odd (3 or 7), so the stem maps a side n to ceil(n / stride); got {self.stem_kernel}.")
        small = min(input_shape[1:]) <= SMALL_IMAGE
        stem_stride = (1 if small else 2) if self.stem_stride is None else check_positive_int(self.stem_stride, "stem_stride")
        stem_pool = (not small) if self.stem_pool is None else self.stem_pool
        for flag, value in (("stem_pool", stem_pool), ("zero_init_last", self.zero_init_last)):
            if not isinstance(value, bool):
                raise ConfigError(f"{flag} must be True or False, got {value!r}.")
        object.__setattr__(self, "input_shape", input_shape)
        object.__setattr__(self, "channels", channels)
        object.__setattr__(self, "blocks", blocks)
        object.__setattr__(self, "stem_channels", stem_channels)
        object.__setattr__(self, "stem_stride", stem_stride)
        object.__setattr__(self, "stem_pool", stem_pool)
        object.__setattr__(self, "dropout", check_probability(self.dropout, "dropout"))


def _down(side: int, stride: int) -> int:
    """A side after a 'same'-padded window of stride `stride`: ceil(side / stride), never below 1."""
    return -(-side // stride)


class BasicBlock(nn.Module):
    """conv3x3(stride) → BN → ReLU → conv3x3 → BN, plus the shortcut, then ReLU.

    The shortcut is the identity, or a 1x1 conv (with the block's stride) + BN where the stride or
    the width changes (He et al.'s option B).

    Shape:
        - Input: (B, C_in, H, W).  - Output: (B, C_out, ceil(H / stride), ceil(W / stride)).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        # no conv bias: BatchNorm's mean subtraction would cancel it
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.act = nn.ReLU(inplace=True)
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(out_channels))
        else:
            self.shortcut = nn.Identity()

    def conv_bn_pairs(self) -> list[tuple[str, str]]:
        """Each BatchNorm reads its conv's output unchanged (for `gridseq.nn.fuse.fold_batchnorm`)."""
        return [("conv1", "bn1"), ("conv2", "bn2")]

    def forward(self, x: Tensor) -> Tensor:
        h = self.act(self.bn1(self.conv1(x)))
        return self.act(self.bn2(self.conv2(h)) + self.shortcut(x))


class ResNet(nn.Module):
    """Image classifier: stem, residual stages of BasicBlocks, global average pooling, Dropout → Linear(K).

    Args:
        config: ResNetConfig.
    Shape:
        - x: (B, C, H, W) float with (C, H, W) = config.input_shape.  - lengths: must be None.
        - Output: (B, K) logits. `forward_features`: (B, num_features) with num_features =
          channels[-1]; `forward_head`: (B, K). `feature_shape`: (C_last, H', W') of the last map.
    Raises:
        ShapeError: on a wrong layout, channel count or image size, and in training mode for a
            batch of ONE image whose last map is 1x1: BatchNorm cannot normalise one value per
            channel. Train on batches of 2 or more, or call model.eval() for inference.
    Example:
        >>> import torch
        >>> m = ResNet(ResNet.Config(input_shape=(3, 96, 96), num_classes=10))
        >>> m(torch.zeros(2, 3, 96, 96)).shape
        torch.Size([2, 10])
        >>> m.forward_features(torch.zeros(2, 3, 96, 96)).shape, m.feature_shape  # 96 → 48 → 24 → 12 → 6 → 3
        (torch.Size([2, 256]), (256, 3, 3))
        >>> digits = ResNet(ResNet.Config(input_shape=(1, 8, 8), num_classes=10))  # small: stride-1 stem, no pool
        >>> digits(torch.zeros(2, 1, 8, 8)).shape, digits.feature_shape  # 8 → 8 → 4 → 2 → 1
        (torch.Size([2, 10]), (256, 1, 1))
    """

    Config = ResNetConfig
    topology = "one-to-one"
    TRAITS = Traits()

    def __init__(self, config: ResNetConfig):
        super().__init__()
        self.config = config
        c = config
        in_ch, height, width = c.input_shape
        stem = [nn.Conv2d(in_ch, c.stem_channels, c.stem_kernel, stride=c.stem_stride, padding=c.stem_kernel // 2,
                          bias=False),
                nn.BatchNorm2d(c.stem_channels), nn.ReLU(inplace=True)]
        size = (_down(height, c.stem_stride), _down(width, c.stem_stride))
        if c.stem_pool:
            stem.append(nn.MaxPool2d(3, stride=2, padding=1))
            size = (_down(size[0], 2), _down(size[1], 2))
        self.stem = nn.Sequential(*stem)
        stages, in_ch = [], c.stem_channels
        for i, (out_ch, n) in enumerate(zip(c.channels, c.blocks)):
            stride = 1 if i == 0 else 2
            stages.append(nn.Sequential(*(BasicBlock(in_ch if j == 0 else out_ch, out_ch, stride if j == 0 else 1)
                                          for j in range(n))))
            size, in_ch = (_down(size[0], stride), _down(size[1], stride)), out_ch
        self.stages = nn.Sequential(*stages)
        self.feature_shape = (in_ch, *size)  # (C_last, H', W') of the last map, before pooling
        self.num_features = in_ch
        self.head = nn.Sequential(nn.Dropout(c.dropout), nn.Linear(in_ch, c.num_classes))
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):  # He et al. 2015 (torchvision's init): variance kept through ReLUs
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if self.config.zero_init_last:
            for m in self.modules():
                if isinstance(m, BasicBlock):
                    nn.init.zeros_(m.bn2.weight)

    def forward_features(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """Stem, stages and global average pooling: (B, C, H, W) → (B, num_features)."""
        if lengths is not None:
            raise ShapeError("resnet takes images (B, C, H, W) and no lengths; pass lengths=None.")
        c, h, w = self.config.input_shape
        x = shapes.check_image(x, channels=c, size=(h, w))
        if self.training and x.shape[0] * math.prod(self.feature_shape[1:]) == 1:
            raise ShapeError(
                f"resnet in training mode cannot batch-normalise a batch of one image whose last feature map is "
                f"{self.feature_shape[1]}x{self.feature_shape[2]} (1 value per channel); train on batches of 2 or more, "
                f"or call model.eval() for inference."
            )
        maps = self.stages(self.stem(x))  # (B, C_last, H', W')
        return maps.mean(dim=(2, 3))  # (B, C_last)

    def forward_head(self, features: Tensor) -> Tensor:
        """Dropout → Linear: (B, num_features) → (B, K) logits."""
        if features.dim() != 2 or features.shape[1] != self.num_features:
            raise ShapeError(
                f"expected features of shape (B, {self.num_features}) from forward_features, got {tuple(features.shape)}."
            )
        return self.head(features)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        return self.forward_head(self.forward_features(x, lengths))


def _from_info(info) -> dict:
    return {"input_shape": tuple(info.input_shape), "num_classes": info.output_size}


_TORCHVISION = {"channels": (64, 128, 256, 512), "stem_kernel": 7}  # torchvision's widths and stem (on photos)

registry.register(
    "resnet", ResNet,
    description="small ResNet for photos on a CPU: 3x3/2 stem + max-pool, BasicBlocks 32-64-128-256 (1 per stage), "
                "global average pooling",
    kinds=("image",), from_info=_from_info,
)
registry.register(
    "resnet18", ResNet,
    description="ResNet-18 (torchvision layout): 7x7/2 stem + max-pool, BasicBlocks (2, 2, 2, 2) 64-128-256-512",
    kinds=("image",), defaults={**_TORCHVISION, "blocks": (2, 2, 2, 2)}, from_info=_from_info,
)
registry.register(
    "resnet34", ResNet,
    description="ResNet-34 (torchvision layout): 7x7/2 stem + max-pool, BasicBlocks (3, 4, 6, 3) 64-128-256-512",
    kinds=("image",), defaults={**_TORCHVISION, "blocks": (3, 4, 6, 3)}, from_info=_from_info,
)
