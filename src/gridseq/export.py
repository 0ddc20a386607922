"""Export a trained model to ONNX (or TorchScript) and verify the file against PyTorch.

    gridseq export runs/walks-lstm-s0 --format onnx            # writes runs/walks-lstm-s0/model.onnx
    >>> report = gridseq.export.export("runs/walks-lstm-s0")  # doctest: +SKIP
    >>> report.max_diff < 1e-4  # doctest: +SKIP
    True

What exports, with which dynamic dimensions (B batch, T time, H×W image size):

    family                    inputs                                   dynamic
    cnn, mlp (images)         x (B, C, H, W)                           B
    resnet (resnet18, 34)     x (B, C, H, W)                           B
    cnn, mlp (sequences)      x (B, T, F), lengths (B,)                B (T is the model's fixed length)
    fcn dims=2                x (B, C, H, W)                           B, H, W (H, W >= min_side)
    fcn dims=1, resnet1d      x (B, T, F), lengths (B,)                B, T
    rnn / lstm / gru          x (B, T, F) or ids (B, T), lengths (B,)  B, T (stacked, bidirectional, per-step)
    tcn                       x (B, T, F) or ids (B, T), lengths (B,)  B, T
    lstm-fcn                  x (B, T, F), lengths (B,)                B, T (T fixed with dimension_shuffle)
    seq2seq                   not exported: greedy and beam-search decoding are data-dependent loops

How: the model is copied, and the two pieces whose PyTorch form does not trace with dynamic sizes are
swapped for equivalent ones — every `Recurrent` layer for a masked per-direction formulation (each
direction a plain torch RNN over the padded batch, the backward one over each sequence reversed within
its own length, padded steps zeroed), and every `Upsample` for one that crops with the traced target
size — then the copy is traced by torch's TorchScript-based ONNX exporter, which maps recurrent layers
to the ONNX LSTM/GRU/RNN operators. The file is then checked with onnxruntime against the ORIGINAL model
on several batch sizes and lengths (or image sizes); the largest absolute difference must stay within
`tolerance` (1e-4), or the export fails.

Note: torch's TorchScript-based ONNX exporter and TorchScript itself are deprecated in favour of
`torch.export`; torch 2.13 still ships them. The `torch.export` path cannot trace gridseq's models yet,
because their input checks read tensor values (e.g. "no NaN in x") — data-dependent control flow.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gridseq.errors import ConfigError, GridseqError

_logger = logging.getLogger(__name__)

FORMATS = {"onnx": ".onnx", "torchscript": ".ts.pt"}
TOLERANCE = 1e-4
OPSET = 17
_BATCHES = (1, 2, 5, 16)
_LENGTHS = (1, 4, 13, 40)


class ExportError(GridseqError, RuntimeError):
    """An export that failed, or whose output does not match PyTorch within the tolerance."""


@dataclass
class ExportReport:
    """What was written and how well it matches PyTorch.

    Attributes:
        path: the file written.
        format: "onnx" or "torchscript".
        family: the model's registry name.
        inputs: {name: shape with symbolic dims, e.g. ["B", "T", 3]}.
        output: the output's shape with symbolic dims.
        checks: [(case, max abs diff)] on sample inputs, e.g. ("B=2 T=13", 3.1e-08).
        tolerance: the largest allowed difference.
        notes: limits of the exported file (e.g. a minimum image size).
    """

    path: Path
    format: str
    family: str
    inputs: dict[str, list]
    output: list
    checks: list[tuple[str, float]] = field(default_factory=list)
    tolerance: float = TOLERANCE
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def max_diff(self) -> float:
        """The largest absolute difference over every check (0 when unchecked)."""
        return max((d for _, d in self.checks), default=0.0)

    @property
    def ok(self) -> bool:
        return all(d <= self.tolerance for _, d in self.checks)

    def lines(self) -> list[str]:
        """The report as printable lines (what `gridseq export` prints)."""
        shape = lambda s: "(" + ", ".join(map(str, s)) + ("," if len(s) == 1 else "") + ")"  # noqa: E731
        ins = ", ".join(f"{n} {shape(s)}" for n, s in self.inputs.items())
        out = [f"exported {self.family} to {self.path} ({self.format}) in {self.seconds:.1f} s: {ins} -> {shape(self.output)}"]
        out += [f"note: {n}" for n in self.notes]
        if self.checks:
            engine = "onnxruntime" if self.format == "onnx" else "torch.jit.load"
            out.append(f"check against PyTorch with {engine} (max abs diff <= {self.tolerance:g}):")
            out += [f"  {case:<22} {diff:.2e}{'' if diff <= self.tolerance else '  FAIL'}" for case, diff in self.checks]
            out.append(f"max abs diff {self.max_diff:.2e}: {'OK' if self.ok else 'FAILED'}")
        return out

    def to_json(self) -> dict[str, Any]:
        return {"path": str(self.path), "format": self.format, "family": self.family, "inputs": self.inputs, "output": self.output,
                "checks": [{"case": c, "max_abs_diff": d} for c, d in self.checks], "max_abs_diff": self.max_diff,
                "tolerance": self.tolerance, "ok": self.ok, "notes": self.notes}


def export(source: str | os.PathLike | nn.Module, out: str | os.PathLike | None = None, *, format: str = "onnx",
           check: bool = True, tolerance: float = TOLERANCE, opset: int = OPSET) -> ExportReport:
    """Export a saved model (a run or model directory, or a model built by gridseq.models.create).

    Args:
        source: a directory holding config.json + model.safetensors, or a registered model.
        out: the file to write. Default: `model.onnx` / `model.ts.pt` in the directory (required for a model).
        format: "onnx" or "torchscript". Default: "onnx".
        check: run the file on sample inputs and compare with PyTorch. Default: True.
        tolerance: the largest allowed absolute difference. Default: 1e-4.
        opset: the ONNX opset. Default: 17.
    Returns:
        An ExportReport (print `report.lines()`).
    Raises:
        ConfigError: an unknown format, a model family that does not export, a missing package.
        CheckpointError: an unreadable directory.
        ExportError: the exporter failed, or the file does not match PyTorch within `tolerance`.
    """
    from gridseq import io

    if format not in FORMATS:
        raise ConfigError(f"format must be one of {', '.join(map(repr, FORMATS))}, got {format!r}.")
    metadata: dict[str, str] = {}
    if isinstance(source, nn.Module):
        model = source.eval()
        if out is None:
            raise ConfigError("export(model) needs out=: the file to write.")
    else:
        config = io.read_config(source)
        model = io.load(source)
        out = Path(source) / f"model{FORMATS[format]}" if out is None else out
        info = (config.get("data") or {}).get("info")
        if info:
            metadata["gridseq_dataset_info"] = json.dumps(info)
    out = Path(out)
    start = time.perf_counter()
    spec = _spec(model)
    traceable = _traceable(model)
    example = spec.example()
    output_shape = _output_dims(model, spec)
    out.parent.mkdir(parents=True, exist_ok=True)
    name = getattr(model, "gridseq_name", type(model).__name__)
    metadata.update(gridseq_model=json.dumps(io.model_spec(model)) if hasattr(model, "gridseq_name") else name,
                    gridseq_version=__import__("gridseq").__version__, gridseq_inputs=json.dumps(spec.symbolic()))
    kept = spec.names
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's warnings are about the checks it drops, and deprecations
        try:
            if format == "onnx":
                kept = _write_onnx(traceable, example, out, spec, output_shape, opset, metadata)
                if kept != spec.names:  # the exporter drops inputs the graph never reads
                    spec.notes += (f"the model does not read {', '.join(n for n in spec.names if n not in kept)}: "
                                   f"the ONNX graph's inputs are {', '.join(kept)}",)
            else:
                torch.jit.save(torch.jit.trace(traceable, example, check_trace=False), str(out))
        except (RuntimeError, ValueError, TypeError, torch.onnx.errors.OnnxExporterError) as e:
            raise ExportError(f"exporting {name} to {format} failed: {type(e).__name__}: {str(e).splitlines()[0][:300]}") from e
    inputs = {k: v for k, v in spec.symbolic().items() if k in kept}
    report = ExportReport(out, format, name, inputs, output_shape, tolerance=tolerance, notes=list(spec.notes))
    if check:
        report.checks = _verify(model, out, format, spec)
    report.seconds = time.perf_counter() - start
    if not report.ok:
        raise ExportError(f"{out} does not match PyTorch: max abs diff {report.max_diff:.2e} > {tolerance:g} "
                          f"({'; '.join(f'{c}: {d:.2e}' for c, d in report.checks if d > tolerance)}).")
    return report


# ---- what each family takes ------------------------------------------------------------------------

@dataclass
class _Spec:
    """The inputs of one exported model: x's shape (ints fixed, letters dynamic), dtype, lengths."""

    x: tuple  # e.g. ("B", "T", 3), ("B", 1, 8, 8), ("B", "T") for token ids
    vocab_size: int | None = None  # token ids in [1, vocab_size)
    lengths: bool = False
    min_side: int = 1
    notes: tuple[str, ...] = ()

    @property
    def names(self) -> list[str]:
        return ["x", "lengths"] if self.lengths else ["x"]

    def symbolic(self) -> dict[str, list]:
        return {"x": list(self.x), **({"lengths": ["B"]} if self.lengths else {})}

    def sizes(self) -> list[dict[str, int]]:
        """The sample sizes checked: several batch sizes, and lengths or image sizes when dynamic."""
        dims = set(d for d in self.x if isinstance(d, str))
        if "H" in dims:
            m = self.min_side
            sides = [(m, m), (m + 1, m + 3), (16, 16), (37, 53), (64, 31)]
            return [{"B": b, "H": h, "W": w} for b, (h, w) in zip((1, 2, 3, 2, 1), sides)]
        if "T" in dims:
            return [{"B": b, "T": t} for b, t in zip(_BATCHES, _LENGTHS)]
        return [{"B": b} for b in _BATCHES]

    def make(self, sizes: dict[str, int], generator: torch.Generator) -> tuple[Tensor, ...]:
        shape = [sizes[d] if isinstance(d, str) else d for d in self.x]
        if self.vocab_size is not None:
            x = torch.randint(1, self.vocab_size, shape, generator=generator)
        else:
            x = torch.randn(shape, generator=generator)
        if not self.lengths:
            return (x,)
        time_ = shape[1]
        lengths = torch.randint(1, time_ + 1, (shape[0],), generator=generator)
        lengths[0] = time_  # the longest item fills the batch, as in a real padded batch
        if self.vocab_size is not None:
            x = x.masked_fill(torch.arange(time_)[None, :] >= lengths[:, None], 0)  # padding id
        return x, lengths

    def example(self) -> tuple[Tensor, ...]:
        """The tracing input: distinct sizes, the longest item first, the shortest of length 1."""
        sizes = {"B": 3, "T": 11, "H": max(19, self.min_side), "W": max(23, self.min_side)}
        return self.make(sizes, torch.Generator().manual_seed(0))


