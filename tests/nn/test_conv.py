"""gridseq.nn.conv: padding that keeps sizes, pooling that never reaches 0, exact-size up-sampling."""

import warnings

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from gridseq.errors import ConfigError
from gridseq.nn.conv import Conv, ConvBlock, Down, MaxPool, Up, Upsample, fit_to_size

sides = st.integers(min_value=1, max_value=40)


@pytest.mark.parametrize("dims", [1, 2])
@pytest.mark.parametrize("kernel_size", [1, 2, 3, 4, 5, 8])
@pytest.mark.parametrize("dilation", [1, 2])
def test_same_padding_matches_torch_for_odd_and_even_kernels(dims, kernel_size, dilation):
    conv = Conv(3, 4, kernel_size, dims=dims, dilation=dilation)
    x = torch.randn(2, 3, *([11, 6][:dims]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns about the copy it makes for even kernels
        expected = F.conv1d if dims == 1 else F.conv2d
        ref = expected(x, conv.conv.weight, conv.conv.bias, padding="same", dilation=dilation)
    out = conv(x)
    assert out.shape == ref.shape == (2, 4, *x.shape[2:])
    torch.testing.assert_close(out, ref)


@pytest.mark.parametrize("kernel_size,dilation", [(2, 1), (3, 2), (5, 4)])
def test_causal_conv_never_looks_ahead(kernel_size, dilation):
    conv = Conv(2, 3, kernel_size, dims=1, dilation=dilation, padding="causal")
    x = torch.randn(1, 2, 30)
    t = 17
    y = x.clone()
    y[..., t + 1:] = torch.randn(1, 2, 30 - t - 1)
    out_x, out_y = conv(x), conv(y)
    assert out_x.shape == (1, 3, 30)
    torch.testing.assert_close(out_x[..., : t + 1], out_y[..., : t + 1])
    assert not torch.allclose(out_x[..., t + 1], out_y[..., t + 1])
    # and it does look back exactly (k - 1) * d steps
    z = x.clone()
    z[..., t - (kernel_size - 1) * dilation] += 1.0
    assert not torch.allclose(conv(z)[..., t], out_x[..., t])


def test_causal_padding_is_one_dimensional_only():
    with pytest.raises(ConfigError, match="padding='causal' needs dims=1"):
        Conv(1, 1, 3, dims=2, padding="causal")


@settings(max_examples=40, deadline=None)
@given(h=sides, w=sides, factor=st.integers(1, 3), ceil=st.booleans())
def test_max_pool_output_size_is_exact_and_never_zero(h, w, factor, ceil):
    pool = MaxPool(factor, ceil_mode=ceil)
    out = pool(torch.randn(1, 2, h, w))
    assert tuple(out.shape[2:]) == pool.output_size((h, w))
    assert min(out.shape[2:]) >= 1
    for before, after in zip((h, w), out.shape[2:]):
        if before < factor:
            assert after == before  # too short to pool: kept, not shrunk to 0


def test_conv_block_pooling_and_bias():
    block = ConvBlock(1, 8, pool=2)
    assert block(torch.randn(2, 1, 7, 1)).shape == (2, 8, 3, 1)
    assert block.conv.conv.bias is None  # BatchNorm's shift makes a conv bias redundant
    plain = ConvBlock(1, 8, dims=1, norm="none", activation="gelu")
    assert plain.conv.conv.bias is not None
    assert isinstance(plain.act, torch.nn.GELU)
    assert plain(torch.randn(2, 1, 9)).shape == (2, 8, 9)


@pytest.mark.parametrize("kwargs,match", [
    ({"norm": "layer"}, "norm must be one of 'batch', 'none'"),
    ({"activation": "rlu"}, "Did you mean 'relu'"),
    ({"pool": 0}, "pool must be a positive int"),
    ({"kernel_size": 0}, "kernel_size must be a positive int"),
    ({"dims": 3}, "dims must be 1"),
])
def test_conv_block_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        ConvBlock(1, 4, **kwargs)


def test_fit_to_size_crops_and_pads_at_the_end():
    x = torch.arange(12.0).view(1, 1, 3, 4)
    out = fit_to_size(x, (2, 6))
    assert out.shape == (1, 1, 2, 6)
    torch.testing.assert_close(out[..., :4], x[..., :2, :])
    assert out[..., 4:].abs().sum() == 0


@settings(max_examples=30, deadline=None)
@given(h=sides, w=sides, mode=st.sampled_from(["transpose", "interp"]))
def test_down_then_up_returns_the_exact_input_size(h, w, mode):
    down, up = Down(4, 8).eval(), Up(8, 4, 4, mode=mode).eval()
    x = torch.randn(1, 4, h, w)
    deep = down(x)
    assert tuple(deep.shape[2:]) == tuple(-(-s // 2) if s >= 2 else 1 for s in (h, w))
    assert up(deep, x).shape == (1, 4, h, w)


@pytest.mark.parametrize("mode", ["transpose", "interp"])
def test_upsample_reaches_any_target_in_1d(mode):
    up = Upsample(3, 5, dims=1, mode=mode, scale=4)
    for target in (1, 7, 20, 23):
        assert up(torch.randn(2, 3, 5), (target,)).shape == (2, 5, target)


def test_blocks_backpropagate_finite_gradients():
    down, up = Down(2, 4), Up(4, 2, 2)
    x = torch.randn(2, 2, 9, 7, requires_grad=True)
    up(down(x), x).square().mean().backward()
    grads = [p.grad for p in [*down.parameters(), *up.parameters()]] + [x.grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert x.grad.abs().sum() > 0
