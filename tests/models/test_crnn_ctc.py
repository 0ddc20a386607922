"""crnn-ctc: config checks, exact output lengths, padding invariance, the causal variant, and the
command line end to end (train on a folder of images, predict a PNG and a WAV run)."""

import json

import numpy as np
import pytest
import torch

from gridseq import models
from gridseq.cli import main
from gridseq.data.contract import DatasetInfo
from gridseq.errors import ConfigError, DataError
from gridseq.models.crnn_ctc import CRNN, CRNNConfig

pytestmark = pytest.mark.usefixtures("one_thread")


def small(**kw):
    return CRNN(CRNNConfig(**{"input_size": 16, "num_classes": 5, "channels": (4, 8), "pools": ((2, 2), (2, 2)),
                              "hidden_size": 8, "num_layers": 1, **kw})).eval()


def test_config_errors_name_the_fix():
    with pytest.raises(ConfigError, match="one .height, time. pair .* per conv block .2 blocks"):
        CRNNConfig(input_size=16, num_classes=5, channels=(4, 8), pools=((2, 2),))
    with pytest.raises(ConfigError, match="input_size .* is 4, but the pools divide the height by 8"):
        CRNNConfig(input_size=4, num_classes=5)
    with pytest.raises(ConfigError, match="channels must be"):
        CRNNConfig(input_size=16, num_classes=5, channels=())
    assert CRNNConfig(input_size=16, num_classes=5, channels=[4], pools=[[2, 1]]).pools == ((2, 1),)  # from JSON


def test_only_for_transcription_datasets():
    info = DatasetInfo(name="mnist1d", kind="sequence", input_shape=(40, 1), num_classes=10, class_names=tuple("0123456789"))
    with pytest.raises(ConfigError, match="crnn-ctc scores frames for CTC transcription"):
        models.create_for("crnn-ctc", info)


