"""`gridseq evaluate` on generator runs reports the classifier-based scores (class_accuracy, fid) that
training writes to metrics.json, and `diversity` measures within-class variety (mode collapse)."""

import json

import pytest
import torch

import gridseq
from gridseq import cli, models
from gridseq.errors import ConfigError
from gridseq.tasks.sample_diversity import diversity

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def digits():
    return gridseq.datasets.load("digits")


@pytest.mark.parametrize("name", ["vae", "dcgan"])
def test_evaluate_reports_the_classifier_scores_of_training(digits, tmp_path, capsys, name):
    run_dir = tmp_path / name
    assert cli.main(["train", "digits", "--model", name, "--epochs", "2", "--run-dir", str(run_dir), "--threads", "1"]) == 0
    capsys.readouterr()
    written = json.loads((run_dir / "metrics.json").read_text())["test"]
    assert cli.main(["evaluate", str(run_dir), "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert {"class_accuracy", "fid"} <= set(got)
    assert got["class_accuracy"] == pytest.approx(written["class_accuracy"], abs=1e-9)
    assert got["fid"] == pytest.approx(written["fid"], rel=1e-6)  # the same classifier, the same samples
    assert cli.main(["evaluate", str(run_dir), "--split", "val"]) == 0
    assert "fid" in capsys.readouterr().out


def test_diversity_tells_a_collapsed_generator_from_a_varied_one(digits):
    torch.manual_seed(0)
    model = models.create_for("dcgan", digits.info).eval()
    varied = diversity(model, digits.train, digits.val, digits.info, per_class=64)
    collapsed_model = models.create_for("dcgan", digits.info).eval()
    collapsed_model.load_state_dict(model.state_dict())
    with torch.no_grad():  # z is ignored: every sample of a class is the same image
        collapsed_model.generator[0].weight[:, : model.config.latent] = 0
    collapsed = diversity(collapsed_model, digits.train, digits.val, digits.info, per_class=64)
    assert len(varied["per_class"]) == 10 and {"class", "accuracy", "feature_spread", "pixel_spread"} <= set(varied["per_class"][0])
    assert collapsed["feature_spread"] < 1e-6 and collapsed["pixel_spread"] < 1e-6
    assert varied["feature_spread"] > 1e-3 and varied["pixel_spread"] > 1e-3  # an untrained G varies little, but not 0
    with pytest.raises(ConfigError, match="class-conditional"):
        diversity(models.create_for("vae", digits.info, num_classes=0), digits.train, digits.val, digits.info)
