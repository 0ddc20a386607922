"""Transcription data: the log-mel front end, WAV reading and resampling, the two built-ins, user
folders of images/WAV with a transcript CSV (and their errors), and predict on files."""

import numpy as np
import pytest
import torch

from gridseq.data import audio
from gridseq.data.builtin.transcribe import DTMF_ALPHABET, digit_pools, dtmf_tones, dtmf_utterance
from gridseq.data.readers.transcripts import encode_transcripts, image_columns, prepare_transcribe
from gridseq.errors import ConfigError, DataError

pytestmark = pytest.mark.usefixtures("one_thread")


# ---- audio front end --------------------------------------------------------------------------------

def test_mel_scale_known_values():
    # HTK: mel(f) = 2595 log10(1 + f/700); 1000 Hz is 1000 mel by construction of the constants
    assert audio.hz_to_mel(1000.0) == pytest.approx(999.9855, abs=1e-3)
    assert audio.hz_to_mel(4000.0) == pytest.approx(2146.0645, abs=1e-3)
    assert audio.mel_to_hz(audio.hz_to_mel(697.0)) == pytest.approx(697.0)


def test_mel_filterbank_triangles():
    fb = audio.mel_filterbank(8000, 256, 40)
    assert fb.shape == (40, 129) and fb.min() >= 0 and fb.max() <= 1
    # hand-computed: 42 centres evenly spaced in mel from 0 to 2146.06 (41 steps of 52.34 mel) -> filter 0
    # peaks at 52.34 mel = 33.28 Hz, rising from 0 Hz; the STFT bin at 31.25 Hz sits 31.25/33.28 of the way up
    assert fb[0, 1] == pytest.approx(31.25 / 33.28, abs=1e-3)
    centres = audio.mel_to_hz(np.linspace(0, audio.hz_to_mel(4000), 42))[1:-1]
    peaks = fb.argmax(1) * 31.25
    assert np.all(np.abs(peaks - centres) <= 31.25 / 2 + 1e-6)  # each filter peaks at the bin nearest its centre


def test_log_mel_shape_normalisation_and_tone_band():
    rec = audio.front_end_record()
    t = np.arange(8000) / 8000
    wave = (np.sin(2 * np.pi * 941 * t) + 0.01 * np.random.default_rng(0).normal(size=8000)).astype(np.float32)
    feats = audio.log_mel(wave, rec)
    assert feats.shape == (audio.num_frames(8000, rec), 40)
    assert np.allclose(feats.mean(0), 0, atol=1e-4) and feats.std() == pytest.approx(1, abs=1e-3)
    loud = audio.log_mel(wave * 30, rec)
    assert np.abs(feats - loud).max() < 0.01  # the level is normalised away (bands well above log_floor)
    centres = audio.mel_to_hz(np.linspace(0, audio.hz_to_mel(4000), 42))[1:-1]
    assert abs(centres[audio.log_mel(wave, {**rec, "normalize": "none"}).mean(0).argmax()] - 941) < 60


def test_front_end_record_checks():
    with pytest.raises(ConfigError, match="unknown audio front-end setting 'hop'"):
        audio.front_end_record(hop=10)
    with pytest.raises(ConfigError, match="win_length"):
        audio.front_end_record(win_length=512)


def test_wav_round_trip_and_resampling(tmp_path):
    wave = dtmf_utterance("159#", np.random.default_rng(0), 30.0)
    audio.write_wav(tmp_path / "a.wav", wave, 8000)
    back = audio.read_wav(tmp_path / "a.wav", 8000)
    assert np.abs(back - wave).max() < 1e-4
    t = np.arange(16000) / 16000
    audio.write_wav(tmp_path / "b.wav", 0.5 * np.sin(2 * np.pi * 1000 * t), 16000)
    down = audio.read_wav(tmp_path / "b.wav", 8000)  # resampled, not refused
    assert len(down) == 8000
    spectrum = np.abs(np.fft.rfft(down))
    assert abs(spectrum.argmax() - 1000) <= 1


