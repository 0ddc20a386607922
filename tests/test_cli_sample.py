"""`gridseq sample RUN_DIR`: a PNG grid of generated images, the class option, and one-line errors."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

import gridseq
from gridseq import cli, models
from gridseq.cli.sample import sample_images
from gridseq.data.contract import DatasetInfo

pytestmark = pytest.mark.usefixtures("one_thread")

INFO = DatasetInfo(name="digits", kind="image", input_shape=(1, 8, 8), num_classes=10, class_names=tuple("0123456789"),
                   preprocessing={"normalize": {"mean": [0.3], "std": [0.4]}})


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _run_dir(tmp_path, name, info=INFO, **overrides):
    torch.manual_seed(0)
    model = models.create_for(name, info, **overrides)
    return gridseq.save(model, tmp_path / name, extra={"data": {"name": info.name, "info": info.to_json()}})


@pytest.mark.parametrize("name", ["vae", "dcgan"])
def test_sample_writes_a_grid_with_one_column_per_class(capsys, tmp_path, name):
    run_dir = _run_dir(tmp_path, name)
    code, out, _ = run(capsys, "sample", run_dir, "--n", 20, "--scale", 2, "--out", tmp_path / "grid.png")
    assert code == 0 and "wrote 20 samples" in out
    picture = Image.open(tmp_path / "grid.png")
    assert picture.size == ((10 * 9 + 1) * 2, (2 * 9 + 1) * 2)  # 10 columns x 2 rows of 8x8 with 1-pixel gaps


def test_class_option_and_seed(capsys, tmp_path):
    run_dir = _run_dir(tmp_path, "vae")
    code, out, _ = run(capsys, "sample", run_dir, "--n", 4, "--class", 3, "--out", tmp_path / "g.png", "--json")
    assert code == 0 and json.loads(out)["classes"] == [3, 3, 3, 3]
    a, _ = sample_images(run_dir, 4, "3", seed=5)
    b, _ = sample_images(run_dir, 4, 3, seed=5)
    c, _ = sample_images(run_dir, 4, 3, seed=6)
    assert a.shape == (4, 8, 8, 1) and np.array_equal(a, b) and not np.array_equal(a, c)
    raw = gridseq.load(run_dir).sample(4, torch.full((4,), 3), generator=torch.Generator().manual_seed(5))
    np.testing.assert_allclose(a[..., 0], (raw[:, 0] * 0.4 + 0.3).numpy(), rtol=1e-5, atol=1e-6)  # un-normalised


def test_temperature_option_scales_the_latent_draw_of_a_vae_only(capsys, tmp_path):
    run_dir = _run_dir(tmp_path, "vae")
    cold, _ = sample_images(run_dir, 4, 3, seed=5, temperature=0.25)
    raw = gridseq.load(run_dir).sample(4, torch.full((4,), 3), generator=torch.Generator().manual_seed(5), temperature=0.25)
    np.testing.assert_allclose(cold[..., 0], (raw[:, 0] * 0.4 + 0.3).numpy(), rtol=1e-5, atol=1e-6)
    assert not np.allclose(cold, sample_images(run_dir, 4, 3, seed=5)[0])
    code, _, err = run(capsys, "sample", _run_dir(tmp_path, "dcgan"), "--temperature", 0.5, "--out", tmp_path / "t.png")
    assert code == 2 and "no sampling temperature" in err and len(err.strip().splitlines()) == 1
    code, _, err = run(capsys, "sample", run_dir, "--temperature", 0, "--out", tmp_path / "t.png")
    assert code == 2 and "expected a positive number" in err
    assert not (tmp_path / "t.png").exists()


def test_errors_are_one_line(capsys, tmp_path):
    run_dir = _run_dir(tmp_path, "vae")
    code, _, err = run(capsys, "sample", run_dir, "--class", 12, "--out", tmp_path / "x.png")
    assert code == 2 and "--class must be a class index 0..9" in err and len(err.strip().splitlines()) == 1
    uncond = _run_dir(tmp_path / "u", "vae", num_classes=0)
    code, _, err = run(capsys, "sample", uncond, "--class", 1, "--out", tmp_path / "x.png")
    assert code == 2 and "unconditional" in err
    classifier = _run_dir(tmp_path, "cnn")
    code, _, err = run(capsys, "sample", classifier, "--out", tmp_path / "x.png")
    assert code == 2 and "not an image generator" in err
    assert not (tmp_path / "x.png").exists()


def test_predict_on_a_generator_points_to_sample(capsys, tmp_path):
    run_dir = _run_dir(tmp_path, "vae")
    image = tmp_path / "in.png"
    Image.fromarray(np.zeros((8, 8), dtype=np.uint8)).save(image)
    code, _, err = run(capsys, "predict", run_dir, image)
    assert code == 2 and "gridseq sample" in err and len(err.strip().splitlines()) == 1
