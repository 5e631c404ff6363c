"""Encoders: LewinViT + the LWTGPF dual branch, timm baselines, pretrained loading, one registry.

Names are imported on first use (PEP 562), so `lwtgpf.models.registry` can be read without torch.
"""
from __future__ import annotations

import importlib
from typing import Any

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


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
