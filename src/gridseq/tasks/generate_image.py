"""The `generate-image` task: train an image generator (VAE, DCGAN) and score its samples.

A generator's loss is its own (the model returns per-image loss terms: a VAE's reconstruction and KL,
a DCGAN's generator and discriminator losses); the task sums them. Quality is measured on samples with
a *frozen gridseq CNN classifier trained on the real training images* (seeded, trained once per
training set and kept on disk, never on val or test):

The classifier is trained on one thread (its weights then do not depend on the caller's thread count) and
kept on disk, `$GRIDSEQ_CACHE_DIR/classifiers/` (default `$XDG_CACHE_HOME/gridseq`, i.e. `~/.cache/gridseq`),
under a digest of its settings, the torch version and the training images and labels: the first
evaluation on a dataset trains it (minutes for MNIST-sized data), every later process reads it back.

- `class_accuracy`: the fraction of class-conditional samples the classifier labels as the class they
  were asked for (one sample per evaluated item, for that item's class).
- `fid`: the Fréchet distance between Gaussians fitted to the classifier's penultimate-layer features
  of the real items and of the samples, ‖μ_r − μ_g‖² + tr(Σ_r + Σ_g − 2 (Σ_r Σ_g)^½). The idea of the
  Fréchet Inception Distance, but computed with our own small classifier, not Inception: the numbers are
  comparable across gridseq runs on one dataset, not with published FIDs.

Baselines (test split): `noise` — per-pixel Gaussian noise with the training images' per-pixel mean
and std; `real_images` — the validation split's real images scored as if generated (the floor).

Any model declaring `Traits(serves_task="generate-image", samples=True)` (a `sample(n, y, generator=)` method) takes this
task on an image classification dataset; see `gridseq.tasks.for_data`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from gridseq._atomic import atomic_write
from gridseq.data.contract import Batch, DatasetInfo, Split
from gridseq.errors import CheckpointError, ConfigError, DataError, OutputError, ShapeError
from gridseq.models.traits import traits, unwrap
from gridseq.tasks.base import Metrics, Task, register

_logger = logging.getLogger(__name__)

CLASSIFIER = {"model": "cnn", "channels": (32, 64), "hidden": 64, "epochs": 15, "batch_size": 64, "lr": 2e-3, "seed": 0}
SAMPLE_SEED = 1234  # the evaluation samples' latent draws: the same every epoch, so scores are comparable
CACHE_ENV = "GRIDSEQ_CACHE_DIR"
_classifiers: dict[str, nn.Module] = {}  # trained classifiers by digest, for this process


def cache_dir() -> Path:
    """Where gridseq keeps what it can recompute: `$GRIDSEQ_CACHE_DIR`, else `$XDG_CACHE_HOME/gridseq`,
    else `~/.cache/gridseq`."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "gridseq"