def _spec(model: nn.Module) -> _Spec:
    """The input spec of a model family; ConfigError for families that do not export."""
    from gridseq.models.cnn import CNN
    from gridseq.models.crnn import CRNN, FrameCNN
    from gridseq.models.fcn import FCN
    from gridseq.models.lstm_fcn import LSTMFCN
    from gridseq.models.mlp import MLP
    from gridseq.models.resnet import ResNet
    from gridseq.models.resnet1d import ResNet1d
    from gridseq.models.rnn import RNNModel
    from gridseq.models.seq2seq import Seq2Seq
    from gridseq.models.tcn import TCN

    c = getattr(model, "config", None)
    name = getattr(model, "gridseq_name", type(model).__name__)
    if isinstance(model, Seq2Seq):
        raise ConfigError(f"{name} does not export to ONNX: its greedy and beam-search decoding are loops whose length and "
                          f"branches depend on the tokens produced (data-dependent control flow). Serve it with `gridseq serve`.")
    if isinstance(model, (CRNN, FrameCNN)):
        return _Spec(("B", "T", *c.input_shape), lengths=True,
                     notes=(f"frames are {'x'.join(map(str, c.input_shape))} (C x H x W), fixed by the frame encoder; "
                            f"the clip length T is dynamic",))
    if isinstance(model, (RNNModel, TCN)):
        if c.vocab_size is not None:
            return _Spec(("B", "T"), vocab_size=c.vocab_size, lengths=True)
        return _Spec(("B", "T", c.input_size), lengths=True)
    if isinstance(model, (CNN, MLP, ResNet)):
        if len(c.input_shape) == 3:
            return _Spec(("B", *c.input_shape))
        steps, features = c.input_shape
        return _Spec(("B", steps, features), lengths=True,
                     notes=(f"the time axis is fixed at T={steps} (the model's input length): pad shorter sequences and pass their lengths",))
    if isinstance(model, FCN):
        if c.dims == 1:
            return _Spec(("B", "T", c.in_channels), lengths=True)
        side = _min_side(model)
        return _Spec(("B", c.in_channels, "H", "W"), min_side=side,
                     notes=(f"H and W are dynamic from {side} up (smaller images skip a pooling step in PyTorch; "
                            f"the exported graph always pools)",) if side > 1 else ())
    if isinstance(model, ResNet1d):
        return _Spec(("B", "T", c.in_channels), lengths=True)
    if isinstance(model, LSTMFCN):
        if c.dimension_shuffle:
            return _Spec(("B", c.series_length, c.input_size), lengths=True,
                         notes=(f"the time axis is fixed at T={c.series_length} (series_length, dimension shuffle): pad "
                                f"shorter series and pass their lengths",))
        return _Spec(("B", "T", c.input_size), lengths=True)
    raise ConfigError(f"{name} ({type(model).__name__}) does not export yet; exportable families: cnn, mlp, resnet, fcn, "
                      f"resnet1d, rnn, lstm, gru, tcn, lstm-fcn, crnn, frame-cnn.")


