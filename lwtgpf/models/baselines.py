"""Baseline encoders over timm backbones (never downloaded: `pretrained=False`, weights via pretrained.py).

- ResNet-50 (O2CAP / Cluster Contrast): last stride 1, average or GeM pooling, 3 horizontal parts.
- ViT-S/16 (TMGF, TransReID-SSL): the CLS token is the global feature, patch tokens give 3 stripes;
  position embeddings are built for the input grid (checkpoints are resized to it when loaded).
Both end in the shared BN necks and return ReidFeatures; neither uses the camera ids.
"""
from __future__ import annotations

import timm
import torch
import torch.nn.functional as F
from torch import nn

from .base import BNNecks, ReidModel
from .output import ReidFeatures


class GeM(nn.Module):
    """Generalised mean pooling over horizontal bands: (mean x^p)^(1/p), p learnable (init 3)."""

    def __init__(self, p: float = 3.0, eps: float = 1e-6):
        super().__init__()
        self.p = nn.Parameter(torch.tensor(p))
        self.eps = eps

    def forward(self, fmap: torch.Tensor, bands: int) -> torch.Tensor:
        """(B, C, H, W) -> (B, bands, C)."""
        pooled = F.adaptive_avg_pool2d(fmap.clamp(min=self.eps).pow(self.p), (bands, 1)).pow(1.0 / self.p)
        return pooled.flatten(2).transpose(1, 2)


class AvgBands(nn.Module):
    """Average pooling over horizontal bands: (B, C, H, W) -> (B, bands, C)."""

    def forward(self, fmap: torch.Tensor, bands: int) -> torch.Tensor:
        return F.adaptive_avg_pool2d(fmap, (bands, 1)).flatten(2).transpose(1, 2)


class ResNet50Reid(ReidModel):
    """timm ResNet-50 with last stride 1 (feature map H/16 x W/16), global + `num_parts` stripes of 2048-d."""

    pretrained_family = "resnet50"

    def __init__(self, num_parts: int = 3, pooling: str = "avg", test_feature: str = "global",
                 flip_test: bool = False):
        super().__init__(test_feature, flip_test)
        if pooling not in ("avg", "gem"):
            raise ValueError(f"pooling must be 'avg' or 'gem', got {pooling!r}")
        self.backbone = timm.create_model("resnet50", pretrained=False, num_classes=0, global_pool="")
        last = self.backbone.layer4[0]  # stride 2 lives in the 3x3 conv and the shortcut of layer4's first block
        last.conv2.stride = (1, 1)
        last.downsample[0].stride = (1, 1)
        self.pool = GeM() if pooling == "gem" else AvgBands()
        self.num_parts = num_parts
        self.feature_dim = self.backbone.num_features
        self.necks = BNNecks(1 + num_parts, self.feature_dim)

    def set_grad_checkpointing(self, enabled: bool = True) -> None:
        self.backbone.set_grad_checkpointing(enabled)

    def forward(self, images: torch.Tensor, camids: torch.Tensor | None = None) -> ReidFeatures:
        fmap = self.backbone.forward_features(images)  # (B, 2048, H/16, W/16)
        pooled = [self.pool(fmap, 1)] + ([self.pool(fmap, self.num_parts)] if self.num_parts else [])
        return self.necks(torch.cat(pooled, dim=1))

    def backbone_targets(self, key: str) -> list[str]:
        return [f"backbone.{key}"]


class ViTSmallReid(ReidModel):
    """timm ViT-S/16 (384-d, 12 blocks, 6 heads, LayerNorm eps 1e-6) for (H, W) inputs."""

    pretrained_family = "vit_small"

    def __init__(self, img_size: tuple[int, int], num_parts: int = 3, drop_path: float = 0.1,
                 test_feature: str = "global", flip_test: bool = False):
        super().__init__(test_feature, flip_test)
        self.backbone = timm.create_model(
            "vit_small_patch16_224", pretrained=False, num_classes=0, img_size=tuple(img_size),
            drop_path_rate=drop_path, dynamic_img_size=True, dynamic_img_pad=True,
        )
        self.num_parts = num_parts
        self.feature_dim = self.backbone.num_features
        self.necks = BNNecks(1 + num_parts, self.feature_dim)

    def set_grad_checkpointing(self, enabled: bool = True) -> None:
        self.backbone.set_grad_checkpointing(enabled)

    @property
    def grid_size(self) -> tuple[int, int]:
        """Token grid of the position embedding (rows, cols)."""
        return tuple(self.backbone.patch_embed.grid_size)

    def forward(self, images: torch.Tensor, camids: torch.Tensor | None = None) -> ReidFeatures:
        tokens = self.backbone.forward_features(images)  # (B, 1 + h * w, C) after the final norm
        pooled = [tokens[:, :1]]
        if self.num_parts:
            patch = self.backbone.patch_embed.patch_size
            h, w = -(-images.shape[-2] // patch[0]), -(-images.shape[-1] // patch[1])
            grid = tokens[:, 1:].transpose(1, 2).reshape(tokens.shape[0], -1, h, w)
            pooled.append(AvgBands()(grid, self.num_parts))
        return self.necks(torch.cat(pooled, dim=1))

    def backbone_targets(self, key: str) -> list[str]:
        return [f"backbone.{key}"]
