"""ONNX export of the `captioner` as two graphs — the encoder, and one decoder step — and greedy decoding
with onnxruntime alone.

Decoding is a loop whose length depends on the words produced, so it is not one graph. What the loop
calls is: the encoder once per image, then the decoder step once per word.

    encoder:       x (B, C, H, W)                          -> h0 (L, B, H) [c0 for an LSTM] [memory (B, S, Hm), keys (B, S, A)]
    decoder step:  tokens (B,), h (L, B, H) [c] [memory, keys] -> logits (B, V), h_out (L, B, H) [c_out] [attention (B, S)]

The memory and its keys (the encoder's feature map, one vector per position, and its projection for the
attention score, `Decoder.prepare`) are computed once by the encoder graph and fed to every step. A
greedy loop (`greedy_decode`) or a beam search of one's own drives the step graph; `greedy_decode`
reproduces `Captioner.generate(x)` exactly (the same ids), which the export checks.

    >>> report = gridseq.export.export("runs/scenes-captions-captioner-s0")  # doctest: +SKIP
    >>> enc, step = report.files  # model.encoder.onnx, model.decoder-step.onnx  # doctest: +SKIP
    >>> ids = greedy_decode(ort.InferenceSession(enc), ort.InferenceSession(step), images)  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from gridseq.data.vocab import BOS, EOS, PAD
from gridseq.nn.attention import AttentionMemory

_BATCHES = (1, 2, 5, 16)


def files_for(out: Path) -> tuple[Path, Path]:
    """The two files written for `out` (e.g. model.onnx): model.encoder.onnx and model.decoder-step.onnx."""
    stem = out.name.removesuffix(".onnx")
    return out.with_name(f"{stem}.encoder.onnx"), out.with_name(f"{stem}.decoder-step.onnx")


class CaptionEncoder(nn.Module):
    """The captioner's encoder graph: the initial state and, with attention, the prepared memory."""

    def __init__(self, model) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        enc = self.model.encode(x)
        state = enc.state if isinstance(enc.state, tuple) else (enc.state,)
        if self.model.decoder.attention is None:
            return state
        memory = self.model.decoder.prepare(enc.memory)
        return (*state, memory.values, memory.keys)


class CaptionStep(nn.Module):
    """One decoder step as a graph: (tokens, state parts, [memory, keys]) -> (logits, new state parts, [weights])."""

    def __init__(self, model) -> None:
        super().__init__()
        self.decoder = model.decoder
        self.lstm = self.decoder.mode == "lstm"

    def forward(self, tokens: Tensor, *args: Tensor) -> tuple[Tensor, ...]:
        state, rest = ((args[0], args[1]), args[2:]) if self.lstm else (args[0], args[1:])
        memory = AttentionMemory(rest[0], rest[1], None) if rest else None
        logits, state, weights = self.decoder.step(tokens, state, memory)
        parts = state if isinstance(state, tuple) else (state,)
        return (logits, *parts) + (() if weights is None else (weights,))


def names(model) -> dict[str, list[str]]:
    """The input and output names of both graphs (what `greedy_decode` feeds them)."""
    state = ["h", "c"] if model.decoder.mode == "lstm" else ["h"]
    memory = ["memory", "keys"] if model.decoder.attention is not None else []
    return {"encoder_in": ["x"], "encoder_out": state + memory,
            "step_in": ["tokens", *state, *memory],
            "step_out": ["logits", *(f"{k}_out" for k in state)] + (["attention"] if memory else [])}


def write(model, out: Path, opset: int, metadata: dict, write_onnx) -> tuple[Path, Path]:
    """Write both graphs next to `out`; `write_onnx(module, example, path, inputs, outputs, dynamic)` writes one."""
    enc_path, step_path = files_for(out)
    n = names(model)
    c, h, w = model.config.input_shape
    x = torch.randn(3, c, h, w, generator=torch.Generator().manual_seed(0))
    # the wrappers are put in eval mode: the exporter restores a module's mode afterwards, recursively,
    # so a wrapper left in training mode would switch the captioner's batch norm and dropout to training
    with torch.no_grad():
        encoded = CaptionEncoder(model)(x)
    batch_dims = {"h": {1: "B"}, "c": {1: "B"}, "h_out": {1: "B"}, "c_out": {1: "B"}, "memory": {0: "B"}, "keys": {0: "B"}, "x": {0: "B"}, "tokens": {0: "B"},
                  "logits": {0: "B"}, "attention": {0: "B"}}
    dynamic = lambda names_: {k: batch_dims[k] for k in names_}  # noqa: E731
    write_onnx(CaptionEncoder(model).eval(), (x,), enc_path, n["encoder_in"], n["encoder_out"],
               dynamic(n["encoder_in"] + n["encoder_out"]), metadata)
    tokens = torch.tensor([BOS, 5 % model.config.num_classes, EOS])
    write_onnx(CaptionStep(model).eval(), (tokens, *encoded), step_path, n["step_in"], n["step_out"],
               dynamic(n["step_in"]) | {k: batch_dims[k] for k in n["step_out"]}, metadata)
    return enc_path, step_path


