"""RNNModel ("rnn", "lstm", "gru"): the issue example, padding invariance, pooling, per-step, tokens, config."""

import warnings

import pytest
import torch

from gridseq import models
from gridseq.data.contract import DatasetInfo
from gridseq.errors import ConfigError, ShapeError
from gridseq.models.rnn import RNNModel
from gridseq.nn.sequence import masked_max, masked_mean


def test_issue_example_bidirectional_lstm_with_lengths():
    model = models.create("lstm", input_size=12, hidden_size=32, num_classes=9, bidirectional=True)
    logits = model(torch.randn(5, 20, 12), torch.tensor([20, 3, 11, 1, 7]))
    assert logits.shape == (5, 9)
    assert model.encoder.mode == "lstm" and model.topology == "many-to-one"


@pytest.mark.parametrize("name", ["rnn", "lstm", "gru"])
def test_registered_names_pick_the_cell(name):
    model = models.create(name, input_size=3, num_classes=2, hidden_size=4)
    assert model.config.mode == name and model.encoder.mode == name
    assert type(model.encoder.rnn).__name__ == {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}[name]


@pytest.mark.parametrize("pooling", ["last", "mean", "max"])
@pytest.mark.parametrize("name, bidirectional", [("rnn", False), ("lstm", True), ("gru", True)])
def test_padding_invariance(name, bidirectional, pooling):
    model = models.create(name, input_size=4, num_classes=3, hidden_size=8, num_layers=2,
                          bidirectional=bidirectional, pooling=pooling).eval()
    seq = torch.randn(1, 5, 4)
    alone = model(seq)
    batch = torch.randn(3, 9, 4) * 5  # garbage in the padding must not matter
    batch[1, :5] = seq[0]
    padded = model(batch, torch.tensor([9, 5, 2]))
    torch.testing.assert_close(padded[1:2], alone, atol=1e-5, rtol=1e-5)


def test_pooling_modes_summarise_valid_steps():
    x, lengths = torch.randn(3, 6, 4), torch.tensor([6, 2, 4])
    model = models.create("gru", input_size=4, num_classes=2, hidden_size=5, bidirectional=True).eval()
    out, h_n = model.encoder(x, lengths)
    torch.testing.assert_close(model.forward_features(x, lengths), torch.cat([h_n[-2], h_n[-1]], -1))
    for pooling, pool in [("mean", masked_mean), ("max", masked_max)]:
        pooled = RNNModel(RNNModel.Config(**{**model.config.__dict__, "pooling": pooling}))
        pooled.load_state_dict(model.state_dict())
        torch.testing.assert_close(pooled(x, lengths), model.head(pool(out, lengths)))


def test_per_step_gives_logits_for_every_valid_step():
    model = models.create("lstm", input_size=4, num_classes=6, hidden_size=5, bidirectional=True, per_step=True)
    assert model.topology == "many-to-many" and RNNModel.topology == "many-to-one"
    x, lengths = torch.randn(3, 7, 4), torch.tensor([7, 3, 5])
    logits = model(x, lengths)
    assert logits.shape == (3, 7, 6)
    assert logits[1, 3:].eq(0).all() and logits[2, 5:].eq(0).all()
    out, _ = model.encoder(x, lengths)
    torch.testing.assert_close(logits[0], model.head(out[0]))
    # the valid steps of a sequence do not depend on the batch it came in
    torch.testing.assert_close(model(x[1:2, :3]), logits[1:2, :3], atol=1e-5, rtol=1e-5)


def test_token_ids_with_padding_index_zero():
    model = models.create("gru", vocab_size=30, embedding_dim=8, num_classes=4, hidden_size=6).eval()
    assert model.embedding.padding_idx == 0 and model.embedding.weight[0].eq(0).all()
    ids = torch.tensor([[5, 9, 2, 0, 0], [1, 2, 3, 4, 29]])
    logits = model(ids, torch.tensor([3, 5]))
    assert logits.shape == (2, 4)
    torch.testing.assert_close(logits[:1], model(ids[:1, :3]), atol=1e-5, rtol=1e-5)
    with pytest.raises(ShapeError, match="token ids must lie in"):
        model(torch.tensor([[3, 30]]))
    with pytest.raises(ShapeError, match="int64 token ids"):
        model(torch.randn(2, 5))


