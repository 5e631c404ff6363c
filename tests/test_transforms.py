"""Train/test transforms: output shapes, normalisation, and flip / crop / erasing active in train only."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from lwtgpf.config import DataConfig
from lwtgpf.data import build_test_transform, build_train_transform

MEAN = (0.5, 0.4, 0.3)
STD = (0.25, 0.2, 0.2)


def data_config(**changes) -> DataConfig:
    base = dict(height=32, width=16, mean=MEAN, std=STD, flip_p=0.0, pad=0, erasing_p=0.0)
    return DataConfig(**{**base, **changes})


def left_dark_image() -> Image.Image:
    """16x8 crop, left half black, right half white."""
    pixels = np.zeros((16, 8, 3), dtype=np.uint8)
    pixels[:, 4:] = 255
    return Image.fromarray(pixels)


def expected_normalised(value: float, channel: int) -> float:
    return (value - MEAN[channel]) / STD[channel]


def test_test_transform_resizes_and_normalises():
    out = build_test_transform(data_config())(left_dark_image())
    assert out.shape == (3, 32, 16) and out.dtype == torch.float32
    for c in range(3):
        assert out[c, :, 0].allclose(torch.full((32,), expected_normalised(0.0, c)), atol=1e-4)
        assert out[c, :, -1].allclose(torch.full((32,), expected_normalised(1.0, c)), atol=1e-4)


def test_test_transform_ignores_train_augmentations():
    """Even with flip/pad/erasing switched to always-on, the test transform is deterministic and unflipped."""
    cfg = data_config(flip_p=1.0, pad=4, erasing_p=1.0)
    plain = build_test_transform(data_config())(left_dark_image())
    for _ in range(3):
        assert torch.equal(build_test_transform(cfg)(left_dark_image()), plain)


def test_train_flip_is_active():
    image = left_dark_image()
    flipped = build_train_transform(data_config(flip_p=1.0))(image)
    plain = build_test_transform(data_config())(image)
    assert flipped.shape == (3, 32, 16)
    assert torch.allclose(flipped, plain.flip(-1), atol=1e-5)
    assert not torch.allclose(flipped, plain)


def test_train_erasing_fills_with_mean_values():
    torch.manual_seed(0)
    image = left_dark_image()
    plain = build_test_transform(data_config())(image)
    train = build_train_transform(data_config(erasing_p=1.0))
    for _ in range(5):
        out = train(image)
        assert out.shape == (3, 32, 16)
        erased = (out != plain).any(dim=0)  # (H, W) pixels that changed
        assert erased.any(), "random erasing with p=1 must erase a region"
        for c in range(3):
            assert torch.all(out[c][erased] == MEAN[c])
        area = erased.float().mean().item()
        assert area <= 0.4 + 1e-6


def test_train_pad_and_crop_shift_the_crop():
    torch.manual_seed(0)
    image = left_dark_image()
    train = build_train_transform(data_config(pad=4))
    outputs = [train(image) for _ in range(8)]
    assert all(o.shape == (3, 32, 16) for o in outputs)
    # the black/white edge moves with the random crop; zero padding shows up as value (0 - mean) / std
    assert len({tuple(o[0, 16].tolist()) for o in outputs}) > 1


@pytest.mark.parametrize("height, width", [(384, 128), (256, 128)])
def test_reference_sizes(height, width):
    out = build_train_transform(DataConfig(height=height, width=width))(left_dark_image())
    assert out.shape == (3, height, width)
