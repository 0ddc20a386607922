"""ResNet for images (resnet, resnet18, resnet34): the architecture against torchvision's counts, any
input size, the timm-style split, training sanity and config validation. Registry-wide checks
(save/load, layout errors, batch independence) are in test_all_models.py; ONNX in test_export.py."""

import doctest
import importlib

import pytest
import torch
from torch import nn

from gridseq import models
from gridseq.errors import ConfigError, ShapeError
from gridseq.inspect import extract
from gridseq.models.resnet import BasicBlock, ResNet
from gridseq.nn.time_distributed import TimeDistributed

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = dict(channels=(4, 8, 8, 16))  # the default layout at a fraction of the width: fast on CPU


def _params(model):
    return sum(p.numel() for p in model.parameters())


def _maps(model, x):
    """The last conv map (B, C_last, H', W'), before the pooling."""
    return model.stages(model.stem(x))


# --- presets -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "count"), [("resnet18", 11_689_512), ("resnet34", 21_797_672)])
def test_presets_have_torchvisions_parameter_counts_for_imagenet(name, count):
    # torchvision.models.resnet18() / resnet34(): 1000 classes, (3, 224, 224) images
    model = models.create(name, input_shape=(3, 224, 224), num_classes=1000)
    assert _params(model) == count


def test_resnet18_layout_on_photos_is_torchvisions():
    model = models.create("resnet18", input_shape=(3, 224, 224), num_classes=1000)
    conv, pool = model.stem[0], model.stem[3]
    assert (conv.kernel_size, conv.stride, conv.out_channels) == ((7, 7), (2, 2), 64)
    assert isinstance(pool, nn.MaxPool2d) and (pool.kernel_size, pool.stride) == (3, 2)
    assert [len(stage) for stage in model.stages] == [2, 2, 2, 2]
    assert [stage[0].conv2.out_channels for stage in model.stages] == [64, 128, 256, 512]
    # projection shortcuts exactly where the stride or the width changes: the first block of stages 2-4
    projected = [isinstance(b.shortcut, nn.Sequential) for stage in model.stages for b in stage]
    assert projected == [False, False, True, False, True, False, True, False]
    assert model.feature_shape == (512, 7, 7) and model.num_features == 512  # 224 / 32


def test_resnet34_has_3_4_6_3_blocks_and_the_default_is_small():
    assert [len(s) for s in models.create("resnet34", input_shape=(3, 64, 64), num_classes=2).stages] == [3, 4, 6, 3]
    small = models.create("resnet", input_shape=(3, 128, 128), num_classes=10)
    assert small.config.channels == (32, 64, 128, 256) and small.config.blocks == (1, 1, 1, 1)
    assert (small.stem[0].kernel_size, small.stem[0].stride) == ((3, 3), (2, 2))
    assert small.feature_shape == (256, 4, 4) and _params(small) < 1.5e6


def test_every_preset_is_registered_for_images():
    for name in ("resnet", "resnet18", "resnet34"):
        entry = models.entry(name)
        assert entry.kinds == ("image",) and entry.model_cls is ResNet
    assert {"resnet", "resnet18", "resnet34"} <= set(models.names())


# --- any input size ------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(1, 1, 1), (3, 1, 5), (1, 8, 8), (3, 7, 13), (1, 28, 28), (3, 37, 53), (3, 96, 96),
                                   (3, 128, 96), (3, 224, 224)])
@pytest.mark.parametrize("stem", [{}, dict(stem_stride=2, stem_pool=True)], ids=["auto-stem", "photo-stem"])
def test_any_image_size_gives_logits_and_the_predicted_map(shape, stem):
    model = models.create("resnet", input_shape=shape, num_classes=5, **SMALL, **stem).eval()
    x = torch.randn(2, *shape)
    with torch.no_grad():
        assert model(x).shape == (2, 5)
        assert tuple(_maps(model, x).shape[1:]) == model.feature_shape  # ceil(n / 2) per down-sampling
    assert min(model.feature_shape[1:]) >= 1


def test_tiny_images_through_the_photo_stem_reach_1x1_and_stay_there():
    model = models.create("resnet18", input_shape=(1, 8, 8), num_classes=10, stem_stride=2, stem_pool=True)
    assert model.feature_shape == (512, 1, 1)  # 8 → 4 (stem) → 2 (pool) → 2 → 1 → 1 → 1
    assert model(torch.randn(2, 1, 8, 8)).shape == (2, 10)


@pytest.mark.parametrize(("shape", "stride", "pool", "last"), [
    ((1, 8, 8), 1, False, (1, 1)),  # 8 → 8 → 4 → 2 → 1
    ((3, 32, 32), 1, False, (4, 4)),  # CIFAR: 32 → 32 → 16 → 8 → 4
    ((3, 32, 200), 1, False, (4, 25)),  # the shorter side decides
    ((3, 33, 33), 2, True, (2, 2)),  # a photo: 33 → 17 → 9 → 9 → 5 → 3 → 2
    ((3, 224, 224), 2, True, (7, 7)),
])
def test_small_images_keep_full_resolution_in_the_stem(shape, stride, pool, last):
    model = models.create("resnet", input_shape=shape, num_classes=10, **SMALL)
    assert (model.config.stem_stride, model.config.stem_pool) == (stride, pool)  # resolved: config.json says it
    assert model.feature_shape[1:] == last
    assert any(isinstance(m, nn.MaxPool2d) for m in model.modules()) == pool
    forced = models.create("resnet", input_shape=shape, num_classes=10, stem_stride=2, stem_pool=False, **SMALL)
    assert (forced.config.stem_stride, forced.config.stem_pool) == (2, False)


