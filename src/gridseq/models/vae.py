"""Convolutional variational autoencoder (Kingma & Welling, 2014), class-conditional when built with
classes: the image generator of the `generate-image` task.

The encoder (two stride-2 convolutions) maps an image (and its one-hot class, as extra constant
channels) to the mean and log-variance of a Gaussian over a small latent z; the decoder (two stride-2
transposed convolutions) maps z (and the one-hot class) back to an image. Training minimises the
negative evidence lower bound per image: reconstruction error + beta × KL(q(z|x) ‖ p(z|y)), the prior
N(0, I) or, with `prior="class"`, a learned Gaussian per class. Sampling draws z from the prior with its
std scaled by T (the temperature, 1 unless set) and decodes it for the requested classes; with
`prior="fitted"` it draws from a full-covariance Gaussian per class fitted to the training images'
posterior means instead (ex-post density estimation, Ghosh et al. 2020), while the KL stays against N(0, I).

The model declares `Traits(serves_task="generate-image")`, so `gridseq train digits --model vae` trains a
generator, not a classifier (see `gridseq.tasks.for_data`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gridseq import shapes
from gridseq._validation import check_choice, check_int_tuple, check_positive_int, check_positive_number
from gridseq.errors import ConfigError, ShapeError
from gridseq.models import registry
from gridseq.models.traits import Traits


PRIORS = ("standard", "class", "fitted")
FIT_MOMENTUM = 0.01  # prior="fitted": how far each training batch moves its classes' running moments


def check_generator_shape(input_shape, name: str) -> tuple[int, int, int]:
    """(C, H, W) with H and W divisible by 4 (two halvings down, two doublings up)."""
    shape = check_int_tuple(input_shape, "input_shape", length=3)
    if shape[1] % 4 or shape[2] % 4:
        raise ConfigError(
            f"{name} needs an image size divisible by 4 (two stride-2 layers), got input_shape {tuple(input_shape)!r}; "
            f"resize the images, e.g. to 8x8, 16x16 or 28x28."
        )
    return shape


def one_hot_channels(y: Tensor | None, num_classes: int, like: Tensor) -> Tensor:
    """The class of each image as K constant channels (B, K, H, W) to concatenate to `like` (B, C, H, W)."""
    b, _, h, w = like.shape
    return F.one_hot(y, num_classes).to(like.dtype)[:, :, None, None].expand(b, num_classes, h, w)


def check_labels(y: Tensor | None, num_classes: int, batch: int, model: str) -> Tensor | None:
    """Class ids (B,) int64 for a conditional model; None for an unconditional one."""
    if num_classes == 0:
        return None
    if y is None:
        raise ShapeError(f"{model} is class-conditional ({num_classes} classes): pass the class ids y of shape (B,).")
    if y.dim() != 1 or y.shape[0] != batch or y.dtype != torch.int64:
        raise ShapeError(f"expected class ids y of shape ({batch},) int64, got {tuple(y.shape)} {y.dtype}.")
    if batch and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise ShapeError(f"class ids must be in 0..{num_classes - 1}, got {int(y.min())}..{int(y.max())}.")
    return y


@dataclass(frozen=True)
class VAEConfig:
    """Configuration of `VAE`.

    Args:
        input_shape: (C, H, W) of one image; H and W divisible by 4.
        num_classes: K classes to condition on (one-hot into encoder and decoder); 0 = unconditional.
            Default: 0 (`gridseq train` fills in the dataset's classes).
        latent: size of z. Default: 16.
        channels: channels of the two stride-2 conv layers (the decoder mirrors them). Default: (32, 64).
        beta: weight of the KL term (1 = the ELBO). Default: 1.0.
        noise_std: the decoder's fixed Gaussian std σ in the data's (normalised) units; the
            reconstruction term is Σ (x − x̂)² / (2σ²). Smaller σ = sharper but less regular. Default: 0.5.
        temperature: the std of z when sampling, z ~ N(0, T²·I) (Kingma & Dhariwal 2018): below 1
            draws nearer the prior's centre, trading variety for typical images. Training does not use
            it; `gridseq sample --temperature` overrides it. Default: 1.0.
        prior: p(z | y): "standard" (N(0, I) for every class) or "class" (a learned diagonal Gaussian
            per class, N(μ_y, diag σ_y²), as in Sohn et al. 2015's conditional prior: the KL pulls each
            class's posteriors to its own region and sampling draws from it), or "fitted" (train against
            N(0, I), sample from N(m_y, T²·S_y): the running mean m_y and full covariance S_y of the
            posterior means of class y's training images, updated in every training step like BatchNorm's
            statistics — ex-post density estimation, Ghosh et al. 2020 — so samples come from where the
            encoder puts real images, not from the prior's holes). Default: "standard".
    """

    input_shape: tuple[int, ...]
    num_classes: int = 0
    latent: int = 16
    channels: tuple[int, ...] = (32, 64)
    beta: float = 1.0
    noise_std: float = 0.5
    temperature: float = 1.0
    prior: str = "standard"

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_shape", check_generator_shape(self.input_shape, "vae"))
        object.__setattr__(self, "channels", check_int_tuple(self.channels, "channels", length=2))
        check_positive_int(self.num_classes, "num_classes", minimum=0)
        check_positive_int(self.latent, "latent")
        for name in ("beta", "noise_std", "temperature"):
            check_positive_number(getattr(self, name), name)
        check_choice(self.prior, "prior", PRIORS)
        if self.prior != "standard" and self.num_classes == 0:
            raise ConfigError(f"prior={self.prior!r} keeps one Gaussian per class; an unconditional vae (num_classes=0) "
                              "has none. Use prior='standard'.")


class VAE(nn.Module):
    """Convolutional (conditional) VAE.

    Args:
        config: VAEConfig.
    Shape:
        - x: (B, C, H, W) float images; y: (B,) int64 classes when num_classes > 0, else None.
        - Output of forward: (B, 2) per-image loss terms [reconstruction, beta × KL]; their sum is the
          negative ELBO (up to a constant). In eval mode z is the posterior mean (deterministic).
        - `sample(n, y)`: (n, C, H, W) images.
    Example:
        >>> import torch
        >>> m = VAE(VAE.Config(input_shape=(1, 8, 8), num_classes=10))
        >>> m(torch.zeros(4, 1, 8, 8), torch.arange(4)).shape
        torch.Size([4, 2])
        >>> m.sample(6, torch.full((6,), 3)).shape
        torch.Size([6, 1, 8, 8])
    """

    Config = VAEConfig
    topology = "generative"
    TRAITS = Traits(serves_task="generate-image", samples=True, encodes=True)  # classes: refined in __init__

    def __init__(self, config: VAEConfig):
        super().__init__()
        self.config = config
        self.TRAITS = dataclasses.replace(VAE.TRAITS, conditional_classes=config.num_classes)
        c, h, w = config.input_shape
        k, (c1, c2) = config.num_classes, config.channels
        self.small = (c2, h // 4, w // 4)  # the decoder's first map
        self.encoder = nn.Sequential(
            nn.Conv2d(c + k, c1, 4, 2, 1), nn.LeakyReLU(0.2),  # (B, c1, H/2, W/2)
            nn.Conv2d(c1, c2, 4, 2, 1), nn.LeakyReLU(0.2),  # (B, c2, H/4, W/4)
            nn.Flatten(),
        )
        self.to_stats = nn.Linear(c2 * (h // 4) * (w // 4), 2 * config.latent)  # mean and log-variance
        self.from_latent = nn.Sequential(nn.Linear(config.latent + k, c2 * (h // 4) * (w // 4)), nn.ReLU())
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(c2, c1, 4, 2, 1), nn.ReLU(),  # (B, c1, H/2, W/2)
            nn.ConvTranspose2d(c1, c, 4, 2, 1),  # (B, C, H, W), unbounded: the data are normalised, not in [0, 1]
        )
        # prior="class": each class's prior mean and log-variance, starting at N(0, I)
        self.prior = nn.Embedding(k, 2 * config.latent) if config.prior == "class" else None
        if self.prior is not None:
            nn.init.zeros_(self.prior.weight)
        if config.prior == "fitted":  # per class: running E[μ] and E[μ μᵀ] of the posterior means, from N(0, I)
            self.register_buffer("fit_mean", torch.zeros(k, config.latent))
            self.register_buffer("fit_second", torch.eye(config.latent).repeat(k, 1, 1))

    def prior_stats(self, y: Tensor | None, n: int, like: Tensor) -> tuple[Tensor, Tensor]:
        """p(z | y): (mean, log-variance), each (n, latent) — zeros for the standard prior."""
        if self.prior is None:
            zeros = like.new_zeros(n, self.config.latent)
            return zeros, zeros
        mean, logvar = self.prior(y).chunk(2, dim=1)
        return mean, logvar.clamp(-10.0, 10.0)

    def encode(self, x: Tensor, y: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """q(z | x, y): (mean, log-variance), each (B, latent)."""
        c, h, w = self.config.input_shape
        x = shapes.check_image(x, channels=c, size=(h, w))
        y = check_labels(y, self.config.num_classes, x.shape[0], "vae")
        inp = x if y is None else torch.cat([x, one_hot_channels(y, self.config.num_classes, x)], 1)
        mean, logvar = self.to_stats(self.encoder(inp)).chunk(2, dim=1)
        return mean, logvar.clamp(-10.0, 10.0)

    def decode(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        """p(x | z, y)'s mean: (B, latent) → (B, C, H, W)."""
        y = check_labels(y, self.config.num_classes, z.shape[0], "vae")
        if y is not None:
            z = torch.cat([z, F.one_hot(y, self.config.num_classes).to(z.dtype)], 1)
        return self.decoder(self.from_latent(z).view(-1, *self.small))

    @torch.no_grad()
    def _update_fit(self, mean: Tensor, y: Tensor) -> None:
        """Move each class present in the batch's running moments towards its batch moments."""
        onehot = F.one_hot(y, self.config.num_classes).to(mean.dtype)  # (B, K)
        counts = onehot.sum(0)  # (K,)
        present = counts > 0
        n = counts[present, None]
        batch_mean = (onehot.T @ mean)[present] / n  # (k, L)
        batch_second = torch.einsum("bk,bi,bj->kij", onehot, mean, mean)[present] / n[..., None]  # (k, L, L)
        self.fit_mean[present] = torch.lerp(self.fit_mean[present], batch_mean, FIT_MOMENTUM)
        self.fit_second[present] = torch.lerp(self.fit_second[present], batch_second, FIT_MOMENTUM)

    def fitted_stats(self, y: Tensor) -> tuple[Tensor, Tensor]:
        """prior="fitted": each class's running mean (n, L) and the Cholesky factor of its covariance (n, L, L)."""
        mean = self.fit_mean[y]
        cov = self.fit_second[y] - mean[:, :, None] * mean[:, None, :]
        eye = torch.eye(self.config.latent, dtype=mean.dtype, device=mean.device)
        return mean, torch.linalg.cholesky(0.5 * (cov + cov.mT) + 1e-5 * eye)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        mean, logvar = self.encode(x, y)
        if self.training and self.config.prior == "fitted":
            self._update_fit(mean.detach(), y)
        z = mean + torch.randn_like(mean) * (0.5 * logvar).exp() if self.training else mean  # reparameterisation
        recon = ((self.decode(z, y) - x) ** 2).flatten(1).sum(1) / (2 * self.config.noise_std**2)  # (B,)
        p_mean, p_logvar = self.prior_stats(y, x.shape[0], mean)
        # KL(N(mean, var) ‖ N(p_mean, p_var)), (B,); with the standard prior: 0.5 Σ (mean² + var − 1 − log var)
        kl = 0.5 * (p_logvar - logvar + (logvar.exp() + (mean - p_mean) ** 2) / p_logvar.exp() - 1).sum(1)
        return torch.stack([recon, self.config.beta * kl], 1)  # (B, 2)

    @torch.no_grad()
    def sample(self, n: int, y: Tensor | None = None, *, generator: torch.Generator | None = None,
               temperature: float | None = None) -> Tensor:
        """`n` images decoded from z ~ N(μ_y, T²·σ_y²) — N(0, T²·I) with the standard prior, N(m_y, T²·S_y) with
        the fitted one — (for classes `y` (n,) when conditional); T is `temperature`, by default the config's."""
        t = self.config.temperature if temperature is None else check_positive_number(temperature, "temperature")
        device = next(self.parameters()).device
        y = None if y is None else check_labels(y.to(device), self.config.num_classes, n, "vae")
        eps = torch.randn(n, self.config.latent, generator=generator).to(device)
        if self.config.prior == "fitted":
            mean, chol = self.fitted_stats(y)
            return self.decode(mean + t * (chol @ eps[:, :, None]).squeeze(2), y)
        mean, logvar = self.prior_stats(y, n, eps)
        return self.decode(mean + eps * t * (0.5 * logvar).exp(), y)


def generator_from_info(info) -> dict:
    """Constructor arguments of a conditional image generator (vae, dcgan) for an image dataset."""
    return {"input_shape": tuple(info.input_shape), "num_classes": info.num_classes}


registry.register(
    "vae", VAE,
    description="convolutional variational autoencoder, class-conditional (generate-image: `gridseq sample`)",
    kinds=("image",), from_info=generator_from_info,
)
