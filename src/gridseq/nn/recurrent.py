"""`Recurrent`: a stacked, (bi)directional Elman / LSTM / GRU layer over padded, batch-first batches.

One set of parameters, two ways to run them:

- **fused** — torch's own `nn.RNN` / `nn.LSTM` / `nn.GRU` kernels (oneDNN on CPU, cuDNN on GPU).
  Variable-length LSTM batches are packed; Elman and GRU batches run padded (cheaper on CPU once
  batches are length-bucketed), with the backward direction reversed within each sequence's length
  and padded outputs zeroed — the same results either way.
- **reference** — the readable gate math of `gridseq.nn.cells`, fed the *same* weights: per layer and
  direction one matmul projects the inputs of every time step, then a loop runs the recurrence with a
  length mask so padded steps leave the state untouched. It can record every gate (`trace`).

The parameters live in an owned torch module under torch's names (`rnn.weight_ih_l0`,
`rnn.weight_hh_l0_reverse`, ...), so a state_dict saved with either implementation loads into the
other, and into a plain `torch.nn.LSTM` after stripping the `rnn.` prefix.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from gridseq._validation import check_choice, check_positive_int, check_probability
from gridseq.errors import ConfigError, ShapeError
from gridseq.nn import _recurrence
from gridseq.nn.cells import NONLINEARITIES, elman_step, gru_step, lstm_step
from gridseq.nn.sequence import length_mask
from gridseq.shapes import check_sequence, unpadded

MODES = ("rnn", "lstm", "gru")
IMPLS = ("auto", "fused", "reference")
_TORCH_MODULES = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
_DIRECTIONS = ("forward", "backward")

State = Tensor | tuple[Tensor, Tensor]  # h (L*D, B, H); for LSTM (h, c)
Trace = dict[str, dict[str, Tensor]]  # "layer0/forward" -> {"i": (B, T, H), ...}


# torch's private kernels, used by `fused_direction` only
_KERNELS = {"gru": torch._VF.gru, "rnn_tanh": torch._VF.rnn_tanh, "rnn_relu": torch._VF.rnn_relu}


def fused_direction(kernel: str, x: Tensor, h0: Tensor, weights: tuple[Tensor, ...], *, training: bool = False) -> Tensor:
    """One layer and one direction of torch's fused Elman / GRU kernel over a batch-first input.

    torch runs these kernels only through `nn.RNN` / `nn.GRU`, which take every layer and direction of
    their own parameters over the same input; the padded path needs one direction at a time over an
    input re-ordered within each sequence's length. This is the one place gridseq calls torch's private
    `torch._VF` functions — those `nn.RNN.forward` / `nn.GRU.forward` call (torch/nn/modules/rnn.py),
    with their argument order. The public route, `torch.func.functional_call` on a one-layer `nn.GRU`,
    gives the same numbers but ~1.2x slower per call at batch 1 (benchmarks/fused_direction.py,
    docs/PERFORMANCE.md); tests/test_checked_once.py pins this helper against `nn.GRU` / `nn.RNN`, so a
    torch upgrade that changes the signature fails there.

    Args:
        kernel: "gru", "rnn_tanh" or "rnn_relu".
        x: (B, T, F) input.  h0: (1, B, H) initial state.
        weights: (weight_ih, weight_hh, bias_ih, bias_hh) of that layer and direction.
        training: dropout is applied between layers by the caller, so this only tells the kernel the mode.

    Returns:
        (B, T, H) outputs at every step.
    """
    # (input, hx, params, has_biases, num_layers, dropout, train, bidirectional, batch_first)
    out, _ = _KERNELS[kernel](x, h0, list(weights), True, 1, 0.0, training, False, True)
    return out


class Recurrent(nn.Module):
    """Stacked, optionally bidirectional Elman RNN, LSTM or GRU over padded batch-first sequences.

    Padded steps never reach the state: outputs are exactly zero there, the returned state is each
    sequence's state at its *own* last valid step, and a bidirectional layer's backward direction
    starts at each sequence's own end.

    Args:
        mode: "rnn" (Elman), "lstm" or "gru".
        input_size: F, features per step.
        hidden_size: H, units per direction.
        num_layers: L, stacked layers. Default: 1.
        bidirectional: also run every layer from the end back to the start (D = 2). Default: False.
        dropout: dropout on the outputs of every layer but the last, in training only (as torch);
            warns when num_layers is 1 since it would do nothing. Default: 0.
        impl: "fused" (torch kernels), "reference" (gridseq.nn.cells math) or "auto" (fused; `trace`
            always uses the reference path). Settable later: `layer.impl = "reference"`. Default: "auto".
        nonlinearity: "tanh" or "relu", for mode="rnn" only. Default: "tanh".

    Shape:
        - x: (B, T, F) float, batch first.  - lengths: (B,) int64, optional (all T).
        - state: h (L*D, B, H), for LSTM (h, c) — torch's layout, *not* batch first; optional (zeros).
        - Output: outputs (B, T, D*H) and the final state in the layout of `state`.

    Note:
        For a bidirectional layer `outputs[:, -1]` is *not* the final state of either direction on a
        padded batch; use `gridseq.nn.sequence.final_features(outputs, lengths, 2)` or the state.
        Passing the returned state back continues the sequences (streaming), which is meaningful for
        unidirectional layers only.

    Example:
        >>> layer = Recurrent("lstm", input_size=8, hidden_size=16, num_layers=2, bidirectional=True)
        >>> out, (h, c) = layer(torch.randn(4, 10, 8), lengths=torch.tensor([10, 7, 3, 1]))
        >>> out.shape, h.shape
        (torch.Size([4, 10, 32]), torch.Size([4, 4, 16]))
    """

    def __init__(
        self,
        mode: str,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        impl: str = "auto",
        nonlinearity: str = "tanh",
    ) -> None:
        super().__init__()
        self.mode = check_choice(mode, "mode", MODES)
        self.input_size = check_positive_int(input_size, "input_size")
        self.hidden_size = check_positive_int(hidden_size, "hidden_size")
        self.num_layers = check_positive_int(num_layers, "num_layers")
        if not isinstance(bidirectional, bool):
            raise ConfigError(f"bidirectional must be True or False, got {bidirectional!r}.")
        self.bidirectional = bidirectional
        self.dropout = check_probability(dropout, "dropout")
        self.impl = impl
        self.nonlinearity = check_choice(nonlinearity, "nonlinearity", NONLINEARITIES)
        if mode != "rnn" and nonlinearity != "tanh":
            raise ConfigError(
                f"nonlinearity={nonlinearity!r} applies to mode='rnn' (Elman) only; {mode!r} has fixed gate "
                f"nonlinearities. Drop the argument or use mode='rnn'."
            )
        if self.dropout > 0 and self.num_layers == 1:
            warnings.warn(
                f"dropout acts between stacked layers, so non-zero dropout expects num_layers greater than 1, "
                f"but got dropout={dropout} and num_layers=1; it has no effect.",
                UserWarning,
                stacklevel=2,
            )
        extra = {"nonlinearity": nonlinearity} if mode == "rnn" else {}
        # the one home of the parameters; dropout only where torch would not warn about it again
        self.rnn = _TORCH_MODULES[mode](
            input_size, hidden_size, num_layers, batch_first=True, bidirectional=bidirectional,
            dropout=self.dropout if num_layers > 1 else 0.0, **extra,
        )
        step = {"rnn": elman_step, "lstm": lstm_step, "gru": gru_step}[mode]
        self._step: Callable = functools.partial(step, nonlinearity=nonlinearity) if mode == "rnn" else step
        self._cell_step = self._step  # replaced `_step`s (a probe recording every step) take the per-step loop

    @property
    def impl(self) -> str:
        """"auto", "fused" or "reference"; which path `forward` takes."""
        return self._impl

    @impl.setter
    def impl(self, value: str) -> None:
        self._impl = check_choice(value, "impl", IMPLS)

    @property
    def kernel_name(self) -> str:
        """The fused kernel of one layer and direction: "gru", "rnn_tanh" or "rnn_relu" (see `fused_direction`)."""
        return "gru" if self.mode == "gru" else f"rnn_{self.nonlinearity}"

    @property
    def num_directions(self) -> int:
        """D: 2 if bidirectional else 1."""
        return 2 if self.bidirectional else 1

    @property
    def output_size(self) -> int:
        """D*H, the size of the last dimension of the outputs."""
        return self.num_directions * self.hidden_size

    def forward(self, x: Tensor, lengths: Tensor | None = None, state: State | None = None) -> tuple[Tensor, State]:
        """Run all layers over a padded batch.

        Args:
            x: (B, T, F) float.
            lengths: (B,) int64 valid lengths, or None (every sequence has T steps).
            state: initial state from a previous call (to continue the sequences), or None (zeros).

        Returns:
            outputs (B, T, D*H), zero at padded steps, and the final state (h or (h, c), each
            (L*D, B, H)) taken at each sequence's last valid step.

        Raises:
            ShapeError: x is not (B, T, input_size), bad lengths, or a state of the wrong layout.
        """
        x, lengths = check_sequence(x, lengths, features=self.input_size)
        state = self._check_state(state, x.shape[0])
        lengths = unpadded(lengths, x.shape[1])  # nothing padded: skip packing and masking
        if self.impl == "reference":
            outputs, final, _ = self._run_reference(x, lengths, state, record=False)
            return outputs, final
        return self._run_fused(x, lengths, state)

    def trace(self, x: Tensor, lengths: Tensor | None = None, state: State | None = None) -> Trace:
        """Run the reference path and return every layer's and direction's internals per step.

        Returns:
            {"layer{l}/{forward|backward}": {name: (B, T, H)}} with names
            "i", "f", "g", "o", "c", "h" (LSTM), "r", "z", "n", "h" (GRU), "pre", "h" (Elman; "pre" is
            the pre-activation). Values are zero at padded steps. `h` of the last layer equals the
            matching half of `forward`'s outputs. Gradients flow through the values; wrap the call in
            `torch.no_grad()` to only look.

        Example:
            >>> layer = Recurrent("gru", input_size=3, hidden_size=5, bidirectional=True)
            >>> tr = layer.trace(torch.randn(2, 7, 3))
            >>> sorted(tr), sorted(tr["layer0/backward"]), tr["layer0/forward"]["z"].shape
            (['layer0/backward', 'layer0/forward'], ['h', 'n', 'r', 'z'], torch.Size([2, 7, 5]))
        """
        x, lengths = check_sequence(x, lengths, features=self.input_size)
        state = self._check_state(state, x.shape[0])
        _, _, trace = self._run_reference(x, lengths, state, record=True)
        return trace

    # ---- fused path ---------------------------------------------------------------------------------

    def _run_fused(self, x: Tensor, lengths: Tensor | None, state: State | None) -> tuple[Tensor, State]:
        if lengths is None:
            return self.rnn(x, state)
        if self.mode != "lstm":
            return self._run_padded(x, lengths, state)
        # packing sorts internally and un-sorts outputs and state, so each row keeps its own state
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        outputs, final = self.rnn(packed, state)
        outputs, _ = pad_packed_sequence(outputs, batch_first=True, total_length=x.shape[1])  # (B, T, D*H)
        return outputs, final

    def _run_padded(self, x: Tensor, lengths: Tensor, state: Tensor | None) -> tuple[Tensor, Tensor]:
        """Elman / GRU over a padded batch without packing, one fused kernel call per layer and direction.

        On CPU, packed sequences cost the kernels more than the padded steps they skip once batches
        are length-bucketed (benchmarks/varlen.py). Padding is harmless to a forward pass: the valid
        steps come first and never read the padded ones, whose outputs are zeroed. The backward
        direction runs forwards over each sequence reversed *within its own length*, so it too
        starts at the sequence's end. An Elman or GRU state is its output, so the final state is the
        output at each sequence's last valid step. (An LSTM's cell state is not an output, so LSTMs
        keep the packed path.)
        """
        batch, time, _ = x.shape
        steps = torch.arange(time, device=x.device)
        last = (lengths.to(x.device) - 1).clamp_min(0)  # (B,)
        # flip[b, t] = len_b - 1 - t inside the sequence, t in its padding: an involution
        flip = torch.where(steps < last.unsqueeze(1) + 1, last.unsqueeze(1) - steps, steps)  # (B, T)
        valid = (steps < last.unsqueeze(1) + 1).unsqueeze(-1)  # (B, T, 1)
        layer_input, finals = x, []
        for layer in range(self.num_layers):
            outs = []
            for d in range(self.num_directions):
                k = layer * self.num_directions + d
                index = flip.unsqueeze(-1).expand(-1, -1, layer_input.shape[-1])
                src = layer_input.gather(1, index) if d else layer_input
                h0 = state[k : k + 1] if state is not None else x.new_zeros(1, batch, self.hidden_size)
                out = fused_direction(self.kernel_name, src, h0, self._weights(layer, d), training=self.training)
                finals.append(out.gather(1, last.view(batch, 1, 1).expand(-1, 1, self.hidden_size)).squeeze(1))
                if d:
                    out = out.gather(1, flip.unsqueeze(-1).expand(-1, -1, self.hidden_size))
                outs.append(out.masked_fill(~valid, 0.0))
            layer_input = torch.cat(outs, dim=-1) if len(outs) > 1 else outs[0]  # (B, T, D*H)
            if layer < self.num_layers - 1 and self.dropout > 0:
                layer_input = F.dropout(layer_input, self.dropout, self.training)
        return layer_input, torch.stack(finals)  # (B, T, D*H), (L*D, B, H)

    # ---- reference path -----------------------------------------------------------------------------

    def _weights(self, layer: int, direction: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        suffix = f"_l{layer}" + ("_reverse" if direction else "")
        return tuple(getattr(self.rnn, name + suffix) for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))

    def _run_reference(
        self, x: Tensor, lengths: Tensor | None, state: State | None, *, record: bool
    ) -> tuple[Tensor, State, Trace]:
        batch, time, _ = x.shape
        width = 2 if self.mode == "lstm" else 1  # tensors per state: (h, c) or (h,)
        if state is None:
            zeros = x.new_zeros(self.num_layers * self.num_directions, batch, self.hidden_size)
            initial = (zeros,) * width
        else:
            initial = tuple(state) if self.mode == "lstm" else (state,)
        # (T, B, 1), True at valid steps; time-major so step t reads contiguous memory
        mask = None if lengths is None else length_mask(lengths, time, x.device).t().unsqueeze(-1)
        layer_input = x.transpose(0, 1)  # (T, B, F)
        finals: list[tuple[Tensor, ...]] = []
        trace: Trace = {}
        for layer in range(self.num_layers):
            outs = []
            for d in range(self.num_directions):
                w_ih, w_hh, b_ih, b_hh = self._weights(layer, d)
                xp = F.linear(layer_input, w_ih, b_ih)  # (T, B, G*H): every step's input projection at once
                start = tuple(s[layer * self.num_directions + d] for s in initial)
                out, final, internals = self._run_direction(xp, start, w_hh, b_hh, mask, reverse=d == 1, record=record)
                outs.append(out)
                finals.append(final)
                if record:
                    trace[f"layer{layer}/{_DIRECTIONS[d]}"] = {k: v.transpose(0, 1) for k, v in internals.items()}
            layer_input = torch.cat(outs, dim=-1) if len(outs) > 1 else outs[0]  # (T, B, D*H)
            if layer < self.num_layers - 1 and self.dropout > 0:
                layer_input = F.dropout(layer_input, self.dropout, self.training)
        outputs = layer_input.transpose(0, 1)  # (B, T, D*H)
        stacked = tuple(torch.stack([f[k] for f in finals]) for k in range(width))  # each (L*D, B, H)
        return outputs, (stacked if self.mode == "lstm" else stacked[0]), trace

    def _run_direction(
        self, xp: Tensor, state: tuple[Tensor, ...], w_hh: Tensor, b_hh: Tensor,
        mask: Tensor | None, *, reverse: bool, record: bool,
    ) -> tuple[Tensor, tuple[Tensor, ...], dict[str, Tensor]]:
        """One direction of one layer: outputs (T, B, H), final state, internals {name: (T, B, H)}.

        Without recording, the steps run in `gridseq.nn._recurrence` (autograd off, the backward written
        out by hand; docs/PERFORMANCE.md, optimisation 8), unless autocast is on (its mixed dtypes) or
        `_step` was replaced (a probe recording each step); recording keeps the per-step loop too, whose
        internals autograd follows."""
        if not record and self._step is self._cell_step and not torch.is_autocast_enabled(xp.device.type):
            if reverse:  # padded tails come first and leave the state as it is: each sequence starts at its end
                xp, mask = xp.flip(0), None if mask is None else mask.flip(0)
            out, final = _recurrence.run(self.mode, self.nonlinearity, xp, state, w_hh, b_hh, mask)
            return (out.flip(0) if reverse else out), final, {}
        time = xp.shape[0]
        outputs: list[Tensor | None] = [None] * time
        recorded: list[dict[str, Tensor]] = [{}] * time
        # one unbind, not xp[t] per step: the backward of each indexing would allocate and zero-fill a
        # gradient the size of all of xp (O(T^2) memory traffic, 92% of a reference LSTM step's time);
        # unbind's backward stacks the step gradients once
        steps = xp.unbind(0)
        # backwards, a sequence's padded tail is visited first and leaves the initial state in place,
        # so the backward direction starts at each sequence's own end
        for t in range(time - 1, -1, -1) if reverse else range(time):
            new, internals = self._step(steps[t], state, w_hh, b_hh)
            if mask is None:
                state = new
                outputs[t] = new[0]
            else:
                valid = mask[t]  # (B, 1)
                state = tuple(torch.where(valid, n, s) for n, s in zip(new, state))
                outputs[t] = torch.where(valid, new[0], 0.0)
            if record:
                recorded[t] = internals
        internals = {}
        if record:
            for name in recorded[0]:
                values = torch.stack([r[name] for r in recorded])  # (T, B, H)
                internals[name] = values if mask is None else torch.where(mask, values, 0.0)
        return torch.stack(outputs), state, internals

    # ---- checks -------------------------------------------------------------------------------------

    def _check_state(self, state, batch: int) -> State | None:
        if state is None:
            return None
        expected = (self.num_layers * self.num_directions, batch, self.hidden_size)
        if self.mode == "lstm":
            if not isinstance(state, (tuple, list)) or len(state) != 2:
                got = f"a {type(state).__name__}" if not isinstance(state, (tuple, list)) else f"{len(state)} tensors"
                raise ShapeError(
                    f"an LSTM state is a pair (h, c), each of shape (L*D, B, H) = {expected}; got {got}. "
                    f"Pass the state returned by the previous call unchanged."
                )
            parts, names = tuple(state), ("h", "c")
        else:
            if not isinstance(state, Tensor):
                raise ShapeError(
                    f"a {self.mode.upper()} state is one tensor h of shape (L*D, B, H) = {expected}, got "
                    f"{type(state).__name__}; pass the state returned by the previous call unchanged."
                )
            parts, names = (state,), ("h",)
        batch_first = (expected[1], expected[0], expected[2])
        for name, part in zip(names, parts):
            if not isinstance(part, Tensor):
                raise ShapeError(f"state {name} must be a torch.Tensor of shape {expected}, got {type(part).__name__}.")
            if tuple(part.shape) != expected:
                hint = ""
                if tuple(part.shape) == batch_first and expected[0] != expected[1]:
                    hint = (f" This looks batch first; states keep torch's (layers*directions, batch, hidden) layout: "
                            f"pass {name}.transpose(0, 1).contiguous().")
                raise ShapeError(
                    f"expected state {name} of shape (L*D, B, H) = {expected} (num_layers*directions, batch, "
                    f"hidden_size), got {tuple(part.shape)}.{hint}"
                )
        return parts if self.mode == "lstm" else parts[0]

    def extra_repr(self) -> str:
        s = f"{self.mode!r}, {self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.bidirectional:
            s += ", bidirectional=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.impl != "auto":
            s += f", impl={self.impl!r}"
        if self.nonlinearity != "tanh":
            s += f", nonlinearity={self.nonlinearity!r}"
        return s
