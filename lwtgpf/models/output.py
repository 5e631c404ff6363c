"""The one output type every backbone returns, so the rest of the pipeline never asks which it has."""
from __future__ import annotations

from typing import NamedTuple

import torch


class ReidFeatures(NamedTuple):
    """Neck outputs of a batch, each row L2-normalised.

    global_feat: (B, D)
    parts:       (B, num_parts, D); num_parts is 5 for LWTGPF ([b1 top, b1 bottom, b2 top, b2 mid,
                 b2 bottom]), 3 for the ResNet-50 baseline, 0 for a global-only model.
    """

    global_feat: torch.Tensor
    parts: torch.Tensor

    def stacked(self) -> torch.Tensor:
        """(B, 1 + num_parts, D): global first, the layout of the proxy memory's rows."""
        return torch.cat([self.global_feat.unsqueeze(1), self.parts], dim=1)
