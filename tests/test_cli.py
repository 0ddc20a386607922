"""The `gridseq` command: listing, argument errors (one line, exit 2), train → evaluate → predict end to
end on a built-in dataset, an image folder and a CSV of sequences, and `python -m gridseq`."""

import inspect
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from gridseq import cli, defaults, models
from gridseq.cli import models as cli_models
from gridseq.cli.overrides import parse_value, resolve, split_overrides
from gridseq.errors import ConfigError


def run(capsys, *argv):
    """main(argv) in-process → (exit code, stdout, stderr)."""
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, *fragments):
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("gridseq: error: ")
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0]


# --- listing, help, version ---------------------------------------------------------------------

def test_models_json_lists_every_registered_model(capsys):
    code, out, _ = run(capsys, "models", "--json")
    records = json.loads(out)
    assert code == 0
    assert [r["name"] for r in records] == models.names()
    assert all(r["kinds"] and r["description"] for r in records)


def test_models_table_names_each_model(capsys):
    code, out, _ = run(capsys, "models")
    assert code == 0
    for name in models.names():
        assert f" {name} " in out


def test_datasets_lists_builtins_with_sizes(capsys):
    code, out, _ = run(capsys, "datasets", "--json")
    records = {r["name"]: r for r in json.loads(out)}
    assert code == 0
    assert {"digits", "mnist1d"} <= set(records)
    assert records["digits"]["kind"] == "image" and records["digits"]["num_classes"] == 10
    assert sum(records["digits"][s] for s in ("train", "val", "test")) == 1797
    code, out, _ = run(capsys, "datasets")
    assert code == 0 and "digits" in out and "mnist1d" in out


@pytest.mark.parametrize("command", [[], ["datasets"], ["models"], ["train"], ["evaluate"], ["predict"]])
def test_help_everywhere(capsys, command):
    code, out, _ = run(capsys, *command, "--help")
    assert code == 0
    assert out.startswith(f"usage: gridseq {' '.join(command)}".rstrip())


def test_version(capsys):
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.strip() == f"gridseq {__import__('gridseq').__version__}"


# --- errors: one line on stderr, exit 2 ---------------------------------------------------------

@pytest.mark.parametrize("argv, fragments", [
    (["trian"], ["invalid choice: 'trian'", "Did you mean 'train'?"]),
    (["train", "digits"], ["required: --model"]),
    (["train", "digitz", "--model", "cnn"], ["unknown dataset 'digitz'", "Did you mean 'digits'?"]),
    (["train", "digits", "--model", "cnnn"], ["unknown model 'cnnn'", "Did you mean 'cnn'?"]),
    (["train", "digits", "--model", "lstm", "--view", "image"], ["model 'lstm' takes sequence", "models for it: cnn, fcn, mlp, resnet, resnet18, resnet34."]),
    (["train", "digits", "--model", "cnn", "--epochs", "0"], ["--epochs", "positive int"]),
    (["train", "digits", "--model", "cnn", "--hiden-size", "8"], ["unrecognized", "Did you mean '--hidden-size'?"]),
    (["train", "digits", "--model", "gru", "--model.hiden_size=8"],
     ["Unknown config key: 'model.hiden_size'. Did you mean 'model.hidden_size'?"]),
    (["train", "digits", "--model", "gru", "--modle.hidden_size=8"], ["Did you mean 'model.hidden_size'?"]),
    (["train", "digits", "--model", "gru", "--model.hidden_size=big"], ["model.hidden_size must be an int, got 'big'"]),
    (["train", "digits", "--model", "cnn", "--hidden-size", "8"], ["--hidden-size does not apply to model 'cnn'"]),
    (["train", "digits", "--model", "cnn", "--image-size", "8by8"], ["expected HxW"]),
    (["models", "--model.hidden_size=8"], ["train option"]),
    (["train", "digits", "--model", "cnn", "--resume", "--overwrite"], ["give one of them"]),
    (["train", "digits", "--model", "mlp", "--epochs", "1", "--monitor", "f1"],
     ["monitor must name a validation metric of the classify task, got 'f1'", "accuracy, loss, macro_f1"]),
    (["evaluate", "no/such/run"], ["no/such/run", "not a directory"]),
    (["predict", "no/such/run", "--split", "test"], ["not a directory"]),
])
def test_user_errors_are_one_line_and_exit_2(capsys, tmp_path, monkeypatch, argv, fragments):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, *argv)
    assert_one_line_error(code, err, *fragments)