def classifier_digest(split: Split, info: DatasetInfo) -> str:
    """A digest of what the scoring classifier's weights depend on: its settings, the torch version,
    the input shape, the class count, and the training images and labels, byte for byte."""
    h = hashlib.sha256(json.dumps({"settings": CLASSIFIER, "torch": torch.__version__.split("+")[0],
                                   "input_shape": list(info.input_shape), "num_classes": info.num_classes},
                                  sort_keys=True).encode())
    for t in (split.x, split.y):
        t = t.detach().contiguous().cpu()
        h.update(str((t.dtype, tuple(t.shape))).encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()[:20]


def _create_classifier(info: DatasetInfo) -> nn.Module:
    from gridseq.models import create

    return create(CLASSIFIER["model"], input_shape=tuple(info.input_shape), num_classes=info.num_classes,
                  channels=CLASSIFIER["channels"], hidden=CLASSIFIER["hidden"])


def _fit_classifier(split: Split, info: DatasetInfo) -> nn.Module:
    cfg = CLASSIFIER
    gen = torch.Generator().manual_seed(cfg["seed"])
    threads = torch.get_num_threads()
    with torch.random.fork_rng(devices=[]):  # leave the caller's random stream as it was
        torch.manual_seed(cfg["seed"])
        torch.set_num_threads(1)  # the same weights whatever the caller's thread count
        try:
            model = _create_classifier(info)
            opt = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
            model.train()
            for _ in range(cfg["epochs"]):
                for index in torch.randperm(len(split), generator=gen).split(cfg["batch_size"]):
                    loss = nn.functional.cross_entropy(model(split.x[index]), split.y[index])
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
        finally:
            torch.set_num_threads(threads)
    return model


def train_classifier(split: Split, info: DatasetInfo, *, cache: bool = True) -> nn.Module:
    """The frozen scoring classifier: a gridseq `cnn` trained on `split` (fixed seed and settings,
    `CLASSIFIER`, one thread), in eval mode with gradients off; kept for the process and, with `cache`,
    on disk (`cache_dir()`), keyed by `classifier_digest`. A cache file that cannot be read is retrained
    and replaced; a cache folder that cannot be written only costs the next process the training."""
    from gridseq.io import load_state_dict

    digest = classifier_digest(split, info)
    if digest in _classifiers:
        return _classifiers[digest]
    path = cache_dir() / "classifiers" / f"{info.name}-{digest}.safetensors"
    model = None
    if cache and path.is_file():
        model = _create_classifier(info)
        try:
            model.load_state_dict(load_state_dict(path))
            _logger.info("scoring classifier read from %s", path)
        except (CheckpointError, RuntimeError) as e:
            _logger.warning("the cached scoring classifier %s is unreadable (%s); training it again", path, e)
            model = None
    if model is None:
        _logger.info("training the scoring classifier on %d %s images (once; cached in %s)", len(split), info.name, path.parent)
        model = _fit_classifier(split, info)
        if cache:
            from safetensors.torch import save_model

            try:
                atomic_write(path, lambda tmp: save_model(model, tmp))
            except OutputError as e:
                _logger.warning("the scoring classifier is not cached: %s", e)
    model.eval().requires_grad_(False)
    _classifiers[digest] = model
    return model


def features_and_labels(classifier: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
    """The classifier's penultimate features (B, D) float64 and its predicted classes (B,)."""
    head = classifier.head  # [Dropout, Linear(hidden), ReLU, Dropout, Linear(K)]
    with torch.no_grad():
        hidden = head[:3](classifier.forward_features(x.float()))  # (B, hidden)
        return hidden.double(), head[3:](hidden).argmax(1)


def frechet_distance(mu1: Tensor, cov1: Tensor, mu2: Tensor, cov2: Tensor) -> float:
    """‖μ1 − μ2‖² + tr(Σ1 + Σ2 − 2 (Σ1 Σ2)^½) for symmetric PSD Σ (float64).

    tr((Σ1 Σ2)^½) = Σ √λ over the eigenvalues λ of Σ1^½ Σ2 Σ1^½ (similar to Σ1 Σ2, and symmetric).

    Example:
        >>> import torch
        >>> eye = torch.eye(2, dtype=torch.float64)
        >>> frechet_distance(torch.zeros(2), eye, torch.ones(2), 4 * eye)  # 2 + (1 + 4 - 2*2) * 2
        4.0
    """
    mu1, mu2, cov1, cov2 = (t.double() for t in (mu1, mu2, cov1, cov2))
    vals, vecs = torch.linalg.eigh(cov1)
    root1 = vecs @ torch.diag(vals.clamp(min=0).sqrt()) @ vecs.T
    cross = torch.linalg.eigvalsh(root1 @ cov2 @ root1).clamp(min=0).sqrt().sum()
    return float(((mu1 - mu2) ** 2).sum() + torch.trace(cov1) + torch.trace(cov2) - 2 * cross)


class GenerationMetrics(Metrics):
    """`loss`, the model's two loss terms (`loss_a`/`loss_b` named by the model family), and on
    evaluation batches with samples `class_accuracy` and `fid` (needs the frozen classifier)."""

    def __init__(self, classifier: nn.Module | None, conditional: bool, terms: tuple[str, str], owner: Any = None):
        # owner: the task, whose `conditional` and `terms` are known once it has seen the model
        self.classifier, self.conditional, self.terms, self.owner = classifier, conditional, terms, owner
        self.sums: dict[str, Tensor] = {}

    def _add(self, **values: Tensor) -> None:
        for name, value in values.items():
            value = value.detach().double()
            self.sums[name] = self.sums[name] + value if name in self.sums else value

    def add_images(self, real: Tensor, fake: Tensor, labels: Tensor | None) -> None:
        """Score generated images `fake` against `real` ones (same count); `labels`: requested classes."""
        if self.classifier is None:
            return
        device = next(self.classifier.parameters()).device
        f_real, _ = features_and_labels(self.classifier, real.to(device))
        f_fake, predicted = features_and_labels(self.classifier, fake.to(device))
        self._add(n_images=torch.tensor(float(len(real))), real_sum=f_real.sum(0), real_outer=f_real.T @ f_real,
                  fake_sum=f_fake.sum(0), fake_outer=f_fake.T @ f_fake)
        if labels is not None:
            self._add(correct=(predicted == labels.to(device)).sum())

    def update(self, output: Tensor, batch: Batch, loss: Tensor) -> None:
        n = torch.tensor(float(len(batch)))
        terms = output[:, :2].detach()
        self._add(n=n, loss_sum=loss.detach() * len(batch), term_a=terms[:, 0].sum(), term_b=terms[:, 1].sum())
        if output.shape[1] > 2:  # evaluation: the samples follow the loss terms
            fake = output[:, 2:].reshape(batch.x.shape)
            conditional = self.owner.conditional if self.owner is not None else self.conditional
            self.add_images(batch.x, fake, batch.y if conditional else None)

    def compute(self) -> dict[str, float]:
        s = {k: v.cpu() for k, v in self.sums.items()}
        out: dict[str, float] = {}
        terms = self.owner.terms if self.owner is not None else self.terms
        if "n" in s:
            n = float(s["n"])
            out = {"loss": float(s["loss_sum"]) / n, terms[0]: float(s["term_a"]) / n,
                   terms[1]: float(s["term_b"]) / n}
        if "n_images" in s and float(s["n_images"]) > 1:
            m = float(s["n_images"])
            if "correct" in s:
                out["class_accuracy"] = float(s["correct"]) / m
            stats = []
            for side in ("real", "fake"):
                mu = s[f"{side}_sum"] / m
                stats += [mu, (s[f"{side}_outer"] - m * torch.outer(mu, mu)) / (m - 1)]
            out["fid"] = frechet_distance(*stats)
        return out

    def state_dict(self) -> dict[str, Tensor]:
        return {k: v.cpu() for k, v in self.sums.items()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.sums = {k: v.clone().double() for k, v in state.items()}


@register
class GenerateImageTask(Task):
    """Image generation on an image classification dataset (the labels condition the generator).

    Shape:
        - the model's forward(x (B, C, H, W), y (B,) or None) → (B, 2) per-image loss terms.
        - in eval mode `forward` appends one sample per item (for the item's class): (B, 2 + C·H·W).
    """

    name = "generate-image"
    generates = "images"
    topologies = ("generative",)
    primary = "fid"
    higher_is_better = False

    def elsewhere(self, run_dir) -> str:
        return f"{run_dir} is an image generator; draw images with `gridseq sample {run_dir} --n 64 --out grid.png`."

    def check_predictable(self) -> None:
        raise ConfigError("this run is an image generator (task generate-image): draw images with "
                          "`gridseq sample RUN_DIR --n 64 --out grid.png` instead of predict.")

    def __init__(self, info: DatasetInfo | None = None):
        super().__init__(info)
        self.train_split: Split | None = None
        self.val_split: Split | None = None
        self._classifier: nn.Module | None = None
        self.conditional = False
        self.terms = ("loss_a", "loss_b")
        self.generator = torch.Generator().manual_seed(SAMPLE_SEED)

    def check_split(self, split: Split, name: str) -> None:
        if self.info is not None and self.info.kind != "image":
            raise DataError(f"generate-image needs image data (B, C, H, W); dataset {self.info.name!r} is {self.info.kind} data.")
        if split.y is not None and len(split) and split.y.dim() != 1:
            raise DataError(f"generate-image needs one class id per image (y of shape (N,)), got y of shape {tuple(split.y.shape)}.")
        if name == "train":  # the frozen classifier that scores samples learns from these images
            self.train_split = split
        elif name == "val":
            self.val_split = split

    @property
    def classifier(self) -> nn.Module | None:
        if self._classifier is None and self.train_split is not None and len(self.train_split) and self.info is not None:
            self._classifier = train_classifier(self.train_split, self.info)
        return self._classifier

    def reset(self) -> None:
        self.generator = torch.Generator().manual_seed(SAMPLE_SEED)

    def forward(self, model: nn.Module, batch: Batch) -> Tensor:
        inner = unwrap(model)  # DistributedDataParallel wraps the model
        self.conditional = traits(inner).conditional_classes > 0
        self.terms = TERMS.get(type(inner).__name__, self.terms)
        labels = batch.y if self.conditional else None
        output = model(batch.x, labels)
        if inner.training:
            return output
        fake = inner.sample(len(batch), labels, generator=self.generator)  # (B, C, H, W)
        return torch.cat([output, fake.flatten(1).to(output.dtype)], 1)

    def loss(self, output: Tensor, batch: Batch) -> Tensor:
        if output.dim() != 2 or output.shape[0] != len(batch) or output.shape[1] < 2:
            raise ShapeError(f"a generate-image model returns (B, 2) per-image loss terms; got {tuple(output.shape)} for B={len(batch)}.")
        return output[:, :2].sum(1).mean()

    def metrics(self) -> Metrics:
        return GenerationMetrics(self.classifier, self.conditional, self.terms, owner=self)

    def predict(self, output: Tensor) -> Any:
        return output[:, 2:] if output.shape[1] > 2 else None

    def baselines(self, split: Split) -> dict[str, dict[str, float]]:
        """`noise` (per-pixel Gaussian, training mean/std) and `real_images` (the val split) on `split`."""
        if self.classifier is None or len(split) < 2:
            return {}
        g = torch.Generator().manual_seed(SAMPLE_SEED)
        train = self.train_split.x
        noise = train.mean(0) + train.std(0) * torch.randn(split.x.shape, generator=g)
        found = {"noise": noise}
        if self.val_split is not None and len(self.val_split) >= 2:
            n = min(len(split), len(self.val_split))  # FID compares equal-sized sets
            found["real_images"] = (self.val_split.x[:n], self.val_split.y[:n], split.x[:n])
        result = {}
        for name, fake in found.items():
            metrics = GenerationMetrics(self.classifier, True, self.terms)
            if name == "noise":
                metrics.add_images(split.x, fake, split.y)
            else:
                images, labels, real = fake
                metrics.add_images(real, images, labels)
            result[name] = {k: v for k, v in metrics.compute().items() if k in ("class_accuracy", "fid")}
        return result

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "classifier": {**CLASSIFIER, "channels": list(CLASSIFIER["channels"]),
                                                     "trained_on": "train split"}}


TERMS = {"VAE": ("reconstruction", "kl"), "DCGAN": ("generator_loss", "discriminator_loss")}  # names of the two loss terms
