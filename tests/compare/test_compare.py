"""`gridseq.compare` end to end on a tiny variable-length dataset, the report files, and the command."""

import base64
import json
from html.parser import HTMLParser

import numpy as np
import pytest

import gridseq
from gridseq import cli
from gridseq.compare import CompareReport, ModelSpec, plan
from gridseq.compare.claims import VERDICTS
from gridseq.errors import ConfigError


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """120 sequences of 6..16 steps, 2 features, 3 classes (the class shifts the mean of feature 0)."""
    rng = np.random.default_rng(0)
    n, steps = 120, 16
    y = np.arange(n) % 3
    x = rng.normal(size=(n, steps, 2)).astype(np.float32)
    x[:, :, 0] += y[:, None]
    lengths = rng.integers(6, steps + 1, n)
    path = tmp_path_factory.mktemp("data") / "tiny.npz"
    np.savez(path, x=x, y=y, lengths=lengths)
    return path


@pytest.fixture(scope="module")
def report(tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    specs = ["mlp", "tcn", ModelSpec("rnn", "rnn", {"hidden_size": 8}), ModelSpec("gru", "gru", {"hidden_size": 8})]
    return gridseq.compare(str(tiny), specs, seeds=2, epochs=1, out=out, progress=False), out


def test_report_json_has_the_schema_of_the_issue(report):
    rep, out = report
    data = json.loads((out / "report.json").read_text())
    assert data["dataset"].endswith("tiny.npz") and data["seeds"] == [0, 1]
    assert data["budget"] == {"kind": "epochs", "epochs": 1, "seconds": None, "description": "1 epochs for every model"}
    assert [m["name"] for m in data["models"]] == ["mlp", "tcn", "rnn", "gru"]
    for m in data["models"]:
        acc = m["metrics"]["accuracy"]
        assert len(acc["runs"]) == 2 and acc["mean"] == pytest.approx(sum(acc["runs"]) / 2)
        assert m["parameters"] > 0 and m["train_samples_per_second"] > 0
        assert m["latency_ms_b1"] > 0 and m["throughput_b256"] > 0 and m["thread_scaling"]["ratio"] > 0
        assert len(m["length_scaling"]["latency_ms"]) == 3 and m["memory"]["activations_mb"] > 0
        assert m["padding_invariant"] is True  # variable-length data: every gridseq model masks its padding
    gru = next(m for m in data["models"] if m["name"] == "gru")
    assert len(gru["gradient_flow"]["trained"]) == 16 and set(gru["gradient_flow"]["first_to_last_trained"]) == {"0", "1"}
    assert next(m for m in data["models"] if m["name"] == "tcn")["receptive_field"] == 61
    assert {c["id"] for c in data["claims"]} == {"cnn_train_faster", "cnn_fewer_parameters", "rnn_variable_length",
                                                "rnn_memory", "vanishing_gradients", "published_ordering"}
    assert all(c["verdict"] in VERDICTS for c in data["claims"])
    assert data["environment"]["torch"] and data["environment"]["torch_threads"] >= 1
    assert rep.verdicts()["rnn_memory"] == "not measured"  # no length sweep here
    assert rep.verdicts()["published_ordering"] == "not measured"  # no published figures for this data
    assert CompareReport.read(out).data == data


def test_markdown_report_has_the_tables(report):
    _, out = report
    md = (out / "report.md").read_text()
    assert "| model | family | params | test accuracy |" in md and "## Claims" in md
    assert all(f"| {name} |" in md for name in ("mlp", "tcn", "rnn", "gru"))


class _Resources(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.refs, self.images = [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href", "srcset", "poster", "data", "action", "background"):
                self.refs.append(value or "")
            if tag == "img" and name == "src":
                self.images.append(value)


def test_html_report_is_self_contained(report):
    rep, out = report
    page = (out / "report.html").read_text()
    parser = _Resources()
    parser.feed(page)
    assert not {"script", "link", "iframe", "object", "embed", "base"} & set(parser.tags)
    assert all(ref.startswith("data:image/png;base64,") for ref in parser.refs), parser.refs
    assert "@import" not in page and "url(" not in page and "http://" not in page and "https://" not in page
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == rep.data["plots"] and len(parser.images) == len(pngs) >= 4
    for src in parser.images:
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert '<meta name="viewport"' in page and "@media print" in page


def test_unknown_models_and_budget_conflicts_fail_before_training(tiny):
    with pytest.raises(ConfigError, match="Did you mean 'gru'"):
        gridseq.compare(str(tiny), "gruu", epochs=1)
    with pytest.raises(ConfigError, match="not both"):
        gridseq.compare(str(tiny), "mlp", epochs=1, budget_seconds=5)
    with pytest.raises(ConfigError, match="length option"):
        gridseq.compare(str(tiny), "mlp", epochs=1, lengths=[10, 20])


def test_default_model_sets_follow_the_data():
    assert plan.default_models("mnist1d", "sequence", "classify") == ("logreg", "mlp", "cnn", "rnn", "lstm", "gru")
    assert "lstm" in plan.default_models("digits", "image", "classify")
    assert plan.default_models("my.npz", "sequence", "tag") == ("tcn", "fcn", "rnn", "lstm", "gru")
    assert "bigru" in plan.default_models("my.npz", "sequence", "classify")
    logreg = plan.parse_models("logreg,bigru", dataset="x", kind="sequence", task="classify")
    assert logreg[0].model == "mlp" and logreg[0].overrides["hidden"] == () and logreg[1].overrides == {"bidirectional": True}


def test_budget_seconds_plans_epochs_and_stops(tiny):
    rep = gridseq.compare(str(tiny), "mlp", seeds=1, budget_seconds=1.0, measure=False, plots=False, progress=False)
    m = rep.model("mlp")
    assert m["train_seconds"]["mean"] < 10 and m["epochs"][0] >= 1
    assert rep.data["budget"]["kind"] == "seconds"


def test_cli_compare_prints_the_summary_and_the_claims(tiny, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CI", "true")
    out = tmp_path / "cmp"
    code = cli.main(["compare", str(tiny), "--models", "mlp,gru", "--seeds", "1", "--epochs", "1", "--out", str(out),
                     "--no-timing", "--no-plots"])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "claims card" in printed.out and "gru" in printed.out and "report.html" in printed.out
    assert "[1/2] mlp seed 0" in printed.err and "ETA" in printed.err
    assert (out / "report.html").exists() and not list(out.glob("*.png"))
    # a folder that holds something else is not overwritten
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    assert cli.main(["compare", str(tiny), "--models", "mlp", "--epochs", "1", "--out", str(other)]) == 2
    assert "holds no gridseq report" in capsys.readouterr().err
    assert cli.main(["compare", str(tiny), "--epochs", "1", "--budget-seconds", "3"]) == 2


@pytest.mark.slow
def test_compare_digits_with_its_defaults(tmp_path):
    """A small real comparison: the training defaults reach their accuracy inside `compare` too."""
    rep = gridseq.compare("digits", "mlp,cnn,lstm", seeds=1, out=tmp_path, threads=1, progress=False)
    assert rep.metric("cnn") >= 0.96 and rep.metric("lstm") >= 0.93 and rep.metric("mlp") >= 0.9
    assert rep.model("lstm")["view"] == "sequence" and rep.model("cnn")["view"] is None  # rows for the LSTM
    assert rep.model("cnn")["length_scaling"] is None and rep.model("lstm")["length_scaling"]["lengths"] == [8, 16, 32]
    assert (tmp_path / "report.html").stat().st_size > 20_000


def test_progress_estimates_from_finished_jobs():
    from gridseq.compare.progress import Job, Progress

    jobs = [Job("cnn", 0, 50), Job("gru", 0, 50), Job("cnn", 0, 200), Job("gru", 0, 200)]
    progress = Progress(jobs, enabled=False)
    assert progress.remaining() is None  # nothing known yet
    progress.done[jobs[0]] = 10.0
    progress.done[jobs[1]] = 30.0
    assert progress.estimate(jobs[2]) == 40.0 and progress.estimate(jobs[3]) == 120.0  # same model, scaled by length
    assert progress.remaining() == 160.0
    bounded = Progress(jobs, budget_seconds=20.0, enabled=False)
    assert bounded.estimate(jobs[0]) == 22.0  # before any job ends: the budget
    bounded.done[jobs[1]] = 30.0
    assert bounded.estimate(jobs[3]) == 30.0  # at most 1.5x the budget


def test_busy_machine_warning():
    from gridseq.compare.report import _warnings

    env = {"logical_cpus": 2, "loadavg_at_start": [5.0, 4.0, 3.0], "loadavg": [1.0, 1.0, 1.0], "torch_threads": 2}
    (warning,) = _warnings({"environment": env})
    assert "busy" in warning and "--threads 1" in warning
    assert _warnings({"environment": {**env, "loadavg_at_start": [1.5, 1, 1]}}) == []


def test_a_model_listed_twice_under_two_names_runs_once(tiny):
    # with bidirectional=True set on "gru" by hand, "bigru" is the same model
    rep = gridseq.compare(str(tiny), [ModelSpec("gru", "gru", {"bidirectional": True, "hidden_size": 8}),
                                      ModelSpec("bigru", "gru", {"bidirectional": True, "hidden_size": 8})],
                          seeds=1, epochs=1, measure=False, plots=False, progress=False)
    assert [m["name"] for m in rep.models] == ["gru"]
