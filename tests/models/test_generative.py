"""The image generators (vae, dcgan): shapes, conditioning, save/load, errors, and that the DCGAN's one
summed loss sends each player's gradient only to that player."""

import dataclasses

import pytest
import torch

import gridseq
from gridseq import models, tasks
from gridseq.data.contract import DatasetInfo
from gridseq.errors import ConfigError, ShapeError

pytestmark = pytest.mark.usefixtures("one_thread")

INFO = DatasetInfo(name="gray8", kind="image", input_shape=(1, 8, 8), num_classes=10, class_names=tuple("0123456789"))


@pytest.mark.parametrize("name", ["vae", "dcgan"])
@pytest.mark.parametrize("classes", [10, 0])
def test_forward_gives_two_loss_terms_and_sample_gives_images(name, classes):
    model = models.create_for(name, INFO, num_classes=classes)
    x = torch.randn(5, 1, 8, 8)
    y = torch.arange(5) if classes else None
    out = model(x, y)
    assert out.shape == (5, 2) and torch.isfinite(out).all()
    assert model.eval().sample(7, torch.full((7,), 3) if classes else None).shape == (7, 1, 8, 8)


@pytest.mark.parametrize("name", ["vae", "dcgan"])
def test_sampling_is_seeded_and_the_class_changes_the_image(name):
    model = models.create_for(name, INFO).eval()
    a = model.sample(4, torch.full((4,), 2), generator=torch.Generator().manual_seed(3))
    b = model.sample(4, torch.full((4,), 2), generator=torch.Generator().manual_seed(3))
    c = model.sample(4, torch.full((4,), 5), generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert not torch.allclose(a, c), "the class label must reach the generator"


def test_vae_eval_uses_the_posterior_mean():
    model = models.create_for("vae", INFO).eval()
    x, y = torch.randn(3, 1, 8, 8), torch.tensor([1, 2, 3])
    assert torch.equal(model(x, y), model(x, y))
    assert not torch.equal(model.train()(x, y), model(x, y))  # training samples z


def test_vae_kl_is_zero_for_the_prior():
    model = models.create_for("vae", INFO, num_classes=0)
    with torch.no_grad():  # an encoder that outputs mean 0, log-variance 0 is the prior itself
        model.to_stats.weight.zero_()
        model.to_stats.bias.zero_()
    assert torch.allclose(model.eval()(torch.randn(4, 1, 8, 8))[:, 1], torch.zeros(4))


def _grads(module):
    return [p.grad for p in module.parameters()]


def test_dcgan_generator_loss_trains_only_the_generator_and_discriminator_loss_only_the_discriminator():
    model = models.create_for("dcgan", INFO)
    x, y = torch.randn(6, 1, 8, 8), torch.arange(6)
    model(x, y)[:, 0].sum().backward()  # generator loss
    assert all(g is None or not g.any() for g in _grads(model.discriminator)), "G's loss leaked into D"
    assert all(g is not None and g.abs().sum() > 0 for g in _grads(model.generator))
    model.zero_grad(set_to_none=True)
    model(x, y)[:, 1].sum().backward()  # discriminator loss
    assert all(g is None or not g.any() for g in _grads(model.generator)), "D's loss leaked into G"
    assert all(g is not None and g.abs().sum() > 0 for g in _grads(model.discriminator))


def test_dcgan_summed_loss_gives_each_player_its_own_gradient():
    """One backward of the sum = G's gradient of its own loss + D's gradient of its own loss."""
    model = models.create_for("dcgan", INFO)
    x, y = torch.randn(6, 1, 8, 8), torch.arange(6)
    torch.manual_seed(1)
    model(x, y).sum().backward()
    together = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    torch.manual_seed(1)
    out = model(x, y)
    g_grads = torch.autograd.grad(out[:, 0].sum(), list(model.generator.parameters()))
    d_grads = torch.autograd.grad(out[:, 1].sum(), list(model.discriminator.parameters()))
    for (name, _), g in zip(model.generator.named_parameters(), g_grads):
        torch.testing.assert_close(together[f"generator.{name}"], g)
    for (name, _), g in zip(model.discriminator.named_parameters(), d_grads):
        torch.testing.assert_close(together[f"discriminator.{name}"], g)


@pytest.mark.parametrize("name", ["vae", "dcgan"])
def test_save_load_round_trip(name, tmp_path):
    model = models.create_for(name, INFO)
    model(torch.randn(4, 1, 8, 8), torch.arange(4))
    gridseq.save(model, tmp_path)
    loaded = gridseq.load(tmp_path)
    assert loaded.config == model.config
    g = torch.Generator()
    y = torch.arange(3)
    assert torch.equal(model.eval().sample(3, y, generator=g.manual_seed(0)), loaded.sample(3, y, generator=g.manual_seed(0)))


@pytest.mark.parametrize("name", ["vae", "dcgan"])
def test_errors_name_the_fix(name):
    with pytest.raises(ConfigError, match="divisible by 4"):
        models.create(name, input_shape=(1, 10, 10))
    with pytest.raises(ConfigError, match="latent must be a positive int"):
        models.create(name, input_shape=(1, 8, 8), latent=0)
    model = models.create_for(name, INFO)
    with pytest.raises(ShapeError, match="pass the class ids"):
        model(torch.randn(2, 1, 8, 8))
    with pytest.raises(ShapeError, match="class ids must be in 0..9"):
        model(torch.randn(2, 1, 8, 8), torch.tensor([0, 10]))
    with pytest.raises(ShapeError):
        model(torch.randn(2, 8, 8, 1), torch.tensor([0, 1]))  # channels-last


def test_a_generator_on_a_classification_dataset_gets_the_generate_image_task():
    assert tasks.for_data(INFO, models.create_for("vae", INFO)).name == "generate-image"
    assert tasks.for_data(INFO, models.create_for("cnn", INFO)).name == "classify"
    assert {"vae", "dcgan"}.isdisjoint(tasks.fitting(INFO)), "generators are not classifiers"
    assert dataclasses.asdict(models.create_for("dcgan", INFO).config)["num_classes"] == 10


def test_dcgan_batch_norm_option():
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in models.create_for("dcgan", INFO, batch_norm=False).modules())
    with pytest.raises(ConfigError, match="batch_norm must be True or False"):
        models.create_for("dcgan", INFO, batch_norm="no")


