"""fit and evaluate: learning, determinism, run directories, early stopping, schedules, clipping,
divergence, progress and callbacks."""

import json
import sys

import pytest
import torch
from torch import nn
from train_helpers import TinyNet, build, make_data

import gridseq
from gridseq import io
from gridseq.data.contract import Dataset, DatasetInfo, Split
from gridseq.errors import CheckpointError, ConfigError, GridseqError
from gridseq.models import registry
from gridseq.train import Callback, evaluate, fit, open_run, read_history
from gridseq.train.checkpoint import load_checkpoint
from gridseq.train.optim import resolve_grad_clip
from gridseq.train.progress import BarProgress, LineProgress, progress_for

FAST = dict(batch_size=16, lr=1e-2, progress=False)


def weights_equal(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_fit_learns_and_keeps_best_weights(tiny, data):
    model = build(tiny, data)
    result = gridseq.fit(model, data, epochs=8, **FAST)
    assert result.test["accuracy"] > 1 / 3 + 0.35  # chance is 1/3
    assert len(result.history) == 8 and result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    best = max(result.history, key=lambda r: r["val_accuracy"])
    assert result.best_epoch == result.history.index(best) + 1
    # the model holds the best epoch's weights: re-evaluating gives that epoch's val metrics
    assert evaluate(model, data.val, info=data.info) == pytest.approx(result.val)
    assert set(result.val) == {"loss", "accuracy", "macro_f1"}


def test_same_seed_same_weights(tiny, data):
    runs = [build(tiny, data, seed=3) for _ in range(3)]
    fit(runs[0], data, epochs=2, seed=1, **FAST)
    fit(runs[1], data, epochs=2, seed=1, **FAST)
    fit(runs[2], data, epochs=2, seed=2, **FAST)
    assert weights_equal(runs[0], runs[1])
    assert not weights_equal(runs[0], runs[2])  # the seed drives batch order and dropout


def test_run_directory(tiny, data, tmp_path):
    run = tmp_path / "run"
    model = build(tiny, data)
    result = fit(model, data, epochs=3, run_dir=run, data_spec={"name": "synthetic", "seed": 0}, **FAST)
    assert result.run_dir == run
    assert {"config.json", "model.safetensors", "metrics.json", "history.jsonl", "checkpoint"} <= {p.name for p in run.iterdir()}

    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics) == {"val", "test", "train_seconds", "epochs", "best_epoch", "parameters", "samples_per_second"}
    assert metrics["val"] == result.val and metrics["test"] == result.test
    assert metrics["epochs"] == 3 and metrics["parameters"] == sum(p.numel() for p in model.parameters())
    assert metrics["train_seconds"] > 0 and metrics["samples_per_second"] > 0

    assert read_history(run) == result.history
    assert [r["epoch"] for r in result.history] == [1, 2, 3]

    config = io.read_config(run)
    assert config["model"]["name"] == tiny
    assert config["data"]["name"] == "synthetic" and config["data"]["seed"] == 0
    assert config["data"]["info"] == data.info.to_json()
    assert config["train"]["epochs"] == 3 and config["train"]["lr"] == 1e-2 and config["train"]["grad_clip"] == 0.0
    assert config["task"] == {"name": "classify", "primary": "accuracy", "higher_is_better": True}
    assert config["seed"] == 0 and {"torch", "gridseq", "python"} <= set(config["versions"])

    loaded, config2 = open_run(run)
    assert config2 == config
    assert weights_equal(loaded, model)  # model.safetensors holds the best weights
    assert evaluate(loaded, data.test, info=data.info) == pytest.approx(result.test)


def test_existing_run_is_not_overwritten(tiny, data, tmp_path):
    fit(build(tiny, data), data, epochs=1, run_dir=tmp_path, **FAST)
    with pytest.raises(ConfigError, match="already holds a training run; pass resume=True"):
        fit(build(tiny, data), data, epochs=1, run_dir=tmp_path, **FAST)
    with pytest.raises(ConfigError, match="batch_size=16 then, 32 now"):
        fit(build(tiny, data), data, epochs=2, run_dir=tmp_path, resume=True, **{**FAST, "batch_size": 32})


