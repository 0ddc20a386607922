"""OS failures while writing: every one is an `OutputError` (the path and the fix), the CLI prints one
line and exits 2, the file being replaced is kept, and a training run resumes from its last checkpoint.

The failures are injected where the OS would report them — `mkstemp` (creating the file: no such
folder, permission denied, read-only file system, too many open files) and the write itself after K
bytes (disk full; safetensors reports it as "... (os error 28)") — and met for real: a folder under
/proc that cannot be created, and a 300 KB tmpfs (root only).
"""

from __future__ import annotations

import errno
import os
import subprocess
import tempfile
from pathlib import Path

import pytest
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

import gridseq
from gridseq import _atomic, cli, models
from gridseq.data.contract import DatasetInfo
from gridseq.errors import OutputError
from gridseq.train import checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")

ERRNOS = [errno.ENOENT, errno.EACCES, errno.EROFS, errno.ENOSPC, errno.EMFILE]
FIXES = {errno.ENOENT: "create the parent folder", errno.EACCES: "folder you can write to",
         errno.EROFS: "writable file system", errno.ENOSPC: "free space", errno.EMFILE: "ulimit -n"}
K = 100  # bytes a failing write gets onto the disk before the OS refuses the rest
TRAIN = ["train", "digits", "--model", "mlp", "--epochs", "2", "--threads", "1", "--no-progress"]


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gridseq: error: "), err
    return lines[0]


def _files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


def fail_creating(monkeypatch, code: int, when=lambda prefix: True):
    """`mkstemp` (the atomic writer's temporary file) fails with `code` whenever `when(prefix)` holds."""
    real = tempfile.mkstemp

    def mkstemp(prefix="", suffix="", dir=None, **kw):
        if when(prefix):
            raise OSError(code, os.strerror(code), os.path.join(dir or "", prefix + "XXXX" + suffix))
        return real(prefix=prefix, suffix=suffix, dir=dir, **kw)

    monkeypatch.setattr(_atomic.tempfile, "mkstemp", mkstemp)


def disk_full_after(k: int, code: int = errno.ENOSPC):
    """A safetensors `save_file` that gets `k` bytes onto the disk, then fails as the real one does."""
    def save_file(tensors, path, metadata=None):
        from safetensors.torch import save

        with open(path, "wb") as f:
            f.write(save(tensors, metadata)[:k])
        raise SafetensorError(f"Error while serializing: I/O error: {os.strerror(code)} (os error {code})")

    return save_file


# --- the atomic writer: each errno, at creation and after K bytes ------------------------------------

@pytest.mark.parametrize("code", ERRNOS, ids=[errno.errorcode[c] for c in ERRNOS])
@pytest.mark.parametrize("where", ["create", "after-k-bytes"])
def test_atomic_write_turns_each_os_failure_into_an_output_error_and_keeps_the_old_file(tmp_path, monkeypatch, code, where):
    target = tmp_path / "report.json"
    _atomic.atomic_write_json(target, {"old": True})
    before = target.read_bytes()
    if where == "create":
        fail_creating(monkeypatch, code)
        write = lambda tmp: Path(tmp).write_text("new")
    else:
        def write(tmp):
            with open(tmp, "wb") as f:
                f.write(b"x" * K)
            raise OSError(code, os.strerror(code))
    with pytest.raises(OutputError) as caught:
        _atomic.atomic_write(target, write)
    message = str(caught.value)
    assert message.startswith(f"cannot write {target}: ") and f"({errno.errorcode[code]})" in message
    assert FIXES[code] in message and "\n" not in message
    assert caught.value.errno == code and caught.value.filename == str(target)
    assert isinstance(caught.value, OSError)  # `except OSError` in a caller still catches it
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]  # no temporary file left


def test_a_folder_that_cannot_be_created_is_an_output_error():
    with pytest.raises(OutputError, match=r"cannot create the folder /proc/forbidden/run: no such file or directory \(ENOENT\)"):
        _atomic.atomic_write_text("/proc/forbidden/run/config.json", "{}")


