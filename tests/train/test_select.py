"""fit(select=...): which epoch's weights the model ends with ("last" exists for tiny validation splits,
like the UCR archive's, where accuracy ties at 100% within a few epochs)."""

import pytest
import torch
from train_helpers import build

from gridseq.errors import ConfigError
from gridseq.train import fit

FAST = dict(batch_size=16, lr=1e-2, progress=False)


def test_last_keeps_the_final_weights(tiny, data):
    best_model, last_model = build(tiny, data), build(tiny, data)
    best = fit(best_model, data, epochs=4, **FAST)
    last = fit(last_model, data, epochs=4, select="last", **FAST)
    metrics = lambda h: [{k: v for k, v in r.items() if k not in ("seconds", "samples_per_second")} for r in h]  # noqa: E731
    assert metrics(last.history) == metrics(best.history)  # the same training; only the choice differs
    assert last.best_epoch == 4 and last.val["accuracy"] == last.history[-1]["val_accuracy"]
    assert best.best_epoch == max(range(1, 5), key=lambda e: (best.history[e - 1]["val_accuracy"], -e))
    if best.best_epoch != 4:
        assert any(not torch.equal(a, b) for a, b in zip(best_model.state_dict().values(), last_model.state_dict().values()))


def test_select_is_checked(tiny, data):
    with pytest.raises(ConfigError, match="select"):
        fit(build(tiny, data), data, epochs=1, select="first", **FAST)