def test_output_lengths_floor_each_pool():
    m = small(pools=((2, 3), (2, 2)))
    assert m.time_reduction == 6
    widths = torch.tensor([6, 7, 11, 12, 13, 25])
    assert m.output_lengths(widths).tolist() == [(w // 3) // 2 for w in widths.tolist()]
    for w in widths.tolist():
        assert m(torch.randn(1, w, 16)).shape[1] == (w // 3) // 2


def test_short_input_gives_zero_valid_frames_not_a_crash():
    m = small()
    out = m(torch.randn(1, 3, 16), torch.tensor([3]))
    assert out.shape[1] == 1 and m.output_lengths(torch.tensor([3])).tolist() == [0]


def test_causal_frames_do_not_see_the_future():
    torch.manual_seed(0)
    m = small(causal=True, num_layers=2)
    assert m.rnn.num_directions == 1
    x = torch.randn(1, 40, 16)
    changed = x.clone()
    changed[:, 24:] = torch.randn(1, 16, 16)  # steps 24.. differ; frame j covers steps 4j..4j+3
    a, b = m(x), m(changed)
    assert torch.allclose(a[0, :6], b[0, :6], atol=1e-6) and not torch.allclose(a[0, 6:], b[0, 6:])
    full = small(causal=False)
    a, b = full(x), full(changed)
    assert not torch.allclose(a[0, :6], b[0, :6])  # the bidirectional model does look ahead


# ---- command line -------------------------------------------------------------------------------------

def _image_folder(folder, n=24):
    from PIL import Image

    rng = np.random.default_rng(0)
    lines = ["file,transcript"]
    for i in range(n):
        text = "".join(rng.choice(list("ab"), int(rng.integers(1, 4))))
        img = np.full((16, 8 * len(text) + 8), 255, np.uint8)  # dark ink on white paper
        for j, ch in enumerate(text):
            img[3:13, 4 + 8 * j: 4 + 8 * j + (2 if ch == "a" else 6)] = 0
        Image.fromarray(img).save(folder / f"{i}.png")
        lines.append(f"{i}.png,{text}")
    (folder / "transcripts.csv").write_text("\n".join(lines) + "\n")


def test_cli_train_evaluate_predict_on_images(tmp_path, capsys):
    data = tmp_path / "lines"
    data.mkdir()
    _image_folder(data)
    run = tmp_path / "run"
    code = main(["train", str(data), "--model", "crnn-ctc", "--epochs", "2", "--threads", "1", "--run-dir", str(run),
                 "--data.height=16", "--model.channels=[4, 8]", "--model.pools=[[2, 2], [2, 1]]", "--model.hidden_size=8",
                 "--model.num_layers=1"])
    assert code == 0
    config = json.loads((run / "config.json").read_text())
    assert config["data"]["info"]["task"] == "transcribe" and config["data"]["info"]["preprocessing"]["alphabet"] == "ab"
    capsys.readouterr()
    assert main(["predict", str(run), str(data / "0.png"), str(data / "1.png"), "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [r["input"] for r in records] == [str(data / "0.png"), str(data / "1.png")]
    assert all(set(r["transcript"]) <= {"a", "b"} for r in records)
    assert main(["predict", str(run), "--split", "test", "--beam", "3", "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert records and all("target" in r for r in records)
    assert main(["evaluate", str(run), "--beam", "2", "--json"]) == 0
    assert set(json.loads(capsys.readouterr().out)) == {"loss", "cer", "exact_match"}
    assert main(["predict", str(run), str(tmp_path / "missing.png")]) == 2


def test_predictor_on_a_wav_needs_only_the_run(tmp_path):
    """A run on WAV files stores its front end: predicting a WAV at another sample rate needs nothing else."""
    from gridseq import datasets, train
    from gridseq.data import audio
    from gridseq.data.builtin.transcribe import dtmf_utterance
    from gridseq.data.readers.transcripts import prepare_transcribe
    from gridseq.predict import Predictor

    rng = np.random.default_rng(0)
    lines = ["file,transcript"]
    for i, keys in enumerate(["12", "3", "21", "13", "2", "31"]):
        audio.write_wav(tmp_path / f"{i}.wav", dtmf_utterance(keys, rng, 30.0), 8000)
        lines.append(f"{i}.wav,{keys}")
    (tmp_path / "transcripts.csv").write_text("\n".join(lines) + "\n")
    data = datasets.load(tmp_path, seed=0, sample_rate=8000, n_mels=16)
    model = models.create_for("crnn-ctc", data.info, channels=(4,), pools=((2, 2),), hidden_size=8, num_layers=1)
    train.fit(model, data, epochs=1, batch_size=4, run_dir=tmp_path / "run", progress=False)
    wave = dtmf_utterance("321", rng, 30.0)
    audio.write_wav(tmp_path / "new.wav", audio.resample(wave, 8000, 16000), 16000)  # a 16 kHz file
    predictor = Predictor.from_run(tmp_path / "run")
    out = predictor.predict([wave, wave[:4000]], beam=2)
    assert len(out["predictions"]) == 2 and all(set(p) <= set("123") for p in out["predictions"])
    batch = prepare_transcribe([tmp_path / "new.wav", wave], predictor.info, files=True)  # the command line's path
    same = predictor.decode(predictor.forward(batch), batch, {"beam": 1})["predictions"]
    assert same[0] == same[1]  # the 16 kHz file is resampled to the run's 8 kHz: the same transcript
    with pytest.raises(DataError, match="file paths are read by the command line only"):
        predictor.predict([str(tmp_path / "new.wav")])


@pytest.mark.parametrize("mode", ["lstm", "gru"])
def test_causal_stream_equals_the_full_forward(mode):
    torch.manual_seed(0)
    m = small(causal=True, num_layers=2, mode=mode, pools=((2, 2), (2, 3)))
    m.train()(torch.randn(4, 30, 16)).sum().backward()  # non-trivial BatchNorm statistics
    m.eval()
    x = torch.randn(2, 37, 16)
    s = m.stream(batch_size=2)
    first = [s.step(x[:, t]).shape[1] for t in range(6)]
    assert first == [0, 0, 0, 0, 0, 1]  # a frame every time_reduction = 6 steps
    s.reset()
    torch.testing.assert_close(s.run(x), m(x), atol=1e-5, rtol=1e-4)


def test_stream_refuses_a_model_that_looks_ahead():
    with pytest.raises(ConfigError, match="bidirectional"):
        small().stream()
    with pytest.raises(ConfigError, match="causal=True"):
        small(bidirectional=False).stream()
