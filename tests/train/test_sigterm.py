"""SIGTERM during training: a checkpoint at the next step boundary, `Terminated`, exit code 143 from the
CLI with one line, and a resume that ends exactly as the run left alone.

A callback sends the real signal to this process at a chosen step (deterministic); the CLI test
sends it from another thread once training is under way. The torchrun case (2 ranks, SIGTERM sent
to the launcher) is in test_distributed.py.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
from test_resume import ARGS, assert_same_run, assert_tensors_equal
from train_helpers import build

from gridseq import cli
from gridseq.errors import Terminated
from gridseq.train import Callback, fit
from gridseq.train.checkpoint import load_checkpoint


class Sigterm(Callback):
    """Send SIGTERM to this process after global step `step` (the handler only flags it)."""

    def __init__(self, step):
        self.step = step

    def on_batch_end(self, state):
        if state.global_step == self.step:
            os.kill(os.getpid(), signal.SIGTERM)


# ARGS: 160 items, batch 16 → 10 steps per epoch. Mid-epoch (step 5 of epoch 1), at an epoch's last
# step (the epoch ends, validates and checkpoints first) and in a later epoch.
@pytest.mark.parametrize("step, position", [(5, (0, 5)), (10, (1, 0)), (17, (1, 7))])
def test_sigterm_checkpoints_at_the_next_step_and_resumes_bit_exact(tiny, data, tmp_path, step, position):
    model_a = build(tiny, data)
    fit(model_a, data, run_dir=tmp_path / "a", **ARGS)
    with pytest.raises(Terminated, match="stopped by SIGTERM after epoch") as caught:
        fit(build(tiny, data), data, run_dir=tmp_path / "b", callbacks=[Sigterm(step)], **ARGS)
    assert caught.value.position == position
    assert "--resume" in str(caught.value) and "\n" not in str(caught.value)
    ck = load_checkpoint(tmp_path / "b" / "checkpoint")
    assert (ck["position"]["epoch"], ck["position"]["step"]) == position and ck["position"]["global_step"] == step
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # fit put the default back
    assert not (tmp_path / "b" / "metrics.json").exists()

    model_b = build(tiny, data, seed=123)
    result = fit(model_b, data, run_dir=tmp_path / "b", resume=True, **ARGS)
    assert len(result.history) == ARGS["epochs"]
    assert_tensors_equal(model_a.state_dict(), model_b.state_dict())
    assert_same_run(tmp_path / "a", tmp_path / "b")


def test_sigterm_without_a_run_dir_stops_and_says_nothing_was_saved(tiny, data):
    with pytest.raises(Terminated, match=r"nothing was saved \(no run_dir\)"):
        fit(build(tiny, data), data, callbacks=[Sigterm(3)], **{**ARGS, "checkpoint_every": None})


def test_a_program_s_own_sigterm_handler_is_left_alone(tiny, data):
    seen = []
    previous = signal.signal(signal.SIGTERM, lambda *a: seen.append(a[0]))
    try:
        result = fit(build(tiny, data), data, callbacks=[Sigterm(3)], **{**ARGS, "checkpoint_every": None})
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert seen == [signal.SIGTERM] and len(result.history) == ARGS["epochs"]  # fit did not take it over


def test_cli_sigterm_is_one_line_exit_143_and_resumes(tmp_path, capsys):
    run_dir = tmp_path / "run"
    argv = ["train", "digits", "--model", "mlp", "--epochs", "12", "--threads", "1", "--no-progress", "--run-dir", str(run_dir)]

    def send_once_training():  # after epoch 1 is recorded: the run is in its loop, 11 epochs to go
        deadline = time.monotonic() + 120
        while not (run_dir / "history.jsonl").exists() and time.monotonic() < deadline:
            time.sleep(0.005)
        os.kill(os.getpid(), signal.SIGTERM)

    sender = threading.Thread(target=send_once_training, daemon=True)
    sender.start()
    code = cli.main(argv)
    sender.join()
    _, err = capsys.readouterr()
    assert code == 143
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gridseq: error: stopped by SIGTERM after epoch "), err
    assert f"the checkpoint in {run_dir / 'checkpoint'} holds it" in lines[0]
    assert not (run_dir / "metrics.json").exists()
    stopped = load_checkpoint(run_dir / "checkpoint")["position"]["global_step"]

    assert stopped > 0
    assert cli.main([*argv, "--resume"]) == 0
    assert len((run_dir / "history.jsonl").read_text().splitlines()) == 12
