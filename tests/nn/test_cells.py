"""The reference cells: parity with torch.nn.*Cell on the same weights, and hand-computed golden values."""

import math

import pytest
import torch
from torch import nn

from gridseq.errors import ConfigError
from gridseq.nn.cells import ElmanCell, GRUCell, LSTMCell, gru_step, lstm_step

PAIRS = [
    (lambda: ElmanCell(5, 7), lambda: nn.RNNCell(5, 7)),
    (lambda: ElmanCell(5, 7, nonlinearity="relu"), lambda: nn.RNNCell(5, 7, nonlinearity="relu")),
    (lambda: ElmanCell(5, 7, bias=False), lambda: nn.RNNCell(5, 7, bias=False)),
    (lambda: LSTMCell(5, 7), lambda: nn.LSTMCell(5, 7)),
    (lambda: LSTMCell(5, 7, bias=False), lambda: nn.LSTMCell(5, 7, bias=False)),
    (lambda: GRUCell(5, 7), lambda: nn.GRUCell(5, 7)),
]


def _as_tuple(s):
    return s if isinstance(s, tuple) else (s,)


@pytest.mark.parametrize("make_ours, make_torch", PAIRS, ids=["elman", "elman-relu", "elman-nobias", "lstm", "lstm-nobias", "gru"])
def test_parity_with_torch_cells_over_several_steps(make_ours, make_torch):
    ours, ref = make_ours(), make_torch()
    # same names and shapes: torch's state_dict loads as is
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(6, 3, 5)
    s_ours = s_ref = None
    for t in range(6):
        s_ours = ours(x[t], s_ours)
        s_ref = ref(x[t], s_ref)
        for a, b in zip(_as_tuple(s_ours), _as_tuple(s_ref)):
            torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("cls, gates", [(ElmanCell, 1), (LSTMCell, 4), (GRUCell, 3)])
def test_parameter_names_shapes_and_init_bound_match_torch(cls, gates):
    cell = cls(5, 16)
    shapes = {k: tuple(v.shape) for k, v in cell.state_dict().items()}
    assert shapes == {"weight_ih": (gates * 16, 5), "weight_hh": (gates * 16, 16), "bias_ih": (gates * 16,), "bias_hh": (gates * 16,)}
    bound = 1 / math.sqrt(16)
    for p in cell.parameters():
        assert p.abs().max() <= bound
        assert p.abs().max() > 0.8 * bound  # uniform over the whole range, not e.g. zeros


def test_elman_golden_values():
    cell = ElmanCell(1, 1)
    with torch.no_grad():
        cell.weight_ih.fill_(0.5), cell.weight_hh.fill_(0.25), cell.bias_ih.fill_(0.1), cell.bias_hh.fill_(0.0)
    h = cell(torch.tensor([[2.0]]), torch.tensor([[1.0]]))
    assert h.item() == pytest.approx(math.tanh(0.5 * 2 + 0.25 * 1 + 0.1))
    relu = ElmanCell(1, 1, nonlinearity="relu")
    relu.load_state_dict(cell.state_dict())
    assert relu(torch.tensor([[-4.0]])).item() == 0.0


def test_lstm_golden_values_with_zero_weights():
    cell = LSTMCell(2, 3)
    nn.init.zeros_(cell.weight_ih), nn.init.zeros_(cell.weight_hh), nn.init.zeros_(cell.bias_ih), nn.init.zeros_(cell.bias_hh)
    # every gate is sigmoid(0) = 0.5 and g = tanh(0) = 0: c' = 0.5 c, h' = 0.5 tanh(c')
    h, c = cell(torch.randn(1, 2), (torch.zeros(1, 3), torch.ones(1, 3)))
    torch.testing.assert_close(c, torch.full((1, 3), 0.5))
    torch.testing.assert_close(h, torch.full((1, 3), 0.5 * math.tanh(0.5)))


