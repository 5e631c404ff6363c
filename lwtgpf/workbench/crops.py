"""Crop pixels for the views, decoded once (an LRU cache shared by every view of a session)."""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from lwtgpf.data import read_image


@lru_cache(maxsize=4096)
def load_crop(path: str, size: tuple[int, int] | None = None) -> np.ndarray:
    """(H, W, 3) uint8 pixels of the crop at `path`, resized to size = (height, width) when given;
    read-only (shared by the cache)."""
    image = read_image(path)
    if size is not None:
        image = image.resize((size[1], size[0]))
    array = np.asarray(image, dtype=np.uint8)
    array.setflags(write=False)
    return array