def test_unreadable_audio_is_a_data_error(tmp_path):
    (tmp_path / "bad.wav").write_bytes(b"RIFF not really a wav")
    with pytest.raises(DataError, match="cannot read .*bad.wav as a WAV file"):
        audio.read_wav(tmp_path / "bad.wav", 8000)
    import scipy.io.wavfile

    scipy.io.wavfile.write(tmp_path / "slow.wav", 100, np.zeros(50, np.int16))
    with pytest.raises(DataError, match="sample rate of 100 Hz"):
        audio.read_wav(tmp_path / "slow.wav", 8000)


# ---- built-ins ---------------------------------------------------------------------------------------------

def test_dtmf_tones_follow_the_standard():
    assert dtmf_tones("1") == (697.0, 1209.0) and dtmf_tones("0") == (941.0, 1336.0) and dtmf_tones("*") == (941.0, 1209.0)
    wave = dtmf_utterance("8", np.random.default_rng(1), 60.0)
    spectrum = np.abs(np.fft.rfft(wave))
    freqs = np.fft.rfftfreq(len(wave), 1 / 8000)
    low, high = (freqs > 600) & (freqs < 1000), (freqs > 1100) & (freqs < 1600)
    row, column = freqs[low][spectrum[low].argmax()], freqs[high][spectrum[high].argmax()]
    assert abs(row - 852) < 852 * 0.02 and abs(column - 1336) < 1336 * 0.02  # within the +-1.5% deviation
    assert spectrum[(freqs > 1600)].max() < 0.05 * spectrum.max()  # nothing else but faint noise


def test_digit_pools_keep_test_digits_apart():
    a, b = digit_pools(0), digit_pools(1)
    assert np.array_equal(a["test"], b["test"])  # the test digits never depend on the seed
    assert not set(a["test"]) & set(a["train"]) and not set(a["val"]) & set(a["train"])
    assert not np.array_equal(a["val"], b["val"])


def test_digit_strings_and_dtmf_load_seeded():
    from gridseq import datasets
    from gridseq.data.builtin.digits import digits_raw
    from gridseq.data.builtin.transcribe import _rngs, digit_string

    d = datasets.load("digit-strings", seed=0, size=20)  # each built-in loaded once: 1,800+ items to generate
    assert d.info.task == "transcribe" and d.info.num_classes == 11 and d.train.x.shape[2] == 16
    assert all(3 <= len(t) <= 10 for t in d.train.targets) and len(d.test) == 1000
    assert d.train.y[0, : len(d.train.targets[0])].tolist() == [int(c) + 1 for c in d.train.targets[0]]
    assert bool((d.train.lengths >= 8 * torch.tensor([len(t) for t in d.train.targets])).all())  # >= 8 columns a digit
    x, y = digits_raw()
    a, b = (digit_string(x[:, 0].copy(), y, np.arange(50), np.random.default_rng(7)) for _ in range(2))
    assert np.array_equal(a[0], b[0]) and a[1] == b[1]  # seeded
    assert _rngs("dtmf", 0)["test"].random() == _rngs("dtmf", 5)["test"].random()  # test items ignore the seed
    assert _rngs("dtmf", 0)["train"].random() != _rngs("dtmf", 5)["train"].random()
    a = datasets.load("dtmf", seed=0, size=10)
    assert a.info.class_names == ("<blank>", *DTMF_ALPHABET) and a.train.x.shape[2] == 40
    assert a.info.preprocessing["audio"]["sample_rate"] == 8000 and a.info.preprocessing["snr_db"] == [0.0, 20.0]
    with pytest.raises(ConfigError, match="snr"):
        datasets.load("dtmf", seed=0, size=10, snr="loud")


# ---- your own files ------------------------------------------------------------------------------------

def _write_images(folder, texts, dark_on_light=True):
    from PIL import Image

    lines = ["file,transcript"]
    for i, text in enumerate(texts):
        img = np.zeros((20, 12 * len(text) + 8), np.uint8)
        for j, ch in enumerate(text):
            img[4:16, 4 + 12 * j: 4 + 12 * j + 2 + int(ch) % 8] = 255  # bars of a width per symbol
        Image.fromarray(255 - img if dark_on_light else img).save(folder / f"{i}.png")
        lines.append(f"{i}.png,{text}")
    (folder / "transcripts.csv").write_text("\n".join(lines) + "\n")


