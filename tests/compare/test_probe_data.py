"""The probe datasets (adding, copy, mnist1d-shuffled) and the regress task the adding problem uses."""

import numpy as np
import pytest
import torch

import gridseq
from gridseq import datasets, models, tasks
from gridseq.data.builtin import probes as probe_data
from gridseq.data.contract import Batch, Dataset, DatasetInfo, Split
from gridseq.errors import ConfigError, DataError, ShapeError
from gridseq.train import seed_everything


def test_adding_items_follow_the_problem():
    x, y = probe_data.adding_items(500, 30, np.random.default_rng(1))
    markers = x[..., 1]
    assert (markers.sum(axis=1) == 2).all()
    assert (markers[:, :15].sum(axis=1) == 1).all() and (markers[:, 15:].sum(axis=1) == 1).all()
    np.testing.assert_allclose(y[:, 0], (x[..., 0] * markers).sum(axis=1), rtol=1e-6)
    # always answering 1 scores about 1/6: the baseline a model must beat
    assert abs(float(((y - 1) ** 2).mean()) - 1 / 6) < 0.03


def test_adding_dataset_length_option_and_fixed_test_split():
    a = datasets.load("adding", seed=0, length=20)
    b = datasets.load("adding", seed=1, length=20)
    assert a.info.task == "regress" and a.info.input_shape == (20, 2) and a.info.num_classes == 1
    assert tuple(a.train.y.shape) == (9000, 1) and a.train.y.dtype == torch.float32
    assert torch.equal(a.test.x, b.test.x)  # the test split never depends on the seed
    assert not torch.equal(a.val.x, b.val.x)  # the validation split does
    with pytest.raises(ConfigError, match="length"):
        datasets.load("adding", length=1)


def test_copy_dataset_labels_only_the_recall_steps():
    ds = datasets.load("copy", length=15)
    x, y = ds.train.x, ds.train.y
    assert ds.info.task == "tag" and tuple(x.shape[1:]) == (35, 10)
    labelled = y != probe_data.IGNORE
    assert labelled[:, -10:].all() and not labelled[:, :-10].any()
    codes = x.argmax(-1)  # 0 blank, 1-8 symbols, 9 delimiter
    assert torch.equal(codes[:, :10] - 1, y[:, -10:])  # the recalled symbols are the first ten
    assert (codes[:, 10 + 15 - 1] == 9).all()  # the delimiter, 10 steps before the end
    assert (codes[:, 10:24] == 0).all() and (codes[:, -10:] == 0).all()


def test_copy_trains_with_the_tag_task_and_per_step_models():
    ds = datasets.load("copy", length=5)
    model = models.create_for("gru", ds.info, hidden_size=8)
    assert model.topology == "many-to-many"
    task = tasks.for_data(ds.info, model)
    batch = ds.train.batch(torch.arange(4))
    loss = task.loss(task.forward(model, batch), batch)
    assert loss.dim() == 0 and abs(float(loss.detach()) - np.log(8)) < 0.5  # about chance at init


def test_mnist1d_shuffled_is_a_fixed_permutation_of_mnist1d():
    plain, shuffled = datasets.load("mnist1d"), datasets.load("mnist1d-shuffled")
    perm = torch.as_tensor(probe_data.shuffle_permutation(40))
    assert shuffled.info.preprocessing["permutation"] == perm.tolist()
    assert torch.equal(plain.test.y, shuffled.test.y)
    # same values, moved: undo each dataset's z-scoring (training statistics) and compare
    raw_plain = plain.test.x * torch.tensor(plain.info.preprocessing["normalize"]["std"]) + torch.tensor(plain.info.preprocessing["normalize"]["mean"])
    raw_shuffled = shuffled.test.x * torch.tensor(shuffled.info.preprocessing["normalize"]["std"]) + torch.tensor(shuffled.info.preprocessing["normalize"]["mean"])
    assert torch.allclose(raw_plain[:, perm], raw_shuffled, atol=1e-4)
    assert not torch.allclose(raw_plain, raw_shuffled)


# ---- regress task -------------------------------------------------------------------------------------

def _regress_data(n=64, d=2):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 5, 3, generator=g)
    y = torch.stack([x[:, :, 0].sum(1), x[:, 0, 1]], dim=1)[:, :d]
    split = Split(x, y)
    info = DatasetInfo("toy", "sequence", (5, 3), d, tuple(f"y{i}" for i in range(d)), task="regress")
    return Dataset(info, split, Split(x[:16], y[:16]), Split(x[:16], y[:16]))


def test_regress_metrics_and_checks():
    task = tasks.get("regress")
    assert (task.primary, task.higher_is_better, task.topologies) == ("mse", False, ("one-to-one", "many-to-one"))
    out, y = torch.tensor([[1.0, 0.0], [3.0, 2.0]]), torch.tensor([[1.5, 0.0], [2.0, 2.0]])
    metrics = task.metrics()
    metrics.update(out, Batch(out, y), task.loss(out, Batch(out, y)))
    got = metrics.compute()
    assert got["mse"] == pytest.approx((0.25 + 1.0) / 4) and got["mae"] == pytest.approx(1.5 / 4)
    assert got["loss"] == pytest.approx(got["mse"])
    with pytest.raises(ShapeError, match=r"\(B, 1\)"):
        tasks.get("regress", DatasetInfo("t", "sequence", (5, 1), 1, ("y",), task="regress")).loss(torch.zeros(2, 3), Batch(out, y[:, :1]))
    with pytest.raises(DataError, match="float"):
        task.check_split(Split(torch.zeros(3, 2, 1), torch.zeros(3, dtype=torch.int64)), "train")


def test_regress_fit_lowers_the_error():
    data = _regress_data()
    seed_everything(0)
    model = models.create_for("gru", data.info, hidden_size=16)
    before = gridseq.evaluate(model, data.test, info=data.info)["mse"]
    result = gridseq.fit(model, data, epochs=30, lr=1e-2, batch_size=16, progress=False)
    assert set(result.test) == {"loss", "mse", "mae"}
    assert result.test["mse"] < 0.5 * before
