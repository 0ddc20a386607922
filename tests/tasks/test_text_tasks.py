"""The text task kinds: per-step tagging, stateful language modelling (TBPTT), seq2seq metrics,
and generation."""

import math

import pytest
import torch

import gridseq
from gridseq.data.contract import Batch, Dataset, DatasetInfo, Split
from gridseq.data.samplers import StreamSampler
from gridseq.data.vocab import EOS, PAD, Vocab
from gridseq.errors import ConfigError, DataError
from gridseq.tasks import LMTask, Seq2SeqTask, TagTask
from gridseq.tasks.seq2seq import Seq2SeqMetrics, edit_distance


def test_stream_sampler_rows_continue_each_other_and_ranks_share_the_streams():
    batches = StreamSampler(20, 3).batches()
    assert len(batches) == 6  # 20 // 3 chunks per stream; 2 chunks left over
    for a, b in zip(batches, batches[1:]):
        assert (b - a).tolist() == [1, 1, 1]  # row r of batch k+1 is the chunk after row r of batch k
    ranks = [StreamSampler(20, 2, rank=r, world_size=2).batches() for r in range(2)]
    seen = [int(i) for rank in ranks for batch in rank for i in batch]
    assert len(seen) == len(set(seen)) == 20
    assert len(ranks[0]) == len(ranks[1])
    assert [b.tolist() for b in StreamSampler(7, 2, remainder=True)][-1] == [6]


def _lm_data(text: str, chunk: int) -> Dataset:
    vocab = Vocab.build([text], "char")
    ids = torch.tensor(vocab.encode(text))
    n = (len(ids) - 1) // chunk
    split = Split(ids[: n * chunk].view(n, chunk), ids[1 : n * chunk + 1].view(n, chunk), texts=text)
    info = DatasetInfo("toy", "tokens", (chunk,), len(vocab), (), task="lm", vocab_size=len(vocab),
                       preprocessing={"vocab": vocab.to_json()})
    return Dataset(info, split, split, split), vocab


def test_lm_carries_state_across_chunks_exactly_as_one_long_pass():
    data, _ = _lm_data("the quick brown fox jumps over the lazy dog " * 8, chunk=8)
    model = gridseq.models.create_for("gru", data.info, hidden_size=16, embedding_dim=8).eval()
    task = LMTask(data.info)
    order = task.sampler(len(data.train), 2, None, seed=0)
    task.reset()
    pieces = [task.forward(model, data.train.batch(index)) for index in order]  # (2, 8, V) each
    streamed = torch.cat(pieces, dim=1)  # (2, steps*8, V): each row one stream, in order
    rows = torch.stack([torch.cat([data.train.x[int(b[r])] for b in order]) for r in range(2)])
    whole = model(rows)
    torch.testing.assert_close(streamed, whole, atol=1e-5, rtol=1e-5)
    assert task.state is not None and not task.state.requires_grad  # detached between chunks


@pytest.mark.slow
def test_lm_training_learns_a_dependency_longer_than_a_chunk():
    # each line repeats its first letter 6 characters later; chunks of 4 cut through it, so only a
    # carried state can predict the repeat
    import random

    rng = random.Random(0)
    text = "".join(f"{c}.....{c}\n" for c in (rng.choice("abcd") for _ in range(800)))
    data, _ = _lm_data(text, chunk=4)
    torch.manual_seed(0)
    model = gridseq.models.create_for("lstm", data.info, hidden_size=32, embedding_dim=8)
    result = gridseq.fit(model, data, epochs=8, batch_size=16, lr=1e-2, progress="none", seed=0)
    # per 8 characters, the first letter costs 2 bits and the rest is certain when memory works
    assert result.test["bits_per_char"] < 0.5, result.test
    assert math.isclose(result.test["perplexity"], 2 ** result.test["bits_per_char"], rel_tol=1e-6)


def test_lm_refuses_a_model_that_cannot_carry_state():
    data, _ = _lm_data("abcabcabc" * 10, chunk=4)

    class Stateless(torch.nn.Module):
        topology = "many-to-many"

        def forward(self, x, lengths=None):
            return torch.zeros(*x.shape, data.info.num_classes)

    with pytest.raises(ConfigError, match="state="):
        LMTask(data.info).forward(Stateless(), data.train.batch(torch.arange(2)))


