"""Your own torch Dataset through from_torch: fit, a run directory, and `gridseq evaluate` / `predict` on it."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from PIL import Image

import gridseq
from gridseq.data.readers.from_torch import from_torch
from gridseq.errors import DataError

# a user-written Dataset class, in a module of its own (as a user's project would have it)
USER_MODULE = textwrap.dedent('''
    import torch

    class Bars(torch.utils.data.Dataset):
        """Images (1, 12, 12) in [0, 1]: a bright horizontal (class 0) or vertical (class 1) bar."""

        def __init__(self, n, seed):
            g = torch.Generator().manual_seed(seed)
            self.items = []
            for i in range(n):
                x = torch.rand(1, 12, 12, generator=g) * 0.3
                k = int(torch.randint(2, 10, (1,), generator=g))
                if i % 2:
                    x[0, :, k] = 1.0
                else:
                    x[0, k, :] = 1.0
                self.items.append((x, i % 2))

        def __len__(self):
            return len(self.items)

        def __getitem__(self, i):
            return self.items[i]

    def make():
        import gridseq.datasets as gd
        return gd.from_torch(Bars(240, 0), test=Bars(60, 1), class_names=("horizontal", "vertical"),
                             name="user_bars:make", workers=0)
''')


def _env(path):
    return {**os.environ, "PYTHONPATH": f"{path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "OMP_NUM_THREADS": "1"}


def test_a_user_dataset_trains_writes_a_run_and_the_cli_evaluates_and_predicts_on_it(tmp_path, monkeypatch):
    (tmp_path / "user_bars.py").write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    import user_bars

    data = user_bars.make()
    assert data.info.kind == "image" and data.info.input_shape == (1, 12, 12)
    assert (len(data.train), len(data.val), len(data.test)) == (216, 24, 60)  # val: 10% of train, seeded
    torch.manual_seed(0)
    model = gridseq.models.create_for("cnn", data.info, channels=(8, 16), hidden=16)
    run = tmp_path / "run"
    result = gridseq.fit(model, data, epochs=6, batch_size=16, lr=3e-3, device="cpu", progress=False, run_dir=run)
    assert result.test["accuracy"] >= 0.9

    out = subprocess.run([sys.executable, "-m", "gridseq", "evaluate", str(run), "--json"], capture_output=True,
                         text=True, env=_env(tmp_path), timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["accuracy"] == pytest.approx(result.test["accuracy"])

    image = tmp_path / "vertical.png"
    a = np.zeros((12, 12), dtype=np.uint8)
    a[:, 5] = 255
    Image.fromarray(a).save(image)
    out = subprocess.run([sys.executable, "-m", "gridseq", "predict", str(run), str(image), "--json"],
                         capture_output=True, text=True, env=_env(tmp_path), timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)[0]["label"] == "vertical"


class Walks(torch.utils.data.Dataset):
    """Sequences (T_i, 2) of their own lengths, as (x, y, length) with x padded to 9 steps."""

    def __init__(self, n=50):
        g = torch.Generator().manual_seed(0)
        self.items = []
        for i in range(n):
            t = 3 + i % 7
            x = torch.full((9, 2), float("nan"))  # padding past the length: anything, NaN included
            x[:t] = torch.randn(t, 2, generator=g) + (i % 2)
            self.items.append((x, i % 2, t))

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def test_variable_length_items_carry_their_lengths_and_zero_padding():
    data = from_torch(Walks(), workers=0)
    assert data.info.kind == "sequence" and data.info.variable_length and data.info.input_shape == (9, 2)
    index = torch.arange(len(data.train))
    batch = data.train.batch(index)
    assert torch.equal(batch.lengths, data.train.lengths) and batch.x.shape[1] == int(batch.lengths.max())
    assert torch.isfinite(batch.x).all()  # NaN padding is zeroed
    for row, t in zip(batch.x, batch.lengths):
        assert (row[t:] == 0).all()


def test_torchvision_style_targets_and_classes_are_used_without_a_pass():
    class Counted(torch.utils.data.Dataset):
        targets = [i % 3 for i in range(30)]
        classes = ["a", "b", "c"]
        reads = 0

        def __len__(self):
            return 30

        def __getitem__(self, i):
            Counted.reads += 1
            return torch.zeros(1, 4, 4), self.targets[i]

    data = from_torch(Counted(), workers=0)
    assert data.info.class_names == ("a", "b", "c") and Counted.reads == 1  # the first item, for its shape


@pytest.mark.parametrize("items, match", [
    ([torch.zeros(3)], "items must be .x, y. or .x, y, length. tuples"),
    ([(torch.zeros(5), 0)], "must be an image .C, H, W., a sequence"),
    ([], "is empty"),
])
def test_bad_user_items_are_data_errors(items, match):
    with pytest.raises(DataError, match=match):
        from_torch(items)
