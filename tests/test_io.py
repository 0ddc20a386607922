"""Saving and loading models as data (gridseq.io, gridseq._atomic): round trips, the config.json
format, no unpickling, typed errors naming the broken file, and atomic writes.

The tests use a tiny model registered only for their duration, so they do not depend on the real
model families."""

import dataclasses
import errno
import json
import os
import pickle
import stat

import pytest
import safetensors.torch
import torch
from safetensors import safe_open
from torch import nn

import gridseq
from gridseq import io
from gridseq._atomic import atomic_write, atomic_write_json, atomic_write_text
from gridseq._validation import check_int_tuple, check_positive_int
from gridseq.errors import CheckpointError, ConfigError, OutputError
from gridseq.models import registry
from gridseq.shapes import check_sequence


class TinyNet(nn.Module):
    """Mean over valid steps, an MLP, logits; optionally ties the input and output projections."""

    topology = "many-to-one"

    @dataclasses.dataclass(frozen=True)
    class Config:
        input_size: int
        num_classes: int
        hidden_sizes: tuple[int, ...] = (4,)
        scale: float = 1.0
        tied: bool = False

        def __post_init__(self):
            check_positive_int(self.input_size, "input_size")
            check_positive_int(self.num_classes, "num_classes")
            object.__setattr__(self, "hidden_sizes", check_int_tuple(self.hidden_sizes, "hidden_sizes"))

    def __init__(self, config):
        super().__init__()
        self.config = config
        sizes = (config.input_size, *config.hidden_sizes)
        self.body = nn.Sequential(*[nn.Linear(a, b) for a, b in zip(sizes, sizes[1:])])
        self.head = nn.Linear(sizes[-1], config.num_classes, bias=False)
        self.register_buffer("steps_seen", torch.zeros((), dtype=torch.int64))
        if config.tied:
            self.out = nn.Linear(config.num_classes, sizes[-1], bias=False)
            self.out.weight = self.head.weight  # two state_dict names, one tensor (like tied embeddings)

    def forward(self, x, lengths=None):
        x, lengths = check_sequence(x, lengths, features=self.config.input_size)
        h = torch.tanh(self.body(x.mean(1)))  # (B, H)
        return self.head(h) * self.config.scale  # (B, K)


NAME = "tiny_io_test"


@pytest.fixture(autouse=True)
def tiny_registered(monkeypatch):
    # a private copy of the registry: the test model disappears afterwards, real entries are untouched
    monkeypatch.setattr(registry, "_entries", dict(registry._entries))
    registry.register(NAME, TinyNet, description="test model", kinds=("sequence",))
    yield


def make(**kw):
    model = gridseq.models.create(NAME, **{"input_size": 3, "num_classes": 2, **kw})
    with torch.no_grad():  # make weights distinguishable from a fresh init
        for p in model.parameters():
            p.add_(torch.randn_like(p))
        model.steps_seen.fill_(7)
    return model


X = torch.randn(5, 6, 3)


# ---------------------------------------------------------------- round trip


def test_round_trip_restores_weights_config_and_outputs(tmp_path):
    model = make(hidden_sizes=[4, 5])
    assert gridseq.save(model, tmp_path / "run") == tmp_path / "run"
    loaded = gridseq.load(tmp_path / "run")

    assert type(loaded) is TinyNet and loaded.gridseq_name == NAME
    assert loaded.config == model.config
    assert loaded.config.hidden_sizes == (4, 5) and isinstance(loaded.config.hidden_sizes, tuple)
    assert not loaded.training
    original, restored = model.state_dict(), loaded.state_dict()
    assert original.keys() == restored.keys()
    for k in original:
        assert torch.equal(original[k], restored[k]), k
    model.eval()
    assert torch.equal(model(X), loaded(X))


@pytest.mark.parametrize("kept", ["head.weight", "out.weight"])
def test_tied_weights_round_trip(tmp_path, kept):
    # safetensors keeps one name per shared tensor; which one depends on its version, so try both
    model = make(tied=True)
    gridseq.save(model, tmp_path)
    path = tmp_path / "model.safetensors"
    safetensors.torch.save_file({"body.0.weight": model.body[0].weight, "body.0.bias": model.body[0].bias,
                                 "steps_seen": model.steps_seen, kept: model.head.weight.detach()}, path)
    loaded = gridseq.load(tmp_path)
    assert loaded.out.weight is loaded.head.weight
    assert torch.equal(loaded.head.weight, model.head.weight)


def test_save_overwrites_an_earlier_save(tmp_path):
    gridseq.save(make(), tmp_path)
    second = make(hidden_sizes=[2])
    gridseq.save(second, tmp_path)
    assert gridseq.load(tmp_path).config.hidden_sizes == (2,)


# ---------------------------------------------------------------- format