def test_tag_loss_and_metrics_ignore_unlabelled_steps():
    task = TagTask()
    y = torch.tensor([[1, 0, -100, -100], [1, 1, 1, -100]])
    output = torch.zeros(2, 3, 2)
    output[0, 0, 1] = output[0, 1, 0] = 10  # item 0 right on both labelled steps
    output[1, :, 1] = 10
    output[1, 2, 0] = 20  # item 1 wrong on its last labelled step
    batch = Batch(torch.zeros(2, 3), y, torch.tensor([2, 3]))  # y longer than the trimmed batch
    metrics = task.metrics()
    metrics.update(output, batch, task.loss(output, batch))
    got = metrics.compute()
    assert got["accuracy"] == pytest.approx(4 / 5) and got["exact_match"] == pytest.approx(1 / 2)
    with pytest.raises(DataError, match="one class per step"):
        task.check_split(Split(torch.zeros(3, 4), torch.zeros(3, dtype=torch.int64)), "train")


def test_edit_distance():
    assert edit_distance([1, 2, 3], [1, 2, 3]) == 0
    assert edit_distance([1, 2, 3], [1, 3]) == 1
    assert edit_distance([], [4, 5]) == 2
    assert edit_distance([1, 2, 3, 4], [2, 1, 3, 5]) == 3


def test_seq2seq_metrics_score_free_decoding():
    task = Seq2SeqTask()
    target = torch.tensor([[5, 6, 7, EOS], [5, 6, EOS, PAD]])
    task.decoded = torch.tensor([[5, 6, 7, EOS, PAD], [5, 8, 6, EOS, PAD]])  # second: one insertion
    metrics = Seq2SeqMetrics(task)
    metrics.update(torch.zeros(2, 4, 9), Batch(torch.zeros(2, 3, dtype=torch.int64), target), torch.tensor(1.0))
    got = metrics.compute()
    assert got["exact_match"] == 0.5
    assert got["cer"] == pytest.approx(1 / 5)  # one edit over 3 + 2 target tokens
    assert got["token_accuracy"] == pytest.approx(5 / 7)  # (5,6,7,eos) right; (5,·,·) : 1 of 3
    with pytest.raises(DataError, match="exactly one <eos>"):
        task.check_split(Split(torch.zeros(1, 2, dtype=torch.int64), torch.tensor([[5, 6]])), "train")


def test_seq2seq_teacher_forces_only_up_to_the_batchs_longest_target():
    torch.manual_seed(0)
    model = gridseq.models.create("seq2seq", vocab_size=12, num_classes=10, hidden_size=8, embedding_dim=4, mode="gru",
                                  attention="luong")
    x, lengths = torch.randint(4, 12, (3, 5)), torch.tensor([5, 4, 2])
    y = torch.tensor([[5, 6, EOS, PAD, PAD, PAD, PAD], [7, EOS, PAD, PAD, PAD, PAD, PAD], [8, 9, 6, EOS, PAD, PAD, PAD]])
    batch, task = Batch(x, y, lengths), Seq2SeqTask()
    output = task.forward(model.train(), batch)
    assert output.shape == (3, 4, 10)  # the split pads to 7; this batch's longest target is 4
    full = model(x, lengths, target=y)  # every padded step, as before: the same loss
    want = torch.nn.functional.cross_entropy(full.flatten(0, 1), y.flatten(), ignore_index=PAD)
    assert torch.allclose(task.loss(output, batch), want, atol=1e-6)
    with pytest.raises(gridseq.errors.ShapeError, match=r"got \(3, 7, 10\)"):
        task.loss(full, batch)


def test_generate_is_seeded_and_greedy_equals_recomputing_the_history():
    data, vocab = _lm_data("hello world, hello there. " * 20, chunk=8)
    torch.manual_seed(0)
    model = gridseq.models.create_for("lstm", data.info, hidden_size=16, embedding_dim=8).eval()
    a = gridseq.generate(model, "hel", vocab=vocab, length=30, seed=3)
    assert a == gridseq.generate(model, "hel", vocab=vocab, length=30, seed=3) and a.startswith("hel")
    assert len(a) == 33
    greedy = gridseq.generate(model, "hel", vocab=vocab, length=10, temperature=0)
    assert greedy == gridseq.generate(model, "hel", vocab=vocab, length=10, top_k=1, seed=9)
    text = "hel"
    for _ in range(10):  # recompute over the whole history each step: the carried state must agree
        logits = model(torch.tensor([vocab.encode(text)]))[0, -1]
        logits[:4] = -math.inf
        text += vocab.tokens[int(logits.argmax())]
    assert greedy == text
    with pytest.raises(DataError, match="no token"):
        gridseq.generate(model, "ZZZ", vocab=vocab, length=5)
    with pytest.raises(ConfigError, match="temperature"):
        gridseq.generate(model, "h", vocab=vocab, temperature=-1)
