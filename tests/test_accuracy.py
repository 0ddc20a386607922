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


def _baseline(name: str) -> dict:
    """The n-gram baseline measured on the same split by benchmarks/text_baselines.py (seed 0)."""
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "text_baselines.json"
    return json.loads(path.read_text())[name]


@pytest.mark.slow
def test_surnames_gru_beats_the_char_ngram_logistic_regression(tmp_path, monkeypatch):
    # the command; the baseline is character 1-3-gram TF-IDF logistic regression (C on val)
    pytest.importorskip("faker")
    monkeypatch.setenv("CI", "true")
    run_dir = tmp_path / "run"
    assert cli.main(["train", "surnames", "--model", "gru", "--bidirectional", "--run-dir", str(run_dir)]) == 0
    test = json.loads((run_dir / "metrics.json").read_text())["test"]
    baseline = _baseline("surnames")
    print(f"surnames gru: accuracy {test['accuracy']:.4f} macro-F1 {test['macro_f1']:.4f}; "
          f"baseline {baseline['test_accuracy']:.4f} / {baseline['test_macro_f1']:.4f}")
    assert test["accuracy"] > baseline["test_accuracy"] and test["macro_f1"] > baseline["test_macro_f1"]


@pytest.mark.slow
def test_dates_seq2seq_reaches_98_percent_exact_match(tmp_path, monkeypatch):
    pytest.importorskip("babel")
    monkeypatch.setenv("CI", "true")
    run_dir = tmp_path / "run"
    assert cli.main(["train", "dates", "--model", "seq2seq", "--run-dir", str(run_dir)]) == 0
    test = json.loads((run_dir / "metrics.json").read_text())["test"]
    print(f"dates seq2seq: exact match {test['exact_match']:.4f}, cer {test['cer']:.4f}")
    assert test["exact_match"] >= 0.98
