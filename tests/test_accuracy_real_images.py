"""Train-to-accuracy checks on real images, MNIST and Fashion-MNIST, at a reduced budget.

The full-budget figures (all 54,000 training images, the epochs of the defaults table) take minutes per
epoch on 2 CPU cores, too long for CI; they come from benchmarks/real_images.py and are in
docs/datasets.md. Here each check trains the `gridseq train DATASET --model cnn` defaults (the
defaults table's model and training settings) on the first 4,000 training images for 2 epochs, picks
its epoch on 1,000 validation images and is scored on the full official test split (10,000): a pipeline
that mixed up labels, dropped the normalisation or left the model untrained stays far below the
thresholds (chance is 0.10). Measured: mnist 0.969, fashion-mnist 0.772 (with the defaults' random erasing,
a regulariser for 30-epoch runs that costs accuracy after 2; 0.809 without it); ~31 s of CPU for both (225 s
of wall time on a machine loaded by other jobs).

Slow: run with `python -m pytest --run-slow`; each check skips with the user's message when its data
source is not installed.
"""

import dataclasses

import pytest
import torch

from gridseq import datasets, defaults, models, train
from gridseq.errors import DataError

# (dataset, model, minimum test accuracy after 2 epochs on 4,000 images)
TARGETS = [("mnist", "cnn", 0.93), ("fashion-mnist", "cnn", 0.74)]


def _subset(split, n: int):
    return dataclasses.replace(split, x=split.x[:n], y=split.y[:n])


@pytest.mark.slow
@pytest.mark.parametrize("dataset,model,target", TARGETS, ids=[f"{d}-{m}" for d, m, _ in TARGETS])
def test_defaults_learn_real_images_on_a_reduced_budget(dataset, model, target):
    try:
        data = datasets.load(dataset, seed=0)
    except DataError as e:
        if "needs" in str(e):  # the source is not installed; the message says how to get it
            pytest.skip(str(e))
        raise
    data = dataclasses.replace(data, train=_subset(data.train, 4000), val=_subset(data.val, 1000))
    assert len(data.test) == 10000  # the official test split, whole
    settings = defaults.lookup(dataset, model)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small convolutions: a second thread on a shared machine only slows them
    try:
        train.seed_everything(0)
        net = models.create_for(model, data.info, **settings["model"])
        result = train.fit(net, data, seed=0, progress=False, **{**settings["train"], "epochs": 2})
    finally:
        torch.set_num_threads(threads)
    print(f"{dataset} {model}: test accuracy {result.test['accuracy']:.4f} in {result.train_seconds:.1f} s")
    assert result.test["accuracy"] >= target
