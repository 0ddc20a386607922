"""Distributed training under torchrun: real 2-process gloo runs on the CPU.

- gradient averaging is right: after K steps the DDP weights equal a single process's on the same
  global batch, and only rank 0 writes the run directory;
- a 2-process run whose rank 1 is killed resumes with torchrun and ends with exactly the weights of
  the same run left alone;
- SIGTERM sent to torchrun stops both ranks at one step boundary with a checkpoint, and the resume
  ends with exactly the weights of the same run left alone;
- `torchrun -m gridseq train` works unchanged and prints once;
- the single-process pieces (helpers, sampler sharding, precision) in-process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from train_helpers import TINY, make_data

import gridseq
from gridseq.data.samplers import BatchSampler
from gridseq.errors import ConfigError
from gridseq.models import registry
from gridseq.train import distributed, precision

HERE = Path(__file__).parent

# One torchrun worker: the tiny model and data of the trainer tests, fit() with the settings in argv[1].
WORKER = textwrap.dedent("""
    import json, os, signal, sys, time
    sys.path.insert(0, {here!r})
    import torch
    torch.set_num_threads(1)
    from safetensors.torch import save_file
    from train_helpers import TINY, TinyNet, make_data
    from gridseq.models import registry
    from gridseq.errors import Terminated
    from gridseq.train import Callback, distributed, fit

    cfg = json.loads(sys.argv[1])
    registry.register(TINY, TinyNet, description="test model", kinds=("series",))
    assert distributed.init_from_env("cpu")
    rank = distributed.rank()

    class Kill(Callback):
        def on_batch_end(self, state):
            if rank == cfg.get("kill_rank") and state.global_step == cfg.get("kill_step"):
                os.kill(os.getpid(), signal.SIGKILL)  # as a crash or the OOM killer would
            if cfg.get("ready_step") is not None and state.global_step >= cfg["ready_step"]:
                if rank == 0 and state.global_step == cfg["ready_step"]:  # the test now sends SIGTERM to torchrun
                    open(os.path.join(cfg["out"], "ready"), "w").close()
                time.sleep(0.05)  # slow steps: the signal lands mid-training

    data = make_data(n_train=cfg["n_train"])
    torch.manual_seed(0)
    model = registry.create(TINY, input_size=2, num_classes=3, dropout=cfg["dropout"])
    try:
        result = fit(model, data, epochs=cfg["epochs"], batch_size=cfg["batch_size"], lr=cfg["lr"], seed=0, device="cpu",
                     run_dir=cfg["run_dir"].format(rank=rank), resume=cfg["resume"], select="last",
                     checkpoint_every=cfg.get("checkpoint_every"), progress=False, callbacks=[Kill()])
    except Terminated as e:
        with open(os.path.join(cfg["out"], f"rank{{rank}}.terminated"), "w") as f:
            json.dump({{"position": e.position, "message": str(e)}}, f)
        distributed.shutdown()
        sys.exit(143)
    save_file(model.state_dict(), os.path.join(cfg["out"], f"rank{{rank}}.safetensors"))
    with open(os.path.join(cfg["out"], f"rank{{rank}}.json"), "w") as f:
        json.dump({{"test": result.test, "epochs": len(result.history), "world_size": distributed.world_size()}}, f)
    distributed.shutdown()
""")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", CI="true")
    return env


def torchrun(args: list[str], *, check: bool = True) -> subprocess.CompletedProcess:
    """`torchrun --standalone --nproc_per_node=2 ARGS` (the real launcher; a free port on this machine)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=_env())
    if check and proc.returncode != 0:
        raise AssertionError(f"torchrun failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr[-4000:]}")
    return proc


def run_workers(tmp_path: Path, name: str, *, check: bool = True, **cfg) -> tuple[Path, subprocess.CompletedProcess]:
    script = tmp_path / "worker.py"
    script.write_text(WORKER.format(here=str(HERE)))
    out = tmp_path / name
    out.mkdir()
    cfg = {"n_train": 64, "dropout": 0.0, "epochs": 2, "batch_size": 8, "lr": 1e-3, "resume": False, "out": str(out), **cfg}
    return out, torchrun([str(script), json.dumps(cfg)], check=check)


def _max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a)


