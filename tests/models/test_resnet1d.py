"""ResNet1d (Wang et al. 2017): the architecture as published, padding invariance with garbage in the
padding, and config validation. Shapes, save/load and layout errors are in test_all_models.py."""

import pytest
import torch
from torch import nn

from gridseq import models
from gridseq.errors import ConfigError, ShapeError
from gridseq.models.resnet1d import ResNet1d


def _model(**kw):
    return ResNet1d(ResNet1d.Config(in_channels=3, num_classes=4, **kw))


def test_architecture_matches_wang_et_al():
    m = _model()
    assert [b.last[0].conv.out_channels for b in m.blocks] == [64, 128, 128]
    kernels = [[c.conv.conv.kernel_size[0] for c in b.convs] + [b.last[0].conv.kernel_size[0]] for b in m.blocks]
    assert kernels == [[8, 5, 3]] * 3
    # a 1x1 conv shortcut where the width changes (3 -> 64, 64 -> 128), batch norm alone where it does not
    assert [type(b.shortcut[0]) for b in m.blocks] == [nn.Conv1d, nn.Conv1d, nn.BatchNorm1d]
    assert m.classifier.in_features == 128 and m.classifier.out_features == 4


def test_registered_for_series():
    entry = models.entry("resnet1d")
    assert set(entry.kinds) == {"sequence", "series"} and entry.model_cls is ResNet1d


def test_logits_ignore_padding_even_when_it_holds_garbage():
    torch.manual_seed(0)
    m = _model(channels=(8, 16, 16))
    m.train()
    m(torch.randn(4, 20, 3), torch.tensor([20, 11, 5, 1])).sum().backward()  # non-trivial BN running stats
    m.eval()
    x = torch.randn(3, 17, 3)
    lengths = torch.tensor([17, 9, 4])
    padded = x.clone()
    for i, n in enumerate(lengths):
        padded[i, n:] = 100.0  # whatever sits in the padding must not matter
    with torch.no_grad():
        batched = m(torch.cat([padded, torch.full((3, 6, 3), -50.0)], dim=1), lengths)  # extra padding too
        for i, n in enumerate(lengths):
            torch.testing.assert_close(batched[i], m(x[i : i + 1, :n])[0], atol=1e-5, rtol=1e-4)


def test_config_validation():
    with pytest.raises(ConfigError, match="kernel_sizes needs at least 2"):
        _model(kernel_sizes=(8,))
    with pytest.raises(ConfigError, match="in_channels"):
        ResNet1d.Config(in_channels=0, num_classes=2)
    assert _model(channels=[4, 4]).config.channels == (4, 4)  # lists from config.json become tuples


def test_wrong_feature_count_is_a_shape_error():
    with pytest.raises(ShapeError):
        _model()(torch.zeros(2, 10, 5))
