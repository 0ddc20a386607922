"""Reference recurrent cells: the Elman, LSTM and GRU gate math, written out one equation a line.

Each cell has the parameters of its torch counterpart (`torch.nn.RNNCell`, `LSTMCell`, `GRUCell`) —
same names, shapes, gate order and initialisation — so weights move between them unchanged:

    weight_ih (G*H, F)   weight_hh (G*H, H)   bias_ih (G*H,)   bias_hh (G*H,)

with G = 1 (Elman), 4 (LSTM: i, f, g, o) or 3 (GRU: r, z, n).

The math lives in three step functions (`elman_step`, `lstm_step`, `gru_step`) that take the input
projection `xp = x W_ih^T + b_ih` already computed. A layer computes that projection for every time
step in one matmul before its time loop and then calls the step once per step with its own weights;
`gridseq.nn.Recurrent` does exactly that with the weights of a fused torch module. Every step returns
the new state and its internals (gate activations) by name, so a layer can trace them.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gridseq._validation import check_choice, check_positive_int

State = tuple[Tensor, ...]  # (h,) for Elman and GRU, (h, c) for LSTM; each (B, H)

NONLINEARITIES = ("tanh", "relu")


def elman_step(xp: Tensor, state: State, weight_hh: Tensor, bias_hh: Tensor | None,
               nonlinearity: str = "tanh") -> tuple[State, dict[str, Tensor]]:
    """One Elman step: h_t = f(W_xh x_t + b_ih + W_hh h_{t-1} + b_hh).

    Args:
        xp: the input projection W_xh x_t + b_ih, (B, H).
        state: (h_{t-1},), each (B, H).
        weight_hh: W_hh, (H, H).
        bias_hh: b_hh, (H,), or None.
        nonlinearity: "tanh" or "relu".

    Returns:
        ((h_t,), {"pre": pre-activation, "h": h_t}), every tensor (B, H).
    """
    (h,) = state
    pre = xp + F.linear(h, weight_hh, bias_hh)
    h = torch.tanh(pre) if nonlinearity == "tanh" else torch.relu(pre)
    return (h,), {"pre": pre, "h": h}


def lstm_step(xp: Tensor, state: State, weight_hh: Tensor, bias_hh: Tensor | None) -> tuple[State, dict[str, Tensor]]:
    """One LSTM step (torch's formulation and gate order i, f, g, o)::

        i = σ(W_ii x + b_ii + W_hi h + b_hi)        input gate
        f = σ(W_if x + b_if + W_hf h + b_hf)        forget gate
        g = tanh(W_ig x + b_ig + W_hg h + b_hg)     candidate cell
        o = σ(W_io x + b_io + W_ho h + b_ho)        output gate
        c' = f * c + i * g
        h' = o * tanh(c')

    Args:
        xp: the input projection W_ih x_t + b_ih, (B, 4H).
        state: (h_{t-1}, c_{t-1}), each (B, H).
        weight_hh: (4H, H).
        bias_hh: (4H,) or None.

    Returns:
        ((h_t, c_t), {"i", "f", "g", "o", "h", "c"}), every tensor (B, H).
    """
    h, c = state
    i, f, g, o = (xp + F.linear(h, weight_hh, bias_hh)).chunk(4, dim=-1)  # 4 x (B, H)
    i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
    c = f * c + i * g
    h = o * torch.tanh(c)
    return (h, c), {"i": i, "f": f, "g": g, "o": o, "h": h, "c": c}


def gru_step(xp: Tensor, state: State, weight_hh: Tensor, bias_hh: Tensor | None) -> tuple[State, dict[str, Tensor]]:
    """One GRU step (torch's formulation and gate order r, z, n)::

        r = σ(W_ir x + b_ir + W_hr h + b_hr)          reset gate
        z = σ(W_iz x + b_iz + W_hz h + b_hz)          update gate
        n = tanh(W_in x + b_in + r * (W_hn h + b_hn)) candidate; r scales the *projected* h, bias included
        h' = (1 - z) * n + z * h

    Args:
        xp: the input projection W_ih x_t + b_ih, (B, 3H).
        state: (h_{t-1},), (B, H).
        weight_hh: (3H, H).
        bias_hh: (3H,) or None.

    Returns:
        ((h_t,), {"r", "z", "n", "h"}), every tensor (B, H).
    """
    (h,) = state
    x_r, x_z, x_n = xp.chunk(3, dim=-1)  # 3 x (B, H)
    h_r, h_z, h_n = F.linear(h, weight_hh, bias_hh).chunk(3, dim=-1)
    r = torch.sigmoid(x_r + h_r)
    z = torch.sigmoid(x_z + h_z)
    n = torch.tanh(x_n + r * h_n)
    h = (1 - z) * n + z * h
    return (h,), {"r": r, "z": z, "n": n, "h": h}


class _Cell(nn.Module):
    """Shared parameters, initialisation and input projection of the three cells."""

    num_gates: int  # G: rows of weight_ih are G blocks of H
    state_size = 1  # number of (B, H) tensors in the state: (h,) or (h, c)

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True) -> None:
        super().__init__()
        self.input_size = check_positive_int(input_size, "input_size")
        self.hidden_size = check_positive_int(hidden_size, "hidden_size")
        self.bias = bool(bias)
        rows = self.num_gates * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(rows, input_size))
        self.weight_hh = nn.Parameter(torch.empty(rows, hidden_size))
        if self.bias:
            self.bias_ih = nn.Parameter(torch.empty(rows))
            self.bias_hh = nn.Parameter(torch.empty(rows))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """torch's init: every parameter ~ U(-1/sqrt(H), 1/sqrt(H))."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def project(self, x: Tensor) -> Tensor:
        """The input projection W_ih x + b_ih for one step (B, F) or all steps at once (B, T, F) → (..., G*H)."""
        return F.linear(x, self.weight_ih, self.bias_ih)

    def zero_state(self, batch: int, like: Tensor) -> State:
        """The all-zero initial state, on `like`'s device and dtype."""
        zeros = like.new_zeros(batch, self.hidden_size)
        return (zeros,) * self.state_size

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        return s if self.bias else s + ", bias=False"


class ElmanCell(_Cell):
    """The vanilla (Elman) RNN cell: h_t = f(W_hh h_{t-1} + W_xh x_t + b), f = tanh or relu.

    Parameters match `torch.nn.RNNCell` (W_xh is `weight_ih`, b = `bias_ih + bias_hh`).

    Args:
        input_size: F, features per step.
        hidden_size: H.
        bias: learn b_ih and b_hh. Default: True.
        nonlinearity: "tanh" or "relu". Default: "tanh".

    Shape:
        - x: (B, F); h: (B, H), optional (zeros).
        - Output: h' (B, H).

    Example:
        >>> cell = ElmanCell(3, 5)
        >>> cell(torch.randn(2, 3)).shape
        torch.Size([2, 5])
    """

    num_gates = 1

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh") -> None:
        self.nonlinearity = check_choice(nonlinearity, "nonlinearity", NONLINEARITIES)
        super().__init__(input_size, hidden_size, bias)

    def step(self, xp: Tensor, state: State) -> tuple[State, dict[str, Tensor]]:
        """`elman_step` with this cell's weights; `xp` = `self.project(x)`."""
        return elman_step(xp, state, self.weight_hh, self.bias_hh, self.nonlinearity)

    def forward(self, x: Tensor, h: Tensor | None = None) -> Tensor:
        state = self.zero_state(x.shape[0], x) if h is None else (h,)
        (h,), _ = self.step(self.project(x), state)
        return h

    def extra_repr(self) -> str:
        s = super().extra_repr()
        return s if self.nonlinearity == "tanh" else s + f", nonlinearity={self.nonlinearity!r}"


class LSTMCell(_Cell):
    """The LSTM cell (gates i, f, g, o; see `lstm_step`), parameters as `torch.nn.LSTMCell`.

    Args:
        input_size: F, features per step.
        hidden_size: H.
        bias: learn b_ih and b_hh. Default: True.

    Shape:
        - x: (B, F); state: (h, c), each (B, H), optional (zeros).
        - Output: (h', c'), each (B, H).

    Example:
        >>> cell = LSTMCell(3, 5)
        >>> h, c = cell(torch.randn(2, 3))
        >>> h.shape, c.shape
        (torch.Size([2, 5]), torch.Size([2, 5]))
    """

    num_gates = 4
    state_size = 2

    def step(self, xp: Tensor, state: State) -> tuple[State, dict[str, Tensor]]:
        """`lstm_step` with this cell's weights; `xp` = `self.project(x)`."""
        return lstm_step(xp, state, self.weight_hh, self.bias_hh)

    def forward(self, x: Tensor, state: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor]:
        state = self.zero_state(x.shape[0], x) if state is None else tuple(state)
        (h, c), _ = self.step(self.project(x), state)
        return h, c


class GRUCell(_Cell):
    """The GRU cell (gates r, z and candidate n; see `gru_step`), parameters as `torch.nn.GRUCell`.

    Args:
        input_size: F, features per step.
        hidden_size: H.
        bias: learn b_ih and b_hh. Default: True.

    Shape:
        - x: (B, F); h: (B, H), optional (zeros).
        - Output: h' (B, H).

    Example:
        >>> cell = GRUCell(3, 5)
        >>> cell(torch.randn(2, 3)).shape
        torch.Size([2, 5])
    """

    num_gates = 3

    def step(self, xp: Tensor, state: State) -> tuple[State, dict[str, Tensor]]:
        """`gru_step` with this cell's weights; `xp` = `self.project(x)`."""
        return gru_step(xp, state, self.weight_hh, self.bias_hh)

    def forward(self, x: Tensor, h: Tensor | None = None) -> Tensor:
        state = self.zero_state(x.shape[0], x) if h is None else (h,)
        (h,), _ = self.step(self.project(x), state)
        return h
