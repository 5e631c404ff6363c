"""Optimizer and per-epoch learning-rate schedule of the reference recipe (SPEC section 6).

The schedule is the public code's WarmupMultiStepLR (LWTGPF-2025 `Csu/utils/schedular.py`, from
TMGF/O2CAP), stepped once at the END of every epoch, so epoch e (0-based) trains with

    lr(e) = lr * warmup(e) * gamma ** (number of milestones <= e)
    warmup(e) = warmup_factor * (1 - e / warmup_epochs) + e / warmup_epochs   for e < warmup_epochs, else 1

With the defaults: epoch 0 at 1% of lr, 0.505x at epoch 5, the full lr from epoch 10, x0.1 from epoch 20
and x0.01 from epoch 40. It is a LambdaLR, so `state_dict()` / `load_state_dict()` resume it exactly.

The optimizer is SGD with momentum and the same weight decay on every trainable parameter: the public
LWTGPF code gives biases `weight_decay_bias` = `weight_decay` (5e-4) and `bias_lr_factor` 1, and
exempts neither norm layers nor position tables, so one parameter group reproduces it.
"""
from __future__ import annotations

from bisect import bisect_right

import torch
from torch.optim.lr_scheduler import LambdaLR

from lwtgpf.config import OptimConfig


class WarmupMultiStepFactor:
    """epoch -> lr multiplier of the formula above; an object (not a closure) so LambdaLR saves it."""

    def __init__(self, warmup_epochs: int, warmup_factor: float, milestones: tuple[int, ...], gamma: float) -> None:
        if warmup_epochs < 0:
            raise ValueError(f"optim.warmup_epochs must be >= 0, got {warmup_epochs}")
        if not 0.0 < warmup_factor <= 1.0:
            raise ValueError(f"optim.warmup_factor must be in (0, 1], got {warmup_factor}")
        if list(milestones) != sorted(set(milestones)):
            raise ValueError(f"optim.milestones must be strictly increasing epochs, got {list(milestones)}")
        if not 0.0 < gamma <= 1.0:
            raise ValueError(f"optim.gamma must be in (0, 1], got {gamma}")
        self.warmup_epochs = warmup_epochs
        self.warmup_factor = warmup_factor
        self.milestones = list(milestones)
        self.gamma = gamma

    def __call__(self, epoch: int) -> float:
        warmup = 1.0
        if epoch < self.warmup_epochs:
            progress = epoch / self.warmup_epochs
            warmup = self.warmup_factor * (1.0 - progress) + progress
        return warmup * self.gamma ** bisect_right(self.milestones, epoch)


def build_optimizer(model: torch.nn.Module, cfg: OptimConfig) -> torch.optim.Optimizer:
    """SGD(momentum, weight decay) over the trainable parameters of `model` (the reference recipe), or
    AdamW(weight decay) for networks trained from scratch, where SGD at 3.5e-4 barely moves."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError(f"{type(model).__name__} has no trainable parameters to optimise")
    if cfg.name == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if cfg.name == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    raise ValueError(f"optim.name must be sgd or adamw, got {cfg.name!r}")


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: OptimConfig) -> LambdaLR:
    """The per-epoch warm-up multi-step schedule; call `.step()` once after each epoch."""
    factor = WarmupMultiStepFactor(cfg.warmup_epochs, cfg.warmup_factor, cfg.milestones, cfg.gamma)
    return LambdaLR(optimizer, lr_lambda=factor)
