"""Random erasing in ImageAugment: one rectangle of noise per erased item, drawn by (seed, epoch, item), the
same from files as in memory, off by default and out of the recorded settings while off."""

import pytest
import torch
from data_helpers import photo_folder

import gridseq.datasets as gd
from gridseq.data.augment.images import ImageAugment
from gridseq.errors import ConfigError

# no crop, flip, rotation or jitter: erasing is the only change
STILL = {"crop_scale": (1, 1), "crop_ratio": (1, 1), "flip": 0.0, "rotation": 0, "brightness": 0, "contrast": 0, "saturation": 0}
MEAN, STD = (0.3, 0.5), (0.2, 0.4)


def _changed(a, b):
    """(B, H, W) bool: where any channel of a differs from b."""
    return (a != b).any(dim=1)


def test_each_erased_item_gets_one_rectangle_of_noise_within_the_area_range():
    aug = ImageAugment(mean=MEAN, std=STD, erase=1.0, erase_scale=(0.1, 0.3), **STILL)
    x = torch.zeros(16, 2, 20, 24)
    out = aug(x, torch.arange(16), seed=0, epoch=0)
    mean, std = torch.tensor(MEAN).view(1, -1, 1, 1), torch.tensor(STD).view(1, -1, 1, 1)
    raw = out * std + mean  # back to pixel units
    for k in range(16):
        where = _changed(out[k : k + 1], x[k : k + 1])[0]
        rows, cols = where.any(1).nonzero().flatten(), where.any(0).nonzero().flatten()
        h, w = len(rows), len(cols)
        assert h and w and where.sum() == h * w  # one axis-aligned rectangle, nothing else touched
        assert rows.diff().eq(1).all() and cols.diff().eq(1).all()
        assert 0.1 * 480 - 20 - 24 <= h * w <= 0.3 * 480 + 20 + 24  # the drawn share, up to rounding the sides
        patch = raw[k][:, where]
        assert patch.min() >= -1e-6 and patch.max() < 1 + 1e-6  # uniform noise in pixel units


def test_erasing_is_a_function_of_seed_epoch_and_item_and_happens_at_its_rate():
    aug = ImageAugment(mean=MEAN, std=STD, erase=0.5, **STILL)
    x = torch.rand(200, 2, 16, 16)
    whole = aug(x, torch.arange(200), seed=3, epoch=1)
    part = aug(x[[7, 150]], torch.tensor([7, 150]), seed=3, epoch=1)
    assert torch.equal(part, whole[[7, 150]])
    unerased = ImageAugment(mean=MEAN, std=STD, **STILL)(x, torch.arange(200), seed=3, epoch=1)
    erased = _changed(whole, unerased).flatten(1).any(1)
    assert 70 <= int(erased.sum()) <= 130  # p = 0.5 of 200 items
    assert not torch.equal(aug(x, torch.arange(200), seed=3, epoch=2), whole)


def test_turning_erasing_on_leaves_the_other_draws_alone_and_is_recorded_only_when_on():
    base = ImageAugment(mean=MEAN, std=STD)
    on = ImageAugment(mean=MEAN, std=STD, erase=0.25)
    items = torch.arange(32)
    assert torch.equal(base.draws(items, 0, 0), on.draws(items, 0, 0))
    assert "erase" not in base.to_json()  # runs recorded before erasing existed resume unchanged
    assert on.to_json()["erase"] == 0.25 and on.to_json()["erase_scale"] == [0.02, 0.4]


def test_files_and_memory_erase_the_same_rectangles_with_the_same_noise(tmp_path):
    data = gd.load(photo_folder(tmp_path / "photos"), image_size=(16, 16), stream=True, workers=0)
    norm = data.info.preprocessing["normalize"]
    aug = ImageAugment(mean=tuple(norm["mean"]), std=tuple(norm["std"]), erase=1.0, **STILL)
    index = torch.arange(8)
    plain = data.train.batch(index).x
    from_files = data.train.augmented_batch(index, aug, seed=1, epoch=0).x
    in_memory = aug(plain, index, seed=1, epoch=0)
    unerased = ImageAugment(mean=aug.mean, std=aug.std, **STILL)(plain, index, seed=1, epoch=0)
    where = _changed(in_memory, unerased).unsqueeze(1).expand_as(plain)
    assert where.any()
    torch.testing.assert_close(from_files[where], in_memory[where], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("bad", [{"erase": 1.5}, {"erase": True}, {"erase_scale": (0, 0.5)},
                                 {"erase_scale": (0.5, 0.2)}, {"erase_ratio": (2, 1)}])
def test_bad_erasing_settings_are_config_errors(bad):
    with pytest.raises(ConfigError, match="erase"):
        ImageAugment(mean=(0.5,), std=(1.0,), **bad)
