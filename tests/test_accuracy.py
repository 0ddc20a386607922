"""Train-to-accuracy checks of the README's commands, with no flags beyond the seed: the per-dataset
defaults must reach the published-style targets on the datasets' own test splits.

Slow (minutes on 2 CPU cores): run with `python -m pytest --run-slow`; CI does.
"""

import json

import pytest

from gridseq import cli

# (dataset, model, minimum test accuracy). MNIST-1D's paper reports 94% for its CNN and 91% for its
# GRU; a 1D CNN with batch norm and a 2-layer bidirectional GRU(64) with a one-cycle schedule do better.
TARGETS = [
    ("digits", "cnn", 0.97),
    ("digits", "lstm", 0.95),
    ("mnist1d", "cnn", 0.97),
    ("mnist1d", "gru", 0.95),
]


@pytest.mark.slow
@pytest.mark.parametrize("dataset,model,target", TARGETS, ids=[f"{d}-{m}" for d, m, _ in TARGETS])
def test_defaults_reach_target_accuracy(dataset, model, target, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CI", "true")  # plain progress lines
    run_dir = tmp_path / "run"
    assert cli.main(["train", dataset, "--model", model, "--seed", "0", "--run-dir", str(run_dir)]) == 0
    metrics = json.loads((run_dir / "metrics.json").read_text())
    print(f"{dataset} {model}: test accuracy {metrics['test']['accuracy']:.4f} in {metrics['train_seconds']:.1f} s")
    assert metrics["test"]["accuracy"] >= target
