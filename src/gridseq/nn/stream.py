"""Streaming inference: feed a causal model one time step at a time, get its output for that step.

The protocol, shared by every streamable gridseq model (rnn / lstm / gru, crnn, convlstm, frame-cnn,
and the audio CRNN):

    s = model.stream(batch_size=1)   # a `Stream`; refuses bidirectional models (ConfigError)
    y_t = s.step(x_t)                # x_t: (B, *one step), e.g. (B, F), (B,) token ids, (B, C, H, W) frames
    s.reset()                        # start new sequences (state back to zeros, step count 0)
    ys = s.run(x)                    # convenience: step through (B, T, ...) and stack the outputs

A stream keeps what the next step needs — the recurrent state (and for pooled heads a running mean or
max) — so step t costs one encoder pass over the new step and one recurrent step, never a
recomputation of the history. Its output after t steps equals the model's full forward pass on the
first t steps: the logits of the sequence so far for a many-to-one model, the logits of step t for a
per-step (many-to-many) model. Put the model in `eval()` mode first (dropout and BatchNorm in
training mode make any two passes differ); `step` runs without autograd.

Who cannot stream: a bidirectional layer reads every step from both ends, so its output for step t
depends on steps not yet seen — `stream()` raises `ConfigError` (see `refuse_bidirectional`).

Writing a stream for a new model: subclass `Stream` and implement `_step` and `_reset`, or — for
"encode each step, run a `Recurrent`, pool, read out" models — build a `RecurrentStream`.

Example:
    >>> from gridseq.nn.recurrent import Recurrent
    >>> rnn = Recurrent("gru", input_size=3, hidden_size=5).eval()
    >>> s = RecurrentStream(rnn, batch_size=2)
    >>> s.step(torch.randn(2, 3)).shape
    torch.Size([2, 5])
    >>> x = torch.randn(2, 7, 3)
    >>> s.reset(); torch.allclose(s.run(x), rnn(x)[0], atol=1e-6)
    True
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from gridseq._validation import check_choice, check_positive_int
from gridseq.errors import ConfigError, ShapeError

POOLS = ("step", "last", "mean", "max")  # "step": per-step output; "last" = the newest step's output too
# torch's recurrent modules → the cell function of one step (nn.RNN with nonlinearity="relu": rnn_relu_cell)
_CELLS = {nn.RNN: torch.rnn_tanh_cell, nn.GRU: torch.gru_cell, nn.LSTM: torch.lstm_cell}


def refuse_bidirectional(name: str, bidirectional: bool) -> None:
    """Raise ConfigError if a model named `name` is bidirectional (its step t reads later steps)."""
    if bidirectional:
        raise ConfigError(
            f"{name} is bidirectional: its output for a step depends on steps after it, so it cannot stream "
            f"step by step. Run the whole sequence through forward(), or train it with bidirectional=False."
        )


class Stream:
    """Base class of a step-by-step stream over `batch_size` sequences advancing together.

    Subclasses implement `_step(x_t) -> y_t` and `_reset()`; `step` checks the batch size, runs
    without autograd and counts steps.

    Args:
        batch_size: B, the number of sequences streamed at once. Default: 1.

    Shape:
        - x_t: (B, *one step), the layout the model takes per time step.
        - Output: y_t, the model's output for the sequences so far (or for step t).
    """

    def __init__(self, batch_size: int = 1) -> None:
        self.batch_size = check_positive_int(batch_size, "batch_size")
        self.steps = 0  # steps taken since the last reset

    def step(self, x_t: Tensor) -> Tensor:
        """Advance every sequence by one step and return the output for it."""
        if not isinstance(x_t, Tensor) or x_t.dim() == 0 or x_t.shape[0] != self.batch_size:
            got = tuple(x_t.shape) if isinstance(x_t, Tensor) else type(x_t).__name__
            raise ShapeError(
                f"expected one step of {self.batch_size} sequence(s), x_t of shape ({self.batch_size}, ...) — batch "
                f"first, no time dimension — got {got}. For a single sequence pass x_t.unsqueeze(0); to change the "
                f"batch size open a new stream: model.stream(batch_size=...)."
            )
        with torch.no_grad():
            y = self._step(x_t)
        self.steps += 1
        return y

    def reset(self) -> None:
        """Forget everything: the next `step` starts new sequences."""
        self.steps = 0
        self._reset()

    def run(self, x: Tensor) -> Tensor:
        """Step through `x` (B, T, ...) from the current state; the outputs stacked to (B, T, ...)."""
        if not isinstance(x, Tensor) or x.dim() < 2:
            raise ShapeError(f"expected x of shape (B, T, ...) to run step by step, got {getattr(x, 'shape', x)!r}.")
        return torch.stack([self.step(x[:, t]) for t in range(x.shape[1])], dim=1)

    def _step(self, x_t: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _reset(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


class RunningPool:
    """Pool per-step vectors over the steps so far, one step at a time.

    Args:
        pooling: "step" or "last" (the newest step's vector), "mean" or "max" over every step so far —
            what `masked_mean` / `masked_max` give on the first t steps.
    """

    def __init__(self, pooling: str) -> None:
        self.pooling = check_choice(pooling, "pooling", POOLS)
        self.reset()

    def reset(self) -> None:
        self.value: Tensor | None = None
        self.count = 0

    def update(self, v: Tensor) -> Tensor:
        """Add step vector `v` (B, ...) and return the pooled vector (B, ...)."""
        self.count += 1
        if self.pooling in ("step", "last"):
            return v
        if self.pooling == "max":
            self.value = v if self.value is None else torch.maximum(self.value, v)
            return self.value
        self.value = v if self.value is None else self.value + v  # running sum
        return self.value / self.count


class RecurrentStream(Stream):
    """Stream for "encode the step → `Recurrent` → pool over time → read out" models.

    Args:
        recurrent: a unidirectional `gridseq.nn.Recurrent` (bidirectional ones are refused).
        batch_size: B. Default: 1.
        encode: step input (B, ...) → (B, F) recurrent input, e.g. a CNN on one frame or a token
            embedding. Default: identity.
        readout: pooled recurrent output (B, H) → y_t, e.g. the classifier head. Default: identity.
        pooling: "step"/"last" (this step's output), "mean" or "max" over the steps so far. Default: "last".
        name: what to call the model in errors. Default: "the recurrent layer".

    Shape:
        - x_t: whatever `encode` takes, batch first.  - Output: `readout`'s output, (B, ...).
    """

    def __init__(
        self,
        recurrent: nn.Module,
        batch_size: int = 1,
        *,
        encode: Callable[[Tensor], Tensor] | None = None,
        readout: Callable[[Tensor], Tensor] | None = None,
        pooling: str = "last",
        name: str = "the recurrent layer",
    ) -> None:
        refuse_bidirectional(name, bool(getattr(recurrent, "bidirectional", False)))
        super().__init__(batch_size)
        self.recurrent = recurrent
        self.encode = encode if encode is not None else (lambda x: x)
        self.readout = readout if readout is not None else (lambda h: h)
        self.pool = RunningPool(pooling)
        self._layers: list | None = None  # the Recurrent state per layer: h, or (h, c) for an LSTM, each (B, H)

    def _step(self, x_t: Tensor) -> Tensor:
        features = self.encode(x_t)  # (B, F)
        rnn = getattr(self.recurrent, "rnn", None)
        fused = getattr(self.recurrent, "impl", None) in ("auto", "fused")
        if fused and type(rnn) in _CELLS and not rnn.training and not getattr(rnn, "proj_size", 0):
            out = self._cells(rnn, features)  # (B, H)
        elif fused:
            # one step of a full batch: exactly what Recurrent.forward runs, without its per-call checks
            out, self.state = rnn(features.unsqueeze(1), self.state)  # (B, 1, H)
            out = out[:, 0]
        else:
            out, self.state = self.recurrent(features.unsqueeze(1), None, self.state)
            out = out[:, 0]
        return self.readout(self.pool.update(out))

    def _cells(self, rnn: nn.RNNBase, x: Tensor) -> Tensor:
        """One step of torch's `nn.RNN`/`nn.GRU`/`nn.LSTM` (unidirectional, eval) through its cell
        functions, layer by layer — the same arithmetic as its multi-step kernel, without that call's
        setup, which costs more than one step of batch 1 (docs/PERFORMANCE.md, stream/crnn-20px). The
        state is kept per layer (`state` stacks it on demand)."""
        cell = _CELLS[type(rnn)] if rnn.mode != "RNN_RELU" else torch.rnn_relu_cell
        lstm = rnn.mode == "LSTM"
        layers = self._layers
        if layers is None:
            zeros = x.new_zeros(x.shape[0], rnn.hidden_size)
            layers = [(zeros, zeros) if lstm else zeros] * rnn.num_layers
        weights = rnn._flat_weights  # per layer: w_ih, w_hh[, b_ih, b_hh] (torch's own order)
        per_layer = len(weights) // rnn.num_layers
        new = []
        for layer, state in enumerate(layers):
            w = weights[layer * per_layer:(layer + 1) * per_layer]
            w_ih, w_hh, b_ih, b_hh = (w[0], w[1], w[2], w[3]) if rnn.bias else (w[0], w[1], None, None)
            state = cell(x, state, w_ih, w_hh, b_ih, b_hh)
            new.append(state)
            x = state[0] if lstm else state
        self._layers = new
        return x

    @property
    def state(self):
        """The recurrent state carried between steps: h, or (h, c) for an LSTM, each (L, B, H); None before
        the first step."""
        layers = self._layers
        if layers is None:
            return None
        if isinstance(layers[0], tuple):
            return torch.stack([h for h, _ in layers]), torch.stack([c for _, c in layers])
        return torch.stack(layers)

    @state.setter
    def state(self, value) -> None:
        if value is None:
            self._layers = None
        elif isinstance(value, tuple):  # an LSTM's (h, c)
            self._layers = list(zip(value[0].unbind(0), value[1].unbind(0)))
        else:
            self._layers = list(value.unbind(0))

    def _reset(self) -> None:
        self.state = None
        self.pool.reset()


class PooledStream(Stream):
    """Stream for models without a recurrence: each step is mapped on its own, then pooled over time.

    A per-frame CNN that averages its logits over the frames is such a model: step t costs one CNN
    pass, and the running mean gives the clip's logits so far.

    Args:
        fn: one step (B, ...) → (B, ...) output, e.g. a CNN's logits for one frame.
        batch_size: B. Default: 1.
        pooling: "step"/"last" (this step's output), "mean" or "max" over the steps so far. Default: "mean".
    """

    def __init__(self, fn: Callable[[Tensor], Tensor], batch_size: int = 1, *, pooling: str = "mean") -> None:
        super().__init__(batch_size)
        self.fn = fn
        self.pool = RunningPool(pooling)

    def _step(self, x_t: Tensor) -> Tensor:
        return self.pool.update(self.fn(x_t))

    def _reset(self) -> None:
        self.pool.reset()
