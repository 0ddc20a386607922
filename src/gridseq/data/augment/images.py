"""Image augmentation on the fly, seeded by (seed, epoch, item): random resized crop, horizontal flip, small
rotation, colour jitter and random erasing, applied to a whole batch at once.

Every item's random draws come from `numpy.random.default_rng([seed, epoch, item])`, never from a
worker's or the process's global generator, so the same item in the same epoch is augmented the same way
whichever process decodes it and however many workers there are — a resumed run sees the same batches.

The geometry of all items is one `affine_grid` + `grid_sample` call (crop, scale, flip and rotation
compose into one 2x3 matrix per item, so the image is resampled once); the colour jitter works in raw
pixel units ([0, 1]) and the batch comes back normalised as it went in. Random erasing (off unless
`erase` > 0) then fills one rectangle of an item with uniform noise, as Zhong et al. 2020 ("Random
Erasing Data Augmentation", AAAI) do: the rectangle's area share and aspect ratio are drawn from
`erase_scale` and `erase_ratio`, retried up to 10 times until it fits, from a generator of its own,
`numpy.random.default_rng([seed, epoch, item, 7])`, so turning it on leaves the other draws unchanged.
A translation (off unless `translate` > 0) shifts each item by up to that share of its side in x and y, the
padded random crop of the CIFAR and Fashion-MNIST recipes (`translate=4/28`: ±4 pixels of 28), drawn from
`numpy.random.default_rng([seed, epoch, item, 11])` and rounded to whole pixels of the batch's size, so an
image that is only shifted is not resampled between pixels; the border is reflected.

    >>> import torch
    >>> aug = ImageAugment(mean=(0.5,), std=(0.25,))
    >>> x = torch.zeros(4, 1, 32, 32)
    >>> y1 = aug(x, torch.arange(4), seed=0, epoch=0)
    >>> bool(torch.equal(y1, aug(x, torch.arange(4), seed=0, epoch=0))), tuple(y1.shape)
    (True, (4, 1, 32, 32))
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from gridseq.data.augment import register
from gridseq.errors import ConfigError


@dataclass(frozen=True)
class ImageAugment:
    """The augmentation policy for images (B, C, H, W), normalised with per-channel `mean` and `std`.

    Args:
        mean, std: the per-channel statistics the batches are normalised with (the dataset's
            `preprocessing["normalize"]`); colour jitter is applied in raw pixel units.
        crop_scale: the random resized crop keeps a share of the image's area drawn from this range.
            Default: (0.5, 1.0) — milder than ImageNet's (0.08, 1.0), which suits small photo sets.
        crop_ratio: the crop's aspect ratio (W/H) is drawn log-uniformly from this range. Default: (3/4, 4/3).
        flip: probability of a horizontal flip. Default: 0.5.
        rotation: rotation angle drawn from [-rotation, rotation] degrees. Default: 10.
        brightness, contrast, saturation: colour jitter factors drawn from [1 - j, 1 + j] (saturation only
            for 3 channels). Default: 0.2 each.
        erase: probability of random erasing: one rectangle of the item filled with uniform noise in
            pixel units. Default: 0 (off).
        erase_scale: the erased rectangle's share of the image's area is drawn from this range.
            Default: (0.02, 0.4), the paper's.
        erase_ratio: its aspect ratio (H/W) is drawn log-uniformly from this range. Default: (0.3, 3.3).
        translate: the largest shift, as a share of the side, in each of x and y (each drawn uniformly
            from [-translate, translate]), in [0, 0.5]. Default: 0 (off).
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]
    crop_scale: tuple[float, float] = (0.5, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip: float = 0.5
    rotation: float = 10.0
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    erase: float = 0.0
    erase_scale: tuple[float, float] = (0.02, 0.4)
    erase_ratio: tuple[float, float] = (0.3, 3.3)
    translate: float = 0.0

    def __post_init__(self) -> None:
        for name in ("crop_scale", "erase_scale"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi <= 1:
                raise ConfigError(f"{name} must be (low, high) with 0 < low <= high <= 1, got {getattr(self, name)!r}.")
        for name in ("crop_ratio", "erase_ratio"):
            if not 0 < getattr(self, name)[0] <= getattr(self, name)[1]:
                raise ConfigError(f"{name} must be (low, high) with 0 < low <= high, got {getattr(self, name)!r}.")
        for name in ("flip", "brightness", "contrast", "saturation", "erase"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise ConfigError(f"{name} must be a number in [0, 1], got {value!r}.")
        if isinstance(self.translate, bool) or not isinstance(self.translate, (int, float)) or not 0 <= self.translate <= 0.5:
            raise ConfigError(f"translate must be a share of the side in [0, 0.5] (e.g. 4/28 for 4 pixels of 28), got {self.translate!r}.")
        if isinstance(self.rotation, bool) or not isinstance(self.rotation, (int, float)) or not 0 <= self.rotation <= 180:
            raise ConfigError(f"rotation must be a number of degrees in [0, 180], got {self.rotation!r}.")
        if len(self.mean) != len(self.std):
            raise ConfigError(f"mean and std need one entry per channel, got {len(self.mean)} and {len(self.std)}.")

    @classmethod
    def for_record(cls, record: dict[str, Any], **overrides) -> ImageAugment:
        """The default policy for images prepared by `record` (a dataset's `info.preprocessing`)."""
        norm = record.get("normalize") or {}
        channels = record.get("image", {}).get("channels", 1)
        mean = tuple(norm.get("mean", [0.0] * channels))
        std = tuple(norm.get("std", [1.0] * channels))
        return cls(mean=mean, std=std, **overrides)

    def to_json(self) -> dict[str, Any]:
        # without erasing or translation, their settings are left out: a run recorded before they existed resumes unchanged
        skip = ("mean", "std") + (("erase", "erase_scale", "erase_ratio") if not self.erase else ()) + (("translate",) if not self.translate else ())
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.__dict__.items() if k not in skip}

    def draws(self, items: Tensor, seed: int, epoch: int) -> Tensor:
        """(B, 11) float32: each item's crop w, h (shares of the side), centre x, y (in [-1, 1]), flip sign,
        angle (radians), brightness, contrast and saturation factors, from `default_rng([seed, epoch, item])`,
        then its shift in x and y (shares of the side; zero unless `translate`)."""
        return torch.from_numpy(np.stack([self._draw(int(i), seed, epoch) for i in items.tolist()])).float()

    def _draw(self, item: int, seed: int, epoch: int) -> np.ndarray:
        rng = np.random.default_rng([seed, epoch, item])
        area = rng.uniform(*self.crop_scale)
        ratio = math.exp(rng.uniform(math.log(self.crop_ratio[0]), math.log(self.crop_ratio[1])))
        w, h = min(1.0, math.sqrt(area * ratio)), min(1.0, math.sqrt(area / ratio))
        cx, cy = rng.uniform(-(1 - w), 1 - w), rng.uniform(-(1 - h), 1 - h)
        sign = -1.0 if rng.random() < self.flip else 1.0
        angle = math.radians(rng.uniform(-self.rotation, self.rotation))
        jitter = rng.uniform(-1, 1, size=3) * (self.brightness, self.contrast, self.saturation) + 1
        shift = np.random.default_rng([seed, epoch, item, 11]).uniform(-1, 1, size=2) * self.translate if self.translate else (0.0, 0.0)
        return np.array([w, h, cx, cy, sign, angle, *jitter, *shift], dtype=np.float64)

    @staticmethod
    def _matrix(d: Tensor) -> Tensor:
        """(B, 2, 3): output point (u, v) in [-1, 1]^2 -> input point centre + shift + R(angle) @ diag(sign * w, h) @ (u, v)."""
        w, h, cx, cy, sign, angle = d[:, :6].unbind(1)
        if d.shape[1] > 9:  # the shift, a share of the side: 2x that in [-1, 1] coordinates
            cx, cy = cx + 2 * d[:, 9], cy + 2 * d[:, 10]
        cos, sin = torch.cos(angle), torch.sin(angle)
        return torch.stack([
            torch.stack([cos * w * sign, -sin * h, cx], 1),
            torch.stack([sin * w * sign, cos * h, cy], 1),
        ], 1)

    def pil_affine(self, d: Tensor, in_size: tuple[int, int], out_size: tuple[int, int]) -> tuple[float, ...]:
        """One item's geometry (a row of `draws`) as Pillow's `Image.transform(out_size, AFFINE, data)`
        coefficients on an image of `in_size` (W, H): crop, scale, flip, rotation and the resize to
        `out_size` (W, H) in one resampling of the decoded file."""
        (m00, m01, cx), (m10, m11, cy) = self._matrix(d[None].double())[0].tolist()
        (w0, h0), (w, h) = in_size, out_size
        return (w0 * m00 / w, w0 * m01 / h, w0 / 2 * (1 + cx - m00 - m01),
                h0 * m10 / w, h0 * m11 / h, h0 / 2 * (1 + cy - m10 - m11))

    def geometry(self, x: Tensor, d: Tensor) -> Tensor:
        """The crops, flips, rotations and shifts of `d` applied to images x (B, C, H, W) already at their size
        (the shifts rounded to whole pixels)."""
        if self.translate:
            d = d.clone()
            d[:, 9] = torch.round(d[:, 9] * x.shape[3]) / x.shape[3]
            d[:, 10] = torch.round(d[:, 10] * x.shape[2]) / x.shape[2]
        grid = F.affine_grid(self._matrix(d), list(x.shape), align_corners=False)
        return F.grid_sample(x, grid.to(x.dtype), mode="bilinear", padding_mode="reflection", align_corners=False)

    def colour(self, x: Tensor, d: Tensor, *, normalised: bool = True) -> Tensor:
        """The brightness, contrast and saturation factors of `d` applied to images x (B, C, H, W): normalised
        ones (the batch comes back normalised), or raw pixels in [0, 1] with `normalised=False`.

        Brightness b scales the pixels, contrast c pulls them towards the image's mean grey m, saturation s
        towards each pixel's grey g; composed, that is one affine map per pixel,
        b·c·(s·x + (1 - s)·g) + b·(1 - c)·m, clamped to [0, 1] — computed as such, in a few passes."""
        bright, contrast, sat = (d[:, k].to(x.dtype).view(-1, 1, 1, 1) for k in (6, 7, 8))
        mean = torch.tensor(self.mean, dtype=x.dtype).view(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype).view(1, -1, 1, 1)
        raw = torch.addcmul(mean, x, std) if normalised else x  # (B, C, H, W) in pixel units
        gray = raw.mean(1, keepdim=True)  # (B, 1, H, W)
        offset = (bright * (1 - contrast)) * gray.mean((2, 3), keepdim=True)  # b·(1 - c)·m, (B, 1, 1, 1)
        if raw.shape[1] == 3:
            out = torch.addcmul(torch.addcmul(offset, gray, bright * contrast * (1 - sat)), raw, bright * contrast * sat)
        else:
            out = torch.addcmul(offset, raw, bright * contrast)
        out = out.clamp_(0, 1)
        return out.sub_(mean).div_(std) if normalised else out

    def erase_(self, x: Tensor, items: Tensor, *, seed: int, epoch: int, normalised: bool = True) -> Tensor:
        """Random erasing, in place, on images x (B, C, H, W) — normalised ones, or raw pixels in [0, 1] with
        `normalised=False`: with probability `erase` one rectangle of an item becomes uniform noise in [0, 1)
        pixel units. Returns x."""
        if not self.erase:
            return x
        _, channels, height, width = x.shape
        mean = torch.tensor(self.mean, dtype=x.dtype).view(-1, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype).view(-1, 1, 1)
        log_ratio = (math.log(self.erase_ratio[0]), math.log(self.erase_ratio[1]))
        for k, item in enumerate(items.tolist()):
            rng = np.random.default_rng([seed, epoch, int(item), 7])
            if rng.random() >= self.erase:
                continue
            for _ in range(10):  # a rectangle that does not fit is drawn again
                area = rng.uniform(*self.erase_scale) * height * width
                ratio = math.exp(rng.uniform(*log_ratio))
                h, w = round(math.sqrt(area * ratio)), round(math.sqrt(area / ratio))
                if h < height and w < width:
                    top, left = rng.integers(0, height - h + 1), rng.integers(0, width - w + 1)
                    noise = torch.from_numpy(rng.random((channels, h, w))).to(x.dtype)
                    x[k, :, top : top + h, left : left + w] = (noise - mean) / std if normalised else noise
                    break
        return x

    def __call__(self, x: Tensor, items: Tensor, *, seed: int, epoch: int) -> Tensor:
        """Augment a normalised batch x (B, C, H, W); `items` (B,) are the items' indices in their split."""
        if x.shape[0] == 0:
            return x
        d = self.draws(items, seed, epoch)
        return self.erase_(self.colour(self.geometry(x, d), d), items, seed=seed, epoch=epoch)


def _classified_images(info) -> bool:
    record = info.preprocessing or {}
    return info.kind == "image" and record.get("layout") == "image" and info.targets.item_class


# off by default, for photo folders too: on 2,000 photos (96x96, 3 epochs) it kept a resnet at chance on
# validation (0.54) where the same run without it reached 0.99 (docs/datasets.md, "Augmentation"); on with
# fit(augment=True) / --augment, for long runs that overfit
register(ImageAugment, _classified_images)

