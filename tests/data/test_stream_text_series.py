"""Streamed text (.txt, text CSV, .tsv) and sequence files (.npz, wide/long CSV): the in-memory splits,
batches and records; workers give the batches this process gives; lengths known without reading an id;
series augmentation seeded by (seed, epoch, item); corrupt files are DataErrors."""

import gc
import json
import random

import numpy as np
import pytest
import torch

import gridseq
import gridseq.datasets as gd
from gridseq.data.augment import augmentation_for
from gridseq.data.augment.series import SeriesAugment
from gridseq.data.contract import Batch, Split
from gridseq.data.readers import npz as npz_reader
from gridseq.data.stream import StreamSplit
from gridseq.data.text_stream import LazyStrings, LazyText, TokenMatrix, TokenStreamSplit
from gridseq.errors import ConfigError, DataError
from gridseq.train import seed_everything


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("files")
    rng = random.Random(0)
    # combining accents, CRLF and precomposed letters: NFC must come out the same read in pieces
    (root / "story.txt").write_text("".join(rng.choice(["the cat sat. ", "a dog ran.\n", "héllo wörld. ", "e\u0301t\u00e9\r\n"])
                                            for _ in range(2000)), encoding="utf-8")
    with open(root / "reverse.tsv", "w", encoding="utf-8") as f:
        for _ in range(300):
            word = "".join(rng.choice("abcde") for _ in range(rng.randint(2, 8)))
            f.write(f"{word}\t{word[::-1]}\r\n")
    with open(root / "reviews.csv", "w", encoding="utf-8") as f:
        f.write("text,label\n")
        for _ in range(240):
            good = rng.random() < 0.5
            f.write(f"\"{'good great' if good else 'bad, awful'} {rng.choice(['movie', 'film', 'long show indeed'])}\","
                    f"{'pos' if good else 'neg'}\n")
    g = np.random.default_rng(0)
    x = g.normal(size=(260, 12, 2)).astype(np.float32)
    lengths = g.integers(3, 13, size=260)
    x[np.arange(12)[None, :] >= lengths[:, None]] = np.nan  # NaN padding is allowed past an item's length
    y = g.integers(0, 3, size=260)
    np.savez(root / "walks.npz", x=x, y=y, lengths=lengths, x_test=x[:30], y_test=y[:30], lengths_test=lengths[:30])
    np.savez_compressed(root / "packed.npz", x=g.normal(size=(260, 12)), y=y)  # float64 (N, T), inflated to map
    with open(root / "wide.csv", "w") as f:
        f.write("label,length," + ",".join(f"t{i}" for i in range(10)) + "\n")
        for i in range(150):
            n = int(g.integers(3, 11))
            f.write(f"{['up', 'down'][i % 2]},{n}," + ",".join(f"{v:.3f}" for v in g.normal(size=n)) + "," * (10 - n) + "\n")
    with open(root / "long.csv", "w") as f:
        f.write("id,time,a,b,label\n")
        rows = [f"s{i},{t},{g.normal():.3f},{g.normal():.3f},{['x', 'y'][i % 2]}\n"
                for i in range(120) for t in g.permutation(int(g.integers(2, 8)))]
        g.shuffle(rows)
        f.writelines(rows)
    with open(root / "dates.csv", "w") as f:
        f.write("id,time,a,label\n")
        f.writelines(f"s{i},2020-01-0{t + 1},{g.normal():.3f},{'xy'[i % 2]}\n" for i in range(80) for t in (2, 0, 1, 3))
    return root


TEXT = [("story.txt", dict(chunk=16)), ("reverse.tsv", {}), ("reviews.csv", {}), ("reviews.csv", dict(level="char"))]
SEQUENCES = ["walks.npz", "packed.npz", "wide.csv", "long.csv", "dates.csv"]


def _same_splits(memory, streamed):
    assert memory.info == streamed.info  # vocabulary, statistics (every training item is in the sample), shapes
    for name, split in streamed.splits().items():
        twin = memory.splits()[name]
        assert isinstance(split, StreamSplit) and not isinstance(twin, StreamSplit)
        assert len(split) == len(twin)
        if twin.lengths is not None:
            assert torch.equal(split.lengths, twin.lengths)
        index = torch.arange(len(split))
        a, b = split.batch(index), twin.batch(index)
        assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
        assert (a.lengths is None) == (b.lengths is None)
        uneven = index[::3].flip(0)  # any order, any subset: padded to the batch's own longest item
        assert torch.equal(split.batch(uneven).x, twin.batch(uneven).x)


