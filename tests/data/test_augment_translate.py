"""Translation in ImageAugment: whole-pixel shifts of up to `translate` of the side, drawn by (seed, epoch,
item), off by default, out of the recorded settings while off, and leaving the other draws alone."""

import pytest
import torch

from gridseq.data.augment.images import ImageAugment
from gridseq.errors import ConfigError

STILL = {"crop_scale": (1, 1), "crop_ratio": (1, 1), "flip": 0.0, "rotation": 0, "brightness": 0, "contrast": 0, "saturation": 0}


def _shift_of(out, x, most):
    """The (dy, dx) for which out is x shifted by whole pixels (compared away from the reflected border)."""
    h, w = x.shape[-2:]
    for dy in range(-most, most + 1):
        for dx in range(-most, most + 1):
            if torch.allclose(out[..., most : h - most, most : w - most], x[..., most + dy : h - most + dy, most + dx : w - most + dx],
                              atol=1e-5):
                return dy, dx
    return None


def test_each_item_is_shifted_by_whole_pixels_within_the_range():
    aug = ImageAugment(mean=(0.0,), std=(1.0,), translate=4 / 28, **STILL)
    x = torch.rand(24, 1, 28, 28)
    out = aug(x, torch.arange(24), seed=0, epoch=0)
    shifts = [_shift_of(out[k], x[k], 4) for k in range(24)]
    assert None not in shifts  # a whole-pixel shift: no resampling between pixels (float rounding aside)
    assert len(set(shifts)) > 8 and any(dy and dx for dy, dx in shifts)  # varied, in both directions
    assert torch.equal(aug(x[[3, 17]], torch.tensor([3, 17]), seed=0, epoch=0), out[[3, 17]])  # by item, not batch
    assert not torch.equal(aug(x, torch.arange(24), seed=0, epoch=1), out)


def test_translation_is_off_by_default_recorded_only_when_on_and_leaves_the_other_draws_alone():
    base, on = ImageAugment(mean=(0.5,), std=(0.2,)), ImageAugment(mean=(0.5,), std=(0.2,), translate=0.1)
    items = torch.arange(16)
    a, b = base.draws(items, 2, 3), on.draws(items, 2, 3)
    assert torch.equal(a[:, :9], b[:, :9]) and not a[:, 9:].any() and (b[:, 9:].abs() <= 0.1).all() and b[:, 9:].any()
    assert "translate" not in base.to_json() and on.to_json()["translate"] == 0.1
    x = torch.rand(4, 1, 12, 12)
    still = ImageAugment(mean=(0.0,), std=(1.0,), **STILL)
    torch.testing.assert_close(still(x, torch.arange(4), seed=0, epoch=0), x, atol=1e-5, rtol=0)  # unchanged without a shift


@pytest.mark.parametrize("bad", [0.6, -0.1, True, "4px"])
def test_bad_translate_is_a_config_error(bad):
    with pytest.raises(ConfigError, match="translate"):
        ImageAugment(mean=(0.5,), std=(1.0,), translate=bad)
