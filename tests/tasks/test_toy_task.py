"""A new task kind is its own file plus one registration: a toy task, written to a temporary module and
registered at run time, is trained, evaluated, predicted (library and `gridseq predict`) and served
(`POST /models/<name>/predict`, with its own option in the OpenAPI request schema) with no other file
of gridseq touched. The toy: "sign" — is the sum of a sequence positive — with a `margin` option."""

import importlib.util
import json
import sys
import textwrap

import pytest
import torch

import gridseq
from gridseq import models, tasks
from gridseq.data.contract import Dataset, DatasetInfo, Split

TOY = textwrap.dedent('''
    import torch
    import torch.nn.functional as F

    from gridseq.tasks.base import SumMetrics, Task, register


    class SignMetrics(SumMetrics):
        def update(self, output, batch, loss):
            self.add(loss_sum=loss * len(batch), n=len(batch), correct=(output.argmax(1) == batch.y).sum())

        def finish(self, sums):
            return {"loss": sums["loss_sum"] / sums["n"], "accuracy": sums["correct"] / sums["n"]}


    @register
    class SignTask(Task):
        """Is the sum of the sequence positive? Two logits per item."""

        name = "sign"
        topologies = ("many-to-one",)
        primary = "accuracy"
        higher_is_better = True
        options = {"margin": 0.0}  # report "unsure" when the two probabilities differ by less
        has_classes = True
        record_key = "sign"

        def loss(self, output, batch):
            return F.cross_entropy(output, batch.y)

        def metrics(self):
            return SignMetrics()

        def predict(self, output):
            return output.argmax(1)

        def decode(self, output, batch, options, model=None):
            p = output.softmax(1)
            sure = (p[:, 1] - p[:, 0]).abs() >= options["margin"]
            names = self.info.class_names
            return {"predictions": [names[int(c)] if s else "unsure" for c, s in zip(p.argmax(1), sure)]}
''')


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    path = tmp_path_factory.mktemp("toy") / "toy_sign.py"
    path.write_text(TOY, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("toy_sign", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # registers the task
    yield module
    tasks.base._tasks.pop("sign", None)
    sys.modules.pop("toy_sign", None)


def _data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(600, 6, 1, generator=g)
    y = (x.sum(dim=(1, 2)) > 0).long()
    info = DatasetInfo("toy-sums", "sequence", (6, 1), 2, ("negative", "positive"), task="sign",
                       preprocessing={"layout": "sequence", "sequence": {"features": 1, "length": 6}})
    return Dataset(info, Split(x[:400], y[:400]), Split(x[400:500], y[400:500]), Split(x[500:], y[500:]))


def test_a_toy_task_trains_evaluates_predicts_and_serves(toy, tmp_path, capsys):
    data = _data()
    model = models.create_for("gru", data.info, hidden_size=16)
    run_dir = tmp_path / "run"
    gridseq.fit(model, data, epochs=2, batch_size=32, lr=1e-2, run_dir=run_dir, progress=False, seed=0)
    metrics = gridseq.evaluate(model, data.test, task=tasks.get("sign", data.info))
    assert metrics["accuracy"] > 0.8  # the sum's sign is easy for a GRU; chance is ~0.5

    from gridseq.predict import Predictor

    predictor = Predictor.from_run(run_dir)
    assert predictor.describe()["options"] == {"margin": 0.0}
    out = predictor.predict([[1.0] * 6, [-1.0] * 6])
    assert out == {"predictions": ["positive", "negative"]}
    assert predictor.predict([[0.01] * 6], margin=1.0)["predictions"] == ["unsure"]

    from gridseq.cli import main

    import numpy as np

    np.savez(tmp_path / "new.npz", x=data.test.x.numpy())  # an INPUT file of 100 sequences
    assert main(["predict", str(run_dir), str(tmp_path / "new.npz"), "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    truth = data.info.class_names
    assert len(records) == 100 and sum(r["sign"] == truth[int(y)] for r, y in zip(records, data.test.y)) > 80

    from fastapi.testclient import TestClient

    from gridseq.serve import ServeSettings, create_app

    with TestClient(create_app(ServeSettings(runs={"toy": str(run_dir)}))) as client:
        while client.get("/health").status_code != 200:
            pass
        r = client.post("/models/toy/predict", json={"inputs": [[2.0] * 6], "options": {"margin": 0.0}})
        assert r.status_code == 200 and r.json()["predictions"] == ["positive"]
        assert client.post("/models/toy/predict", json={"inputs": [[2.0] * 6], "options": {"beam": 2}}).status_code == 422
        schema = client.get("/openapi.json").json()["components"]["schemas"]["PredictRequest_toy"]
        assert set(schema["properties"]["options"]["properties"]) == {"margin"}
