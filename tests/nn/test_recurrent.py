"""Recurrent: fused and reference paths agree, padding never leaks, streaming, tracing, errors."""

import doctest
import importlib

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from gridseq.errors import ConfigError, ShapeError
from gridseq.nn.recurrent import Recurrent
from gridseq.nn.sequence import final_features, last_valid, masked_max, masked_mean

MODES = ["rnn", "lstm", "gru"]


def _parts(state):
    return state if isinstance(state, tuple) else (state,)


def _close(a, b, atol=1e-5):
    torch.testing.assert_close(a, b, atol=atol, rtol=1e-5)


def _run(layer, impl, *args, **kwargs):
    layer.impl = impl
    return layer(*args, **kwargs)


@st.composite
def problems(draw):
    """A small layer configuration and a padded batch with random lengths (and maybe an initial state)."""
    mode = draw(st.sampled_from(MODES))
    layers = draw(st.integers(1, 2))
    bidirectional = draw(st.booleans())
    batch, time = draw(st.integers(1, 4)), draw(st.integers(1, 6))
    features, hidden = draw(st.integers(1, 4)), draw(st.integers(1, 5))
    lengths = draw(st.one_of(st.none(), st.lists(st.integers(1, time), min_size=batch, max_size=batch)))
    seed = draw(st.integers(0, 2**16))
    with_state = draw(st.booleans())
    return mode, layers, bidirectional, batch, time, features, hidden, lengths, seed, with_state


@settings(max_examples=40, deadline=None)
@given(problems())
def test_fused_and_reference_agree_on_outputs_and_states(problem):
    mode, layers, bi, batch, time, features, hidden, lengths, seed, with_state = problem
    gen = torch.Generator().manual_seed(seed)
    layer = Recurrent(mode, features, hidden, num_layers=layers, bidirectional=bi,
                      nonlinearity="relu" if mode == "rnn" and seed % 2 else "tanh")
    x = torch.randn(batch, time, features, generator=gen)
    lengths = None if lengths is None else torch.tensor(lengths)
    state = None
    if with_state:
        shape = (layers * (2 if bi else 1), batch, hidden)
        parts = tuple(torch.randn(shape, generator=gen) for _ in range(2 if mode == "lstm" else 1))
        state = parts if mode == "lstm" else parts[0]
    out_f, state_f = _run(layer, "fused", x, lengths, state)
    out_r, state_r = _run(layer, "reference", x, lengths, state)
    assert out_f.shape == out_r.shape == (batch, time, layer.output_size)
    _close(out_f, out_r)
    assert len(_parts(state_f)) == len(_parts(state_r))
    for a, b in zip(_parts(state_f), _parts(state_r)):
        assert a.shape == (layers * layer.num_directions, batch, hidden)
        _close(a, b)
    if lengths is not None:  # exactly zero past each sequence's end, on both paths
        for b, n in enumerate(lengths.tolist()):
            assert out_f[b, n:].eq(0).all() and out_r[b, n:].eq(0).all()


@pytest.mark.parametrize("impl", ["fused", "reference"])
@pytest.mark.parametrize("mode", MODES)
def test_each_padded_row_equals_running_that_sequence_alone(mode, impl):
    layer = Recurrent(mode, 3, 4, num_layers=2, bidirectional=True, impl=impl)
    lengths = torch.tensor([2, 7, 4])
    x = torch.randn(3, 7, 3)
    out, state = layer(x, lengths)
    for b, n in enumerate(lengths.tolist()):
        alone_out, alone_state = layer(x[b : b + 1, :n])
        _close(out[b : b + 1, :n], alone_out)
        for full, alone in zip(_parts(state), _parts(alone_state)):
            _close(full[:, b : b + 1], alone)  # the state at the sequence's own last step, both directions


