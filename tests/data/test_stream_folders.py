"""Streamed image folders: the same splits and batches as in memory, decoded by workers, augmented by
(seed, epoch, item) whatever process does it."""

import json
import os

import numpy as np
import pytest
import torch
from data_helpers import photo_folder

import gridseq
import gridseq.datasets as gd
from gridseq.data.augment import augmentation_for
from gridseq.data.augment.images import ImageAugment
from gridseq.data.stream import WORKER_NICE, StreamSplit, should_stream
from gridseq.errors import ConfigError, DataError


@pytest.fixture
def folder(tmp_path):
    return photo_folder(tmp_path / "photos")


def test_streamed_folder_has_the_in_memory_splits_and_batches(folder):
    memory = gd.load(folder, seed=3, image_size=(16, 16), stream=False)
    streamed = gd.load(folder, seed=3, image_size=(16, 16), stream=True, workers=0)
    assert isinstance(streamed.train, StreamSplit) and not isinstance(memory.train, StreamSplit)
    assert streamed.info == memory.info  # fewer than 512 training images: the same statistics
    for name, split in streamed.splits().items():
        assert torch.equal(split.y, memory.splits()[name].y)
        index = torch.arange(len(split))
        assert torch.equal(split.batch(index).x, memory.splits()[name].x)


def test_a_streamed_split_holds_no_x_tensor_and_says_how_to_get_batches(folder):
    split = gd.load(folder, image_size=(16, 16), stream=True).train
    with pytest.raises(DataError, match=r"streams its \d+ items from disk .* split.batch\(index\)"):
        split.x


def test_workers_decode_the_same_augmented_batches_as_this_process(folder):
    data = gd.load(folder, image_size=(16, 16), stream=True, workers=0)
    aug = ImageAugment.for_record(data.info.preprocessing)
    batches = gd.BatchSampler(len(data.train), 8, seed=1).batches(0)
    here = list(data.train.loader(batches, epoch=2, seed=5, augment=aug))
    data.train.workers = 2
    there = list(data.train.loader(batches, epoch=2, seed=5, augment=aug))
    assert len(here) == len(there) == len(batches)
    for a, b, index in zip(here, there, batches):
        assert torch.equal(a.x, b.x) and torch.equal(a.y, data.train.y[index])
    plain = [data.train.batch(index) for index in batches]
    assert not torch.equal(here[0].x, plain[0].x)  # augmented
    other_epoch = list(data.train.loader(batches[:1], epoch=3, seed=5, augment=aug))
    assert not torch.equal(other_epoch[0].x, here[0].x)  # a new draw every epoch


def test_augmentation_is_a_function_of_seed_epoch_and_item_not_of_the_batch():
    aug = ImageAugment(mean=(0.5, 0.5, 0.5), std=(0.2, 0.2, 0.2))
    x = torch.rand(6, 3, 12, 12)
    whole = aug(x, torch.arange(6), seed=0, epoch=1)
    reordered = aug(x[[4, 1]], torch.tensor([4, 1]), seed=0, epoch=1)
    assert torch.allclose(reordered, whole[[4, 1]], atol=1e-6)
    assert not torch.allclose(aug(x, torch.arange(6), seed=1, epoch=1), whole)
    # geometry only (no jitter, no rotation, full crop, always flipped): an exact mirror image
    flip = ImageAugment(mean=(0.5,) * 3, std=(0.2,) * 3, crop_scale=(1, 1), crop_ratio=(1, 1), flip=1.0,
                        rotation=0, brightness=0, contrast=0, saturation=0)
    assert torch.allclose(flip(x, torch.arange(6), seed=0, epoch=0), x.flip(3), atol=1e-5)


def test_the_file_path_crops_flips_and_rotates_like_the_in_memory_path(folder):
    data = gd.load(folder, image_size=(16, 16), stream=True, workers=0)
    aug = ImageAugment.for_record(data.info.preprocessing)
    index = torch.arange(8)
    from_files = data.train.augmented_batch(index, aug, seed=0, epoch=0).x
    in_memory = aug(data.train.batch(index).x, index, seed=0, epoch=0)
    unaugmented = data.train.batch(index).x
    # one is resampled from the file, the other from the resized image: close, and far closer than no augmentation
    assert (from_files - in_memory).abs().mean() < 0.5 * (in_memory - unaugmented).abs().mean()