def test_rejects_another_size_lengths_and_channels_last():
    model = models.create("resnet", input_shape=(3, 32, 32), num_classes=4, **SMALL)
    with pytest.raises(ShapeError, match="32x32"):
        model(torch.randn(2, 3, 28, 28))
    with pytest.raises(ShapeError, match="channels-last"):
        model(torch.randn(2, 32, 32, 3))
    with pytest.raises(ShapeError, match="no lengths"):
        model(torch.randn(2, 3, 32, 32), torch.tensor([1, 1]))


def test_one_image_with_a_1x1_map_in_training_is_a_readable_error():
    model = models.create("resnet", input_shape=(1, 8, 8), num_classes=3, **SMALL)
    assert model.feature_shape[1:] == (1, 1)
    with pytest.raises(ShapeError, match="batches of 2 or more"):
        model(torch.randn(1, 1, 8, 8))
    assert model(torch.randn(2, 1, 8, 8)).shape == (2, 3)
    assert model.eval()(torch.randn(1, 1, 8, 8)).shape == (1, 3)


# --- encoder reuse (timm style) --------------------------------------------------------------------

def test_forward_features_and_head_compose_to_forward():
    model = models.create("resnet", input_shape=(3, 40, 30), num_classes=6, **SMALL).eval()
    x = torch.randn(3, 3, 40, 30)
    features = model.forward_features(x)
    assert features.shape == (3, model.num_features) == (3, 16)
    torch.testing.assert_close(features, _maps(model, x).mean(dim=(2, 3)))  # global average pooling
    torch.testing.assert_close(model.forward_head(features), model(x))
    with pytest.raises(ShapeError, match=r"\(B, 16\)"):
        model.forward_head(features[:, :-1])


def test_encodes_video_frames_through_time_distributed():
    model = models.create("resnet", input_shape=(1, 16, 16), num_classes=3, **SMALL).eval()
    frames = TimeDistributed(model, method="forward_features")
    video, lengths = torch.randn(2, 5, 1, 16, 16), torch.tensor([5, 3])
    out = frames(video, lengths)
    assert out.shape == (2, 5, model.num_features)
    assert out[1, 3:].eq(0).all()
    torch.testing.assert_close(out[0, 2], model.forward_features(video[0, 2:3])[0])


def test_inspect_sees_the_stem_as_the_first_layer():
    model = models.create("resnet18", input_shape=(3, 64, 64), num_classes=4)
    assert extract.conv_filters(model).shape == (64, 3, 7, 7)
    assert extract.feature_maps(model, torch.rand(2, 3, 64, 64)).shape == (2, 64, 32, 32)


# --- training ------------------------------------------------------------------------------------

def test_backward_reaches_every_parameter():
    model = models.create("resnet", input_shape=(3, 20, 24), num_classes=4, dropout=0.2, **SMALL)
    model(torch.randn(4, 3, 20, 24)).logsumexp(1).sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    # zero_init_last starts each block as the identity, so the stem and shortcuts carry the first gradients
    assert all(not b.bn2.weight.detach().any() for b in model.modules() if isinstance(b, BasicBlock))
    assert model.stem[0].weight.grad.abs().sum() > 0


def test_eval_is_deterministic_and_batch_independent():
    model = models.create("resnet", input_shape=(3, 24, 24), num_classes=4, zero_init_last=False, **SMALL)
    model(torch.randn(8, 3, 24, 24))  # one training pass: non-trivial BatchNorm running statistics
    model.eval()
    x = torch.randn(4, 3, 24, 24)
    with torch.no_grad():
        out = model(x)
        assert torch.equal(out, model(x))
        torch.testing.assert_close(model(x[2:3])[0], out[2], atol=1e-5, rtol=1e-4)


def test_overfits_a_tiny_batch():
    torch.manual_seed(0)
    model = models.create("resnet", input_shape=(3, 16, 16), num_classes=4, channels=(8, 16, 16, 32))
    x, y = torch.randn(16, 3, 16, 16), torch.arange(16) % 4  # labels the pixels cannot explain: memorise
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.1 * losses[0], losses[::5]
    assert model.eval()(x).argmax(1).eq(y).float().mean() >= 0.9


# --- config --------------------------------------------------------------------------------------

def test_one_blocks_int_is_used_for_every_stage():
    assert models.build_config("resnet", input_shape=(3, 8, 8), num_classes=2, blocks=2).blocks == (2, 2, 2, 2)
    config = models.build_config("resnet18", input_shape=[3, 8, 8], num_classes=2)  # JSON lists come back as tuples
    assert config.input_shape == (3, 8, 8) and config.stem_channels == 64


@pytest.mark.parametrize(("kwargs", "match"), [
    (dict(input_shape=(28, 28)), r"input_shape must be \(C, H, W\)"),
    (dict(channels=()), "at least one stage"),
    (dict(blocks=(2, 2)), "one entry per stage"),
    (dict(blocks=0), r"blocks\[0\] must be a positive int"),
    (dict(stem_kernel=4), "stem_kernel must be odd"),
    (dict(stem_stride=0), "stem_stride must be a positive int"),
    (dict(stem_pool="yes"), "stem_pool must be True or False"),
    (dict(zero_init_last=1), "zero_init_last must be True or False"),
    (dict(dropout=1.0), r"dropout must be a number in \[0, 1\)"),
    (dict(num_classes=0), "num_classes must be a positive int"),
])
def test_config_errors_name_the_field(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        models.build_config("resnet", **{"input_shape": (3, 32, 32), "num_classes": 4, **kwargs})


def test_docstring_examples_run():
    result = doctest.testmod(importlib.import_module("gridseq.models.resnet"))
    assert result.attempted > 0 and result.failed == 0