@pytest.mark.parametrize("impl", ["fused", "reference"])
@pytest.mark.parametrize("mode", MODES)
def test_passing_the_state_back_continues_the_sequence(mode, impl):
    layer = Recurrent(mode, 3, 5, num_layers=2, impl=impl)
    x = torch.randn(2, 9, 3)
    whole_out, whole_state = layer(x)
    state, chunks = None, []
    for piece in x.split(4, dim=1):  # 4 + 4 + 1 steps
        out, state = layer(piece, state=state)
        chunks.append(out)
    _close(torch.cat(chunks, dim=1), whole_out)
    for a, b in zip(_parts(state), _parts(whole_state)):
        _close(a, b)


def test_streaming_with_lengths_in_the_last_chunk():
    layer = Recurrent("gru", 2, 3)
    x = torch.randn(2, 6, 2)
    lengths = torch.tensor([6, 4])
    _, whole = layer(x, lengths)
    _, state = layer(x[:, :3])
    _, state = layer(x[:, 3:], lengths - 3, state)
    _close(state, whole)


@pytest.mark.parametrize("mode", MODES)
def test_state_dict_loads_across_implementations_and_into_torch(mode):
    fused = Recurrent(mode, 4, 6, num_layers=2, bidirectional=True, impl="fused")
    reference = Recurrent(mode, 4, 6, num_layers=2, bidirectional=True, impl="reference")
    reference.load_state_dict(fused.state_dict())
    x = torch.randn(3, 5, 4)
    _close(fused(x)[0], reference(x)[0])
    plain = getattr(nn, {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}[mode])(4, 6, 2, batch_first=True, bidirectional=True)
    plain.load_state_dict({k.removeprefix("rnn."): v for k, v in reference.state_dict().items()})
    _close(plain(x)[0], reference(x)[0])
    assert "rnn.weight_hh_l1_reverse" in fused.state_dict()


def test_gradients_agree_between_implementations():
    layer = Recurrent("lstm", 3, 4, num_layers=2, bidirectional=True)
    x = torch.randn(3, 5, 3)
    lengths = torch.tensor([5, 2, 3])
    grads = {}
    for impl in ("fused", "reference"):
        layer.zero_grad()
        out, (h, c) = _run(layer, impl, x, lengths)
        (out.square().sum() + h.sum() + c.sum()).backward()
        grads[impl] = {k: p.grad.clone() for k, p in layer.named_parameters()}
    for k in grads["fused"]:
        _close(grads["fused"][k], grads["reference"][k], atol=1e-4)


@pytest.mark.parametrize("mode, names", [("lstm", "c f g h i o"), ("gru", "h n r z"), ("rnn", "h pre")])
def test_trace_names_shapes_and_consistency_with_forward(mode, names):
    layer = Recurrent(mode, 3, 4, num_layers=2, bidirectional=True)
    x, lengths = torch.randn(3, 6, 3), torch.tensor([6, 2, 4])
    trace = layer.trace(x, lengths)
    assert sorted(trace) == ["layer0/backward", "layer0/forward", "layer1/backward", "layer1/forward"]
    for per_direction in trace.values():
        assert sorted(per_direction) == names.split()
        for value in per_direction.values():
            assert value.shape == (3, 6, 4)
            assert value[1, 2:].eq(0).all()  # padded steps are zero
    out, state = layer(x, lengths)  # the fused path
    _close(torch.cat([trace["layer1/forward"]["h"], trace["layer1/backward"]["h"]], -1), out)
    h_n = _parts(state)[0]
    _close(last_valid(trace["layer0/forward"]["h"], lengths), h_n[0])
    _close(trace["layer0/backward"]["h"][:, 0], h_n[1])
    if mode == "lstm":
        _close(last_valid(trace["layer1/forward"]["c"], lengths), state[1][2])
    if mode == "rnn":
        _close(torch.tanh(trace["layer0/forward"]["pre"][0, :]), trace["layer0/forward"]["h"][0, :])


def test_final_features_and_last_valid_on_bidirectional_padded_batch():
    layer = Recurrent("gru", 3, 4, bidirectional=True)
    x, lengths = torch.randn(4, 7, 3), torch.tensor([7, 1, 3, 5])
    out, h_n = layer(x, lengths)
    _close(final_features(out, lengths, num_directions=2), torch.cat([h_n[-2], h_n[-1]], dim=-1))
    _close(last_valid(out, lengths)[:, :4], h_n[-2])
    # the naive read is wrong for every padded row
    assert not torch.allclose(out[1, -1, :4], h_n[-2][1])