def test_lstm_gate_order_is_i_f_g_o():
    cell = LSTMCell(1, 1)
    nn.init.zeros_(cell.weight_ih), nn.init.zeros_(cell.weight_hh), nn.init.zeros_(cell.bias_hh)
    with torch.no_grad():
        cell.bias_ih.copy_(torch.tensor([-20.0, 20.0, 0.0, 20.0]))  # input gate shut, forget gate open
    (h, c), gates = cell.step(cell.project(torch.randn(1, 1)), (torch.zeros(1, 1), torch.full((1, 1), 0.7)))
    assert gates["i"].item() < 1e-6 and gates["f"].item() > 1 - 1e-6 and gates["o"].item() > 1 - 1e-6
    assert c.item() == pytest.approx(0.7, abs=1e-5)  # memory carried unchanged
    assert h.item() == pytest.approx(math.tanh(0.7), abs=1e-5)


def test_gru_reset_gate_scales_projected_hidden_including_its_bias():
    # torch's formulation: n = tanh(x_n + r * (W_hn h + b_hn)); with W = 0 only b_hn reaches n, through r
    cell = GRUCell(1, 1)
    nn.init.zeros_(cell.weight_ih), nn.init.zeros_(cell.weight_hh)
    h0 = torch.zeros(1, 1)
    for r_bias, expected_n in [(-30.0, 0.0), (30.0, math.tanh(1.0))]:
        with torch.no_grad():
            cell.bias_ih.copy_(torch.tensor([r_bias, 0.0, 0.0]))
            cell.bias_hh.copy_(torch.tensor([0.0, 0.0, 1.0]))
        (h,), gates = cell.step(cell.project(torch.zeros(1, 1)), (h0,))
        assert gates["n"].item() == pytest.approx(expected_n, abs=1e-6)
        assert h.item() == pytest.approx(0.5 * expected_n, abs=1e-6)  # z = 0.5, h0 = 0


def test_gru_update_gate_one_keeps_the_state():
    cell = GRUCell(2, 2)
    with torch.no_grad():
        cell.bias_ih[2:4] = 50.0  # z ≈ 1
    h0 = torch.tensor([[0.3, -0.8]])
    torch.testing.assert_close(cell(torch.randn(1, 2), h0), h0, atol=1e-6, rtol=0)


def test_steps_return_their_internals_with_bounded_gates():
    x, h, c = torch.randn(4, 3), torch.randn(4, 5), torch.randn(4, 5)
    lstm, gru = LSTMCell(3, 5), GRUCell(3, 5)
    (h1, c1), g = lstm_step(lstm.project(x), (h, c), lstm.weight_hh, lstm.bias_hh)
    assert sorted(g) == ["c", "f", "g", "h", "i", "o"] and g["h"] is h1 and g["c"] is c1
    for name in "ifo":
        assert ((g[name] > 0) & (g[name] < 1)).all()
    assert (g["g"].abs() < 1).all()
    (h2,), g = gru_step(gru.project(x), (h,), gru.weight_hh, gru.bias_hh)
    assert sorted(g) == ["h", "n", "r", "z"] and g["h"] is h2


def test_project_all_steps_at_once_equals_per_step():
    cell = LSTMCell(3, 4)
    x = torch.randn(2, 6, 3)
    all_steps = cell.project(x)  # (B, T, 4H)
    torch.testing.assert_close(all_steps[:, 2], cell.project(x[:, 2]))


def test_zero_initial_state_is_the_default():
    cell = LSTMCell(3, 4)
    x = torch.randn(2, 3)
    for a, b in zip(cell(x), cell(x, (torch.zeros(2, 4), torch.zeros(2, 4)))):
        torch.testing.assert_close(a, b)


def test_bad_arguments_raise_config_error():
    with pytest.raises(ConfigError, match="nonlinearity must be one of"):
        ElmanCell(3, 4, nonlinearity="sigmoid")
    with pytest.raises(ConfigError, match="hidden_size must be a positive int, got 0"):
        LSTMCell(3, 0)


def test_extra_repr_shows_non_defaults_only():
    assert repr(GRUCell(3, 4)) == "GRUCell(3, 4)"
    assert repr(ElmanCell(3, 4, bias=False, nonlinearity="relu")) == "ElmanCell(3, 4, bias=False, nonlinearity='relu')"