def test_ddp_matches_one_process_on_the_global_batch_and_only_rank0_writes(tmp_path, tiny, data):
    # 2 ranks × batch 8 on 64 items: 4 steps per epoch, 2 epochs = K = 8 optimizer steps (AdamW)
    out, _ = run_workers(tmp_path, "ddp", run_dir=str(tmp_path / "run-rank{rank}"))
    ranks = [load_file(out / f"rank{r}.safetensors") for r in range(2)]
    assert _max_diff(ranks[0], ranks[1]) == 0.0  # DDP keeps the replicas identical

    torch.manual_seed(0)
    model = registry.create(TINY, input_size=2, num_classes=3, dropout=0.0)
    single = gridseq.fit(model, make_data(n_train=64), epochs=2, batch_size=16, seed=0, device="cpu", select="last", progress=False)
    assert _max_diff(ranks[0], model.state_dict()) <= 1e-6  # gradients are averaged over the global batch

    # the test metrics are reduced over ranks (each scored half the batches): equal to one process's
    reports = [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]
    assert reports[0] == reports[1] and reports[0]["world_size"] == 2
    assert reports[0]["test"] == pytest.approx(single.test, abs=1e-5)

    # rank 1 was given its own run_dir and wrote nothing there; rank 0 wrote the whole run
    assert not (tmp_path / "run-rank1").exists()
    run0 = tmp_path / "run-rank0"
    assert {p.name for p in run0.iterdir()} >= {"config.json", "model.safetensors", "metrics.json", "history.jsonl", "checkpoint"}
    assert len((run0 / "history.jsonl").read_text().splitlines()) == 2
    assert json.loads((run0 / "config.json").read_text())["train"]["batch_size"] == 8


@pytest.mark.slow  # three torchrun launches: ~25 s on an idle machine
def test_killed_rank_resumes_to_the_same_weights_as_an_uninterrupted_run(tmp_path, tiny):
    # dropout on, so each rank's random stream must be restored too; a checkpoint every 5 steps lands
    # mid-epoch (epoch 2, step 1); rank 1 dies after step 6
    common = {"dropout": 0.2, "checkpoint_every": 5, "epochs": 3, "lr": 1e-2}
    full, _ = run_workers(tmp_path, "full", run_dir=str(tmp_path / "run-full"), **common)

    run_dir = str(tmp_path / "run-killed")
    _, killed = run_workers(tmp_path, "killed", run_dir=run_dir, kill_rank=1, kill_step=6, check=False, **common)
    assert killed.returncode != 0
    assert not (Path(run_dir) / "metrics.json").exists()
    position = json.loads(next((Path(run_dir) / "checkpoint").glob("state-*.json")).read_text())["position"]
    assert position == {"epoch": 1, "step": 1, "global_step": 5}

    resumed, _ = run_workers(tmp_path, "resumed", run_dir=run_dir, resume=True, **common)
    a, b = load_file(full / "rank0.safetensors"), load_file(resumed / "rank0.safetensors")
    assert _max_diff(a, b) == 0.0  # bit for bit
    assert json.loads((resumed / "rank1.json").read_text())["test"] == json.loads((full / "rank1.json").read_text())["test"]
    history = [json.loads(line) for line in (Path(run_dir) / "history.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in history] == [1, 2, 3]
    assert json.loads((Path(run_dir) / "metrics.json").read_text())["test"]["accuracy"] > 0.5  # 3 classes: chance is 1/3


@pytest.mark.slow  # three torchrun launches: ~30 s on an idle machine
def test_sigterm_to_torchrun_stops_both_ranks_at_one_step_and_the_resume_ends_as_an_uninterrupted_run(tmp_path, tiny):
    common = {"dropout": 0.2, "epochs": 3, "lr": 1e-2}
    full, _ = run_workers(tmp_path, "full", run_dir=str(tmp_path / "run-full"), **common)

    run_dir = tmp_path / "run-term"
    script = tmp_path / "worker.py"
    out = tmp_path / "term"
    out.mkdir()
    cfg = {"n_train": 64, "batch_size": 8, "resume": False, "out": str(out), "run_dir": str(run_dir), "ready_step": 2, **common}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script), json.dumps(cfg)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    try:
        deadline = time.monotonic() + 120
        while not (out / "ready").exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert (out / "ready").exists(), proc.communicate()[1][-3000:]
        proc.send_signal(signal.SIGTERM)  # what a scheduler sends; torchrun passes it on to every rank
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0
    stops = [json.loads((out / f"rank{r}.terminated").read_text()) for r in range(2)]  # both ranks stopped cleanly
    assert stops[0]["position"] == stops[1]["position"] and stops[0]["position"] != [3, 0]  # at the same step, mid-run
    assert "stopped by SIGTERM" in stops[0]["message"] and "--resume" in stops[0]["message"]
    assert "SIGKILL" not in stderr  # torchrun's grace period was not needed
    ck = json.loads(next((run_dir / "checkpoint").glob("state-*.json")).read_text())["position"]
    assert [ck["epoch"], ck["step"]] == stops[0]["position"]
    assert not (run_dir / "metrics.json").exists()

    resumed, _ = run_workers(tmp_path, "resumed", run_dir=str(run_dir), resume=True, **common)
    a, b = load_file(full / "rank0.safetensors"), load_file(resumed / "rank0.safetensors")
    assert _max_diff(a, b) == 0.0  # bit for bit
    assert _max_diff(load_file(resumed / "rank1.safetensors"), b) == 0.0
    history = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in history] == [1, 2, 3]


