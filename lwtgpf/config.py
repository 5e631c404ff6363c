"""The one config system: typed dataclasses, YAML presets and `section.key=value` overrides.

The defaults are the reference recipe of SPEC sections 4-7 (Swin-S LewinViT, Market-style training).
A preset (`lwtgpf/configs/<name>.yaml`, or any YAML file) holds only what differs from the defaults;
overrides come last. The CLI (`--set train.epochs=10`), Python (`load_config("synthetic", {...})`)
and notebook parameters all go through `load_config`, so an unknown key or a wrong type is the same
error everywhere and names the key.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

PRESET_DIR = Path(__file__).parent / "configs"

LUPERSON_MEAN = (0.3525, 0.3106, 0.3140)
LUPERSON_STD = (0.2660, 0.2522, 0.2505)


class ConfigError(ValueError):
    """A config key that does not exist or a value of the wrong type; the message names the key."""


@dataclass
class DataConfig:
    dataset: str = "market1501"
    root: str = "benchmarks"  # datasets live in <root>/<dataset folder>
    height: int = 384
    width: int = 128
    mean: tuple[float, float, float] = LUPERSON_MEAN
    std: tuple[float, float, float] = LUPERSON_STD
    batch_size: int = 32
    num_instances: int = 4  # crops per proxy in a batch (P x K sampling)
    sampler: str = "proxy_balanced"  # proxy_balanced (P proxies x K) | camera_diverse (P clusters x K cameras)
    iters_per_epoch: int = 200
    workers: int = 4
    flip_p: float = 0.5
    pad: int = 10
    erasing_p: float = 0.5
    color_jitter: float = 0.0  # brightness/contrast/saturation jitter strength (hue: a quarter); 0 = off


@dataclass
class ModelConfig:
    backbone: str = "lewinvit_small"
    pretrained: str = ""  # a file under pretrain/, empty for random init
    pretrained_layout: str = "auto"  # auto | solider | timm_swin | resnet50 | vit_small | lwtgpf (a run of ours)
    drop_path: float = 0.1
    leff_stages: tuple[bool, bool, bool, bool] = (False, False, False, False)
    camera_embedding: bool = True
    sie_coef: float = 3.0
    test_feature: str = "global"  # global | global+parts
    flip_test: bool = False
    grad_checkpointing: bool = False


@dataclass
class ClusterConfig:
    k1: int = 20
    k2: int = 6
    eps: float = 0.5
    min_samples: int = 4
    knn_backend: str = "auto"  # auto | faiss | torch


@dataclass
class LossConfig:
    temperature: float = 0.07
    hard_negatives: int = 50
    online_positives: int = 3
    online_balance: float = 0.15  # a_ip = b * f.M_p + (1 - b) * M_y.M_p
    part_weight: float = 0.1
    offline_weight: float = 1.0
    online_weight: float = 1.0
    reduction: str = "batch_mean"  # batch_mean (LWTGPF) | camera_sum (O2CAP)
    memory_momentum: float = 0.2  # M <- normalise(m * M + (1 - m) * f)
    label_smoothing: float = 0.1  # the `classifier` method's cross-entropy (supervised pretraining)


@dataclass
class OptimConfig:
    name: str = "sgd"  # sgd (reference recipe) | adamw (from-scratch training, e.g. the CPU demo)
    lr: float = 3.5e-4
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_epochs: int = 10
    warmup_factor: float = 0.01
    milestones: tuple[int, ...] = (20, 40)
    gamma: float = 0.1


@dataclass
class TrainConfig:
    epochs: int = 50
    eval_every: int = 10
    seed: int = 1
    device: str = "auto"  # auto | cpu | cuda
    amp: str = "auto"  # auto | off | bf16 | fp16
    checkpoint_every: int = 1


@dataclass
class EvalConfig:
    rerank: bool = False
    rerank_k1: int = 20
    rerank_k2: int = 6
    rerank_lambda: float = 0.3
    max_rank: int = 50
    batch_size: int = 128


@dataclass
class Config:
    method: str = "lwtgpf"  # lwtgpf | o2cap | cluster_contrast | supervised
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict[str, Any]:
        return _plain(dataclasses.asdict(self))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))


def available_presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def load_config(
    preset: str | Path | None = None,
    overrides: Mapping[str, Any] | Iterable[str] | None = None,
) -> Config:
    """Defaults <- preset (a name in `available_presets()` or a YAML path) <- overrides.

    Overrides are a mapping of dotted keys (`{"train.epochs": 3}`) or CLI strings (`"train.epochs=3"`,
    the value parsed as YAML). Nested mappings (`{"train": {"epochs": 3}}`) work too.
    """
    cfg = Config()
    if preset:
        path = Path(preset)
        if not path.suffix:
            path = PRESET_DIR / f"{preset}.yaml"
            if not path.exists():
                raise ConfigError(f"unknown preset {preset!r}; available: {', '.join(available_presets())}")
        if not path.exists():
            raise ConfigError(f"config file {path} does not exist")
        data = yaml.safe_load(path.read_text()) or {}
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping of sections, got {type(data).__name__}")
        _apply(cfg, _flatten(data), source=str(path))
    if overrides:
        _apply(cfg, _parse_overrides(overrides), source="overrides")
    return cfg


def config_from_dict(data: Mapping[str, Any]) -> Config:
    """Rebuild a Config from `Config.to_dict()` output (e.g. a run folder's config.yaml)."""
    cfg = Config()
    _apply(cfg, _flatten(data), source="dict")
    return cfg


def _parse_overrides(overrides: Mapping[str, Any] | Iterable[str]) -> dict[str, Any]:
    if isinstance(overrides, Mapping):
        return _flatten(overrides)
    flat: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r} is not of the form section.key=value")
        flat[key.strip()] = yaml.safe_load(raw) if raw.strip() else ""
    return flat


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


