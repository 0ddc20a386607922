"""unet and fcn8s: per-pixel scores at the input's own size for any size, built from a segment dataset's info."""

import pytest
import torch

from gridseq import models, tasks
from gridseq.data.contract import DatasetInfo
from gridseq.errors import ConfigError

pytestmark = pytest.mark.usefixtures("one_thread")


def _info(task="segment", shape=(3, 64, 64)):
    return DatasetInfo(name="seg", kind="image", input_shape=shape, num_classes=4,
                       class_names=("background", "circle", "square", "triangle"), task=task)


@pytest.mark.parametrize("name", ["unet", "fcn8s", "fcn"])
@pytest.mark.parametrize("size", [(97, 131), (64, 64), (5, 3), (1, 1), (33, 17)])
def test_output_has_the_input_size(name, size):
    model = models.create_for(name, _info(), channels=(4, 8, 8)).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, *size))
    assert out.shape == (2, 4, *size)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", ["unet", "fcn8s"])
def test_gradients_reach_every_parameter_on_an_odd_size(name):
    model = models.create_for(name, _info(), channels=(4, 8, 8, 8))
    out = model(torch.randn(2, 3, 23, 41))
    out.square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing


def test_names_fix_the_variant_and_the_dense_head():
    unet, fcn8s = models.create_for("unet", _info()), models.create_for("fcn8s", _info())
    assert (unet.config.variant, unet.config.head) == ("unet", "dense")
    assert (fcn8s.config.variant, fcn8s.config.head, fcn8s.config.channels) == ("skip", "dense", (32, 64, 128, 256))
    # fcn builds the same dense U-Net on a segment dataset, the pooled classifier on a classify one
    assert models.create_for("fcn", _info()).config.head == "dense"
    assert models.create_for("fcn", _info("classify")).config.head == "pool"


def test_segment_task_accepts_dense_models_and_rejects_classifiers():
    info = _info()
    assert tasks.for_data(info, models.create_for("unet", info)).name == "segment"
    with pytest.raises(ConfigError, match="needs a many-to-many model"):
        tasks.for_data(info, models.create_for("cnn", info))
    with pytest.raises(ConfigError, match="takes image data"):
        models.create_for("unet", DatasetInfo(name="s", kind="sequence", input_shape=(10, 2), num_classes=2,
                                              class_names=("a", "b"), task="tag"))


def test_eval_output_does_not_depend_on_the_batch():
    model = models.create_for("unet", _info(), channels=(4, 8)).eval()
    x = torch.randn(3, 3, 19, 26)
    with torch.no_grad():
        whole, single = model(x), model(x[1:2])
    assert torch.allclose(whole[1:2], single, atol=1e-5)