def test_unregistered_model_with_run_dir_fails_before_training(data, tmp_path):
    with pytest.raises(ConfigError, match="not built by gridseq.models.create"):
        fit(TinyNet(TinyNet.Config(2, 3)), data, epochs=1, run_dir=tmp_path, **FAST)
    assert not (tmp_path / "checkpoint").exists()


def test_early_stopping(tiny, data):
    # a learning rate this small changes no prediction, so val accuracy never improves after epoch 1
    result = fit(build(tiny, data), data, epochs=10, patience=2, **{**FAST, "lr": 1e-12})
    assert len(result.history) == 3 and result.stopped_early and result.best_epoch == 1


@pytest.mark.parametrize("scheduler", ["cosine", "onecycle", "plateau"])
def test_schedulers(tiny, data, scheduler):
    lr = 1e-12 if scheduler == "plateau" else 1e-2
    epochs = 5 if scheduler == "plateau" else 3
    result = fit(build(tiny, data), data, epochs=epochs, scheduler=scheduler, **{**FAST, "lr": lr})
    lrs = [r["lr"] for r in result.history]
    if scheduler == "cosine":
        assert lrs[0] > lrs[1] > lrs[2] and lrs[2] < 1e-3 * lr  # annealed to ~0 over the whole run
    elif scheduler == "onecycle":
        assert lrs[0] > lr / 25 and lrs[2] < 1e-2 * lr  # warmed up from lr/25, then annealed
    else:
        # no improvement after epoch 1; after patience (2) + 1 bad epochs the rate halves
        assert lrs[:4] == [lr] * 4 and lrs[4] == pytest.approx(lr / 2)


def test_grad_clip_default_for_recurrent_models(data, monkeypatch):
    lstm = registry.create("lstm", input_size=2, num_classes=3, hidden_size=8)
    mlp = registry.create("mlp", input_shape=(8, 2), num_classes=3, hidden=(8,))
    assert resolve_grad_clip(lstm, None) == 1.0 and resolve_grad_clip(nn.GRU(2, 3), None) == 1.0
    assert resolve_grad_clip(mlp, None) is None
    assert resolve_grad_clip(lstm, 0) is None and resolve_grad_clip(mlp, 2.5) == 2.5

    calls = []
    real = torch.nn.utils.clip_grad_norm_
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", lambda params, max_norm: calls.append(max_norm) or real(params, max_norm))
    fit(lstm, data, epochs=1, **FAST)
    assert calls == [1.0] * 10  # every step of 160 items / 16
    calls.clear()
    fit(mlp, data, epochs=1, **FAST)
    assert calls == []


class NaNAt(TinyNet):
    """Returns NaN logits on training call number `bad_call` (a loss that blows up, deterministically)."""

    bad_call = 13

    def __init__(self, config):
        super().__init__(config)
        self.calls = 0

    def forward(self, x, lengths=None):
        out = super().forward(x)
        if self.training:
            self.calls += 1
            if self.calls == self.bad_call:
                return out * float("nan")
        return out


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(data, tmp_path):
    registry.register("_nan_test", NaNAt, description="test", kinds=("series",))
    try:
        model = registry.create("_nan_test", input_size=2, num_classes=3)
        with pytest.raises(GridseqError, match=r"loss became nan at epoch 2, step 3 .*last good checkpoint \(after epoch 1, step 0\)"):
            fit(model, data, epochs=3, run_dir=tmp_path, **FAST)
    finally:
        registry._entries.pop("_nan_test")
    assert load_checkpoint(tmp_path / "checkpoint")["position"] == {"epoch": 1, "step": 0, "global_step": 10}
    assert len(read_history(tmp_path)) == 1


def test_huge_learning_rate_diverges(tiny, data):
    with pytest.raises(GridseqError, match=r"loss became (nan|inf) at epoch \d+, step \d+"):
        fit(build(tiny, data), data, epochs=5, optimizer="sgd", **{**FAST, "lr": 1e10})


