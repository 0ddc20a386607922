"""Streamed audio (file,transcript CSVs of WAVs) and video folders (.npy clips, frame folders): the in-memory
splits and batches, lengths from headers, the same batches from workers, audio augmentation seeded by
(seed, epoch, item) within each item's length, and corrupt files named."""

import json
import traceback

import numpy as np
import pytest
import torch
from PIL import Image

import gridseq
import gridseq.datasets as gd
from gridseq import cli
from gridseq.data import audio
from gridseq.data.augment import augmentation_for
from gridseq.data.augment.audio import AudioAugment
from gridseq.data.builtin.transcribe import DTMF_ALPHABET, dtmf_utterance
from gridseq.data.readers import video as video_reader
from gridseq.data.samplers import BatchSampler
from gridseq.data.stream import StreamSplit
from gridseq.errors import ConfigError, DataError


@pytest.fixture
def wavs(tmp_path):
    """24 DTMF recordings of 3-6 keys; some at 16 kHz and in stereo (resampled and averaged on reading)."""
    rng = np.random.default_rng(0)
    lines = ["file,transcript"]
    for i in range(24):
        keys = "".join(rng.choice(list(DTMF_ALPHABET), int(rng.integers(3, 7))))
        wave = dtmf_utterance(keys, rng, 30.0)
        if i % 5 == 0:
            audio.write_wav(tmp_path / f"{i}.wav", audio.resample(wave, 8000, 16000), 16000)
        elif i % 7 == 0:
            import scipy.io.wavfile

            scipy.io.wavfile.write(tmp_path / f"{i}.wav", 8000, np.stack([wave, wave], 1))  # float32 stereo
        else:
            audio.write_wav(tmp_path / f"{i}.wav", wave, 8000)
        lines.append(f"{i}.wav,{keys}")
    (tmp_path / "transcripts.csv").write_text("\n".join(lines) + "\n")
    return tmp_path / "transcripts.csv"


def _loader_error(split, batches) -> str:
    """The message of the DataError the split's workers raise for `batches`.

    The exception chain's frames are cleared: torch re-raises a worker's error from a frame that holds it, a
    reference cycle that keeps the DataLoader iterator alive until a garbage collection, whose shutdown of
    the workers then waits 5 s for each (it would stall a later test by 10 s)."""
    with pytest.raises(DataError) as caught:
        list(split.loader(batches))
    message, error = str(caught.value), caught.value
    while error is not None:
        traceback.clear_frames(error.__traceback__)
        error = error.__context__
    return message


def _load_wavs(csv, **options):
    return gd.load(csv, seed=1, sample_rate=8000, n_mels=32, **options)


def _same_splits_and_batches(memory, streamed):
    assert streamed.info == memory.info
    for name, split in streamed.splits().items():
        other = memory.splits()[name]
        assert isinstance(split, StreamSplit) and not isinstance(other, StreamSplit)
        assert torch.equal(split.y, other.y)
        assert (split.lengths is None and other.lengths is None) or torch.equal(split.lengths, other.lengths)
        for index in torch.arange(len(split)).split(5):
            a, b = split.batch(index), other.batch(index)
            assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)


def test_streamed_wavs_have_the_in_memory_splits_and_batches(wavs):
    memory = _load_wavs(wavs, stream=False)
    streamed = _load_wavs(wavs, stream=True, workers=0)
    _same_splits_and_batches(memory, streamed)
    assert streamed.train.targets == memory.train.targets  # the raw transcripts travel with the split


def test_streamed_image_lines_have_the_in_memory_batches(tmp_path):
    lines = ["file,transcript"]
    for i, text in enumerate(["12", "305", "7", "4411", "90", "268"]):
        img = np.full((20, 10 * len(text) + 7), 255, np.uint8)
        for j, ch in enumerate(text):
            img[4:16, 3 + 10 * j: 5 + 10 * j + int(ch) % 6] = 0  # dark bars of a width per digit
        Image.fromarray(img).save(tmp_path / f"{i}.png")
        lines.append(f"{i}.png,{text}")
    (tmp_path / "transcripts.csv").write_text("\n".join(lines) + "\n")
    options = dict(seed=0, height=13, alphabet="0123456789")
    _same_splits_and_batches(gd.load(tmp_path, **options, stream=False), gd.load(tmp_path, **options, stream=True, workers=0))


def test_wav_lengths_come_from_the_headers_without_decoding(wavs, monkeypatch):
    memory = _load_wavs(wavs, stream=False)

    def decode(*args, **kwargs):
        raise AssertionError("a WAV was decoded while loading a streamed CSV")

    monkeypatch.setattr(audio, "read_wav", decode)
    streamed = _load_wavs(wavs, stream=True, workers=0)
    for name, split in streamed.splits().items():
        assert torch.equal(split.lengths, memory.splits()[name].lengths)