def test_masked_pooling_reads_valid_steps_only():
    out = torch.randn(3, 5, 2) - 10  # all negative: zero padding would win a naive max
    lengths = torch.tensor([5, 2, 3])
    for b, n in enumerate(lengths.tolist()):
        _close(masked_mean(out, lengths)[b], out[b, :n].mean(0))
        _close(masked_max(out, lengths)[b], out[b, :n].amax(0))
    _close(masked_mean(out), out.mean(1))


def test_dropout_between_layers_in_training_only():
    layer = Recurrent("lstm", 3, 8, num_layers=2, dropout=0.5)
    x = torch.randn(2, 4, 3)
    for impl in ("fused", "reference"):
        layer.impl = impl
        layer.train()
        assert not torch.allclose(layer(x)[0], layer(x)[0])
        layer.eval()
        _close(layer(x)[0], layer(x)[0])
    with pytest.warns(UserWarning, match="num_layers greater than 1"):
        Recurrent("gru", 3, 8, dropout=0.2)


def test_wrong_input_layout_raises_shape_error():
    layer = Recurrent("lstm", 8, 4)
    with pytest.raises(ShapeError, match=r"expected x of shape \(B, T, 8\)"):
        layer(torch.randn(2, 5, 6))
    with pytest.raises(ShapeError, match="transpose"):
        layer(torch.randn(2, 8, 5))  # (B, F, T)
    with pytest.raises(ShapeError, match="lengths must be <= T=5"):
        layer(torch.randn(2, 5, 8), torch.tensor([6, 2]))


def test_wrong_state_raises_shape_error_naming_the_layout():
    layer = Recurrent("lstm", 3, 4, num_layers=2)
    x = torch.randn(5, 6, 3)
    with pytest.raises(ShapeError, match=r"pair \(h, c\)"):
        layer(x, state=torch.zeros(2, 5, 4))
    with pytest.raises(ShapeError, match=r"expected state c of shape \(L\*D, B, H\) = \(2, 5, 4\).*batch first"):
        layer(x, state=(torch.zeros(2, 5, 4), torch.zeros(5, 2, 4)))
    gru = Recurrent("gru", 3, 4)
    with pytest.raises(ShapeError, match="one tensor h"):
        gru(x, state=(torch.zeros(1, 5, 4),))
    with pytest.raises(ShapeError, match=r"= \(1, 5, 4\).*got \(1, 4, 4\)"):
        gru(x, state=torch.zeros(1, 4, 4))


def test_bad_configuration_raises_config_error():
    with pytest.raises(ConfigError, match="Did you mean 'lstm'"):
        Recurrent("lstn", 3, 4)
    with pytest.raises(ConfigError, match="mode='rnn'"):
        Recurrent("gru", 3, 4, nonlinearity="relu")
    with pytest.raises(ConfigError, match="impl must be one of"):
        Recurrent("gru", 3, 4, impl="cudnn")
    layer = Recurrent("gru", 3, 4)
    with pytest.raises(ConfigError, match="impl must be one of"):
        layer.impl = "fast"


def test_extra_repr_lists_non_defaults():
    assert Recurrent("gru", 3, 4).extra_repr() == "'gru', 3, 4"
    r = Recurrent("rnn", 3, 4, num_layers=2, bidirectional=True, dropout=0.1, impl="reference", nonlinearity="relu")
    assert r.extra_repr() == "'rnn', 3, 4, num_layers=2, bidirectional=True, dropout=0.1, impl='reference', nonlinearity='relu'"


@pytest.mark.parametrize("module", ["gridseq.nn.cells", "gridseq.nn.recurrent", "gridseq.nn.sequence", "gridseq.models.rnn"])
def test_docstring_examples_run(module):
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
