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
    convlstm                  x (B, T, C, H, W), lengths (B,)             B, T (an ONNX Loop over time)
    crnn-ctc                  x (B, T, F), lengths (B,)                B, T (T >= the time reduction) -> (B, T_out, K)
    captioner                 two graphs, encoder x (B, C, H, W) and   B (decoding loops over the step graph:
                              one decoder step (tokens, state, memory)   gridseq.export.captioner.greedy_decode)
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
from torch import Tensor, nn

from gridseq.errors import ConfigError, GridseqError
from gridseq.export.traceable import (  # noqa: F401  (public names, re-exported)
    CroppingUpsample,
    DenseTimeDistributed,
    MaskedRecurrent,
    reverse_within,
    traceable,
)
from gridseq.models import registry
from gridseq.models.captioner import Captioner
from gridseq.models.traits import config_of

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
        files: every file written, when a family exports to more than one graph (the captioner's encoder
            and decoder step); empty otherwise (`path` is the file).
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
    files: list[Path] = field(default_factory=list)

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
        where = " + ".join(map(str, self.files)) if self.files else self.path
        out = [f"exported {self.family} to {where} ({self.format}) in {self.seconds:.1f} s: {ins} -> {shape(self.output)}"]
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
                "tolerance": self.tolerance, "ok": self.ok, "notes": self.notes,
                **({"files": [str(f) for f in self.files]} if self.files else {})}


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
    if format not in FORMATS:
        raise ConfigError(f"format must be one of {', '.join(map(repr, FORMATS))}, got {format!r}.")
    metadata: dict[str, str] = {}
    if isinstance(source, nn.Module):
        model = source.eval()
        if out is None:
            raise ConfigError("export(model) needs out=: the file to write.")
    else:
        from gridseq.runs import Run

        run = Run.open(source)
        model = run.model
        out = run.path / f"model{FORMATS[format]}" if out is None else out
        info = (run.config.get("data") or {}).get("info")
        if info:
            metadata["gridseq_dataset_info"] = json.dumps(info)
    out = Path(out)
    start = time.perf_counter()
    if isinstance(model, Captioner):
        from gridseq.export.captioner import export_captioner

        return export_captioner(model, out, format=format, check=check, tolerance=tolerance, opset=opset,
                                metadata=_metadata(model, metadata))
    spec = _spec(model)
    module = traceable(model)
    example = spec.example()
    output_shape = _output_dims(model, spec)
    out.parent.mkdir(parents=True, exist_ok=True)
    name = registry.model_name(model)
    metadata = _metadata(model, metadata) | {"gridseq_inputs": json.dumps(spec.symbolic())}
    kept = spec.names
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's warnings are about the checks it drops, and deprecations
        try:
            if format == "onnx":
                kept = _write_onnx(module, example, out, spec, output_shape, opset, metadata)
                if kept != spec.names:  # the exporter drops inputs the graph never reads
                    spec.notes += (f"the model does not read {', '.join(n for n in spec.names if n not in kept)}: "
                                   f"the ONNX graph's inputs are {', '.join(kept)}",)
            else:
                torch.jit.save(torch.jit.trace(module, example, check_trace=False), str(out))
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


def _metadata(model: nn.Module, metadata: dict[str, str]) -> dict[str, str]:
    """The ONNX metadata every file gets: the gridseq version and the model's registry spec."""
    from gridseq import io

    name = registry.model_name(model)
    return {**metadata, "gridseq_model": json.dumps(io.model_spec(model)) if registry.registered_name(model) else name,
            "gridseq_version": __import__("gridseq").__version__}


# ---- what each family takes ------------------------------------------------------------------------

@dataclass
class _Spec:
    """The inputs of one exported model: x's shape (ints fixed, letters dynamic), dtype, lengths."""

    x: tuple  # e.g. ("B", "T", 3), ("B", 1, 8, 8), ("B", "T") for token ids
    vocab_size: int | None = None  # token ids in [1, vocab_size)
    lengths: bool = False
    min_side: int = 1
    min_length: int = 1  # the shortest T the graph matches PyTorch on
    output: tuple | None = None  # the output's shape when it cannot be read off two runs (e.g. T_out = T // 4)
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
            return [{"B": b, "T": max(t, self.min_length)} for b, t in zip(_BATCHES, _LENGTHS)]
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
        sizes = {"B": 3, "T": max(11, 3 * self.min_length), "H": max(19, self.min_side), "W": max(23, self.min_side)}
        return self.make(sizes, torch.Generator().manual_seed(0))