def greedy_decode(encoder, step, images: np.ndarray, max_length: int, names_: dict[str, list[str]] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Greedy captions with onnxruntime sessions alone: the same ids as `Captioner.generate(x)`.

    Args:
        encoder, step: `onnxruntime.InferenceSession`s of the two files.
        images: (B, C, H, W) float32, prepared as in training.
        max_length: the most words, <eos> included (the model's `config.max_length`).
    Returns:
        (ids (B, U') int64 with <eos> included and 0 after it, logits (B, U', V) zero after <eos>).
    """
    names_ = names_ or {"encoder_out": [o.name for o in encoder.get_outputs()],
                        "step_in": [i.name for i in step.get_inputs()]}
    enc = dict(zip(names_["encoder_out"], encoder.run(None, {"x": images.astype(np.float32)})))
    state = [k for k in ("h", "c") if k in enc]
    batch = images.shape[0]
    tokens = np.full(batch, BOS, dtype=np.int64)
    finished = np.zeros(batch, dtype=bool)
    out_ids, out_logits = [], []
    for _ in range(max_length):
        feed = {"tokens": tokens, **{k: enc[k] for k in names_["step_in"] if k != "tokens"}}
        logits, *new_state = step.run(None, feed)[: 1 + len(state)]
        banned = logits.copy()
        banned[:, [PAD, BOS]] = -np.inf  # never generated, as in Decoder._ban
        best = np.where(finished, PAD, banned.argmax(axis=1)).astype(np.int64)
        out_ids.append(best)
        out_logits.append(np.where(finished[:, None], 0.0, logits))
        enc.update(zip(state, new_state))
        finished |= best == EOS
        tokens = best
        if finished.all():
            break
    return np.stack(out_ids, axis=1), np.stack(out_logits, axis=1).astype(np.float32)


def verify(model, enc_path: Path, step_path: Path, session) -> list[tuple[str, float]]:
    """[(case, max abs diff)]: the encoder's outputs, one decoder step from random states, and the greedy
    decoding's logits against PyTorch at several batch sizes; raises ExportError if a greedy caption differs."""
    from gridseq.export import ExportError

    encoder, step = session(enc_path), session(step_path)
    n = names(model)
    c, h, w = model.config.input_shape
    g = torch.Generator().manual_seed(2)
    checks = []
    for batch in _BATCHES:
        x = torch.randn(batch, c, h, w, generator=g)
        with torch.no_grad():
            expected = CaptionEncoder(model)(x)
        got = encoder.run(None, {"x": x.numpy()})
        checks.append((f"encoder B={batch}", max(float(np.abs(a - b.numpy()).max()) for a, b in zip(got, expected))))
        tokens = torch.randint(4, model.config.num_classes, (batch,), generator=g)
        parts = 2 if model.decoder.mode == "lstm" else 1
        state = [torch.randn(s.shape, generator=g) * 0.5 for s in expected[:parts]]  # any state, not only the first
        args = (tokens, *state, *expected[parts:])
        with torch.no_grad():
            want = CaptionStep(model)(*args)
        have = step.run(None, {k: a.numpy() for k, a in zip(n["step_in"], args)})
        checks.append((f"decoder step B={batch}", max(float(np.abs(a - b.numpy()).max()) for a, b in zip(have, want))))
        ids, logits = greedy_decode(encoder, step, x.numpy(), model.config.max_length, n)
        with torch.no_grad():
            enc = model.encode(x)
            ref = model.decoder.greedy(enc.state, model._memory(enc), max_length=model.config.max_length)
        if ids.shape != tuple(ref.tokens.shape) or not np.array_equal(ids, ref.tokens.numpy()):
            raise ExportError(f"the greedy captions decoded with onnxruntime differ from PyTorch's at B={batch}: "
                              f"{ids.tolist()} vs {ref.tokens.tolist()}.")
        checks.append((f"greedy B={batch} U={ids.shape[1]}", float(np.abs(logits - ref.logits.numpy()).max())))
    return checks


def export_captioner(model, out: Path, *, format: str, check: bool, tolerance: float, opset: int, metadata: dict):
    """`gridseq.export.export` for a captioner: both graphs, checked (ONNX only)."""
    import time
    import warnings

    from gridseq.errors import ConfigError
    from gridseq.export import ExportError, ExportReport, session, write_graph

    if format != "onnx":
        raise ConfigError("a captioner exports to ONNX only (format='onnx'): its decoding loop runs outside the graph.")
    start = time.perf_counter()
    out.parent.mkdir(parents=True, exist_ok=True)
    n = names(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's warnings are about the checks it drops, and deprecations
        try:
            enc_path, step_path = write(model.eval(), out, opset, metadata,
                                        lambda m, ex, path, i, o, d, meta: write_graph(m, ex, path, i, o, d, meta, opset))
        except (RuntimeError, ValueError, TypeError, torch.onnx.errors.OnnxExporterError) as e:
            raise ExportError(f"exporting captioner to onnx failed: {type(e).__name__}: {str(e).splitlines()[0][:300]}") from e
    c, h, w = model.config.input_shape
    grid = model.feature_grid[0] * model.feature_grid[1]
    notes = [f"encoder {enc_path.name}: x (B, {c}, {h}, {w}) -> {', '.join(n['encoder_out'])}; decoder step "
             f"{step_path.name}: {', '.join(n['step_in'])} -> {', '.join(n['step_out'])}",
             f"decode with gridseq.export.captioner.greedy_decode (or a beam search over the step graph); "
             f"S = {grid} memory positions, at most {model.config.max_length} words"]
    report = ExportReport(enc_path, format, "captioner", {"x": ["B", c, h, w]}, ["B", "U", model.config.num_classes],
                          tolerance=tolerance, notes=notes, files=[enc_path, step_path])
    if check:
        report.checks = verify(model, enc_path, step_path, session)
    report.seconds = time.perf_counter() - start
    if not report.ok:
        raise ExportError(f"{enc_path} / {step_path} do not match PyTorch: max abs diff {report.max_diff:.2e} > {tolerance:g}.")
    return report
