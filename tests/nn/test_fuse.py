"""fold_batchnorm: BatchNorm folded into the convolution before it, for inference (the per-model check is
tests/models/test_all_models.py::test_batchnorm_folding_keeps_eval_outputs)."""

import pytest
import torch
from torch import nn

from gridseq.errors import ConfigError
from gridseq.nn import ConvBlock
from gridseq.nn.fuse import count_batchnorm, fold_batchnorm


def trained_like(module, shape):
    """Run a few training batches so the BatchNorms hold real running statistics, then eval()."""
    torch.manual_seed(0)
    for _ in range(3):
        module(torch.randn(8, *shape) * 3 + 1)
    return module.eval()


@pytest.mark.parametrize(("make", "shape"), [
    (lambda: ConvBlock(2, 5, pool=2), (2, 9, 7)),
    (lambda: ConvBlock(2, 5, 4, dims=1, padding="causal"), (2, 11)),
    (lambda: nn.Sequential(nn.Conv2d(2, 4, 3, padding=1, bias=True), nn.BatchNorm2d(4), nn.ReLU()), (2, 6, 6)),
    (lambda: nn.Sequential(nn.ConvTranspose2d(2, 4, 4, stride=2), nn.BatchNorm2d(4)), (2, 5, 5)),
])
def test_folded_outputs_match_and_the_batchnorm_is_gone(make, shape):
    module = trained_like(make(), shape)
    x = torch.randn(4, *shape)
    with torch.no_grad():
        folded = fold_batchnorm(module)
        torch.testing.assert_close(folded(x), module(x), rtol=1e-5, atol=1e-5)
    assert count_batchnorm(module) == 1 and count_batchnorm(folded) == 0


def test_the_original_is_unchanged_unless_inplace():
    block = ConvBlock(1, 3).eval()
    weight = block.conv.conv.weight.detach().clone()
    fold_batchnorm(block)
    assert isinstance(block.norm, nn.BatchNorm2d) and torch.equal(block.conv.conv.weight, weight)
    same = fold_batchnorm(block, inplace=True)
    assert same is block and isinstance(block.norm, nn.Identity)


def test_a_batchnorm_not_fed_by_a_convolution_is_kept():
    lead = nn.Sequential(nn.BatchNorm2d(2), nn.Conv2d(2, 3, 1))  # BatchNorm first: it normalises the input
    relu_between = nn.Sequential(nn.Conv2d(2, 3, 1), nn.ReLU(), nn.BatchNorm2d(3))
    for module in (lead, relu_between):
        assert count_batchnorm(fold_batchnorm(module.eval())) == 1


def test_a_block_without_batchnorm_is_left_alone():
    block = ConvBlock(1, 3, norm="none").eval()
    folded = fold_batchnorm(block)
    torch.testing.assert_close(folded(torch.ones(1, 1, 4, 4)), block(torch.ones(1, 1, 4, 4)))


def test_training_mode_is_refused():
    with pytest.raises(ConfigError, match=r"model\.eval\(\)"):
        fold_batchnorm(ConvBlock(1, 3))


# --- ConvStackProgram: the stack as functional calls on folded weights -----------------------------

STACKS = [
    (lambda: nn.Sequential(ConvBlock(2, 5, pool=2), ConvBlock(5, 6, pool=2)), (2, 9, 7)),
    (lambda: nn.Sequential(ConvBlock(2, 5, 4, dims=1, padding="causal"), ConvBlock(5, 3, 3, dims=1, pool=2)), (2, 11)),
    (lambda: nn.Sequential(ConvBlock(1, 4, 4, norm="none", activation="gelu", pool=3)), (1, 8, 2)),  # even kernel; a side < pool
]


@pytest.mark.parametrize(("make", "shape"), STACKS)
def test_conv_stack_program_matches_the_stack(make, shape):
    from gridseq.nn.fuse import ConvStackProgram

    stack = trained_like(make(), shape)
    program = ConvStackProgram(stack)
    x = torch.randn(3, *shape)
    with torch.no_grad():
        torch.testing.assert_close(program(x), stack(x), rtol=1e-5, atol=1e-5)


def test_conv_stack_program_follows_every_change_of_the_weights():
    from gridseq.nn.fuse import ConvStackProgram

    make, shape = STACKS[0]
    stack = trained_like(make(), shape)
    program = ConvStackProgram(stack)
    x = torch.randn(3, *shape)
    with torch.no_grad():
        program(x)
        stack[0].conv.conv.weight.add_(0.5)  # an optimizer step changes weights in place
        torch.testing.assert_close(program(x), stack(x), rtol=1e-5, atol=1e-5)
        stack.load_state_dict(trained_like(make(), shape).state_dict())  # copied in
        torch.testing.assert_close(program(x), stack(x), rtol=1e-5, atol=1e-5)
        stack[1].norm.running_var = torch.full_like(stack[1].norm.running_var, 4.0)  # a buffer replaced
        torch.testing.assert_close(program(x), stack(x), rtol=1e-5, atol=1e-5)
    stack.train()  # batch statistics: the modules themselves run (and update the running statistics)
    before = stack[0].norm.running_mean.clone()
    with torch.no_grad():
        y = program(x)
    assert not torch.equal(before, stack[0].norm.running_mean)
    stack.eval()
    with torch.no_grad():
        torch.testing.assert_close(program(x), stack(x), rtol=1e-5, atol=1e-5)
        assert y.shape == stack(x).shape
        stack.train()
        stack(x * 3)  # a training pass around the program (BatchNorm's kernel moves the statistics in place)
        stack.eval()
        torch.testing.assert_close(program(x), stack(x), rtol=1e-5, atol=1e-5)


def test_conv_stack_program_takes_only_conv_blocks():
    from gridseq.nn.fuse import ConvStackProgram

    with pytest.raises(ConfigError, match="nn.Sequential of ConvBlocks"):
        ConvStackProgram(nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2)))
