"""Export to ONNX / TorchScript: every family listed in gridseq.export, verified against PyTorch with
onnxruntime on several batch sizes and lengths (or image sizes), max abs diff <= 1e-4."""

import json

import pytest
import torch

import gridseq
from gridseq import cli, models
from gridseq.export import ExportError, MaskedRecurrent, export, reverse_within
from gridseq.nn.recurrent import Recurrent

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

FAST = {
    "lstm-bi-2x": ("lstm", dict(input_size=3, num_classes=4, hidden_size=8, num_layers=2, bidirectional=True)),
    "gru-tagger-tokens": ("gru", dict(vocab_size=30, num_classes=5, hidden_size=8, per_step=True)),
    "cnn-image": ("cnn", dict(input_shape=(1, 8, 8), num_classes=10, channels=(8, 16))),
    # zero_init_last=False: the residual branches must count in the comparison, not start at zero
    "resnet": ("resnet", dict(input_shape=(3, 24, 20), num_classes=5, channels=(8, 16, 16), zero_init_last=False)),
    "cnn-image-pooled": ("cnn", dict(input_shape=(3, 64, 48), num_classes=4, channels=(8, 16), global_pool="max")),
    "fcn-2d-unet": ("fcn", dict(in_channels=3, num_classes=4, dims=2, channels=(8, 16, 16))),
    "crnn-video": ("crnn", dict(input_shape=(1, 12, 12), num_classes=6, channels=(4, 8), hidden_size=8)),
}
SLOW = {
    "rnn-bi-max-tokens": ("rnn", dict(vocab_size=30, num_classes=4, hidden_size=8, bidirectional=True, pooling="max")),
    "gru-bi-mean": ("gru", dict(input_size=3, num_classes=4, hidden_size=8, bidirectional=True, pooling="mean")),
    "lstm-tagger": ("lstm", dict(input_size=3, num_classes=4, hidden_size=8, per_step=True, num_layers=2)),
    "cnn-sequence": ("cnn", dict(input_shape=(20, 2), num_classes=3, channels=(8,))),
    "mlp-image": ("mlp", dict(input_shape=(1, 8, 8), num_classes=10)),
    "resnet18-tiny": ("resnet18", dict(input_shape=(1, 8, 8), num_classes=3, channels=(4, 8, 8, 8), zero_init_last=False)),
    "fcn-2d-skip-interp": ("fcn", dict(in_channels=3, num_classes=4, dims=2, variant="skip", upsample="interp", channels=(8, 16, 16))),
    "fcn-2d-pool": ("fcn", dict(in_channels=1, num_classes=4, dims=2, head="pool", channels=(8, 16))),
    "fcn-1d": ("fcn", dict(in_channels=2, num_classes=3, dims=1, channels=(8, 8))),
    "fcn-1d-dense": ("fcn", dict(in_channels=2, num_classes=3, dims=1, head="dense", channels=(8, 8))),
    "resnet1d": ("resnet1d", dict(in_channels=2, num_classes=3)),
    "tcn": ("tcn", dict(input_size=2, num_classes=3)),
    "lstm-fcn-shuffle": ("lstm-fcn", dict(input_size=2, num_classes=3, series_length=20)),
    "lstm-fcn-time": ("lstm-fcn", dict(input_size=2, num_classes=3, dimension_shuffle=False)),
    "crnn-per-frame-bi": ("crnn", dict(input_shape=(1, 12, 12), num_classes=4, channels=(4,), hidden_size=8, per_step=True,
                                       bidirectional=True)),
    "frame-cnn": ("frame-cnn", dict(input_shape=(1, 12, 12), num_classes=6, channels=(4, 8))),
    "fcn8s-segment": ("fcn8s", dict(in_channels=3, num_classes=4, channels=(8, 16, 16))),
}


def _saved(tmp_path, name, kwargs):
    model = models.create(name, **kwargs).eval()
    return gridseq.save(model, tmp_path / name)


def _check_report(report, path):
    assert report.ok and report.max_diff <= 1e-4, report.lines()
    assert len(report.checks) >= 4 and path.exists()
    assert report.lines()[-1].endswith("OK")


@pytest.mark.parametrize("case", list(FAST) + [pytest.param(c, marks=pytest.mark.slow) for c in SLOW])
def test_onnx_export_matches_pytorch(tmp_path, case):
    name, kwargs = {**FAST, **SLOW}[case]
    directory = _saved(tmp_path, name, kwargs)
    report = export(directory)
    _check_report(report, directory / "model.onnx")
    proto = onnx.load(str(directory / "model.onnx"))
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta["gridseq_model"])["name"] == name
    dims = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in proto.graph.input}
    assert dims["x"][0] == "B"
    if "T" in report.inputs["x"]:
        assert dims["x"][1] == "T" and report.checks[-1][0] == "B=16 T=40"  # lengths well past the traced 11
    if "H" in report.inputs["x"]:
        assert dims["x"][2:] == ["H", "W"]


@pytest.mark.parametrize("case", ["lstm-bi-2x", pytest.param("fcn-2d-unet", marks=pytest.mark.slow)])
def test_torchscript_export_matches_pytorch(tmp_path, case):
    name, kwargs = FAST[case]
    directory = _saved(tmp_path, name, kwargs)
    report = export(directory, format="torchscript")
    _check_report(report, directory / "model.ts.pt")


@pytest.mark.parametrize("mode", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_masked_recurrent_equals_recurrent(mode, bidirectional):
    layer = Recurrent(mode, 3, 6, num_layers=2, bidirectional=bidirectional).eval()
    masked = MaskedRecurrent(layer).eval()
    x = torch.randn(5, 9, 3)
    lengths = torch.tensor([9, 1, 4, 9, 6])
    with torch.no_grad():
        expected, _ = layer(x, lengths)
        got, _ = masked(x, lengths)
    assert torch.allclose(got, expected, atol=1e-6)


def test_reverse_within_is_its_own_inverse():
    x = torch.randn(3, 7, 2)
    lengths = torch.tensor([7, 3, 1])
    assert torch.equal(reverse_within(reverse_within(x, lengths), lengths), x)
    assert torch.equal(reverse_within(x, lengths)[1, :3], x[1, :3].flip(0))


def test_seq2seq_does_not_export_and_says_why(tmp_path):
    directory = _saved(tmp_path, "seq2seq", dict(vocab_size=12, num_classes=12, hidden_size=8))
    with pytest.raises(gridseq.errors.ConfigError, match="data-dependent control flow"):
        export(directory)


def test_a_mismatch_fails_the_export(tmp_path):
    directory = _saved(tmp_path, *FAST["lstm-bi-2x"])
    with pytest.raises(ExportError, match="does not match PyTorch"):
        export(directory, tolerance=1e-15)


def test_cli_export_prints_the_check(tmp_path, capsys):
    directory = _saved(tmp_path, *FAST["gru-tagger-tokens"])
    out = tmp_path / "out" / "tagger.onnx"
    assert cli.main(["export", str(directory), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"exported gru to {out} (onnx)" in printed and "x (B, T), lengths (B,) -> (B, T, 5)" in printed
    assert "check against PyTorch with onnxruntime" in printed and printed.strip().endswith("OK")
    assert cli.main(["export", str(directory), "--out", str(out), "--json", "--no-check"]) == 0
    assert json.loads(capsys.readouterr().out)["checks"] == []
    code = cli.main(["export", str(_saved(tmp_path, "seq2seq", dict(vocab_size=12, num_classes=12, hidden_size=8)))])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("gridseq: error: seq2seq does not export") and len(err.strip().splitlines()) == 1
