"""How varied a class-conditional generator's samples are within each class — the measure of mode collapse.

`class_accuracy` (generate_image.py) rewards a generator that draws one good image per class again and
again; `fid` penalises that only mixed with everything else. `diversity` separates the two, per class,
with the same frozen classifier the task scores with (`train_classifier`, `features_and_labels`):

- `accuracy`: the share of the class's samples the classifier labels as that class;
- `feature_spread`: tr Cov(classifier features of the samples) / tr Cov(features of the real images of
  the class) — 1 is as varied as the real class, near 0 is one image drawn over and over;
- `pixel_spread`: the same ratio on raw pixels (the mean per-pixel standard deviation).

    >>> report = diversity(gridseq.load(run), data.train, data.val, data.info)  # doctest: +SKIP
    >>> report["feature_spread"], report["covered_classes"]  # doctest: +SKIP
    (0.21, 10)
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gridseq.data.contract import DatasetInfo, Split
from gridseq.errors import ConfigError
from gridseq.models.traits import traits
from gridseq.tasks.generate_image import (
    SAMPLE_SEED,
    features_and_labels,
    train_classifier,
)


def _spread(features: Tensor) -> float:
    """tr Cov: the summed variance of (N, D) rows."""
    return float(features.double().var(0).sum()) if len(features) > 1 else 0.0


def diversity(model: nn.Module, train: Split, split: Split, info: DatasetInfo, *, per_class: int = 200,
              seed: int = SAMPLE_SEED) -> dict:
    """Per-class accuracy and spread of `per_class` samples of each class against `split`'s real images.

    Args:
        model: a class-conditional generator (`sample(n, y, generator=)`), e.g. a `vae` or `dcgan`.
        train: the training split (the frozen classifier learns from it, as in the task).
        split: the real images each class's samples are compared with (val to choose, test to report).
        info: the dataset's info.
        per_class: samples drawn per class. Default: 200.
        seed: the latent draws' seed. Default: the task's SAMPLE_SEED.
    Returns:
        {"class_accuracy", "feature_spread", "pixel_spread" (means over classes), "covered_classes"
        (classes with accuracy >= 0.5), "per_class": [{"class", "accuracy", "feature_spread", "pixel_spread"}]}.
    """
    num_classes = traits(model).conditional_classes
    if not num_classes:
        raise ConfigError("diversity is measured per class: it needs a class-conditional generator (num_classes > 0).")
    classifier = train_classifier(train, info)
    generator = torch.Generator().manual_seed(seed)
    model.eval()
    rows = []
    for k in range(num_classes):
        real = split.x[split.y == k]
        if len(real) < 2:
            continue
        fake = model.sample(per_class, torch.full((per_class,), k, dtype=torch.long), generator=generator).cpu()
        f_fake, predicted = features_and_labels(classifier, fake)
        f_real, _ = features_and_labels(classifier, real)
        rows.append({"class": info.class_names[k] if info.class_names else str(k),
                     "accuracy": float((predicted == k).double().mean()),
                     "feature_spread": _spread(f_fake) / max(_spread(f_real), 1e-12),
                     "pixel_spread": float(fake.flatten(1).std(0).mean() / real.flatten(1).std(0).mean().clamp(min=1e-12))})
    mean = lambda key: sum(r[key] for r in rows) / max(len(rows), 1)  # noqa: E731
    return {"class_accuracy": mean("accuracy"), "feature_spread": mean("feature_spread"), "pixel_spread": mean("pixel_spread"),
            "covered_classes": sum(r["accuracy"] >= 0.5 for r in rows), "per_class": rows}
