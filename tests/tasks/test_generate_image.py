"""The generate-image task: the Fréchet distance against a reference computation, the metrics on real
images (the floor), a short training run end to end, and (slow) the conditional VAE's ≥ 90% target."""

import numpy as np
import pytest
import torch

import gridseq
from gridseq import models, tasks
from gridseq.errors import ShapeError
from gridseq.tasks.generate_image import GenerationMetrics, frechet_distance, train_classifier

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def digits():
    return gridseq.datasets.load("digits")


def _random_cov(d, seed):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(d, 2 * d, generator=g, dtype=torch.float64)
    return a @ a.T / (2 * d)


def test_frechet_distance_matches_scipy_sqrtm():
    linalg = pytest.importorskip("scipy.linalg")
    mu1, mu2 = torch.zeros(6, dtype=torch.float64), torch.linspace(0, 1, 6, dtype=torch.float64)
    c1, c2 = _random_cov(6, 0), _random_cov(6, 1)
    root = linalg.sqrtm(c1.numpy() @ c2.numpy()).real
    want = float(((mu1 - mu2) ** 2).sum()) + np.trace(c1.numpy() + c2.numpy() - 2 * root)
    assert frechet_distance(mu1, c1, mu2, c2) == pytest.approx(want, rel=1e-6)
    assert frechet_distance(mu1, c1, mu1, c1) == pytest.approx(0.0, abs=1e-8)


def test_real_images_score_the_classifier_accuracy_and_zero_fid(digits):
    classifier = train_classifier(digits.train, digits.info)
    assert train_classifier(digits.train, digits.info) is classifier  # cached: trained once per process
    test = digits.test
    metrics = GenerationMetrics(classifier, True, ("a", "b"))
    metrics.add_images(test.x, test.x, test.y)
    scores = metrics.compute()
    accuracy = float((classifier(test.x).argmax(1) == test.y).float().mean())
    assert scores["class_accuracy"] == pytest.approx(accuracy) and accuracy > 0.9
    assert scores["fid"] == pytest.approx(0.0, abs=1e-6)


def test_metrics_accumulate_loss_terms_and_samples(digits):
    task = tasks.for_data(digits.info, models.create_for("vae", digits.info))
    task.check_split(digits.train, "train")
    model = models.create_for("vae", digits.info).eval()
    batch = digits.test.batch(torch.arange(40))
    output = task.forward(model, batch)
    assert output.shape == (40, 2 + 64)  # two loss terms, then one 8x8 sample per item
    metrics = task.metrics()
    metrics.update(output, batch, task.loss(output, batch))
    got = metrics.compute()
    assert set(got) == {"loss", "reconstruction", "kl", "class_accuracy", "fid"}
    assert got["loss"] == pytest.approx(got["reconstruction"] + got["kl"], rel=1e-6)
    with pytest.raises(ShapeError, match=r"\(B, 2\) per-image loss terms"):
        task.loss(torch.zeros(40, 1), batch)


def test_short_training_run_writes_scores_and_baselines(digits, tmp_path):
    model = models.create_for("vae", digits.info)
    result = gridseq.fit(model, digits, epochs=10, run_dir=tmp_path / "run", progress=False)
    assert {"class_accuracy", "fid", "reconstruction", "kl"} <= set(result.test)
    noise, real = result.baselines["noise"], result.baselines["real_images"]
    assert real["fid"] < result.test["fid"] and real["fid"] < noise["fid"] / 5  # real images: the floor
    assert result.history[-1]["val_fid"] < result.history[0]["val_fid"] / 2  # training improves the samples
    assert noise["class_accuracy"] < 0.3 < 0.9 < real["class_accuracy"]
    config = gridseq.io.read_config(tmp_path / "run")
    assert config["task"]["name"] == "generate-image" and config["task"]["primary"] == "fid"


def test_dcgan_trains_with_one_optimizer(digits):
    model = models.create_for("dcgan", digits.info)
    before = [p.detach().clone() for p in model.parameters()]
    result = gridseq.fit(model, digits, epochs=1, progress=False, lr=2e-4)
    assert {"generator_loss", "discriminator_loss", "fid", "class_accuracy"} <= set(result.test)
    moved = [not torch.equal(a, b) for a, b in zip(before, model.parameters())]
    assert all(moved), "every parameter of both players is updated"


@pytest.mark.slow
def test_conditional_vae_samples_are_classified_as_their_digit(digits):
    """The issue's target, with the `gridseq train digits --model vae` settings (defaults.py)."""
    from gridseq import defaults

    settings = defaults.lookup("digits", "vae")["train"]
    torch.manual_seed(0)
    model = models.create_for("vae", digits.info)
    result = gridseq.fit(model, digits, progress=False, **settings)
    assert result.test["class_accuracy"] >= 0.9
    assert result.test["fid"] < result.baselines["noise"]["fid"] / 4