@pytest.mark.parametrize("code", ERRNOS, ids=[errno.errorcode[c] for c in ERRNOS])
def test_a_failed_checkpoint_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch, code):
    directory = tmp_path / "checkpoint"
    checkpoint.save_checkpoint(directory, {"w": torch.arange(4.0), "step": 1}, step=1)
    before = _files(directory)
    big = {"w": torch.randn(1000), "step": 2}
    if code == errno.ENOSPC:  # the tensors file: K bytes written, then the disk is full
        monkeypatch.setattr(checkpoint, "save_file", disk_full_after(K))
    else:  # the state file (the tensors file of this write is already on disk)
        fail_creating(monkeypatch, code, when=lambda prefix: prefix.startswith(".state-"))
    with pytest.raises(OutputError, match=errno.errorcode[code]):
        checkpoint.save_checkpoint(directory, big, step=2)
    assert _files(directory) == before  # bit for bit, and this write's files removed
    assert checkpoint.load_checkpoint(directory)["step"] == 1


# --- gridseq train: one line, exit 2, the checkpoint kept, --resume ----------------------------------

@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("full") / "run"
    assert cli.main([*TRAIN, "--run-dir", str(run_dir)]) == 0
    return load_file(run_dir / "model.safetensors")


# disk full after K bytes of the tensors file; the others when the file is created (a folder removed under the run,
# permission or read-only changed, the process's file limit reached)
@pytest.mark.parametrize("fault", [errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EMFILE, errno.ENOENT],
                         ids=["ENOSPC-after-K-bytes", "EROFS", "EACCES", "EMFILE", "ENOENT"])
def test_train_fault_at_the_second_checkpoint_then_resume_ends_as_an_uninterrupted_run(tmp_path, monkeypatch, capsys, uninterrupted, fault):
    run_dir = tmp_path / "run"
    calls, kept = [], {}
    real_save = checkpoint.save_checkpoint

    def save_checkpoint(directory, state, *, step):
        calls.append(step)
        if len(calls) == 2:  # epoch 2's checkpoint: the OS fails it
            kept.update(_files(Path(directory)))
            with monkeypatch.context() as m:
                if fault == errno.ENOSPC:
                    m.setattr(checkpoint, "save_file", disk_full_after(K))
                else:
                    fail_creating(m, fault)
                return real_save(directory, state, step=step)
        return real_save(directory, state, step=step)

    monkeypatch.setattr(checkpoint, "save_checkpoint", save_checkpoint)
    code, _, err = run(capsys, *TRAIN, "--run-dir", run_dir)
    line = _one_line(err)
    assert code == 2
    assert f"cannot write {run_dir / 'checkpoint'}/" in line
    assert f"({errno.errorcode[fault]})" in line and FIXES[fault] in line
    assert "The last good checkpoint (after epoch 1, step 0)" in line and "--resume" in line
    assert _files(run_dir / "checkpoint") == kept and "manifest.json" in kept  # the previous checkpoint, bit for bit
    assert not (run_dir / "metrics.json").exists()

    monkeypatch.setattr(checkpoint, "save_checkpoint", real_save)
    code, _, err = run(capsys, *TRAIN, "--run-dir", run_dir, "--resume")
    assert code == 0, err
    resumed = load_file(run_dir / "model.safetensors")
    assert resumed.keys() == uninterrupted.keys()
    assert all(torch.equal(resumed[k], uninterrupted[k]) for k in resumed)
    assert len((run_dir / "history.jsonl").read_text().splitlines()) == 2


def test_train_into_a_folder_that_cannot_be_created_is_one_line_exit_2(tmp_path, capsys):
    code, _, err = run(capsys, *TRAIN, "--run-dir", "/proc/forbidden/run")
    assert code == 2
    assert "cannot create the folder /proc/forbidden/run: no such file or directory (ENOENT)" in _one_line(err)