def test_missing_data_file_is_one_line(capsys, tmp_path):
    code, _, err = run(capsys, "train", tmp_path / "missing.csv", "--model", "gru", "--run-dir", tmp_path / "r")
    assert_one_line_error(code, err, "missing.csv")
    assert not (tmp_path / "r").exists()


def test_keyboard_interrupt_exits_130_with_one_line(capsys, monkeypatch):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_models, "cmd_models", interrupted)
    code, _, err = run(capsys, "models")
    assert code == 130 and err.strip() == "gridseq: error: interrupted"


def test_other_exceptions_are_bugs_and_propagate(monkeypatch):
    def broken(args):
        raise RuntimeError("a bug")

    monkeypatch.setattr(cli_models, "cmd_models", broken)
    with pytest.raises(RuntimeError, match="a bug"):
        cli.main(["models"])


# --- dotted overrides and defaults --------------------------------------------------------------

def test_split_overrides_takes_both_spellings_and_stops_at_double_dash():
    rest, found = split_overrides(["train", "x", "--model.a=1", "--train.lr", "0.1", "--epochs=2", "--", "--model.b=2"])
    assert rest == ["train", "x", "--epochs=2", "--", "--model.b=2"]
    assert found == {"model.a": "1", "train.lr": "0.1"}
    with pytest.raises(ConfigError, match="needs a value"):
        split_overrides(["--model.a"])


@pytest.mark.parametrize("text, value", [("64", 64), ("0.5", 0.5), ("true", True), ("False", False), ("null", None),
                                         ("[3, 5]", [3, 5]), ("gru", "gru"), ("1e-3", 1e-3)])
def test_parse_value_is_json_else_string(text, value):
    assert parse_value(text) == value and type(parse_value(text)) is type(value)


def test_resolve_type_checks_against_the_model_config():
    cnn = models.entry("cnn").config_cls
    got = resolve({"model.channels": "[8,16]", "model.dropout": "0", "train.lr": "3e-4", "data.channels": "1"},
                  model_cls_config=cnn, train_keys=["lr"])
    assert got == {"model": {"channels": (8, 16), "dropout": 0.0}, "train": {"lr": 3e-4}, "data": {"channels": 1}}
    assert type(got["model"]["dropout"]) is float
    with pytest.raises(ConfigError, match=r"model.batch_norm must be true or false, got 'yes'"):
        resolve({"model.batch_norm": "yes"}, model_cls_config=cnn, train_keys=[])
    with pytest.raises(ConfigError, match=r"Unknown config key: 'train.lrr'. Did you mean 'train.lr'\?"):
        resolve({"train.lrr": "1"}, model_cls_config=cnn, train_keys=["lr"])


def test_defaults_table_merges_specific_over_generic():
    table = {("*", "*"): {"train": {"epochs": 1, "lr": 0.1}}, ("d", "*"): {"train": {"epochs": 2}},
             ("*", "m"): {"model": {"hidden_size": 3}}, ("d", "m"): {"train": {"lr": 0.5}}}
    assert defaults.lookup("d", "m", table) == {"train": {"epochs": 2, "lr": 0.5}, "model": {"hidden_size": 3}}
    assert defaults.lookup("other", "x", table) == {"train": {"epochs": 1, "lr": 0.1}, "model": {}}
    defaults.lookup("d", "m", table)["train"]["epochs"] = 99  # a copy: the table is not changed
    assert table[("d", "*")]["train"]["epochs"] == 2
    table[("<image_folder>", "*")] = {"train": {"epochs": 3}}
    table[("<image_folder>", "m")] = {"train": {"lr": 0.2}}
    assert defaults.lookup("/my/photos", "m", table, reader="image_folder")["train"] == {"epochs": 3, "lr": 0.2}
    assert defaults.lookup("/my/walks.npz", "m", table, reader="npz")["train"] == {"epochs": 1, "lr": 0.1}