def test_dcgan_label_smoothing_moves_the_real_target_only():
    x, y = torch.randn(6, 1, 8, 8), torch.arange(6)
    plain = models.create("dcgan", input_shape=(1, 8, 8), num_classes=10)
    smooth = models.create("dcgan", input_shape=(1, 8, 8), num_classes=10, label_smoothing=0.1)
    smooth.load_state_dict(plain.state_dict())
    torch.manual_seed(0)
    a = plain(x, y)
    torch.manual_seed(0)
    b = smooth(x, y)
    # BCE(l, 0.9) - BCE(l, 1) = 0.1 * (softplus(l) - softplus(-l)) = 0.1 * l for the real logit l
    assert torch.allclose(b[:, 1] - a[:, 1], 0.1 * plain.discriminator(x, y), atol=1e-6)
    assert torch.equal(a[:, 0], b[:, 0])  # the generator's loss is unchanged


def test_dcgan_declares_its_adam_betas_and_fit_uses_them():
    from gridseq.train.optim import build_optimizer

    model = models.create("dcgan", input_shape=(1, 8, 8), num_classes=10, beta1=0.5)
    assert model.adam_betas == (0.5, 0.999)
    for name in ("adam", "adamw"):
        assert build_optimizer(model, name, lr=1e-3, weight_decay=0.0).param_groups[0]["betas"] == (0.5, 0.999)
    assert build_optimizer(models.create("cnn", input_shape=(1, 8, 8), num_classes=3), "adamw", lr=1e-3,
                           weight_decay=0.0).param_groups[0]["betas"] == (0.9, 0.999)
    for bad in (1.0, -0.1, True, "0.5"):
        with pytest.raises(ConfigError, match="in \\[0, 1\\)"):
            models.create("dcgan", input_shape=(1, 8, 8), label_smoothing=bad)


