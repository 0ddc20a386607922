"""What a model declares about itself, so callers read one declaration instead of probing attributes.

A gridseq model class declares its capabilities once, as a class attribute, beside its `topology`:

    class RNNModel(nn.Module):
        topology = "many-to-one"  # set on the instance when the config changes it (per_step)
        TRAITS = Traits(streams=True)

A value that depends on the config is refined on the instance in `__init__`
(`self.TRAITS = dataclasses.replace(type(self).TRAITS, attention=...)`). `traits(model)` strips
DistributedDataParallel / DataParallel / torch.compile wrappers (`unwrap`) and returns the declaration
with the model's `topology` filled in. A plain `nn.Module` (a user's own) declares nothing and gets
`Traits()`: no capabilities, and the topology of its `topology` attribute if it has one, else None
(the tasks trust it and the loss checks the output's shape).

    >>> from gridseq import models
    >>> t = traits(models.create("lstm", input_size=3, num_classes=2))
    >>> t.topology, t.streams, t.decodes
    ('many-to-one', True, False)
    >>> traits(nn.Linear(2, 2)) == Traits()
    True
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from torch import nn


@dataclass(frozen=True)
class Traits:
    """The capabilities of a model; every field's default is what a plain nn.Module gets.

    Args:
        topology: "one-to-one", "many-to-one", "many-to-many", "encoder-decoder", "one-to-many" or
            "generative"; filled by `traits()` from the model's `topology` attribute (not declared here).
        serves_task: the task the model trains for whatever the dataset's task ("generate-image" for a
            VAE or DCGAN on a classification dataset), or None for the dataset's own.
        streams: has `stream(batch_size) -> gridseq.nn.stream.Stream` (step-by-step inference; a
            bidirectional instance may still refuse with ConfigError).
        output_lengths: has `output_lengths(lengths) -> (B,)`, the valid output frames of each item (CTC).
        output_grid: has `output_grid((H, W)) -> (K + 4, H', W')`, a dense detector's output map.
        encodes: has `encode(x, [lengths])`, the part that reads the input (encoder-decoders; a VAE's q(z | x)).
        decodes: has `generate(x, [lengths,] beam=, max_length=, return_attention=)`, greedy/beam decoding.
        attention: decodes with attention (an instance built with attention="none" does not).
        feature_grid: (H', W'), how the attention's positions lie on the image (a captioner), else None.
        samples: has `sample(n, y, *, generator=)`, an image generator.
        conditional_classes: the number of classes a generator is conditioned on (0: unconditional).
        adam_betas: (beta1, beta2) Adam/AdamW use for this model (a DCGAN's (0.5, 0.999)), or None.
    """

    topology: str | None = None
    serves_task: str | None = None
    streams: bool = False
    output_lengths: bool = False
    output_grid: bool = False
    encodes: bool = False
    decodes: bool = False
    attention: bool = False
    feature_grid: tuple[int, int] | None = None
    samples: bool = False
    conditional_classes: int = 0
    adam_betas: tuple[float, float] | None = None


_WRAPPERS = (nn.parallel.DistributedDataParallel, nn.DataParallel)


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside DistributedDataParallel / DataParallel (`.module`) and torch.compile
    (`._orig_mod`) wrappers, however nested; `model` itself when it is not wrapped."""
    while True:
        if isinstance(model, _WRAPPERS):
            model = model.module
        elif isinstance(getattr(model, "_orig_mod", None), nn.Module):  # torch._dynamo's OptimizedModule
            model = model._orig_mod
        else:
            return model


def traits(model: nn.Module) -> Traits:
    """The declared `Traits` of `model` (unwrapped), with its topology; `Traits()` for a plain nn.Module."""
    m = unwrap(model)
    declared = getattr(m, "TRAITS", None)  # the class attribute, or its refinement on the instance
    if not isinstance(declared, Traits):
        declared = Traits()
    return dataclasses.replace(declared, topology=getattr(m, "topology", None))


def config_of(model: nn.Module) -> Any:
    """The config dataclass `model` (unwrapped) was built from (`model.config`, the registry's contract),
    or None for a module without one."""
    config = getattr(unwrap(model), "config", None)
    return config if dataclasses.is_dataclass(config) and not isinstance(config, type) else None
