"""Ctrl-C (SIGINT) during training acts as SIGTERM does: a checkpoint at the next step boundary,
`Interrupted` (a KeyboardInterrupt), exit code 130 from the CLI with one line, and a resume that ends
as the run left alone. A second Ctrl-C stops at once.

The in-process tests send the real signal from a callback at a chosen step (deterministic). The CLI
test runs `gridseq train` in its own process group and sends SIGINT to the whole group, as a
terminal's Ctrl-C does.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from test_resume import ARGS, assert_same_run, assert_tensors_equal
from train_helpers import build

from gridseq.errors import Interrupted
from gridseq.train import Callback, fit
from gridseq.train.checkpoint import load_checkpoint


class Sigint(Callback):
    """Send SIGINT to this process `times` times after global step `step`."""

    def __init__(self, step, times=1):
        self.step, self.times = step, times

    def on_batch_end(self, state):
        if state.global_step == self.step:
            for _ in range(self.times):
                os.kill(os.getpid(), signal.SIGINT)


# ARGS: 160 items, batch 16 → 10 steps per epoch; checkpoint_every=3
@pytest.mark.parametrize("step, position", [(5, (0, 5)), (17, (1, 7))])
def test_ctrl_c_checkpoints_at_the_next_step_and_resumes_bit_exact(tiny, data, tmp_path, step, position):
    model_a = build(tiny, data)
    fit(model_a, data, run_dir=tmp_path / "a", **ARGS)
    with pytest.raises(Interrupted, match=r"stopped by Ctrl-C \(SIGINT\) after epoch") as caught:
        fit(build(tiny, data), data, run_dir=tmp_path / "b", callbacks=[Sigint(step)], **ARGS)
    assert isinstance(caught.value, KeyboardInterrupt)  # code that handles Ctrl-C still sees one
    assert caught.value.position == position
    assert "--resume" in str(caught.value) and "\n" not in str(caught.value)
    ck = load_checkpoint(tmp_path / "b" / "checkpoint")
    assert (ck["position"]["epoch"], ck["position"]["step"]) == position and ck["position"]["global_step"] == step
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # fit put Python's handler back
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL

    model_b = build(tiny, data, seed=123)
    result = fit(model_b, data, run_dir=tmp_path / "b", resume=True, **ARGS)
    assert len(result.history) == ARGS["epochs"]
    assert_tensors_equal(model_a.state_dict(), model_b.state_dict())
    assert_same_run(tmp_path / "a", tmp_path / "b")


def test_a_second_ctrl_c_stops_at_once_and_the_previous_checkpoint_resumes(tiny, data, tmp_path):
    model_a = build(tiny, data)
    fit(model_a, data, run_dir=tmp_path / "a", **ARGS)
    with pytest.raises(KeyboardInterrupt) as caught:  # step 5: the last checkpoint is step 3's
        fit(build(tiny, data), data, run_dir=tmp_path / "b", callbacks=[Sigint(5, times=2)], **ARGS)
    assert not isinstance(caught.value, Interrupted)  # raised where the program was, not at a step boundary
    assert load_checkpoint(tmp_path / "b" / "checkpoint")["position"]["global_step"] == 3
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler

    model_b = build(tiny, data, seed=123)
    fit(model_b, data, run_dir=tmp_path / "b", resume=True, **ARGS)
    assert_tensors_equal(model_a.state_dict(), model_b.state_dict())


def test_ctrl_c_without_a_run_dir_stops_and_says_nothing_was_saved(tiny, data):
    with pytest.raises(Interrupted, match=r"nothing was saved \(no run_dir\)"):
        fit(build(tiny, data), data, callbacks=[Sigint(3)], **{**ARGS, "checkpoint_every": None})


def test_an_ignored_sigint_stays_ignored(tiny, data):
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # as a shell starts a background job
    try:
        result = fit(build(tiny, data), data, callbacks=[Sigint(3)], **{**ARGS, "checkpoint_every": None})
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
    assert len(result.history) == ARGS["epochs"]


def test_cli_ctrl_c_to_the_process_group_is_one_line_exit_130_and_resumes(tmp_path):
    run_dir = tmp_path / "run"
    argv = [sys.executable, "-m", "gridseq", "train", "digits", "--model", "mlp", "--epochs", "12", "--threads", "1",
            "--no-progress", "--run-dir", str(run_dir)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 120  # after epoch 1 is recorded: the run is in its loop, 11 epochs to go
        while not (run_dir / "history.jsonl").exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.005)
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole foreground group
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gridseq: error: stopped by Ctrl-C (SIGINT) after epoch "), err
    assert f"the checkpoint in {run_dir / 'checkpoint'} holds it" in lines[0] and "--resume" in lines[0]
    assert not (run_dir / "metrics.json").exists()
    stopped = load_checkpoint(run_dir / "checkpoint")["position"]["global_step"]
    assert stopped > 0
    done = subprocess.run([*argv, "--resume"], check=False, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert len((run_dir / "history.jsonl").read_text().splitlines()) == 12
    assert (run_dir / "metrics.json").exists()
