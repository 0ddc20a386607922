"""The classify task: loss, metrics against sklearn, predictions, and the topology check."""

import pytest
import torch
from sklearn.metrics import accuracy_score, f1_score
from torch import nn

from gridseq import tasks
from gridseq.data.contract import Batch, DatasetInfo, Split
from gridseq.errors import ConfigError, DataError, ShapeError


def info(k=4, task="classify"):
    return DatasetInfo(name="d", kind="series", input_shape=(5, 2), num_classes=k, class_names=tuple("abcd"[:k]), task=task)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_match_sklearn_over_batches(seed):
    g = torch.Generator().manual_seed(seed)
    k, n = 5, 97
    y = torch.randint(0, k - 1, (n,), generator=g)  # class 4 never occurs in y ...
    logits = torch.randn(n, k, generator=g)
    logits[:, 3] -= 10  # ... and class 3 is never predicted: both edge cases of macro F1
    task = tasks.get("classify", DatasetInfo("d", "series", (5, 2), k, tuple("abcde")))
    m = task.metrics()
    total = 0.0
    for chunk in torch.arange(n).split(13):  # uneven batches
        batch = Batch(torch.zeros(len(chunk), 1), y[chunk])
        loss = task.loss(logits[chunk], batch)
        total += float(loss) * len(chunk)
        m.update(logits[chunk], batch, loss)
    out = m.compute()
    pred = logits.argmax(1)
    assert out["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert out["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro"))
    assert out["loss"] == pytest.approx(total / n)
    assert out["loss"] == pytest.approx(float(nn.functional.cross_entropy(logits, y)), rel=1e-5)


def test_macro_f1_by_hand():
    # y = [0, 0, 1, 1], pred = [0, 1, 1, 1]: F1(0) = 2·1/(2+1) = 2/3, F1(1) = 2·2/(2+3) = 4/5
    task = tasks.get("classify")
    m = task.metrics()
    logits = torch.tensor([[1.0, 0], [0, 1], [0, 1], [0, 1]])
    batch = Batch(torch.zeros(4, 1), torch.tensor([0, 0, 1, 1]))
    m.update(logits, batch, task.loss(logits, batch))
    assert m.compute()["macro_f1"] == pytest.approx((2 / 3 + 4 / 5) / 2)
    assert m.compute()["accuracy"] == pytest.approx(0.75)


def test_metrics_state_round_trip():
    task = tasks.get("classify", info(3))
    a = task.metrics()
    logits = torch.randn(6, 3)
    batch = Batch(torch.zeros(6, 1), torch.tensor([0, 1, 2, 0, 1, 2]))
    a.update(logits, batch, task.loss(logits, batch))
    b = task.metrics()
    b.load_state_dict(a.state_dict())
    assert b.compute() == a.compute()
    assert task.metrics().compute() == {}


def test_predict_labels_and_probabilities():
    labels, probs = tasks.get("classify").predict(torch.tensor([[0.0, 3.0, 1.0], [2.0, 0.0, 0.0]]))
    assert labels.tolist() == [1, 0]
    assert torch.allclose(probs.sum(1), torch.ones(2))


def test_primary_metric_direction():
    task = tasks.get("classify")
    assert (task.primary, task.higher_is_better) == ("accuracy", True)
    assert task.is_better(0.5, None) and task.is_better(0.6, 0.5) and not task.is_better(0.5, 0.5)
    assert not task.is_better(float("nan"), None)


class PerStep(nn.Module):
    topology = "many-to-many"


def test_for_data_rejects_topology_that_cannot_classify():
    with pytest.raises(ConfigError, match="many-to-many.*one-to-one or many-to-one"):
        tasks.for_data(info(), PerStep())
    assert isinstance(tasks.for_data(info(), nn.Linear(2, 2)), tasks.ClassifyTask)  # no topology: trusted


def test_unknown_task_suggests():
    with pytest.raises(ConfigError, match="Did you mean 'classify'"):
        tasks.for_data(info(task="clasify"))


def test_loss_rejects_per_step_output():
    task = tasks.get("classify", info(4))
    with pytest.raises(ShapeError, match=r"\(B, 4\).*got \(2, 5, 4\).*many-to-one"):
        task.loss(torch.randn(2, 5, 4), Batch(torch.zeros(2, 1), torch.zeros(2, dtype=torch.long)))
    with pytest.raises(ShapeError, match=r"got \(2, 3\)"):
        task.loss(torch.randn(2, 3), Batch(torch.zeros(2, 1), torch.zeros(2, dtype=torch.long)))


def test_check_split_targets():
    task = tasks.get("classify", info(3))
    with pytest.raises(DataError, match=r"\[0, 3\).*0 to 3"):
        task.check_split(Split(torch.zeros(2, 1), torch.tensor([0, 3])), "train")
    with pytest.raises(DataError, match="int64"):
        task.check_split(Split(torch.zeros(2, 1), torch.tensor([0.0, 1.0])), "val")
