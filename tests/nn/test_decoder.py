"""Decoder: teacher forcing (fused and step paths agree), scheduled sampling, greedy, beam search
(beam=1 is greedy, beam beats greedy on a constructed bigram table, exhaustive search on a tiny
vocabulary, per-item independence, length limits), StateBridge, errors."""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from gridseq.data.vocab import BOS, EOS, PAD
from gridseq.errors import ConfigError, ShapeError
from gridseq.nn import Decoder, StateBridge, length_mask
from gridseq.nn.decoder import select_state


pytestmark = pytest.mark.usefixtures("one_thread")

STYLES = ["bahdanau", "luong", "dot", None]


def _decoder(attention="bahdanau", mode="gru", layers=1, vocab=9, impl="auto"):
    hidden = 6
    memory_size = None if attention is None else (hidden if attention == "dot" else 5)
    return Decoder(vocab, 4, hidden, layers, mode, attention=attention, memory_size=memory_size, impl=impl).eval()


def _condition(dec, batch=3, steps=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(dec.num_layers, batch, dec.hidden_size, generator=g)
    state = (h, torch.randn(h.shape, generator=g)) if dec.mode == "lstm" else h
    if dec.attention is None:
        return state, None, None
    memory = torch.randn(batch, steps, dec.memory_size, generator=g)
    mask = length_mask(torch.tensor([steps, 2, 4][:batch]), steps)
    return state, memory, mask


def _manual(dec, tokens, state, memory, mask):
    """Teacher forcing by hand, one `step` at a time."""
    prepared = dec.prepare(memory, mask)
    logits = []
    for t in range(tokens.shape[1]):
        out, state, _ = dec.step(tokens[:, t], state, prepared)
        logits.append(out)
    return torch.stack(logits, 1)


@pytest.mark.parametrize("impl", ["fused", "reference"])
@pytest.mark.parametrize("mode", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("attention", STYLES)
def test_teacher_forcing_equals_stepping(attention, mode, impl):
    dec = _decoder(attention, mode, layers=2, impl=impl)
    state, memory, mask = _condition(dec)
    tokens = torch.tensor([[BOS, 4, 5, 6], [BOS, 7, EOS, 0], [BOS, 8, 4, EOS]])
    logits = dec(tokens, state, memory, mask)
    assert logits.shape == (3, 4, 9)
    torch.testing.assert_close(logits, _manual(dec, tokens, state, memory, mask), atol=1e-5, rtol=1e-5)


def test_fused_and_reference_decoders_agree():
    dec = _decoder("luong", "lstm", layers=2, impl="fused")
    state, memory, mask = _condition(dec)
    tokens = torch.tensor([[BOS, 4, 5], [BOS, 7, 8], [BOS, 6, 6]])
    fused = dec.greedy(state, memory, mask, max_length=6), dec(tokens, state, memory, mask)
    dec.rnn.impl = "reference"
    reference = dec.greedy(state, memory, mask, max_length=6), dec(tokens, state, memory, mask)
    assert torch.equal(fused[0].tokens, reference[0].tokens)
    torch.testing.assert_close(fused[0].logits, reference[0].logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fused[1], reference[1], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("attention", ["bahdanau", "luong"])
def test_teacher_forcing_zero_feeds_the_models_own_predictions(attention):
    dec = _decoder(attention)
    state, memory, mask = _condition(dec)
    greedy = dec.greedy(state, memory, mask, max_length=5)
    steps = greedy.tokens.shape[1]
    junk = torch.full((3, steps), 4)
    junk[:, 0] = BOS
    logits = dec(junk, state, memory, mask, teacher_forcing=0.0)  # inputs after <bos> are ignored
    for b in range(3):
        ended = (greedy.tokens[b] == EOS).nonzero()
        n = int(ended[0]) + 1 if len(ended) else steps
        torch.testing.assert_close(logits[b, :n], greedy.logits[b, :n])


def test_scheduled_sampling_mixes_true_and_own_tokens():
    dec = _decoder("bahdanau")
    state, memory, mask = _condition(dec)
    tokens = torch.tensor([[BOS, 4, 5, 6, 7, 8]] * 3)
    forced = dec(tokens, state, memory, mask, teacher_forcing=1.0)
    torch.manual_seed(3)
    mixed = dec(tokens, state, memory, mask, teacher_forcing=0.5)
    torch.testing.assert_close(mixed[:, 0], forced[:, 0])  # step 0 always reads <bos>
    assert not torch.allclose(mixed, forced)
    with pytest.raises(ConfigError, match=r"teacher_forcing must be a number in \[0, 1\], got 1.5"):
        dec(tokens, state, memory, mask, teacher_forcing=1.5)


# ---------------------------------------------------------------- greedy and beam search


@pytest.mark.parametrize("attention", STYLES)
@pytest.mark.parametrize("mode", ["lstm", "gru"])
def test_beam_of_one_is_greedy(attention, mode):
    dec = _decoder(attention, mode, layers=2)
    state, memory, mask = _condition(dec, batch=3)
    greedy = dec.greedy(state, memory, mask, max_length=7, return_attention=True)
    beam = dec.beam_search(state, memory, mask, beam=1, max_length=7, return_attention=True)
    assert torch.equal(greedy.tokens, beam.tokens)
    torch.testing.assert_close(greedy.scores, beam.scores)
    if attention is None:
        assert greedy.attention is None and beam.attention is None
    else:
        torch.testing.assert_close(greedy.attention, beam.attention)


def _bigram_decoder(table):
    """A decoder whose next-token log-probabilities depend on the previous token only: logits = table[prev].

    Elman RNN with W_hh = 0 and a one-hot embedding, so h_t = tanh(5 · onehot(prev)); the output layer
    holds the table, scaled so that W_o h_t is exactly the table's row.
    """
    vocab = table.shape[0]
    dec = Decoder(vocab, vocab, vocab, mode="rnn", attention=None).eval()
    with torch.no_grad():
        dec.embedding.weight.copy_(5 * torch.eye(vocab))
        for name, p in dec.rnn.rnn.named_parameters():
            p.copy_(torch.eye(vocab) if name == "weight_ih_l0" else torch.zeros_like(p))
        dec.out.weight.copy_(table.t() / math.tanh(5.0))
        dec.out.bias.zero_()
    return dec


def test_beam_finds_the_more_probable_sequence_greedy_misses():
    A, B, C, D = 4, 5, 6, 7
    p = torch.full((8, 8), 1e-9)
    p[BOS, A], p[BOS, B] = 0.6, 0.4  # greedy takes A ...
    p[A, EOS], p[A, C], p[A, D] = 0.35, 0.33, 0.32  # ... but everything after A is unlikely
    p[B, EOS] = 0.9  # B <eos> = 0.36 beats A <eos> = 0.21
    p[B, C] = 0.1
    p[C, EOS] = p[D, EOS] = 1.0
    dec = _bigram_decoder(p.log())
    greedy = dec.greedy(max_length=5, batch_size=1)
    assert greedy.tokens.tolist() == [[A, EOS]]
    torch.testing.assert_close(greedy.scores.exp(), torch.tensor([0.6 * 0.35]), rtol=1e-4, atol=0)
    beam = dec.beam_search(max_length=5, batch_size=1, beam=2)
    assert beam.tokens.tolist() == [[B, EOS]]
    torch.testing.assert_close(beam.scores.exp(), torch.tensor([0.4 * 0.9]), rtol=1e-4, atol=0)


@torch.no_grad()
def _log_prob(dec, state, memory, mask, seq):
    """log p(seq) under `dec`, over the ids a decoder may generate (not <pad> or <bos>)."""
    prepared = dec.prepare(memory, mask)
    prev, total = torch.tensor([BOS]), 0.0
    for tok in seq:
        logits, state, _ = dec.step(prev, state, prepared)
        logits[:, [PAD, BOS]] = float("-inf")
        total += float(F.log_softmax(logits, -1)[0, tok])
        prev = torch.tensor([tok])
    return total


def _trim(tokens):
    """A decoded row without its trailing <pad>."""
    row = tokens.tolist()
    while row and row[-1] == PAD:
        row.pop()
    return row


@pytest.mark.parametrize("length_penalty", [0.0, 1.0])
def test_wide_beam_is_exhaustive_search(length_penalty):
    """With V=6 (4 generable ids) and max_length=3 a beam of 16 never prunes the best output, so beam
    search must return the best of all 1 + 4 + 4·4·... complete outputs, found here by enumeration."""
    generable = [1, EOS, 4, 5]
    outputs = [
        seq for n in (1, 2, 3) for seq in itertools.product(generable, repeat=n)
        if EOS not in seq[:-1] and (n == 3 or seq[-1] == EOS)  # ends with <eos> or hits max_length
    ]
    greedy_missed = 0
    for seed in range(6):
        torch.manual_seed(seed)
        dec = _decoder("luong", "gru", vocab=6)
        state, memory, mask = _condition(dec, batch=1, steps=4, seed=seed)
        with torch.no_grad():
            dec.out.weight.mul_(3)  # peakier distributions, so outputs of different lengths compete
        keys = {seq: _log_prob(dec, state, memory, mask, seq) / len(seq) ** length_penalty for seq in outputs}
        best = max(keys, key=keys.get)
        out = dec.beam_search(state, memory, mask, beam=16, max_length=3, length_penalty=length_penalty)
        assert _trim(out.tokens[0]) == list(best), f"seed {seed}"
        torch.testing.assert_close(out.scores, torch.tensor([keys[best]]), atol=1e-4, rtol=1e-4)
        greedy_missed += _trim(dec.greedy(state, memory, mask, max_length=3).tokens[0]) != list(best)
    assert greedy_missed, "no case where search matters; the test would not catch a greedy beam search"


@pytest.mark.parametrize("attention", ["bahdanau", "luong"])
def test_beam_search_treats_each_sequence_on_its_own(attention):
    dec = _decoder(attention, "lstm", layers=2)
    state, memory, mask = _condition(dec, batch=3)
    together = dec.beam_search(state, memory, mask, beam=4, max_length=8, return_attention=True)
    for b in range(3):
        n = int(mask[b].sum())
        alone = dec.beam_search(
            select_state(state, torch.tensor([b])), memory[b : b + 1, :n], None, beam=4, max_length=8, return_attention=True
        )
        k = alone.tokens.shape[1]
        assert together.tokens[b, :k].tolist() == alone.tokens[0].tolist() and together.tokens[b, k:].eq(PAD).all()
        torch.testing.assert_close(together.scores[b : b + 1], alone.scores)
        torch.testing.assert_close(together.attention[b, :k, :n], alone.attention[0], atol=1e-6, rtol=1e-5)
        assert together.attention[b, :, n:].eq(0).all()


@pytest.mark.parametrize("search", ["greedy", "beam"])
def test_outputs_stop_at_eos_and_respect_max_length(search):
    dec = _decoder("bahdanau", vocab=6)
    state, memory, mask = _condition(dec, batch=3)
    with torch.no_grad():
        dec.out.bias[EOS] = -3.0  # make <eos> rare so some outputs hit the limit
    decode = dec.greedy if search == "greedy" else (lambda *a, **k: dec.beam_search(*a, beam=3, **k))
    for max_length in (1, 2, 6):
        out = decode(state, memory, mask, max_length=max_length, return_attention=True)
        assert out.tokens.shape[1] <= max_length and out.tokens.dtype == torch.int64
        for row, weights in zip(out.tokens.tolist(), out.attention):
            body = row[: row.index(EOS) + 1] if EOS in row else row
            assert PAD not in body and BOS not in body, "never generates <pad> or <bos>"
            assert all(t == PAD for t in row[len(body):]), "<pad> after <eos>"
            assert weights[: len(body)].sum(-1).allclose(torch.ones(len(body)))
            assert weights[len(body):].eq(0).all()


def test_greedy_logits_are_zero_after_eos():
    dec = _decoder("luong")
    state, memory, mask = _condition(dec)
    with torch.no_grad():
        dec.out.bias[EOS] = 3.0  # end early
    out = dec.greedy(state, memory, mask, max_length=6)
    assert out.logits.shape == (*out.tokens.shape, 9)
    after = torch.cumsum(out.tokens == EOS, 1) - (out.tokens == EOS).long() > 0
    assert out.logits[after].eq(0).all()
    assert out.tokens[:, 0].eq(EOS).all() and out.tokens.shape[1] == 1


# ---------------------------------------------------------------- bridge, conditioning, errors


@pytest.mark.parametrize("mode", ["rnn", "lstm", "gru"])
def test_state_bridge_makes_a_decoder_state(mode):
    bridge = StateBridge(10, 6, num_layers=2, mode=mode)
    state = bridge(torch.randn(3, 10))
    parts = state if mode == "lstm" else (state,)
    assert len(parts) == (2 if mode == "lstm" else 1) and all(p.shape == (2, 3, 6) for p in parts)
    dec = _decoder("bahdanau", mode, layers=2)
    _, memory, mask = _condition(dec)
    assert dec.greedy(state, memory, mask, max_length=3).tokens.shape[0] == 3
    with pytest.raises(ShapeError, match=r"\(B, Z\) = \(B, 10\)"):
        bridge(torch.randn(3, 9))


def test_conditioning_errors():
    with pytest.raises(ConfigError, match="memory_size must be a positive int, got None"):
        Decoder(9, 4, 6, attention="luong")
    with pytest.raises(ConfigError, match="memory_size=5 is given but attention is None"):
        Decoder(9, 4, 6, attention=None, memory_size=5)
    with pytest.raises(ConfigError, match="vocab_size must be an int >= 4"):
        Decoder(3, 4, 6, attention=None)
    with pytest.raises(ConfigError, match="attention must be one of .* Did you mean 'luong'"):
        Decoder(9, 4, 6, attention="loung", memory_size=5)
    dec = _decoder("luong")
    state, memory, mask = _condition(dec)
    tokens = torch.tensor([[BOS, 4]] * 3)
    with pytest.raises(ShapeError, match=r"pass memory of shape \(B, S, 5\)"):
        dec(tokens, state)
    with pytest.raises(ConfigError, match="takes no memory"):
        _decoder(None)(tokens, None, memory)
    with pytest.raises(ShapeError, match=r"state h of shape \(L\*D, B, H\) = \(1, 3, 6\)"):
        dec(tokens, state[:, :2], memory, mask)
    with pytest.raises(ShapeError, match="memory holds 2"):
        dec(tokens, state, memory[:2], mask[:2])
    with pytest.raises(ShapeError, match=r"token ids must lie in \[0, vocab_size=9\)"):
        dec(tokens + 9, state, memory, mask)
    with pytest.raises(ShapeError, match=r"tokens of shape \(B,\)"):
        dec.step(tokens, state, dec.prepare(memory, mask))
    with pytest.raises(ShapeError, match="the state holds B=3 sequences .* but the memory holds 2"):
        dec.beam_search(state, memory[:2], mask[:2], beam=2, max_length=3)
    with pytest.raises(ShapeError, match="batch_size=B"):
        _decoder(None).greedy(max_length=3)
    with pytest.raises(ConfigError, match="beam must be a positive int, got 0"):
        dec.beam_search(state, memory, mask, beam=0, max_length=3)
    with pytest.raises(ConfigError, match="max_length must be a positive int"):
        dec.greedy(state, memory, mask, max_length=0)