def _spec(model: nn.Module) -> _Spec:
    """The input spec of a model family; ConfigError for families that do not export."""
    from gridseq.models.cnn import CNN
    from gridseq.models.convlstm import ConvLSTM
    from gridseq.models.crnn import CRNN, FrameCNN
    from gridseq.models.crnn_ctc import CRNN as CTCCRNN
    from gridseq.models.fcn import FCN
    from gridseq.models.lstm_fcn import LSTMFCN
    from gridseq.models.mlp import MLP
    from gridseq.models.resnet import ResNet
    from gridseq.models.resnet1d import ResNet1d
    from gridseq.models.rnn import RNNModel
    from gridseq.models.seq2seq import Seq2Seq
    from gridseq.models.tcn import TCN

    c = config_of(model)
    name = registry.model_name(model)
    if isinstance(model, Seq2Seq):
        raise ConfigError(f"{name} does not export to ONNX: its greedy and beam-search decoding are loops whose length and "
                          f"branches depend on the tokens produced (data-dependent control flow). Serve it with `gridseq serve`.")
    if isinstance(model, ConvLSTM):
        return _Spec(("B", "T", *c.input_shape), lengths=True,
                     notes=(f"frames are {'x'.join(map(str, c.input_shape))} (C x H x W); the clip length T is dynamic "
                            f"(an ONNX Loop over time)",))
    if isinstance(model, CTCCRNN):
        r = model.time_reduction
        return _Spec(("B", "T", c.input_size), lengths=True, min_length=r, output=("B", "T_out", c.num_classes),
                     notes=(f"T_out = T // {r} frames; item b has lengths[b] // {r} valid ones (model.output_lengths), "
                            f"the rest are padding; T must be at least {r}",))
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
                      f"resnet1d, rnn, lstm, gru, tcn, lstm-fcn, crnn, frame-cnn, convlstm, crnn-ctc, captioner.")


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
    if spec.output is not None:
        return list(spec.output)
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


# ---- writing and checking ------------------------------------------------------------------------------

def _write_onnx(module: nn.Module, example, out: Path, spec: _Spec, output_shape: list, opset: int, metadata: dict) -> list[str]:
    """Write the ONNX file of a one-graph family and return the names of the graph's inputs."""
    dynamic = {"x": {i: d for i, d in enumerate(spec.x) if isinstance(d, str)}}
    if spec.lengths:
        dynamic["lengths"] = {0: "B"}
    dynamic["logits"] = {i: d for i, d in enumerate(output_shape) if isinstance(d, str)}
    return write_graph(module, example, out, spec.names, ["logits"], dynamic, metadata, opset)


def write_graph(module: nn.Module, example: tuple, out: Path, inputs: list[str], outputs: list[str], dynamic: dict,
                metadata: dict, opset: int = OPSET) -> list[str]:
    """Trace `module` on `example` into an ONNX file with gridseq's metadata, checked by onnx; the graph's input names."""
    try:
        import onnx
    except ImportError:
        raise ConfigError("ONNX export needs the onnx package; install it with: pip install 'gridseq[export]'.") from None
    torch.onnx.export(module, example, str(out), dynamo=False, input_names=inputs, output_names=outputs,
                      dynamic_axes=dynamic, opset_version=opset, do_constant_folding=True)
    proto = onnx.load(str(out))
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(proto)
    onnx.save(proto, str(out))
    return [i.name for i in proto.graph.input]


def session(path: Path):
    """An onnxruntime CPU session of `path` (ConfigError without onnxruntime)."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise ConfigError("checking an ONNX export needs onnxruntime; install it with: pip install 'gridseq[export]' "
                          "(or skip the check with --no-check).") from None
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _verify(model: nn.Module, path: Path, format: str, spec: _Spec) -> list[tuple[str, float]]:
    """[(case, max abs diff)] of the exported file against `model` on the spec's sample sizes."""
    if format == "onnx":
        onnx_session = session(path)
        wanted = {i.name for i in onnx_session.get_inputs()}
        run = lambda args: onnx_session.run(None, {n: a.numpy() for n, a in zip(spec.names, args) if n in wanted})[0]  # noqa: E731
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
