"""LewinViT shapes: widths and depths of each variant, the names `model.backbone` accepts.

Kept apart from the network (`lewinvit.py`, which re-exports them) so that a config can be checked
against the backbone registry without importing torch.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LewinViTShape:
    """Widths and depths of one LewinViT variant; the channel width doubles at every merge."""

    embed_dim: int
    depths: tuple[int, ...]
    num_heads: tuple[int, ...]
    window_size: int = 7
    patch_size: int = 4
    mlp_ratio: float = 4.0
    norm_eps: float = 1e-5

    def __post_init__(self) -> None:
        if len(self.depths) != len(self.num_heads):
            raise ValueError(f"depths {self.depths} and num_heads {self.num_heads} must have the same length")
        for i, heads in enumerate(self.num_heads):
            if self.stage_dim(i) % heads:
                raise ValueError(f"stage {i}: width {self.stage_dim(i)} is not divisible by {heads} heads")

    @property
    def num_stages(self) -> int:
        return len(self.depths)

    def stage_dim(self, stage: int) -> int:
        return self.embed_dim * 2**stage

    @property
    def out_dim(self) -> int:
        return self.stage_dim(self.num_stages - 1)


# The one registry of LewinViT shapes. `lewinvit_tiny` is ours and trains on a laptop
# CPU at 128x64 in minutes (1.4M parameters; 2.2M as LWTGPF, whose last stage is doubled);
# t / small / base are the Swin-T / Swin-S / Swin-B shapes.
LEWINVIT_SHAPES: dict[str, LewinViTShape] = {
    "lewinvit_tiny": LewinViTShape(embed_dim=32, depths=(1, 1, 2, 1), num_heads=(1, 2, 4, 8)),
    "lewinvit_t": LewinViTShape(embed_dim=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24)),
    "lewinvit_small": LewinViTShape(embed_dim=96, depths=(2, 2, 18, 2), num_heads=(3, 6, 12, 24)),
    "lewinvit_base": LewinViTShape(embed_dim=128, depths=(2, 2, 18, 2), num_heads=(4, 8, 16, 32)),
}
