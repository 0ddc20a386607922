"""The centernet detector: output grid at any input size, config checks, registry wiring."""

import pytest
import torch

from gridseq import models, tasks
from gridseq.data.contract import DatasetInfo
from gridseq.errors import ConfigError, ShapeError

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("size", [(64, 64), (97, 130), (16, 24), (5, 7)])
def test_output_is_k_plus_4_maps_at_a_quarter_of_any_size(size):
    m = models.create("centernet", in_channels=3, num_classes=13, channels=(4, 8, 8), head_channels=8).eval()
    out = m(torch.randn(2, 3, *size))
    assert tuple(out.shape) == (2, *m.output_grid(size)) == (2, 17, -(-size[0] // 4), -(-size[1] // 4))


def test_stride_and_depth():
    m = models.create("centernet", in_channels=1, num_classes=2, channels=(4, 8, 8, 8), stride=8, head_channels=4)
    assert m(torch.zeros(1, 1, 64, 40)).shape == (1, 6, 8, 5)
    m2 = models.create("centernet", in_channels=1, num_classes=2, channels=(4, 8, 8), stride=1, head_channels=4)
    assert m2(torch.zeros(1, 1, 12, 10)).shape == (1, 6, 12, 10)
    with pytest.raises(ConfigError, match="power of 2 at most 2"):
        models.create("centernet", in_channels=1, num_classes=2, channels=(4, 8), stride=4)
    with pytest.raises(ConfigError, match="power of 2"):
        models.create("centernet", in_channels=1, num_classes=2, stride=3)


def test_heads_start_near_no_object_and_layout_errors():
    m = models.create("centernet", in_channels=3, num_classes=2, channels=(4, 8, 8), head_channels=4).eval()
    with torch.no_grad():
        probs = m(torch.randn(1, 3, 32, 32))[:, :2].sigmoid()
    assert 0.0 < float(probs.mean()) < 0.2  # focal-loss prior: few false alarms at the start
    with pytest.raises(ShapeError):
        m(torch.zeros(1, 32, 32, 3))  # channels last
    with pytest.raises(ShapeError, match="no lengths"):
        m(torch.zeros(1, 3, 32, 32), torch.tensor([3]))


def test_registry_builds_it_for_a_detect_dataset():
    info = DatasetInfo(name="d", kind="image", input_shape=(3, 64, 64), num_classes=5,
                       class_names=tuple("abcde"), task="detect")
    m = models.create_for("centernet", info)
    assert m.config.in_channels == 3 and m.config.num_classes == 5 and m.config.channels == (32, 64, 128)
    assert isinstance(tasks.for_data(info, m), tasks.DetectTask)
    assert "centernet" in tasks.fitting(info)
