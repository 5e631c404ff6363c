"""Train and test image transforms (SPEC section 6), built from `cfg.data`.

Both take a PIL image and return a normalised (3, height, width) float32 tensor.
"""
from __future__ import annotations

import torch
from torchvision.transforms import InterpolationMode, v2

from lwtgpf.config import DataConfig

# Random erasing as in the re-id reference code (Zhong et al.): erased area 2-40 % of the crop,
# aspect ratio 0.3..1/0.3, filled with the `mean` values on the normalised tensor.
ERASING_SCALE = (0.02, 0.4)
ERASING_RATIO = (0.3, 1 / 0.3)


def _resize(data: DataConfig) -> v2.Resize:
    return v2.Resize((data.height, data.width), interpolation=InterpolationMode.BICUBIC, antialias=True)


def _to_normalised_tensor(data: DataConfig) -> list[v2.Transform]:
    return [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(data.mean), list(data.std))]


def _color_jitter(data: DataConfig) -> list[v2.Transform]:
    """Not in the reference recipe: an option against strong colour casts between cameras."""
    if data.color_jitter <= 0:
        return []
    strength = data.color_jitter
    return [v2.ColorJitter(brightness=strength, contrast=strength, saturation=strength, hue=min(strength / 4, 0.5))]


def build_train_transform(data: DataConfig) -> v2.Compose:
    """resize (bicubic) -> flip(flip_p) -> pad(pad) + random crop back to size -> [colour jitter] ->
    tensor -> normalise -> random erasing(erasing_p)."""
    return v2.Compose(
        [
            _resize(data),
            v2.RandomHorizontalFlip(p=data.flip_p),
            v2.Pad(data.pad),
            v2.RandomCrop((data.height, data.width)),
            *_color_jitter(data),
            *_to_normalised_tensor(data),
            v2.RandomErasing(p=data.erasing_p, scale=ERASING_SCALE, ratio=ERASING_RATIO, value=list(data.mean)),
        ]
    )


def build_test_transform(data: DataConfig) -> v2.Compose:
    """resize (bicubic) -> tensor -> normalise; deterministic."""
    return v2.Compose([_resize(data), *_to_normalised_tensor(data)])
