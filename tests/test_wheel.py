"""The built wheel, not the editable install, works: `python -m build` without warnings, the wheel in a
new venv, then `gridseq train` + `gridseq predict` from it.

The new venv has no system site packages and its own copy of gridseq (from the wheel). Its third-party
packages (torch, numpy, safetensors, rich) come from the running environment through one path line in
a .pth file: installing torch afresh takes minutes, and the wheel's own contents are what is tested.
That directory's .pth files are not processed, so the editable gridseq there stays invisible — the
test checks that `gridseq` is imported from the new venv.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONDONTWRITEBYTECODE")}
    return {**env, "OMP_NUM_THREADS": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


@pytest.mark.slow  # ~25 s: build, venv, install, a tiny train and predict
def test_the_built_wheel_installs_into_a_fresh_venv_and_trains_and_predicts(tmp_path):
    pytest.importorskip("build")
    src = tmp_path / "src-copy"  # build from a copy: nothing is written into the checkout
    shutil.copytree(ROOT / "src", src / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, src / name)
    built = subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path / "dist"), str(src)],
                           capture_output=True, text=True, env=_env(), timeout=300)
    assert built.returncode == 0, built.stderr[-3000:]
    log = built.stdout + built.stderr
    warnings = [line for line in log.splitlines() if "warning" in line.lower() or "deprecat" in line.lower()]
    assert warnings == [], warnings  # e.g. setuptools' "project.license as a TOML table is deprecated"
    wheel = next((tmp_path / "dist").glob("gridseq-*.whl"))

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False, system_site_packages=False)  # this pip installs into it (--python)
    python = env_dir / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", str(wheel)],
                   check=True, env=_env(), timeout=300)
    site = Path(subprocess.check_output([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True).strip())
    (site / "_gridseq_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")  # after the venv's own
    where = subprocess.check_output([str(python), "-c", "import gridseq; print(gridseq.__file__)"], text=True, env=_env())
    assert Path(where.strip()).is_relative_to(env_dir), where  # the wheel's copy, not the checkout's

    rng = np.random.default_rng(0)  # a tiny sequence dataset in a file: no optional dependency needed
    y = rng.integers(0, 2, 96)
    x = (rng.standard_normal((96, 8, 2)) + y[:, None, None]).astype(np.float32)
    np.savez(tmp_path / "toy.npz", x=x, y=y)
    gridseq = env_dir / "bin" / "gridseq"  # the console script the wheel declares
    run_dir = tmp_path / "run"
    trained = subprocess.run([str(gridseq), "train", str(tmp_path / "toy.npz"), "--model", "gru", "--epochs", "2",
                              "--run-dir", str(run_dir), "--no-progress", "--threads", "1"],
                             capture_output=True, text=True, env=_env(), timeout=300, cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert {"config.json", "model.safetensors", "metrics.json"} <= {p.name for p in run_dir.iterdir()}
    predicted = subprocess.run([str(python), "-m", "gridseq", "predict", str(run_dir), "--split", "test", "--json"],
                               capture_output=True, text=True, env=_env(), timeout=300, cwd=tmp_path)
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    assert '"input"' in predicted.stdout and predicted.stderr == ""
    assert subprocess.run([str(gridseq), "--version"], capture_output=True, text=True, env=_env()).stdout.startswith("gridseq 0.")
