"""fit(select=...): which epoch's weights the model ends with ("last" exists for tiny validation splits,
like the UCR archive's, where accuracy ties at 100% within a few epochs)."""

import pytest
import torch
from train_helpers import build

from gridseq.errors import ConfigError
from gridseq.train import fit

FAST = dict(batch_size=16, lr=1e-2, progress=False)


def test_last_keeps_the_final_weights(tiny, data):
    best_model, last_model = build(tiny, data), build(tiny, data)
    best = fit(best_model, data, epochs=4, **FAST)
    last = fit(last_model, data, epochs=4, select="last", **FAST)
    metrics = lambda h: [{k: v for k, v in r.items() if k not in ("seconds", "samples_per_second")} for r in h]  # noqa: E731
    assert metrics(last.history) == metrics(best.history)  # the same training; only the choice differs
    assert last.best_epoch == 4 and last.val["accuracy"] == last.history[-1]["val_accuracy"]
    assert best.best_epoch == max(range(1, 5), key=lambda e: (best.history[e - 1]["val_accuracy"], -e))
    if best.best_epoch != 4:
        assert any(not torch.equal(a, b) for a, b in zip(best_model.state_dict().values(), last_model.state_dict().values()))


def test_select_is_checked(tiny, data):
    with pytest.raises(ConfigError, match="select"):
        fit(build(tiny, data), data, epochs=1, select="first", **FAST)


# --- monitor: the metric that picks the epoch ---------------------------------------------------------

def _digits_fits():
    """The same training of an MLP on digits (high lr, so the metrics' best epochs disagree) under each monitor."""
    from gridseq import datasets, models
    from gridseq.train import seed_everything

    data = datasets.load("digits", seed=0)
    out = {}
    for monitor in (None, "loss", "macro_f1"):
        seed_everything(3)
        out[monitor] = fit(models.create_for("mlp", data.info), data, epochs=8, lr=3e-2, seed=3, progress=False, monitor=monitor)
    return out


@pytest.mark.usefixtures("one_thread")  # the disagreement of the three metrics below is of this training at one thread
def test_monitor_picks_the_best_epoch_by_that_metric():
    fits = _digits_fits()
    strip = lambda h: [{k: v for k, v in r.items() if k not in ("seconds", "samples_per_second")} for r in h]  # noqa: E731
    assert strip(fits["loss"].history) == strip(fits[None].history) == strip(fits["macro_f1"].history)  # checking the name draws nothing
    history = fits[None].history
    first_best = lambda key, sign: min(range(1, 9), key=lambda e: (sign * history[e - 1][key], e))  # noqa: E731
    assert fits[None].best_epoch == first_best("val_accuracy", -1)
    assert fits["macro_f1"].best_epoch == first_best("val_macro_f1", -1)
    assert fits["loss"].best_epoch == first_best("val_loss", 1)  # smaller is better for a loss
    assert len({f.best_epoch for f in fits.values()}) > 1  # this training tells the three apart
    assert fits["loss"].val["loss"] == min(r["val_loss"] for r in history)


@pytest.mark.usefixtures("one_thread")
def test_monitor_drives_early_stopping_and_is_recorded(tmp_path):
    from gridseq import datasets, models
    from gridseq.train import seed_everything

    data = datasets.load("digits", seed=0)
    seed_everything(1)
    result = fit(models.create_for("mlp", data.info), data, epochs=8, lr=3e-2, seed=1, progress=False, monitor="loss", patience=2,
                 run_dir=tmp_path / "run")
    losses = [r["val_loss"] for r in result.history]
    best = losses.index(min(losses))
    assert len(losses) == best + 3  # stopped two epochs after the lowest validation loss, not the best accuracy
    import json

    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["train"]["monitor"] == "loss"
    assert config["task"]["primary"] == "loss" and config["task"]["higher_is_better"] is False


@pytest.mark.parametrize("monitor, match", [("macro_f2", "it reports accuracy, loss, macro_f1. Did you mean 'macro_f1'"),
                                            ("", "monitor must be None"), (3, "monitor must be None")])
def test_monitor_is_checked_before_training(tiny, data, tmp_path, monitor, match):
    with pytest.raises(ConfigError, match=match):
        fit(build(tiny, data), data, epochs=1, monitor=monitor, run_dir=tmp_path / "run", **FAST)
    assert not (tmp_path / "run" / "history.jsonl").exists()


def test_task_monitor_takes_the_direction_of_the_metric():
    from gridseq import tasks

    task = tasks.get("classify")
    task.monitor("macro_f1")
    assert (task.primary, task.higher_is_better) == ("macro_f1", True)
    task.monitor("loss")
    assert (task.primary, task.higher_is_better) == ("loss", False)
    assert task.is_better(0.1, 0.2) and not task.is_better(0.3, 0.2)
