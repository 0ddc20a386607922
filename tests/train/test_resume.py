"""Resume: a run interrupted at any step and resumed ends with exactly the same weights (bit for bit,
on CPU) as the same run left alone — including a real SIGKILL of a training process."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from train_helpers import build

from gridseq.train import Callback, fit, read_history
from gridseq.train.checkpoint import load_checkpoint

HERE = Path(__file__).parent
ARGS = dict(epochs=4, batch_size=16, lr=1e-2, scheduler="onecycle", seed=0, checkpoint_every=3, progress=False)
TIMING = ("seconds", "samples_per_second")


def assert_tensors_equal(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def assert_same_run(dir_a: Path, dir_b: Path) -> None:
    """Same final (best) weights, same last-step state (weights, optimizer), same history."""
    assert_tensors_equal(load_file(dir_a / "model.safetensors"), load_file(dir_b / "model.safetensors"))
    ck_a, ck_b = load_checkpoint(dir_a / "checkpoint"), load_checkpoint(dir_b / "checkpoint")
    assert ck_a["position"] == ck_b["position"]
    assert_tensors_equal(ck_a["model"], ck_b["model"])
    for i in ck_a["optimizer"]["state"]:
        assert_tensors_equal(ck_a["optimizer"]["state"][i], ck_b["optimizer"]["state"][i])
    assert ck_a["scheduler"] == ck_b["scheduler"]
    strip = lambda h: [{k: v for k, v in r.items() if k not in TIMING} for r in h]  # noqa: E731
    assert strip(read_history(dir_a)) == strip(read_history(dir_b))


class Crash(Callback):
    """Raise after global step `step`, or after epoch `epoch` is recorded but before its checkpoint,
    like a process dying between two checkpoints."""

    def __init__(self, step=None, epoch=None):
        self.step, self.epoch = step, epoch

    def on_batch_end(self, state):
        if state.global_step == self.step:
            raise KeyboardInterrupt

    def on_epoch_end(self, state):
        if state.record["epoch"] == self.epoch:
            raise KeyboardInterrupt


# mid-epoch, at an epoch's last step, in a later epoch, between history.jsonl and the checkpoint
@pytest.mark.parametrize("crash", [dict(step=5), dict(step=10), dict(step=17), dict(epoch=2)])
def test_resume_in_process_is_bit_exact(tiny, data, tmp_path, crash):
    model_a = build(tiny, data)
    fit(model_a, data, run_dir=tmp_path / "a", **ARGS)
    with pytest.raises(KeyboardInterrupt):
        fit(build(tiny, data), data, run_dir=tmp_path / "b", callbacks=[Crash(**crash)], **ARGS)
    assert not (tmp_path / "b" / "metrics.json").exists()
    model_b = build(tiny, data, seed=123)  # different initial weights: the checkpoint must win
    result = fit(model_b, data, run_dir=tmp_path / "b", resume=True, **ARGS)
    assert len(result.history) == 4
    assert_tensors_equal(model_a.state_dict(), model_b.state_dict())
    assert_same_run(tmp_path / "a", tmp_path / "b")


def test_resume_finished_run_changes_nothing(tiny, data, tmp_path):
    first = fit(build(tiny, data), data, run_dir=tmp_path, **ARGS)
    again = fit(build(tiny, data, seed=9), data, run_dir=tmp_path, resume=True, **ARGS)
    assert again.history == first.history and again.test == first.test and again.best_epoch == first.best_epoch


SCRIPT = textwrap.dedent("""
    import sys, time
    import torch
    sys.path.insert(0, {here!r})
    from train_helpers import TINY, TinyNet, build, make_data
    from gridseq.models import registry
    from gridseq.train import Callback, fit

    run_dir, resume, delay = sys.argv[1], sys.argv[2] == "1", float(sys.argv[3])

    class Slow(Callback):  # slows the run down so the test can kill it mid-training
        def on_batch_end(self, state):
            time.sleep(delay)

    registry.register(TINY, TinyNet, description="test", kinds=("series",))
    data = make_data()
    fit(build(TINY, data), data, run_dir=run_dir, resume=resume, callbacks=[Slow()], **{args!r})
""")


def run(script: Path, run_dir: Path, *, resume: bool, delay: float = 0.0, wait: bool = True):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    cmd = [sys.executable, str(script), str(run_dir), "1" if resume else "0", str(delay)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if wait:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
    return proc


def checkpoint_step(run_dir: Path) -> int:
    try:
        return json.loads((run_dir / "checkpoint" / "manifest.json").read_text())["step"]
    except (FileNotFoundError, json.JSONDecodeError):
        return -1


def test_sigkill_and_resume_is_bit_exact(tmp_path):
    script = tmp_path / "train_script.py"
    script.write_text(SCRIPT.format(here=str(HERE), args=ARGS))
    left_alone, killed = tmp_path / "left_alone", tmp_path / "killed"
    reference = run(script, left_alone, resume=False, wait=False)

    proc = run(script, killed, resume=False, delay=0.03, wait=False)
    deadline = time.monotonic() + 60
    while checkpoint_step(killed) < 12:  # step 12 of 40: mid epoch 2, after a step checkpoint
        assert proc.poll() is None and time.monotonic() < deadline, "the run ended before it could be killed"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert not (killed / "metrics.json").exists()  # it really died mid-training
    assert 12 <= checkpoint_step(killed) < 40

    run(script, killed, resume=True)
    _, err = reference.communicate(timeout=120)
    assert reference.returncode == 0, err.decode()
    assert_same_run(left_alone, killed)
    metrics = [json.loads((d / "metrics.json").read_text()) for d in (left_alone, killed)]
    assert metrics[0]["val"] == metrics[1]["val"] and metrics[0]["test"] == metrics[1]["test"]
