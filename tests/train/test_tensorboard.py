"""TensorBoard event files: written when the optional `tensorboard` package is installed, holding every
per-epoch number of history.jsonl."""

import pytest
from train_helpers import build

from gridseq.train import fit, read_history

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")


def test_event_files_hold_the_history(tiny, data, tmp_path):
    run = tmp_path / "run"
    fit(build(tiny, data), data, epochs=3, batch_size=16, lr=1e-2, progress=False, run_dir=run)
    events = event_accumulator.EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    history = read_history(run)
    losses = events.Scalars("train/loss")
    assert [e.step for e in losses] == [1, 2, 3]
    assert [e.value for e in losses] == pytest.approx([r["train_loss"] for r in history])
    assert {"train/accuracy", "val/accuracy", "val/loss", "lr"} <= set(events.Tags()["scalars"])
