"""The small-data protocol: `cross_validate` (k folds of train + val, test untouched) and `refit`."""

from __future__ import annotations

import dataclasses
import importlib.util
import json

import numpy as np
import pytest
import torch
from train_helpers import build, make_data

from gridseq import cli
from gridseq.data.contract import Dataset, Split
from gridseq.data.partition import fold_indices
from gridseq.errors import ConfigError
from gridseq.train import CVResult, cross_validate, crossval, refit
from gridseq.train.crossval import best_epoch_count, training_items

needs_aeon = pytest.mark.skipif(importlib.util.find_spec("aeon") is None, reason="needs aeon (the UCR files)")


def tagged(n_train=50, n_val=10, n_test=20, classes=3) -> Dataset:
    """make_data with every item's id in x[:, 0, 0] (train 0.., val 1000.., test 2000..)."""
    data = make_data(n_train, n_val, n_test, classes=classes)
    for base, split in ((0, data.train), (1000, data.val), (2000, data.test)):
        split.x[:, 0, 0] = base + torch.arange(len(split), dtype=torch.float32)
    return data


def ids(split: Split) -> set[int]:
    return {int(v) for v in split.x[:, 0, 0].tolist()}


class Tripwire:
    """Stands in for a split that must not be read: any attribute access fails the test."""

    def __getattr__(self, name):
        raise AssertionError(f"the test split was read during cross-validation (.{name})")

    def __len__(self):
        raise AssertionError("the test split was read during cross-validation (len)")


@pytest.fixture
def seen(monkeypatch):
    """The Dataset every `fit` inside crossval was given, in call order."""
    calls = []
    real = crossval.fit

    def spy(model, data, **kw):
        calls.append((data, kw))
        return real(model, data, **kw)

    monkeypatch.setattr(crossval, "fit", spy)
    return calls


def test_folds_are_stratified_disjoint_and_cover_train_plus_val(tiny, seen):
    data = tagged()
    pool_y = torch.cat([data.train.y, data.val.y]).numpy()
    cv = cross_validate(lambda: build(tiny, data), data, folds=4, epochs=1, batch_size=16, progress=False)
    assert len(seen) == 4 and cv.items == 60 and cv.stratified
    everything = ids(data.train) | ids(data.val)
    held = [ids(d.val) for d, _ in seen]
    assert set().union(*held) == everything and sum(map(len, held)) == len(everything)  # disjoint, covering
    for d, _ in seen:
        assert ids(d.train) | ids(d.val) == everything and not ids(d.train) & ids(d.val)
        assert len(d.test) == 0  # the folds' test split is empty
    # stratified: each class's held-out counts differ by at most one between folds
    per_fold = np.array([np.bincount(d.val.y.numpy(), minlength=3) for d, _ in seen])
    assert (per_fold.max(0) - per_fold.min(0) <= 1).all()
    assert per_fold.sum(0).tolist() == np.bincount(pool_y, minlength=3).tolist()
    assert cv.fold_sizes == [len(h) for h in held]


def test_fold_indices_are_balanced_and_seeded():
    y = np.array([0] * 7 + [1] * 5 + [2] * 3)
    a = fold_indices(y, len(y), 3, seed=1)
    assert sorted(np.bincount(a).tolist()) == [5, 5, 5]
    for c in range(3):
        counts = np.bincount(a[y == c], minlength=3)
        assert counts.max() - counts.min() <= 1
    assert (fold_indices(y, len(y), 3, seed=1) == a).all() and (fold_indices(y, len(y), 3, seed=2) != a).any()


def test_cross_validation_never_reads_the_test_split(tiny):
    data = tagged()
    data.test = Tripwire()
    cv = cross_validate(lambda: build(tiny, data), data, folds=2, epochs=1, batch_size=16, progress=False)
    assert len(cv.scores) == 2


def test_best_epochs_is_the_argmax_of_the_mean_curve(tiny):
    data = tagged()
    cv = cross_validate(lambda: build(tiny, data), data, folds=3, epochs=3, batch_size=16, lr=3e-3, progress=False)
    curves = np.array(cv.curves)
    assert curves.shape == (3, 3)
    for k, history in enumerate(cv.histories):  # the curve is each fold's val (= held-out) accuracy per epoch
        assert [r["val_accuracy"] for r in history] == cv.curves[k]
    assert np.allclose(cv.mean_curve, curves.mean(0))
    tied = np.flatnonzero(np.isclose(curves.mean(0), curves.mean(0).max()))
    losses = np.array([[r["val_loss"] for r in h] for h in cv.histories]).mean(0)
    assert np.allclose(cv.mean_loss_curve, losses)
    assert cv.best_epochs == tied[np.argmin(losses[tied])] + 1  # the argmax; among ties the lowest mean loss
    assert cv.scores == curves[:, cv.best_epochs - 1].tolist()
    assert cv.mean == pytest.approx(cv.mean_curve[cv.best_epochs - 1]) and cv.std == pytest.approx(curves[:, cv.best_epochs - 1].std())
    record = cv.to_json()
    assert json.loads(json.dumps(record))["best_epochs"] == cv.best_epochs and record["curves"] == cv.curves


