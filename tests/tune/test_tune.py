"""`gridseq tune`: the search space, the study's bookkeeping (exactly N trials, across a SIGKILL and two
processes), the test split never read, and best.json's command reproducing the best trial."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

optuna = pytest.importorskip("optuna", reason="gridseq tune needs Optuna: pip install 'gridseq[tune]'")
import sqlalchemy.exc

from gridseq import datasets
from gridseq.cli import main
from gridseq.errors import ConfigError
from gridseq.tune import default_space, tune
from gridseq.tune import space as spaces
from gridseq.tune.study import _Pruning

# a small space: each trial is one or two epochs of a tiny MLP on 240 series of 12 steps
SMALL = {"train.epochs": 2, "train.batch_size": {"type": "categorical", "choices": [16, 32]},
         "model.hidden": {"type": "categorical", "choices": [[16], [32]]}, "model.dropout": None}


@pytest.fixture(scope="module")
def series(tmp_path_factory) -> Path:
    """Two classes of noisy series that differ in their mean: learnable in a couple of epochs."""
    rng = np.random.default_rng(0)
    y = np.arange(240) % 2
    x = rng.normal(size=(240, 12)).astype(np.float32) + y[:, None] * 0.8
    path = tmp_path_factory.mktemp("data") / "series.npz"
    np.savez(path, x=x, y=y)
    return path


def _finished(db: Path, name: str | None = None) -> list:
    storage = f"sqlite:///{db}"
    name = name or optuna.study.get_all_study_names(storage)[0]
    return optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)


def _running(db: Path) -> bool:
    """Whether a RUNNING trial is training (it has reported an epoch, so all its parameters are drawn: a kill
    between two suggestions leaves a failed trial with part of them, seen in CI). Read without opening an
    Optuna storage: opening one creates the schema, which races with the process that is creating it (a UNIQUE
    failure on alembic_version, seen in CI)."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)) as con:
            return con.execute("SELECT count(*) FROM trials t JOIN trial_intermediate_values v ON v.trial_id = t.trial_id"
                               " WHERE t.state = 'RUNNING'").fetchone()[0] > 0
    except sqlite3.Error:  # the study is being created
        return False


# --- the space -------------------------------------------------------------------------------------

def test_default_space_offers_only_the_models_fields():
    lstm, cnn, tcn = default_space("lstm"), default_space("cnn"), default_space("tcn")
    assert {"model.hidden_size", "model.num_layers", "model.bidirectional", "model.dropout", "model.pooling"} <= set(lstm)
    assert "model.channels" not in lstm and "model.hidden_size" not in cnn
    assert cnn["model.channels"]["choices"][0] == [16, 32] and "model.hidden" in cnn
    assert tcn["model.channels"]["choices"] == [32, 64, 128] and "model.num_levels" in tcn
    for space in (lstm, cnn, tcn):
        assert {"train.lr", "train.weight_decay", "train.scheduler", "train.batch_size"} <= set(space)


def test_space_file_merges_fixes_and_removes(tmp_path):
    path = tmp_path / "space.json"
    path.write_text(json.dumps({"train.lr": {"type": "float", "low": 1e-3, "high": 1e-2, "log": True},
                                "train.epochs": 7, "model.pooling": None}))
    space, fixed = spaces.merge(default_space("lstm"), spaces.load_space_file(path), fields={"hidden_size", "pooling", "dropout"},
                                train_keys={"lr", "epochs"})
    assert space["train.lr"]["low"] == 1e-3 and "model.pooling" not in space and fixed == {"train.epochs": 7}


