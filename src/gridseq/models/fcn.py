"""FCN: fully convolutional networks — no fully connected layer sized by the input, so any input size works.

One family, two shapes of data (`dims`) and two kinds of output (`head`):

    dims=2, head="dense"   per-pixel class scores (B, K, H, W) at the input's own H x W (segmentation),
                           through a U-Net decoder (`variant="unet"`) or FCN-8s-style summed skip
                           scores (`variant="skip"`)
    dims=2, head="pool"    image classification (B, K): the encoder, then global average pooling
    dims=1, head="pool"    sequence / time-series classification (B, K), Wang et al. 2017
                           ("Time series classification from scratch with deep neural networks")
    dims=1, head="dense"   per-step class scores (B, T, K)

Variable length (dims=1): padded steps are zeroed before every conv block and left out of the
average, so in eval mode a sequence's logits do not depend on how much padding its batch added.
(In training, BatchNorm's batch statistics still count the zeroed padded steps.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch import Tensor, nn

from gridseq import shapes
from gridseq._validation import check_choice, check_int_tuple, check_positive_int
from gridseq.errors import ConfigError, ShapeError
from gridseq.models import registry
from gridseq.models.traits import Traits
from gridseq.nn.conv import ConvBlock, Down, Up, Upsample, check_dims, double_conv
from gridseq.nn.sequence import length_mask, masked_mean

HEADS = ("dense", "pool")
VARIANTS = ("unet", "skip")
# Wang et al. 2017 for sequences; a small 3-stage U-Net for images
_DEFAULT_CHANNELS = {1: (128, 256, 128), 2: (32, 64, 128)}
_WANG_KERNELS = (8, 5, 3)


@dataclass(frozen=True)
class FCNConfig:
    """Configuration of `FCN`.

    Args:
        in_channels: C for images, F (features per step) for sequences.
        num_classes: K.
        dims: 2 for images (B, C, H, W), 1 for sequences (B, T, F). Default: 2.
        channels: dims=1: width of each conv block, Default (128, 256, 128). dims=2: width of each
            encoder stage, the first at full resolution and each later one after a 2x down-sampling,
            Default (32, 64, 128).
        kernel_sizes: conv window per block/stage, or one int for all. Default: dims=1 (8, 5, 3)
            (with more blocks the rest get 3, with fewer the list is cut), dims=2 3 for every stage.
        head: "dense" (a class score per pixel/step) or "pool" (global average pooling → (B, K)).
            Default: "dense" for dims=2, "pool" for dims=1.
        variant: dims=2 dense decoder: "unet" (upsample, concatenate the encoder map, two convs per
            stage) or "skip" (FCN-8s style: 1x1 class scores at every stage, upsampled by learned
            transposed convs and summed). Ignored by other settings. Default: "unet".
        upsample: "transpose" (learned) or "interp" (bilinear + 1x1 conv), see
            `gridseq.nn.conv.Upsample`. Default: "transpose".
        batch_norm: BatchNorm after each conv. Default: True.
    """

    in_channels: int
    num_classes: int
    dims: int = 2
    channels: tuple[int, ...] | None = None
    kernel_sizes: tuple[int, ...] | int | None = None
    head: str | None = None
    variant: str = "unet"
    upsample: str = "transpose"
    batch_norm: bool = True

    def __post_init__(self) -> None:
        check_positive_int(self.in_channels, "in_channels")
        check_positive_int(self.num_classes, "num_classes")
        dims = check_dims(self.dims)
        channels = check_int_tuple(_DEFAULT_CHANNELS[dims] if self.channels is None else self.channels, "channels")
        if self.kernel_sizes is None:
            # Wang et al.'s 8, 5, 3 for sequences (3 after the third block), 3x3 for images
            kernels = (_WANG_KERNELS + (3,) * len(channels))[: len(channels)] if dims == 1 else (3,)
        else:
            kernels = check_int_tuple(self.kernel_sizes, "kernel_sizes")
        if len(kernels) == 1:
            kernels = kernels * len(channels)
        if len(kernels) != len(channels):
            raise ConfigError(
                f"kernel_sizes must have one entry per block (len(channels) = {len(channels)}) or be one int, "
                f"got {self.kernel_sizes!r}."
            )
        head = check_choice(("dense" if dims == 2 else "pool") if self.head is None else self.head, "head", HEADS)
        check_choice(self.variant, "variant", VARIANTS)
        check_choice(self.upsample, "upsample", ("transpose", "interp"))
        if not isinstance(self.batch_norm, bool):
            raise ConfigError(f"batch_norm must be True or False, got {self.batch_norm!r}.")
        # store the resolved values, so config.json says what was built
        object.__setattr__(self, "channels", channels)
        object.__setattr__(self, "kernel_sizes", kernels)
        object.__setattr__(self, "head", head)


class FCN(nn.Module):
    """Fully convolutional network for images (dims=2) or sequences (dims=1); see the module docstring.

    `topology` depends on the config: "many-to-many" for dense heads (per pixel / per step),
    "one-to-one" for pooled image classification, "many-to-one" for pooled sequence classification;
    the class attribute is the default (dims=2, dense).

    Args:
        config: FCNConfig.
    Shape:
        - dims=2: x (B, C, H, W) float, any H, W >= 1 (odd sizes included); lengths must be None.
          Output: dense (B, K, H, W) at the input's own size; pool (B, K).
        - dims=1: x (B, T, F) float, lengths (B,) int64 optional.
          Output: pool (B, K); dense (B, T, K).
    Raises:
        ShapeError: on a wrong layout or channel count, and in training mode with BatchNorm for a
            batch of ONE input whose deepest map is a single value per channel (e.g. one 4x4 image
            through three stages): BatchNorm cannot normalise one value. Train on batches of 2+,
            use model.eval() for inference, or build with batch_norm=False.
    Example:
        >>> import torch
        >>> FCN(FCN.Config(in_channels=3, num_classes=4))(torch.zeros(1, 3, 37, 53)).shape
        torch.Size([1, 4, 37, 53])
        >>> FCN(FCN.Config(in_channels=2, num_classes=5, dims=1))(torch.zeros(4, 40, 2)).shape
        torch.Size([4, 5])
    """

    Config = FCNConfig
    topology = "many-to-many"
    TRAITS = Traits()

    def __init__(self, config: FCNConfig):
        super().__init__()
        self.config = config
        c = config
        if c.head == "pool":
            self.topology = "many-to-one" if c.dims == 1 else "one-to-one"
        norm = "batch" if c.batch_norm else "none"
        ch, ks, k_out = c.channels, c.kernel_sizes, c.num_classes
        if c.dims == 1:
            # Wang et al.: every block keeps the full length T (no down-sampling)
            ins = (c.in_channels, *ch[:-1])
            self.blocks = nn.ModuleList(ConvBlock(i, o, k, dims=1, norm=norm) for i, o, k in zip(ins, ch, ks))
        else:
            self.stem = double_conv(c.in_channels, ch[0], ks[0], norm=norm)
            self.downs = nn.ModuleList(Down(i, o, k, norm=norm) for i, o, k in zip(ch[:-1], ch[1:], ks[1:]))
        if c.head == "pool":
            self.classifier = nn.Linear(ch[-1], k_out)
        elif c.dims == 1:
            self.classifier = nn.Conv1d(ch[-1], k_out, 1)
        elif c.variant == "unet":
            # deepest first: stage i+1 is upsampled into stage i and takes stage i's width and kernel
            self.ups = nn.ModuleList(
                Up(deep, skip, skip, k, mode=c.upsample, norm=norm)
                for deep, skip, k in zip(ch[:0:-1], ch[-2::-1], ks[-2::-1])
            )
            self.classifier = nn.Conv2d(ch[0], k_out, 1)
        else:
            self.scores = nn.ModuleList(nn.Conv2d(o, k_out, 1) for o in ch)
            self.ups = nn.ModuleList(Upsample(k_out, k_out, mode=c.upsample) for _ in ch[1:])

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        if self.config.dims == 1:
            x, lengths = shapes.check_sequence(x, lengths, features=self.config.in_channels)
            return self._forward_1d(x, lengths)
        if lengths is not None:
            raise ShapeError("FCN with dims=2 takes whole images and no lengths; pass lengths=None.")
        x = shapes.check_image(x, channels=self.config.in_channels)
        return self._forward_2d(x)

    def _check_batch_norm(self, x: Tensor) -> None:
        """A readable ShapeError instead of BatchNorm's ValueError when the deepest map holds 1 value per channel."""
        if not (self.training and self.config.batch_norm):
            return
        size = tuple(x.shape[2:])
        for down in getattr(self, "downs", ()):
            size = down.pool.output_size(size)
        if x.shape[0] * math.prod(size) == 1:
            raise ShapeError(
                f"FCN in training mode cannot batch-normalise a batch of one input whose deepest feature map is "
                f"{'x'.join(map(str, size))} (1 value per channel); train on batches of 2 or more, call model.eval() "
                f"for inference, or build with batch_norm=False."
            )

    def _forward_1d(self, x: Tensor, lengths: Tensor | None) -> Tensor:
        h = x.transpose(1, 2)  # (B, F, T): channels first for Conv1d
        self._check_batch_norm(h)
        mask = None
        if lengths is not None:
            mask = length_mask(lengths, x.shape[1], x.device).unsqueeze(1).to(x.dtype)  # (B, 1, T)
        for block in self.blocks:
            # zeroed padding looks exactly like the conv's own "same" zero padding past the end,
            # so valid steps come out as if the sequence had not been padded
            h = block(h if mask is None else h * mask)
        if self.config.head == "dense":
            return self.classifier(h).transpose(1, 2)  # (B, K, T) -> (B, T, K)
        pooled = masked_mean(h.transpose(1, 2), lengths)  # (B, T, C) -> (B, C), mean over valid steps
        return self.classifier(pooled)  # (B, K)

    def _forward_2d(self, x: Tensor) -> Tensor:
        self._check_batch_norm(x)
        maps = [self.stem(x)]  # encoder maps, full resolution first
        for down in self.downs:
            maps.append(down(maps[-1]))
        if self.config.head == "pool":
            return self.classifier(maps[-1].mean(dim=(2, 3)))  # (B, C) -> (B, K)
        if self.config.variant == "unet":
            h = maps[-1]
            for up, skip in zip(self.ups, maps[-2::-1]):
                h = up(h, skip)  # back to the skip's exact size
            return self.classifier(h)  # (B, K, H, W)
        scores = [score(m) for score, m in zip(self.scores, maps)]  # (B, K, H_i, W_i) per stage
        s = scores[-1]
        for up, finer in zip(self.ups, scores[-2::-1]):
            s = up(s, finer.shape[2:]) + finer
        return s


def _from_info(info) -> dict:
    if info.kind == "image":
        # per-pixel scores only make sense for per-pixel targets; whole-image labels get the pooled head
        head = "pool" if info.targets.item_class else "dense"
        return {"in_channels": info.input_shape[0], "num_classes": info.output_size, "dims": 2, "head": head}
    return {"in_channels": info.input_shape[-1], "num_classes": info.output_size, "dims": 1}


registry.register(
    "fcn", FCN,
    description="fully convolutional net: U-Net/FCN-8s dense prediction at any image size (dims=2), "
                "or Wang et al. 2017 conv + global-average-pool classifier for sequences (dims=1)",
    kinds=("image", "sequence", "series"), from_info=_from_info,
)