def test_config_json_contents(tmp_path):
    model = make(hidden_sizes=[4, 5])
    gridseq.save(model, tmp_path, extra={"data": {"vocab": ["a", "b"]}, "train": {"lr": 0.1}})
    config = json.loads((tmp_path / "config.json").read_text(encoding="utf-8"))
    assert config["format_version"] == io.FORMAT_VERSION == 1
    assert config["gridseq_version"] == gridseq.__version__
    assert config["model"] == {
        "name": NAME,
        "config": {"input_size": 3, "num_classes": 2, "hidden_sizes": [4, 5], "scale": 1.0, "tied": False},
    }
    assert config["data"] == {"vocab": ["a", "b"]} and config["train"] == {"lr": 0.1}
    assert io.read_config(tmp_path) == config


def test_extra_cannot_relabel_the_format_or_the_model(tmp_path):
    gridseq.save(make(), tmp_path, extra={"format_version": 99, "model": {"name": "other"}})
    config = io.read_config(tmp_path)
    assert config["format_version"] == 1 and config["model"]["name"] == NAME


def test_extra_that_is_not_json_is_a_config_error_and_writes_nothing(tmp_path):
    with pytest.raises(ConfigError, match="JSON"):
        gridseq.save(make(), tmp_path, extra={"data": object()})
    assert list(tmp_path.iterdir()) == []


def test_files_are_json_and_safetensors_only(tmp_path):
    model = make()
    gridseq.save(model, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]
    json.loads((tmp_path / "config.json").read_text())
    with safe_open(tmp_path / "model.safetensors", framework="pt") as f:
        assert set(f.keys()) == set(model.state_dict())
    assert not (tmp_path / "model.safetensors").read_bytes().startswith(b"\x80")  # a pickle's first byte


def test_load_never_unpickles(tmp_path, monkeypatch):
    gridseq.save(make(), tmp_path)

    def forbidden(*args, **kwargs):
        raise AssertionError("load must not unpickle")

    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(pickle, "Unpickler", forbidden)
    monkeypatch.setattr(torch, "load", forbidden)
    loaded = gridseq.load(tmp_path)
    assert loaded(X).shape == (5, 2)


# ---------------------------------------------------------------- errors name the file


def test_checkpoint_error_is_an_os_error():
    assert issubclass(CheckpointError, OSError)


def test_missing_directory(tmp_path):
    with pytest.raises(CheckpointError, match="not a directory"):
        gridseq.load(tmp_path / "nope")


def test_missing_config(tmp_path):
    gridseq.save(make(), tmp_path)
    (tmp_path / "config.json").unlink()
    with pytest.raises(CheckpointError, match="config.json is missing"):
        gridseq.load(tmp_path)


def test_missing_weights(tmp_path):
    gridseq.save(make(), tmp_path)
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="model.safetensors is missing"):
        gridseq.load(tmp_path)


@pytest.mark.parametrize("text", ['{"format_version": 1, "model": ', "\xff\xfe garbage", ""])
def test_corrupt_json(tmp_path, text):
    gridseq.save(make(), tmp_path)
    (tmp_path / "config.json").write_bytes(text.encode("latin-1"))
    with pytest.raises(CheckpointError, match=r"config.json is not valid JSON.*corrupt"):
        gridseq.load(tmp_path)


@pytest.mark.parametrize("content", ["[1, 2]", '{"format_version": 1}', '{"format_version": 1, "model": {"name": "x", "config": [1]}}'])
def test_json_that_is_not_a_gridseq_config(tmp_path, content):
    (tmp_path / "config.json").write_text(content)
    with pytest.raises(CheckpointError, match="config.json.*not written by gridseq.save"):
        gridseq.load(tmp_path)


@pytest.mark.parametrize("keep", [0, 3, 60, -10])
def test_truncated_weights(tmp_path, keep):
    gridseq.save(make(), tmp_path)
    path = tmp_path / "model.safetensors"
    path.write_bytes(path.read_bytes()[:keep])
    with pytest.raises(CheckpointError, match="model.safetensors is corrupt or truncated"):
        gridseq.load(tmp_path)


def _rewrite_model_config(directory, **changes):
    path = directory / "config.json"
    config = json.loads(path.read_text())
    config["model"]["config"].update(changes)
    path.write_text(json.dumps(config))


def test_weights_with_mismatched_shapes(tmp_path):
    gridseq.save(make(hidden_sizes=[4]), tmp_path)
    _rewrite_model_config(tmp_path, hidden_sizes=[6])
    with pytest.raises(CheckpointError, match=r"model.safetensors does not match.*shape mismatch.*body.0.weight: file \(4, 3\) vs model \(6, 3\)"):
        gridseq.load(tmp_path)


def test_weights_with_missing_keys(tmp_path):
    gridseq.save(make(hidden_sizes=[4]), tmp_path)
    _rewrite_model_config(tmp_path, hidden_sizes=[4, 4])
    with pytest.raises(CheckpointError, match=r"model.safetensors does not match.*missing \['body.1.bias', 'body.1.weight'\]"):
        gridseq.load(tmp_path)


