"""The encoder-decoder family: token sequence → token sequence, with attention (registered as "seq2seq").

    source ids (B, S) ─► embedding ─► Recurrent encoder ─► outputs (B, S, D·H) ──────► memory ─┐
                                          │ final state of the last layer, both directions      │
                                          └─► StateBridge ─► decoder's initial state ─► Decoder ─► logits (B, U, V)

The encoder is any `gridseq.nn.Recurrent` (Elman, LSTM, GRU; bidirectional allowed), the decoder is
`gridseq.nn.decoder.Decoder` with Bahdanau or Luong attention over the encoder outputs (padded source
positions get zero weight). Targets follow `gridseq.data.vocab`: the target tokens then <eos>, padded
with <pad>=0, without <bos> — the model prepends <bos> for teacher forcing.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor, nn

from gridseq._validation import check_choice, check_positive_int, check_probability, check_teacher_forcing
from gridseq.constants import BOS, EOS, PAD
from gridseq.errors import ConfigError, ShapeError
from gridseq.models.registry import register
from gridseq.models.traits import Traits
from gridseq.nn.decoder import Decoder, StateBridge
from gridseq.nn.recurrent import IMPLS, MODES, Recurrent, State
from gridseq.nn.sequence import length_mask
from gridseq.shapes import check_tokens

ATTENTIONS = ("bahdanau", "luong", "dot", "none")


@dataclass(frozen=True)
class Seq2SeqConfig:
    """Configuration of a `Seq2Seq` model.

    Args:
        vocab_size: the source vocabulary size; id 0 is padding.
        num_classes: the target vocabulary size (`DatasetInfo.output_size`); ids 0-3 are
            <pad>, <unk>, <bos>, <eos>, so at least 4.
        embedding_dim: size of the source and the target token embeddings. Default: 64.
        hidden_size: H, units of the encoder (per direction) and of the decoder. Default: 128.
        num_layers: L, stacked layers of the encoder and of the decoder. Default: 1.
        mode: "rnn" (Elman), "lstm" or "gru", for both. Default: "lstm".
        bidirectional: run the encoder both ways (its outputs are then 2·H wide). Default: True.
        attention: "bahdanau" (additive), "luong" (general, q·W·m), "dot" (q·m; needs the
            encoder's output size D·H to equal H, i.e. bidirectional=False) or "none" (the bridged
            final state is the decoder's only view of the source). Default: "bahdanau".
        dropout: on embeddings, between stacked layers and before the output layer. Default: 0.
        teacher_forcing: in training, the probability of feeding the true previous target token
            rather than the model's own prediction (scheduled sampling); evaluation always feeds the
            true one, so losses stay comparable. Default: 1.
        max_length: the most tokens (<eos> included) decoded without a target. Default: 64.
        impl: "auto", "fused" or "reference", see `Recurrent`. Default: "auto".
    """

    vocab_size: int
    num_classes: int
    embedding_dim: int = 64
    hidden_size: int = 128
    num_layers: int = 1
    mode: str = "lstm"
    bidirectional: bool = True
    attention: str = "bahdanau"
    dropout: float = 0.0
    teacher_forcing: float = 1.0  # 1 = always the true previous token
    max_length: int = 64  # generous for dates (10 characters + <eos>)
    impl: str = "auto"

    def __post_init__(self) -> None:
        check_positive_int(self.vocab_size, "vocab_size", minimum=2)  # id 0 is padding
        if isinstance(self.num_classes, bool) or not isinstance(self.num_classes, int) or self.num_classes < EOS + 1:
            raise ConfigError(
                f"num_classes is the target vocabulary size, which starts with <pad>, <unk>, <bos>, <eos> (ids 0-3), "
                f"so it must be an int >= 4, got {self.num_classes!r}."
            )
        check_positive_int(self.embedding_dim, "embedding_dim")
        check_positive_int(self.hidden_size, "hidden_size")
        check_positive_int(self.num_layers, "num_layers")
        check_choice(self.mode, "mode", MODES)
        if not isinstance(self.bidirectional, bool):
            raise ConfigError(f"bidirectional must be True or False, got {self.bidirectional!r}.")
        check_choice(self.attention, "attention", ATTENTIONS)
        if self.attention == "dot" and self.bidirectional:
            raise ConfigError(
                f"attention='dot' scores q · m, so the encoder's outputs (2*H = {2 * self.hidden_size} wide when "
                f"bidirectional) must be as wide as the decoder state (H = {self.hidden_size}); use "
                f"bidirectional=False or attention='luong', which learns the map between them."
            )
        object.__setattr__(self, "dropout", check_probability(self.dropout, "dropout"))
        object.__setattr__(self, "teacher_forcing", check_teacher_forcing(self.teacher_forcing))
        check_positive_int(self.max_length, "max_length")
        check_choice(self.impl, "impl", IMPLS)


class Encoded(NamedTuple):
    """The encoder's view of a source batch.

    Attributes:
        memory: (B, S, D·H) encoder outputs, zero at padded positions.
        mask: (B, S) bool, True at valid source positions, or None (no padding).
        state: the decoder's initial state, h (L, B, H) or for LSTM (h, c).
    """

    memory: Tensor
    mask: Tensor | None
    state: State


class Seq2Seq(nn.Module):
    """RNN encoder-decoder with attention, teacher forcing, greedy decoding and beam search.

    Args:
        config: `Seq2Seq.Config` (`Seq2SeqConfig`).

    Shape:
        - x: (B, S) int64 source ids padded with 0.  - lengths: (B,) int64, optional (all S).
        - target: (B, U) int64 target ids then <eos>, padded with 0, no <bos>; optional.
        - Output of forward: logits (B, U, V) with a target; without one (B, U', V) for the greedy
          decoded steps (zero after a sequence's <eos>), U' <= max_length.
        - Output of generate: ids (B, U') int64, <eos> included, 0 after it; attention (B, U', S).

    Note:
        A sequence's logits and decoded ids do not depend on the batch it is in: padded source
        positions never reach the encoder's state and get zero attention weight.

    Example:
        >>> import torch
        >>> m = Seq2Seq(Seq2SeqConfig(vocab_size=20, num_classes=12, hidden_size=16, mode="gru")).eval()
        >>> x, lengths = torch.randint(4, 20, (3, 9)), torch.tensor([9, 5, 2])
        >>> m(x, lengths, target=torch.randint(4, 12, (3, 6))).shape
        torch.Size([3, 6, 12])
        >>> ids, attention = m.generate(x, lengths, beam=3, max_length=7, return_attention=True)
        >>> ids.shape[1] <= 7 and attention.shape[::2] == (3, 9)
        True
    """

    Config = Seq2SeqConfig
    topology = "encoder-decoder"
    TRAITS = Traits(encodes=True, decodes=True, attention=True)  # attention: refined in __init__

    def __init__(self, config: Seq2SeqConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.embedding = nn.Embedding(c.vocab_size, c.embedding_dim, padding_idx=PAD)
        self.encoder = Recurrent(
            c.mode, c.embedding_dim, c.hidden_size, c.num_layers, bidirectional=c.bidirectional,
            dropout=c.dropout if c.num_layers > 1 else 0.0, impl=c.impl,
        )
        summary = self.encoder.output_size * (2 if c.mode == "lstm" else 1)  # last layer's h (and c), both directions
        self.bridge = StateBridge(summary, c.hidden_size, c.num_layers, c.mode)
        attention = None if c.attention == "none" else c.attention
        self.decoder = Decoder(
            c.num_classes, c.embedding_dim, c.hidden_size, c.num_layers, c.mode, attention=attention,
            memory_size=self.encoder.output_size if attention else None, dropout=c.dropout, impl=c.impl,
        )
        self.TRAITS = dataclasses.replace(Seq2Seq.TRAITS, attention=attention is not None)
        self.drop = nn.Dropout(c.dropout)

    def encode(self, x: Tensor, lengths: Tensor | None = None) -> Encoded:
        """Run the encoder: memory (B, S, D·H), its mask and the decoder's initial state."""
        x, lengths = check_tokens(x, lengths, vocab_size=self.config.vocab_size)
        outputs, final = self.encoder(self.drop(self.embedding(x)), lengths)  # (B, S, D*H); (L*D, B, H)
        d = self.encoder.num_directions
        parts = final if isinstance(final, tuple) else (final,)
        # the last layer's final state of every direction, each at the sequence's own end: (B, D*H) per part
        summary = torch.cat([p[-d:].transpose(0, 1).reshape(x.shape[0], -1) for p in parts], dim=-1)
        mask = None if lengths is None else length_mask(lengths, x.shape[1], x.device)  # (B, S)
        return Encoded(outputs, mask, self.bridge(summary))

    def _memory(self, enc: Encoded) -> tuple[Tensor | None, Tensor | None]:
        return (enc.memory, enc.mask) if self.decoder.attention is not None else (None, None)

    def forward(self, x: Tensor, lengths: Tensor | None = None, target: Tensor | None = None) -> Tensor:
        """Logits (B, U, V) for `target` (teacher-forced), or for the greedy decoding without one."""
        enc = self.encode(x, lengths)
        memory, mask = self._memory(enc)
        if target is None:
            return self.decoder.greedy(enc.state, memory, mask, max_length=self.config.max_length).logits
        target, _ = check_tokens(target, vocab_size=self.config.num_classes, name="target")
        if target.shape[0] != x.shape[0]:
            raise ShapeError(
                f"target holds {target.shape[0]} sequences but x holds B={x.shape[0]}; expected target of shape "
                f"(B, U) = ({x.shape[0]}, U), one target per source sequence."
            )
        bos = torch.full((target.shape[0], 1), BOS, dtype=torch.long, device=target.device)
        inputs = torch.cat([bos, target[:, :-1]], dim=1)  # (B, U): <bos>, then the target shifted right
        ratio = self.config.teacher_forcing if self.training else 1.0
        return self.decoder(inputs, enc.state, memory, mask, teacher_forcing=ratio)

    @torch.no_grad()
    def generate(
        self, x: Tensor, lengths: Tensor | None = None, *, beam: int = 1, max_length: int | None = None,
        length_penalty: float = 0.0, return_attention: bool = False,
    ) -> Tensor | tuple[Tensor, Tensor | None]:
        """Decode target ids for a source batch (call `model.eval()` first to switch dropout off).

        Args:
            x: (B, S) int64 source ids padded with 0.
            lengths: (B,) int64 valid lengths, or None (all S).
            beam: hypotheses kept per sequence; 1 is greedy decoding. Default: 1.
            max_length: the most tokens to generate, <eos> included. Default: config.max_length.
            length_penalty: beam search ranks by log p / length ** length_penalty; 0 ranks by
                probability, larger values favour longer outputs. Default: 0.
            return_attention: also return the attention weights of every step.

        Returns:
            ids (B, U') int64 with <eos> included and 0 after it (U' <= max_length); with
            `return_attention`, (ids, attention (B, U', S)) — attention is None if the model has none.
        """
        max_length = self.config.max_length if max_length is None else max_length
        enc = self.encode(x, lengths)
        memory, mask = self._memory(enc)
        if check_positive_int(beam, "beam") == 1:
            out = self.decoder.greedy(enc.state, memory, mask, max_length=max_length, return_attention=return_attention)
        else:
            out = self.decoder.beam_search(
                enc.state, memory, mask, beam=beam, max_length=max_length, length_penalty=length_penalty,
                return_attention=return_attention,
            )
        return (out.tokens, out.attention) if return_attention else out.tokens

    def extra_repr(self) -> str:
        c = self.config
        return f"attention={c.attention!r}, teacher_forcing={c.teacher_forcing}, max_length={c.max_length}"


def _from_info(info) -> dict:
    """The source vocabulary and the target vocabulary (the dataset's output size)."""
    return {"vocab_size": info.vocab_size, "num_classes": info.output_size}


register("seq2seq", Seq2Seq, description="RNN encoder-decoder with Bahdanau/Luong attention; greedy and beam search",
         kinds=("tokens",), from_info=_from_info)
