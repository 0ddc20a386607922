"""Segmentation models: `unet` and `fcn8s`, the two dense-prediction shapes of the FCN family.

Both are `gridseq.models.fcn.FCN` with `dims=2, head="dense"`: per-pixel class scores (B, K, H, W) at
the input's own H x W for any input size (odd sizes included — pooling rounds up and every upsampling
step crops back to the exact size of the map it joins):

    unet    encoder-decoder (Ronneberger et al. 2015): each decoder stage upsamples (transposed conv),
            concatenates the encoder map of the same resolution and applies two 3x3 conv blocks.
            Default channels (32, 64, 128): three stages, the deepest at 1/4 resolution.
    fcn8s   FCN-8s style skips (Long et al. 2015): a 1x1 conv scores every encoder stage, and the
            coarse scores are upsampled (transposed conv) and summed with the finer ones, stage by
            stage. Default channels (32, 64, 128, 256): four stages, the deepest at 1/8 resolution.

`fcn` on an image dataset whose task is "segment" builds the same dense network as `unet`; these names
only fix the variant and its defaults. Any `FCNConfig` field can be overridden (`--model.channels=[16,32,64]`).

    >>> import torch
    >>> from gridseq import models
    >>> m = models.create("unet", in_channels=3, num_classes=4, channels=(8, 16, 32))
    >>> m(torch.zeros(2, 3, 97, 131)).shape
    torch.Size([2, 4, 97, 131])
    >>> models.create("fcn8s", in_channels=3, num_classes=4)(torch.zeros(1, 3, 33, 17)).shape
    torch.Size([1, 4, 33, 17])
"""

from __future__ import annotations

from gridseq.models import registry
from gridseq.models.fcn import FCN


def _from_info(info) -> dict:
    # images only (kinds=("image",)); a classify dataset gets a clear topology error from the task
    return {"in_channels": info.input_shape[0], "num_classes": info.num_classes}


registry.register(
    "unet", FCN,
    description="U-Net encoder-decoder for segmentation: per-pixel classes at any image size",
    kinds=("image",), defaults={"dims": 2, "head": "dense", "variant": "unet"}, from_info=_from_info,
)
registry.register(
    "fcn8s", FCN,
    description="FCN-8s-style segmentation: per-stage 1x1 scores upsampled and summed, any image size",
    kinds=("image",), defaults={"dims": 2, "head": "dense", "variant": "skip", "channels": (32, 64, 128, 256)},
    from_info=_from_info,
)
