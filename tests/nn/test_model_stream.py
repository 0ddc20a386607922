"""Streaming (gridseq.nn.stream): a stream's output after t steps equals the full forward pass on the
first t steps — for plain recurrent layers, rnn/lstm/gru models (floats and tokens, every pooling,
per-step) — and bidirectional models refuse to stream."""

import pytest
import torch

from gridseq import models
from gridseq.errors import ConfigError, ShapeError
from gridseq.nn.recurrent import Recurrent
from gridseq.nn.stream import PooledStream, RecurrentStream, RunningPool, Stream

pytestmark = pytest.mark.usefixtures("one_thread")
T = 6


@pytest.mark.parametrize("mode", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("impl", ["fused", "reference"])
def test_recurrent_stream_equals_the_full_pass(mode, impl):
    layer = Recurrent(mode, input_size=3, hidden_size=5, num_layers=2, impl=impl).eval()
    x = torch.randn(2, T, 3)
    stream = RecurrentStream(layer, batch_size=2)
    out, state = layer(x)
    torch.testing.assert_close(stream.run(x), out, atol=1e-5, rtol=1e-5)
    assert stream.steps == T
    for carried, final in zip(stream.state if mode == "lstm" else (stream.state,), state if mode == "lstm" else (state,)):
        torch.testing.assert_close(carried, final, atol=1e-5, rtol=1e-5)  # (L, B, H) per layer, as the layer returns it


@pytest.mark.parametrize("name", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("variant", [{"pooling": "last"}, {"pooling": "mean"}, {"pooling": "max"}, {"per_step": True}])
@pytest.mark.parametrize("data", ["floats", "tokens"])
def test_rnn_model_stream_matches_forward_at_every_step(name, variant, data):
    size = {"input_size": 4} if data == "floats" else {"vocab_size": 11}
    model = models.create(name, num_classes=3, hidden_size=8, num_layers=2, **size, **variant).eval()
    x = torch.randn(2, T, 4) if data == "floats" else torch.randint(1, 11, (2, T))
    stream = model.stream(batch_size=2)
    with torch.no_grad():
        full = model(x)
        for t in range(T):
            y = stream.step(x[:, t])
            expected = full[:, t] if variant.get("per_step") else model(x[:, : t + 1])
            torch.testing.assert_close(y, expected, atol=1e-5, rtol=1e-5)


def test_reset_starts_new_sequences():
    model = models.create("lstm", input_size=4, num_classes=3, hidden_size=8).eval()
    a, b = torch.randn(1, T, 4), torch.randn(1, T, 4)
    stream = model.stream()
    stream.run(a)
    stream.reset()
    assert stream.steps == 0
    torch.testing.assert_close(stream.run(b)[:, -1], model(b), atol=1e-5, rtol=1e-5)


def test_stream_runs_without_autograd():
    model = models.create("gru", input_size=4, num_classes=3, hidden_size=8).eval()
    assert not model.stream().step(torch.randn(1, 4)).requires_grad


@pytest.mark.parametrize("name", ["rnn", "lstm", "gru"])
def test_bidirectional_models_refuse_to_stream(name):
    model = models.create(name, input_size=4, num_classes=3, bidirectional=True)
    with pytest.raises(ConfigError, match="bidirectional.*cannot stream"):
        model.stream()


def test_step_checks_the_batch_size_and_layout():
    model = models.create("gru", input_size=4, num_classes=3, hidden_size=8).eval()
    stream = model.stream(batch_size=2)
    with pytest.raises(ShapeError, match=r"one step of 2 sequence\(s\).*got \(3, 4\)"):
        stream.step(torch.randn(3, 4))
    with pytest.raises(ShapeError):  # a whole sequence instead of one step
        stream.step(torch.randn(2, T, 4))
    with pytest.raises(ConfigError, match="batch_size must be a positive int"):
        model.stream(batch_size=0)


def test_running_pool_matches_masked_pooling():
    v = torch.randn(2, 5, 3)
    for pooling, reduce in [("mean", lambda z: z.mean(1)), ("max", lambda z: z.amax(1)), ("last", lambda z: z[:, -1])]:
        pool = RunningPool(pooling)
        for t in range(5):
            out = pool.update(v[:, t])
            torch.testing.assert_close(out, reduce(v[:, : t + 1]))


def test_pooled_stream_averages_a_stateless_map():
    linear = torch.nn.Linear(3, 2)
    x = torch.randn(4, 5, 3)
    stream = PooledStream(linear, batch_size=4, pooling="mean")
    with torch.no_grad():
        torch.testing.assert_close(stream.run(x)[:, -1], linear(x).mean(1))


def test_a_subclass_needs_only_step_and_reset():
    class Counter(Stream):
        def _step(self, x_t):
            self.total = getattr(self, "total", 0) + x_t
            return self.total

        def _reset(self):
            self.total = 0

    s = Counter(batch_size=1)
    s.step(torch.ones(1))
    assert s.step(torch.ones(1)).item() == 2 and s.steps == 2
    s.reset()
    assert s.step(torch.ones(1)).item() == 1
