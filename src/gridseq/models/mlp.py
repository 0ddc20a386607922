"""MLP: the baseline with no spatial or temporal prior — flatten the input, then fully connected layers.

It answers "does the structure matter here?": where an MLP matches a CNN or an RNN, the data's
order or neighbourhoods carry little of the signal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch import Tensor, nn

from gridseq import shapes
from gridseq._validation import check_int_tuple, check_positive_int, check_probability
from gridseq.errors import ConfigError, ShapeError
from gridseq.models import registry
from gridseq.models.traits import Traits
from gridseq.nn.sequence import to_fixed_length


@dataclass(frozen=True)
class MLPConfig:
    """Configuration of `MLP`.

    Args:
        input_shape: one item's shape without the batch dimension: (C, H, W) for images, (T, F) for
            sequences; the first layer has prod(input_shape) inputs.
        num_classes: K.
        hidden: width of each hidden layer; () for a linear classifier. Default: (256, 256).
        dropout: dropout after each hidden layer. Default: 0.1.
    """

    input_shape: tuple[int, ...]
    num_classes: int
    hidden: tuple[int, ...] = (256, 256)
    dropout: float = 0.1

    def __post_init__(self) -> None:
        input_shape = check_int_tuple(self.input_shape, "input_shape")
        if len(input_shape) not in (2, 3):
            raise ConfigError(
                f"input_shape must be (C, H, W) for images or (T, F) for sequences, got {self.input_shape!r}."
            )
        check_positive_int(self.num_classes, "num_classes")
        hidden = check_int_tuple(self.hidden, "hidden")
        check_probability(self.dropout, "dropout")
        object.__setattr__(self, "input_shape", input_shape)
        object.__setattr__(self, "hidden", hidden)


class MLP(nn.Module):
    """Flatten → [Linear → ReLU → Dropout] per hidden width → Linear(K).

    Sequences are brought to the configured T = input_shape[0] first: steps past each sequence's
    length are zeroed (so padding values never matter), then the batch is zero-padded or cropped
    at the end to T steps. A sequence longer than T is therefore cut to its first T steps.

    Args:
        config: MLPConfig.
    Shape:
        - images: x (B, C, H, W) float with (C, H, W) = input_shape; lengths must be None.
        - sequences: x (B, T', F) float with F = input_shape[1] and any T'; lengths (B,) int64 optional.
        - Output: (B, K) logits.
    Example:
        >>> import torch
        >>> MLP(MLP.Config(input_shape=(1, 8, 8), num_classes=10))(torch.zeros(2, 1, 8, 8)).shape
        torch.Size([2, 10])
        >>> MLP(MLP.Config(input_shape=(40, 1), num_classes=10))(torch.zeros(2, 33, 1)).shape
        torch.Size([2, 10])
    """

    Config = MLPConfig
    topology = "one-to-one"
    TRAITS = Traits()

    def __init__(self, config: MLPConfig):
        super().__init__()
        self.config = config
        self.is_sequence = len(config.input_shape) == 2
        if self.is_sequence:
            self.topology = "many-to-one"
        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(config.input_shape)
        for h in config.hidden:
            layers += [nn.Linear(width, h), nn.ReLU(inplace=True), nn.Dropout(config.dropout)]
            width = h
        layers.append(nn.Linear(width, config.num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        if not self.is_sequence:
            if lengths is not None:
                raise ShapeError("MLP built for images (input_shape (C, H, W)) takes no lengths; pass lengths=None.")
            c, h, w = self.config.input_shape
            return self.net(shapes.check_image(x, channels=c, size=(h, w)))
        steps, features = self.config.input_shape
        x, lengths = shapes.check_sequence(x, lengths, features=features)
        return self.net(to_fixed_length(x, lengths, steps))  # (B, T, F) → flattened


def _from_info(info) -> dict:
    return {"input_shape": tuple(info.input_shape), "num_classes": info.output_size}


registry.register(
    "mlp", MLP,
    description="multilayer perceptron on the flattened input (baseline without spatial or temporal structure)",
    kinds=("image", "sequence", "series"), from_info=_from_info,
)
