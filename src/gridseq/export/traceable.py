"""Traceable equivalents of the layers whose PyTorch form does not trace with dynamic sizes.

`traceable(model)` copies a model and swaps them in: every `Recurrent` for `MaskedRecurrent`, every
`Upsample` for `CroppingUpsample`, every video `TimeDistributed` for `DenseTimeDistributed`, and a
`convlstm` model for `LoopedConvLSTM`, whose time loop is a TorchScript-scripted function (an ONNX
`Loop` over T) instead of a Python loop the tracer would unroll at the traced length.
"""

from __future__ import annotations

import copy
import warnings

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gridseq.errors import ConfigError


def reverse_within(x: Tensor, lengths: Tensor) -> Tensor:
    """Reverse each sequence of (B, T, H) within its own length; padded steps stay where they are.

    Example:
        >>> reverse_within(torch.arange(4.).view(1, 4, 1), torch.tensor([3]))[0, :, 0].tolist()
        [2.0, 1.0, 0.0, 3.0]
    """
    t = torch.arange(x.shape[1], device=x.device)[None, :]  # (1, T)
    n = lengths.to(x.device)[:, None]  # (B, 1)
    index = torch.where(t < n, n - 1 - t, t)  # (B, T)
    return x.gather(1, index.unsqueeze(-1).expand(-1, -1, x.shape[2]))


class MaskedRecurrent(nn.Module):
    """A `Recurrent` layer's exact outputs from plain torch RNNs, one per layer and direction, over the padded
    batch (no packing, no data-dependent branches), so it traces with dynamic B and T.

    Causal directions never see the padding after a step; the backward direction runs over each sequence
    reversed within its length; padded outputs are zeroed. The final state is not computed (None): the
    models read features from the outputs.

    Args:
        layer: the `gridseq.nn.Recurrent` to copy the weights from.
    """

    def __init__(self, layer):
        super().__init__()
        self.num_layers, self.num_directions, self.hidden_size = layer.num_layers, layer.num_directions, layer.hidden_size
        cls = type(layer.rnn)
        extra = {"nonlinearity": layer.nonlinearity} if layer.mode == "rnn" else {}
        self.cells = nn.ModuleList()
        for level in range(layer.num_layers):
            size = layer.input_size if level == 0 else layer.output_size
            for d in range(layer.num_directions):
                cell = cls(size, layer.hidden_size, 1, batch_first=True, **extra)
                suffix = f"_l{level}" + ("_reverse" if d else "")
                with torch.no_grad():
                    for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                        getattr(cell, f"{w}_l0").copy_(getattr(layer.rnn, w + suffix))
                self.cells.append(cell)

    def forward(self, x: Tensor, lengths: Tensor | None = None, state=None) -> tuple[Tensor, None]:
        if state is not None:
            raise ConfigError("an exported recurrent layer starts from a zero state; state= is not supported.")
        if lengths is None:
            lengths = torch.full((x.shape[0],), x.shape[1], dtype=torch.int64, device=x.device)
        mask = (torch.arange(x.shape[1], device=x.device)[None, :] < lengths[:, None]).unsqueeze(-1).to(x.dtype)  # (B, T, 1)
        h = x
        for level in range(self.num_layers):
            outs = []
            for d in range(self.num_directions):
                cell = self.cells[level * self.num_directions + d]
                if d == 0:
                    out, _ = cell(h)
                else:
                    out, _ = cell(reverse_within(h, lengths))
                    out = reverse_within(out, lengths)
                outs.append(out * mask)  # (B, T, H), zero at padded steps
            h = torch.cat(outs, dim=-1) if len(outs) > 1 else outs[0]
        return h, None


class CroppingUpsample(nn.Module):
    """`gridseq.nn.conv.Upsample` with the target size kept symbolic (it crops by slicing), so it traces
    with dynamic H and W. A stride-2 transposed conv of a ceil-pooled map is never smaller than its
    target, so cropping is all `fit_to_size` does there."""

    def __init__(self, upsample):
        super().__init__()
        self.proj, self.mode, self.dims = upsample.proj, upsample.mode, upsample.dims

    def forward(self, x: Tensor, size) -> Tensor:
        if self.mode == "transpose":
            y = self.proj(x)
            return y[:, :, : size[0]] if self.dims == 1 else y[:, :, : size[0], : size[1]]
        mode = "linear" if self.dims == 1 else "bilinear"
        return self.proj(F.interpolate(x, size=tuple(size), mode=mode, align_corners=False))


