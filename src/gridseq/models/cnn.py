"""CNN: the classic classifier — conv/BatchNorm/ReLU/max-pool blocks, then fully connected layers.

2D over images (B, C, H, W); 1D over fixed-length sequences (B, T, F), convolving along time with the
F features as channels — the "plain 1D CNN" of sequence benchmarks such as MNIST-1D.

Split timm-style into `forward_features` (the conv encoder, flattened to one vector per image) and
`forward_head` (the fully connected classifier), so a CNN→RNN video model can run the encoder on
every frame and feed the vectors to a recurrent layer.

Large images: a fully connected layer over a large conv map is a parameter sink that does not learn
(224x224 photos through the default blocks leave a 64x56x56 map: a 200,704 x 128 Linear, 25.7M
weights, stuck at chance). So when an image's last map holds more than `AUTO_POOL_ABOVE` (4,096)
values, the head averages it over positions first (`global_pool`); smaller maps — 8x8 digits, 28x28
MNIST, 32x32 folders, every 1D sequence — are flattened exactly as before.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch import Tensor, nn

from gridseq import shapes
from gridseq._validation import check_choice, check_int_tuple, check_positive_int, check_probability
from gridseq.errors import ConfigError, ShapeError
from gridseq.models import registry
from gridseq.models.traits import Traits
from gridseq.nn.conv import ConvBlock, MaxPool
from gridseq.nn.sequence import to_fixed_length

GLOBAL_POOLS = ("avg", "max", "none")
# the largest image map (C' * H' * W') the head still flattens when global_pool is None: 28x28 MNIST
# through the default (32, 64) blocks leaves 64 x 7 x 7 = 3,136, a 32x32 image 64 x 8 x 8 = 4,096
AUTO_POOL_ABOVE = 4096


@dataclass(frozen=True)
class CNNConfig:
    """Configuration of `CNN`.

    Args:
        input_shape: (C, H, W) of one image (2D CNN) or (T, F) of one sequence (1D CNN over time);
            the fully connected layer is sized from it.
        num_classes: K, the number of classes.
        channels: output channels of each conv block; each block halves H and W (or T) by max pooling.
            Default: (32, 64) — enough for 8x8 digits and 28x28 MNIST-like images.
        kernel_sizes: conv window of each block (one int is used for every block). Default: 3.
        hidden: width of the fully connected hidden layer; 0 for none (a single linear layer).
            Default: 128.
        dropout: dropout before each fully connected layer. Default: 0.25.
        batch_norm: BatchNorm after each conv. Default: True.
        global_pool: how the head reads the last conv map: "none" flattens it (keeps *where* things
            are), "avg" / "max" take the mean / maximum of each channel over all positions (what, not
            where; the fully connected layer then has C' inputs whatever the image size). None
            chooses: "avg" for images whose map holds more than `AUTO_POOL_ABOVE` = 4,096 values
            (C' * H' * W'), else "none"; sequences always "none". Resolved when the config is built,
            so config.json records what was built. Default: None.
    """

    input_shape: tuple[int, ...]
    num_classes: int
    channels: tuple[int, ...] = (32, 64)
    kernel_sizes: tuple[int, ...] | int = 3
    hidden: int = 128
    dropout: float = 0.25
    batch_norm: bool = True
    global_pool: str | None = None

    def __post_init__(self) -> None:
        input_shape = check_int_tuple(self.input_shape, "input_shape")
        if len(input_shape) not in (2, 3):
            raise ConfigError(
                f"input_shape must be (C, H, W) for images or (T, F) for sequences, got {self.input_shape!r}."
            )
        channels = check_int_tuple(self.channels, "channels")
        kernels = check_int_tuple(self.kernel_sizes, "kernel_sizes")
        if len(kernels) == 1:
            kernels = kernels * len(channels)
        if len(kernels) != len(channels):
            raise ConfigError(
                f"kernel_sizes must have one entry per conv block (len(channels) = {len(channels)}) or be one int, "
                f"got {self.kernel_sizes!r}."
            )
        check_positive_int(self.num_classes, "num_classes")
        check_positive_int(self.hidden, "hidden", minimum=0)
        check_probability(self.dropout, "dropout")
        if not isinstance(self.batch_norm, bool):
            raise ConfigError(f"batch_norm must be True or False, got {self.batch_norm!r}.")
        if self.global_pool is not None:
            check_choice(self.global_pool, "global_pool", GLOBAL_POOLS)
        object.__setattr__(self, "input_shape", input_shape)
        object.__setattr__(self, "channels", channels)
        object.__setattr__(self, "kernel_sizes", kernels)
        if self.global_pool is None:
            object.__setattr__(self, "global_pool", _auto_pool(input_shape, channels))


def _auto_pool(input_shape: tuple[int, ...], channels: tuple[int, ...]) -> str:
    """The `global_pool` None stands for: "avg" for images whose last conv map is large, else "none"."""
    if len(input_shape) == 2:  # sequences: the position in time is the signal (and docs' figures rely on it)
        return "none"
    size = tuple(input_shape[1:])
    for _ in channels:  # each block max-pools by 2 the sides that are at least 2 long
        size = MaxPool(2).output_size(size)
    return "avg" if channels[-1] * math.prod(size) > AUTO_POOL_ABOVE else "none"


class CNN(nn.Module):
    """Classifier: [Conv → BatchNorm → ReLU → MaxPool(2)] per entry of `channels`, flatten,
    [global pool], [Dropout → Linear(hidden) → ReLU], Dropout → Linear(K).

    Global pooling (`config.global_pool` "avg" or "max", chosen automatically for images whose
    last map holds more than 4,096 values): the head reduces the flattened map to one value per
    channel before its first Linear, so `forward_features` is still the whole flattened map
    (what `crnn` and `captioner` read) and only the head changes.

    Tiny images: a block pools a side only while that side is at least 2 long (see
    `gridseq.nn.conv.MaxPool`), so any number of blocks works on any image size — an 8x8 digit with
    three blocks goes 8 → 4 → 2 → 1, a fourth block keeps 1x1 and just convolves.

    Sequences: with input_shape (T, F) the blocks are 1D convolutions along time over F channels.
    Padded steps (beyond `lengths`) are zeroed and the time axis is padded or cropped to T, as in `mlp`.

    Args:
        config: CNNConfig.
    Shape:
        - images: x (B, C, H, W) float, with (C, H, W) = config.input_shape; lengths must be None.
        - sequences: x (B, T', F) float with F = input_shape[1]; lengths (B,) int64 optional.
        - Output: (B, K) logits. `forward_features`: (B, num_features), the flattened last conv
          map, num_features = C' * H' * W' (or C' * T'); `forward_head`: (B, K).
    Example:
        >>> import torch
        >>> m = CNN(CNN.Config(input_shape=(1, 28, 28), num_classes=10))
        >>> m(torch.zeros(2, 1, 28, 28)).shape
        torch.Size([2, 10])
        >>> m.forward_features(torch.zeros(2, 1, 28, 28)).shape  # 64 channels x 7 x 7
        torch.Size([2, 3136])
        >>> CNN(CNN.Config(input_shape=(40, 1), num_classes=10))(torch.zeros(2, 40, 1)).shape
        torch.Size([2, 10])
        >>> big = CNN(CNN.Config(input_shape=(3, 224, 224), num_classes=10))  # 64 x 56 x 56 map > 4,096
        >>> big.config.global_pool, big.head_features  # the head averages each channel: 64 inputs
        ('avg', 64)
    """

    Config = CNNConfig
    topology = "one-to-one"
    TRAITS = Traits()

    def __init__(self, config: CNNConfig):
        super().__init__()
        self.config = config
        self.is_sequence = len(config.input_shape) == 2
        if self.is_sequence:
            self.topology = "many-to-one"
            steps, in_ch = config.input_shape
            size, dims = (steps,), 1
        else:
            in_ch, *size = config.input_shape
            size, dims = tuple(size), 2
        blocks = []
        for out_ch, k in zip(config.channels, config.kernel_sizes):
            block = ConvBlock(in_ch, out_ch, k, dims=dims, norm="batch" if config.batch_norm else "none", pool=2)
            blocks.append(block)
            size, in_ch = block.output_size(size), out_ch
        self.features = nn.Sequential(*blocks)
        self.feature_shape = (in_ch, *size)  # (C', H', W') or (C', T') of the last conv map
        self.num_features = math.prod(self.feature_shape)
        # the width the fully connected layers read: C' after global pooling, else the whole map
        self.head_features = in_ch if config.global_pool != "none" else self.num_features
        layers: list[nn.Module] = []
        width = self.head_features
        if config.hidden:
            layers += [nn.Dropout(config.dropout), nn.Linear(width, config.hidden), nn.ReLU(inplace=True)]
            width = config.hidden
        layers += [nn.Dropout(config.dropout), nn.Linear(width, config.num_classes)]
        self.head = nn.Sequential(*layers)

    def forward_features(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """The conv encoder: (B, C, H, W) images or (B, T', F) sequences → (B, num_features)."""
        if self.is_sequence:
            steps, features = self.config.input_shape
            x, lengths = shapes.check_sequence(x, lengths, features=features)
            x = to_fixed_length(x, lengths, steps).transpose(1, 2)  # (B, F, T): features are channels
        else:
            if lengths is not None:
                raise ShapeError("a CNN built for images (input_shape (C, H, W)) takes no lengths; pass lengths=None.")
            c, h, w = self.config.input_shape
            x = shapes.check_image(x, channels=c, size=(h, w))
        return self.features(x).flatten(1)  # (B, C' * H' * W') or (B, C' * T')

    def forward_head(self, features: Tensor) -> Tensor:
        """[Global pooling], then the fully connected classifier: (B, num_features) → (B, K) logits."""
        if features.dim() != 2 or features.shape[1] != self.num_features:
            raise ShapeError(
                f"expected features of shape (B, {self.num_features}) from forward_features, got {tuple(features.shape)}."
            )
        pool = self.config.global_pool
        if pool != "none":
            maps = features.reshape(features.shape[0], self.feature_shape[0], -1)  # (B, C', H'*W') or (B, C', T')
            features = maps.mean(dim=2) if pool == "avg" else maps.amax(dim=2)  # (B, C')
        return self.head(features)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        return self.forward_head(self.forward_features(x, lengths))


def _from_info(info) -> dict:
    return {"input_shape": tuple(info.input_shape), "num_classes": info.output_size}


registry.register(
    "cnn", CNN,
    description="conv/BatchNorm/ReLU/max-pool blocks + fully connected layers (2D on images, 1D on sequences)",
    kinds=("image", "sequence", "series"), from_info=_from_info,
)
