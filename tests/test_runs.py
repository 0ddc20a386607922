"""gridseq.runs.Run: the one reader of a run directory, on a real (tiny) trained run."""

import json
import shutil

import pytest
import torch

import gridseq
from gridseq import cli, train
from gridseq.errors import CheckpointError, DataError
from gridseq.runs import Run

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("runs") / "digits-cnn"
    code = cli.main(["train", "digits", "--model", "cnn", "--epochs", "1", "--threads", "1", "--run-dir", str(path)])
    assert code == 0
    return path


@pytest.fixture
def copy(run_dir, tmp_path):
    """A copy of the trained run that a test may damage."""
    return shutil.copytree(run_dir, tmp_path / "run")


def test_open_gives_the_model_its_info_and_its_task(run_dir):
    run = Run.open(run_dir)
    assert run.path == run_dir and run.model_name == "cnn"
    assert not run.model.training and run.model.gridseq_name == "cnn"
    assert run.model is run.model  # loaded once
    assert run.info.name == "digits" and run.info.num_classes == 10 and run.info.task == "classify"
    assert list(run.info.class_names) == [str(i) for i in range(10)]
    assert run.task.name == "classify" and run.task_name == "classify"
    assert "Run(" in repr(run) and "cnn" in repr(run)


def test_the_data_spec_is_the_recipe_train_wrote(run_dir):
    spec = Run.open(run_dir).data_spec
    assert spec == {"name": "digits", "seed": 0, "view": None, "options": {}}
    written = json.loads((run_dir / "config.json").read_text())["data"]
    assert {k: written[k] for k in ("name", "seed")} == {"name": "digits", "seed": 0}


def test_metrics_and_history_are_what_fit_wrote(run_dir):
    run = Run.open(run_dir)
    assert run.metrics == json.loads((run_dir / "metrics.json").read_text())
    assert 0 < run.metrics["test"]["accuracy"] <= 1
    assert [r["epoch"] for r in run.history()] == [1]


def test_reload_data_rebuilds_the_splits_the_model_was_tested_on(run_dir):
    run = Run.open(run_dir)
    data = run.reload_data()
    assert tuple(data.info.class_names) == tuple(run.info.class_names)
    assert tuple(data.info.input_shape) == tuple(run.info.input_shape)
    with torch.no_grad():
        metrics = train.evaluate(run.model, data.splits()["test"], task=run.task, batch_size=256)
    assert metrics["accuracy"] == pytest.approx(run.metrics["test"]["accuracy"], abs=1e-6)


def test_reload_data_refuses_data_that_no_longer_matches_the_run(copy):
    config = json.loads((copy / "config.json").read_text())
    config["data"]["info"]["class_names"] = [f"c{i}" for i in range(10)]
    (copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(DataError, match="no longer matches the run"):
        Run.open(copy).reload_data()


def test_an_unfinished_run_has_no_metrics_and_a_corrupt_metrics_file_is_named(copy):
    (copy / "metrics.json").unlink()
    assert Run.open(copy).metrics is None
    (copy / "metrics.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="metrics.json is not valid JSON"):
        Run.open(copy).metrics


def test_a_missing_or_corrupt_run_directory_is_a_checkpoint_error(tmp_path, copy):
    with pytest.raises(CheckpointError, match="is not a directory"):
        Run.open(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="config.json is missing"):
        Run.open(tmp_path / "empty")
    (copy / "model.safetensors").write_bytes(b"not safetensors")
    run = Run.open(copy)  # config.json is fine; the weights are read on first use
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        run.model
    (copy / "config.json").write_text("{")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        Run.open(copy)


def test_a_saved_model_without_a_data_section_has_no_info(tmp_path):
    model = gridseq.models.create("cnn", input_shape=(1, 8, 8), num_classes=3)
    gridseq.save(model, tmp_path / "bare")
    run = Run.open(tmp_path / "bare")
    assert run.model_name == "cnn" and run.task_name is None
    with pytest.raises(CheckpointError, match="no data section"):
        run.info
    with pytest.raises(CheckpointError, match="no data section"):
        run.reload_data()


def test_a_data_section_without_a_dataset_name_cannot_be_reloaded(copy):
    config = json.loads((copy / "config.json").read_text())
    del config["data"]["name"]
    (copy / "config.json").write_text(json.dumps(config))
    run = Run.open(copy)
    assert run.info.name == "digits"  # the info is still there: predict on new inputs works
    with pytest.raises(CheckpointError, match="does not say which dataset"):
        run.reload_data()
