"""`convlstm`: the convolutional LSTM (Shi et al., 2015) — an LSTM whose state is a stack of feature maps.

Where an LSTM computes its gates with matrix products of vectors, a ConvLSTM computes them with
convolutions of maps, so the state keeps *where* things are and each update only mixes neighbouring
positions:

    i, f, g, o = split(Conv([x_t, h_{t-1}]))          4 gates, each (B, C_h, H, W)
    c_t = sigmoid(f) * c_{t-1} + sigmoid(i) * tanh(g)
    h_t = sigmoid(o) * tanh(c_t)

The model: a conv stem on every frame (one batched call, halving H and W) → stacked `ConvLSTM` layers
→ the last valid state (or every step's state with `per_step`) → flatten → linear head. It is the
second spatio-temporal family next to `crnn`, which squeezes each frame into a vector *before* the
recurrence. Causal by construction: `model.stream()` takes one frame at a time.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from gridseq._validation import check_int_tuple, check_positive_int
from gridseq.errors import ConfigError
from gridseq.models.crnn import _check_bools, _check_frame_shape, _zero_padded, check_frames
from gridseq.models.registry import per_step_for, register
from gridseq.models.traits import Traits
from gridseq.nn.conv import Conv, ConvBlock
from gridseq.nn.sequence import last_valid, length_mask
from gridseq.nn.stream import Stream
from gridseq.nn.time_distributed import TimeDistributed


class ConvLSTMCell(nn.Module):
    """One ConvLSTM step: gates from one convolution over the input and the previous hidden maps.

    Args:
        in_channels: C_in of x_t.  hidden_channels: C_h of h and c.  kernel_size: odd conv window. Default: 3.

    Shape:
        - x: (B, C_in, H, W).  - state: (h, c), each (B, C_h, H, W), or None (zeros).
        - Output: (h, c), each (B, C_h, H, W).

    Example:
        >>> cell = ConvLSTMCell(1, 8)
        >>> h, c = cell(torch.zeros(2, 1, 10, 10))
        >>> h.shape
        torch.Size([2, 8, 10, 10])
    """

    def __init__(self, in_channels: int, hidden_channels: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.hidden_channels = hidden_channels
        self.gates = Conv(in_channels + hidden_channels, 4 * hidden_channels, kernel_size, dims=2)
        with torch.no_grad():  # forget-gate bias 1, as is usual for LSTMs: remember by default at the start
            self.gates.conv.bias[hidden_channels : 2 * hidden_channels].fill_(1.0)

    def forward(self, x: Tensor, state: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor]:
        if state is None:
            zeros = x.new_zeros(x.shape[0], self.hidden_channels, *x.shape[2:])
            state = (zeros, zeros)
        h, c = state
        i, f, g, o = self.gates(torch.cat([x, h], dim=1)).chunk(4, dim=1)  # each (B, C_h, H, W)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c


@dataclass(frozen=True)
class ConvLSTMConfig:
    """Configuration of `ConvLSTM`.

    Args:
        input_shape: (C, H, W) of one frame (a video's (T, C, H, W) is accepted).
        num_classes: K.
        stem_channels: channels of the conv stem (Conv-BatchNorm-ReLU-MaxPool(2)) on every frame; 0
            for none (the ConvLSTM then runs at full resolution). Default: 16.
        hidden_channels: C_h of each stacked ConvLSTM layer. Default: (32,).
        kernel_size: odd conv window of the gates. Default: 3.
        per_step: one prediction per frame, (B, T, K) logits. Default: False.
    """

    input_shape: tuple[int, ...]
    num_classes: int
    stem_channels: int = 16
    hidden_channels: tuple[int, ...] = (32,)
    kernel_size: int = 3
    per_step: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_shape", _check_frame_shape(self.input_shape))
        check_positive_int(self.num_classes, "num_classes")
        check_positive_int(self.stem_channels, "stem_channels", minimum=0)
        object.__setattr__(self, "hidden_channels", check_int_tuple(self.hidden_channels, "hidden_channels"))
        if not self.hidden_channels:
            raise ConfigError("hidden_channels must list at least one ConvLSTM layer, got ().")
        check_positive_int(self.kernel_size, "kernel_size")
        if self.kernel_size % 2 == 0:
            raise ConfigError(f"kernel_size must be odd (the gates keep the map size), got {self.kernel_size}.")
        _check_bools(self, "per_step")


class ConvLSTM(nn.Module):
    """Convolutional LSTM video classifier: conv stem → stacked ConvLSTM layers → flatten → linear.

    Args:
        config: `ConvLSTM.Config` (`ConvLSTMConfig`).

    Shape:
        - x: (B, T, C, H, W) float.  - lengths: (B,) int64, optional (padded frames leave the state alone).
        - Output: (B, K) logits from each clip's last valid state; with `per_step`, (B, T, K).

    Example:
        >>> m = ConvLSTM(ConvLSTM.Config(input_shape=(1, 16, 16), num_classes=40))
        >>> m(torch.zeros(2, 6, 1, 16, 16), torch.tensor([6, 3])).shape
        torch.Size([2, 40])
    """

    Config = ConvLSTMConfig
    topology = "many-to-one"
    TRAITS = Traits(streams=True)
    bidirectional = False

    def __init__(self, config: ConvLSTMConfig) -> None:
        super().__init__()
        self.config = config
        if config.per_step:
            self.topology = "many-to-many"
        c, h, w = config.input_shape
        if config.stem_channels:
            stem = ConvBlock(c, config.stem_channels, 3, dims=2, norm="batch", pool=2)
            self.stem = TimeDistributed(stem)
            size, c = stem.output_size((h, w)), config.stem_channels
        else:
            self.stem, size = None, (h, w)
        cells = []
        for hidden in config.hidden_channels:
            cells.append(ConvLSTMCell(c, hidden, config.kernel_size))
            c = hidden
        self.cells = nn.ModuleList(cells)
        self.state_shape = (c, *size)  # (C_h, H', W') of the last layer
        self.head = nn.Linear(c * size[0] * size[1], config.num_classes)

    def _step(self, x_t: Tensor, states: list, valid: Tensor | None = None) -> tuple[Tensor, list]:
        """One time step through every layer; `valid` (B,) keeps finished clips' states unchanged."""
        new_states = []
        for cell, state in zip(self.cells, states):
            h, c = cell(x_t, state)
            if valid is not None and state is not None:
                keep = valid.view(-1, 1, 1, 1)
                h, c = torch.where(keep, h, state[0]), torch.where(keep, c, state[1])
            new_states.append((h, c))
            x_t = h
        return x_t, new_states  # last layer's h (B, C_h, H', W')

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        x, lengths = check_frames(x, lengths, self.config.input_shape)
        if self.stem is not None:
            x = self.stem(x, lengths)  # (B, T, C_s, H', W'), one batched call over all frames
        time = x.shape[1]
        mask = None if lengths is None else length_mask(lengths, time, x.device)  # (B, T)
        states: list = [None] * len(self.cells)
        outputs = []
        for t in range(time):
            h, states = self._step(x[:, t], states, None if mask is None else mask[:, t])
            outputs.append(h.flatten(1))
        outputs = torch.stack(outputs, dim=1)  # (B, T, C_h * H' * W')
        if self.config.per_step:
            return _zero_padded(self.head(outputs), lengths)
        return self.head(last_valid(outputs, lengths))  # (B, K)

    def stream(self, batch_size: int = 1) -> ConvLSTMStream:
        """A frame-by-frame stream: one stem pass and one ConvLSTM step per frame; logits (B, K)."""
        return ConvLSTMStream(self, batch_size)


class ConvLSTMStream(Stream):
    """`ConvLSTM.stream()`: keeps every layer's (h, c) maps between frames."""

    def __init__(self, model: ConvLSTM, batch_size: int = 1) -> None:
        super().__init__(batch_size)
        self.model = model
        self._reset()

    def _step(self, frame: Tensor) -> Tensor:
        x = check_frames(frame.unsqueeze(1), None, self.model.config.input_shape)[0][:, 0]  # (B, C, H, W)
        if self.model.stem is not None:
            x = self.model.stem.module(x)
        h, self.states = self.model._step(x, self.states)
        return self.model.head(h.flatten(1))

    def _reset(self) -> None:
        self.states = [None] * len(self.model.cells)


def _from_info(info) -> dict:
    return {"input_shape": tuple(info.input_shape), "num_classes": info.output_size, **per_step_for(info)}


register("convlstm", ConvLSTM, description="convolutional LSTM: gates are convolutions, the state keeps maps (video)",
         kinds=("video",), from_info=_from_info)
