"""The CNN family: cnn, fcn (2D dense / pooled, 1D Wang et al.), tcn, mlp."""

import dataclasses
import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gridseq.data.contract import DatasetInfo
from gridseq.errors import ConfigError, ShapeError
from gridseq.models import build_config, create, create_for


def _info(kind, input_shape, task="classify"):
    return DatasetInfo(name="t", kind=kind, input_shape=input_shape, num_classes=3, class_names=("a", "b", "c"), task=task)


def _pad(x, total, value):
    """x (1, T, F) padded along time to `total` steps with `value` (garbage the model must ignore)."""
    pad = torch.full((1, total - x.shape[1], x.shape[2]), value)
    return torch.cat([x, pad], dim=1)


# --- the example calls ---------------------------------------------------------------

def test_cnn_example_call():
    assert create("cnn", input_shape=(1, 28, 28), num_classes=10)(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_fcn_example_call():
    assert create("fcn", in_channels=3, num_classes=4)(torch.zeros(1, 3, 37, 53)).shape == (1, 4, 37, 53)


# --- CNN -------------------------------------------------------------------------------------

@pytest.mark.parametrize("size,channels", [((8, 8), (32, 64)), ((8, 8), (8, 8, 8, 8, 8)), ((1, 1), (4, 4)), ((3, 5), (4, 4, 4))])
def test_cnn_works_on_tiny_images_by_not_pooling_short_sides(size, channels):
    model = create("cnn", input_shape=(1, *size), num_classes=10, channels=channels)
    assert model(torch.randn(2, 1, *size)).shape == (2, 10)
    assert min(model.feature_shape[1:]) >= 1
    if size == (8, 8) and len(channels) == 5:
        assert model.feature_shape == (8, 1, 1)  # 8 → 4 → 2 → 1 → 1 → 1


def test_cnn_forward_features_and_head_compose_to_forward():
    model = create("cnn", input_shape=(3, 12, 10), num_classes=5).eval()
    x = torch.randn(4, 3, 12, 10)
    features = model.forward_features(x)
    assert features.shape == (4, model.num_features) == (4, 64 * 3 * 2)
    torch.testing.assert_close(model.forward_head(features), model(x))
    with pytest.raises(ShapeError, match=rf"\(B, {model.num_features}\)"):
        model.forward_head(features[:, :-1])


def test_cnn_rejects_other_image_sizes_and_lengths():
    model = create("cnn", input_shape=(1, 28, 28), num_classes=10)
    with pytest.raises(ShapeError, match="28x28"):
        model(torch.zeros(2, 1, 8, 8))
    with pytest.raises(ShapeError, match="channels-last"):
        model(torch.zeros(2, 28, 28, 1))
    with pytest.raises(ShapeError, match="no lengths"):
        model(torch.zeros(2, 1, 28, 28), torch.tensor([1, 1]))


def test_cnn_on_sequences_is_a_1d_cnn_over_time():
    model = create("cnn", input_shape=(40, 3), num_classes=5).eval()
    assert model.topology == "many-to-one" and model.feature_shape == (64, 10)  # 40 → 20 → 10 steps
    assert all(isinstance(m, torch.nn.Conv1d) for m in model.modules() if isinstance(m, torch.nn.modules.conv._ConvNd))
    x = torch.randn(3, 40, 3)
    assert model(x).shape == (3, 5)
    # a shorter sequence reads as its valid steps then zeros, whatever its batch's padding
    short = x[:1, :25]
    padded = torch.cat([short, torch.full((1, 15, 3), 7.0)], dim=1)
    assert torch.allclose(model(short), model(padded, torch.tensor([25])), atol=1e-6)
    with pytest.raises(ShapeError, match=r"\(B, T, 3\)"):
        model(torch.randn(3, 3, 40))


def test_cnn_without_hidden_layer_or_batch_norm():
    model = create("cnn", input_shape=(1, 8, 8), num_classes=3, hidden=0, batch_norm=False)
    linears = [m for m in model.head if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 1
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())


def test_cnn_pools_globally_instead_of_a_huge_linear_on_large_images():
    model = create("cnn", input_shape=(3, 224, 224), num_classes=10)
    # before: a 64 x 56 x 56 = 200,704 x 128 Linear, 25.7M parameters
    assert model.config.global_pool == "avg" and model.head_features == 64
    assert sum(p.numel() for p in model.parameters()) < 1_000_000
    x = torch.randn(2, 3, 224, 224)
    assert model(x).shape == (2, 10)
    features = model.forward_features(x)  # still the whole flattened map: what crnn and captioner read
    assert features.shape == (2, 64 * 56 * 56) == (2, model.num_features)
    model.eval()
    pooled = features.view(2, 64, -1).mean(dim=2)
    torch.testing.assert_close(model.forward_head(features), model.head(pooled))


@pytest.mark.parametrize("input_shape,count", [
    ((1, 28, 28), 421_738),  # 64 x 7 x 7 = 3,136 flattened, as before global pooling existed
    ((1, 8, 8), 53_098),
    ((3, 32, 32), 545_194),  # 64 x 8 x 8 = 4,096: the largest map still flattened
    ((784, 1), 1_613_482),  # sequences are never pooled automatically (64 x 196 = 12,544)
])
def test_cnn_keeps_flattening_small_maps_and_sequences(input_shape, count):
    model = create("cnn", input_shape=input_shape, num_classes=10)
    assert model.config.global_pool == "none" and model.head_features == model.num_features
    assert sum(p.numel() for p in model.parameters()) == count


def test_cnn_global_pool_can_be_chosen():
    x = torch.randn(3, 1, 28, 28)
    model = create("cnn", input_shape=(1, 28, 28), num_classes=4, global_pool="max").eval()
    assert model.head[1].in_features == 64
    maps = model.features(x)  # (B, 64, 7, 7)
    torch.testing.assert_close(model(x), model.head(maps.amax(dim=(2, 3))))
    flat = create("cnn", input_shape=(3, 224, 224), num_classes=4, global_pool="none", hidden=0)
    assert flat.head[1].in_features == 64 * 56 * 56
    seq = create("cnn", input_shape=(40, 3), num_classes=4, global_pool="avg")
    assert seq.head_features == 64 and seq(torch.randn(2, 40, 3)).shape == (2, 4)
    with pytest.raises(ConfigError, match="Did you mean 'avg'"):
        create("cnn", input_shape=(1, 28, 28), num_classes=4, global_pool="average")


def test_cnn_docstring_examples_run():
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module("gridseq.models.cnn"))
    assert result.attempted > 0 and result.failed == 0