def test_float_input_is_checked():
    model = models.create("lstm", input_size=6, num_classes=2, hidden_size=4)
    with pytest.raises(ShapeError, match="transpose"):
        model(torch.randn(3, 6, 10))  # (B, F, T)
    with pytest.raises(ShapeError, match="batch dimension is missing"):
        model(torch.randn(10, 6))


@pytest.mark.parametrize("kwargs, match", [
    (dict(num_classes=2), "exactly one of input_size"),
    (dict(num_classes=2, input_size=3, vocab_size=10), "exactly one of input_size"),
    (dict(num_classes=2, input_size=3, pooling="attention"), "pooling must be one of"),
    (dict(num_classes=2, input_size=3, mode="lstn"), "Did you mean 'lstm'"),
    (dict(num_classes=2, input_size=3, nonlinearity="relu"), "mode='rnn'"),
    (dict(num_classes=0, input_size=3), "num_classes must be a positive int"),
    (dict(num_classes=2, input_size=3, dropout=1.0), "dropout must be a number in"),
    (dict(num_classes=2, input_size=3, bidirectional="yes"), "bidirectional must be True or False"),
])
def test_config_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        RNNModel.Config(**kwargs)


def test_config_round_trips_and_builds_through_registry():
    model = models.create("rnn", input_size=3, num_classes=2, nonlinearity="relu", hidden_size=4)
    assert model.encoder.nonlinearity == "relu"
    rebuilt = models.create("rnn", **{k: v for k, v in model.config.__dict__.items()})
    assert rebuilt.config == model.config


def test_dropout_with_one_layer_warns_and_stacked_does_not():
    with pytest.warns(UserWarning, match="dropout=0.3 and num_layers=1"):
        models.create("lstm", input_size=3, num_classes=2, dropout=0.3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        models.create("lstm", input_size=3, num_classes=2, dropout=0.3, num_layers=2)


@pytest.mark.parametrize("impl", ["fused", "reference"])
def test_backward_reaches_every_parameter(impl):
    model = models.create("lstm", vocab_size=20, num_classes=3, hidden_size=6, num_layers=2,
                          bidirectional=True, impl=impl)
    ids = torch.randint(1, 20, (4, 7))
    loss = torch.nn.functional.cross_entropy(model(ids, torch.tensor([7, 4, 2, 5])), torch.tensor([0, 1, 2, 0]))
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_implementations_share_weights_and_agree():
    fused = models.create("gru", input_size=4, num_classes=3, hidden_size=5, num_layers=2, impl="fused")
    reference = models.create("gru", input_size=4, num_classes=3, hidden_size=5, num_layers=2, impl="reference")
    reference.load_state_dict(fused.state_dict())
    x, lengths = torch.randn(3, 6, 4), torch.tensor([6, 1, 4])
    torch.testing.assert_close(fused(x, lengths), reference(x, lengths), atol=1e-5, rtol=1e-5)


def test_create_for_dataset_info():
    series = DatasetInfo("gunpoint", "series", (150, 1), 2, ("a", "b"))
    model = models.create_for("gru", series, hidden_size=8)
    assert model.config.input_size == 1 and model.config.num_classes == 2
    tokens = DatasetInfo("surnames", "tokens", (20,), 18, tuple("abcdefghijklmnopqr"), True, vocab_size=60)
    model = models.create_for("lstm", tokens)
    assert model.config.vocab_size == 60 and model.config.input_size is None and model.config.num_classes == 18
    assert "tokens" in models.entry("rnn").kinds and "image" not in models.entry("rnn").kinds