def test_wav_header_frame_count_is_the_decoded_one(tmp_path):
    import scipy.io.wavfile

    rec = audio.front_end_record(sample_rate=8000, n_mels=16)
    rng = np.random.default_rng(0)
    for n, rate, dtype, channels in [(1, 8000, np.int16, 1), (128, 8000, np.int16, 1), (9001, 16000, np.int16, 2),
                                     (7000, 44100, np.float32, 1), (3000, 11025, np.uint8, 2), (5000, 8000, np.int32, 1)]:
        x = rng.integers(1, 200, (n, channels) if channels > 1 else n).astype(dtype)
        scipy.io.wavfile.write(tmp_path / "a.wav", rate, x)
        decoded = len(audio.log_mel(audio.read_wav(tmp_path / "a.wav", 8000), rec))
        assert audio.wav_frames(tmp_path / "a.wav", rec) == decoded, (n, rate, dtype, channels)


def test_wav_workers_give_the_batches_of_this_process_with_augmentation(wavs):
    data = _load_wavs(wavs, stream=True, workers=0)
    aug = augmentation_for(True, data.info)
    assert isinstance(aug, AudioAugment)
    batches = BatchSampler(len(data.train), 4, lengths=data.train.lengths, seed=2).batches(1)
    here = list(data.train.loader(batches, epoch=1, seed=3, augment=aug))
    data.train.workers = 2
    there = list(data.train.loader(batches, epoch=1, seed=3, augment=aug))
    assert len(here) == len(there) == len(batches)
    for a, b in zip(here, there):
        assert torch.equal(a.x, b.x) and torch.equal(a.lengths, b.lengths)
    memory = _load_wavs(wavs, stream=False)
    for a, b in zip(here, memory.train.loader(batches, epoch=1, seed=3, augment=aug)):  # the in-memory split's too
        assert torch.equal(a.x, b.x)
    assert not torch.equal(here[0].x, data.train.batch(batches[0]).x)  # augmented


def test_audio_augmentation_is_a_function_of_seed_epoch_and_item_within_its_length():
    aug = AudioAugment(time_masks=3, time_width=6, time_share=0.3, freq_masks=2, freq_width=5, noise=0.2)
    lengths = torch.tensor([40, 25, 9, 33])
    x = torch.randn(4, 40, 20)
    x[torch.arange(40)[None, :] >= lengths[:, None]] = 0.0  # padded with zeros, as batches are
    whole = aug(x, torch.arange(4), seed=0, epoch=1, lengths=lengths)
    # items 2 and 1 in another batch, padded only to 25 frames: the same augmentation
    pair = aug(x[[2, 1], :25], torch.tensor([2, 1]), seed=0, epoch=1, lengths=lengths[[2, 1]])
    assert torch.equal(pair, whole[[2, 1], :25])
    for b, n in enumerate(lengths.tolist()):  # padding stays exactly zero
        assert whole[b, n:].abs().sum() == 0
    assert not torch.equal(aug(x, torch.arange(4), seed=1, epoch=1, lengths=lengths), whole)
    assert not torch.equal(aug(x, torch.arange(4), seed=0, epoch=2, lengths=lengths), whole)
    # masks only: every masked cell holds its band's mean over the item's valid frames, inside the length
    masks = AudioAugment(time_masks=2, time_width=10, time_share=1.0, freq_masks=0, noise=0.0)
    y = masks(x, torch.arange(4), seed=5, epoch=0, lengths=lengths)
    for b, n in enumerate(lengths.tolist()):
        changed = (y[b] != x[b]).any(1)
        assert not changed[n:].any()
        mean = x[b, :n].mean(0)
        assert torch.allclose(y[b, :n][changed[:n]], mean.expand(int(changed[:n].sum()), -1))
    assert bool((y != x).any())


def test_audio_augmentation_is_off_by_default_and_checks_its_settings(wavs):
    data = _load_wavs(wavs, stream=True, workers=0)
    assert augmentation_for(None, data.info) is None
    with pytest.raises(ConfigError, match="time_width must be a non-negative int"):
        AudioAugment(time_width=-1)
    with pytest.raises(ConfigError, match=r"time_share must be a number in \[0, 1\]"):
        AudioAugment(time_share=2)


def test_a_corrupt_wav_in_a_streamed_csv_is_a_data_error_naming_it(wavs):
    split = _load_wavs(wavs, stream=True, workers=2).test  # nothing is decoded at load time
    bad = split.source.paths[1]
    with open(bad, "r+b") as f:
        f.write(b"JUNK")  # the RIFF tag
    message = _loader_error(split, torch.arange(len(split)).split(2))
    assert f"cannot read {bad} as a WAV file" in message
    assert "\n" not in message  # the worker's own line, not its traceback


def test_a_wav_that_changed_since_loading_is_named(wavs):
    split = _load_wavs(wavs, stream=True, workers=0).val
    path = split.source.paths[0]
    audio.write_wav(path, np.zeros(800, np.float32), 8000)
    with pytest.raises(DataError, match=f"{path} decodes to 11 frames but its header gave"):
        split.batch(torch.tensor([0]))


