"""What a trained network computes, as NumPy arrays: first-layer conv filters and their feature maps,
the gate activations of a recurrent layer over time, and the attention weights of a decoder.

Every function takes a model (any registered family) and, where an input is needed, a batch in
gridseq's batch-first layout; nothing here draws (see `gridseq.inspect.plots`).

    conv_filters(model)            (C_out, C_in, kh, kw) or (C_out, C_in, k)  the first convolution's weights
    edge_scores(filters)           (C_out,)  how much each filter looks like an oriented edge detector
    feature_maps(model, x)         (B, C_out, H, W) or (B, C_out, T)  that convolution's outputs
    rnn_trace(model, x)            {"layer0/forward": {"i": (B, T, H), ...}}  a recurrent layer (default: the first)
    attention(model, x)            ids (B, U), weights (B, U, S)  (captioners: (B, U, *grid))

"First" means first in the model's module order, which for every gridseq family is the layer the
input reaches first. The model runs in eval mode (dropout off) and is put back as it was.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor, nn

from gridseq._validation import did_you_mean
from gridseq.errors import ConfigError
from gridseq.models.traits import traits
from gridseq.nn.decoder import Decoder
from gridseq.nn.recurrent import Recurrent

_CONVS = (nn.Conv1d, nn.Conv2d)


def first_conv(model: nn.Module) -> tuple[str, nn.Module]:
    """(name, module) of the model's first Conv1d/Conv2d.

    Raises:
        ConfigError: the model has no convolution.
    """
    for name, module in model.named_modules():
        if isinstance(module, _CONVS):
            return name, module
    raise ConfigError(f"{type(model).__name__} has no convolutional layer, so it has no filters or feature maps to show; "
                      f"inspect a CNN, FCN, TCN, ResNet1D or LSTM-FCN run.")


def first_recurrent(model: nn.Module) -> tuple[str, Recurrent]:
    """(name, module) of the model's first `gridseq.nn.Recurrent` layer (for seq2seq: the encoder).

    Raises:
        ConfigError: the model has no recurrent layer.
    """
    for name, module in model.named_modules():
        if isinstance(module, Recurrent):
            return name, module
    raise ConfigError(f"{type(model).__name__} has no recurrent layer, so it has no gates to trace; "
                      f"inspect an rnn, lstm, gru, seq2seq or lstm_fcn run.")


def has_conv(model: nn.Module) -> bool:
    return any(isinstance(m, _CONVS) for m in model.modules())


def has_recurrent(model: nn.Module) -> bool:
    return any(isinstance(m, Recurrent) for m in model.modules())


def has_attention(model: nn.Module) -> bool:
    """Whether the model decodes with attention: it has `generate(..., return_attention=True)` and an
    attention module (a seq2seq model built with attention="none" has none)."""
    declared = traits(model)
    return declared.decodes and declared.attention


def conv_filters(model: nn.Module) -> np.ndarray:
    """The weights of the model's first convolution.

    Args:
        model: any model with a Conv1d/Conv2d.

    Returns:
        float32 array (C_out, C_in, kh, kw) for 2D convolutions, (C_out, C_in, k) for 1D ones.

    Raises:
        ConfigError: the model has no convolution.

    Example:
        >>> from gridseq.models.cnn import CNN
        >>> conv_filters(CNN(CNN.Config(input_shape=(1, 8, 8), num_classes=10, channels=(4, 8)))).shape
        (4, 1, 3, 3)
    """
    _, conv = first_conv(model)
    return conv.weight.detach().cpu().float().numpy().copy()


def edge_scores(filters: np.ndarray) -> np.ndarray:
    """How much each filter looks like an oriented edge (first-derivative) detector, in [0, 1].

    A filter is averaged over its input channels and its mean is removed (a constant part only shifts
    the response); the score is the largest |cosine similarity| with a derivative-of-Gaussian edge
    template: 16 orientations for 2D filters, one (antisymmetric step) for 1D ones. 1 is a pure edge
    detector; random Gaussian filters average 0.46 (3x3), 0.25 (5x5) and 0.64 (1D, k=3); 1-wide
    kernels have no edges and score NaN.

    Args:
        filters: (C_out, C_in, kh, kw) or (C_out, C_in, k), as from `conv_filters`.

    Returns:
        (C_out,) float array.

    Example:
        >>> sobel = np.array([[[[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]]], dtype=float)
        >>> float(edge_scores(sobel)[0]) > 0.95
        True
    """
    f = np.asarray(filters, dtype=np.float64)
    if f.ndim not in (3, 4):
        raise ConfigError(f"expected filters of shape (C_out, C_in, k) or (C_out, C_in, kh, kw), got {f.shape}.")
    kernels = f.mean(axis=1)  # (C_out, k) or (C_out, kh, kw)
    if min(kernels.shape[1:]) < 2:
        return np.full(len(kernels), np.nan)
    templates = _edge_templates(kernels.shape[1:])  # (N, *k), unit norm, zero mean
    flat = kernels.reshape(len(kernels), -1)
    flat = flat - flat.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(flat, axis=1)
    cos = np.abs(flat @ templates.reshape(len(templates), -1).T)  # (C_out, N)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norms > 0, cos.max(axis=1) / np.where(norms > 0, norms, 1), 0.0)


def _edge_templates(size: tuple[int, ...]) -> np.ndarray:
    """Unit-norm, zero-mean first derivatives of a Gaussian (sigma = side / 3) along 16 directions."""
    axes = [np.arange(n) - (n - 1) / 2 for n in size]
    if len(size) == 1:
        (t,) = axes
        templates = [t * np.exp(-(t ** 2) / (2 * (size[0] / 3) ** 2))]
    else:
        y, x = np.meshgrid(*axes, indexing="ij")
        sigma = max(size) / 3
        g = np.exp(-(x ** 2 + y ** 2) / (2 * sigma ** 2))
        templates = [(x * math.cos(a) + y * math.sin(a)) * g for a in np.linspace(0, math.pi, 16, endpoint=False)]
    out = np.stack(templates)
    out = out - out.reshape(len(out), -1).mean(axis=1).reshape(-1, *[1] * len(size))
    return out / np.linalg.norm(out.reshape(len(out), -1), axis=1).reshape(-1, *[1] * len(size))


def feature_maps(model: nn.Module, x: Tensor, lengths: Tensor | None = None) -> np.ndarray:
    """The outputs of the model's first convolution for a batch (before normalisation and activation).

    Args:
        model: any model with a Conv1d/Conv2d.
        x: a batch the model takes: (B, C, H, W) images, (B, T, F) sequences, ...
        lengths: (B,) int64 valid lengths, or None.

    Returns:
        float32 array (B, C_out, H', W') (2D) or (B, C_out, T') (1D; a sequence CNN convolves along time).

    Example:
        >>> from gridseq.models.cnn import CNN
        >>> m = CNN(CNN.Config(input_shape=(1, 8, 8), num_classes=10, channels=(4, 8)))
        >>> feature_maps(m, torch.rand(2, 1, 8, 8)).shape
        (2, 4, 8, 8)
    """
    _, conv = first_conv(model)
    seen: list[Tensor] = []
    handle = conv.register_forward_hook(lambda _m, _inp, out: seen.append(out.detach()))
    try:
        _run(model, lambda: _encode(model, x, lengths))
    finally:
        handle.remove()
    if not seen:
        raise ConfigError(f"the first convolution of {type(model).__name__} did not run on this input; nothing to show.")
    return seen[0].cpu().float().numpy()


def rnn_trace(model: nn.Module, x: Tensor, lengths: Tensor | None = None, *,
              layer: str | None = None) -> dict[str, dict[str, np.ndarray]]:
    """Gate activations and states per step of one recurrent layer of the model for a batch.

    The layer's own input (after any embedding) is captured on a normal forward pass, then the layer
    runs again on the reference path of `gridseq.nn.cells`, which records every gate
    (`Recurrent.trace`); the weights are the same, so the states are the model's. A decoder's layer
    (seq2seq's `decoder.rnn`, a captioner's) is traced while the model decodes greedily: step t is the
    step that produced output token t.

    Args:
        model: a model with a `gridseq.nn.Recurrent` layer (rnn, lstm, gru, seq2seq, captioner, lstm_fcn).
        x: a batch the model takes, e.g. (B, T, F) floats, (B, T) token ids, (B, C, H, W) images.
        lengths: (B,) int64 valid lengths, or None.
        layer: the module name of the layer (e.g. "encoder", "decoder.rnn"); None: the first one
            (seq2seq: the encoder). Default: None.

    Returns:
        {"layer{l}/{forward|backward}": {name: (B, T, H) float32}}, names "i", "f", "g", "o", "c", "h"
        (LSTM), "r", "z", "n", "h" (GRU), "pre", "h" (Elman); zero at padded steps.

    Raises:
        ConfigError: no recurrent layer (of that name), or it did not run on this input.

    Example:
        >>> from gridseq.models.rnn import RNNModel, RNNConfig
        >>> m = RNNModel(RNNConfig(num_classes=3, input_size=4, hidden_size=5, mode="lstm"))
        >>> tr = rnn_trace(m, torch.randn(2, 7, 4))
        >>> list(tr), sorted(tr["layer0/forward"]), tr["layer0/forward"]["f"].shape
        (['layer0/forward'], ['c', 'f', 'g', 'h', 'i', 'o'], (2, 7, 5))
    """
    name, rec = recurrent_layer(model, layer)
    parent = dict(model.named_modules()).get(name.rpartition(".")[0]) if "." in name else None
    if isinstance(parent, Decoder) and parent.rnn is rec:
        calls = _decoder_calls(model, parent, x, lengths)
    else:
        seen: list[tuple[tuple, dict]] = []
        handle = rec.register_forward_pre_hook(lambda _m, args, kwargs: seen.append((args, kwargs)), with_kwargs=True)
        try:
            _run(model, lambda: _encode(model, x, lengths))
        finally:
            handle.remove()
        calls = [dict(zip(("x", "lengths", "state"), args), **kwargs) for args, kwargs in seen[:1]]
    if not calls:
        raise ConfigError(f"the recurrent layer {name!r} of {type(model).__name__} did not run on this input; nothing to trace.")
    traces = [_run(rec, lambda c=c: rec.trace(c["x"], c.get("lengths"), c.get("state"))) for c in calls]
    return {key: {g: torch.cat([t[key][g] for t in traces], dim=1).cpu().float().numpy() for g in gates}
            for key, gates in traces[0].items()}


def recurrent_layer(model: nn.Module, name: str | None = None) -> tuple[str, Recurrent]:
    """(name, module) of the recurrent layer called `name`, or of the first one when name is None."""
    if name is None:
        return first_recurrent(model)
    layers = {n: m for n, m in model.named_modules() if isinstance(m, Recurrent)}
    if name not in layers:
        raise ConfigError(f"{type(model).__name__} has no recurrent layer {name!r}; its recurrent layers are: "
                          f"{', '.join(layers) or 'none'}.{did_you_mean(name, list(layers))}")
    return name, layers[name]


def _decoder_calls(model: nn.Module, decoder: Decoder, x: Tensor, lengths: Tensor | None) -> list[dict]:
    """The (x (B, 1, F), state) of every step of the decoder's RNN while the model decodes `x` greedily."""
    if not traits(model).decodes:
        raise ConfigError(f"{type(model).__name__} has a decoder but no generate(); cannot trace its steps.")
    calls: list[dict] = []
    step = decoder._run

    def recording(inp: Tensor, state):
        calls.append({"x": inp, "state": state})
        return step(inp, state)

    decoder._run = recording  # an instance attribute shadows the method for this call only
    try:
        _run(model, lambda: model.generate(x, beam=1) if lengths is None else model.generate(x, lengths, beam=1))
    finally:
        del decoder._run
    return calls


def attention(model: nn.Module, x: Tensor, lengths: Tensor | None = None, *, beam: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Decode a batch and return the ids and the attention weights of every output step.

    Args:
        model: a seq2seq model with attention, or a captioner: anything with
            `generate(x, [lengths,] beam=, return_attention=True)`.
        x: (B, S) int64 source ids, or (B, C, H, W) images for a captioner.
        lengths: (B,) int64 source lengths, or None.
        beam: beam width; 1 is greedy decoding. Default: 1.

    Returns:
        ids (B, U) int64 (<eos> included, 0 after it) and weights (B, U, S) float32 — for a captioner
        (B, U, P) over its P feature-map positions (or (B, U, h, w) if the model returns a grid).
        Each row of weights sums to 1 over the valid source positions.

    Raises:
        ConfigError: the model does not decode, or was built without attention.

    Example:
        >>> from gridseq.models.seq2seq import Seq2Seq, Seq2SeqConfig
        >>> m = Seq2Seq(Seq2SeqConfig(vocab_size=20, num_classes=12, hidden_size=8, max_length=5))
        >>> ids, w = attention(m, torch.randint(4, 20, (2, 6)))
        >>> ids.shape[1] == w.shape[1] <= 5, w.shape[2]
        (True, 6)
    """
    if not traits(model).decodes:
        raise ConfigError(f"{type(model).__name__} does not decode (it has no generate()), so it has no attention to show; "
                          f"inspect a seq2seq or captioning run.")

    def decode():
        if lengths is None:
            return model.generate(x, beam=beam, return_attention=True)
        return model.generate(x, lengths, beam=beam, return_attention=True)

    ids, weights = _run(model, decode)
    if weights is None:
        raise ConfigError(f"this {type(model).__name__} was built without attention (attention='none'), so it has no "
                          f"attention weights; train it with --model.attention=bahdanau (or luong) to see them.")
    return ids.detach().cpu().numpy(), weights.detach().cpu().float().numpy()


def _encode(model: nn.Module, x: Tensor, lengths: Tensor | None):
    """Run the part of the model that reads the input: `encode` where the model has one (encoder-decoders:
    a full forward would need a target), else the forward pass."""
    run = model.encode if traits(model).encodes else model
    return run(x) if lengths is None else run(x, lengths)


def _run(module: nn.Module, call: Callable):
    """call() in eval mode without gradients, restoring the module's training flag afterwards."""
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            return call()
    finally:
        module.train(was_training)
