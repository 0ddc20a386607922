"""TCN: temporal convolutional network (Bai, Kolter & Koltun 2018, "An Empirical Evaluation of Generic
Convolutional and Recurrent Networks for Sequence Modeling").

A stack of residual blocks of causal, dilated 1D convolutions with dilations 1, 2, 4, ...: the
output at step t sees only inputs at steps <= t, and the receptive field grows exponentially with
depth — `1 + 2 * (kernel_size - 1) * (2**num_levels - 1)` steps.

Causality also makes variable length free: a valid step never reads a padded one, so the per-step
outputs of a padded sequence equal those of the unpadded one, and the classifier reads the last
valid step (or the mean over valid steps).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm as _weight_norm

from gridseq import shapes
from gridseq._validation import check_choice, check_input_or_vocab, check_positive_int, check_probability
from gridseq.errors import ConfigError
from gridseq.models import registry
from gridseq.models.traits import Traits
from gridseq.nn.conv import Conv
from gridseq.nn.sequence import last_valid, masked_mean

POOLINGS = ("last", "mean")


@dataclass(frozen=True)
class TCNConfig:
    """Configuration of `TCN`.

    Args:
        input_size: F, features per step of float sequences (B, T, F); or
        vocab_size: size of the vocabulary of token ids (B, T) (id 0 is padding), read through an
            embedding. Give exactly one of the two.
        embedding_dim: size of the token embedding (with `vocab_size` only). Default: 64.
        num_classes: K; for forecasting, horizon × target series (`DatasetInfo.output_size`).
        channels: width of every residual block. Default: 64.
        kernel_size: causal conv window. Default: 3.
        num_levels: residual blocks, the i-th with dilation 2**i. Default: 4 (receptive field 61 steps
            with kernel 3; raise it for longer dependencies).
        dropout: dropout after each conv (the paper uses 0.05–0.25). Default: 0.1.
        weight_norm: weight normalisation of the convs, as in the paper. Default: False (plain convs
            train as well on gridseq's datasets, are faster and export more simply).
        pooling: how a sequence becomes one vector: "last" valid step or "mean" over valid steps.
            Default: "last".
        per_step: return logits at every step (B, T, K) instead of one per sequence (B, K); `pooling`
            is then unused. Default: False.
    """

    num_classes: int
    input_size: int | None = None
    vocab_size: int | None = None
    embedding_dim: int = 64
    channels: int = 64
    kernel_size: int = 3
    num_levels: int = 4
    dropout: float = 0.1
    weight_norm: bool = False
    pooling: str = "last"
    per_step: bool = False

    def __post_init__(self) -> None:
        check_input_or_vocab(self.input_size, self.vocab_size)
        check_positive_int(self.embedding_dim, "embedding_dim")
        check_positive_int(self.num_classes, "num_classes")
        check_positive_int(self.channels, "channels")
        check_positive_int(self.kernel_size, "kernel_size")
        check_positive_int(self.num_levels, "num_levels")
        check_probability(self.dropout, "dropout")
        check_choice(self.pooling, "pooling", POOLINGS)
        for name in ("weight_norm", "per_step"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be True or False, got {getattr(self, name)!r}.")

    @property
    def receptive_field(self) -> int:
        """How many steps (the current one included) each output can see: two convs per level."""
        return 1 + 2 * (self.kernel_size - 1) * (2**self.num_levels - 1)


class TemporalBlock(nn.Module):
    """Residual block: [causal dilated conv → ReLU → dropout] x 2, plus the input (1x1 conv if widths differ), → ReLU.

    Args:
        in_channels: C_in.
        out_channels: C_out.
        kernel_size: conv window.
        dilation: conv dilation.
        dropout: dropout probability after each conv.
        weight_norm: weight-normalise both convs.
    Shape:
        - Input: (B, C_in, T).  - Output: (B, C_out, T); step t depends on input steps <= t only.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dilation: int, dropout: float,
                 weight_norm: bool):
        super().__init__()
        convs = [Conv(i, out_channels, kernel_size, dims=1, dilation=dilation, padding="causal")
                 for i in (in_channels, out_channels)]
        if weight_norm:
            for c in convs:
                c.conv = _weight_norm(c.conv)
        self.net = nn.Sequential(
            convs[0], nn.ReLU(inplace=True), nn.Dropout(dropout),
            convs[1], nn.ReLU(inplace=True), nn.Dropout(dropout),
        )
        self.residual = nn.Conv1d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(self.net(x) + self.residual(x))


class TCN(nn.Module):
    """Causal dilated residual conv stack with a linear head; classifies sequences or every step.

    Args:
        config: TCNConfig.
    Shape:
        - x: (B, T, F) float, F = input_size; or (B, T) int64 token ids with vocab_size.
        - lengths: (B,) int64, optional.
        - Output: (B, K) logits, or (B, T, K) with per_step=True (steps past a sequence's length
          hold values computed from padding; mask them out of the loss).
    Example:
        >>> import torch
        >>> TCN(TCN.Config(input_size=3, num_classes=5))(torch.zeros(2, 40, 3)).shape
        torch.Size([2, 5])
    """

    Config = TCNConfig
    topology = "many-to-one"
    TRAITS = Traits()

    def __init__(self, config: TCNConfig):
        super().__init__()
        self.config = config
        if config.per_step:
            self.topology = "many-to-many"
        c = config
        self.embedding = nn.Embedding(c.vocab_size, c.embedding_dim, padding_idx=0) if c.vocab_size is not None else None
        first = c.embedding_dim if c.vocab_size is not None else c.input_size
        self.blocks = nn.Sequential(*(
            TemporalBlock(first if i == 0 else c.channels, c.channels, c.kernel_size, 2**i, c.dropout, c.weight_norm)
            for i in range(c.num_levels)
        ))
        self.head = nn.Linear(c.channels, c.num_classes)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        if self.embedding is not None:
            x, lengths = shapes.check_tokens(x, lengths, vocab_size=self.config.vocab_size)
            x = self.embedding(x)  # (B, T, E)
        else:
            x, lengths = shapes.check_sequence(x, lengths, features=self.config.input_size)
        h = self.blocks(x.transpose(1, 2)).transpose(1, 2)  # (B, F, T) through the convs, back to (B, T, C)
        if self.config.per_step:
            return self.head(h)  # (B, T, K)
        pool = last_valid if self.config.pooling == "last" else masked_mean
        return self.head(pool(h, lengths))  # (B, C) at the last valid step / over valid steps -> (B, K)


def _from_info(info) -> dict:
    sizes = {"vocab_size": info.vocab_size} if info.kind == "tokens" else {"input_size": info.input_shape[-1]}
    return {**sizes, "num_classes": info.output_size, **registry.per_step_for(info)}


registry.register(
    "tcn", TCN,
    description="temporal convolutional network: causal dilated residual 1D convs (Bai et al. 2018)",
    kinds=("sequence", "series", "tokens"), from_info=_from_info,
)