class DenseTimeDistributed(nn.Module):
    """`gridseq.nn.TimeDistributed` without its data-dependent branch: every frame of the padded batch is
    encoded (padded ones too, then zeroed), so the graph is the same for any lengths."""

    def __init__(self, wrapper):
        super().__init__()
        self.module, self.method = wrapper.module, wrapper.method

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        batch, time = x.shape[0], x.shape[1]
        out = getattr(self.module, self.method)(x.reshape(batch * time, *x.shape[2:]))  # (B*T, *O)
        out = out.reshape(batch, time, *out.shape[1:])  # (B, T, *O)
        if lengths is None:
            return out
        valid = torch.arange(time, device=x.device)[None, :] < lengths[:, None]  # (B, T)
        return out * valid.reshape(batch, time, *([1] * (out.dim() - 2))).to(out.dtype)


def _convlstm_layer(x: Tensor, keep: Tensor, weight: Tensor, bias: Tensor, hidden: int, padding: int) -> Tensor:
    """One ConvLSTM layer over a whole clip, scripted so that ONNX gets a `Loop` over a dynamic T.

    x (B, T, C, H, W), keep (B, T) float (1 at valid steps: padded steps leave h and c alone) → every
    step's h (B, T, C_h, H, W). The gates are one convolution of [x_t, h_{t-1}] (odd kernel, `padding`
    on each side), split i, f, g, o as in `ConvLSTMCell`."""
    batch, time, height, width = x.shape[0], x.shape[1], x.shape[3], x.shape[4]
    h = torch.zeros(batch, hidden, height, width, dtype=x.dtype)
    c = torch.zeros(batch, hidden, height, width, dtype=x.dtype)
    outs: list[Tensor] = []
    for t in range(time):
        k = keep[:, t].view(-1, 1, 1, 1)
        i, f, g, o = F.conv2d(torch.cat([x[:, t], h], 1), weight, bias, 1, padding).chunk(4, 1)
        c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h_new = torch.sigmoid(o) * torch.tanh(c_new)
        h = k * h_new + (1 - k) * h  # a finished clip keeps its last valid state
        c = k * c_new + (1 - k) * c
        outs.append(h)
    return torch.stack(outs, 1)


with warnings.catch_warnings():  # TorchScript is deprecated (the module docstring of gridseq.export says so)
    warnings.simplefilter("ignore", DeprecationWarning)
    convlstm_layer = torch.jit.script(_convlstm_layer)


class LoopedConvLSTM(nn.Module):
    """`gridseq.models.convlstm.ConvLSTM` with its time loop in `convlstm_layer` (one scripted loop per layer,
    layer after layer over the whole clip — the same numbers as the model's step-major loop) and its stem
    encoding every frame (`DenseTimeDistributed`), so it traces with dynamic B and T."""

    def __init__(self, model) -> None:
        super().__init__()
        self.config = model.config
        self.stem = None if model.stem is None else DenseTimeDistributed(model.stem)
        self.cells, self.head = model.cells, model.head

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        from gridseq.nn.sequence import last_valid

        if self.stem is not None:
            x = self.stem(x, lengths)  # (B, T, C_s, H', W')
        keep = (torch.arange(x.shape[1])[None, :] < lengths[:, None]).to(x.dtype)  # (B, T)
        for cell in self.cells:
            conv = cell.gates.conv
            x = convlstm_layer(x, keep, conv.weight, conv.bias, cell.hidden_channels, conv.padding[0])
        out = x.flatten(2)  # (B, T, C_h * H' * W')
        if self.config.per_step:
            return self.head(out) * keep.unsqueeze(-1)  # padded steps zero, as the model's
        return self.head(last_valid(out, lengths))  # (B, K)


def traceable(model: nn.Module) -> nn.Module:
    """A copy of `model` with `Recurrent`, `Upsample` and `TimeDistributed` layers (and a whole `convlstm`)
    swapped for traceable equivalents."""
    from gridseq.models.convlstm import ConvLSTM
    from gridseq.nn.conv import Upsample
    from gridseq.nn.recurrent import Recurrent
    from gridseq.nn.time_distributed import TimeDistributed

    clone = copy.deepcopy(model).eval()
    if isinstance(clone, ConvLSTM):
        return LoopedConvLSTM(clone).eval()
    for parent in list(clone.modules()):
        for child_name, child in list(parent.named_children()):
            if isinstance(child, Recurrent):
                setattr(parent, child_name, MaskedRecurrent(child))
            elif isinstance(child, Upsample):
                setattr(parent, child_name, CroppingUpsample(child))
            elif isinstance(child, TimeDistributed):
                setattr(parent, child_name, DenseTimeDistributed(child))
    return clone