class Recorder(Callback):
    def __init__(self, stop_after=None):
        self.events, self.stop_after = [], stop_after

    def on_fit_start(self, state):
        self.events.append("fit_start")

    def on_epoch_start(self, state):
        self.events.append(f"epoch_start {state.epoch}")

    def on_batch_end(self, state):
        self.events.append("batch")

    def on_epoch_end(self, state):
        self.events.append(f"epoch_end {state.record['epoch']}")
        if state.record["epoch"] == self.stop_after:
            state.should_stop = True

    def on_fit_end(self, state):
        self.events.append("fit_end")


def test_callbacks_see_events_and_can_stop(tiny, data):
    rec = Recorder(stop_after=2)
    result = fit(build(tiny, data), data, epochs=5, callbacks=[rec], **FAST)
    batches = ["batch"] * 10
    assert rec.events == ["fit_start", "epoch_start 0", *batches, "epoch_end 1", "epoch_start 1", *batches, "epoch_end 2", "fit_end"]
    assert len(result.history) == 2 and result.stopped_early


def test_progress_lines_on_stderr(tiny, data, capfd):
    fit(build(tiny, data), data, epochs=2, **{**FAST, "progress": None})
    out, err = capfd.readouterr()
    lines = err.strip().splitlines()
    assert out == "" and len(lines) == 2
    assert lines[0].startswith("epoch 1/2  train_loss ") and "val_accuracy" in lines[0] and "samples/s" in lines[0]
    fit(build(tiny, data), data, epochs=1, **FAST)  # progress=False
    assert capfd.readouterr().err == ""


