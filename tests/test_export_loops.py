"""ONNX export of the families with loops: `convlstm` (an ONNX Loop over T), `crnn-ctc` (dynamic T and T_out)
and the `captioner` (encoder + decoder step graphs, greedy decoding with onnxruntime alone), each checked
against PyTorch with onnxruntime."""

import json

import numpy as np
import pytest
import torch

import gridseq
from gridseq import cli, models
from gridseq.export import export, session
from gridseq.export.captioner import greedy_decode

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

CASES = {
    "convlstm": ("convlstm", dict(input_shape=(1, 12, 12), num_classes=5, stem_channels=4, hidden_channels=(6, 8))),
    "convlstm-per-step-no-stem": ("convlstm", dict(input_shape=(2, 8, 8), num_classes=3, stem_channels=0, hidden_channels=(4,),
                                                   per_step=True)),
    "crnn-ctc-bi": ("crnn-ctc", dict(input_size=16, num_classes=11, channels=(8, 16), pools=((2, 2), (2, 2)), hidden_size=8)),
    "crnn-ctc-causal-gru": ("crnn-ctc", dict(input_size=16, num_classes=11, channels=(8,), pools=((2, 2),), hidden_size=8,
                                             causal=True, mode="gru")),
}


@pytest.mark.parametrize("case", list(CASES))
def test_loop_families_export_with_dynamic_lengths(tmp_path, case):
    name, kwargs = CASES[case]
    directory = gridseq.save(models.create(name, **kwargs).eval(), tmp_path / case)
    report = export(directory)
    assert report.ok and report.max_diff <= 1e-4, report.lines()
    assert report.checks[-1][0] == "B=16 T=40"  # well past the traced length
    proto = onnx.load(str(directory / "model.onnx"))
    dims = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in proto.graph.input}
    assert dims["x"][:2] == ["B", "T"] and dims["lengths"] == ["B"]
    if name == "crnn-ctc":
        assert report.output[1] == "T_out" and report.checks[0][0].endswith(f"T={models.create(name, **kwargs).time_reduction}")


def test_crnn_ctc_onnx_transcribes_like_pytorch_on_unseen_lengths(tmp_path):
    model = models.create(*CASES["crnn-ctc-bi"][:1], **CASES["crnn-ctc-bi"][1]).eval()
    export(model, tmp_path / "ctc.onnx")
    x, lengths = torch.randn(3, 97, 16), torch.tensor([97, 50, 9])
    got = session(tmp_path / "ctc.onnx").run(None, {"x": x.numpy(), "lengths": lengths.numpy()})[0]
    with torch.no_grad():
        want = model(x, lengths)
    valid = model.output_lengths(lengths)
    assert got.shape == (3, 24, 11) and valid.tolist() == [24, 12, 2]
    for b, n in enumerate(valid.tolist()):  # the valid frames agree, so the greedy CTC paths do too
        assert np.abs(got[b, :n] - want[b, :n].numpy()).max() < 1e-4
        assert (got[b, :n].argmax(-1) == want[b, :n].argmax(-1).numpy()).all()


CAPTIONERS = {
    "gru-bahdanau": dict(input_shape=(3, 16, 16), num_classes=20, channels=(8, 16), hidden_size=16, max_length=7),
    "lstm-luong-2x": dict(input_shape=(1, 16, 16), num_classes=12, channels=(8,), hidden_size=16, mode="lstm",
                          attention="luong", num_layers=2, max_length=6),
    "no-attention": dict(input_shape=(1, 16, 16), num_classes=12, channels=(8,), hidden_size=16, attention="none", max_length=6),
}


@pytest.mark.parametrize("case", list(CAPTIONERS))
def test_captioner_exports_encoder_and_decoder_step(tmp_path, case):
    torch.manual_seed(0)
    directory = gridseq.save(models.create("captioner", **CAPTIONERS[case]).eval(), tmp_path / case)
    report = export(directory)
    assert report.ok and report.max_diff <= 1e-4, report.lines()
    encoder, step = report.files
    assert (encoder.name, step.name) == ("model.encoder.onnx", "model.decoder-step.onnx")
    assert [c for c, _ in report.checks][:3] == ["encoder B=1", "decoder step B=1", "greedy B=1 " + report.checks[2][0].split()[-1]]
    assert len(report.checks) == 12 and json.loads(json.dumps(report.to_json()))["files"] == [str(encoder), str(step)]


def test_greedy_decoding_with_onnxruntime_reproduces_the_pytorch_caption(tmp_path):
    torch.manual_seed(0)
    model = models.create("captioner", **CAPTIONERS["gru-bahdanau"]).eval()
    report = export(model, tmp_path / "cap.onnx", check=False)
    images = torch.randn(6, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    ids, _ = greedy_decode(session(report.files[0]), session(report.files[1]), images.numpy(), max_length=7)
    assert np.array_equal(ids, model.generate(images).numpy())
    assert len(set(map(tuple, ids.tolist()))) > 1  # the images get different captions: the check is not vacuous


def test_cli_exports_a_captioner_run(tmp_path, capsys):
    directory = gridseq.save(models.create("captioner", **CAPTIONERS["no-attention"]).eval(), tmp_path / "cap")
    assert cli.main(["export", str(directory)]) == 0
    printed = capsys.readouterr().out
    assert f"exported captioner to {directory / 'model.encoder.onnx'} + {directory / 'model.decoder-step.onnx'}" in printed
    assert printed.strip().endswith("OK")
    code = cli.main(["export", str(directory), "--format", "torchscript"])
    assert code == 2 and "exports to ONNX only" in capsys.readouterr().err