# --- FCN, dims=2 -----------------------------------------------------------------------------

@settings(max_examples=25, deadline=None)
@given(h=st.integers(1, 70), w=st.integers(1, 70), variant=st.sampled_from(["unet", "skip"]),
       upsample=st.sampled_from(["transpose", "interp"]))
def test_fcn_dense_output_has_the_input_size(h, w, variant, upsample):
    model = create("fcn", in_channels=2, num_classes=3, channels=(4, 8, 8), variant=variant, upsample=upsample).eval()
    assert model(torch.randn(1, 2, h, w)).shape == (1, 3, h, w)


@pytest.mark.parametrize("size", [(97, 131), (8, 8)])
def test_fcn_default_on_odd_and_tiny_images_in_training_mode(size):
    model = create("fcn", in_channels=3, num_classes=4)
    assert model.topology == "many-to-many"
    assert model(torch.randn(2, 3, *size)).shape == (2, 4, *size)


def test_fcn_single_value_batch_norm_is_a_readable_shape_error():
    model = create("fcn", in_channels=1, num_classes=2)
    with pytest.raises(ShapeError, match="batches of 2 or more"):
        model(torch.randn(1, 1, 3, 4))  # deepest map 1x1, batch 1
    assert model.eval()(torch.randn(1, 1, 3, 4)).shape == (1, 2, 3, 4)


def test_fcn_pool_head_classifies_images_of_any_size():
    model = create("fcn", in_channels=1, num_classes=10, head="pool")
    assert model.topology == "one-to-one"
    assert model(torch.randn(2, 1, 8, 8)).shape == model(torch.randn(2, 1, 31, 17)).shape == (2, 10)
    assert not hasattr(model, "ups")  # the decoder is not built when its output would be averaged away


def test_fcn_from_info_picks_dims_and_head():
    classify = create_for("fcn", _info("image", (1, 8, 8)))
    assert (classify.config.dims, classify.config.head) == (2, "pool")
    assert classify(torch.randn(2, 1, 8, 8)).shape == (2, 3)
    segment = create_for("fcn", _info("image", (3, 20, 20), task="segment"))
    assert segment.config.head == "dense" and segment(torch.randn(2, 3, 20, 20)).shape == (2, 3, 20, 20)
    series = create_for("fcn", _info("series", (40, 2)))
    assert (series.config.dims, series.config.head, series.topology) == (1, "pool", "many-to-one")
    assert series(torch.randn(2, 40, 2)).shape == (2, 3)