def test_a_corrupt_wav_header_fails_at_load_naming_it(wavs):
    bad = wavs.parent / "3.wav"
    bad.write_bytes(b"RIFF not really a wav")
    with pytest.raises(DataError, match="cannot read .*3.wav as a WAV file"):
        _load_wavs(wavs, stream=True)


def test_the_cli_trains_on_a_streamed_csv_with_workers_and_augmentation(wavs, tmp_path, capsys):
    run_dir = tmp_path / "run"
    code = cli.main(["train", str(wavs), "--model", "crnn-ctc", "--epochs", "1", "--batch-size", "8", "--stream",
                     "--workers", "2", "--augment", "--run-dir", str(run_dir), "--no-progress",
                     "--data.sample_rate=8000", "--model.channels=[8]", "--model.pools=[[2,2]]", "--model.hidden_size=16"])
    assert code == 0, capsys.readouterr().err
    config = json.loads((run_dir / "config.json").read_text())
    assert config["data"]["options"]["stream"] is True and config["data"]["options"]["workers"] == 2
    assert config["train"]["augment"] is True
    assert cli.main(["evaluate", str(run_dir), "--json"]) == 0  # the run reloads its streamed data


# ---- video -------------------------------------------------------------------------------------------------

@pytest.fixture
def clips(tmp_path):
    """Two classes of .npy clips of 3-6 frames (uint8 and float) and one frame folder."""
    rng = np.random.default_rng(0)
    for label in ("left", "right"):
        (tmp_path / label).mkdir()
        for i in range(9):
            a = rng.integers(0, 256, (3 + i % 4, 6, 7), dtype=np.uint8)
            np.save(tmp_path / label / f"c{i}.npy", a if i % 3 else (a / 255.0).astype(np.float32))
    (tmp_path / "left" / "f0").mkdir()
    for t in range(4):
        Image.fromarray(rng.integers(0, 256, (6, 7), dtype=np.uint8)).save(tmp_path / "left" / "f0" / f"{t}.png")
    return tmp_path


def test_streamed_clips_have_the_in_memory_splits_and_batches(clips):
    memory = gd.load(clips, seed=2, stream=False)
    streamed = gd.load(clips, seed=2, stream=True, workers=0)
    assert streamed.info.variable_length
    _same_splits_and_batches(memory, streamed)


def test_fixed_length_clips_stream_without_lengths(tmp_path):
    rng = np.random.default_rng(1)
    for label in ("a", "b"):
        (tmp_path / label).mkdir()
        for i in range(6):
            np.save(tmp_path / label / f"{i}.npy", rng.integers(0, 256, (4, 5, 5, 3), dtype=np.uint8))
    memory, streamed = gd.load(tmp_path, stream=False), gd.load(tmp_path, stream=True, workers=0)
    assert streamed.train.lengths is None and streamed.info.preprocessing["video"]["frames"] == 4
    _same_splits_and_batches(memory, streamed)


def test_clip_lengths_come_from_headers_and_only_training_clips_are_read(clips, monkeypatch):
    read = []
    original = video_reader.read_clip
    monkeypatch.setattr(video_reader, "read_clip", lambda path, **kw: read.append(str(path)) or original(path, **kw))
    data = gd.load(clips, seed=2, stream=True, workers=0)
    assert sorted(read) == sorted(data.train.source.paths)  # the statistics sample (every training clip here), no more
    for split in data.splits().values():
        assert split.lengths.tolist() == [len(original(p)) for p in split.source.paths]


def test_clip_workers_give_the_batches_of_this_process(clips):
    data = gd.load(clips, seed=2, stream=True, workers=0)
    batches = BatchSampler(len(data.train), 3, lengths=data.train.lengths, seed=0).batches(0)
    here = list(data.train.loader(batches))
    data.train.workers = 2
    there = list(data.train.loader(batches))
    assert all(torch.equal(a.x, b.x) and torch.equal(a.lengths, b.lengths) for a, b in zip(here, there))


def test_a_corrupt_npy_in_a_streamed_folder_is_a_data_error_naming_it(clips):
    split = gd.load(clips, seed=2, stream=True, workers=2).test
    bad = next(p for p in split.source.paths if p.endswith(".npy"))
    with open(bad, "r+b") as f:
        f.truncate(100)  # the header stays, the pixels are gone
    message = _loader_error(split, torch.arange(len(split)).split(2))
    assert f"cannot read {bad} as a .npy array" in message and "\n" not in message


def test_streamed_clips_with_mixed_frame_sizes_are_refused_from_the_headers(clips):
    np.save(clips / "right" / "odd.npy", np.zeros((3, 6, 8), np.uint8))
    with pytest.raises(DataError, match="clips differ in .* resize them to one frame size"):
        gd.load(clips, stream=True)


def test_fit_trains_a_video_model_on_streamed_clips(clips):
    torch.manual_seed(0)
    data = gd.load(clips, seed=2, stream=True, workers=2)
    model = gridseq.models.create_for("crnn", data.info, channels=(4,), hidden_size=8)
    result = gridseq.fit(model, data, epochs=1, batch_size=4, device="cpu", progress=False)
    assert set(result.test) >= {"accuracy", "loss"}