def _apply(cfg: Config, flat: Mapping[str, Any], source: str) -> None:
    for dotted, value in flat.items():
        *path, name = dotted.split(".")
        target: Any = cfg
        for part in path:
            if not dataclasses.is_dataclass(target) or part not in _fields(target):
                raise ConfigError(f"{source}: unknown config section {dotted!r}")
            target = getattr(target, part)
        if not dataclasses.is_dataclass(target) or name not in _fields(target):
            known = ", ".join(sorted(_fields(target))) if dataclasses.is_dataclass(target) else ""
            raise ConfigError(f"{source}: unknown config key {dotted!r}" + (f" (known: {known})" if known else ""))
        hint = typing.get_type_hints(type(target))[name]
        if dataclasses.is_dataclass(hint):
            raise ConfigError(f"{source}: {dotted!r} is a section; set its keys, e.g. {dotted}.<key>=...")
        setattr(target, name, _coerce(value, hint, dotted, source))


def _fields(obj: Any) -> set[str]:
    return {f.name for f in dataclasses.fields(obj)}


def _coerce(value: Any, hint: Any, key: str, source: str) -> Any:
    """Check `value` against the field's annotation; ints widen to floats, lists become tuples."""
    origin = typing.get_origin(hint)
    if origin is tuple:
        args = typing.get_args(hint)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{source}: {key} expects a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], key, source) for v in value)
        if len(value) != len(args):
            raise ConfigError(f"{source}: {key} expects {len(args)} values, got {len(value)}: {value!r}")
        return tuple(_coerce(v, a, key, source) for v, a in zip(value, args))
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(hint):
            try:
                return _coerce(value, arg, key, source)
            except ConfigError:
                continue
        raise ConfigError(f"{source}: {key} expects {hint}, got {value!r}")
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads `3e-3` (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
    elif hint is str:
        if isinstance(value, str):
            return value
    else:
        raise ConfigError(f"{source}: {key} has an unsupported type {hint}")
    raise ConfigError(f"{source}: {key} expects {hint.__name__}, got {value!r} ({type(value).__name__})")


def _plain(obj: Any) -> Any:
    """Tuples to lists so the YAML/JSON dump stays plain."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj
