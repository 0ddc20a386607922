"""convlstm: the cell's gate math, padding (finished clips keep their state), streaming equivalence,
config errors."""

import pytest
import torch

from gridseq import models
from gridseq.errors import ConfigError
from gridseq.models.convlstm import ConvLSTMCell

pytestmark = pytest.mark.usefixtures("one_thread")
FRAME = (1, 12, 12)


def test_cell_is_an_lstm_with_convolutional_gates():
    cell = ConvLSTMCell(2, 3, kernel_size=3)
    x, h, c = torch.randn(2, 2, 5, 5), torch.randn(2, 3, 5, 5), torch.randn(2, 3, 5, 5)
    z = torch.nn.functional.conv2d(torch.cat([x, h], 1), cell.gates.conv.weight, cell.gates.conv.bias, padding=1)
    i, f, g, o = z.chunk(4, dim=1)
    c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    h_new = torch.sigmoid(o) * torch.tanh(c_new)
    got_h, got_c = cell(x, (h, c))
    torch.testing.assert_close(got_c, c_new)
    torch.testing.assert_close(got_h, h_new)
    assert got_h.shape == (2, 3, 5, 5)  # the state keeps the maps' size


def test_forget_gate_bias_starts_at_one():
    cell = ConvLSTMCell(1, 4)
    assert torch.equal(cell.gates.conv.bias[4:8], torch.ones(4))


@pytest.mark.parametrize("variant", [{}, {"per_step": True}, {"stem_channels": 0, "hidden_channels": (4, 6)}])
def test_stream_equals_forward_at_every_frame(variant):
    model = models.create("convlstm", input_shape=FRAME, num_classes=5, **variant).eval()
    x = torch.randn(2, 6, *FRAME)
    stream = model.stream(batch_size=2)
    with torch.no_grad():
        full = model(x)
        for t in range(6):
            expected = full[:, t] if variant.get("per_step") else model(x[:, : t + 1])
            torch.testing.assert_close(stream.step(x[:, t]), expected, atol=1e-5, rtol=1e-5)


def test_padded_frames_leave_the_state_alone():
    model = models.create("convlstm", input_shape=FRAME, num_classes=5).eval()
    clip = torch.randn(1, 3, *FRAME)
    batch = torch.randn(2, 6, *FRAME) * 5
    batch[1, :3] = clip[0]
    with torch.no_grad():
        torch.testing.assert_close(model(batch, torch.tensor([6, 3]))[1:], model(clip), atol=1e-5, rtol=1e-5)


def test_the_state_keeps_a_map_per_position():
    model = models.create("convlstm", input_shape=(1, 16, 16), num_classes=5, stem_channels=8, hidden_channels=(6,))
    assert model.state_shape == (6, 8, 8)  # the stem halves 16x16; the ConvLSTM keeps 8x8
    assert model.head.in_features == 6 * 8 * 8


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"kernel_size": 4}, "kernel_size must be odd"),
    ({"hidden_channels": ()}, "at least one ConvLSTM layer"),
    ({"stem_channels": -1}, "stem_channels must be an int >= 0"),
    ({"input_shape": (8, 8)}, "input_shape must be the"),
])
def test_config_errors(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        models.create("convlstm", **{"input_shape": FRAME, "num_classes": 5, **kwargs})
