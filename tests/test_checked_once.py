"""Validation at the door, once (gridseq.shapes.inputs_checked): an entry point checks its inputs and the
modules it calls do not check them again; each module called on its own still checks."""

import threading

import pytest
import torch
from torch import nn

from gridseq import models, shapes
from gridseq.errors import ShapeError
from gridseq.nn.recurrent import Recurrent, fused_direction


@pytest.fixture
def scans(monkeypatch):
    """Counts the NaN/Inf scans (each a full pass over the tensor and a host sync)."""
    calls = []
    real = shapes.check_finite

    def counting(x, name="x"):
        calls.append(tuple(x.shape))
        return real(x, name)

    monkeypatch.setattr(shapes, "check_finite", counting)
    return calls


def test_a_recurrent_model_scans_its_input_once(scans):
    m = models.create("gru", input_size=3, hidden_size=8, num_classes=2, bidirectional=True).eval()
    m(torch.randn(2, 6, 3), torch.tensor([6, 4]))
    assert scans == [(2, 6, 3)]  # the model's door; its Recurrent trusts it
    scans.clear()
    m.encoder(torch.randn(2, 6, 3), torch.tensor([6, 4]))  # the layer on its own is a door too
    assert scans == [(2, 6, 3)]


def test_a_crnn_scans_the_video_once_not_every_frame(scans):
    m = models.create("crnn", input_shape=(1, 8, 8), num_classes=3, channels=(4,), hidden_size=8).eval()
    m(torch.randn(2, 5, 1, 8, 8), torch.tensor([5, 3]))
    assert scans == [(2, 5, 1, 8, 8)]


def test_nested_errors_are_still_raised_when_a_module_is_called_alone():
    layer = Recurrent("lstm", 3, 4)
    with pytest.raises(ShapeError, match="looks like"):
        layer(torch.randn(6, 2, 3), torch.tensor([6, 4]))  # (T, B, F) with B lengths
    with pytest.raises(ShapeError, match="NaN"):
        layer(torch.full((1, 2, 3), float("nan")))


def test_the_door_still_raises_the_same_errors_for_a_model():
    m = models.create("lstm", input_size=3, hidden_size=4, num_classes=2)
    with pytest.raises(ShapeError, match="NaN"):
        m(torch.full((1, 2, 3), float("nan")))
    with pytest.raises(ShapeError, match=r"must be <= T=2"):
        m(torch.zeros(1, 2, 3), torch.tensor([3]))


def test_inputs_checked_skips_checks_inside_and_restores_them_after_an_error():
    nan = torch.full((1, 2, 3), float("nan"))
    with pytest.raises(RuntimeError), shapes.inputs_checked():
        assert shapes.trusted()
        assert shapes.check_sequence(nan)[0] is nan  # trusted: not scanned
        raise RuntimeError("boom")
    assert not shapes.trusted()
    with pytest.raises(ShapeError, match="NaN"):
        shapes.check_sequence(nan)


def test_trusted_lengths_are_still_converted_for_packing():
    with shapes.inputs_checked():
        _, lengths = shapes.check_sequence(torch.zeros(2, 3, 1), torch.tensor([3, 1], dtype=torch.int32))
    assert lengths.dtype == torch.int64 and lengths.device.type == "cpu"


def test_trust_does_not_leak_into_other_threads():
    seen = []
    with shapes.inputs_checked():
        t = threading.Thread(target=lambda: seen.append(shapes.trusted()))
        t.start()
        t.join()
    assert seen == [False]


def test_unpadded_drops_lengths_only_when_nothing_is_padded():
    assert shapes.unpadded(torch.tensor([4, 4]), 4) is None
    assert shapes.unpadded(torch.tensor([4, 2]), 4).tolist() == [4, 2]
    assert shapes.unpadded(None, 4) is None


def test_full_lengths_give_the_same_outputs_as_no_lengths():
    torch.manual_seed(0)
    for kw in ({"pooling": "mean"}, {"per_step": True}, {"bidirectional": True}):
        m = models.create("gru", input_size=3, hidden_size=5, num_classes=2, **kw).eval()
        x = torch.randn(2, 6, 3)
        torch.testing.assert_close(m(x, torch.tensor([6, 6])), m(x))


@pytest.mark.parametrize("kernel, module", [
    ("gru", nn.GRU(3, 5, batch_first=True)),
    ("rnn_tanh", nn.RNN(3, 5, batch_first=True)),
    ("rnn_relu", nn.RNN(3, 5, batch_first=True, nonlinearity="relu")),
])
def test_fused_direction_equals_torch_one_layer_module(kernel, module):
    # pins the private torch._VF call behind fused_direction: a torch upgrade that changes it fails here
    torch.manual_seed(0)
    x, h0 = torch.randn(2, 7, 3), torch.randn(1, 2, 5)
    weights = (module.weight_ih_l0, module.weight_hh_l0, module.bias_ih_l0, module.bias_hh_l0)
    expected, _ = module(x, h0)
    torch.testing.assert_close(fused_direction(kernel, x, h0, weights), expected)
