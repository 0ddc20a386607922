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

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.utils.fusion import fuse_conv_bn_weights

from gridseq.errors import ConfigError
from gridseq.nn.conv import Conv, ConvBlock, MaxPool

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


class ConvStackProgram:
    """Inference of a stack of `ConvBlock`s (an `nn.Sequential`, e.g. `CNN.features`) as direct functional
    calls on BatchNorm-folded weights: what `fold_batchnorm` computes, without a module call per layer.

    On one small input at a time — a stream's 20x20 frame — the eight module calls of two blocks cost
    more than their arithmetic (docs/PERFORMANCE.md, stream/crnn-20px). The folded weights are rebuilt
    whenever a tensor of the stack changes (its version counter or its storage: an optimizer step,
    `load_state_dict`, `.to()`), so the program never serves stale weights; while any block is in
    training mode it calls the modules themselves (BatchNorm then uses batch statistics).

    Args:
        stack: an `nn.Sequential` of `gridseq.nn.ConvBlock`s.

    Shape:
        - Input: what the stack takes, (B, C, *S).  - Output: what it returns.

    Example:
        >>> import torch
        >>> from gridseq.nn import ConvBlock
        >>> stack = nn.Sequential(ConvBlock(1, 4, pool=2), ConvBlock(4, 8, pool=2)).eval()
        >>> x = torch.randn(1, 1, 8, 8)
        >>> torch.allclose(ConvStackProgram(stack)(x), stack(x), atol=1e-6)
        True
    """

    def __init__(self, stack: nn.Sequential) -> None:
        blocks = list(stack)
        if not blocks or not all(isinstance(b, ConvBlock) and isinstance(b.act, (nn.ReLU, nn.GELU)) for b in blocks):
            raise ConfigError("ConvStackProgram takes an nn.Sequential of ConvBlocks (ReLU or GELU).")
        self.stack = stack
        self._blocks = blocks
        self._pools = [b.pool if isinstance(b.pool, MaxPool) else None for b in blocks]
        # every tensor the folded weights are computed from, as (the module's parameter or buffer dict, name): read
        # afresh on each call, so a replaced tensor is seen too (straight from the dicts: Module.__getattr__ is slow).
        # BatchNorm's kernel updates the running statistics without bumping their version counters, but each
        # training pass adds 1 to num_batches_tracked in place, which does
        self._slots = [(table, name) for b in blocks for m in (b.conv.conv, b.norm) for table in (m._parameters, m._buffers)
                       for name in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked") if table.get(name) is not None]
        self._key: tuple | None = None
        self._ops: list = []

    def _version(self) -> tuple:
        return tuple((t.data_ptr(), t._version) for t in (table[name] for table, name in self._slots))

    def _build(self) -> None:
        ops = []
        with torch.no_grad():
            for block, pool in zip(self._blocks, self._pools):
                conv = block.conv.conv
                weight, bias = conv.weight, conv.bias
                if isinstance(block.norm, _BatchNorm):
                    n = block.norm
                    weight, bias = fuse_conv_bn_weights(weight, bias, n.running_mean, n.running_var, n.eps, n.weight, n.bias)
                dims = weight.dim() - 2
                ops.append((F.conv1d if dims == 1 else F.conv2d, weight.detach(), None if bias is None else bias.detach(),
                            conv.padding, conv.dilation, block.conv.extra if any(block.conv.extra) else None,
                            torch.relu_ if isinstance(block.act, nn.ReLU) else F.gelu,
                            None if pool is None else (pool.factor, torch.max_pool1d if dims == 1 else torch.max_pool2d, pool.ceil_mode)))
        self._ops = ops

    def __call__(self, x: Tensor) -> Tensor:
        if any(b.training for b in self._blocks):
            self._key = None  # batch statistics update the running ones: fold afresh afterwards
            return self.stack(x)
        key = self._version()
        if key != self._key:
            self._build()
            self._key = key
        for conv, weight, bias, padding, dilation, extra, act, pool in self._ops:
            if extra is not None:
                x = F.pad(x, extra)
            x = act(conv(x, weight, bias, 1, padding, dilation))
            if pool is not None:
                factor, max_pool, ceil_mode = pool
                window = tuple(factor if s >= factor else 1 for s in x.shape[2:])
                if any(w > 1 for w in window):
                    x = max_pool(x, window, window, 0, 1, ceil_mode)  # torch's own: F's wrapper costs more than a 10x10 pool
        return x