@pytest.mark.parametrize("name, options", TEXT)
def test_streamed_text_has_the_in_memory_splits_batches_and_strings(files, name, options):
    memory = gd.load(files / name, seed=2, stream=False, **options)
    streamed = gd.load(files / name, seed=2, stream=True, workers=0, **options)
    _same_splits(memory, streamed)
    for split_name, split in streamed.splits().items():
        twin = memory.splits()[split_name]
        assert isinstance(split, TokenStreamSplit) and isinstance(split.x, TokenMatrix)
        assert split.x.shape == twin.x.shape and split.x.dtype == torch.int64 and split.x.dim() == 2
        assert torch.equal(split.x[torch.arange(len(split))], twin.x) and torch.equal(split.x[3], twin.x[3])
        assert split.y.shape == twin.y.shape and split.y.dtype == twin.y.dtype
        if isinstance(twin.texts, str):  # language model: the split's slice of the text
            assert isinstance(split.texts, LazyText) and str(split.texts) == twin.texts and len(split.texts) == len(twin.texts)
        else:
            assert isinstance(split.texts, LazyStrings) and list(split.texts) == twin.texts
            assert split.texts[2:5] == twin.texts[2:5]
        assert (split.targets is None) == (twin.targets is None)
        if twin.targets is not None:
            assert list(split.targets) == twin.targets


@pytest.mark.parametrize("name", SEQUENCES)
def test_streamed_sequence_files_have_the_in_memory_splits_and_batches(files, name):
    memory = gd.load(files / name, seed=1, stream=False)
    streamed = gd.load(files / name, seed=1, stream=True, workers=0)
    _same_splits(memory, streamed)


@pytest.mark.parametrize("name, options", [("reviews.csv", {}), ("story.txt", dict(chunk=16)), ("walks.npz", {})])
def test_two_workers_give_the_batches_of_this_process(files, name, options):
    split = gd.load(files / name, stream=True, workers=0, **options).train
    batches = gd.BatchSampler(len(split), 16, lengths=split.lengths, seed=3).batches(1)
    here = list(split.loader(batches))
    split.workers = 2
    there = list(split.loader(batches))
    assert len(here) == len(there) == len(batches)
    for a, b in zip(here, there):
        assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
        assert (a.lengths is None and b.lengths is None) or torch.equal(a.lengths, b.lengths)


def test_lengths_and_length_buckets_need_no_id_read(files, monkeypatch):
    data = gd.load(files / "reviews.csv", stream=True, workers=0, level="char")
    memory = gd.load(files / "reviews.csv", stream=False, level="char")
    monkeypatch.setattr(npz_reader.Mapped, "array", property(lambda self: 1 / 0))  # any read of a file now fails
    split = data.train
    assert torch.equal(split.lengths, memory.train.lengths)
    sampler = gd.BatchSampler(len(split), 8, lengths=split.lengths, bucket=True, seed=0)
    assert len(list(sampler.batches(0))) == len(sampler)
    with pytest.raises(ZeroDivisionError):
        split.batch(torch.arange(2))  # reading ids is what goes to the file


def test_automatic_streaming_keeps_small_files_in_memory(files):
    for name, options in TEXT + [(n, {}) for n in SEQUENCES]:
        data = gd.load(files / name, **options)
        assert isinstance(data.train, Split), name


def test_the_temporary_files_go_with_the_dataset(files):
    data = gd.load(files / "reviews.csv", stream=True, workers=0)
    folder = data.train.source.flat.values.owner.path
    assert any(folder.iterdir())
    del data
    gc.collect()
    assert not folder.exists()


def test_fit_on_a_streamed_language_model_text_matches_in_memory(files, tmp_path):
    short = tmp_path / "short.txt"
    short.write_text((files / "story.txt").read_text(encoding="utf-8")[:4000], encoding="utf-8")
    results = []
    for stream in (True, False):
        data = gd.load(short, stream=stream, workers=2, chunk=16)
        seed_everything(0)
        model = gridseq.models.create_for("gru", data.info, hidden_size=8)
        results.append(gridseq.fit(model, data, epochs=1, batch_size=16, device="cpu", progress=False, seed=0).test)
    assert results[0] == results[1]