def test_image_folder_with_transcripts(tmp_path):
    from gridseq import datasets

    texts = ["12", "345", "7", "21", "54", "333", "17", "71", "2", "45"]
    _write_images(tmp_path, texts)
    ds = datasets.load(tmp_path, seed=0, height=16)
    assert ds.info.task == "transcribe" and ds.info.class_names == ("<blank>", "1", "2", "3", "4", "5", "7")
    assert ds.train.x.shape[2] == 16 and len(ds.train) + len(ds.val) + len(ds.test) == 10
    assert float(ds.train.x.max()) > 0.9 and float(ds.train.x[0, :2].max()) < 0.1  # inverted: paper 0, ink high
    same = datasets.load(tmp_path / "transcripts.csv", seed=0, height=16)  # the CSV itself works too
    assert torch.equal(same.test.x, ds.test.x)


def test_symbols_outside_the_alphabet_are_named(tmp_path):
    from gridseq import datasets

    _write_images(tmp_path, ["12", "21", "12", "9"])
    (tmp_path / "transcripts.csv").write_text("file,transcript,split\n0.png,12,train\n1.png,21,train\n2.png,12,val\n3.png,9,test\n")
    with pytest.raises(DataError, match=r"3.png: transcript '9' holds '9', not in the alphabet '12'"):
        datasets.load(tmp_path, seed=0)
    ds = datasets.load(tmp_path, seed=0, alphabet="0123456789")
    assert ds.test.targets == ["9"]


def test_missing_files_and_mixed_kinds(tmp_path):
    from gridseq import datasets

    (tmp_path / "transcripts.csv").write_text("file,transcript\nnope.png,1\na.png,2\nb.png,3\n")
    with pytest.raises(DataError, match="nope.png .* does not exist"):
        datasets.load(tmp_path, seed=0)
    (tmp_path / "transcripts.csv").write_text("file,transcript\na.png,1\nb.wav,2\nc.png,3\n")
    with pytest.raises(DataError, match="all images .* or all WAV"):
        datasets.load(tmp_path, seed=0)


def test_wav_folder_resamples_and_reads_like_predict(tmp_path):
    from gridseq import datasets

    rng = np.random.default_rng(0)
    lines = ["file,transcript"]
    for i, keys in enumerate(["123", "#0", "77", "9*", "45", "60"]):
        audio.write_wav(tmp_path / f"{i}.wav", dtmf_utterance(keys, rng, 30.0), 8000)
        lines.append(f"{i}.wav,{keys}")
    (tmp_path / "transcripts.csv").write_text("\n".join(lines) + "\n")
    ds = datasets.load(tmp_path, seed=0, sample_rate=16000, n_mels=32, alphabet=DTMF_ALPHABET)  # 8 kHz files, 16 kHz model
    assert ds.info.preprocessing["audio"]["sample_rate"] == 16000 and ds.train.x.shape[2] == 32
    batch = prepare_transcribe([str(tmp_path / "0.wav")], ds.info, files=True)
    i = (ds.train.targets + ds.val.targets + ds.test.targets).index("123")
    split = [ds.train, ds.val, ds.test][0 if i < len(ds.train) else (1 if i < len(ds.train) + len(ds.val) else 2)]
    j = split.targets.index("123")
    n = int(split.lengths[j])
    assert int(batch.lengths[0]) == n and torch.allclose(batch.x[0, :n], split.x[j, :n], atol=1e-5)


def test_image_columns_inverts_light_paper_and_scales_height():
    img = np.ones((10, 30), np.float32)
    img[3:7, 5:25] = 0.0  # dark ink on white
    cols = image_columns(img, 20)
    assert cols.shape == (60, 20) and cols[0].max() < 0.05 and cols.max() > 0.9
    assert encode_transcripts(["ab", ""], "ab").tolist() == [[1, 2], [0, 0]]
