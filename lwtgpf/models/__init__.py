"""Encoders: LewinViT + the LWTGPF dual branch, timm baselines, pretrained loading, one registry.

Names are imported on first use (PEP 562), so `lwtgpf.models.registry` can be read without torch.
"""
from __future__ import annotations

from lwtgpf.lazy import lazy_exports

_EXPORTS = {
    "BNNecks": ".base", "ReidModel": ".base", "stripe_pool": ".base",
    "ResNet50Reid": ".baselines", "ViTSmallReid": ".baselines",
    "AttentionMap": ".lewinvit", "LewinViT": ".lewinvit", "build_lewinvit": ".lewinvit",
    "LEWINVIT_SHAPES": ".shapes", "LewinViTShape": ".shapes",
    "LWTGPF": ".lwtgpf",
    "ReidFeatures": ".output",
    "LAYOUTS": ".pretrained", "LoadReport": ".pretrained", "PretrainedError": ".pretrained",
    "load_pretrained": ".pretrained", "load_model_state": ".pretrained",
    "BACKBONES": ".registry", "build_model": ".registry",
}
__all__ = sorted(_EXPORTS)


__getattr__ = lazy_exports(__name__, _EXPORTS)
