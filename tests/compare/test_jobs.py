"""`gridseq compare --jobs N`: the (model, seed) runs in a pool of spawned processes give the same
results, in the same order, as one after another."""

import numpy as np
import pytest

import gridseq
from gridseq import cli
from gridseq.compare import ModelSpec, harness, plan
from gridseq.errors import ConfigError


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """90 sequences of 6..12 steps, 2 features, 3 classes (the class shifts the mean of feature 0)."""
    rng = np.random.default_rng(1)
    n, steps = 90, 12
    y = np.arange(n) % 3
    x = rng.normal(size=(n, steps, 2)).astype(np.float32)
    x[:, :, 0] += y[:, None]
    path = tmp_path_factory.mktemp("data") / "tiny.npz"
    np.savez(path, x=x, y=y, lengths=rng.integers(6, steps + 1, n))
    return path


def _run(tiny, **kw):
    name = str(tiny)
    specs = plan.parse_models(["mlp", ModelSpec("gru", "gru", {"hidden_size": 8})], dataset=name, kind="sequence", task="classify")
    return harness.run(name, specs, seeds=[0, 1], budget=plan.resolve_budget(name, 2, None), lengths=None, data_options={},
                       device="cpu", progress=False, measure_speed=False, threads=1, **kw)


def test_jobs_give_the_serial_results_in_the_serial_order(tiny):
    serial, parallel = _run(tiny), _run(tiny, jobs=2)
    assert parallel.jobs == 2 and parallel.threads == 1
    assert [(r.label, r.seed) for r in parallel.runs] == [("mlp", 0), ("gru", 0), ("mlp", 1), ("gru", 1)]
    for a, b in zip(parallel.runs, serial.runs):  # same seeds, one thread each: identical results
        assert (a.test, a.val, a.best_epoch, a.epochs, a.error) == (b.test, b.val, b.best_epoch, b.epochs, b.error)
        assert a.padding == b.padding and a.gradient_trained == b.gradient_trained
    # the per-model measurements ran in the parent, on the weights the workers trained
    assert parallel.measured == serial.measured and set(parallel.measured) == {"mlp", "gru"}


def test_jobs_must_be_positive(tiny, capsys):
    with pytest.raises(ConfigError, match="jobs must be a positive int"):
        gridseq.compare(str(tiny), ["mlp"], seeds=1, epochs=1, jobs=0, progress=False)
    assert cli.main(["compare", str(tiny), "--jobs", "0"]) == 2
    assert "--jobs: expected a positive int, got 0" in capsys.readouterr().err