class FakeFit:
    """Stands in for gridseq.train.fit: records what the CLI passes, trains nothing."""

    def __init__(self):
        self.calls = []

    def __call__(self, model, data, **kwargs):
        self.calls.append((model, data, kwargs))
        return SimpleNamespace(test={"accuracy": 0.5}, run_dir=kwargs["run_dir"], train_seconds=0.0)


@pytest.fixture
def fake_fit(monkeypatch):
    from gridseq import train

    fake = FakeFit()
    fake.__signature__ = inspect.signature(train.fit)  # the CLI reads fit's keywords for --train.KEY
    monkeypatch.setattr(train, "fit", fake)
    return fake


def test_flags_beat_the_defaults_table_and_unset_flags_are_not_passed(capsys, tmp_path, monkeypatch, fake_fit):
    monkeypatch.setattr(defaults, "TABLE", {("digits", "gru"): {"train": {"epochs": 7, "lr": 0.01}, "model": {"hidden_size": 9, "num_layers": 2}}})
    code, out, err = run(capsys, "train", "digits", "--model", "gru", "--lr", "0.002", "--model.hidden_size=5",
                         "--train.patience=4", "--monitor", "macro_f1", "--run-dir", tmp_path / "r", "-v")
    model, data, kw = fake_fit.calls[0]
    assert code == 0
    assert kw["epochs"] == 7 and kw["lr"] == 0.002 and kw["patience"] == 4  # table, flag, dotted
    assert kw["monitor"] == "macro_f1"
    assert "label_smoothing" not in kw  # unset: fit's default
    assert "batch_size" not in kw and "optimizer" not in kw  # unset: fit's own defaults decide
    assert model.config.hidden_size == 5 and model.config.num_layers == 2  # dotted flag beats table
    assert model.config.bidirectional is False  # the model's default
    # digits is an image dataset; a GRU reads each 8x8 image as 8 rows of 8 features
    assert data.info.kind == "sequence" and kw["data_spec"]["view"] == "sequence"
    assert kw["data_spec"] == {"name": "digits", "seed": 0, "view": "sequence", "options": {}}
    assert "accuracy" in out and str(tmp_path / "r") in out
    assert "gridseq: INFO: model 'gru' does not take image data" in err  # -v logs the decisions


def test_label_smoothing_flag_reaches_fit(capsys, tmp_path, fake_fit):
    code, _, err = run(capsys, "train", "digits", "--model", "cnn", "--label-smoothing", "0.1", "--run-dir", tmp_path / "r")
    assert code == 0, err
    assert fake_fit.calls[0][2]["label_smoothing"] == 0.1


@pytest.mark.parametrize("argv, expected", [
    (["--augment", "--train.augment={\"rotation\": 0}"], {"rotation": 0}),  # the flag keeps the settings given
    (["--augment"], {"flip": 0.0}),  # ... and the table's
    (["--no-augment"], False),  # off beats the table's settings
    (["--train.augment=true"], True),
])
def test_the_augment_flag_keeps_the_augmentation_settings(capsys, tmp_path, monkeypatch, fake_fit, argv, expected):
    monkeypatch.setattr(defaults, "TABLE", {("digits", "cnn"): {"train": {"augment": {"flip": 0.0}}, "model": {}}})
    code, _, err = run(capsys, "train", "digits", "--model", "cnn", *argv, "--run-dir", tmp_path / "r")
    assert code == 0, err
    assert fake_fit.calls[0][2]["augment"] == expected


def test_an_image_folder_trains_with_the_image_folder_defaults(capsys, tmp_path, monkeypatch, fake_fit):
    folder = _image_folder(tmp_path / "photos")
    monkeypatch.setattr(defaults, "TABLE", {("*", "*"): {"train": {"epochs": 10}},
                                            ("<image_folder>", "*"): {"train": {"epochs": 4, "batch_size": 8}},
                                            ("<image_folder>", "cnn"): {"train": {"lr": 0.02}}})
    code, _, _ = run(capsys, "train", folder, "--model", "cnn", "--run-dir", tmp_path / "r")
    assert code == 0 and {k: fake_fit.calls[0][2][k] for k in ("epochs", "batch_size", "lr")} == {"epochs": 4, "batch_size": 8, "lr": 0.02}
    code, _, _ = run(capsys, "train", "digits", "--model", "cnn", "--run-dir", tmp_path / "r2")
    assert code == 0 and fake_fit.calls[1][2]["epochs"] == 10 and "lr" not in fake_fit.calls[1][2]  # a built-in: not a folder