def test_vae_temperature_scales_the_latent_draw():
    model = models.create_for("vae", INFO, temperature=0.5).eval()
    y = torch.tensor([0, 3, 9])
    z = torch.randn(3, 16, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(model.sample(3, y, generator=torch.Generator().manual_seed(1)), model.decode(0.5 * z, y))
    torch.testing.assert_close(model.sample(3, y, generator=torch.Generator().manual_seed(1), temperature=2.0),
                               model.decode(2.0 * z, y))
    with pytest.raises(ConfigError, match="temperature must be a positive number"):
        model.sample(3, y, temperature=0)
    with pytest.raises(ConfigError, match="temperature must be a positive number"):
        models.create_for("vae", INFO, temperature=-1.0)


def test_vae_class_prior_kl_and_sampling_follow_the_class_gaussian():
    """prior="class": the KL is against the class's learned Gaussian (zero when the posterior equals it),
    and samples decode z = μ_y + T·σ_y·ε."""
    model = models.create_for("vae", INFO, prior="class", latent=4).eval()
    assert torch.equal(model.prior.weight, torch.zeros(10, 8))  # starts as N(0, I): the standard prior's KL
    standard = models.create_for("vae", INFO, latent=4).eval()
    standard.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("prior.")})
    x, y = torch.randn(3, 1, 8, 8), torch.tensor([1, 2, 7])
    with torch.no_grad():
        torch.testing.assert_close(model(x, y), standard(x, y))
        mean, logvar = model.encode(x, y)
        model.prior.weight[y] = torch.cat([mean, logvar], 1)  # each class's prior = that image's posterior
        assert torch.allclose(model(x, y)[:, 1], torch.zeros(3), atol=1e-5)
        model.prior.weight[y] = torch.cat([mean + 2.0, logvar], 1)  # the same variances, the mean moved by 2
        torch.testing.assert_close(model(x, y)[:, 1], 0.5 * (4.0 / logvar.exp()).sum(1))  # 0.5 Σ δ² / σ²
        model.prior.weight[y] = torch.cat([mean, logvar], 1)
        eps = torch.randn(3, 4, generator=torch.Generator().manual_seed(2))
        expected = model.decode(mean + 0.5 * eps * (0.5 * logvar).exp(), y)
        torch.testing.assert_close(model.sample(3, y, generator=torch.Generator().manual_seed(2), temperature=0.5), expected)
    with pytest.raises(ConfigError, match="unconditional vae"):
        models.create_for("vae", INFO, num_classes=0, prior="class")
    with pytest.raises(ConfigError, match="prior must be one of"):
        models.create_for("vae", INFO, prior="gaussian")


def test_vae_fitted_prior_tracks_each_class_posterior_means_and_samples_from_them():
    """prior="fitted": training steps move each class's running mean and covariance towards the posterior
    means of its images (classes absent from a batch keep theirs); the KL stays the standard one; samples
    decode z = m_y + T·L_y·ε with L_y the Cholesky factor of the class's covariance."""
    model = models.create_for("vae", INFO, prior="fitted", latent=4)
    assert torch.equal(model.fit_mean, torch.zeros(10, 4)) and torch.equal(model.fit_second, torch.eye(4).repeat(10, 1, 1))
    standard = models.create_for("vae", INFO, latent=4).eval()
    standard.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("fit_")})
    x, y = torch.randn(6, 1, 8, 8), torch.tensor([1, 1, 1, 7, 7, 7])
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x, y), standard(x, y))  # the KL is against N(0, I)
        before = model.fit_mean.clone(), model.fit_second.clone()
        model.eval()(x, y)
        assert torch.equal(model.fit_mean, before[0])  # evaluation does not move the fit
        model.train()
        for _ in range(2000):
            model(x, y)
        mean, _ = model.encode(x, y)
        for c, rows in ((1, slice(0, 3)), (7, slice(3, 6))):
            z = mean[rows]
            torch.testing.assert_close(model.fit_mean[c], z.mean(0), atol=1e-3, rtol=0)
            torch.testing.assert_close(model.fit_second[c], z.T @ z / 3, atol=1e-3, rtol=0)
        untouched = [c for c in range(10) if c not in (1, 7)]
        assert torch.equal(model.fit_mean[untouched], before[0][untouched])
        model.eval()
        m, chol = model.fitted_stats(torch.tensor([1, 7]))
        cov = chol @ chol.mT
        torch.testing.assert_close(cov[0], torch.cov(mean[:3].T, correction=0), atol=1e-3, rtol=0)
        ys = torch.tensor([7, 1])
        eps = torch.randn(2, 4, generator=torch.Generator().manual_seed(3))
        m, chol = model.fitted_stats(ys)
        expected = model.decode(m + 0.5 * (chol @ eps[:, :, None]).squeeze(2), ys)
        torch.testing.assert_close(model.sample(2, ys, generator=torch.Generator().manual_seed(3), temperature=0.5), expected)
    with pytest.raises(ConfigError, match="unconditional vae"):
        models.create_for("vae", INFO, num_classes=0, prior="fitted")