def test_the_cli_trains_evaluates_and_predicts_on_streamed_text(files, tmp_path, capsys):
    from gridseq import cli

    run = tmp_path / "run"
    assert cli.main(["train", str(files / "reviews.csv"), "--model", "gru", "--hidden-size", "8", "--epochs", "1",
                     "--stream", "--workers", "2", "--run-dir", str(run), "--no-progress"]) == 0
    assert json.loads((run / "config.json").read_text())["data"]["options"] == {"stream": True, "workers": 2}
    capsys.readouterr()
    assert cli.main(["evaluate", str(run), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] == json.loads((run / "metrics.json").read_text())["test"]["accuracy"]
    assert cli.main(["predict", str(run), "--split", "test", "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert len(records) == len(gd.load(files / "reviews.csv").test) and {r["target"] for r in records} <= {"pos", "neg"}


# ------------------------------------------------------------------------------------------ augmentation
def test_series_augmentation_is_a_function_of_seed_epoch_and_item():
    aug = SeriesAugment()
    x = torch.randn(5, 9, 2)
    lengths = torch.tensor([9, 4, 7, 9, 2])
    x[torch.arange(9)[None, :] >= lengths[:, None]] = 0
    whole = aug.augment_batch(Batch(x, None, lengths), torch.arange(5), seed=1, epoch=2).x
    assert not torch.equal(whole, x)
    assert (whole[torch.arange(9)[None, :] >= lengths[:, None]] == 0).all()  # padding stays zero
    # another batch holding items 3 and 1, padded to its own width: the same values
    part = aug.augment_batch(Batch(x[[3, 1], :9], None, lengths[[3, 1]]), torch.tensor([3, 1]), seed=1, epoch=2).x
    assert torch.equal(part, whole[[3, 1]])
    narrow = aug.augment_batch(Batch(x[[1], :4], None, lengths[[1]]), torch.tensor([1]), seed=1, epoch=2).x
    assert torch.equal(narrow, whole[[1], :4])
    assert not torch.equal(aug.augment_batch(Batch(x, None, lengths), torch.arange(5), seed=1, epoch=3).x, whole)
    plain = SeriesAugment(jitter=0, scaling=0)(x, torch.arange(5), seed=0, epoch=0)
    assert torch.equal(plain, x)
    with pytest.raises(ConfigError, match="jitter must be a finite number >= 0"):
        SeriesAugment(jitter=-1)


def test_series_augmentation_is_registered_off_by_default_and_the_same_in_workers(files):
    data = gd.load(files / "walks.npz", stream=True, workers=0)
    assert augmentation_for(None, data.info) is None
    aug = augmentation_for(True, data.info)
    assert isinstance(aug, SeriesAugment)
    batches = gd.BatchSampler(len(data.train), 16, lengths=data.train.lengths, seed=0).batches(0)
    here = list(data.train.loader(batches, epoch=1, seed=4, augment=aug))
    data.train.workers = 2
    there = list(data.train.loader(batches, epoch=1, seed=4, augment=aug))
    memory = gd.load(files / "walks.npz", stream=False).train
    in_memory = list(memory.loader(batches, epoch=1, seed=4, augment=aug))
    for a, b, c in zip(here, there, in_memory):
        assert torch.equal(a.x, b.x) and torch.equal(a.x, c.x)
    model = gridseq.models.create_for("gru", data.info, hidden_size=8)
    result = gridseq.fit(model, data, epochs=1, batch_size=32, augment=True, device="cpu", progress=False)
    assert "accuracy" in result.test


# --------------------------------------------------------------------------------------------- errors
def test_corrupt_files_are_data_errors(files, tmp_path):
    cut = tmp_path / "cut.npz"
    cut.write_bytes((files / "walks.npz").read_bytes()[:2000])
    with pytest.raises(DataError, match="cannot read .*cut.npz"):
        gd.load(cut, stream=True)
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine text\n" * 50 + b"caf\xe9\n" + b"more\n" * 50)
    with pytest.raises(DataError, match=r"is not UTF-8: byte 0xe9 on line 51"):
        gd.load(bad, stream=True)
    tsv = tmp_path / "bad.tsv"
    tsv.write_text("a\tb\n" * 20 + "no tab here\n", encoding="utf-8")
    with pytest.raises(DataError, match="line 21: no tab"):
        gd.load(tsv, stream=True)
    wide = tmp_path / "bad.csv"
    wide.write_text("label,t0,t1\nup,1,2\ndown,3,oops\n")
    with pytest.raises(DataError, match="line 3, column 't1': expected a number, got 'oops'"):
        gd.load(wide, stream=True)
    text = tmp_path / "empty_label.csv"
    text.write_text("text,label\nhello,a\nworld,\n")
    with pytest.raises(DataError, match="line 3: empty label"):
        gd.load(text, stream=True)


def test_a_nan_inside_a_streamed_item_is_a_data_error_naming_it_from_a_worker(files, tmp_path):
    x = np.random.default_rng(0).normal(size=(200, 6)).astype(np.float32)
    x_test = x[:60].copy()
    x_test[50, 2] = np.nan  # test items are not read at load time (statistics come from training items)
    np.savez(tmp_path / "nan.npz", x=x, y=np.arange(200) % 2, x_test=x_test, y_test=np.arange(60) % 2)
    split = gd.load(tmp_path / "nan.npz", stream=True, workers=2).test
    with pytest.raises(DataError, match=r"nan.npz: item 50 \(0-based, in file order\) has NaN or Inf") as caught:
        list(split.loader(torch.arange(len(split)).split(16)))
    assert "\n" not in str(caught.value)  # the worker's own line, not its traceback