@pytest.mark.parametrize("entries, message", [
    ({"train.lrr": {"type": "float", "low": 0.1, "high": 1}}, "Did you mean 'lr'"),
    ({"hidden_size": 3}, "must be 'train.KEY' or 'model.FIELD'"),
    ({"train.lr": {"type": "float", "low": 0, "high": 1, "log": True}}, "low must be > 0"),
    ({"train.lr": {"type": "float", "low": 2, "high": 1}}, "low <= high"),
    ({"train.lr": {"type": "gauss"}}, "expected one of float, int, categorical"),
    ({"model.hidden_size": {"type": "categorical", "choices": []}}, "non-empty list"),
    ({"model.hidden_size": {"type": "int", "low": 1, "high": 4, "choices": [1]}}, "does not take choices"),
])
def test_bad_space_entries_are_named(entries, message):
    with pytest.raises(ConfigError, match=message) as e:
        spaces.merge({}, entries, fields={"hidden_size"}, train_keys={"lr"})
    assert "space" in str(e.value)


def test_list_choices_round_trip_through_optuna():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    values = spaces.suggest(trial, {"model.channels": {"type": "categorical", "choices": [[16, 32], [32, 64, 128]]}})
    assert values["model.channels"] in ([16, 32], [32, 64, 128])
    assert spaces.decode_params(trial.params) == values
    assert spaces.split_settings(values)[1]["channels"] in ((16, 32), (32, 64, 128))


def test_one_layer_trials_do_not_sample_dropout_between_layers():
    """torch's recurrent dropout acts only between stacked layers: a one-layer trial runs it off and does not
    sample it (so TPE does not learn from a setting that did nothing); a two-layer trial samples it."""
    space = {k: v for k, v in default_space("lstm").items() if k in ("model.num_layers", "model.dropout")}
    assert spaces.stacked_only("lstm") == {"model.dropout"} and spaces.stacked_only("crnn") == set()
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.enqueue_trial({"model.num_layers": 1})
    study.enqueue_trial({"model.num_layers": 2})
    one, two = study.ask(), study.ask()
    got = [spaces.suggest(t, space, stacked=spaces.stacked_only("lstm")) for t in (one, two)]
    for trial in (one, two):
        study.tell(trial, 0.5)
    assert got[0] == {"model.num_layers": 1, "model.dropout": spaces.OFF} and "model.dropout" not in one.params
    assert "model.dropout" in two.params and got[1]["model.dropout"] == two.params["model.dropout"]
    first = study.trials[0]
    assert first.user_attrs["inactive"] == {"model.dropout": spaces.OFF}
    assert spaces.trial_settings(first) == got[0]


def test_dropout_is_fixed_off_when_the_depth_is_one(series, tmp_path, caplog):
    """With model.num_layers fixed at 1, dropout leaves the search and every trial, best.json and its
    command run it off; searching it then is named as doing nothing."""
    space = {"train.epochs": 1, "model.num_layers": 1, "model.hidden_size": {"type": "categorical", "choices": [8, 16]},
             "model.bidirectional": False, "model.pooling": "last", "train.batch_size": 32}
    result = tune(os.fspath(series), "gru", trials=2, out=tmp_path / "study", space=space, progress=False)
    assert result.params["model.dropout"] == spaces.OFF and "model.dropout=0.0" in result.command
    rows = json.loads((tmp_path / "study" / "trials.json").read_text())
    assert all(r["params"].get("model.dropout", spaces.OFF) == spaces.OFF for r in rows)
    searched = {**space, "model.dropout": {"type": "float", "low": 0.1, "high": 0.5}}
    with caplog.at_level("WARNING", logger="gridseq.tune"):
        again = tune(os.fspath(series), "gru", trials=1, out=tmp_path / "searched", space=searched, progress=False)
    assert again.params["model.dropout"] == spaces.OFF
    assert "model.dropout is not searched: with model.num_layers=1 it does nothing" in caplog.text


class _Trial:
    def __init__(self, prune: bool):
        self.prune, self.reported = prune, {}

    def report(self, value, step):
        self.reported[step] = value

    def should_prune(self):
        return self.prune


class _State:
    def __init__(self, epoch: int, epochs: int):
        self.record, self.epochs, self.should_stop = {"epoch": epoch, "val_accuracy": 0.5}, epochs, False


