"""Seq2Seq ("seq2seq"): shapes, padding invariance (both Recurrent impls), teacher forcing, decoding,
gradients, a tiny reversal task learned exactly, config errors, save/load."""

import pytest
import torch
import torch.nn.functional as F

import gridseq
from gridseq import models
from gridseq.data.contract import DatasetInfo
from gridseq.data.vocab import BOS, EOS, PAD
from gridseq.errors import ConfigError, ShapeError
from gridseq.models.seq2seq import Seq2Seq

V_SRC, V_TGT = 11, 9


pytestmark = pytest.mark.usefixtures("one_thread")


def _model(**overrides):
    args = dict(vocab_size=V_SRC, num_classes=V_TGT, embedding_dim=8, hidden_size=12, mode="gru", max_length=8)
    return models.create("seq2seq", **{**args, **overrides})


def _batch(seed=0):
    """Source (3, 7) padded with 0 and lengths; target (3, 5): tokens, <eos>, padding."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([7, 4, 2])
    x = torch.randint(4, V_SRC, (3, 7), generator=g)
    x[1, 4:] = PAD
    x[2, 2:] = PAD
    y = torch.tensor([[4, 5, 6, 7, EOS], [8, EOS, 0, 0, 0], [5, 5, 4, EOS, 0]])
    return x, lengths, y


def test_registered_with_its_topology_and_data():
    entry = models.entry("seq2seq")
    assert entry.kinds == ("tokens",) and Seq2Seq.topology == "encoder-decoder"
    info = DatasetInfo(name="toy", kind="tokens", input_shape=(7,), num_classes=V_TGT,
                       class_names=tuple(map(str, range(V_TGT))), variable_length=True, vocab_size=V_SRC)
    model = models.create_for("seq2seq", info, hidden_size=8)
    assert (model.config.vocab_size, model.config.num_classes) == (V_SRC, V_TGT)
    assert model.config.bidirectional and model.config.attention == "bahdanau" and model.config.teacher_forcing == 1.0


@pytest.mark.parametrize("attention", ["bahdanau", "luong", "none"])
@pytest.mark.parametrize("mode", ["rnn", "lstm", "gru"])
def test_shapes(mode, attention):
    model = _model(mode=mode, attention=attention, num_layers=2).eval()
    x, lengths, y = _batch()
    assert model(x, lengths, target=y).shape == (3, 5, V_TGT)
    free = model(x, lengths)  # greedy, no target
    assert free.shape[0] == 3 and free.shape[1] <= 8 and free.shape[2] == V_TGT
    ids, attention_weights = model.generate(x, lengths, beam=3, return_attention=True)
    assert ids.dtype == torch.int64 and ids.shape[0] == 3 and ids.shape[1] <= 8
    if attention == "none":
        assert attention_weights is None
    else:
        assert attention_weights.shape == (3, ids.shape[1], 7)
        assert attention_weights[1, :, 4:].eq(0).all() and attention_weights[2, :, 2:].eq(0).all()


def test_dot_attention_with_a_unidirectional_encoder():
    model = _model(attention="dot", bidirectional=False).eval()
    x, lengths, y = _batch()
    assert model(x, lengths, target=y).shape == (3, 5, V_TGT)


# ---------------------------------------------------------------- padding invariance


@pytest.mark.parametrize("impl", ["fused", "reference"])
@pytest.mark.parametrize(
    "mode, attention, layers", [("lstm", "bahdanau", 2), ("gru", "luong", 1), ("rnn", "none", 2), ("lstm", "luong", 1)]
)
def test_a_sequence_does_not_depend_on_its_batch(mode, attention, layers, impl):
    """Logits, greedy ids and beam ids of a source are the same alone as batched with longer sources
    (with garbage where they are padded) — for both Recurrent implementations."""
    model = _model(mode=mode, attention=attention, num_layers=layers, impl=impl).eval()
    x, lengths, y = _batch()
    garbage = x.clone()
    garbage[1, 4:] = torch.randint(4, V_SRC, (3,))
    garbage[2, 2:] = torch.randint(4, V_SRC, (5,))
    with torch.no_grad():
        logits = model(garbage, lengths, target=y)
        free = model(garbage, lengths)  # the greedy decoding's logits
        greedy, attn = model.generate(garbage, lengths, return_attention=True)
        beam = model.generate(garbage, lengths, beam=3)
        for b in range(3):
            n, u = int(lengths[b]), int((y[b] != PAD).sum())
            alone_x, alone_len = x[b : b + 1, :n], lengths[b : b + 1]
            torch.testing.assert_close(logits[b, :u], model(alone_x, alone_len, target=y[b : b + 1, :u])[0],
                                       atol=1e-5, rtol=1e-4)
            for batched, alone in [(greedy, model.generate(alone_x, alone_len)), (beam, model.generate(alone_x, beam=3))]:
                k = alone.shape[1]
                assert batched[b, :k].tolist() == alone[0].tolist() and batched[b, k:].eq(PAD).all()
            alone_free = model(alone_x, alone_len)[0]
            torch.testing.assert_close(free[b, : len(alone_free)], alone_free, atol=1e-5, rtol=1e-4)
            assert free[b, len(alone_free):].eq(0).all()
            alone_ids, alone_attn = model.generate(alone_x, return_attention=True)
            if alone_attn is not None:
                k = alone_ids.shape[1]
                torch.testing.assert_close(attn[b, :k, :n], alone_attn[0], atol=1e-5, rtol=1e-4)


def test_fused_and_reference_models_agree():
    fused = _model(mode="lstm", num_layers=2, impl="fused").eval()
    reference = _model(mode="lstm", num_layers=2, impl="reference").eval()
    reference.load_state_dict(fused.state_dict())
    x, lengths, y = _batch()
    with torch.no_grad():
        torch.testing.assert_close(fused(x, lengths, target=y), reference(x, lengths, target=y), atol=1e-5, rtol=1e-4)
        assert torch.equal(fused.generate(x, lengths, beam=2), reference.generate(x, lengths, beam=2))


# ---------------------------------------------------------------- teacher forcing and decoding


def test_forward_feeds_bos_then_the_target_shifted_right():
    model = _model().eval()
    x, lengths, y = _batch()
    enc = model.encode(x, lengths)
    inputs = torch.cat([torch.full((3, 1), BOS), y[:, :-1]], 1)
    expected = model.decoder(inputs, enc.state, enc.memory, enc.mask)
    torch.testing.assert_close(model(x, lengths, target=y), expected)


def test_teacher_forcing_ratio_applies_in_training_only():
    model = _model(teacher_forcing=0.0)
    x, lengths, y = _batch()
    forced = _model()
    forced.load_state_dict(model.state_dict())
    model.eval(), forced.eval()
    torch.testing.assert_close(model(x, lengths, target=y), forced(x, lengths, target=y))  # eval: always forced
    model.train(), forced.train()
    assert not torch.allclose(model(x, lengths, target=y), forced(x, lengths, target=y))


def test_greedy_forward_matches_generate():
    model = _model().eval()
    x, lengths, _ = _batch()
    with torch.no_grad():
        logits = model(x, lengths)
        ids = model.generate(x, lengths)
    assert logits.shape[:2] == ids.shape
    masked = logits.clone()
    masked[..., [PAD, BOS]] = float("-inf")
    decided = ids != PAD
    assert torch.equal(masked.argmax(-1)[decided], ids[decided])
    assert logits[~decided].eq(0).all()


def test_generate_respects_max_length_and_beam_one_is_greedy():
    model = _model(attention="luong", mode="lstm").eval()
    x, lengths, _ = _batch()
    assert model.generate(x, lengths, max_length=2).shape[1] <= 2
    greedy = model.generate(x, lengths, max_length=6)
    beam1 = model.decoder.beam_search(*_decoder_args(model, x, lengths), beam=1, max_length=6).tokens
    assert torch.equal(greedy, beam1)
    with pytest.raises(ConfigError, match="beam must be a positive int, got 0"):
        model.generate(x, lengths, beam=0)


def _decoder_args(model, x, lengths):
    enc = model.encode(x, lengths)
    return enc.state, enc.memory, enc.mask


# ---------------------------------------------------------------- training


@pytest.mark.parametrize("attention", ["bahdanau", "none"])
def test_gradient_reaches_every_parameter_including_the_encoder(attention):
    model = _model(mode="lstm", attention=attention, num_layers=2)
    x, lengths, y = _batch()
    logits = model(x, lengths, target=y)
    F.cross_entropy(logits.reshape(-1, V_TGT), y.reshape(-1), ignore_index=PAD).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f"no gradient: {missing}"
    assert model.encoder.rnn.weight_ih_l0_reverse.grad.abs().sum() > 0


def _reversal_task(n=32, vocab=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(2, 7, (n,), generator=g)
    x = torch.zeros(n, int(lengths.max()), dtype=torch.long)
    y = torch.zeros(n, int(lengths.max()) + 1, dtype=torch.long)
    for i, k in enumerate(lengths.tolist()):
        seq = torch.randint(4, vocab, (k,), generator=g)
        x[i, :k], y[i, :k], y[i, k] = seq, seq.flip(0), EOS
    return x, lengths, y


@pytest.mark.parametrize("attention", ["bahdanau", "luong"])
def test_learns_to_reverse_sequences_exactly(attention):
    torch.manual_seed(0)
    x, lengths, y = _reversal_task()
    model = models.create("seq2seq", vocab_size=8, num_classes=8, embedding_dim=16, hidden_size=32, mode="gru",
                          attention=attention)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for step in range(150):
        model.train()
        loss = F.cross_entropy(model(x, lengths, target=y).reshape(-1, 8), y.reshape(-1), ignore_index=PAD)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 25 == 24:
            model.eval()
            ids = model.generate(x, lengths, max_length=y.shape[1])
            exact = (F.pad(ids, (0, y.shape[1] - ids.shape[1])) == y).all(1).float().mean()
            if exact == 1.0:
                break
    assert exact == 1.0, f"exact match {float(exact):.2f} after {step + 1} steps (loss {float(loss):.3f})"
    beam = model.generate(x, lengths, beam=3, max_length=y.shape[1])
    assert torch.equal(beam, ids)
    for i in range(4):  # a trained model's varied outputs, each the same alone as in the batch
        alone = x[i : i + 1, : int(lengths[i])]
        for batched, k in [(ids, 1), (beam, 3)]:
            out = model.generate(alone, beam=k, max_length=y.shape[1])[0]
            assert out.tolist() == batched[i, : len(out)].tolist() and batched[i, len(out):].eq(PAD).all()


# ---------------------------------------------------------------- config, errors, save/load


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"num_classes": 3}, r"num_classes is the target vocabulary size, .* must be an int >= 4, got 3"),
        ({"vocab_size": 1}, "vocab_size must be an int >= 2, got 1"),
        ({"attention": "bahdanu"}, "attention must be one of .* Did you mean 'bahdanau'"),
        ({"attention": "dot"}, r"attention='dot' .* use bidirectional=False or attention='luong'"),
        ({"teacher_forcing": 1.5}, r"teacher_forcing must be a number in \[0, 1\] .* got 1.5"),
        ({"teacher_forcing": True}, r"teacher_forcing must be a number in \[0, 1\]"),
        ({"max_length": 0}, "max_length must be a positive int, got 0"),
        ({"mode": "transformer"}, "mode must be one of 'rnn', 'lstm', 'gru'"),
        ({"bidirectional": "yes"}, "bidirectional must be True or False"),
        ({"dropout": 1.0}, r"dropout must be a number in \[0, 1\)"),
        ({"impl": "fast"}, "impl must be one of"),
        ({"hidden": 8}, "unknown argument 'hidden' for model 'seq2seq'. Did you mean 'hidden_size'"),
    ],
)
def test_config_errors_are_config_errors(overrides, message):
    with pytest.raises(ConfigError, match=message):
        _model(**overrides)


def test_input_errors_are_shape_errors():
    model = _model().eval()
    x, lengths, y = _batch()
    with pytest.raises(ShapeError, match="target holds 2 sequences but x holds B=3"):
        model(x, lengths, target=y[:2])
    with pytest.raises(ShapeError, match=r"token ids must lie in \[0, vocab_size=9\)"):
        model(x, lengths, target=y + V_TGT)
    with pytest.raises(ShapeError, match="looks like \\(time, batch"):
        model(x.t(), lengths)
    with pytest.raises(ShapeError, match="int64 token ids"):
        model.generate(x.float(), lengths)


def test_save_load_round_trip(tmp_path):
    model = _model(mode="lstm", num_layers=2, attention="luong", dropout=0.1, teacher_forcing=0.8)
    gridseq.save(model, tmp_path)
    loaded = gridseq.load(tmp_path)
    assert isinstance(loaded, Seq2Seq) and loaded.config == model.config and not loaded.training
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key
    model.eval()
    x, lengths, y = _batch()
    assert torch.equal(model(x, lengths, target=y), loaded(x, lengths, target=y))
    assert torch.equal(model.generate(x, lengths, beam=2), loaded.generate(x, lengths, beam=2))