def _min_side(model: nn.Module) -> int:
    """The smallest image side every down-sampling stage of an FCN pools (sides of 1 are kept, not pooled)."""
    for side in range(1, 4097):
        s, ok = side, True
        for down in model.downs:
            if s < down.pool.factor:
                ok = False
                break
            s = down.pool.output_size((s,))[0]
        if ok:
            return side
    return 4096


def _output_dims(model: nn.Module, spec: _Spec) -> list:
    """The output's shape with dynamic dims named, found by running two sample sizes."""
    g = torch.Generator().manual_seed(1)
    sizes = [{"B": 2, "T": 5, "H": spec.min_side + 2, "W": spec.min_side + 4},
             {"B": 3, "T": 7, "H": spec.min_side + 5, "W": spec.min_side + 9}]
    with torch.no_grad():
        shapes = [tuple(model(*spec.make(s, g)).shape) for s in sizes]
    out = []
    for i, (a, b) in enumerate(zip(*shapes)):
        if a == b:
            out.append(a)
        else:
            out.append(next((d for d, v in sizes[0].items() if v == a and sizes[1][d] == b), f"d{i}"))
    return out


# ---- traceable equivalents ---------------------------------------------------------------------------

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


def _traceable(model: nn.Module) -> nn.Module:
    """A copy of `model` with `Recurrent`, `Upsample` and `TimeDistributed` layers swapped for traceable
    equivalents."""
    from gridseq.nn.conv import Upsample
    from gridseq.nn.recurrent import Recurrent
    from gridseq.nn.time_distributed import TimeDistributed

    clone = copy.deepcopy(model).eval()
    for parent in list(clone.modules()):
        for child_name, child in list(parent.named_children()):
            if isinstance(child, Recurrent):
                setattr(parent, child_name, MaskedRecurrent(child))
            elif isinstance(child, Upsample):
                setattr(parent, child_name, CroppingUpsample(child))
            elif isinstance(child, TimeDistributed):
                setattr(parent, child_name, DenseTimeDistributed(child))
    return clone


