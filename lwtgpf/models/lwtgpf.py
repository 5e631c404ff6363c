"""The LWTGPF encoder of SPEC section 3: a shared LewinViT trunk and two copies of its last stage.

images -> trunk (patch embed + SIE, stages 0..n-2 with their merges) -> tokens (B, h, w, C)
       -> branch b1 (last stage) -> token mean + 2 stripes
       -> branch b2 (a deep copy)  -> token mean + 3 stripes
global = mean of the two token means; parts = [b1 top, b1 bottom, b2 top, b2 mid, b2 bottom];
each of the 6 features -> BN neck (frozen zero bias) -> L2 normalisation.
"""
from __future__ import annotations

import copy
import re
from typing import Sequence

import torch
from torch import nn

from .base import BNNecks, ReidModel, stripe_pool
from .lewinvit import AttentionMap, LewinViT, capture_attention
from .output import ReidFeatures


class LWTGPF(ReidModel):
    """Dual-branch global/part encoder over a LewinViT.

    The backbone's last stage is MOVED into branch b1 (and deep-copied into b2), so no parameter is
    left unused; `trunk` is the backbone without it. Pretrained last-stage weights go into both branches
    (`backbone_targets`).
    """

    pretrained_family = "swin"

    def __init__(self, backbone: LewinViT, stripes: Sequence[int] = (2, 3), test_feature: str = "global",
                 flip_test: bool = False):
        super().__init__(test_feature, flip_test)
        if len(stripes) != 2 or min(stripes) < 1:
            raise ValueError(f"stripes needs one positive count per branch (b1, b2), got {tuple(stripes)}")
        stages = list(backbone.stages)
        self.last_stage = len(stages) - 1
        backbone.stages = nn.ModuleList(stages[:-1])
        self.trunk = backbone
        self.branches = nn.ModuleList([stages[-1], copy.deepcopy(stages[-1])])
        self.stripes = tuple(stripes)
        self.num_parts = sum(self.stripes)
        self.feature_dim = backbone.shape.out_dim
        self.necks = BNNecks(1 + self.num_parts, self.feature_dim)

    def set_grad_checkpointing(self, enabled: bool = True) -> None:
        self.trunk.set_grad_checkpointing(enabled)
        for branch in self.branches:
            branch.grad_checkpointing = enabled

    def pooled(self, images: torch.Tensor, camids: torch.Tensor | None = None) -> torch.Tensor:
        """(B, 3, H, W), (B,) -> (B, 1 + num_parts, C) pooled features before the necks."""
        tokens = self.trunk(images, camids)  # (B, h, w, C) after stage n-2's merge
        means, parts = [], []
        for branch, stripes in zip(self.branches, self.stripes):
            out = branch(tokens)
            means.append(out.mean(dim=(1, 2)))
            parts.append(stripe_pool(out, stripes))
        global_feat = (means[0] + means[1]) / 2
        return torch.cat([global_feat.unsqueeze(1), *parts], dim=1)

    def forward(self, images: torch.Tensor, camids: torch.Tensor | None = None) -> ReidFeatures:
        return self.necks(self.pooled(images, camids))

    def forward_with_attention(self, images: torch.Tensor, camids: torch.Tensor | None,
                               blocks: Sequence[tuple[int, int]], branch: int = 0
                               ) -> tuple[ReidFeatures, list[AttentionMap]]:
        """forward() plus attention maps of (stage, block) pairs; the last stage is read in `branch` (0 = b1)."""
        if branch not in (0, 1):
            raise ValueError(f"branch must be 0 (b1) or 1 (b2), got {branch}")
        stages = [*self.trunk.stages, self.branches[branch]]
        return capture_attention(stages, lambda: self(images, camids), blocks, self.trunk.shape.patch_size)

    def backbone_targets(self, key: str) -> list[str]:
        """LewinViT key -> this model's keys: the last stage goes into both branches, the rest into trunk."""
        match = re.match(rf"stages\.{self.last_stage}\.(.*)", key)
        if match:
            return [f"branches.0.{match.group(1)}", f"branches.1.{match.group(1)}"]
        return [f"trunk.{key}"]