@pytest.fixture
def tiny_tmpfs(tmp_path):
    """A real 300 KB file system (needs root and mount; skipped otherwise)."""
    mount = tmp_path / "small"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", str(mount)],
                                          capture_output=True, check=False).returncode != 0:
        pytest.skip("mounting a tmpfs needs root")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_train_onto_a_full_disk_is_one_line_exit_2_and_leaves_no_partial_file(tiny_tmpfs, capsys):
    code, _, err = run(capsys, *TRAIN, "--model", "cnn", "--run-dir", tiny_tmpfs / "run")
    assert code == 2
    assert "no space left on device (ENOSPC)" in _one_line(err)
    leftovers = [p.name for p in (tiny_tmpfs / "run").rglob("*") if p.name.startswith(".") or p.name.endswith(".tmp")]
    assert leftovers == []


# --- the other commands' outputs ------------------------------------------------------------------

INFO = DatasetInfo(name="digits", kind="image", input_shape=(1, 8, 8), num_classes=10, class_names=tuple("0123456789"),
                   preprocessing={"normalize": {"mean": [0.3], "std": [0.4]}})


def _saved(tmp_path, name):
    torch.manual_seed(0)
    return gridseq.save(models.create_for(name, INFO), tmp_path / name,
                        extra={"data": {"name": "digits", "seed": 0, "info": INFO.to_json()}})


@pytest.fixture(scope="module")
def seg_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("seg") / "run"
    assert cli.main(["train", "shapes-seg", "--model", "fcn", "--data.size=16", "--data.train_items=16",
                     "--model.channels=[4,8]", "--epochs", "1", "--threads", "1", "--run-dir", str(run_dir),
                     "--no-progress"]) == 0
    return run_dir


def _commands(tmp_path, seg_run):
    """The argv of each command that writes an output, as a function of that output's path OUT."""
    cnn, vae = _saved(tmp_path, "cnn"), _saved(tmp_path, "vae")
    return {
        "sample": lambda out: ["sample", vae, "--n", 4, "--out", out / "grid.png"],
        "inspect": lambda out: ["inspect", cnn, "--out", out],
        "predict": lambda out: ["predict", seg_run, "--split", "test", "--out", out],
        "compare": lambda out: ["compare", "digits", "--models", "mlp", "--seeds", 1, "--epochs", 1, "--no-timing",
                                "--no-plots", "--out", out],
        "export": lambda out: ["export", cnn, "--out", out / "model.onnx", "--no-check"],
    }


@pytest.mark.parametrize("command", ["sample", "inspect", "predict", "compare", "export"])
def test_every_output_into_a_folder_that_cannot_be_created_is_one_line_exit_2(tmp_path, capsys, seg_run, command):
    argv = _commands(tmp_path, seg_run)[command]
    code, _, err = run(capsys, *argv(Path("/proc/forbidden/out")))
    assert code == 2, err
    assert "/proc/forbidden" in _one_line(err) and "(ENOENT)" in err


@pytest.mark.parametrize("command, code", [("sample", errno.EROFS), ("sample", errno.ENOSPC), ("sample", errno.EMFILE),
                                           ("inspect", errno.ENOSPC), ("predict", errno.EACCES)],
                         ids=["sample-EROFS", "sample-ENOSPC", "sample-EMFILE", "inspect-ENOSPC", "predict-EACCES"])
def test_every_output_on_a_failing_disk_is_one_line_exit_2_and_keeps_what_was_there(tmp_path, capsys, monkeypatch, seg_run, command, code):
    argv = _commands(tmp_path, seg_run)[command]
    out = tmp_path / "out"
    assert run(capsys, *argv(out))[0] == 0  # a first, good write
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert before
    fail_creating(monkeypatch, code)
    exit_code, _, err = run(capsys, *argv(out))
    assert exit_code == 2
    assert f"({errno.errorcode[code]})" in _one_line(err) and str(out) in err
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