@pytest.mark.slow  # three torchrun launches of the command
def test_torchrun_gridseq_train_works_unchanged_and_resumes(tmp_path):
    run_dir = tmp_path / "run"
    base = ["-m", "gridseq", "train", "digits", "--model", "mlp", "--threads", "1", "--run-dir", str(run_dir), "--no-progress"]
    proc = torchrun([*base, "--epochs", "1"])
    assert proc.stdout.count("run dir:") == 1 and proc.stdout.count("test metrics") == 1  # rank 0 alone prints
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["epochs"] == 1 and metrics["test"]["accuracy"] > 0.6
    assert json.loads((run_dir / "config.json").read_text())["train"]["precision"] == "fp32"
    # an existing run is refused on every rank with the same one-line error (exit 2 from each process)
    again = torchrun([*base, "--epochs", "1"], check=False)
    assert again.returncode != 0 and again.stderr.count("holds a finished run") == 2
    # --resume with more epochs continues from the checkpoint
    torchrun([*base, "--epochs", "2", "--resume"])
    assert len((run_dir / "history.jsonl").read_text().splitlines()) == 2


# -- single-process pieces ---------------------------------------------------------------------------


def test_helpers_are_identities_in_one_process(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert not distributed.init_from_env("cpu")
    assert (distributed.rank(), distributed.world_size(), distributed.is_main()) == (0, 1, True)
    assert distributed.all_gather({"a": 1}) == [{"a": 1}] and distributed.broadcast(5) == 5
    assert distributed.local_device(torch.device("cuda")) == torch.device("cuda")
    distributed.barrier()
    distributed.shutdown()  # nothing was started: nothing to do
    summed = distributed.sum_states([{"confusion": torch.eye(2, dtype=torch.int64), "count": torch.tensor(2)}, {},
                                     {"confusion": torch.ones(2, 2, dtype=torch.int64), "count": torch.tensor(4)}])
    assert summed["confusion"].tolist() == [[2, 1], [1, 2]] and int(summed["count"]) == 6


def test_half_a_torchrun_environment_is_a_config_error(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    for key in ("RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(ConfigError, match="RANK, MASTER_ADDR, MASTER_PORT is not; launch with `torchrun"):
        distributed.init_from_env("cpu")


def test_sharded_sampler_steps_are_the_single_process_global_batches():
    lengths = np.random.default_rng(0).integers(1, 200, 999)
    for bucket in (False, True):
        one = BatchSampler(999, 24, lengths=lengths, bucket=bucket, seed=3).batches(2)
        shards = [BatchSampler(999, 8, lengths=lengths, bucket=bucket, seed=3, rank=r, world_size=3).batches(2) for r in range(3)]
        assert len({len(s) for s in shards}) == 1
        assert len(one) == len(shards[0])
        for k, batch in enumerate(one):
            together = torch.cat([s[k] for s in shards])
            assert sorted(together.tolist()) == sorted(batch.tolist())  # step k of all ranks = global batch k
        if bucket:  # the ranks of one step hold similar lengths: nobody waits on a much longer batch
            spread = [max(int(lengths[s[k]].max()) for s in shards) - min(int(lengths[s[k]].max()) for s in shards)
                      for k in range(len(shards[0]))]
            assert np.median(spread) <= 10


def test_bf16_autocast_trains_on_cpu_and_fp16_needs_cuda(tiny, data):
    torch.manual_seed(0)
    model = registry.create(TINY, input_size=2, num_classes=3)
    result = gridseq.fit(model, data, epochs=3, batch_size=16, lr=3e-3, device="cpu", precision="bf16", progress=False)
    assert result.test["accuracy"] > 0.6
    assert all(p.dtype == torch.float32 for p in model.parameters())  # autocast: weights stay fp32
    with pytest.raises(ConfigError, match="precision 'fp16' needs a CUDA device"):
        gridseq.fit(model, data, epochs=1, device="cpu", precision="fp16", progress=False)
    with pytest.raises(ConfigError, match="precision must be one of 'fp32', 'bf16', 'fp16', got 'fp8'"):
        gridseq.fit(model, data, epochs=1, device="cpu", precision="fp8", progress=False)
    assert precision.scaler("bf16", torch.device("cpu")) is None  # bf16 has fp32's range: no loss scaling


def test_cli_precision_flag_reaches_fit(tmp_path, capsys):
    from gridseq import cli

    code = cli.main(["train", "digits", "--model", "mlp", "--epochs", "1", "--device", "cpu", "--precision", "fp16",
                     "--run-dir", str(tmp_path / "run")])
    assert code == 2 and "precision 'fp16' needs a CUDA device" in capsys.readouterr().err
    assert cli.main(["train", "digits", "--model", "mlp", "--precision", "fp8"]) == 2
    assert "argument --precision: invalid choice: 'fp8'" in capsys.readouterr().err


def test_fp16_grad_scaler_branch_trains_and_resumes_exactly(tiny, data, tmp_path, monkeypatch):
    """The CUDA-only fp16 branch (autocast + GradScaler: scale, unscale, clip, step, update; the scaler
    in the checkpoint), run on the CPU where PyTorch supports it, by lifting the CUDA check."""
    from gridseq.train import Callback

    monkeypatch.setattr(precision, "check", lambda p, device: p)

    class Crash(Callback):
        def on_batch_end(self, state):
            if state.global_step == 13:
                raise KeyboardInterrupt

    def run(run_dir, **kw):
        torch.manual_seed(0)
        model = registry.create(TINY, input_size=2, num_classes=3)
        kw = dict(epochs=3, batch_size=16, lr=3e-3, grad_clip=1.0, device="cpu", precision="fp16", progress=False,
                  run_dir=run_dir, checkpoint_every=4, **kw)
        return model, gridseq.fit(model, data, **kw)

    full, result = run(tmp_path / "full")
    assert result.test["accuracy"] > 0.6
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "crashed", callbacks=[Crash()])
    state = json.loads(next((tmp_path / "crashed" / "checkpoint").glob("state-*.json")).read_text())
    assert state["scaler"]["scale"] > 0 and state["position"]["global_step"] == 12
    resumed, _ = run(tmp_path / "crashed", resume=True)
    assert _max_diff(full.state_dict(), resumed.state_dict()) == 0.0


@pytest.mark.parametrize(("device", "backend", "gpu"), [("cuda", "nccl", 1), ("auto", "gloo", None), ("cpu", "gloo", None)])
def test_init_from_env_picks_the_backend_and_binds_the_local_gpu(monkeypatch, device, backend, gpu):
    """The CUDA branch of init_from_env without a GPU: what it would call, recorded."""
    calls = {}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # so "auto" means the CPU here
    monkeypatch.setattr(torch.cuda, "set_device", lambda i: calls.setdefault("gpu", i))
    monkeypatch.setattr(torch.distributed, "init_process_group", lambda b, **kw: calls.setdefault("backend", b))
    monkeypatch.setattr(torch.distributed, "get_backend", lambda: calls["backend"])
    monkeypatch.setattr(distributed, "_started_here", False)
    for key, value in {"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}.items():
        monkeypatch.setenv(key, value)
    assert distributed.init_from_env(device)
    assert calls.get("backend") == backend and calls.get("gpu") == gpu