@pytest.mark.parametrize("bad", [dict(crop_scale=(0, 1)), dict(crop_ratio=(2, 1)), dict(flip=1.5),
                                 dict(mean=(0.5,), std=(1, 1))])
def test_bad_augmentation_settings_are_config_errors(bad):
    with pytest.raises(ConfigError):
        ImageAugment(**{"mean": (0.5,), "std": (1.0,), **bad})


def test_augmentation_settings_turn_it_on_with_those_settings_and_are_recorded(folder, tmp_path):
    data = gd.load(folder, image_size=(16, 16), stream=False)
    policy = augmentation_for({"rotation": 0, "crop_scale": [0.8, 1.0], "brightness": 0}, data.info)
    assert isinstance(policy, ImageAugment) and policy.rotation == 0 and policy.crop_scale == (0.8, 1.0)
    assert policy.flip == 0.5 and policy.mean == tuple(data.info.preprocessing["normalize"]["mean"])  # the rest as before
    with pytest.raises(ConfigError, match="ImageAugment has no setting 'rotate'; its settings are crop_scale, "):
        augmentation_for({"rotate": 5}, data.info)
    with pytest.raises(ConfigError, match="flip must be a number in"):
        augmentation_for({"flip": 2}, data.info)
    with pytest.raises(ConfigError, match="augment must be None .* or a dict of the policy's settings"):
        gridseq.fit(gridseq.models.create_for("cnn", data.info), data, epochs=1, augment="yes", progress=False)
    model = gridseq.models.create_for("cnn", data.info, channels=(8, 16), hidden=16)
    settings = {"rotation": 0, "flip": 1.0}
    gridseq.fit(model, data, epochs=1, batch_size=8, progress=False, run_dir=tmp_path / "run", augment=settings)
    recorded = json.loads((tmp_path / "run" / "config.json").read_text())["train"]["augment"]
    assert recorded == {**ImageAugment.for_record(data.info.preprocessing).to_json(), **settings}
    with pytest.raises(ConfigError, match="augment"):  # a resumed run must augment as the original did
        gridseq.fit(model, data, epochs=2, batch_size=8, progress=False, run_dir=tmp_path / "run", resume=True,
                    augment={"rotation": 5})


def test_automatic_streaming_follows_the_decoded_size():
    assert not should_stream(100 << 20, None)
    assert should_stream(300 << 20, None)  # over 256 MiB whatever the memory
    assert should_stream(1, True) and not should_stream(10 << 30, False)
    with pytest.raises(ConfigError, match="stream must be True, False or None"):
        should_stream(1, "yes")


def test_a_corrupt_file_in_a_streamed_folder_is_a_data_error_naming_it(folder):
    split = gd.load(folder, image_size=(16, 16), stream=True, workers=2).test  # test images are not read at load time
    bad = split.source.paths[1]
    bad.write_bytes(bad.read_bytes()[:-300])  # truncated: the header reads, the pixels do not
    with pytest.raises(DataError, match=f"cannot read image .*{bad.name}") as caught:
        list(split.loader(torch.arange(len(split)).split(4)))
    assert "\n" not in str(caught.value)  # the worker's own line, not its traceback


def test_fit_trains_on_a_streamed_folder_augmenting_only_when_asked(folder, tmp_path):
    torch.manual_seed(0)
    data = gd.load(folder, image_size=(16, 16), stream=True, workers=2)
    assert augmentation_for(None, data.info) is None  # off by default (docs/datasets.md: the evidence)
    model = gridseq.models.create_for("cnn", data.info, channels=(8, 16), hidden=16)
    result = gridseq.fit(model, data, epochs=2, batch_size=8, device="cpu", progress=False, run_dir=tmp_path / "run",
                         augment=True)
    assert len(result.history) == 2 and set(result.test) >= {"accuracy", "loss"}
    config = (tmp_path / "run" / "config.json").read_text()
    assert '"augment": true' in config
    with pytest.raises(ConfigError, match="augment=True: gridseq has no augmentation for dataset"):
        gridseq.fit(model, gd.load(folder, image_size=(16, 16), view="sequence"), epochs=1, augment=True, progress=False)


