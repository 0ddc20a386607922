"""The generate-image task: the Fréchet distance against a reference computation, the metrics on real
images (the floor), the scoring classifier's disk cache, a short training run end to end, and (slow) the conditional VAE's ≥ 90% target."""

import numpy as np
import pytest
import torch

import gridseq
from gridseq import models, tasks
from gridseq.data.contract import Split
from gridseq.errors import ShapeError
from gridseq.tasks import generate_image
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


def _weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture
def small(digits):
    """600 digits: a classifier of its own (its own digest), trained in a second or two."""
    return Split(digits.train.x[:600], digits.train.y[:600])


def test_the_classifier_is_read_back_from_disk_by_a_later_process(digits, small, monkeypatch, tmp_path):
    monkeypatch.setenv("GRIDSEQ_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(generate_image, "_classifiers", {})
    trained = _weights(train_classifier(small, digits.info))
    files = list((tmp_path / "classifiers").glob("digits-*.safetensors"))
    assert len(files) == 1 and not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]

    monkeypatch.setattr(generate_image, "_classifiers", {})  # a new process: nothing in memory
    monkeypatch.setattr(generate_image, "_fit_classifier", lambda *a: pytest.fail("trained again instead of read"))
    again = train_classifier(small, digits.info)
    assert _same(_weights(again), trained) and not again.training
    assert not any(p.requires_grad for p in again.parameters())


def test_other_training_images_get_another_classifier_file(digits, small, monkeypatch, tmp_path):
    monkeypatch.setenv("GRIDSEQ_CACHE_DIR", str(tmp_path))
    a = generate_image.classifier_digest(small, digits.info)
    flipped = small.x.clone()
    flipped[0, 0, 0, 0] += 1.0  # one pixel of one image
    assert generate_image.classifier_digest(Split(flipped, small.y), digits.info) != a
    labels = small.y.clone()
    labels[0] = (labels[0] + 1) % 10
    assert generate_image.classifier_digest(Split(small.x, labels), digits.info) != a
    monkeypatch.setitem(generate_image.CLASSIFIER, "epochs", 3)
    assert generate_image.classifier_digest(small, digits.info) != a  # other settings, another classifier


def test_an_unreadable_cache_file_is_retrained_and_replaced(digits, small, monkeypatch, tmp_path):
    monkeypatch.setenv("GRIDSEQ_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(generate_image, "_classifiers", {})
    trained = _weights(train_classifier(small, digits.info))
    [path] = (tmp_path / "classifiers").glob("*.safetensors")
    path.write_bytes(b"not a safetensors file")
    monkeypatch.setattr(generate_image, "_classifiers", {})
    assert _same(_weights(train_classifier(small, digits.info)), trained)  # retrained: one thread, the same weights
    assert path.stat().st_size > 1000  # and written again


def test_an_unwritable_cache_folder_costs_only_the_cache(digits, small, monkeypatch, tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder would be")
    monkeypatch.setenv("GRIDSEQ_CACHE_DIR", str(blocker))
    monkeypatch.setattr(generate_image, "_classifiers", {})
    with caplog.at_level("WARNING", logger="gridseq.tasks.generate_image"):
        model = train_classifier(small, digits.info)
    assert not model.training and "not cached" in caplog.text


def test_the_classifier_does_not_depend_on_the_callers_thread_count(digits, small, monkeypatch):
    monkeypatch.setattr(generate_image, "_classifiers", {})
    one = _weights(train_classifier(small, digits.info, cache=False))
    monkeypatch.setattr(generate_image, "_classifiers", {})
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        two = _weights(train_classifier(small, digits.info, cache=False))
        assert torch.get_num_threads() == 2  # the caller's setting is restored
    finally:
        torch.set_num_threads(before)
    assert _same(one, two)


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