def test_progress_style(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    assert type(progress_for(None, main=True)) is BarProgress
    assert progress_for(None, main=False) is None and progress_for(False, main=True) is None
    monkeypatch.setenv("CI", "true")
    assert type(progress_for(True, main=True)) is LineProgress


def test_progress_bar_runs_and_prints_summary(tiny, data, monkeypatch, capsys):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    monkeypatch.delenv("CI", raising=False)
    fit(build(tiny, data), data, epochs=2, **{**FAST, "progress": True})
    err = capsys.readouterr().err
    assert "epoch 1/2  train_loss" in err and "epoch 2/2  train_loss" in err


class NeedsLengths(nn.Module):
    """Mean of the valid steps' first feature → 2 logits; fails loudly if lengths are not passed."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x, lengths):
        mask = torch.arange(x.shape[1])[None] < lengths[:, None]  # (B, T)
        mean = (x[..., 0] * mask).sum(1) / lengths
        return torch.stack([-mean, mean], 1) * self.scale


def test_evaluate_variable_length_and_mode():
    lengths = torch.tensor([3, 1, 2, 3])
    x = torch.zeros(4, 3, 1)
    x[0, :3, 0], x[1, 0, 0], x[2, :2, 0], x[3, :3, 0] = 1.0, -1.0, 1.0, -1.0
    x[1, 1:, 0] = 100.0  # padding that would flip the label if read
    split = Split(x, torch.tensor([1, 0, 1, 1]), lengths)
    model = NeedsLengths().train()
    metrics = evaluate(model, split, batch_size=3)
    assert metrics["accuracy"] == 0.75 and model.training
    assert evaluate(model, Split(x[:0], torch.zeros(0, dtype=torch.long), lengths[:0])) == {}


def test_argument_errors(tiny, data):
    model = build(tiny, data)
    with pytest.raises(ConfigError, match="optimizer must be one of .* Did you mean 'adamw'"):
        fit(model, data, optimizer="adamww")
    with pytest.raises(ConfigError, match="need a run directory"):
        fit(model, data, resume=True)
    with pytest.raises(ConfigError, match="lr must be a positive number"):
        fit(model, data, lr=0)
    with pytest.raises(ConfigError, match="grad_clip"):
        fit(model, data, grad_clip=-1)
    with pytest.raises(ConfigError, match="device"):
        fit(model, data, device="gpu!")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="sees no CUDA GPU"):
            fit(model, data, device="cuda")
    with pytest.raises(ConfigError, match="many-to-many"):
        fit(registry.create("lstm", input_size=2, num_classes=3, per_step=True), data)


def test_without_validation_split_best_is_picked_on_train(tiny):
    full = make_data()
    empty = Split(full.val.x[:0], full.val.y[:0])
    data = Dataset(full.info, full.train, empty, full.test)
    result = fit(build(tiny, data), data, epochs=2, **FAST)
    assert result.val == {} and "val_accuracy" not in result.history[0] and result.best_epoch >= 1
    assert set(result.test) == {"loss", "accuracy", "macro_f1"}


def test_resume_without_checkpoint_starts_fresh_and_corrupt_checkpoint_fails(tiny, data, tmp_path):
    first = fit(build(tiny, data), data, epochs=1, run_dir=tmp_path, resume=True, **FAST)
    assert len(first.history) == 1
    ckpt = tmp_path / "checkpoint"
    tensors = next(ckpt.glob("tensors-*.safetensors"))
    tensors.write_bytes(tensors.read_bytes()[:-7])
    with pytest.raises(CheckpointError, match=tensors.name):
        fit(build(tiny, data), data, epochs=2, run_dir=tmp_path, resume=True, **FAST)
    assert tensors.exists() and (ckpt / "manifest.json").exists()


def test_fit_passes_lengths_for_variable_length_data():
    g = torch.Generator().manual_seed(0)
    n, t = 64, 6
    lengths = torch.randint(1, t + 1, (n,), generator=g)
    sign = torch.randint(0, 2, (n,), generator=g)
    x = torch.full((n, t, 1), -50.0)  # padding that would flip every label if it were read
    for i in range(n):
        x[i, : lengths[i], 0] = 1.0 if sign[i] else -1.0
    info = DatasetInfo(name="signs", kind="series", input_shape=(t, 1), num_classes=2, class_names=("neg", "pos"), variable_length=True)
    split = Split(x, sign, lengths)
    data = Dataset(info, split, split, split)
    result = fit(NeedsLengths(), data, epochs=1, **FAST)  # NeedsLengths fails without lengths
    assert result.test["accuracy"] == 1.0


def _image_data(n=96):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 1, 12, 12, generator=g)
    y = (x[:, 0, :6].mean(dim=(1, 2)) > x[:, 0, 6:].mean(dim=(1, 2))).long()  # top half brighter?
    info = DatasetInfo("img", "image", (1, 12, 12), 2, ("a", "b"))
    return Dataset(info, Split(x[:64], y[:64]), Split(x[64:80], y[64:80]), Split(x[80:], y[80:]))


def test_channels_last_trains_the_same_model_and_hands_it_back_contiguous(tmp_path):
    data = _image_data()
    seen = []

    class Layout(Callback):
        def on_batch_end(self, state):
            conv = [m for m in state.model.modules() if isinstance(m, nn.Conv2d)][-1]  # 8 -> 8 channels
            seen.append(conv.weight.is_contiguous(memory_format=torch.channels_last))

    runs = {}
    for flag in (None, False):  # None: automatic, on for a conv model on images on the CPU
        torch.manual_seed(0)
        model = gridseq.models.create("cnn", input_shape=(1, 12, 12), num_classes=2, channels=(8, 8))
        fit(model, data, epochs=2, batch_size=16, seed=0, progress=False, channels_last=flag,
            callbacks=[Layout()], run_dir=tmp_path / str(flag))
        runs[flag] = model
        assert all(p.is_contiguous() for p in model.parameters())  # handed back in the default layout
    assert seen[0] is True and seen[-1] is False  # trained channels-last, then the default layout
    for a, b in zip(runs[None].parameters(), runs[False].parameters()):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)  # the same training, another memory layout
    saved = gridseq.load(tmp_path / "None").eval()
    x = data.test.x
    torch.testing.assert_close(saved(x), runs[None].eval()(x))
    with pytest.raises(ConfigError, match="channels_last"):
        fit(runs[None], data, epochs=1, channels_last="yes", progress=False)
