"""Training on a streamed, augmented folder survives SIGKILL bit for bit, and two torchrun ranks that each
decode only their own slice end with the weights of one process."""

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
from data_helpers import photo_folder
from safetensors.torch import load_file

HERE = Path(__file__).parent

# fit() on a streamed folder with augmentation and 2 decoder workers; argv: folder run_dir resume delay
SCRIPT = textwrap.dedent("""
    import sys, time
    import torch
    torch.set_num_threads(1)
    import gridseq
    import gridseq.datasets as gd
    from gridseq.train import Callback

    folder, run_dir, resume, delay = sys.argv[1], sys.argv[2], sys.argv[3] == "1", float(sys.argv[4])

    class Slow(Callback):  # slows the run down so the test can kill it mid-epoch
        def on_batch_end(self, state):
            time.sleep(delay)

    data = gd.load(folder, image_size=(16, 16), stream=True, workers=2)
    torch.manual_seed(0)
    model = gridseq.models.create_for("cnn", data.info, channels=(8, 16), hidden=16)
    gridseq.fit(model, data, epochs=2, batch_size=4, lr=3e-3, seed=0, device="cpu", augment=True, run_dir=run_dir,
                resume=resume, checkpoint_every=3, progress=False, callbacks=[Slow()])
""")


def _run(script, folder, run_dir, *, resume, delay=0.0, wait=True):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, str(script), str(folder), str(run_dir), "1" if resume else "0", str(delay)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if wait:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()
    return proc


def _checkpoint_step(run_dir: Path) -> int:
    try:
        return json.loads((run_dir / "checkpoint" / "manifest.json").read_text())["step"]
    except (FileNotFoundError, json.JSONDecodeError):
        return -1


def test_sigkill_mid_epoch_with_augmentation_and_workers_then_resume_is_bit_exact(tmp_path):
    folder = photo_folder(tmp_path / "photos", n_per_class=30)
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    left_alone, killed = tmp_path / "left_alone", tmp_path / "killed"
    reference = _run(script, folder, left_alone, resume=False, wait=False)
    proc = _run(script, folder, killed, resume=False, delay=0.05, wait=False)
    steps = 11  # 43 training images in batches of 4 per epoch
    deadline = time.monotonic() + 120
    while _checkpoint_step(killed) < steps + 3:  # a step checkpoint in the middle of epoch 2
        assert proc.poll() is None and time.monotonic() < deadline, "the run ended before it could be killed"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL and not (killed / "metrics.json").exists()
    _run(script, folder, killed, resume=True)
    _, err = reference.communicate(timeout=300)
    assert reference.returncode == 0, err.decode()
    a, b = load_file(left_alone / "model.safetensors"), load_file(killed / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert json.loads((killed / "config.json").read_text())["train"]["augment"] is True


WORKER = textwrap.dedent("""
    import json, sys
    import torch
    torch.set_num_threads(1)
    from safetensors.torch import save_file
    import gridseq
    import gridseq.datasets as gd
    from gridseq.train import distributed

    folder, out = sys.argv[1], sys.argv[2]
    distributed.init_from_env("cpu")
    data = gd.load(folder, image_size=(16, 16), stream=True, workers=1)
    torch.manual_seed(0)
    # no BatchNorm and no dropout: each rank's batch statistics and dropout masks would differ from one process's
    model = gridseq.models.create_for("cnn", data.info, channels=(8, 16), hidden=16, batch_norm=False, dropout=0.0)
    batch = 16 // distributed.world_size()
    result = gridseq.fit(model, data, epochs=2, batch_size=batch, seed=0, device="cpu", select="last", progress=False,
                         augment=True)
    if distributed.rank() == 0:
        save_file(model.state_dict(), f"{out}/w{distributed.world_size()}.safetensors")
    distributed.shutdown()
""")


def _split_folder(root: Path) -> Path:
    """train/ (32 per class: 64 items, whole global batches of 16), val/ and test/ (8 per class)."""
    for split, n in (("train", 32), ("val", 8), ("test", 8)):
        photo_folder(root / split, n_per_class=n, seed=len(split))
    return root


@pytest.mark.slow  # a torchrun launch and a single-process run: ~30 s
def test_two_torchrun_ranks_on_a_streamed_folder_match_one_process(tmp_path):
    folder = _split_folder(tmp_path / "photos")
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    for launch in ([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"], [sys.executable]):
        proc = subprocess.run([*launch, str(script), str(folder), str(tmp_path)], capture_output=True, text=True,
                              timeout=300, env=env)
        assert proc.returncode == 0, proc.stderr[-4000:]
    two, one = load_file(tmp_path / "w2.safetensors"), load_file(tmp_path / "w1.safetensors")
    assert max(float((two[k] - one[k]).abs().max()) for k in one) <= 1e-6
