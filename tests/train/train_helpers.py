"""Shared pieces of the trainer tests: a tiny model with dropout and a tiny synthetic dataset."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from gridseq.data.contract import Dataset, DatasetInfo, Split
from gridseq.models import registry

TINY = "_tiny_train_test"


class TinyNet(nn.Module):
    """(B, T, F) → (B, K): flatten, one hidden layer with dropout (so resume must restore dropout RNG)."""

    @dataclass(frozen=True)
    class Config:
        input_size: int
        num_classes: int
        steps: int = 8
        hidden: int = 16
        dropout: float = 0.2

    topology = "many-to-one"

    def __init__(self, config: Config):
        super().__init__()
        self.config = config
        self.net = nn.Sequential(
            nn.Flatten(), nn.Linear(config.steps * config.input_size, config.hidden), nn.ReLU(),
            nn.Dropout(config.dropout), nn.Linear(config.hidden, config.num_classes),
        )

    def forward(self, x, lengths=None):
        return self.net(x)


def make_data(n_train=160, n_val=40, n_test=40, *, steps=8, features=2, classes=3, noise=1.0, seed=0) -> Dataset:
    """Noisy copies of one random template per class: learnable in a few epochs, not trivially."""
    g = torch.Generator().manual_seed(seed)
    templates = torch.randn(classes, steps, features, generator=g)

    def split(n):
        y = torch.randint(0, classes, (n,), generator=g)
        return Split(templates[y] + noise * torch.randn(n, steps, features, generator=g), y)

    info = DatasetInfo(name="synthetic", kind="series", input_shape=(steps, features), num_classes=classes,
                       class_names=tuple(f"c{i}" for i in range(classes)))
    return Dataset(info, split(n_train), split(n_val), split(n_test))


def build(name: str, data: Dataset, seed: int = 0, **kw) -> nn.Module:
    torch.manual_seed(seed)
    return registry.create(name, input_size=data.info.input_shape[-1], num_classes=data.info.num_classes, **kw)
