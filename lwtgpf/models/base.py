"""What every re-id model shares: BN necks, stripe pooling and the test-time feature selection."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .output import ReidFeatures

TEST_FEATURES = ("global", "global+parts")


class BNNecks(nn.Module):
    """One BatchNorm1d per feature (global + each part) with a frozen zero bias, then L2 normalisation.

    The necks are independent per channel, so one BatchNorm1d over the (1 + P) * D concatenation is
    exactly 1 + P separate BatchNorm1d(D) layers, in one kernel.
    """

    def __init__(self, num_features: int, dim: int):
        super().__init__()
        self.num_features = num_features
        self.dim = dim
        self.bn = nn.BatchNorm1d(num_features * dim)
        nn.init.ones_(self.bn.weight)
        nn.init.zeros_(self.bn.bias)
        self.bn.bias.requires_grad_(False)  # BNNeck: shift-free features for the cosine losses

    def forward(self, stacked: torch.Tensor) -> ReidFeatures:
        """stacked (B, 1 + P, D), global first -> ReidFeatures, every row L2-normalised, float32.

        The necks run in float32 even under autocast: the features feed cosine scores and a proxy memory.
        """
        B, n, D = stacked.shape
        if (n, D) != (self.num_features, self.dim):
            raise ValueError(f"necks expect (B, {self.num_features}, {self.dim}), got {tuple(stacked.shape)}")
        with torch.autocast(device_type=stacked.device.type, enabled=False):
            out = F.normalize(self.bn(stacked.float().reshape(B, n * D)).view(B, n, D), dim=-1)
        return ReidFeatures(global_feat=out[:, 0], parts=out[:, 1:])


def stripe_pool(tokens: torch.Tensor, stripes: int) -> torch.Tensor:
    """(B, H, W, C) -> (B, stripes, C): average over `stripes` horizontal bands, top to bottom.

    Bands are those of adaptive average pooling (they overlap by a row when H % stripes != 0).
    """
    pooled = F.adaptive_avg_pool2d(tokens.permute(0, 3, 1, 2), (stripes, 1))  # (B, C, stripes, 1)
    return pooled.flatten(2).transpose(1, 2)


class ReidModel(nn.Module):
    """Base of every model: forward(images, camids) -> ReidFeatures, plus `test_features`.

    Subclasses set `feature_dim`, `num_parts`, `pretrained_family` (the checkpoint layouts it accepts, see
    pretrained.py) and implement `backbone_targets` (where a backbone checkpoint key goes in this model)
    and `set_grad_checkpointing`.
    """

    feature_dim: int
    num_parts: int
    pretrained_family: str

    def __init__(self, test_feature: str = "global", flip_test: bool = False):
        super().__init__()
        if test_feature not in TEST_FEATURES:
            raise ValueError(f"test_feature must be one of {TEST_FEATURES}, got {test_feature!r}")
        self.test_feature = test_feature
        self.flip_test = flip_test

    def backbone_targets(self, key: str) -> list[str]:
        raise NotImplementedError

    def set_grad_checkpointing(self, enabled: bool = True) -> None:
        raise NotImplementedError

    def select_test_feature(self, feats: ReidFeatures) -> torch.Tensor:
        """ReidFeatures -> (B, D) global, or (B, (1 + P) * D) global+parts concatenated and re-normalised."""
        if self.test_feature == "global":
            return feats.global_feat
        return F.normalize(feats.stacked().flatten(1), dim=1)

    @torch.no_grad()
    def test_features(self, images: torch.Tensor, camids: torch.Tensor | None = None) -> torch.Tensor:
        """(B, 3, H, W), (B,) -> (B, D') L2-normalised retrieval features (call in eval mode).

        With flip_test the features of the image and its mirror are summed and re-normalised.
        """
        feats = self.select_test_feature(self(images, camids))
        if self.flip_test:
            feats = F.normalize(feats + self.select_test_feature(self(images.flip(-1), camids)), dim=1)
        return feats

    @property
    def test_feature_dim(self) -> int:
        return self.feature_dim * (1 if self.test_feature == "global" else 1 + self.num_parts)
