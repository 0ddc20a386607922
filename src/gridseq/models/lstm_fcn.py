"""LSTM-FCN (Karim, Majumdar, Darabi & Chen 2017, "LSTM Fully Convolutional Networks for Time Series
Classification"): an LSTM branch beside a fully convolutional branch, their features concatenated.

    x (B, T, F) ─┬─ [dimension shuffle] → LSTM → last state → dropout ─┐
                 └─ conv 128/k8 → conv 256/k5 → conv 128/k3 → GAP ──────┴─ concat → linear → (B, K)

The FCN branch is Wang et al.'s FCN (conv + batch norm + ReLU, global average pooling over valid
steps). The "dimension shuffle" of the paper transposes the series before the LSTM, so the LSTM takes
F steps of T values each (a univariate series is ONE step of T values) rather than T steps of F
values; the paper found it trains faster and usually better. It needs a fixed length: series are
zero-padded to `series_length` (the training length) first, so a padded batch gives the same answer
as each series alone. Without the shuffle the LSTM reads the T steps with the true lengths.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from gridseq import shapes
from gridseq._validation import check_int_tuple, check_positive_int, check_probability
from gridseq.errors import ConfigError, ShapeError
from gridseq.models import registry
from gridseq.models.traits import Traits
from gridseq.nn.conv import ConvBlock
from gridseq.nn.recurrent import Recurrent
from gridseq.nn.sequence import last_valid, length_mask, masked_mean, to_fixed_length


@dataclass(frozen=True)
class LSTMFCNConfig:
    """Configuration of `LSTMFCN`.

    Args:
        input_size: F, features (channels) per step.
        num_classes: K.
        series_length: the fixed length T the dimension shuffle reads (shorter series are zero-padded
            to it, longer ones are an error). Required when `dimension_shuffle`. Default: None.
        hidden_size: LSTM cells (the paper tries 8, 64 and 128). Default: 128.
        dimension_shuffle: transpose before the LSTM (F steps of T values). Default: True.
        dropout: dropout on the LSTM features (the paper: 0.8). Default: 0.8.
        channels: widths of the three conv blocks. Default: (128, 256, 128).
        kernel_sizes: their windows. Default: (8, 5, 3).
    """

    input_size: int
    num_classes: int
    series_length: int | None = None
    hidden_size: int = 128
    dimension_shuffle: bool = True
    dropout: float = 0.8
    channels: tuple[int, ...] = (128, 256, 128)
    kernel_sizes: tuple[int, ...] = (8, 5, 3)

    def __post_init__(self) -> None:
        check_positive_int(self.input_size, "input_size")
        check_positive_int(self.num_classes, "num_classes")
        check_positive_int(self.hidden_size, "hidden_size")
        check_probability(self.dropout, "dropout")
        if not isinstance(self.dimension_shuffle, bool):
            raise ConfigError(f"dimension_shuffle must be True or False, got {self.dimension_shuffle!r}.")
        if self.series_length is not None:
            check_positive_int(self.series_length, "series_length")
        elif self.dimension_shuffle:
            raise ConfigError("dimension_shuffle=True needs series_length (the training series' length T); "
                              "pass series_length=T, or dimension_shuffle=False to run the LSTM over time steps.")
        channels = check_int_tuple(self.channels, "channels")
        kernels = check_int_tuple(self.kernel_sizes, "kernel_sizes")
        if len(kernels) != len(channels):
            raise ConfigError(f"kernel_sizes needs one window per conv block ({len(channels)}), got {self.kernel_sizes!r}.")
        object.__setattr__(self, "channels", channels)
        object.__setattr__(self, "kernel_sizes", kernels)


class LSTMFCN(nn.Module):
    """LSTM branch + FCN branch, concatenated (Karim et al. 2017); see the module docstring.

    Args:
        config: LSTMFCNConfig.
    Shape:
        - x: (B, T, F) float (T <= series_length with the dimension shuffle).
        - lengths: (B,) int64, optional.  - Output: (B, K) logits.
    Raises:
        ShapeError: a wrong layout or feature count; with the shuffle, a series longer than series_length.
    Example:
        >>> import torch
        >>> m = LSTMFCN(LSTMFCN.Config(input_size=2, num_classes=3, series_length=24))
        >>> m(torch.zeros(4, 24, 2)).shape
        torch.Size([4, 3])
    """

    Config = LSTMFCNConfig
    topology = "many-to-one"
    TRAITS = Traits()

    def __init__(self, config: LSTMFCNConfig):
        super().__init__()
        self.config = config
        c = config
        steps_in = c.series_length if c.dimension_shuffle else c.input_size
        self.lstm = Recurrent("lstm", steps_in, c.hidden_size)
        self.dropout = nn.Dropout(c.dropout)
        ins = (c.input_size, *c.channels[:-1])
        self.convs = nn.ModuleList(ConvBlock(i, o, k, dims=1) for i, o, k in zip(ins, c.channels, c.kernel_sizes))
        self.classifier = nn.Linear(c.hidden_size + c.channels[-1], c.num_classes)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        x, lengths = shapes.check_sequence(x, lengths, features=self.config.input_size)
        with shapes.inputs_checked():  # the LSTM and the pooling trust the checked series
            rnn = self.dropout(self._lstm_branch(x, lengths))  # (B, H)
            conv = self._fcn_branch(x, lengths)  # (B, C)
        return self.classifier(torch.cat([rnn, conv], dim=1))  # (B, H + C) -> (B, K)

    def _lstm_branch(self, x: Tensor, lengths: Tensor | None) -> Tensor:
        if not self.config.dimension_shuffle:
            out, _ = self.lstm(x, lengths)  # (B, T, H)
            return last_valid(out, lengths)
        length = self.config.series_length
        if x.shape[1] > length:
            raise ShapeError(
                f"LSTM-FCN with dimension_shuffle reads series of at most series_length={length} steps, got T={x.shape[1]}; "
                f"crop the series, or build the model with dimension_shuffle=False for longer series."
            )
        fixed = to_fixed_length(x, lengths, length)  # (B, L, F), zero past each series' end
        out, _ = self.lstm(fixed.transpose(1, 2))  # F steps of L values: (B, F, H)
        return out[:, -1]  # every one of the F steps is valid

    def _fcn_branch(self, x: Tensor, lengths: Tensor | None) -> Tensor:
        h = x.transpose(1, 2)  # (B, F, T): channels first for Conv1d
        mask = None if lengths is None else length_mask(lengths, x.shape[1], x.device).unsqueeze(1).to(x.dtype)  # (B, 1, T)
        for conv in self.convs:
            # zeroed padding looks like the conv's own zero padding past the end
            h = conv(h if mask is None else h * mask)
        return masked_mean(h.transpose(1, 2), lengths)  # (B, C): mean over valid steps


def _from_info(info) -> dict:
    # variable-length data keeps its time axis for the LSTM, which then reads the true lengths
    return {"input_size": info.input_shape[-1], "num_classes": info.output_size,
            "series_length": info.input_shape[0], "dimension_shuffle": not info.variable_length}


registry.register(
    "lstm-fcn", LSTMFCN,
    description="LSTM-FCN (Karim et al. 2017): LSTM branch (dimension shuffle) beside Wang et al.'s FCN, concatenated",
    kinds=("sequence", "series"), from_info=_from_info,
)