@pytest.mark.parametrize("epoch, prune, deadline, stops, reason", [
    (1, True, None, False, None),       # the first quarter of 8 epochs is never pruned
    (2, True, None, True, "pruned"),
    (3, False, None, False, None),
    (3, False, 0.0, True, "time limit"),  # past the deadline
    (8, True, 0.0, False, None),         # the last epoch: nothing to stop
])
def test_pruning_callback(epoch, prune, deadline, stops, reason):
    trial, state = _Trial(prune), _State(epoch, 8)
    callback = _Pruning(trial, "accuracy", deadline)
    callback.on_epoch_end(state)
    assert trial.reported == {epoch: 0.5}
    assert (state.should_stop, callback.reason) == (stops, reason)


# --- a study -----------------------------------------------------------------------------------------

def test_tune_finds_and_records_a_reproducible_best(series, tmp_path, monkeypatch, capsys):
    """N trials finish; best.json's command, run by `gridseq train`, reaches the same validation score;
    the test split is never read during the search (its arrays are replaced by ones that raise)."""
    real_load = datasets.load
    reads = []

    class Guard:  # stands in for the test split: any attribute read is recorded
        def __init__(self, split):
            self._split = split

        def __len__(self):
            reads.append("len")
            return len(self._split)

        def __getattr__(self, name):
            reads.append(name)
            return getattr(self._split, name)

    def guarded(*args, **kwargs):
        data = real_load(*args, **kwargs)
        data.test = Guard(data.test)
        return data

    monkeypatch.setattr(datasets, "load", guarded)
    out = tmp_path / "study"
    result = tune(os.fspath(series), "mlp", trials=4, out=out, space=SMALL, progress=False)
    assert reads == []
    assert result.trials["finished"] == 4 and len(result.top) == result.trials["complete"]
    best = json.loads((out / "best.json").read_text())
    assert set(best) >= {"value", "params", "command"} and best["value"] == pytest.approx(result.value)
    assert best["params"]["train.epochs"] == 2 and "model.dropout" not in best["params"]
    assert (out / "history.png").read_bytes()[:4] == b"\x89PNG"
    rows = json.loads((out / "trials.json").read_text())
    assert len(rows) == 4
    # trial 0 is today's defaults (fit's lr 1e-3; the default batch size 64 is outside this space, so it is drawn)
    assert rows[0]["defaults"] is True and rows[0]["params"]["train.lr"] == 1e-3 and rows[0]["params"]["train.scheduler"] == "none"
    assert not any(r.get("defaults") for r in rows[1:])

    monkeypatch.setattr(datasets, "load", real_load)
    run_dir = tmp_path / "again"
    assert main([*shlex.split(best["command"])[1:], "--run-dir", os.fspath(run_dir), "--no-progress"]) == 0
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["val"]["accuracy"] == pytest.approx(best["value"], abs=1e-9)

    # the same call again continues the study: nothing left to run, the same best
    again = tune(os.fspath(series), "mlp", trials=4, out=out, space=SMALL, progress=False)
    assert again.trials["finished"] == 4 and again.value == result.value
    # a different space is refused rather than mixed into the study
    with pytest.raises(ConfigError, match="another space"):
        tune(os.fspath(series), "mlp", trials=5, out=out, space={**SMALL, "train.batch_size": 16}, progress=False)


def test_metric_scores_trials_and_the_command_selects_by_it(series, tmp_path):
    """metric="loss": trials minimise the validation loss (each trial's best epoch by loss too), the command
    carries --train.monitor so it reproduces the score, and the study refuses another metric afterwards."""
    out = tmp_path / "by-loss"
    result = tune(os.fspath(series), "mlp", trials=2, out=out, space=SMALL, progress=False, metric="loss")
    assert (result.metric, result.direction) == ("loss", "minimize")
    assert result.params["train.monitor"] == "loss" and "--train.monitor=loss" in result.command
    complete = [r for r in json.loads((out / "trials.json").read_text()) if r["state"] == "complete"]
    assert result.value == min(r["value"] for r in complete)
    run_dir = tmp_path / "again"
    assert main([*shlex.split(result.command)[1:], "--run-dir", os.fspath(run_dir), "--no-progress"]) == 0
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["val"]["loss"] == pytest.approx(result.value, abs=1e-9)
    with pytest.raises(ConfigError, match="scores its trials by loss, not accuracy"):
        tune(os.fspath(series), "mlp", trials=3, out=out, space=SMALL, progress=False)


