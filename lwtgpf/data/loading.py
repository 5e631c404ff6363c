"""From records to tensors: the torch `Dataset` every loader of crops goes through."""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torchvision.transforms import v2

from lwtgpf.data.records import DatasetError, Record

# Without a transform a crop comes back as a float tensor in [0, 1], un-normalised.
_TO_TENSOR = v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True)])


def read_image(path: str) -> Image.Image:
    """The crop at `path` as an RGB PIL image; DatasetError naming the file when it cannot be read."""
    try:
        with Image.open(path) as image:
            return image.convert("RGB")  # convert() forces the full decode while the file is open
    except Image.DecompressionBombError as exc:  # PIL refuses images over 2 x MAX_IMAGE_PIXELS
        raise DatasetError(f"cannot read image {path}: far too large for a pedestrian crop ({exc})") from None
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise DatasetError(f"cannot read image {path}: {exc}") from None


class ImageDataset(torch.utils.data.Dataset):
    """Records -> `(image, pid, camid, index)`.

    `image` is `transform(PIL image)`, a (3, H, W) float tensor for the transforms of this package;
    `index` is the position in `records`, so features and pseudo labels can be put back in order.
    """

    def __init__(self, records: Sequence[Record], transform: Callable | None = None) -> None:
        self.records = list(records)
        self.transform = transform or _TO_TENSOR

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, int, int, int]:
        """`key` is an index, or `(index, seed)` from a sampler built with `with_seeds=True`: the random
        transform then runs under its own seed, so it does not depend on which rank or worker loads it."""
        index, seed = key if isinstance(key, tuple) else (key, None)
        record = self.records[index]
        image = read_image(record.path)
        if seed is None:
            return self.transform(image), record.pid, record.camid, index
        # Seed, then restore, the CPU generator alone (what fork_rng(devices=[]) + manual_seed did):
        # torch.manual_seed also seeds every accelerator backend, 0.26 ms per crop against 0.007 ms
        generator = torch.default_generator
        state = generator.get_state()
        try:
            generator.manual_seed(seed)
            return self.transform(image), record.pid, record.camid, index
        finally:
            generator.set_state(state)


def contiguous_labels(records: Sequence[Record]) -> tuple[np.ndarray, np.ndarray]:
    """Map the pids of `records` to labels 0..C-1 (in sorted pid order), e.g. for a supervised classifier.

    Returns `(labels (N,) int64, pids (C,))` with `pids[labels[i]] == records[i].pid`.
    """
    pids, labels = np.unique(np.array([r.pid for r in records], dtype=np.int64), return_inverse=True)
    return labels.astype(np.int64), pids
