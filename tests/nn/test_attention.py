"""Attention: shapes, the score functions' math, masks give exactly zero weight, prepare/attend, errors."""

import doctest
import importlib

import pytest
import torch

from gridseq.errors import ConfigError, ShapeError
from gridseq.nn import Attention, length_mask


pytestmark = pytest.mark.usefixtures("one_thread")

KINDS = ["bahdanau", "luong", "dot"]


def _problem(kind, batch=3, steps=6, hq=5, hm=7):
    hm = hq if kind == "dot" else hm
    attn = Attention(hq, hm, kind)
    memory = torch.randn(batch, steps, hm)
    lengths = torch.tensor([steps, 3, 1][:batch])
    return attn, memory, length_mask(lengths, steps), torch.randn(batch, hq)


@pytest.mark.parametrize("kind", KINDS)
def test_shapes_for_one_and_many_queries(kind):
    attn, memory, mask, query = _problem(kind)
    context, weights = attn(query, memory, mask)
    assert context.shape == (3, memory.shape[-1]) and weights.shape == (3, 6)
    queries = torch.randn(3, 4, attn.query_size)  # (B, U, Hq)
    context, weights = attn(queries, memory, mask)
    assert context.shape == (3, 4, memory.shape[-1]) and weights.shape == (3, 4, 6)


@pytest.mark.parametrize("kind", KINDS)
def test_padded_positions_get_exactly_zero_weight(kind):
    attn, memory, mask, query = _problem(kind)
    _, weights = attn(query, memory, mask)
    assert weights[~mask].eq(0).all(), "padded memory positions must get exactly 0 weight"
    torch.testing.assert_close(weights.sum(-1), torch.ones(3))
    assert weights[2, 0] == 1.0  # a single valid position takes all the weight


@pytest.mark.parametrize("kind", KINDS)
def test_padding_content_does_not_matter(kind):
    attn, memory, mask, query = _problem(kind)
    garbage = memory.clone()
    garbage[~mask] = 1e3 * torch.randn(int((~mask).sum()), memory.shape[-1])
    torch.testing.assert_close(attn(query, garbage, mask), attn(query, memory, mask))
    # and a sequence alone, trimmed to its own length, attends exactly as inside the padded batch
    ctx_alone, w_alone = attn(query[1:2], memory[1:2, :3])
    ctx, w = attn(query, memory, mask)
    torch.testing.assert_close(ctx[1:2], ctx_alone)
    torch.testing.assert_close(w[1:2, :3], w_alone)


@pytest.mark.parametrize("kind", KINDS)
def test_prepare_once_then_attend_equals_forward_and_batches_queries(kind):
    attn, memory, mask, _ = _problem(kind)
    prepared = attn.prepare(memory, mask)
    queries = torch.randn(3, 4, attn.query_size)
    ctx_all, w_all = attn.attend(queries, prepared)
    for u in range(4):
        ctx, w = attn(queries[:, u], memory, mask)
        torch.testing.assert_close(ctx_all[:, u], ctx)
        torch.testing.assert_close(w_all[:, u], w)


def test_score_functions_match_their_formulas():
    torch.manual_seed(1)
    q, m = torch.randn(2, 4), torch.randn(2, 5, 6)
    bahdanau = Attention(4, 6, "bahdanau", attention_size=3)
    hidden = torch.tanh(bahdanau.query_proj(q)[:, None] + bahdanau.memory_proj(m))  # (B, S, A)
    expected = torch.softmax(bahdanau.score(hidden).squeeze(-1), -1)
    torch.testing.assert_close(bahdanau(q, m)[1], expected)

    luong = Attention(4, 6, "luong")
    scores = torch.einsum("bh,bsh->bs", q, luong.memory_proj(m))  # q · (W m)
    torch.testing.assert_close(luong(q, m)[1], torch.softmax(scores, -1))

    dot = Attention(6, 6, "dot")
    q6 = torch.randn(2, 6)
    w = torch.softmax(torch.einsum("bh,bsh->bs", q6, m), -1)
    context, weights = dot(q6, m)
    torch.testing.assert_close(weights, w)
    torch.testing.assert_close(context, torch.einsum("bs,bsh->bh", w, m))
    assert list(dict(dot.named_parameters())) == []


def test_gradients_reach_query_memory_and_parameters():
    attn, memory, mask, query = _problem("bahdanau")
    memory.requires_grad_(True)
    query.requires_grad_(True)
    context, _ = attn(query, memory, mask)
    context.pow(2).sum().backward()
    assert query.grad.abs().sum() > 0 and all(p.grad is not None for p in attn.parameters())
    assert memory.grad[~mask].eq(0).all(), "no gradient flows into padded memory positions"


def test_select_repeats_rows_for_beams():
    attn, memory, mask, query = _problem("luong")
    rows = torch.arange(3).repeat_interleave(2)
    prepared = attn.prepare(memory, mask).select(rows)
    ctx, w = attn.attend(query[rows], prepared)
    ctx_ref, w_ref = attn(query, memory, mask)
    torch.testing.assert_close(ctx, ctx_ref[rows])
    torch.testing.assert_close(w, w_ref[rows])


def test_config_errors():
    with pytest.raises(ConfigError, match="kind must be one of .* Did you mean 'bahdanau'"):
        Attention(4, 4, "bahdanu")
    with pytest.raises(ConfigError, match="query_size must equal memory_size, got 4 and 6; use kind='luong'"):
        Attention(4, 6, "dot")
    with pytest.raises(ConfigError, match="attention_size .* needs kind='bahdanau'"):
        Attention(4, 6, "luong", attention_size=8)
    with pytest.raises(ConfigError, match="query_size must be a positive int, got 0"):
        Attention(0, 6)


def test_shape_errors_name_what_came_and_the_fix():
    attn, memory, mask, query = _problem("bahdanau")
    with pytest.raises(ShapeError, match=r"memory of shape \(B, S, 7\) with Hm=7"):
        attn(query, memory[..., :4], mask)
    with pytest.raises(ShapeError, match=r"expected memory of shape \(B, S, Hm\)"):
        attn(query, memory[0], mask)
    with pytest.raises(ShapeError, match="as bool .*length_mask"):
        attn(query, memory, mask.long())
    with pytest.raises(ShapeError, match=r"mask of shape \(B, S\) = \(3, 6\)"):
        attn(query, memory, mask.t())
    empty = mask.clone()
    empty[1] = False
    with pytest.raises(ShapeError, match="at least one True"):
        attn(query, memory, empty)
    with pytest.raises(ShapeError, match=r"expected query of shape \(B, Hq\) .* Hq=5"):
        attn(query[:, :3], memory, mask)
    with pytest.raises(ShapeError, match="B=3"):
        attn(query[:2], memory, mask)
    bad = memory.clone()
    bad[0, 0, 0] = float("nan")
    with pytest.raises(ShapeError, match="NaN"):
        attn(query, bad, mask)


def test_extra_repr():
    assert Attention(4, 6).extra_repr() == "4, 6, kind='bahdanau'"
    assert Attention(4, 6, attention_size=8).extra_repr() == "4, 6, kind='bahdanau', attention_size=8"


@pytest.mark.parametrize("module", ["gridseq.nn.attention", "gridseq.nn.decoder", "gridseq.models.seq2seq"])
def test_docstring_examples_run(module):
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