def test_monitor_makes_the_curves_and_the_choice_of_that_metric(tiny):
    data = tagged()
    cv = cross_validate(lambda: build(tiny, data), data, folds=3, epochs=3, batch_size=16, lr=3e-3, progress=False, monitor="loss")
    assert (cv.primary, cv.higher_is_better) == ("loss", False)
    for k, history in enumerate(cv.histories):
        assert [r["val_loss"] for r in history] == cv.curves[k]
    assert cv.best_epochs == int(np.argmin(cv.mean_curve)) + 1  # the lowest mean held-out loss


def test_best_epoch_count_breaks_ties_by_loss_then_fewest_epochs():
    assert best_epoch_count([0.5, 0.9, 0.7, 0.9], True) == 2
    assert best_epoch_count([0.3, 0.1, 0.1, 0.2], False) == 2  # lower is better (loss, mae)
    assert best_epoch_count([float("nan"), 0.4, 0.4], True) == 2
    assert best_epoch_count([float("nan")] * 2, True) == 1
    # ties on the primary metric: the lowest mean held-out loss, then the fewest epochs
    assert best_epoch_count([0.5, 0.9, 0.7, 0.9], True, tie_break=[0.8, 0.3, 0.1, 0.2]) == 4
    assert best_epoch_count([0.5, 0.9, 0.7, 0.9], True, tie_break=[0.8, 0.2, 0.1, 0.2]) == 2
    assert best_epoch_count([0.9, 0.5], True, tie_break=[0.5, 0.1]) == 1  # the loss only breaks ties


def test_callbacks_hear_each_fold_in_order_with_the_running_mean(tiny):
    data = tagged()
    heard, folds_seen = [], []

    class Listen:
        def __init__(self, fold):
            self.fold = fold

        def on_fit_start(self, state):
            folds_seen.append(self.fold)

        def on_cv_epoch_end(self, p):
            heard.append((p.fold, p.epoch, p.step, p.value, [list(c) for c in p.curves]))

    cv = cross_validate(lambda: build(tiny, data), data, folds=3, epochs=2, batch_size=16, progress=False,
                        callbacks_for_fold=lambda fold: [Listen(fold)])
    assert folds_seen == [0, 1, 2]
    assert [(f, e, s) for f, e, s, _, _ in heard] == [(0, 1, 1), (0, 2, 2), (1, 1, 3), (1, 2, 4), (2, 1, 5), (2, 2, 6)]
    for fold, epoch, _, value, curves in heard:
        assert value == pytest.approx(np.mean([cv.curves[k][epoch - 1] for k in range(fold + 1)]))
        assert len(curves) == fold + 1


def test_a_callback_that_raises_stops_the_cross_validation(tiny):
    data = tagged()

    class Pruned(Exception):
        pass

    class Prune:
        def on_cv_epoch_end(self, p):
            if p.fold == 1:
                raise Pruned

    with pytest.raises(Pruned):
        cross_validate(lambda: build(tiny, data), data, folds=3, epochs=1, batch_size=16, progress=False,
                       callbacks_for_fold=lambda fold: [Prune()])


def test_refit_trains_on_all_training_items_and_records_the_cv(tiny, seen, tmp_path):
    data = tagged()
    cv = CVResult(folds=5, seed=0, primary="accuracy", higher_is_better=True, curves=[[0.5, 0.6]] * 5, mean_curve=[0.5, 0.6],
                  best_epochs=2, scores=[0.6] * 5, mean=0.6, std=0.0, fold_sizes=[12] * 5, items=60, stratified=True, seconds=1.0)
    result = refit(lambda: build(tiny, data), data, epochs=2, batch_size=16, progress=False, cv=cv, run_dir=tmp_path / "run")
    (given, kw), = seen
    assert ids(given.train) == ids(data.train) | ids(data.val) and len(given.val) == 0 and given.test is data.test
    assert kw["select"] == "last" and kw["epochs"] == 2
    assert len(result.history) == 2 and result.best_epoch == 2 and result.val == {} and set(result.test) >= {"accuracy", "loss"}
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["cv"] == cv.summary() and config["train"]["epochs"] == 2