def test_the_cache_keeps_decoded_images_and_is_never_stale(folder, tmp_path, monkeypatch):
    from gridseq.data.readers import image_folder

    cache = tmp_path / "cache"
    data = gd.load(folder, image_size=(16, 16), cache=cache, workers=0)
    assert isinstance(data.train, StreamSplit)  # a cache streams the folder
    index = torch.arange(len(data.train))
    first = data.train.batch(index).x
    reads = []
    monkeypatch.setattr(image_folder, "read_image", lambda *a, **k: reads.append(a) or 1 / 0)
    assert torch.equal(data.train.batch(index).x, first) and not reads  # bytes, no decoding
    monkeypatch.undo()
    # the cached images are the decoded ones to 8 bits
    plain = gd.load(folder, image_size=(16, 16), stream=True, workers=0).train.batch(index).x
    std = torch.tensor(data.info.preprocessing["normalize"]["std"]).view(1, -1, 1, 1)
    assert ((first - plain).abs() * std).max() <= 0.5 / 255 + 1e-6
    # a changed file changes the key: a new cache entry, not the old bytes
    before = {p.name for p in cache.iterdir()}
    victim = data.train.source.source.paths[0]
    victim.write_bytes(victim.read_bytes())  # same bytes, new mtime
    gd.load(folder, image_size=(16, 16), cache=cache, workers=0)
    assert {p.name for p in cache.iterdir()} - before
    with pytest.raises(ConfigError, match="does nothing with stream=False"):
        gd.load(folder, image_size=(16, 16), cache=cache, stream=False)


def test_the_cli_trains_evaluates_and_predicts_on_a_streamed_folder(folder, tmp_path, capsys):
    from gridseq import cli

    run = tmp_path / "run"
    args = ["train", str(folder), "--model", "cnn", "--epochs", "1", "--image-size", "16x16", "--stream",
            "--workers", "2", "--no-augment", "--model.channels=[8]", "--run-dir", str(run), "--no-progress"]
    assert cli.main(args) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["data"]["options"] == {"image_size": [16, 16], "stream": True, "workers": 2}
    assert config["train"]["augment"] is False
    capsys.readouterr()
    assert cli.main(["evaluate", str(run), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] == json.loads((run / "metrics.json").read_text())["test"]["accuracy"]
    assert cli.main(["predict", str(run), "--split", "test", "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert len(records) == 10 and {r["target"] for r in records} == {"disc", "square"}
    assert cli.main(["train", str(folder), "--model", "cnn", "--workers", "-1"]) == 2
    assert "expected an int >= 0" in capsys.readouterr().err


def test_a_worker_decoding_and_augmenting_batches_does_not_grow(tmp_path):
    psutil = pytest.importorskip("psutil")
    folder = photo_folder(tmp_path / "big", n_per_class=40, size=(160, 160))
    data = gd.load(folder, image_size=(128, 128), stream=True, workers=1)
    aug = ImageAugment.for_record(data.info.preprocessing)
    g = torch.Generator().manual_seed(0)
    batches = [torch.randint(0, len(data.train), (64,), generator=g) for _ in range(16)]  # 12.6 MB each
    me, uss = psutil.Process(), []
    for k, _ in enumerate(data.train.loader(batches, augment=aug)):
        if k in (3, len(batches) - 1):
            uss.append(sum(w.memory_full_info().uss for w in me.children()))
    # with glibc's dynamic mmap threshold the worker's heap grew by about a batch per batch (~150 MB here)
    assert uss[1] - uss[0] < 48 << 20


class _Niceness:
    """Item i is the niceness of the process that decodes it."""

    def __len__(self):
        return 4

    def __getitem__(self, i):
        return np.full((1,), os.nice(0), dtype=np.float32)


def test_decoder_workers_run_at_a_lower_priority_than_training():
    split = StreamSplit(_Niceness(), torch.zeros(4, dtype=torch.int64), workers=2)
    batches = list(split.loader([torch.tensor([0, 1]), torch.tensor([2, 3])]))
    expected = min(19, os.nice(0) + WORKER_NICE)
    assert [b.x.flatten().tolist() for b in batches] == [[expected] * 2] * 2
    assert os.nice(0) < expected  # this process keeps its own priority
    in_process = StreamSplit(_Niceness(), torch.zeros(4, dtype=torch.int64), workers=0)
    assert next(iter(in_process.loader([torch.tensor([0, 1])]))).x.flatten().tolist() == [os.nice(0)] * 2
