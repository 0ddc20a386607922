"""The image captioner (one-to-many): CNN encoder → RNN decoder with attention (registered as "captioner").

    image (B, C, H, W) ─► CNN conv blocks ─► feature map (B, C', H', W')
      ├─► per position, + a learned position embedding ─► memory (B, H'·W', C') ─► attention ──────┐
      └─► flattened whole (CNN.forward_features) ─► vector (B, C'·H'·W') ─► StateBridge ─► state ──┴─► Decoder ─► logits (B, U, V)

The encoder is a `gridseq.models.cnn.CNN` without its classifier head; the decoder is the one seq2seq
uses (`gridseq.nn.decoder.Decoder`): teacher forcing, scheduled sampling, greedy decoding and beam
search, with Bahdanau or Luong attention over the H'·W' positions of the last feature map — or,
with attention="none", the image vector alone conditions it. The attention weights of each decoded
word come back from `generate(..., return_attention=True)` as (B, U', H'·W'); reshape them to
`(B, U', *model.feature_grid)` to lay them over the image.

Targets follow `gridseq.data.vocab`: the caption's word ids then <eos>, padded with <pad>=0, without
<bos> — the model prepends it for teacher forcing.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from gridseq._validation import check_choice, check_int_tuple, check_positive_int, check_probability, check_teacher_forcing
from gridseq.constants import BOS, EOS
from gridseq.errors import ConfigError, ShapeError
from gridseq.models.cnn import CNN, CNNConfig
from gridseq.models.registry import register
from gridseq.models.seq2seq import ATTENTIONS, Encoded
from gridseq.models.traits import Traits
from gridseq.nn.decoder import Decoder, StateBridge
from gridseq.nn.recurrent import IMPLS, MODES
from gridseq.shapes import check_tokens


@dataclass(frozen=True)
class CaptionerConfig:
    """Configuration of a `Captioner`.

    Args:
        input_shape: (C, H, W) of one image.
        num_classes: the caption vocabulary size (`DatasetInfo.output_size`); ids 0-3 are
            <pad>, <unk>, <bos>, <eos>, so at least 4.
        channels: output channels of each conv block of the encoder; each block halves H and W by
            max pooling, so the attention memory has (H / 2^n)·(W / 2^n) positions of channels[-1]
            features. Default: (32, 64, 64) — a 4×4 grid of 64 for 32×32 images.
        kernel_sizes: conv window of each block (one int for every block). Default: 3.
        batch_norm: BatchNorm after each conv. Default: True.
        embedding_dim: size of the word embedding. Default: 32.
        hidden_size: H, units of the decoder RNN. Default: 128.
        num_layers: L, stacked decoder layers. Default: 1.
        mode: "rnn" (Elman), "lstm" or "gru" decoder. Default: "gru".
        attention: "bahdanau" (additive), "luong" (q·W·m), "dot" (q·m; needs channels[-1] equal to
            hidden_size) or "none" (the image vector is the decoder's only view). Default: "bahdanau".
        positions: add a learned embedding of each feature-map position to the memory, so attention
            contexts say *where* as well as *what* (spatial relations need it); ignored with
            attention="none", which reads no memory. Default: True.
        dropout: on the image vector, word embeddings, between stacked layers and before the output
            layer. Default: 0.
        teacher_forcing: in training, the probability of feeding the true previous word rather than
            the model's own prediction (scheduled sampling). Default: 1.
        max_length: the most words (<eos> included) decoded without a target. Default: 32.
        impl: "auto", "fused" or "reference", see `Recurrent`. Default: "auto".
    """

    input_shape: tuple[int, ...]
    num_classes: int
    channels: tuple[int, ...] = (32, 64, 64)
    kernel_sizes: tuple[int, ...] | int = 3
    batch_norm: bool = True
    embedding_dim: int = 32
    hidden_size: int = 128
    num_layers: int = 1
    mode: str = "gru"
    attention: str = "bahdanau"
    positions: bool = True
    dropout: float = 0.0
    teacher_forcing: float = 1.0  # 1 = always the true previous word
    max_length: int = 32  # scenes-captions: at most 16 words + <eos>
    impl: str = "auto"

    def __post_init__(self) -> None:
        shape = check_int_tuple(self.input_shape, "input_shape")
        if len(shape) != 3:
            raise ConfigError(f"input_shape must be (C, H, W) of one image, got {self.input_shape!r}; a captioner reads images.")
        object.__setattr__(self, "input_shape", shape)
        if isinstance(self.num_classes, bool) or not isinstance(self.num_classes, int) or self.num_classes < EOS + 1:
            raise ConfigError(
                f"num_classes is the caption vocabulary size, which starts with <pad>, <unk>, <bos>, <eos> (ids 0-3), "
                f"so it must be an int >= 4, got {self.num_classes!r}."
            )
        channels = check_int_tuple(self.channels, "channels")
        kernels = check_int_tuple(self.kernel_sizes, "kernel_sizes")
        if len(kernels) not in (1, len(channels)):
            raise ConfigError(
                f"kernel_sizes must have one entry per conv block (len(channels) = {len(channels)}) or be one int, "
                f"got {self.kernel_sizes!r}."
            )
        object.__setattr__(self, "channels", channels)
        object.__setattr__(self, "kernel_sizes", kernels if len(kernels) > 1 else kernels[0])
        if not isinstance(self.batch_norm, bool):
            raise ConfigError(f"batch_norm must be True or False, got {self.batch_norm!r}.")
        check_positive_int(self.embedding_dim, "embedding_dim")
        check_positive_int(self.hidden_size, "hidden_size")
        check_positive_int(self.num_layers, "num_layers")
        check_choice(self.mode, "mode", MODES)
        check_choice(self.attention, "attention", ATTENTIONS)
        if self.attention == "dot" and channels[-1] != self.hidden_size:
            raise ConfigError(
                f"attention='dot' scores q · m, so the memory (channels[-1] = {channels[-1]} features per position) must "
                f"be as wide as the decoder state (hidden_size = {self.hidden_size}); make them equal or use "
                f"attention='luong', which learns the map between them."
            )
        if not isinstance(self.positions, bool):
            raise ConfigError(f"positions must be True or False, got {self.positions!r}.")
        object.__setattr__(self, "dropout", check_probability(self.dropout, "dropout"))
        object.__setattr__(self, "teacher_forcing", check_teacher_forcing(self.teacher_forcing))
        check_positive_int(self.max_length, "max_length")
        check_choice(self.impl, "impl", IMPLS)


class Captioner(nn.Module):
    """CNN encoder → RNN decoder with attention over the feature map; greedy decoding and beam search.

    Args:
        config: `Captioner.Config` (`CaptionerConfig`).

    Shape:
        - x: (B, C, H, W) float images, (C, H, W) = config.input_shape.
        - target: (B, U) int64 caption ids then <eos>, padded with 0, no <bos>; optional.
        - Output of forward: logits (B, U, V) with a target; without one (B, U', V) for the greedy
          decoded words (zero after a caption's <eos>), U' <= max_length.
        - Output of generate: ids (B, U') int64, <eos> included, 0 after it; attention (B, U', S)
          over the S = H'·W' positions of the feature map (`feature_grid` = (H', W')).

    Example:
        >>> import torch
        >>> m = Captioner(CaptionerConfig(input_shape=(3, 32, 32), num_classes=20, hidden_size=16)).eval()
        >>> images = torch.randn(2, 3, 32, 32)
        >>> m(images, target=torch.randint(4, 20, (2, 9))).shape
        torch.Size([2, 9, 20])
        >>> ids, attention = m.generate(images, beam=3, max_length=5, return_attention=True)
        >>> m.feature_grid, ids.shape[1] <= 5, attention.shape[2]  # 32 → 16 → 8 → 4
        ((4, 4), True, 16)
    """

    Config = CaptionerConfig
    topology = "one-to-many"
    TRAITS = Traits(encodes=True, decodes=True, attention=True)  # refined in __init__

    def __init__(self, config: CaptionerConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.encoder = CNN(CNNConfig(c.input_shape, num_classes=1, channels=c.channels, kernel_sizes=c.kernel_sizes,
                                     hidden=0, dropout=0.0, batch_norm=c.batch_norm))
        self.encoder.head = nn.Identity()  # no classifier: the decoder reads the feature map
        channels, height, width = self.encoder.feature_shape
        self.feature_grid = (height, width)  # (H', W'): how the attention's S positions lie on the image
        self.memory_size = channels
        # (S, C'): where each memory position lies; only attention reads the memory
        use_positions = c.positions and c.attention != "none"
        self.positions = nn.Parameter(0.1 * torch.randn(height * width, channels)) if use_positions else None
        self.bridge = StateBridge(self.encoder.num_features, c.hidden_size, c.num_layers, c.mode)
        attention = None if c.attention == "none" else c.attention
        self.decoder = Decoder(
            c.num_classes, c.embedding_dim, c.hidden_size, c.num_layers, c.mode, attention=attention,
            memory_size=channels if attention else None, dropout=c.dropout, impl=c.impl,
        )
        self.TRAITS = dataclasses.replace(Captioner.TRAITS, attention=attention is not None, feature_grid=self.feature_grid)
        self.drop = nn.Dropout(c.dropout)

    def encode(self, x: Tensor, lengths: Tensor | None = None) -> Encoded:
        """Run the CNN: memory (B, H'·W', C'), no mask (every position is valid) and the decoder's initial state."""
        vector = self.encoder.forward_features(x, lengths)  # (B, C'*H'*W'), checks the image layout
        batch = vector.shape[0]
        channels = self.memory_size
        memory = vector.view(batch, channels, -1).transpose(1, 2)  # (B, S=H'*W', C'): one feature vector per position
        if self.positions is not None:
            memory = memory + self.positions  # (S, C') broadcast over the batch
        return Encoded(memory, None, self.bridge(self.drop(vector)))

    def _memory(self, enc: Encoded) -> Tensor | None:
        return enc.memory if self.decoder.attention is not None else None

    def forward(self, x: Tensor, target: Tensor | None = None) -> Tensor:
        """Logits (B, U, V) for `target` (teacher-forced), or for the greedy decoding without one."""
        enc = self.encode(x)
        memory = self._memory(enc)
        if target is None:
            return self.decoder.greedy(enc.state, memory, max_length=self.config.max_length).logits
        target, _ = check_tokens(target, vocab_size=self.config.num_classes, name="target")
        if target.shape[0] != x.shape[0]:
            raise ShapeError(
                f"target holds {target.shape[0]} captions but x holds B={x.shape[0]} images; expected target of shape "
                f"(B, U) = ({x.shape[0]}, U), one caption per image."
            )
        bos = torch.full((target.shape[0], 1), BOS, dtype=torch.long, device=target.device)
        inputs = torch.cat([bos, target[:, :-1]], dim=1)  # (B, U): <bos>, then the caption shifted right
        ratio = self.config.teacher_forcing if self.training else 1.0
        return self.decoder(inputs, enc.state, memory, teacher_forcing=ratio)

    @torch.no_grad()
    def generate(
        self, x: Tensor, *, beam: int = 1, max_length: int | None = None, length_penalty: float = 0.0,
        return_attention: bool = False,
    ) -> Tensor | tuple[Tensor, Tensor | None]:
        """Caption ids for a batch of images (call `model.eval()` first to switch dropout off).

        Args:
            x: (B, C, H, W) float images.
            beam: hypotheses kept per image; 1 is greedy decoding. Default: 1.
            max_length: the most words to generate, <eos> included. Default: config.max_length.
            length_penalty: beam search ranks by log p / length ** length_penalty. Default: 0.
            return_attention: also return the attention weights of every word.

        Returns:
            ids (B, U') int64 with <eos> included and 0 after it (U' <= max_length); with
            `return_attention`, (ids, attention (B, U', H'·W')) — view it as (B, U', *feature_grid);
            attention is None if the model has none.
        """
        max_length = self.config.max_length if max_length is None else max_length
        enc = self.encode(x)
        memory = self._memory(enc)
        if check_positive_int(beam, "beam") == 1:
            out = self.decoder.greedy(enc.state, memory, max_length=max_length, return_attention=return_attention)
        else:
            out = self.decoder.beam_search(enc.state, memory, beam=beam, max_length=max_length,
                                           length_penalty=length_penalty, return_attention=return_attention)
        return (out.tokens, out.attention) if return_attention else out.tokens

    def extra_repr(self) -> str:
        c = self.config
        return f"attention={c.attention!r}, feature_grid={self.feature_grid}, max_length={c.max_length}"


def _from_info(info) -> dict:
    """The image shape and the caption vocabulary (the dataset's output size)."""
    return {"input_shape": tuple(info.input_shape), "num_classes": info.output_size}


register("captioner", Captioner, description="CNN encoder -> RNN decoder with attention over the feature map (image captioning)",
         kinds=("image",), from_info=_from_info)
