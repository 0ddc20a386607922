"""Video models on per-frame CNN features: `crnn` (CNN → RNN) and the `frame-cnn` baseline.

    crnn        TimeDistributed(CNN encoder) over every frame → Recurrent over the frame vectors →
                pooling over time (or per-frame logits) → linear head
    frame-cnn   TimeDistributed(whole CNN classifier) → per-frame logits, averaged over the valid frames

Both read videos (B, T, C, H, W). The CNN is `gridseq.models.cnn.CNN`, run once over all B·T frames
(one batched call). `frame-cnn` sees every frame on its own, so it can tell *what* is in a clip but
never the *order* of the frames — the direction of a motion is invisible to it; `crnn` reads the
frames in order and can. Unidirectional models stream frame by frame (`model.stream()`): a new frame
costs one CNN pass and one recurrent step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from gridseq import shapes
from gridseq._validation import check_choice, check_int_tuple, check_positive_int, check_probability
from gridseq.errors import ConfigError, ShapeError
from gridseq.models.cnn import CNN, CNNConfig
from gridseq.models.registry import per_step_for, register
from gridseq.models.traits import Traits
from gridseq.nn.recurrent import IMPLS, MODES, Recurrent
from gridseq.nn.sequence import final_features, length_mask, masked_max, masked_mean
from gridseq.nn.stream import PooledStream, RecurrentStream
from gridseq.nn.time_distributed import TimeDistributed

POOLINGS = ("last", "mean", "max")
SPATIAL = ("flatten", "avg", "both")


def _check_frame_shape(value) -> tuple[int, int, int]:
    shape = check_int_tuple(value, "input_shape")
    if len(shape) == 4:  # a video DatasetInfo's (T, C, H, W): the frame is the rest
        shape = shape[1:]
    if len(shape) != 3:
        raise ConfigError(f"input_shape must be the (C, H, W) of one frame, got {value!r}.")
    return shape


def _check_bools(config, *names: str) -> None:
    for flag in names:
        if not isinstance(getattr(config, flag), bool):
            raise ConfigError(f"{flag} must be True or False, got {getattr(config, flag)!r}.")


def check_frames(x: Tensor, lengths: Tensor | None, frame_shape: tuple[int, int, int]) -> tuple[Tensor, Tensor | None]:
    """Check a video batch (B, T, C, H, W) against a model built for frames of `frame_shape`."""
    c, h, w = frame_shape
    x, lengths = shapes.check_video(x, lengths, channels=c)
    if tuple(x.shape[3:]) != (h, w):
        raise ShapeError(
            f"expected x of shape (B, T, {c}, {h}, {w}), got {tuple(x.shape)}: the model takes {h}x{w} frames; "
            f"resize the frames."
        )
    return x, lengths


@dataclass(frozen=True)
class CRNNConfig:
    """Configuration of `CRNN`.

    Args:
        input_shape: (C, H, W) of one frame (a video dataset's (T, C, H, W) is accepted: T is dropped).
        num_classes: K.
        channels: output channels of each conv block of the frame encoder (each halves H and W).
            Default: (16, 32).
        kernel_sizes: conv window of each block (one int for all). Default: 3.
        batch_norm: BatchNorm after each conv. Default: True.
        spatial: how a frame's last conv map becomes a vector: "flatten" keeps *where* things are
            (needed to see motion), "avg" averages over positions (what, not where), "both" joins the
            flattened map and its maximum over positions (where, and what wherever it is). Default: "flatten".
        feature_dim: width of a Linear+ReLU projection of each frame's vector before the RNN; 0 for
            none. Default: 128.
        mode: "rnn" (Elman), "lstm" or "gru". Default: "gru".
        hidden_size: H, recurrent units per direction. Default: 128.
        num_layers: stacked recurrent layers. Default: 1.
        bidirectional: read the frames both ways (offline use only: cannot stream). Default: False.
        dropout: dropout on the frame vectors and between stacked recurrent layers. Default: 0.
        pooling: clip vector from the frame outputs: "last" (final state of each direction), "mean" or
            "max" over the valid frames. Ignored with `per_step`. Default: "last".
        per_step: one prediction per frame, (B, T, K) logits (many-to-many). Default: False.
        impl: "auto", "fused" or "reference", see `Recurrent`. Default: "auto".
    """

    input_shape: tuple[int, ...]
    num_classes: int
    channels: tuple[int, ...] = (16, 32)
    kernel_sizes: tuple[int, ...] | int = 3
    batch_norm: bool = True
    spatial: str = "flatten"
    feature_dim: int = 128
    mode: str = "gru"
    hidden_size: int = 128
    num_layers: int = 1
    bidirectional: bool = False
    dropout: float = 0.0
    pooling: str = "last"
    per_step: bool = False
    impl: str = "auto"

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_shape", _check_frame_shape(self.input_shape))
        check_positive_int(self.num_classes, "num_classes")
        # the CNN config validates channels / kernel_sizes and expands one kernel size to every block
        cnn = CNNConfig(self.input_shape, 1, self.channels, self.kernel_sizes, hidden=0, dropout=0.0,
                        batch_norm=self.batch_norm)
        object.__setattr__(self, "channels", cnn.channels)
        object.__setattr__(self, "kernel_sizes", cnn.kernel_sizes)
        check_choice(self.spatial, "spatial", SPATIAL)
        check_positive_int(self.feature_dim, "feature_dim", minimum=0)
        check_choice(self.mode, "mode", MODES)
        check_positive_int(self.hidden_size, "hidden_size")
        check_positive_int(self.num_layers, "num_layers")
        _check_bools(self, "bidirectional", "per_step")
        object.__setattr__(self, "dropout", check_probability(self.dropout, "dropout"))
        check_choice(self.pooling, "pooling", POOLINGS)
        check_choice(self.impl, "impl", IMPLS)


class FrameEncoder(nn.Module):
    """One frame (N, C, H, W) → one vector (N, num_features): a `CNN`'s conv blocks, then flatten, a
    global average or both (flatten + global max), then an optional Linear+ReLU projection.

    Args:
        input_shape: (C, H, W).  channels, kernel_sizes, batch_norm: as `CNNConfig`.
        spatial: "flatten", "avg" or "both".  feature_dim: projection width, 0 for none.  dropout: on the output.
    """

    def __init__(self, input_shape, channels, kernel_sizes, batch_norm: bool, spatial: str, feature_dim: int,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.cnn = CNN(CNNConfig(tuple(input_shape), 1, channels, kernel_sizes, hidden=0, dropout=0.0,
                                 batch_norm=batch_norm))
        self.cnn.head = nn.Identity()  # only the conv encoder is used: CNN.forward_features
        self.spatial = spatial
        channels = self.cnn.feature_shape[0]
        width = {"flatten": self.cnn.num_features, "avg": channels, "both": self.cnn.num_features + channels}[spatial]
        self.project = nn.Sequential(nn.Linear(width, feature_dim), nn.ReLU(inplace=True)) if feature_dim else nn.Identity()
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
        self.num_features = feature_dim or width

    def forward(self, x: Tensor) -> Tensor:
        """(N, C, H, W) frames → (N, F') vectors; the check is skipped inside `shapes.inputs_checked()`."""
        c, h, w = self.cnn.config.input_shape
        x = shapes.check_image(x, channels=c, size=(h, w))
        return self._vector(self.cnn.features(x))  # the conv maps (N, C', H', W') → (N, F')

    def program(self):
        """This encoder for checked frames at inference, one small batch at a time (a stream's frame): the
        conv blocks as one `gridseq.nn.fuse.ConvStackProgram` (BatchNorm folded, no module call per layer),
        then the same vector and projection; equal to `forward` up to float rounding."""
        from gridseq.nn.fuse import ConvStackProgram

        convs = ConvStackProgram(self.cnn.features)
        linear = self.project[0] if isinstance(self.project, nn.Sequential) else None

        def encode(x: Tensor) -> Tensor:
            if self.training:
                return self.forward(x)
            v = self._vector(convs(x), project=False)
            return v if linear is None else torch.relu_(nn.functional.linear(v, linear.weight, linear.bias))

        return encode

    def _vector(self, maps: Tensor, *, project: bool = True) -> Tensor:
        if self.spatial == "flatten":
            v = maps.flatten(1)  # (N, C' * H' * W')
        elif self.spatial == "avg":
            v = maps.mean(dim=(2, 3))  # (N, C')
        else:
            v = torch.cat([maps.flatten(1), maps.amax(dim=(2, 3))], dim=1)  # (N, C' * H' * W' + C')
        return self.dropout(self.project(v)) if project else v


class CRNN(nn.Module):
    """CNN → RNN video model: a CNN encodes every frame, a `Recurrent` reads the frame vectors in order.

    Args:
        config: `CRNN.Config` (`CRNNConfig`).

    Shape:
        - x: (B, T, C, H, W) float, batch first.  - lengths: (B,) int64 frame counts, optional.
        - Output: (B, K) logits; with `per_step`, (B, T, K), zero at padded frames.

    Example:
        >>> import torch
        >>> m = CRNN(CRNN.Config(input_shape=(1, 16, 16), num_classes=40))
        >>> m(torch.zeros(2, 10, 1, 16, 16)).shape
        torch.Size([2, 40])
        >>> m.eval().stream(batch_size=2).step(torch.zeros(2, 1, 16, 16)).shape  # one new frame
        torch.Size([2, 40])
    """

    Config = CRNNConfig
    topology = "many-to-one"  # many-to-many when config.per_step
    TRAITS = Traits(streams=True)

    def __init__(self, config: CRNNConfig) -> None:
        super().__init__()
        self.config = config
        if config.per_step:
            self.topology = "many-to-many"
        self.frame_encoder = FrameEncoder(config.input_shape, config.channels, config.kernel_sizes, config.batch_norm,
                                          config.spatial, config.feature_dim, config.dropout)
        self.frames = TimeDistributed(self.frame_encoder)
        self.rnn = Recurrent(config.mode, self.frame_encoder.num_features, config.hidden_size,
                             num_layers=config.num_layers, bidirectional=config.bidirectional,
                             dropout=config.dropout if config.num_layers > 1 else 0.0, impl=config.impl)
        self.head = nn.Linear(self.rnn.output_size, config.num_classes)

    def forward_features(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """The clip vector (B, D*H), or per frame (B, T, D*H) with `per_step`."""
        x, lengths = check_frames(x, lengths, self.config.input_shape)
        with shapes.inputs_checked():  # the frame CNN, the Recurrent and the pooling trust the checked video
            return self._features(x, shapes.unpadded(lengths, x.shape[1]))

    def _features(self, x: Tensor, lengths: Tensor | None) -> Tensor:
        outputs, _ = self.rnn(self.frames(x, lengths), lengths)  # (B, T, F') → (B, T, D*H)
        if self.config.per_step:
            return outputs
        if self.config.pooling == "mean":
            return masked_mean(outputs, lengths)
        if self.config.pooling == "max":
            return masked_max(outputs, lengths)
        return final_features(outputs, lengths, self.rnn.num_directions)  # (B, D*H)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        x, lengths = check_frames(x, lengths, self.config.input_shape)
        lengths = shapes.unpadded(lengths, x.shape[1])
        with shapes.inputs_checked():
            logits = self.head(self._features(x, lengths))
            return _zero_padded(logits, lengths) if self.config.per_step else logits

    def stream(self, batch_size: int = 1) -> RecurrentStream:
        """A frame-by-frame `gridseq.nn.stream.Stream`: `s.step(frame)` takes (B, C, H, W) and returns the
        logits (B, K) of the clip so far (of this frame with `per_step`), equal to `forward` on the
        frames so far. Each frame costs one CNN pass (`FrameEncoder.program`: BatchNorm folded, no module
        call per layer) and one recurrent step. Bidirectional: ConfigError."""
        frames = self.frame_encoder.program()

        def encode(frame: Tensor) -> Tensor:
            return frames(check_frames(frame.unsqueeze(1), None, self.config.input_shape)[0][:, 0])  # (B, C, H, W)

        pooling = "step" if self.config.per_step else self.config.pooling
        head = self.head  # an nn.Linear, called as the function: its module call costs more than its product at batch 1
        return RecurrentStream(self.rnn, batch_size, encode=encode, readout=lambda h: nn.functional.linear(h, head.weight, head.bias),
                               pooling=pooling,
                               name=f"model {getattr(self, 'gridseq_name', 'crnn')!r}")


def _zero_padded(logits: Tensor, lengths: Tensor | None) -> Tensor:
    """Per-frame logits (B, T, K) with padded frames zeroed, identical however a batch is padded."""
    if lengths is None:
        return logits
    valid = length_mask(lengths, logits.shape[1], logits.device).unsqueeze(-1)  # (B, T, 1)
    return logits.masked_fill(~valid, 0.0)


@dataclass(frozen=True)
class FrameCNNConfig:
    """Configuration of `FrameCNN`: a `CNNConfig` for one frame plus `per_step`.

    Args:
        input_shape: (C, H, W) of one frame (or a video's (T, C, H, W)).
        num_classes: K.
        channels, kernel_sizes, hidden, dropout, batch_norm: as `CNNConfig`. Defaults: (16, 32), 3,
            128, 0.25, True.
        per_step: per-frame logits (B, T, K) instead of their average. Default: False.
    """

    input_shape: tuple[int, ...]
    num_classes: int
    channels: tuple[int, ...] = (16, 32)
    kernel_sizes: tuple[int, ...] | int = 3
    hidden: int = 128
    dropout: float = 0.25
    batch_norm: bool = True
    per_step: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_shape", _check_frame_shape(self.input_shape))
        cnn = self.cnn_config()  # validates the CNN fields
        object.__setattr__(self, "channels", cnn.channels)
        object.__setattr__(self, "kernel_sizes", cnn.kernel_sizes)
        _check_bools(self, "per_step")

    def cnn_config(self) -> CNNConfig:
        return CNNConfig(self.input_shape, self.num_classes, self.channels, self.kernel_sizes, self.hidden,
                         self.dropout, self.batch_norm)


class FrameCNN(nn.Module):
    """Single-frame baseline: a CNN classifies every frame on its own; the clip's logits are the mean of
    the frames' logits. It is blind to frame order, so it cannot learn the direction of a motion.

    Args:
        config: `FrameCNN.Config` (`FrameCNNConfig`).

    Shape:
        - x: (B, T, C, H, W) float.  - lengths: (B,) int64, optional.
        - Output: (B, K) logits; with `per_step`, (B, T, K), zero at padded frames.

    Example:
        >>> import torch
        >>> m = FrameCNN(FrameCNN.Config(input_shape=(1, 16, 16), num_classes=40))
        >>> m(torch.zeros(2, 10, 1, 16, 16), torch.tensor([10, 4])).shape
        torch.Size([2, 40])
    """

    Config = FrameCNNConfig
    topology = "many-to-one"
    TRAITS = Traits(streams=True)

    def __init__(self, config: FrameCNNConfig) -> None:
        super().__init__()
        self.config = config
        if config.per_step:
            self.topology = "many-to-many"
        self.cnn = CNN(config.cnn_config())
        self.frames = TimeDistributed(self.cnn)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        x, lengths = check_frames(x, lengths, self.config.input_shape)
        logits = self.frames(x, lengths)  # (B, T, K), zero at padded frames
        if self.config.per_step:
            return logits
        return masked_mean(logits, lengths)  # (B, K)

    def stream(self, batch_size: int = 1) -> PooledStream:
        """A frame-by-frame stream: one CNN pass per frame (its conv blocks as a
        `gridseq.nn.fuse.ConvStackProgram`), the running mean of the logits (this frame's logits with `per_step`)."""
        from gridseq.nn.fuse import ConvStackProgram

        convs = ConvStackProgram(self.cnn.features)  # the conv blocks with BatchNorm folded (as crnn's stream)

        def logits(frame: Tensor) -> Tensor:
            frame = check_frames(frame.unsqueeze(1), None, self.config.input_shape)[0][:, 0]
            return self.cnn(frame) if self.training else self.cnn.forward_head(convs(frame).flatten(1))

        return PooledStream(logits, batch_size, pooling="step" if self.config.per_step else "mean")


def _from_info(info) -> dict:
    return {"input_shape": tuple(info.input_shape), "num_classes": info.output_size, **per_step_for(info)}


register("crnn", CRNN, description="CNN on every frame -> GRU/LSTM/RNN over the frames (video; streams)",
         kinds=("video",), from_info=_from_info)
register("frame-cnn", FrameCNN, description="single-frame CNN baseline: per-frame logits averaged (order-blind)",
         kinds=("video",), from_info=_from_info)
