"""The RNN family: Elman RNN, LSTM and GRU classifiers and per-step taggers over sequences or tokens.

Registered as "rnn" (Elman), "lstm" and "gru": one `RNNModel` with a different `mode`. The encoder is
`gridseq.nn.Recurrent`; the sequence is summarised by the final state of every direction at each
sequence's own last valid step ("last"), or by mean or max pooling over valid steps, then a linear head
gives K logits. With `per_step=True` the head runs on every step instead (many-to-many).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from gridseq._validation import check_choice, check_input_or_vocab, check_positive_int, check_probability
from gridseq.errors import ConfigError
from gridseq.models.registry import per_step_for, register
from gridseq.models.traits import Traits
from gridseq.nn.cells import NONLINEARITIES
from gridseq.nn.recurrent import IMPLS, MODES, Recurrent
from gridseq.nn.sequence import final_features, length_mask, masked_max, masked_mean
from gridseq.nn.stream import RecurrentStream
from gridseq.shapes import check_sequence, check_tokens, inputs_checked, unpadded

POOLINGS = ("last", "mean", "max")


@dataclass(frozen=True)
class RNNConfig:
    """Configuration of an `RNNModel`; give exactly one of `input_size` and `vocab_size`.

    Args:
        num_classes: K, logits per sequence (or per step with `per_step`); for forecasting, the
            horizon × target series of the direct multi-step head (`DatasetInfo.output_size`).
        input_size: F, features per step of float sequences (B, T, F).
        vocab_size: size of the vocabulary of token ids (B, T); id 0 is padding.
        embedding_dim: size of the token embedding (with `vocab_size` only). Default: 64.
        hidden_size: H, units per direction. Default: 128.
        num_layers: stacked recurrent layers. Default: 1.
        mode: "rnn" (Elman), "lstm" or "gru". Default: "lstm".
        bidirectional: run every layer both ways. Default: False.
        dropout: between stacked layers only, as torch.nn.LSTM; warns with num_layers=1. Default: 0.
        pooling: how a sequence becomes one vector: "last" (final state of each direction at the
            sequence's own end), "mean" or "max" over valid steps. Ignored with `per_step`. Default: "last".
        per_step: classify every step, (B, T, K) logits (many-to-many). Default: False.
        impl: "auto", "fused" or "reference", see `Recurrent`. Default: "auto".
        nonlinearity: "tanh" or "relu", Elman only. Default: "tanh".
    """

    num_classes: int
    input_size: int | None = None
    vocab_size: int | None = None
    embedding_dim: int = 64  # used with vocab_size only
    hidden_size: int = 128
    num_layers: int = 1
    mode: str = "lstm"  # "rnn" = Elman
    bidirectional: bool = False
    dropout: float = 0.0  # between stacked layers, as torch.nn.LSTM
    pooling: str = "last"
    per_step: bool = False
    impl: str = "auto"
    nonlinearity: str = "tanh"

    def __post_init__(self) -> None:
        check_positive_int(self.num_classes, "num_classes")
        check_input_or_vocab(self.input_size, self.vocab_size)
        check_positive_int(self.embedding_dim, "embedding_dim")
        check_positive_int(self.hidden_size, "hidden_size")
        check_positive_int(self.num_layers, "num_layers")
        check_choice(self.mode, "mode", MODES)
        for flag in ("bidirectional", "per_step"):
            if not isinstance(getattr(self, flag), bool):
                raise ConfigError(f"{flag} must be True or False, got {getattr(self, flag)!r}.")
        object.__setattr__(self, "dropout", check_probability(self.dropout, "dropout"))
        check_choice(self.pooling, "pooling", POOLINGS)
        check_choice(self.impl, "impl", IMPLS)
        check_choice(self.nonlinearity, "nonlinearity", NONLINEARITIES)
        if self.mode != "rnn" and self.nonlinearity != "tanh":
            raise ConfigError(
                f"nonlinearity={self.nonlinearity!r} applies to mode='rnn' (Elman) only, got mode={self.mode!r}."
            )


class RNNModel(nn.Module):
    """Recurrent classifier: (optional token embedding) → `Recurrent` → pooling → linear head.

    Args:
        config: `RNNModel.Config` (`RNNConfig`).

    Shape:
        - x: (B, T, F) float with `input_size`, or (B, T) int64 token ids with `vocab_size`.
        - lengths: (B,) int64, optional (every sequence has T steps).
        - Output: (B, K) logits; with `per_step`, (B, T, K) logits, zero at padded steps.

    Note:
        Logits do not depend on padding: a sequence gives the same logits alone or padded in a batch.

    Example:
        >>> import torch
        >>> m = RNNModel(RNNConfig(num_classes=3, input_size=8, hidden_size=16, mode="gru"))
        >>> m(torch.randn(4, 10, 8), torch.tensor([10, 6, 3, 1])).shape
        torch.Size([4, 3])
    """

    Config = RNNConfig
    topology = "many-to-one"  # many-to-many when config.per_step
    TRAITS = Traits(streams=True)

    def __init__(self, config: RNNConfig) -> None:
        super().__init__()
        self.config = config
        if config.per_step:
            self.topology = "many-to-many"
        if config.vocab_size is not None:
            self.embedding = nn.Embedding(config.vocab_size, config.embedding_dim, padding_idx=0)
            input_size = config.embedding_dim
        else:
            self.embedding = None
            input_size = config.input_size
        self.encoder = Recurrent(
            config.mode, input_size, config.hidden_size, num_layers=config.num_layers,
            bidirectional=config.bidirectional, dropout=config.dropout, impl=config.impl,
            nonlinearity=config.nonlinearity,
        )
        self.head = nn.Linear(self.encoder.output_size, config.num_classes)

    def forward_features(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """The encoder's summary: (B, D*H), or per step (B, T, D*H) with `per_step`."""
        x, lengths = self._check(x, lengths)
        with inputs_checked():
            return self._encode(x, lengths, None)[0]

    def _check(self, x: Tensor, lengths: Tensor | None) -> tuple[Tensor, Tensor | None]:
        # the door: layout and values once; lengths become None when nothing is padded
        if self.embedding is not None:
            x, lengths = check_tokens(x, lengths, vocab_size=self.config.vocab_size)
        else:
            x, lengths = check_sequence(x, lengths, features=self.config.input_size)
        return x, unpadded(lengths, x.shape[1])

    def _encode(self, x: Tensor, lengths: Tensor | None, state):
        # features and the encoder's final state (each sequence's state at its own last valid step)
        if self.embedding is not None:
            x = self.embedding(x)  # (B, T, E)
        outputs, state = self.encoder(x, lengths, state)  # (B, T, D*H), zero at padded steps
        if self.config.per_step:
            return outputs, state
        if self.config.pooling == "mean":
            return masked_mean(outputs, lengths), state
        if self.config.pooling == "max":
            return masked_max(outputs, lengths), state
        return final_features(outputs, lengths, self.encoder.num_directions), state  # (B, D*H)

    def forward(self, x: Tensor, lengths: Tensor | None = None, state=None, return_state: bool = False):
        """Logits (B, K), or (B, T, K) with `per_step`.

        `state` continues the recurrence from an earlier call (the `Recurrent` state: h, or (h, c)
        for an LSTM, each (L*D, B, H)); with `return_state=True` the result is `(logits, state)` —
        what a stateful language model (truncated BPTT) and text generation use.
        """
        x, lengths = self._check(x, lengths)
        with inputs_checked():  # the encoder and the sequence helpers trust what was checked here
            features, state = self._encode(x, lengths, state)
            logits = self.head(features)
            if self.config.per_step and lengths is not None:
                # padded steps carry no prediction; zero them so they are identical however a batch is padded
                valid = length_mask(lengths, logits.shape[1], logits.device).unsqueeze(-1)  # (B, T, 1)
                logits = logits.masked_fill(~valid, 0.0)
        return (logits, state) if return_state else logits

    def stream(self, batch_size: int = 1) -> RecurrentStream:
        """A step-by-step `gridseq.nn.stream.Stream`: `s.step(x_t)` takes one step, (B, F) floats or (B,)
        token ids, and returns the logits (B, K) — of the sequence so far, or of this step with
        `per_step` — equal to `forward` on the steps so far. Bidirectional models raise ConfigError.

        Example:
            >>> import torch
            >>> m = RNNModel(RNNConfig(num_classes=3, input_size=8, hidden_size=16)).eval()
            >>> s = m.stream(batch_size=2)
            >>> s.step(torch.randn(2, 8)).shape
            torch.Size([2, 3])
        """
        def encode(x_t: Tensor) -> Tensor:  # one step (B, F) or (B,) ids -> (B, F) recurrent input
            if self.embedding is not None:
                return self.embedding(check_tokens(x_t.unsqueeze(1), None, vocab_size=self.config.vocab_size)[0])[:, 0]
            return check_sequence(x_t.unsqueeze(1), None, features=self.config.input_size)[0][:, 0]

        pooling = "step" if self.config.per_step else self.config.pooling
        return RecurrentStream(self.encoder, batch_size, encode=encode, readout=self.head, pooling=pooling,
                               name=f"model {getattr(self, 'gridseq_name', type(self).__name__)!r}")


def _from_info(info) -> dict:
    """A dataset's input size or vocabulary, its number of classes, and per-step output for tasks
    that score every step."""
    sizes = {"vocab_size": info.vocab_size} if info.kind == "tokens" else {"input_size": info.input_shape[-1]}
    return {**sizes, "num_classes": info.output_size, **per_step_for(info)}


_KINDS = ("sequence", "series", "tokens")
register("rnn", RNNModel, description="vanilla (Elman) RNN, tanh; stacked/bidirectional", kinds=_KINDS,
         defaults={"mode": "rnn"}, from_info=_from_info)
register("lstm", RNNModel, description="LSTM; stacked/bidirectional, variable length", kinds=_KINDS,
         defaults={"mode": "lstm"}, from_info=_from_info)
register("gru", RNNModel, description="GRU; stacked/bidirectional, variable length", kinds=_KINDS,
         defaults={"mode": "gru"}, from_info=_from_info)
