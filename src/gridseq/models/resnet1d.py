"""ResNet for time-series classification (Wang, Yan & Oates 2017, "Time series classification from
scratch with deep neural networks: a strong baseline").

Three residual blocks of 64, 128 and 128 filters. Each block is three convolutions with kernels 8, 5
and 3, every one followed by batch norm, with ReLU after the first two and after the sum with the
shortcut. The shortcut is a 1x1 convolution + batch norm when the width changes, batch norm alone
when it does not (as in the reference implementation of Fawaz et al. 2019). No down-sampling: every
block keeps the full length T. Global average pooling over the valid steps, then a linear layer.

Variable length: padded steps are zeroed before every convolution, and "same" padding pads with
zeros past the end, so in eval mode a series' valid steps — and its logits — do not depend on how
much padding its batch added.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from gridseq import shapes
from gridseq._validation import check_int_tuple, check_positive_int
from gridseq.errors import ConfigError
from gridseq.models import registry
from gridseq.models.traits import Traits
from gridseq.nn.conv import Conv, ConvBlock
from gridseq.nn.sequence import length_mask, masked_mean


@dataclass(frozen=True)
class ResNet1dConfig:
    """Configuration of `ResNet1d`.

    Args:
        in_channels: F, features (channels) per step.
        num_classes: K.
        channels: width of each residual block. Default: (64, 128, 128), as Wang et al.
        kernel_sizes: the three conv windows inside every block. Default: (8, 5, 3).
    """

    in_channels: int
    num_classes: int
    channels: tuple[int, ...] = (64, 128, 128)
    kernel_sizes: tuple[int, ...] = (8, 5, 3)

    def __post_init__(self) -> None:
        check_positive_int(self.in_channels, "in_channels")
        check_positive_int(self.num_classes, "num_classes")
        object.__setattr__(self, "channels", check_int_tuple(self.channels, "channels"))
        kernels = check_int_tuple(self.kernel_sizes, "kernel_sizes")
        if len(kernels) < 2:
            raise ConfigError(f"kernel_sizes needs at least 2 convs per block (Wang et al.: (8, 5, 3)), got {self.kernel_sizes!r}.")
        object.__setattr__(self, "kernel_sizes", kernels)


class ResidualBlock(nn.Module):
    """conv-BN-ReLU ... conv-BN, plus the shortcut, then ReLU; zeroes padded steps before every conv.

    Shape:
        - x: (B, C_in, T), zero at padded steps.  - mask: (B, 1, T) float or None.
        - Output: (B, C_out, T), NOT re-masked (the next block or the pooling does it).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_sizes: tuple[int, ...]):
        super().__init__()
        widths = (in_channels,) + (out_channels,) * len(kernel_sizes)
        self.convs = nn.ModuleList(ConvBlock(i, o, k, dims=1) for i, o, k in zip(widths[:-2], widths[1:-1], kernel_sizes[:-1]))
        # the last conv's ReLU comes after the sum with the shortcut
        self.last = nn.Sequential(Conv(out_channels, out_channels, kernel_sizes[-1], dims=1, bias=False),
                                  nn.BatchNorm1d(out_channels))
        shortcut = [nn.Conv1d(in_channels, out_channels, 1, bias=False)] if in_channels != out_channels else []
        self.shortcut = nn.Sequential(*shortcut, nn.BatchNorm1d(out_channels))
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        h = x
        for conv in self.convs:
            h = conv(h)
            if mask is not None:
                h = h * mask  # BatchNorm's shift made padded steps non-zero
        return self.act(self.last(h) + self.shortcut(x))


class ResNet1d(nn.Module):
    """Residual network for time-series classification (Wang et al. 2017); see the module docstring.

    Args:
        config: ResNet1dConfig.
    Shape:
        - x: (B, T, F) float.  - lengths: (B,) int64, optional.  - Output: (B, K) logits.
    Raises:
        ShapeError: on a wrong layout or feature count.
    Example:
        >>> import torch
        >>> ResNet1d(ResNet1d.Config(in_channels=3, num_classes=5))(torch.zeros(2, 40, 3)).shape
        torch.Size([2, 5])
    """

    Config = ResNet1dConfig
    topology = "many-to-one"
    TRAITS = Traits()

    def __init__(self, config: ResNet1dConfig):
        super().__init__()
        self.config = config
        ins = (config.in_channels, *config.channels[:-1])
        self.blocks = nn.ModuleList(ResidualBlock(i, o, config.kernel_sizes) for i, o in zip(ins, config.channels))
        self.classifier = nn.Linear(config.channels[-1], config.num_classes)

    def forward_features(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """The pooled features (B, C_last)."""
        x, lengths = shapes.check_sequence(x, lengths, features=self.config.in_channels)
        h = x.transpose(1, 2)  # (B, F, T): channels first for Conv1d
        mask = None if lengths is None else length_mask(lengths, x.shape[1], x.device).unsqueeze(1).to(x.dtype)  # (B, 1, T)
        for block in self.blocks:
            h = block(h if mask is None else h * mask, mask)
        return masked_mean(h.transpose(1, 2), lengths)  # (B, T, C) -> (B, C): mean over valid steps

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        return self.classifier(self.forward_features(x, lengths))  # (B, K)


def _from_info(info) -> dict:
    return {"in_channels": info.input_shape[-1], "num_classes": info.output_size}


registry.register(
    "resnet1d", ResNet1d,
    description="ResNet for time series (Wang et al. 2017): 3 residual blocks 64-128-128, kernels 8-5-3, BN, "
                "global average pooling over valid steps",
    kinds=("sequence", "series"), from_info=_from_info,
)