# ---- writing and checking ------------------------------------------------------------------------------

def _write_onnx(module: nn.Module, example, out: Path, spec: _Spec, output_shape: list, opset: int, metadata: dict) -> list[str]:
    """Write the ONNX file (with gridseq's metadata) and return the names of the graph's inputs."""
    try:
        import onnx
    except ImportError:
        raise ConfigError("ONNX export needs the onnx package; install it with: pip install 'gridseq[export]'.") from None
    dynamic = {"x": {i: d for i, d in enumerate(spec.x) if isinstance(d, str)}}
    if spec.lengths:
        dynamic["lengths"] = {0: "B"}
    dynamic["logits"] = {i: d for i, d in enumerate(output_shape) if isinstance(d, str)}
    torch.onnx.export(module, example, str(out), dynamo=False, input_names=spec.names, output_names=["logits"],
                      dynamic_axes=dynamic, opset_version=opset, do_constant_folding=True)
    proto = onnx.load(str(out))
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(proto)
    onnx.save(proto, str(out))
    return [i.name for i in proto.graph.input]


def _verify(model: nn.Module, path: Path, format: str, spec: _Spec) -> list[tuple[str, float]]:
    """[(case, max abs diff)] of the exported file against `model` on the spec's sample sizes."""
    if format == "onnx":
        try:
            import onnxruntime as ort
        except ImportError:
            raise ConfigError("checking an ONNX export needs onnxruntime; install it with: pip install 'gridseq[export]' "
                              "(or skip the check with --no-check).") from None
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        wanted = {i.name for i in session.get_inputs()}
        run = lambda args: session.run(None, {n: a.numpy() for n, a in zip(spec.names, args) if n in wanted})[0]  # noqa: E731
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            loaded = torch.jit.load(str(path))
        run = lambda args: loaded(*args).detach().numpy()  # noqa: E731
    g = torch.Generator().manual_seed(2)
    checks = []
    for sizes in spec.sizes():
        args = spec.make(sizes, g)
        with torch.no_grad():
            expected = model(*args).numpy()
        try:
            got = np.asarray(run(args))
        except Exception as e:  # onnxruntime raises its own types
            raise ExportError(f"running {path} on inputs of {_case(sizes)} failed: {str(e).splitlines()[0][:300]}") from e
        if got.shape != expected.shape:
            raise ExportError(f"{path} gives shape {got.shape} on {_case(sizes)}, PyTorch {expected.shape}.")
        checks.append((_case(sizes), float(np.abs(got - expected).max())))
    return checks


def _case(sizes: dict[str, int]) -> str:
    return " ".join(f"{k}={v}" for k, v in sizes.items())