def test_default_run_dir_and_refusing_to_overwrite(capsys, tmp_path, monkeypatch, fake_fit):
    monkeypatch.chdir(tmp_path)
    run_dir = tmp_path / "runs" / "digits-cnn-s3"
    run_dir.mkdir(parents=True)
    (run_dir / "metrics.json").write_text("{}")
    code, _, err = run(capsys, "train", "digits", "--model", "cnn", "--seed", "3")
    assert_one_line_error(code, err, "runs/digits-cnn-s3 holds a finished run", "--resume", "--overwrite")
    assert not fake_fit.calls
    code, _, _ = run(capsys, "train", "digits", "--model", "cnn", "--seed", "3", "--overwrite")
    assert code == 0 and fake_fit.calls[0][2]["run_dir"] == Path("runs/digits-cnn-s3")
    assert not (run_dir / "metrics.json").exists()
    other = tmp_path / "notes"
    other.mkdir()
    (other / "todo.txt").write_text("keep me")
    code, _, err = run(capsys, "train", "digits", "--model", "cnn", "--run-dir", other, "--overwrite")
    assert_one_line_error(code, err, "not a gridseq run directory")
    assert (other / "todo.txt").exists()


# --- end to end ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("cli") / "digits-cnn"
    code = cli.main(["train", "digits", "--model", "cnn", "--epochs", "1", "--run-dir", str(run_dir), "--no-progress"])
    assert code == 0
    return run_dir


def test_train_writes_a_run_dir(digits_run):
    for name in ("config.json", "model.safetensors", "metrics.json"):
        assert (digits_run / name).is_file()
    config = json.loads((digits_run / "config.json").read_text())
    assert config["model"]["name"] == "cnn"
    assert config["data"]["name"] == "digits" and config["data"]["info"]["num_classes"] == 10


def test_evaluate_matches_the_test_metrics_of_training(capsys, digits_run):
    code, out, _ = run(capsys, "evaluate", digits_run, "--json")
    metrics = json.loads(out)
    saved = json.loads((digits_run / "metrics.json").read_text())["test"]
    assert code == 0
    assert metrics.keys() >= {"accuracy", "loss"}
    for key in ("accuracy", "loss"):
        assert metrics[key] == pytest.approx(saved[key], abs=1e-6)


def test_predict_on_the_test_split_agrees_with_evaluate(capsys, digits_run):
    _, out, _ = run(capsys, "evaluate", digits_run, "--split", "test", "--json")
    accuracy = json.loads(out)["accuracy"]
    code, out, _ = run(capsys, "predict", digits_run, "--split", "test", "--json", "--top-k", "2", "--batch-size", "100")
    records = json.loads(out)
    assert code == 0 and len(records) == 359
    assert records[0]["input"] == "test[0]" and records[358]["input"] == "test[358]"
    assert len(records[0]["probabilities"]) == 2
    assert records[0]["label"] == max(records[0]["probabilities"], key=records[0]["probabilities"].get)
    assert np.mean([r["label"] == r["target"] for r in records]) == pytest.approx(accuracy, abs=1e-9)


def test_predict_needs_inputs_or_split(capsys, digits_run):
    code, _, err = run(capsys, "predict", digits_run)
    assert_one_line_error(code, err, "INPUT files or --split")
    code, _, err = run(capsys, "predict", digits_run, "nothing-here.png")
    assert_one_line_error(code, err, "nothing-here.png does not exist")


def _image_folder(root: Path) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for label, bright in (("dark", False), ("light", True)):
        (root / label).mkdir(parents=True)
        for i in range(8):
            pixels = rng.integers(150, 256, (8, 8)) if bright else rng.integers(0, 100, (8, 8))
            Image.fromarray(pixels.astype(np.uint8), mode="L").save(root / label / f"{i}.png")
    return root


