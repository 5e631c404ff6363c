"""The one backbone registry: `cfg.model.backbone` -> a builder of a ReidModel.

A new backbone is one entry here. `build_model` reads every model knob from `cfg.model` (and the input
size from `cfg.data` where a backbone needs it), builds the model and loads `cfg.model.pretrained`.
"""
from __future__ import annotations

from functools import partial
from typing import Callable

from lwtgpf.config import Config

from .base import ReidModel
from .baselines import ResNet50Reid, ViTSmallReid
from .lewinvit import LEWINVIT_SHAPES, LewinViT
from .lwtgpf import LWTGPF
from .pretrained import load_pretrained

Builder = Callable[[Config, int], ReidModel]


def _lwtgpf(shape_name: str, cfg: Config, num_cameras: int) -> LWTGPF:
    m = cfg.model
    backbone = LewinViT(
        LEWINVIT_SHAPES[shape_name],
        num_cameras=num_cameras if m.camera_embedding else 0,
        sie_coef=m.sie_coef,
        drop_path=m.drop_path,
        leff_stages=m.leff_stages,
    )
    return LWTGPF(backbone, test_feature=m.test_feature, flip_test=m.flip_test)


def _resnet50(pooling: str, cfg: Config, num_cameras: int) -> ResNet50Reid:
    return ResNet50Reid(pooling=pooling, test_feature=cfg.model.test_feature, flip_test=cfg.model.flip_test)


def _vit_small(cfg: Config, num_cameras: int) -> ViTSmallReid:
    return ViTSmallReid((cfg.data.height, cfg.data.width), drop_path=cfg.model.drop_path,
                        test_feature=cfg.model.test_feature, flip_test=cfg.model.flip_test)


BACKBONES: dict[str, Builder] = {
    **{name: partial(_lwtgpf, name) for name in LEWINVIT_SHAPES},
    "resnet50": partial(_resnet50, "avg"),
    "resnet50_gem": partial(_resnet50, "gem"),
    "vit_small": _vit_small,
}


def build_model(cfg: Config, num_cameras: int) -> ReidModel:
    """The model `cfg.model` describes, pretrained weights loaded (and the load report printed)."""
    name = cfg.model.backbone
    if name not in BACKBONES:
        raise ValueError(f"unknown model.backbone {name!r}; known: {', '.join(BACKBONES)}")
    model = BACKBONES[name](cfg, num_cameras)
    if cfg.model.grad_checkpointing:
        model.set_grad_checkpointing(True)
    if cfg.model.pretrained:
        report = load_pretrained(model, cfg.model.pretrained, cfg.model.pretrained_layout)
        print(report.summary())
    return model
