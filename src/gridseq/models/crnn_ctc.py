"""The CRNN family (Shi, Bai & Yao 2015): CNN features along time → stacked (bi)directional RNN → per-frame
class scores for CTC (registered as "crnn-ctc").

    x (B, T, F) ─► as an image (B, 1, F, T) ─► conv blocks (conv 3×3, batch norm, ReLU, max-pool pH×pT)
      ─► (B, C, F', T') ─► height collapsed: (B, T', C·F') ─► linear ─► Recurrent ─► linear ─► (B, T', K)

A sequence's feature axis F is the image's height (a text line's pixel rows, or an audio clip's mel
bands) and its time axis T the width, so one model reads handwriting and spectrograms of any length.
Pooling in time by pT (window = stride, no padding) maps an item of L valid steps to exactly
`floor(L / pT)` valid frames per block; `output_lengths` applies the same floor at every block, and
after every block the frames past an item's own end are zeroed, so the padding of a batch never leaks
into a shorter item: its scores are the same alone or in any batch (in eval mode).

With `causal=True` the convolutions only look back in time (all their time padding is on the left) and
the recurrent layers run forward only, so frame t depends on inputs up to the end of its pooling window:
a model for streaming audio. `model.stream()` then takes one input step (an audio frame) at a time
(`gridseq.nn.stream`): each step costs one column of every conv block and, when a pooling window
completes, one recurrent step — never a recomputation of the history.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gridseq._validation import check_choice, check_positive_int, check_probability
from gridseq.errors import ConfigError, ShapeError
from gridseq.models.registry import register
from gridseq.models.traits import Traits
from gridseq.nn.recurrent import IMPLS, MODES, Recurrent
from gridseq.nn.sequence import length_mask
from gridseq.nn.stream import Stream, refuse_bidirectional
from gridseq.shapes import check_sequence, inputs_checked


@dataclass(frozen=True)
class CRNNConfig:
    """Configuration of a `CRNN`.

    Args:
        input_size: F, features per step = the image height or the number of mel bands.
        num_classes: K, 1 CTC blank (id 0) + the alphabet.
        channels: output channels of each conv block. Default: (32, 64, 128).
        pools: (height, time) max-pool factors after each block, one pair per block; the time
            factors multiply to the model's time downsampling. Default: ((2, 2), (2, 2), (2, 1)).
        hidden_size: H, recurrent units per direction. Default: 128.
        num_layers: stacked recurrent layers. Default: 2.
        mode: "rnn" (Elman), "lstm" or "gru". Default: "lstm".
        bidirectional: run the recurrent layers both ways (ignored, i.e. off, when causal). Default: True.
        dropout: before the recurrent layers, between them and before the output layer. Default: 0.1.
        causal: convolutions look back in time only and the RNN is unidirectional (streaming). Default: False.
        impl: "auto", "fused" or "reference", see `Recurrent`. Default: "auto".
    """

    input_size: int
    num_classes: int
    channels: tuple[int, ...] = (32, 64, 128)
    pools: tuple[tuple[int, int], ...] = ((2, 2), (2, 2), (2, 1))
    hidden_size: int = 128
    num_layers: int = 2
    mode: str = "lstm"
    bidirectional: bool = True
    dropout: float = 0.1
    causal: bool = False
    impl: str = "auto"

    def __post_init__(self) -> None:
        check_positive_int(self.input_size, "input_size")
        check_positive_int(self.num_classes, "num_classes", minimum=2)  # the blank and at least one label
        channels = tuple(self.channels) if isinstance(self.channels, (list, tuple)) else self.channels
        if not isinstance(channels, tuple) or not channels or not all(isinstance(c, int) and not isinstance(c, bool) and c > 0 for c in channels):
            raise ConfigError(f"channels must be a non-empty tuple of positive ints (one per conv block), got {self.channels!r}.")
        object.__setattr__(self, "channels", channels)
        try:
            pools = tuple((int(h), int(t)) for h, t in self.pools)
        except (TypeError, ValueError):
            raise ConfigError(f"pools must hold one (height, time) pair of positive ints per conv block, got {self.pools!r}.") from None
        if len(pools) != len(channels) or any(p < 1 for pair in pools for p in pair):
            raise ConfigError(f"pools must hold one (height, time) pair of positive ints per conv block ({len(channels)} "
                              f"blocks), got {self.pools!r}.")
        object.__setattr__(self, "pools", pools)
        height = 1
        for h, _ in pools:
            height *= h
        if self.input_size < height:
            raise ConfigError(f"input_size (the height, F) is {self.input_size}, but the pools divide the height by "
                              f"{height}; use inputs at least {height} high or smaller height pools.")
        check_positive_int(self.hidden_size, "hidden_size")
        check_positive_int(self.num_layers, "num_layers")
        check_choice(self.mode, "mode", MODES)
        for flag in ("bidirectional", "causal"):
            if not isinstance(getattr(self, flag), bool):
                raise ConfigError(f"{flag} must be True or False, got {getattr(self, flag)!r}.")
        object.__setattr__(self, "dropout", check_probability(self.dropout, "dropout"))
        check_choice(self.impl, "impl", IMPLS)


class CRNN(nn.Module):
    """Convolutional-recurrent network giving per-frame class scores for CTC, on inputs of any length.

    Args:
        config: `CRNN.Config` (`CRNNConfig`).

    Shape:
        - x: (B, T, F) float, batch first (F = height / mel bands).  - lengths: (B,) int64, optional.
        - Output: (B, T', K) logits with T' = `output_lengths(T)`; frames past an item's own
          `output_lengths(lengths)` are padding.

    Example:
        >>> m = CRNN(CRNNConfig(input_size=24, num_classes=11, channels=(8, 16), pools=((2, 2), (2, 2)))).eval()
        >>> x, lengths = torch.randn(3, 61, 24), torch.tensor([61, 30, 9])
        >>> m(x, lengths).shape, m.output_lengths(lengths).tolist()
        (torch.Size([3, 15, 11]), [15, 7, 2])
    """

    Config = CRNNConfig
    topology = "many-to-many"
    TRAITS = Traits(streams=True, output_lengths=True)

    def __init__(self, config: CRNNConfig) -> None:
        super().__init__()
        self.config = c = config
        blocks, in_channels, height = [], 1, c.input_size
        for out_channels, (ph, _) in zip(c.channels, c.pools):
            blocks.append(nn.ModuleDict({
                "conv": nn.Conv2d(in_channels, out_channels, 3, padding=(1, 0), bias=False),  # time padding in forward
                "norm": nn.BatchNorm2d(out_channels),
            }))
            in_channels, height = out_channels, height // ph
        self.blocks = nn.ModuleList(blocks)
        self.feature_size = in_channels * height  # C · F' after collapsing the height
        self.project = nn.Linear(self.feature_size, c.hidden_size)
        bidirectional = c.bidirectional and not c.causal
        self.rnn = Recurrent(c.mode, c.hidden_size, c.hidden_size, c.num_layers, bidirectional=bidirectional,
                             dropout=c.dropout if c.num_layers > 1 else 0.0, impl=c.impl)
        self.head = nn.Linear(self.rnn.output_size, c.num_classes)
        self.drop = nn.Dropout(c.dropout)

    def conv_bn_pairs(self) -> list[tuple[str, str]]:
        """Each block's norm reads its conv's output unchanged (for `gridseq.nn.fuse.fold_batchnorm`)."""
        return [(f"blocks.{i}.conv", f"blocks.{i}.norm") for i in range(len(self.blocks))]

    @property
    def time_reduction(self) -> int:
        """The product of the time pool factors: roughly T / T'."""
        r = 1
        for _, pt in self.config.pools:
            r *= pt
        return r

    def output_lengths(self, lengths: Tensor) -> Tensor:
        """Valid output frames for inputs of `lengths` steps: floor division by each time pool in turn."""
        out = torch.as_tensor(lengths, dtype=torch.int64)
        for _, pt in self.config.pools:
            out = torch.div(out, pt, rounding_mode="floor")
        return out

    def features(self, x: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """The CNN part: (B, T, F) → ((B, T', C·F') frame features, (B,) frame lengths or None)."""
        x, lengths = check_sequence(x, lengths, features=self.config.input_size)
        if x.shape[1] < self.time_reduction:  # too short for one frame: pad to one (output_lengths says 0 valid)
            x = F.pad(x, (0, 0, 0, self.time_reduction - x.shape[1]))
        h = x.transpose(1, 2).unsqueeze(1)  # (B, T, F) -> (B, 1, F, T): the feature axis is the image height
        steps = lengths
        pad = (2, 0) if self.config.causal else (1, 1)  # time padding: causal looks back only
        for block, (ph, pt) in zip(self.blocks, self.config.pools):
            if steps is not None:  # zero past each item's end, so a short item sees what it would alone
                h = h * length_mask(steps, h.shape[-1], h.device)[:, None, None, :]
            h = F.relu(block["norm"](block["conv"](F.pad(h, pad))))
            h = F.max_pool2d(h, (min(ph, h.shape[2]), pt))  # a 1-high map is kept, never pooled to 0
            steps = None if steps is None else torch.div(steps, pt, rounding_mode="floor")
        frames = h.flatten(1, 2).transpose(1, 2)  # (B, C, F', T') -> (B, T', C*F')
        return frames, steps

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        x, lengths = check_sequence(x, lengths, features=self.config.input_size)
        with inputs_checked():  # features, the masks and the Recurrent trust the checked input
            return self._forward(x, lengths)

    def _forward(self, x: Tensor, lengths: Tensor | None) -> Tensor:
        frames, steps = self.features(x, lengths)
        h = self.drop(F.relu(self.project(frames)))  # (B, T', H)
        if steps is not None:
            steps = steps.clamp(min=1)  # an item shorter than one frame still gets one (the task rejects it)
            h = h * length_mask(steps, h.shape[1], h.device)[..., None]
        out, _ = self.rnn(h, steps)  # (B, T', D*H)
        return self.head(self.drop(out))  # (B, T', K)

    def stream(self, batch_size: int = 1) -> CRNNStream:
        """A step-by-step stream (causal models only): `step(x_t)` with x_t (B, F) one input step returns
        (B, n, K) logits of the n ∈ {0, 1} frames that step completes; `run(x)` equals `forward(x)`."""
        return CRNNStream(self, batch_size)

    def extra_repr(self) -> str:
        c = self.config
        return f"pools={c.pools}, time_reduction={self.time_reduction}, causal={c.causal}"


class CRNNStream(Stream):
    """Streams a causal `CRNN` one input step at a time, keeping each conv block's last two input
    columns, the columns waiting for their pooling window, and the recurrent state.

    Args:
        model: a CRNN with `causal=True`, in eval mode.
        batch_size: B. Default: 1.

    Shape:
        - x_t: (B, F), one step.  - Output: (B, n, K), n = 1 when this step completes an output frame
          (every `time_reduction` steps), else 0; `run(x)` concatenates them to forward's (B, T', K).

    Example:
        >>> m = CRNN(CRNNConfig(input_size=16, num_classes=5, channels=(4,), pools=((2, 2),), causal=True)).eval()
        >>> x = torch.randn(1, 9, 16)
        >>> torch.allclose(m.stream().run(x), m(x), atol=1e-5)
        True
    """

    def __init__(self, model: CRNN, batch_size: int = 1) -> None:
        refuse_bidirectional("crnn-ctc", model.rnn.bidirectional)
        if not model.config.causal:
            raise ConfigError("crnn-ctc streams only with causal=True: otherwise each convolution looks one step ahead. "
                              "Train it with --model.causal=true.")
        super().__init__(batch_size)
        self.model = model
        self._reset()

    def _reset(self) -> None:
        n = len(self.model.blocks)
        self.history: list[Tensor | None] = [None] * n  # (B, C, F_i, 2): the block's last two input columns
        self.pending: list[list[Tensor]] = [[] for _ in range(n)]  # conv columns waiting for a full pool window
        self.state = None

    def _step(self, x_t: Tensor) -> Tensor:
        m = self.model
        x_t, _ = check_sequence(x_t.unsqueeze(1), None, features=m.config.input_size)
        h = x_t.transpose(1, 2).unsqueeze(1)  # (B, 1, F, 1): one column
        empty = h.new_zeros(h.shape[0], 0, m.config.num_classes)
        for i, (block, (ph, pt)) in enumerate(zip(m.blocks, m.config.pools)):
            past = self.history[i] if self.history[i] is not None else h.new_zeros(*h.shape[:3], 2)
            window = torch.cat([past, h], dim=-1)  # (B, C, F_i, 3): what the causal 3-wide kernel sees
            self.history[i] = window[..., 1:]
            column = F.relu(block["norm"](block["conv"](window)))  # (B, C', F_i, 1)
            self.pending[i].append(F.max_pool2d(column, (min(ph, column.shape[2]), 1)))
            if len(self.pending[i]) < pt:
                return empty  # this block's pooling window is not full yet: no new frame
            h = torch.cat(self.pending[i], dim=-1).amax(dim=-1, keepdim=True)  # max over the time window
            self.pending[i] = []
        frame = F.relu(m.project(h.flatten(1, 2).transpose(1, 2)))  # (B, 1, H)
        out, self.state = m.rnn(frame, None, self.state)
        return m.head(out)  # (B, 1, K)

    def run(self, x: Tensor) -> Tensor:
        """Step through x (B, T, F); the frames completed along the way, (B, T', K)."""
        if not isinstance(x, Tensor) or x.dim() != 3:
            raise ShapeError(f"expected x of shape (B, T, F) to run step by step, got {getattr(x, 'shape', x)!r}.")
        return torch.cat([self.step(x[:, t]) for t in range(x.shape[1])], dim=1)


def _from_info(info) -> dict:
    if info.targets.kind != "transcript":
        raise ConfigError(f"crnn-ctc scores frames for CTC transcription (task 'transcribe'); dataset {info.name!r} is a "
                          f"{info.task} dataset. Use it on digit-strings, dtmf or your own transcribed images/audio.")
    return {"input_size": info.num_features, "num_classes": info.num_classes}


register("crnn-ctc", CRNN, description="CNN features along time -> (bi)LSTM -> CTC: handwriting lines, audio",
         kinds=("sequence",), from_info=_from_info)
