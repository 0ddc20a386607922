"""LSTM-FCN (Karim et al. 2017): both branches, the dimension shuffle, padding invariance with and
without it, and config validation. Shapes, save/load and layout errors are in test_all_models.py."""

import pytest
import torch

from gridseq import models
from gridseq.data.contract import DatasetInfo
from gridseq.errors import ConfigError, ShapeError
from gridseq.models.lstm_fcn import LSTMFCN


def _info(variable):
    return DatasetInfo(name="toy", kind="series", input_shape=(24, 2), num_classes=3, class_names=("a", "b", "c"),
                       variable_length=variable)


def test_dimension_shuffle_feeds_the_lstm_one_step_per_channel():
    m = models.create_for("lstm-fcn", _info(variable=False))
    assert m.config.dimension_shuffle and m.config.series_length == 24
    assert m.lstm.input_size == 24  # F steps of T values each
    assert [c.conv.conv.out_channels for c in m.convs] == [128, 256, 128]
    assert m.classifier.in_features == 128 + 128


def test_variable_length_data_runs_the_lstm_over_time_with_true_lengths():
    m = models.create_for("lstm-fcn", _info(variable=True))
    assert not m.config.dimension_shuffle and m.lstm.input_size == 2


@pytest.mark.parametrize("shuffle", [True, False])
def test_logits_ignore_padding(shuffle):
    torch.manual_seed(0)
    m = LSTMFCN(LSTMFCN.Config(input_size=2, num_classes=3, series_length=16, dimension_shuffle=shuffle,
                               hidden_size=8, channels=(8, 8, 8)))
    m.train()
    m(torch.randn(4, 16, 2), torch.tensor([16, 9, 4, 1])).sum().backward()
    m.eval()
    x = torch.randn(3, 14, 2)
    lengths = torch.tensor([14, 6, 2])
    padded = x.clone()
    for i, n in enumerate(lengths):
        padded[i, n:] = 7.0  # garbage in the padding
    with torch.no_grad():
        batched = m(padded, lengths)
        for i, n in enumerate(lengths):
            torch.testing.assert_close(batched[i], m(x[i : i + 1, :n])[0], atol=1e-5, rtol=1e-4)


def test_dropout_only_in_training():
    m = LSTMFCN(LSTMFCN.Config(input_size=1, num_classes=2, series_length=10, channels=(4, 4, 4), hidden_size=4))
    x = torch.randn(3, 10, 1)
    m.eval()
    with torch.no_grad():
        assert torch.equal(m(x), m(x))
    assert m.dropout.p == 0.8  # the paper's value


def test_shuffle_needs_a_length_and_refuses_longer_series():
    with pytest.raises(ConfigError, match="dimension_shuffle=True needs series_length"):
        LSTMFCN.Config(input_size=1, num_classes=2)
    m = LSTMFCN(LSTMFCN.Config(input_size=1, num_classes=2, series_length=10, channels=(4, 4, 4), hidden_size=4)).eval()
    with pytest.raises(ShapeError, match="at most series_length=10 steps, got T=12"):
        m(torch.zeros(1, 12, 1))
    with pytest.raises(ConfigError, match="kernel_sizes needs one window per conv block"):
        LSTMFCN.Config(input_size=1, num_classes=2, series_length=5, kernel_sizes=(8, 5))
