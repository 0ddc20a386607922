"""Checkpoint files: pickle-free round trip, atomic replacement, corruption detection, RNG states."""

import json
import random

import numpy as np
import pytest
import torch
from torch import nn

from gridseq.errors import CheckpointError
from gridseq.train import checkpoint
from gridseq.train.checkpoint import capture_rng, has_checkpoint, load_checkpoint, restore_rng, save_checkpoint


def trained_optimizer():
    model = nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    return model, opt


def assert_same(a, b):
    assert type(a) is type(b) or isinstance(a, dict) and isinstance(b, dict)  # OrderedDict comes back a dict
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and torch.equal(a, b)
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for k in a:
            assert_same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_same(x, y)
    else:
        assert a == b or (a != a and b != b)  # NaN == NaN here


def test_round_trip_keeps_types_and_bits(tmp_path):
    model, opt = trained_optimizer()
    state = {
        "model": model.state_dict(), "optimizer": opt.state_dict(), "none": None, "flag": True,
        "floats": [0.1, float("inf"), float("nan"), 1e-300], "nested": {"t": (1, "a", torch.arange(3))},
        "a.b": torch.ones(1), "a": {"b": torch.zeros(1)},  # names that would collide when flattened
    }
    save_checkpoint(tmp_path, state, step=7)
    back = load_checkpoint(tmp_path)
    assert_same(state, back)
    assert list(back["optimizer"]["state"]) == [0, 1]  # int keys survive JSON
    # what is stored is data only: JSON and safetensors, no pickle
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names[0] == "manifest.json" and names[1].startswith("state-00000007") and names[2].endswith(".safetensors")


def test_optimizer_state_resumes_identically(tmp_path):
    model, opt = trained_optimizer()
    save_checkpoint(tmp_path, {"model": model.state_dict(), "opt": opt.state_dict()}, step=1)
    back = load_checkpoint(tmp_path)
    model2 = nn.Linear(3, 2)
    opt2 = torch.optim.AdamW(model2.parameters(), lr=1e-2)
    model2.load_state_dict(back["model"])
    opt2.load_state_dict(back["opt"])
    x = torch.randn(5, 3)
    for m, o in ((model, opt), (model2, opt2)):
        o.zero_grad()
        m(x).square().sum().backward()
        o.step()
    assert torch.equal(model.weight, model2.weight) and torch.equal(model.bias, model2.bias)


def test_new_checkpoint_replaces_old_files(tmp_path):
    save_checkpoint(tmp_path, {"x": torch.zeros(2)}, step=1)
    save_checkpoint(tmp_path, {"x": torch.ones(2)}, step=2)
    assert len(list(tmp_path.iterdir())) == 3
    assert torch.equal(load_checkpoint(tmp_path)["x"], torch.ones(2))


@pytest.mark.parametrize("which", ["tensors", "state"])
def test_corrupt_file_is_named(tmp_path, which):
    save_checkpoint(tmp_path, {"x": torch.arange(100.0)}, step=3)
    name = json.loads((tmp_path / "manifest.json").read_text())["files"][which]
    path = tmp_path / name
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # truncated
    with pytest.raises(CheckpointError, match=rf"{name} is truncated or corrupt"):
        load_checkpoint(tmp_path)
    assert path.exists()  # nothing is deleted: the files stay for inspection


def test_corrupt_manifest_and_missing_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="manifest.json is missing"):
        load_checkpoint(tmp_path)
    save_checkpoint(tmp_path, {"x": torch.zeros(1)}, step=1)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="manifest.json is corrupt"):
        load_checkpoint(tmp_path)


def test_crash_during_write_keeps_previous_checkpoint(tmp_path, monkeypatch):
    save_checkpoint(tmp_path, {"x": torch.zeros(3)}, step=1)

    def half_written(tensors, path):
        with open(path, "wb") as f:
            f.write(b"\x00" * 10)
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(checkpoint, "save_file", half_written)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path, {"x": torch.ones(3)}, step=2)
    monkeypatch.undo()
    assert has_checkpoint(tmp_path)
    assert torch.equal(load_checkpoint(tmp_path)["x"], torch.zeros(3))

    # a crash after the new files are written but before the manifest commits them
    monkeypatch.setattr(checkpoint, "atomic_write_json", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path, {"x": torch.ones(3)}, step=2)
    monkeypatch.undo()
    assert torch.equal(load_checkpoint(tmp_path)["x"], torch.zeros(3))
    save_checkpoint(tmp_path, {"x": torch.ones(3)}, step=3)  # the next good write cleans the leftovers
    assert len(list(tmp_path.iterdir())) == 3


def test_rng_round_trip(tmp_path):
    torch.manual_seed(1), np.random.seed(1), random.seed(1)
    np.random.randn()  # leave a cached Gaussian in NumPy's state
    save_checkpoint(tmp_path, {"rng": capture_rng()}, step=0)
    expected = (torch.rand(3), np.random.rand(3), random.random(), torch.nn.functional.dropout(torch.ones(8), 0.5))
    torch.manual_seed(2), np.random.seed(2), random.seed(2)
    restore_rng(load_checkpoint(tmp_path)["rng"])
    got = (torch.rand(3), np.random.rand(3), random.random(), torch.nn.functional.dropout(torch.ones(8), 0.5))
    assert torch.equal(expected[0], got[0]) and np.array_equal(expected[1], got[1])
    assert expected[2] == got[2] and torch.equal(expected[3], got[3])