@pytest.mark.parametrize("kwargs, match", [
    ({"metric": "macro_f2"}, "it reports accuracy, loss, macro_f1. Did you mean 'macro_f1'"),
    ({"space": {**SMALL, "train.monitor": {"type": "categorical", "choices": ["loss", "accuracy"]}}}, "cannot be searched"),
])
def test_bad_metrics_are_refused_before_any_trial(series, tmp_path, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        tune(os.fspath(series), "mlp", trials=2, out=tmp_path / "bad", **{"space": SMALL, **kwargs}, progress=False)
    db = tmp_path / "bad" / "study.db"
    assert not db.exists() or not _finished(db)


def test_a_trial_the_time_limit_stops_is_run_again_when_the_study_continues(series, tmp_path, monkeypatch):
    """Stopped by --timeout after its first epoch, a trial is not a verdict: it fails (not pruned, not counted
    among the N) and the next run queues its settings again, once."""
    from gridseq.tune import study as study_mod

    looks = iter([False])  # the process starts one trial, then finds itself out of time
    monkeypatch.setattr(study_mod.Worker, "_out_of_time", lambda self: next(looks, True))
    out = tmp_path / "late"
    with pytest.raises(ConfigError, match="0 pruned, 0 failed, 1 stopped by the time limit"):
        tune(os.fspath(series), "mlp", trials=2, out=out, space=SMALL, progress=False, timeout=1e-3)  # past at epoch 1 of 2
    monkeypatch.undo()
    (first,) = _finished(out / "study.db")
    assert first.state == optuna.trial.TrialState.FAIL and first.user_attrs["stopped"] == "time limit"
    assert sorted(first.intermediate_values) == [1]

    result = tune(os.fspath(series), "mlp", trials=2, out=out, space=SMALL, progress=False)
    assert result.trials["finished"] == 2 and result.trials["timed_out"] == 1 and result.trials["failed"] == 0
    trials = _finished(out / "study.db")
    assert [t.number for t in trials] == [0, 1, 2]
    assert trials[1].user_attrs["retry_of"] == 0 and trials[1].params == first.params and trials[1].user_attrs.get("defaults")
    assert trials[1].state == optuna.trial.TrialState.COMPLETE and len(trials[1].intermediate_values) == 2
    rows = json.loads((out / "trials.json").read_text())
    assert rows[1]["retried_from"] == 0 and rows[0]["stopped"] == "time limit"
    again = tune(os.fspath(series), "mlp", trials=2, out=out, space=SMALL, progress=False)  # queued once, not on every run
    assert len(_finished(out / "study.db")) == 3 and again.trials["finished"] == 2


def test_cli_errors_are_one_line(series, tmp_path, capsys):
    bad = tmp_path / "space.yaml"
    bad.write_text("train.lr: {type: float, low: 1, high: 0}\n")
    assert main(["tune", os.fspath(series), "--model", "mlp", "--space", os.fspath(bad), "--out", os.fspath(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "low <= high" in err and "space.yaml" in err
    assert main(["tune", os.fspath(series), "--model", "mlp", "--model.hiden=3", "--out", os.fspath(tmp_path / "o")]) == 2
    assert "model.hidden" in capsys.readouterr().err
    assert main(["tune", os.fspath(series), "--model", "mlp", "--metric", "f1", "--out", os.fspath(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "monitor must name a validation metric" in err and "macro_f1" in err


def test_storage_open_retries_the_schema_creation_race(tmp_path, monkeypatch):
    """Two processes creating one new SQLite storage at once: the loser's CREATE TABLE fails ("already exists",
    or a UNIQUE failure on the schema version); opening again succeeds. Other failures are one GridseqError."""
    from gridseq.errors import GridseqError
    from gridseq.tune import study as studies

    real, calls = optuna.storages.RDBStorage, []

    def racing(url, **kwargs):
        calls.append(url)
        if len(calls) == 1:
            raise sqlalchemy.exc.OperationalError("CREATE TABLE trials", {}, Exception("table trials already exists"))
        return real(url, **kwargs)

    monkeypatch.setattr(optuna.storages, "RDBStorage", racing)
    monkeypatch.setattr(studies.time, "sleep", lambda s: None)
    storage = studies.storage_for(f"sqlite:///{tmp_path / 'a.db'}")
    assert len(calls) == 2 and isinstance(storage, real) and storage.get_all_studies() == []
    with pytest.raises(GridseqError, match="cannot open the study storage .*unable to open database file"):
        studies.storage_for(f"sqlite:///{tmp_path / 'missing' / 'b.db'}")  # not a race: no retry, one error
    assert len(calls) == 3


def _command(series: Path, out: Path, trials: int, *extra: str) -> list[str]:
    space = out.parent / "space.json"
    space.write_text(json.dumps(SMALL))
    return [sys.executable, "-m", "gridseq", "tune", os.fspath(series), "--model", "mlp", "--trials", str(trials), "--out", os.fspath(out),
            "--space", os.fspath(space), "--threads", "1", "--no-progress", *extra]


def test_sigkill_then_rerun_ends_with_exactly_n_trials(series, tmp_path):
    """Killed while a trial runs, the same command continues: N finished trials, no number twice, the
    killed trial failed and its parameters retried."""
    out = tmp_path / "study"
    # epochs long enough that the kill lands inside a trial
    cmd = _command(series, out, 3, "--train.epochs=40")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db = out / "study.db"
    deadline = time.time() + 300  # a loaded machine can take minutes to import torch and load the data
    while time.time() < deadline:
        time.sleep(0.5)
        if db.exists() and _running(db):
            break
    else:
        proc.kill()
        pytest.fail("no trial started within 300 s")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    trials = _finished(db)
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers))
    states = [t.state for t in trials]
    assert sum(s in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED) for s in states) == 3
    failed = [t for t in trials if t.state == optuna.trial.TrialState.FAIL]
    assert len(failed) == 1 and "died" in failed[0].user_attrs["error"]
    retried = [t for t in trials if t.system_attrs.get("failed_trial") == failed[0].number]
    assert len(retried) == 1 and retried[0].params == failed[0].params


def test_two_processes_share_one_study(series, tmp_path):
    """Two `gridseq tune` commands on one storage URL finish N trials between them, not N each."""
    out = tmp_path / "shared"
    out.mkdir()
    storage = f"sqlite:///{out / 'shared.db'}"
    procs = [subprocess.Popen(_command(series, out / f"p{i}", 5, "--storage", storage, "--study", "shared"),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for i in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
    trials = optuna.load_study(study_name="shared", storage=storage).get_trials(deepcopy=False)
    finished = [t for t in trials if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)]
    assert len(finished) == 5
    assert len({t.user_attrs["pid"] for t in finished}) == 2  # both processes ran trials
    assert len({t.number for t in trials}) == len(trials)


def test_cross_validated_trials_and_their_refit(series, tmp_path):
    """With cv, a trial's value is the k-fold mean held-out score (what cross_validate gives for the same
    settings), the command asks for --cv K --refit, and train_best refits for the chosen epoch count."""
    from gridseq import models, train

    result = tune(os.fspath(series), "mlp", trials=2, cv=3, out=tmp_path / "cv", space=SMALL, progress=False, train_best=True)
    assert "--cv 3 --refit" in result.command and result.cv == 3 and 1 <= result.epochs <= 2
    data = datasets.load(os.fspath(series), seed=0)
    params = {k.split(".", 1)[1]: v for k, v in result.params.items()}
    model_kw = {"hidden": tuple(params.pop("hidden"))}
    again = train.cross_validate(lambda: models.create_for("mlp", data.info, **model_kw), data, folds=3, seed=0, progress=False, **params)
    assert again.mean == pytest.approx(result.value, abs=1e-9) and again.best_epochs == result.epochs
    config = json.loads((result.run_dir / "config.json").read_text())
    assert config["train"]["epochs"] == result.epochs and set(result.test) >= {"accuracy"}


def _best(folder: Path, **changes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    best = {"dataset": "digits", "model": "mlp", "value": 0.9, "params": {"train.lr": 0.0042, "model.hidden": [48]}, **changes}
    (folder / "best.json").write_text(json.dumps(best))
    return folder


def test_compare_takes_tuned_settings(tmp_path):
    from gridseq.compare import plan

    specs = plan.parse_models("mlp,cnn", dataset="digits", kind="image", task="classify")
    tuned = plan.apply_tuned(specs, [_best(tmp_path / "t")], "digits")
    train_kw, model_kw = plan.resolve_settings("digits", tuned[0], plan.Budget(epochs=3))
    assert train_kw["lr"] == 0.0042 and train_kw["epochs"] == 3 and model_kw["hidden"] == (48,)
    assert plan.resolve_settings("digits", tuned[1], plan.Budget())[0].get("lr") is None  # cnn keeps its defaults
    with pytest.raises(ConfigError, match="tuned on 'mnist1d'"):
        plan.apply_tuned(specs, {"mlp": _best(tmp_path / "m", dataset="mnist1d")}, "digits")
    with pytest.raises(ConfigError, match="tuned for model 'mlp', not 'cnn'"):
        plan.apply_tuned(specs, {"cnn": tmp_path / "t"}, "digits")
    with pytest.raises(ConfigError, match="not a `gridseq tune` result"):
        (tmp_path / "bad").mkdir()
        (tmp_path / "bad" / "best.json").write_text("{}")
        plan.apply_tuned(specs, [tmp_path / "bad"], "digits")


def test_compare_cli_trains_with_tuned_settings(series, tmp_path):
    folder = _best(tmp_path / "t", dataset=os.fspath(series))
    out = tmp_path / "report"
    assert main(["compare", os.fspath(series), "--models", "mlp", "--seeds", "1", "--epochs", "1", "--no-timing", "--no-plots",
                 "--tuned", f"mlp={folder}", "--out", os.fspath(out), "--no-progress"]) == 0
    report = json.loads((out / "report.json").read_text())
    text = json.dumps(report)
    assert '"lr": 0.0042' in text and '"hidden": [48]' in text.replace("[\n", "[")


def test_ctrl_c_stops_the_study_with_one_line(series, tmp_path):
    """Ctrl-C during a trial: exit 130, one line saying how to continue; the trial is recorded as failed."""
    out = tmp_path / "study"
    proc = subprocess.Popen(_command(series, out, 50, "--train.epochs=3000"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    db = out / "study.db"
    deadline = time.time() + 300  # a loaded machine can take minutes to import torch and load the data
    while time.time() < deadline:
        time.sleep(0.5)
        if db.exists() and _running(db):
            break
    else:
        proc.kill()
        pytest.fail("no trial started within 300 s")
    time.sleep(1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    line = err.strip().splitlines()[-1]
    assert line.startswith("gridseq: error: tuning stopped by Ctrl-C") and "Rerun the same command" in line, err
    # failed by Optuna as the interrupt passed through it; RUNNING if it landed inside Optuna's own write,
    # which the next run fails at once (its process is gone) — never complete
    states = [t.state for t in _finished(db)]
    assert states in ([optuna.trial.TrialState.FAIL], [optuna.trial.TrialState.RUNNING]), (states, err)
