"""The reference path's hand-written recurrence (`gridseq.nn._recurrence`) against the per-step loop that
autograd differentiates: same outputs, states and gradients, padded or not, in both directions."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gridseq.nn.recurrent import Recurrent

MODES = ["rnn", "lstm", "gru"]


def _parts(state):
    return state if isinstance(state, tuple) else (state,)


def _per_step(layer):
    """Make `layer` take the per-step loop (any `_step` other than its own cell step does)."""
    cell = layer._cell_step
    layer._step = lambda *args, **kwargs: cell(*args, **kwargs)


def _values_and_grads(layer, x, lengths, state, seed):
    """Outputs, final state and the gradients of a random linear function of both (padded outputs included)."""
    out, final = layer(x, lengths, state)
    gen = torch.Generator().manual_seed(seed)
    weights = [torch.randn(t.shape, generator=gen, dtype=t.dtype) for t in (out, *_parts(final))]
    loss = sum((t * w).sum() for t, w in zip((out, *_parts(final)), weights))
    inputs = [x, *(s for s in _parts(state) if s is not None), *layer.parameters()]
    return (out, *_parts(final)), torch.autograd.grad(loss, inputs)


@settings(max_examples=40, deadline=None)
@given(mode=st.sampled_from(MODES), layers=st.integers(1, 2), bi=st.booleans(), batch=st.integers(1, 4),
       time=st.integers(1, 6), hidden=st.integers(1, 5), padded=st.booleans(), with_state=st.booleans(),
       relu=st.booleans(), seed=st.integers(0, 2**16))
def test_hand_written_backward_matches_autograd_through_the_steps(mode, layers, bi, batch, time, hidden, padded,
                                                                   with_state, relu, seed):
    gen = torch.Generator().manual_seed(seed)
    layer = Recurrent(mode, 3, hidden, num_layers=layers, bidirectional=bi, impl="reference",
                      nonlinearity="relu" if mode == "rnn" and relu else "tanh").double()
    x = torch.randn(batch, time, 3, generator=gen, dtype=torch.double, requires_grad=True)
    lengths = torch.randint(1, time + 1, (batch,), generator=gen) if padded else None
    state = None
    if with_state:
        shape = (layers * layer.num_directions, batch, hidden)
        parts = tuple(torch.randn(shape, generator=gen, dtype=torch.double, requires_grad=True)
                      for _ in range(2 if mode == "lstm" else 1))
        state = parts if mode == "lstm" else parts[0]
    fast_values, fast_grads = _values_and_grads(layer, x, lengths, state, seed)
    _per_step(layer)
    slow_values, slow_grads = _values_and_grads(layer, x, lengths, state, seed)
    for a, b in zip(fast_values, slow_values):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-10)
    for a, b in zip(fast_grads, slow_grads):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-10)
    if lengths is not None:  # exactly zero past each sequence's end
        for b, n in enumerate(lengths.tolist()):
            assert fast_values[0][b, n:].eq(0).all()


@pytest.mark.parametrize("mode", MODES)
def test_gradcheck_on_a_padded_bidirectional_batch(mode):
    torch.manual_seed(0)
    layer = Recurrent(mode, 3, 4, bidirectional=True, impl="reference").double()
    x = torch.randn(3, 5, 3, dtype=torch.double, requires_grad=True)
    h0 = torch.randn(2, 3, 4, dtype=torch.double, requires_grad=True)
    lengths = torch.tensor([5, 2, 4])

    def f(x, h0):
        out, final = layer(x, lengths, (h0, h0.flip(1)) if mode == "lstm" else h0)
        return (out, *_parts(final))

    assert torch.autograd.gradcheck(f, (x, h0))


def test_a_replaced_step_sees_every_step_and_autocast_takes_the_per_step_loop():
    layer = Recurrent("gru", 3, 4, impl="reference")
    x = torch.randn(2, 6, 3)
    calls = []
    cell = layer._cell_step

    def recording(*args, **kwargs):
        calls.append(1)
        return cell(*args, **kwargs)

    layer._step = recording
    layer(x)
    assert len(calls) == 6  # a probe replacing `_step` is called at every step, not bypassed
    with torch.autocast("cpu", dtype=torch.bfloat16):
        expected, _ = layer(x)
        layer._step = cell
        out, _ = layer(x)  # bf16 projections, fp32 weights: the per-step loop, whose ops autocast handles
    assert torch.equal(out, expected)


def test_inference_without_grad_matches_and_keeps_no_graph():
    layer = Recurrent("lstm", 3, 4, num_layers=2, impl="reference")
    x = torch.randn(2, 5, 3)
    with torch.no_grad():
        out, (h, c) = layer(x, torch.tensor([5, 3]))
    assert out.grad_fn is None and h.grad_fn is None and c.grad_fn is None
    layer.impl = "fused"
    with torch.no_grad():
        expected, _ = layer(x, torch.tensor([5, 3]))
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