def test_image_folder_train_then_predict_a_file(capsys, tmp_path):
    folder = _image_folder(tmp_path / "shades")
    run_dir = tmp_path / "run"
    code, out, _ = run(capsys, "train", folder, "--model", "cnn", "--epochs", "2", "--batch-size", "4",
                       "--model.channels=[4]", "--model.hidden=8", "--run-dir", run_dir)
    assert code == 0 and str(run_dir) in out
    code, out, _ = run(capsys, "predict", run_dir, folder / "light" / "0.png", folder / "dark" / "1.png", "--json")
    records = json.loads(out)
    assert code == 0
    assert [r["input"] for r in records] == [str(folder / "light" / "0.png"), str(folder / "dark" / "1.png")]
    assert all(r["label"] in ("dark", "light") for r in records)
    assert all(sum(r["probabilities"].values()) == pytest.approx(1, abs=1e-5) for r in records)
    code, out, _ = run(capsys, "predict", run_dir, folder / "light" / "0.png")
    assert code == 0 and out.startswith(str(folder / "light" / "0.png"))


def test_csv_sequences_train_then_predict(capsys, tmp_path):
    rng = np.random.default_rng(0)
    rows = ["t0,t1,t2,t3,t4,t5,label"]
    for i in range(40):
        up = i % 2 == 0
        steps = np.sort(rng.random(6)) if up else np.sort(rng.random(6))[::-1]
        rows.append(",".join(f"{v:.3f}" for v in steps) + f",{'up' if up else 'down'}")
    path = tmp_path / "walks.csv"
    path.write_text("\n".join(rows) + "\n")
    run_dir = tmp_path / "run"
    code, _, _ = run(capsys, "train", path, "--model", "gru", "--hidden-size", "8", "--epochs", "2", "--run-dir", run_dir)
    assert code == 0
    config = json.loads((run_dir / "config.json").read_text())
    assert config["model"]["config"]["hidden_size"] == 8 and config["data"]["name"] == str(path)
    code, out, _ = run(capsys, "predict", run_dir, path, "--json", "--top-k", "1")
    records = json.loads(out)
    assert code == 0 and len(records) == 40
    assert records[3]["input"] == f"{path}[3]" and {r["label"] for r in records} <= {"up", "down"}


# --- the real command ---------------------------------------------------------------------------

def test_python_dash_m_gridseq(tmp_path):
    ok = subprocess.run([sys.executable, "-m", "gridseq", "models"], capture_output=True, text=True, cwd=tmp_path)
    assert ok.returncode == 0 and "lstm" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "gridseq", "train", "digits", "--model", "lsmt"],
                         capture_output=True, text=True, cwd=tmp_path)
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.count("\n") == 1 and "Did you mean 'lstm'?" in bad.stderr


def test_train_threads_sets_torch_intra_op_threads(capsys, tmp_path):
    import torch

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        code, _, err = run(capsys, "train", "digits", "--model", "cnn", "--epochs", "1", "--threads", "1",
                           "--run-dir", tmp_path / "run", "--no-progress")
        assert code == 0, err
        assert torch.get_num_threads() == 1
        assert_one_line_error(*run(capsys, "train", "digits", "--model", "cnn", "--threads", "0")[::2], "--threads")
    finally:
        torch.set_num_threads(before)


def test_per_step_predictions_name_a_class_for_every_step(capsys):
    # a tag run (e.g. moving-digits-frames) predicts (B, T) labels: records list one class per step,
    # cut to each item's length
    from gridseq import tasks
    from gridseq.cli.predict import _print_records
    from gridseq.data.contract import Batch, DatasetInfo

    labels = torch.tensor([[0, 1, 1], [2, 2, 0]])
    logits = torch.nn.functional.one_hot(labels, 3).float() * 5  # (B, T, K), the largest at each label
    task = tasks.get("tag", DatasetInfo("d", "sequence", (3, 1), 3, ("up", "down", "left"), task="tag"))
    out = task.decode(logits, Batch(torch.zeros(2, 3, 1), None, torch.tensor([3, 2])), {"top_k": 2})
    records = [{"input": name, task.record_key: p} for name, p in zip(["a", "b"], out["predictions"])]
    assert records == [{"input": "a", "labels": ["up", "down", "down"]}, {"input": "b", "labels": ["left", "left"]}]
    records[0]["target"] = ["up", "up", "down"]
    _print_records(records, task.record_key)
    out = [line.split() for line in capsys.readouterr().out.splitlines()]  # the console expands tabs
    assert out == [["a", "up", "down", "down", "(true:", "up", "up", "down)"], ["b", "left", "left"]]
