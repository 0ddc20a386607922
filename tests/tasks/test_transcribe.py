"""The transcribe task: CTC loss with exact output lengths, the too-short-input DataError, greedy and
prefix beam-search decoding, metrics; and (slow) training crnn-ctc on both built-ins."""

import itertools
import math

import pytest
import torch

from gridseq.data.contract import Batch, DatasetInfo, Split
from gridseq.errors import DataError, ShapeError
from gridseq.models.crnn_ctc import CRNN, CRNNConfig
from gridseq.tasks import get
from gridseq.tasks.transcribe import (
    TranscribeTask,
    decode,
    greedy_decode,
    prefix_beam_search,
    required_frames,
    target_lengths,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def _info(k=4):
    return DatasetInfo(name="t", kind="sequence", input_shape=(40, 8), num_classes=k, class_names=("<blank>", "a", "b", "c")[:k],
                       variable_length=True, task="transcribe")


def _collapse(path):
    out = [k for k, _ in itertools.groupby(path)]
    return tuple(k for k in out if k != 0)


def brute_force_best(log_probs):
    """The most probable label sequence by summing every path (tiny T and K only)."""
    t, k = log_probs.shape
    totals = {}
    for path in itertools.product(range(k), repeat=t):
        p = math.exp(sum(float(log_probs[i, c]) for i, c in enumerate(path)))
        key = _collapse(path)
        totals[key] = totals.get(key, 0.0) + p
    return list(max(totals, key=totals.get)), totals


def test_registered_and_lengths():
    assert get("transcribe").primary == "cer" and not get("transcribe").higher_is_better
    y = torch.tensor([[1, 1, 2, 0], [3, 3, 3, 0], [0, 0, 0, 0]])
    assert target_lengths(y).tolist() == [3, 3, 0]
    assert required_frames(y).tolist() == [4, 5, 0]


def test_greedy_collapses_repeats_and_blanks():
    frames = torch.tensor([1, 1, 0, 1, 2, 2, 0, 0, 3])
    scores = torch.nn.functional.one_hot(frames, 4).float()[None]
    assert greedy_decode(scores) == [[1, 1, 2, 3]]
    assert greedy_decode(scores, torch.tensor([5])) == [[1, 1, 2]]  # frames past the length are ignored


@pytest.mark.parametrize("seed", range(6))
def test_prefix_beam_search_finds_the_most_probable_sequence(seed):
    g = torch.Generator().manual_seed(seed)
    lp = (torch.randn(5, 3, generator=g) * 1.5).log_softmax(-1)
    best, totals = brute_force_best(lp)
    found = prefix_beam_search(lp, beam=16, prune=-1e9)
    assert totals[tuple(found)] == pytest.approx(totals[tuple(best)])


def test_beam_beats_greedy_when_paths_add_up():
    lp = torch.tensor([[0.6, 0.4], [0.6, 0.4]]).log()
    assert greedy_decode(lp[None]) == [[]] and prefix_beam_search(lp, 4) == [1]
    assert decode(lp[None], torch.tensor([2]), beam=4) == [[1]]


def test_loss_matches_torch_ctc_and_uses_model_output_lengths():
    torch.manual_seed(0)
    m = CRNN(CRNNConfig(input_size=8, num_classes=4, channels=(4, 4), pools=((2, 2), (1, 2)), hidden_size=8, num_layers=1)).eval()
    task = TranscribeTask(_info())
    x, lengths = torch.randn(2, 23, 8), torch.tensor([23, 13])
    y = torch.tensor([[1, 2, 2], [3, 0, 0]])
    batch = Batch(x, y, lengths)
    out = task.forward(m, batch)
    frames = m.output_lengths(lengths)
    assert frames.tolist() == [5, 3] and out.shape[1] == 5
    ref = torch.nn.functional.ctc_loss(out.log_softmax(-1).transpose(0, 1), y, frames, torch.tensor([3, 1]))
    assert torch.allclose(task.loss(out, batch), ref)


@pytest.mark.parametrize("width", [9, 15, 21, 37, 101])
def test_output_lengths_match_the_cnn_for_odd_widths(width):
    m = CRNN(CRNNConfig(input_size=16, num_classes=5, channels=(4, 4, 4), pools=((2, 2), (2, 3), (1, 1)),
                        hidden_size=8, num_layers=1)).eval()
    x = torch.randn(1, width, 16)
    out = m(x, torch.tensor([width]))
    assert out.shape[1] == int(m.output_lengths(torch.tensor([width]))) == width // 2 // 3
    # the frames of a padded item are those of the item alone: the lengths say how many are valid
    padded = torch.cat([x, torch.randn(1, 7, 16)], dim=1)
    both = m(torch.cat([padded, torch.randn(1, width + 7, 16)]), torch.tensor([width, width + 7]))
    n = int(m.output_lengths(torch.tensor([width])))
    assert torch.allclose(both[0, :n], out[0], atol=1e-5)


def test_too_short_input_is_a_data_error_not_an_infinite_loss():
    m = CRNN(CRNNConfig(input_size=8, num_classes=4, channels=(4,), pools=((2, 4),), hidden_size=8, num_layers=1)).eval()
    task = TranscribeTask(_info())
    # 13 steps -> 3 frames; "a a b" needs 4 (a blank between the two a's)
    batch = Batch(torch.randn(2, 13, 8), torch.tensor([[1, 1, 2], [1, 2, 3]]), torch.tensor([13, 13]))
    out = task.forward(m, batch).detach()
    plain = torch.nn.functional.ctc_loss(out.log_softmax(-1).transpose(0, 1), batch.y, torch.tensor([3, 3]),
                                         torch.tensor([3, 3]), reduction="none")
    assert math.isinf(float(plain[0])) and math.isfinite(float(plain[1]))  # what torch alone would give
    with pytest.raises(DataError, match=r"input of 13 steps gives 3 output frames.*needs at least 4"):
        task.loss(out, batch)


def test_check_split_rejects_bad_targets():
    task = TranscribeTask(_info())
    x, lengths = torch.zeros(2, 5, 8), torch.tensor([5, 5])
    with pytest.raises(DataError, match="blank"):
        task.check_split(Split(x, torch.tensor([[1, 0, 2], [1, 0, 0]]), lengths), "train")
    with pytest.raises(DataError, match=r"\[1, 4\)"):
        task.check_split(Split(x, torch.tensor([[1, 4], [1, 0]]), lengths), "train")
    with pytest.raises(DataError, match="at least one step per label"):
        task.check_split(Split(x, torch.tensor([[1, 2], [1, 0]]), torch.tensor([1, 5])), "val")
    task.check_split(Split(x, torch.tensor([[1, 2], [3, 0]]), lengths), "test")


def test_wrong_output_shape_is_a_shape_error():
    task = TranscribeTask(_info())
    with pytest.raises(ShapeError, match=r"\(B, T', 4\)"):
        task.loss(torch.zeros(2, 4), Batch(torch.zeros(2, 5, 8), torch.tensor([[1], [2]])))


def test_metrics_cer_and_exact_match():
    task = TranscribeTask(_info())
    frames = torch.tensor([[1, 0, 2, 0], [3, 3, 0, 0]])  # decodes to "ab", "c"
    out = torch.nn.functional.one_hot(frames, 4).float() * 10
    batch = Batch(torch.zeros(2, 4, 8), torch.tensor([[1, 2], [3, 3]]), torch.tensor([4, 4]))
    metrics = task.metrics()
    metrics.update(out, batch, task.loss(out, batch))
    result = metrics.compute()
    assert result["exact_match"] == 0.5 and result["cer"] == pytest.approx(1 / 4)


# ---- training to accuracy (slow) -------------------------------------------------------------------

@pytest.mark.slow
def test_crnn_ctc_learns_digit_strings():
    """A short run (2,000 strings, 8 epochs) on digit-strings; chance-level CER is ~0.9 (guessing the
    most common digit), the full default run reaches the numbers in docs/transcribe.md."""
    from gridseq import datasets, models, train

    data = datasets.load("digit-strings", seed=0, size=2000)
    train.seed_everything(0)
    model = models.create_for("crnn-ctc", data.info, channels=(16, 32, 64), hidden_size=64)
    result = train.fit(model, data, epochs=8, batch_size=32, lr=3e-3, scheduler="onecycle", progress=False)
    assert result.test["cer"] < 0.25


@pytest.mark.slow
def test_crnn_ctc_learns_dtmf():
    from gridseq import datasets, models, train

    """Half the training set, the default settings: CTC's all-blank plateau (CER 1.0) lasts ~300 steps
    here, so 500 steps (2,000 utterances, 8 epochs) are the least that shows learning."""
    data = datasets.load("dtmf", seed=0, size=2000)
    train.seed_everything(0)
    model = models.create_for("crnn-ctc", data.info, channels=(16, 32), pools=((2, 2), (2, 1)), hidden_size=64)
    result = train.fit(model, data, epochs=8, batch_size=32, lr=3e-3, scheduler="onecycle", progress=False)
    assert result.test["cer"] < 0.05


@pytest.mark.parametrize("module", ["gridseq.tasks.transcribe", "gridseq.models.crnn_ctc", "gridseq.data.audio",
                                    "gridseq.data.readers.transcripts"])
def test_docstring_examples(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted and not result.failed


def test_a_per_step_rnn_can_serve_ctc_too():
    """Without output_lengths the task uses the input lengths: a per-step GRU is a CTC model with T' = T."""
    from gridseq import models

    model = models.create_for("gru", _info(), hidden_size=8).eval()
    assert model.config.per_step
    task = TranscribeTask(_info())
    batch = Batch(torch.randn(2, 9, 8), torch.tensor([[1, 2], [3, 0]]), torch.tensor([9, 4]))
    out = task.forward(model, batch)
    assert out.shape == (2, 9, 4) and task.frames(out, batch).tolist() == [9, 4]
    assert torch.isfinite(task.loss(out, batch))
