"""Encoders: LewinViT + the LWTGPF dual branch, timm baselines, pretrained loading, one registry."""
from .base import BNNecks, ReidModel, stripe_pool
from .baselines import ResNet50Reid, ViTSmallReid
from .lewinvit import LEWINVIT_SHAPES, AttentionMap, LewinViT, LewinViTShape, build_lewinvit
from .lwtgpf import LWTGPF
from .output import ReidFeatures
from .pretrained import LAYOUTS, LoadReport, PretrainedError, load_pretrained
from .registry import BACKBONES, build_model

__all__ = [
    "BACKBONES", "LAYOUTS", "LEWINVIT_SHAPES", "LWTGPF", "AttentionMap", "BNNecks", "LewinViT", "LewinViTShape",
    "LoadReport", "PretrainedError", "ReidFeatures", "ReidModel", "ResNet50Reid", "ViTSmallReid",
    "build_lewinvit", "build_model", "load_pretrained", "stripe_pool",
]
