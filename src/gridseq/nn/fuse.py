"""Inference-time folding of BatchNorm into the convolution that feeds it.

In eval mode BatchNorm is a fixed per-channel affine map, y = γ · (x − μ) / √(σ² + ε) + β, so after a
convolution it can be folded into the convolution's weights and bias (w' = w · s, b' = (b − μ) · s + β,
s = γ / √(σ² + ε)): one operator and one pass over the feature map fewer, the same outputs up to
float rounding. PyTorch's `torch.nn.utils.fusion.fuse_conv_bn_weights` does the arithmetic; this
module finds the pairs.

A pair is folded only where the BatchNorm provably receives the convolution's output unchanged:
- adjacent children of an `nn.Sequential` (a Conv1d/2d, gridseq `Conv` or ConvTranspose1d/2d, then a
  BatchNorm1d/2d);
- pairs a module declares with a `conv_bn_pairs()` method returning (conv, norm) submodule names
  relative to itself, e.g. `ConvBlock` (conv → norm → activation → pool) returns [("conv", "norm")].

Everything else is left as it is. The folded model is for inference only: its BatchNorms are gone
(replaced by `nn.Identity`), so it cannot be trained further.

Example:
    >>> import torch
    >>> from gridseq.nn import ConvBlock
    >>> block = ConvBlock(1, 4, pool=2).eval()
    >>> folded = fold_batchnorm(block)
    >>> type(folded.norm).__name__, torch.allclose(folded(torch.ones(1, 1, 6, 6)), block(torch.ones(1, 1, 6, 6)))
    ('Identity', True)
"""

from __future__ import annotations

import copy
import itertools

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.utils.fusion import fuse_conv_bn_weights

from gridseq.errors import ConfigError
from gridseq.nn.conv import Conv

_CONVS = (nn.Conv1d, nn.Conv2d)
_TRANSPOSED = (nn.ConvTranspose1d, nn.ConvTranspose2d)


def _conv_of(module: nn.Module) -> nn.Module | None:
    """The torch convolution inside `module` (gridseq's `Conv` wraps one), or None."""
    if isinstance(module, Conv):
        module = module.conv
    return module if isinstance(module, _CONVS + _TRANSPOSED) else None


def _foldable(conv: nn.Module | None, norm: nn.Module) -> bool:
    return (conv is not None and isinstance(norm, _BatchNorm) and norm.track_running_stats
            and norm.running_mean is not None and norm.num_features == conv.out_channels)


def _fold(conv: nn.Module, norm: _BatchNorm) -> None:
    weight, bias = fuse_conv_bn_weights(conv.weight, conv.bias, norm.running_mean, norm.running_var, norm.eps,
                                        norm.weight, norm.bias, transpose=isinstance(conv, _TRANSPOSED))
    conv.weight, conv.bias = weight, bias


def _pairs(block: nn.Module) -> list[tuple[str, str]]:
    if isinstance(block, nn.Sequential):
        return list(itertools.pairwise(block._modules))
    declared = getattr(block, "conv_bn_pairs", None)  # the declaration this module defines (see the docstring)
    return list(declared()) if callable(declared) else []


def fold_batchnorm(model: nn.Module, *, inplace: bool = False) -> nn.Module:
    """`model` with every eval-mode BatchNorm that directly follows a convolution folded into it.

    Args:
        model: a module in eval mode (`model.eval()`): folding uses the running statistics.
        inplace: change `model` itself instead of a deep copy. Default: False.

    Returns:
        The folded model (a copy unless `inplace`), in eval mode, with the same outputs up to float
        rounding; each folded BatchNorm is replaced by `nn.Identity`.

    Raises:
        ConfigError: if `model` is in training mode (its BatchNorms would use batch statistics).
    """
    if any(m.training for m in model.modules() if isinstance(m, _BatchNorm)):
        raise ConfigError("fold_batchnorm folds BatchNorm's running statistics into the convolution, which is "
                          "only valid for inference; call model.eval() first.")
    if not inplace:
        model = copy.deepcopy(model)
    for parent in list(model.modules()):
        for conv_name, norm_name in _pairs(parent):
            conv, norm = _conv_of(parent.get_submodule(conv_name)), parent.get_submodule(norm_name)
            if not _foldable(conv, norm):
                continue
            _fold(conv, norm)
            owner, _, leaf = norm_name.rpartition(".")
            setattr(parent.get_submodule(owner) if owner else parent, leaf, nn.Identity())
    return model


def count_batchnorm(model: nn.Module) -> int:
    """How many BatchNorm layers `model` still has (after `fold_batchnorm`, the ones it could not fold)."""
    return sum(isinstance(m, _BatchNorm) for m in model.modules())
