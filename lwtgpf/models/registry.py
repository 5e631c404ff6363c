"""The one backbone registry: `cfg.model.backbone` -> a builder of a ReidModel.

A new backbone is one entry here. `build_model` reads every model knob from `cfg.model` (and the input
size from `cfg.data` where a backbone needs it), builds the model and loads `cfg.model.pretrained`.
Builders import their network on first use, so the names can be checked (`load_config`) without torch.
"""
from __future__ import annotations

import dataclasses
from functools import partial
from typing import TYPE_CHECKING, Callable

from lwtgpf.config import Config

from .shapes import LEWINVIT_SHAPES

if TYPE_CHECKING:
    from .base import ReidModel

Builder = Callable[[Config, int], "ReidModel"]


def _lwtgpf(shape_name: str, cfg: Config, num_cameras: int) -> "ReidModel":
    from .lewinvit import LewinViT
    from .lwtgpf import LWTGPF

    m = cfg.model
    backbone = LewinViT(
        dataclasses.replace(LEWINVIT_SHAPES[shape_name], norm_eps=m.norm_eps),
        num_cameras=num_cameras if m.camera_embedding else 0,
        sie_coef=m.sie_coef,
        drop_path=m.drop_path,
        leff_stages=m.leff_stages,
    )
    return LWTGPF(backbone, test_feature=m.test_feature, flip_test=m.flip_test)


def _resnet50(pooling: str, cfg: Config, num_cameras: int) -> "ReidModel":
    from .baselines import ResNet50Reid

    return ResNet50Reid(pooling=pooling, test_feature=cfg.model.test_feature, flip_test=cfg.model.flip_test)


def _vit_small(cfg: Config, num_cameras: int) -> "ReidModel":
    from .baselines import ViTSmallReid

    return ViTSmallReid((cfg.data.height, cfg.data.width), drop_path=cfg.model.drop_path,
                        test_feature=cfg.model.test_feature, flip_test=cfg.model.flip_test)


BACKBONES: dict[str, Builder] = {
    **{name: partial(_lwtgpf, name) for name in LEWINVIT_SHAPES},
    "resnet50": partial(_resnet50, "avg"),
    "resnet50_gem": partial(_resnet50, "gem"),
    "vit_small": _vit_small,
}


def build_model(cfg: Config, num_cameras: int, pretrained: bool = True) -> "ReidModel":
    """The model `cfg.model` describes, with `cfg.model.pretrained` loaded (and its report printed).

    pretrained=False builds it without the pretrained file: for a model whose weights come from a
    checkpoint of its own run next (evaluate, resume, the workbench), which must not need that file.
    """
    from .pretrained import load_pretrained

    name = cfg.model.backbone
    if name not in BACKBONES:
        raise ValueError(f"unknown model.backbone {name!r}; known: {', '.join(BACKBONES)}")
    model = BACKBONES[name](cfg, num_cameras)
    if cfg.model.grad_checkpointing:
        model.set_grad_checkpointing(True)
    if pretrained and cfg.model.pretrained:
        report = load_pretrained(model, cfg.model.pretrained, cfg.model.pretrained_layout)
        print(report.summary())
    return model
