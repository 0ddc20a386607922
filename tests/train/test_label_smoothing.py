"""fit(label_smoothing=): the training loss of the cross-entropy tasks is smoothed, (1 - ε)·one-hot + ε/K;
evaluation losses never are; other tasks and bad values are refused; a resume must keep it."""

import pytest
import torch
import torch.nn.functional as F
from train_helpers import build

from gridseq.data.contract import Batch
from gridseq.data.vocab import EOS, PAD
from gridseq.errors import ConfigError
from gridseq.tasks import ClassifyTask, Seq2SeqTask
from gridseq.train import fit

FAST = {"batch_size": 16, "lr": 1e-2, "progress": False}


def _smoothed(logits, y, eps):
    """(1 - ε)·NLL + ε·mean over classes of -log p, averaged over items: the definition, by hand."""
    logp = logits.log_softmax(-1)
    return ((1 - eps) * -logp.gather(1, y[:, None])[:, 0] + eps * -logp.mean(-1)).mean()


def test_classify_smooths_the_training_loss_only():
    task = ClassifyTask()
    logits, y = torch.randn(6, 4), torch.tensor([0, 1, 2, 3, 1, 0])
    batch = Batch(torch.zeros(6, 2), y)
    plain = task.training_loss(logits, batch)
    task.label_smoothing = 0.2
    assert torch.allclose(task.training_loss(logits, batch), _smoothed(logits, y, 0.2))
    assert torch.equal(task.loss(logits, batch), plain) and torch.allclose(plain, F.cross_entropy(logits, y))


def test_seq2seq_smooths_over_target_tokens_and_skips_the_padding():
    task = Seq2SeqTask()
    task.label_smoothing = 0.1
    y = torch.tensor([[5, 6, EOS, PAD], [7, EOS, PAD, PAD]])
    logits = torch.randn(2, 3, 9)  # the batch's longest target is 3 tokens
    got = task.training_loss(logits, Batch(torch.zeros(2, 2, dtype=torch.int64), y))
    valid = y[:, :3] != PAD
    assert torch.allclose(got, _smoothed(logits[valid], y[:, :3][valid], 0.1))


def test_fit_records_it_and_its_validation_loss_is_the_plain_cross_entropy(tiny, data, tmp_path):
    import json

    import gridseq

    model = build(tiny, data)
    result = fit(model, data, epochs=2, label_smoothing=0.3, select="last", run_dir=tmp_path / "r", **FAST)
    assert json.loads((tmp_path / "r" / "config.json").read_text())["train"]["label_smoothing"] == 0.3
    val = gridseq.evaluate(model, data.val, info=data.info)  # the task's own, unsmoothed loss
    assert result.history[-1]["val_loss"] == pytest.approx(val["loss"], rel=1e-5)
    with pytest.raises(ConfigError, match="label_smoothing"):
        fit(build(tiny, data), data, epochs=2, label_smoothing=0.1, run_dir=tmp_path / "r", resume=True, **FAST)


@pytest.mark.parametrize("bad", [1.0, -0.1, True, "0.1"])
def test_bad_values_are_config_errors(tiny, data, bad):
    with pytest.raises(ConfigError, match="label_smoothing"):
        fit(build(tiny, data), data, epochs=1, label_smoothing=bad, **FAST)


def test_a_task_without_classes_refuses_it():
    from gridseq import datasets, models

    data = datasets.load("airline")
    with pytest.raises(ConfigError, match="label_smoothing applies to the cross-entropy tasks"):
        fit(models.create_for("gru", data.info), data, epochs=1, label_smoothing=0.1, progress=False)