def test_refit_can_follow_the_folds_schedule_and_stop_at_the_chosen_epoch(tiny, seen, tmp_path):
    """horizon=cv.epochs: with cosine over the folds' 6 epochs, epoch 2 of the refit has the learning
    rate epoch 2 of a fold had — not the end of a schedule squeezed into 2 epochs (the default)."""
    data = tagged()
    settings = {"batch_size": 16, "lr": 1e-2, "scheduler": "cosine", "progress": False}
    cv = cross_validate(lambda: build(tiny, data), data, folds=2, epochs=6, **settings)
    assert cv.epochs == 6 and cv.summary()["epochs"] == 6
    result = refit(lambda: build(tiny, data), data, epochs=2, horizon=cv.epochs, cv=cv, run_dir=tmp_path / "run", **settings)
    assert seen[-1][1]["epochs"] == 6 and len(result.history) == 2  # the schedule's horizon, stopped after 2
    assert [r["lr"] for r in result.history] == pytest.approx([r["lr"] for r in cv.histories[0][:2]], rel=1e-6)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["refit"] == {"epochs": 2, "horizon": 6}
    squeezed = refit(lambda: build(tiny, data), data, epochs=2, **settings)  # the default: annealed within 2 epochs
    assert len(squeezed.history) == 2 and squeezed.history[-1]["lr"] < result.history[-1]["lr"]
    with pytest.raises(ConfigError, match="horizon"):
        refit(lambda: build(tiny, data), data, epochs=3, horizon=2, **settings)


def test_pooling_pads_variable_length_items_and_keeps_texts():
    a = Split(torch.ones(2, 3, 1), torch.tensor([0, 1]), torch.tensor([3, 2]), texts=["a", "b"])
    b = Split(torch.ones(1, 5, 1), torch.tensor([1]), torch.tensor([5]), texts=["c"])
    info = make_data().info
    pool = training_items(Dataset(info, a, b, b))
    assert pool.x.shape == (3, 5, 1) and pool.x[0, 3:].abs().sum() == 0 and pool.lengths.tolist() == [3, 2, 5]
    assert pool.texts == ["a", "b", "c"] and crossval.subset(pool, np.array([2, 0])).texts == ["c", "a"]


@pytest.mark.parametrize("kwargs, match", [
    ({"folds": 1}, "folds must be an int >= 2"),
    ({"folds": 61}, "more than the 60 training items"),
    ({"run_dir": "x"}, "sets run_dir itself"),
])
def test_bad_arguments_are_config_errors(tiny, kwargs, match):
    data = tagged()
    with pytest.raises(ConfigError, match=match):
        cross_validate(lambda: build(tiny, data), data, epochs=1, **kwargs)


def test_forecasting_and_early_stopping_in_refit_are_refused(tiny):
    data = tagged()
    forecast = dataclasses.replace(data, info=dataclasses.replace(data.info, task="forecast"))
    with pytest.raises(ConfigError, match="does not apply to task 'forecast'"):
        cross_validate(lambda: build(tiny, data), forecast, epochs=1)
    with pytest.raises(ConfigError, match="cannot stop early"):
        refit(lambda: build(tiny, data), data, epochs=1, patience=3)


# -- the CLI ----------------------------------------------------------------------------------------

def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@needs_aeon
def test_cli_cv_then_refit(capsys, tmp_path):
    run_dir = tmp_path / "run"
    code, out, err = run(capsys, "train", "ucr/italypowerdemand", "--model", "fcn", "--epochs", "2", "--cv", "3", "--refit",
                         "--run-dir", run_dir, "--no-progress", "--threads", "1")
    assert code == 0, err
    cv = json.loads((run_dir / "cv.json").read_text())
    assert cv["folds"] == 3 and len(cv["scores"]) == 3 and cv["items"] == 67 and cv["model"] == "fcn"
    assert "fold 3:" in out and f"chosen epochs: {cv['best_epochs']} of 2" in out and "test metrics" in out
    config = json.loads((run_dir / "config.json").read_text())
    assert config["cv"]["best_epochs"] == cv["best_epochs"] == config["refit"]["epochs"] and config["train"]["select"] == "last"
    assert config["refit"] == {"epochs": cv["best_epochs"], "horizon": cv["best_epochs"]} == {"epochs": config["train"]["epochs"],
                                                                                            "horizon": config["train"]["epochs"]}
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["epochs"] == cv["best_epochs"] and 0 <= metrics["test"]["accuracy"] <= 1


@needs_aeon
def test_cli_cv_alone_writes_only_cv_json_and_refuses_to_overwrite_it(capsys, tmp_path):
    run_dir = tmp_path / "cv"
    argv = ("train", "ucr/italypowerdemand", "--model", "fcn", "--epochs", "1", "--cv", "2", "--run-dir", run_dir, "--no-progress",
            "--threads", "1")
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    assert sorted(p.name for p in run_dir.iterdir()) == ["cv.json"] and "test metrics" not in out
    code, _, err = run(capsys, *argv)
    assert code == 2 and "holds a cross-validation result (cv.json)" in err and "--overwrite" in err


@pytest.mark.parametrize("flags, message", [
    (("--refit",), "give --cv K with it"),
    (("--cv", "1"), "--cv needs K >= 2 folds"),
    (("--cv", "2", "--resume"), "--cv cannot --resume"),
])
def test_cli_cv_flag_errors(capsys, tmp_path, flags, message):
    code, _, err = run(capsys, "train", "digits", "--model", "cnn", "--run-dir", tmp_path / "r", *flags)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
