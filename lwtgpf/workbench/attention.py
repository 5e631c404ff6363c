"""A crop as the model sees it and the attention maps of every window-attention block (LewinViT).

`crop_attention` runs one forward pass with attention capture (`forward_with_attention` of the model)
and returns plain arrays for the attention view; `attention_blocks` lists the (stage, block) pairs a
model has. No Jupyter, no plotting.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from lwtgpf.config import Config
from lwtgpf.data import Record, build_test_transform, read_image
from lwtgpf.models.lewinvit import AttentionMap

from .crops import load_crop


@dataclass(frozen=True)
class CropAttention:
    """image: (H, W, 3) uint8, the crop resized to the model's input size (cfg.data.height x width);
    maps: one AttentionMap per (stage, block), batch of 1, in `blocks` order."""

    record: Record
    image: np.ndarray
    blocks: tuple[tuple[int, int], ...]
    maps: tuple[AttentionMap, ...]

    def map(self, stage: int, block: int) -> AttentionMap:
        if (stage, block) not in self.blocks:
            raise ValueError(f"no block ({stage}, {block}); this model has {list(self.blocks)}")
        return self.maps[self.blocks.index((stage, block))]


def attention_blocks(model: torch.nn.Module, backbone: str) -> tuple[tuple[int, int], ...]:
    """Every (stage, block) with window attention; ValueError for models without it."""
    trunk = getattr(model, "trunk", model)
    shape = getattr(trunk, "shape", None)
    if not hasattr(model, "forward_with_attention") or shape is None:
        raise ValueError(f"model.backbone {backbone!r} has no window attention to show; the attention view "
                         "needs a LewinViT backbone (lewinvit_tiny, lewinvit_t, ...)")
    return tuple((s, b) for s, depth in enumerate(shape.depths) for b in range(depth))


@torch.no_grad()
def crop_attention(model: torch.nn.Module, record: Record, cfg: Config, device: torch.device,
                   branch: int = 0) -> CropAttention:
    """The attention maps of every block for one crop (the last stage from LWTGPF branch `branch`)."""
    blocks = attention_blocks(model, cfg.model.backbone)
    image = build_test_transform(cfg.data)(read_image(record.path)).unsqueeze(0).to(device)
    camids = torch.tensor([record.camid], device=device)
    kwargs = {"branch": branch} if hasattr(model, "branches") else {}
    was_training = model.training
    model.eval()
    try:
        _, maps = model.forward_with_attention(image, camids, blocks, **kwargs)
    finally:
        model.train(was_training)
    maps = tuple(replace(m, weights=m.weights.float().cpu()) for m in maps)
    return CropAttention(record, load_crop(record.path, (cfg.data.height, cfg.data.width)), blocks, maps)