def test_fcn_config_resolves_defaults_and_round_trips_through_json():
    config = build_config("fcn", in_channels=2, num_classes=5, dims=1)
    assert (config.channels, config.kernel_sizes, config.head) == ((128, 256, 128), (8, 5, 3), "pool")
    again = build_config("fcn", **json.loads(json.dumps(dataclasses.asdict(config))))
    assert again == config


# --- FCN, dims=1 (Wang et al. 2017) ------------------------------------------------------------

def test_fcn_1d_logits_do_not_depend_on_padding():
    model = create("fcn", in_channels=3, num_classes=4, dims=1, channels=(8, 16, 8)).eval()
    short, long = torch.randn(1, 9, 3), torch.randn(1, 20, 3)
    batch = torch.cat([_pad(short, 20, 7.0), long])  # padded with garbage, not zeros
    logits = model(batch, torch.tensor([9, 20]))
    torch.testing.assert_close(logits[0], model(short)[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(logits[1], model(long)[0], atol=1e-5, rtol=1e-5)
    # without lengths the padding is read as data
    assert not torch.allclose(model(batch)[0], model(short)[0], atol=1e-3)


def test_fcn_1d_dense_head_gives_per_step_logits_unaffected_by_padding():
    model = create("fcn", in_channels=2, num_classes=3, dims=1, head="dense", channels=(4, 4), kernel_sizes=(5, 4)).eval()
    short = torch.randn(1, 6, 2)
    out = model(_pad(short, 10, -3.0), torch.tensor([6]))
    assert out.shape == (1, 10, 3) and model.topology == "many-to-many"
    torch.testing.assert_close(out[:, :6], model(short), atol=1e-5, rtol=1e-5)


def test_fcn_1d_checks_the_sequence_layout():
    model = create("fcn", in_channels=3, num_classes=2, dims=1)
    with pytest.raises(ShapeError, match="transpose"):
        model(torch.randn(2, 3, 40))  # (B, F, T)


# --- TCN -------------------------------------------------------------------------------------

@pytest.mark.parametrize("weight_norm", [False, True])
def test_tcn_is_causal_and_its_receptive_field_is_exact(weight_norm):
    model = create("tcn", input_size=2, num_classes=3, channels=8, kernel_size=3, num_levels=3, per_step=True,
                   weight_norm=weight_norm).eval()
    rf = model.config.receptive_field
    assert rf == 1 + 2 * 2 * (1 + 2 + 4)
    x = torch.randn(1, 60, 2)
    t = 10
    y = x.clone()
    y[:, t + 1:] = torch.randn(1, 60 - t - 1, 2)
    torch.testing.assert_close(model(x)[:, : t + 1], model(y)[:, : t + 1])  # the future changed, the past did not
    z = x.clone()
    z[:, t] += 1.0
    delta = (model(z) - model(x)).abs().amax(dim=-1)[0]  # (T,)
    assert delta[t + rf - 1] > 0 and delta[t + rf:].max() == 0 and delta[:t].max() == 0


@pytest.mark.parametrize("dataset", ["seq-mnist", "pmnist"])
def test_tcn_defaults_for_pixel_mnist_let_the_last_step_see_every_pixel(dataset):
    """The last step pools the sequence: its receptive field must cover all 784 pixels, with Bai et al.'s widths."""
    from gridseq import defaults

    settings = defaults.lookup(dataset, "tcn")["model"]
    model = create("tcn", input_size=1, num_classes=10, **settings)
    assert model.config.pooling == "last" and model.config.receptive_field >= 784
    assert sum(p.numel() for p in model.parameters()) < 70_000  # the paper's ~70K-parameter budget


@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_tcn_pooling_reads_only_valid_steps(pooling):
    model = create("tcn", input_size=2, num_classes=3, channels=8, pooling=pooling).eval()
    short, long = torch.randn(1, 7, 2), torch.randn(1, 15, 2)
    logits = model(torch.cat([_pad(short, 15, 5.0), long]), torch.tensor([7, 15]))
    torch.testing.assert_close(logits[0], model(short)[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(logits[1], model(long)[0], atol=1e-5, rtol=1e-5)


def test_tcn_topology_follows_per_step():
    assert create("tcn", input_size=1, num_classes=2).topology == "many-to-one"
    model = create("tcn", input_size=1, num_classes=2, per_step=True)
    assert model.topology == "many-to-many" and model(torch.randn(3, 11, 1)).shape == (3, 11, 2)


# --- MLP -------------------------------------------------------------------------------------

def test_mlp_on_images_and_fixed_length_sequences():
    assert create_for("mlp", _info("image", (1, 8, 8)))(torch.randn(2, 1, 8, 8)).shape == (2, 3)
    model = create_for("mlp", _info("series", (40, 2)))
    assert model.topology == "many-to-one" and model(torch.randn(2, 40, 2)).shape == (2, 3)


def test_mlp_zero_pads_masks_and_crops_sequences_to_its_length():
    model = create("mlp", input_shape=(10, 2), num_classes=3).eval()
    short = torch.randn(1, 6, 2)
    torch.testing.assert_close(model(short), model(_pad(short, 10, 0.0)))  # pads with zeros
    torch.testing.assert_close(model(_pad(short, 13, 9.0), torch.tensor([6])), model(short))  # padding ignored
    long = torch.randn(1, 14, 2)
    torch.testing.assert_close(model(long), model(long[:, :10]))  # cropped to the first T steps


# --- shared: config errors and gradients -------------------------------------------------------

@pytest.mark.parametrize("name,kwargs,match", [
    ("cnn", {"input_shape": (1, 8, 8), "num_classes": 10, "channels": (32, 0)}, r"channels\[1\] must be a positive int"),
    ("cnn", {"input_shape": (1, 8, 8), "num_classes": 10, "kernel_sizes": (3, 3, 3)}, "one entry per conv block"),
    ("cnn", {"input_shape": (8,), "num_classes": 10}, r"input_shape must be \(C, H, W\) for images or \(T, F\)"),
    ("cnn", {"input_shape": (1, 8, 8), "num_classes": 10, "dropout": 1.0}, r"dropout must be a number in \[0, 1\)"),
    ("fcn", {"in_channels": 3, "num_classes": 4, "dims": 3}, "dims must be 1"),
    ("fcn", {"in_channels": 3, "num_classes": 4, "head": "pooled"}, "Did you mean 'pool'"),
    ("fcn", {"in_channels": 3, "num_classes": 4, "channels": (8, 16), "kernel_sizes": (3, 3, 3)}, "one entry per block"),
    ("fcn", {"in_channels": 0, "num_classes": 4}, "in_channels must be a positive int"),
    ("tcn", {"input_size": 2, "num_classes": 3, "pooling": "max"}, "pooling must be one of"),
    ("tcn", {"input_size": 2, "num_classes": 3, "kernel_size": 0}, "kernel_size must be a positive int"),
    ("mlp", {"input_shape": (64,), "num_classes": 3}, r"\(C, H, W\) for images or \(T, F\)"),
    ("mlp", {"input_shape": (8, 8), "num_classes": 3, "hidden": (256, -1)}, r"hidden\[1\]"),
])
def test_bad_configs_raise_config_error(name, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        create(name, **kwargs)


@pytest.mark.parametrize("name,kwargs,x", [
    ("cnn", {"input_shape": (1, 8, 8), "num_classes": 3}, torch.randn(4, 1, 8, 8)),
    ("fcn", {"in_channels": 1, "num_classes": 3, "channels": (4, 8)}, torch.randn(2, 1, 9, 7)),
    ("fcn", {"in_channels": 1, "num_classes": 3, "channels": (4, 8), "variant": "skip"}, torch.randn(2, 1, 9, 7)),
    ("fcn", {"in_channels": 2, "num_classes": 3, "dims": 1, "channels": (4, 8, 4)}, torch.randn(3, 12, 2)),
    ("tcn", {"input_size": 2, "num_classes": 3, "channels": 8, "weight_norm": True}, torch.randn(3, 12, 2)),
    ("mlp", {"input_shape": (12, 2), "num_classes": 3}, torch.randn(3, 12, 2)),
])
def test_backward_gives_finite_gradients_to_every_parameter(name, kwargs, x):
    model = create(name, **kwargs)
    lengths = torch.tensor([12, 5, 9]) if x.dim() == 3 else None
    model(x, lengths).square().mean().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname
    assert any(p.grad.abs().sum() > 0 for p in model.parameters())


@pytest.mark.slow
def test_cnn_defaults_reach_97_percent_on_sklearn_digits():
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = torch.tensor(x, dtype=torch.float32).view(-1, 1, 8, 8) / 16  # (N, 1, 8, 8) in [0, 1]
    y = torch.tensor(y)
    perm = torch.randperm(len(x))
    train, test = perm[:1437], perm[1437:]
    model = create("cnn", input_shape=(1, 8, 8), num_classes=10)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny convs: threads only add sync cost (30x slower on a busy 2-core machine)
    try:
        for _ in range(15):
            model.train()
            for idx in train[torch.randperm(len(train))].split(64):
                loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
    finally:
        torch.set_num_threads(threads)
    model.eval()
    with torch.no_grad():
        accuracy = (model(x[test]).argmax(1) == y[test]).float().mean().item()
    assert accuracy >= 0.97