def test_weights_with_unexpected_keys(tmp_path):
    gridseq.save(make(hidden_sizes=[4, 4]), tmp_path)
    _rewrite_model_config(tmp_path, hidden_sizes=[4])
    with pytest.raises(CheckpointError, match=r"unexpected \['body.1.bias', 'body.1.weight'\]"):
        gridseq.load(tmp_path)


def test_load_weights_into_a_given_model(tmp_path):
    source = make()
    gridseq.save(source, tmp_path)
    target = make()
    assert io.load_weights(target, tmp_path / "model.safetensors") is target
    assert torch.equal(target.head.weight, source.head.weight)


def test_unknown_model_name(tmp_path):
    gridseq.save(make(), tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["model"]["name"] = "tiny_io_tset"
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"config.json describes a model.*unknown model 'tiny_io_tset'.*Did you mean 'tiny_io_test'"):
        gridseq.load(tmp_path)


def test_invalid_saved_argument(tmp_path):
    gridseq.save(make(), tmp_path)
    _rewrite_model_config(tmp_path, hidden_sizes=[0])
    with pytest.raises(CheckpointError, match=r"config.json.*hidden_sizes\[0\] must be a positive int"):
        gridseq.load(tmp_path)


def test_unknown_saved_argument(tmp_path):
    gridseq.save(make(), tmp_path)
    _rewrite_model_config(tmp_path, hiden=3)
    with pytest.raises(CheckpointError, match=r"unknown argument 'hiden'"):
        gridseq.load(tmp_path)


@pytest.mark.parametrize(("version", "hint"), [(2, "upgrade gridseq"), (0, "re-save"), (None, "re-save"), ("1", "re-save")])
def test_wrong_format_version(tmp_path, version, hint):
    gridseq.save(make(), tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["format_version"] = version
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=rf"config.json has format_version {version!r}.*reads format_version 1.*{hint}"):
        gridseq.load(tmp_path)


def test_saving_an_unregistered_module_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"Linear was not built by gridseq.models.create"):
        gridseq.save(nn.Linear(2, 2), tmp_path)
    # a registered class built by hand (no registry name) is refused too
    with pytest.raises(ConfigError, match="TinyNet"):
        gridseq.save(TinyNet(TinyNet.Config(input_size=2, num_classes=2)), tmp_path)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- atomic writes


def _leftovers(directory):
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def test_failed_weight_write_keeps_the_previous_files(tmp_path, monkeypatch):
    gridseq.save(make(), tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def half_then_crash(model, filename, *args, **kwargs):
        with open(filename, "wb") as f:
            f.write(b"\x00" * 16)  # half a file on disk, then the process "dies"
        raise OSError("disk full")

    monkeypatch.setattr(io, "save_model", half_then_crash)
    with pytest.raises(OSError, match="disk full"):
        gridseq.save(make(hidden_sizes=[2]), tmp_path)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    assert _leftovers(tmp_path) == []
    assert gridseq.load(tmp_path).config.hidden_sizes == (4,)


def test_atomic_write_failure_mid_way_keeps_old_file_and_no_temp(tmp_path):
    target = tmp_path / "f.bin"
    target.write_bytes(b"old")

    def partial(tmp):
        with open(tmp, "wb") as f:
            f.write(b"new but incomp")
        raise KeyboardInterrupt  # BaseException too: a Ctrl-C mid-write must not leave debris

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, partial)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]


def test_atomic_write_failure_in_rename_cleans_up(tmp_path, monkeypatch):
    target = tmp_path / "config.json"
    atomic_write_json(target, {"a": 1})

    def broken_replace(src, dst):
        raise PermissionError(errno.EACCES, "Permission denied", dst)

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OutputError, match=r"cannot write .*config.json: permission denied \(EACCES\)") as caught:
        atomic_write_json(target, {"a": 2})
    assert caught.value.errno == errno.EACCES
    assert json.loads(target.read_text()) == {"a": 1}
    assert _leftovers(tmp_path) == []


def test_atomic_write_text_creates_parents_and_replaces(tmp_path):
    target = tmp_path / "a" / "b" / "note.txt"
    assert atomic_write_text(target, "one") == target
    atomic_write_text(target, "twö")
    assert target.read_text(encoding="utf-8") == "twö"
    assert _leftovers(target.parent) == []


def test_temp_file_lives_beside_the_target(tmp_path):
    # os.replace is only atomic within one filesystem, so the temporary must be in the same folder
    seen = []
    atomic_write(tmp_path / "x", lambda tmp: (seen.append(tmp), open(tmp, "w").close()))
    assert os.path.dirname(seen[0]) == str(tmp_path)


def test_atomic_write_gives_the_permissions_open_would(tmp_path):
    # mkstemp makes its temporary 0600; the finished file must be readable like any other output
    atomic_write_text(tmp_path / "report.md", "x")
    open(tmp_path / "plain.md", "w").close()
    assert stat.S_IMODE(os.stat(tmp_path / "report.md").st_mode) == stat.S_IMODE(os.stat(tmp_path / "plain.md").st_mode)
