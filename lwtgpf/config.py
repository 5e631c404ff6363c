"""The one config system: typed dataclasses, YAML presets and `section.key=value` overrides.

The defaults are the reference recipe of SPEC sections 4-7 (Swin-S LewinViT, Market-style training).
A preset (`lwtgpf/configs/<name>.yaml`, or any YAML file) holds only what differs from the defaults;
overrides come last. The CLI (`--set train.epochs=10`), Python (`load_config("synthetic", {...})`)
and notebook parameters all go through `load_config`, so a mistake is the same error everywhere.

A `Config` that `load_config` returns is valid: every value is checked before any work starts (and so
before a run folder exists), and a `ConfigError` names the key and what it accepts:
- types from the annotations; choices are `Literal[...]` types (`train.amp`, `data.sampler`, ...);
- ranges from each field's `limits(...)` (`cluster.eps` in (0, 1), `train.epochs` >= 1, ...);
- names looked up in a registry: `method` (lwtgpf.methods), `data.dataset` (lwtgpf.data.datasets),
  `model.backbone` (lwtgpf.models.registry); none of these imports torch, so a bad value fails fast;
- rules between fields (`validate_config`): batch size a multiple of the crops per proxy, k2 <= k1,
  increasing milestones, faiss installed when `cluster.knn_backend=faiss`.

Paths (`data.root`, `model.pretrained`) are relative to the working folder when given; a run folder
stores them absolute (`Config.with_absolute_paths`, used by `lwtgpf.run_folder`), so a run opens the
same from any folder. Units are in the comment of every field.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import math
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Literal, Mapping

import yaml

from lwtgpf.errors import UserError

PRESET_DIR = Path(__file__).parent / "configs"

LUPERSON_MEAN = (0.3525, 0.3106, 0.3140)
LUPERSON_STD = (0.2660, 0.2522, 0.2505)


class ConfigError(UserError):
    """A config key that does not exist, or a value of the wrong type or range; the message names the key."""


def limits(default: Any, *, ge: float | None = None, gt: float | None = None, le: float | None = None,
           lt: float | None = None) -> Any:
    """A field with a range: `ge`/`gt` lower bound (>= / >), `le`/`lt` upper bound (<= / <)."""
    return field(default=default, metadata={"limits": (ge, gt, le, lt)})


def path_field(default: str) -> Any:
    """A file or folder path: relative to the working folder, stored absolute in a run folder."""
    return field(default=default, metadata={"path": True})


@dataclass
class DataConfig:
    dataset: str = "market1501"  # a name of the dataset registry (`lwtgpf stats NAME`)
    root: str = path_field("benchmarks")  # datasets folder: the dataset lives in <root>/<its folder>
    height: int = limits(384, ge=16)  # input height in pixels (crops are resized to height x width)
    width: int = limits(128, ge=16)  # input width in pixels
    mean: tuple[float, float, float] = LUPERSON_MEAN  # per-channel pixel mean (RGB, pixels in [0, 1])
    std: tuple[float, float, float] = LUPERSON_STD  # per-channel pixel std (> 0)
    batch_size: int = limits(32, ge=2)  # crops per training step (the global batch under torchrun)
    num_instances: int = limits(4, ge=1)  # crops per proxy in a batch (P x K sampling: K)
    sampler: Literal["proxy_balanced", "camera_diverse"] = "proxy_balanced"  # P proxies x K, or P clusters x K cameras
    iters_per_epoch: int = limits(200, ge=1)  # training steps per epoch
    workers: int = limits(4, ge=0)  # DataLoader worker processes (0: load in the main process)
    flip_p: float = limits(0.5, ge=0, le=1)  # probability of a horizontal flip (training)
    pad: int = limits(10, ge=0)  # pixels of padding before the random crop (training)
    erasing_p: float = limits(0.5, ge=0, le=1)  # probability of random erasing (training)
    color_jitter: float = limits(0.0, ge=0, le=1)  # brightness/contrast/saturation jitter (hue: a quarter); 0 = off


@dataclass
class ModelConfig:
    backbone: str = "lewinvit_small"  # a name of the backbone registry (lwtgpf.models.registry)
    pretrained: str = path_field("")  # weights file (pretrain/..., or a run's checkpoints/last.pt); "" = random init
    pretrained_layout: Literal["auto", "lwtgpf", "solider", "timm_swin", "resnet50", "vit_small"] = "auto"
    drop_path: float = limits(0.1, ge=0, lt=1)  # stochastic depth rate of the last block (0 at the first)
    leff_stages: tuple[bool, bool, bool, bool] = (False, False, False, False)  # LeFF (depthwise conv MLP) per stage
    camera_embedding: bool = True  # SIE: a learned embedding per camera added to every token
    sie_coef: float = limits(3.0, ge=0)  # x <- x + sie_coef * E[cam]
    norm_eps: float = limits(1e-5, gt=0, lt=1e-2)  # LayerNorm eps (1e-5 SOLIDER; 1e-6 the public LWTGPF code)
    test_feature: Literal["global", "global+parts"] = "global"  # what evaluation ranks with
    flip_test: bool = False  # average the features of each test crop and its mirror image
    grad_checkpointing: bool = False  # recompute activations in backward (less memory, ~30% slower)


@dataclass
class ClusterConfig:
    k1: int = limits(20, ge=1)  # neighbours of the k-reciprocal sets (crops)
    k2: int = limits(6, ge=1)  # neighbours of the local query expansion (crops, <= k1)
    eps: float = limits(0.5, gt=0, lt=1)  # DBSCAN radius on the Jaccard distance (1 = nothing shared)
    min_samples: int = limits(4, ge=1)  # DBSCAN core-point threshold (crops, itself included)
    knn_backend: Literal["auto", "faiss", "torch"] = "auto"  # exact kNN search (auto: torch; faiss if asked)


@dataclass
class LossConfig:
    temperature: float = limits(0.07, gt=0)  # tau of the softmax over memory scores
    hard_negatives: int = limits(50, ge=0)  # negatives per sample (highest scoring); 0 = all proxies
    online_positives: int = limits(3, ge=1)  # online association: positives among the per-camera best
    online_balance: float = limits(0.15, ge=0, le=1)  # a_ip = b * f.M_p + (1 - b) * M_y.M_p
    part_weight: float = limits(0.1, ge=0)  # weight of the mean part losses against the global ones
    offline_weight: float = limits(1.0, ge=0)  # weight of the offline association loss
    online_weight: float = limits(1.0, ge=0)  # weight of the online association loss
    reduction: Literal["batch_mean", "camera_sum"] = "batch_mean"  # LWTGPF: one batch mean; O2CAP: per-camera sum
    memory_momentum: float = limits(0.2, ge=0, lt=1)  # M <- normalise(m * M + (1 - m) * f)
    label_smoothing: float = limits(0.1, ge=0, lt=1)  # the `classifier` method's cross-entropy


@dataclass
class OptimConfig:
    name: Literal["sgd", "adamw"] = "sgd"  # sgd (reference recipe) | adamw (from-scratch training, the CPU demo)
    lr: float = limits(3.5e-4, gt=0)  # peak learning rate
    momentum: float = limits(0.9, ge=0, lt=1)  # SGD momentum
    weight_decay: float = limits(5e-4, ge=0)  # L2 weight decay (SGD) / decoupled decay (AdamW)
    warmup_epochs: int = limits(10, ge=0)  # linear warm-up from warmup_factor * lr over these epochs
    warmup_factor: float = limits(0.01, gt=0, le=1)  # lr multiplier of the first warm-up epoch
    milestones: tuple[int, ...] = (20, 40)  # epochs (0-based) from which the lr is multiplied by gamma
    gamma: float = limits(0.1, gt=0, le=1)  # lr multiplier at each milestone


@dataclass
class TrainConfig:
    epochs: int = limits(50, ge=1)  # training epochs (each: extract, cluster, iters_per_epoch steps)
    eval_every: int = limits(10, ge=0)  # evaluate every this many epochs (and after the last); 0 = last only
    seed: int = limits(1, ge=0)  # seeds python, numpy, torch and the samplers
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto: cuda when available
    amp: Literal["auto", "off", "bf16", "fp16"] = "auto"  # mixed precision on CUDA (auto: bf16, else fp16)
    checkpoint_every: int = limits(1, ge=1)  # write checkpoints/last.pt every this many epochs (and at the end)
    keep_features: Literal["eval", "all", "none"] = "eval"  # epochs whose features go to RUN/epochs/ (labels:
    #   always): eval = the first, every eval_every-th and the last; ~2 bytes x D per crop and epoch
    keep_weights: bool = False  # also the model weights of those epochs (the attention view can go back)


@dataclass
class EvalConfig:
    rerank: bool = False  # k-reciprocal re-ranking of the query-gallery distance (Zhong et al. 2017)
    rerank_k1: int = limits(20, ge=1)  # re-ranking k-reciprocal neighbours
    rerank_k2: int = limits(6, ge=1)  # re-ranking query-expansion neighbours (<= rerank_k1)
    rerank_lambda: float = limits(0.3, ge=0, le=1)  # weight of the original distance
    max_rank: int = limits(50, ge=1)  # CMC ranks computed
    batch_size: int = limits(128, ge=1)  # crops per forward pass when extracting features


@dataclass
class Config:
    method: str = "lwtgpf"  # a name of lwtgpf.methods.METHODS: lwtgpf | o2cap | cluster_contrast | supervised | classifier
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict[str, Any]:
        return _plain(dataclasses.asdict(self))

    def flat(self) -> dict[str, Any]:
        """{"section.key": value} of every setting (tuples as lists), e.g. to compare two configs."""
        return _flatten(self.to_dict())

    def save(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))

    def with_absolute_paths(self, base: str | Path) -> "Config":
        """A copy whose path settings are absolute, relative ones taken from `base` ("" stays "")."""
        return config_from_dict(self.to_dict(), base=base)


def available_presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def load_config(
    preset: str | Path | None = None,
    overrides: Mapping[str, Any] | Iterable[str] | None = None,
    *,
    validate: bool = True,
) -> Config:
    """Defaults <- preset (a name in `available_presets()` or a YAML path) <- overrides, then checked.

    Overrides are a mapping of dotted keys (`{"train.epochs": 3}`) or CLI strings (`"train.epochs=3"`,
    the value parsed as YAML). Nested mappings (`{"train": {"epochs": 3}}`) work too. The method's own
    loss settings (`lwtgpf.methods`) apply to the keys no preset or override set.
    validate=False skips only the rules between fields (`validate_config`); types and ranges are
    always checked. Raises ConfigError naming the file or key.
    """
    return _load(preset, overrides, validate)[0]


def requested_settings(preset: str | Path | None, overrides: Mapping[str, Any] | Iterable[str] | None
                       ) -> dict[str, Any]:
    """{key: value} of only the settings a preset and overrides set (checked; paths made absolute from the
    working folder), e.g. to compare what a command asks for with a run's saved config."""
    cfg, explicit = _load(preset, overrides, validate=True)
    flat = cfg.with_absolute_paths(Path.cwd()).flat()
    return {key: flat[key] for key in flat if key in explicit}


def _load(preset, overrides, validate: bool) -> tuple[Config, set[str]]:
    cfg = Config()
    explicit: set[str] = set()
    if preset:
        path = Path(preset)
        if not path.suffix:
            path = PRESET_DIR / f"{preset}.yaml"
            if not path.exists():
                raise ConfigError(f"unknown preset {preset!r}; available: {', '.join(available_presets())}")
        explicit |= _apply(cfg, _flatten(_read_yaml(path)), source=str(path))
    if overrides:
        explicit |= _apply(cfg, _parse_overrides(overrides), source="overrides")
    explicit |= _apply_method_defaults(cfg, explicit)
    if validate:
        validate_config(cfg)
    return cfg, explicit


def override(cfg: Config, overrides: Mapping[str, Any] | Iterable[str] | None) -> Config:
    """A validated copy of `cfg` with `overrides` applied (same forms as `load_config`)."""
    copy = config_from_dict(cfg.to_dict())
    if overrides:
        _apply(copy, _parse_overrides(overrides), source="overrides")
        validate_config(copy, source="overrides")
    return copy


# The settings that define a trained model's weights and the input it expects: a checkpoint is always
# evaluated with its own values of these (`lwtgpf.run_folder.config_for_checkpoint`).
MODEL_KEYS = ("model.backbone", "model.leff_stages", "model.camera_embedding", "model.sie_coef", "model.norm_eps",
              "data.height", "data.width", "data.mean", "data.std")


def config_from_dict(data: Mapping[str, Any], base: str | Path | None = None, source: str = "dict") -> Config:
    """Rebuild a Config from `Config.to_dict()` output (e.g. a run folder's config.yaml).

    base: the folder relative path settings are taken from (a run folder); None leaves them as they are.
    """
    cfg = Config()
    _apply(cfg, _flatten(data), source=source)
    if base is not None:
        for dotted in PATH_KEYS:
            section, name = dotted.split(".")
            value = getattr(getattr(cfg, section), name)
            if value:
                joined = Path(base).expanduser().absolute() / Path(value).expanduser()
                setattr(getattr(cfg, section), name, os.path.normpath(joined))
    validate_config(cfg, source=source)
    return cfg


def read_config_file(path: str | Path, base: str | Path | None = None) -> Config:
    """A saved config (`Config.save`), relative paths taken from `base` (default: the file's folder)."""
    path = Path(path)
    return config_from_dict(_read_yaml(path), base=path.parent if base is None else base, source=str(path))


def validate_config(cfg: Config, source: str = "config") -> None:
    """The rules between fields, and what the machine must have for them; ConfigError names the keys."""
    d, c, e = cfg.data, cfg.cluster, cfg.eval
    if d.batch_size % d.num_instances:
        raise ConfigError(f"{source}: data.batch_size ({d.batch_size}) must be a multiple of data.num_instances "
                          f"({d.num_instances}): a batch is P proxies x K crops")
    if c.k2 > c.k1:
        raise ConfigError(f"{source}: cluster.k2 ({c.k2}) must be <= cluster.k1 ({c.k1})")
    if e.rerank_k2 > e.rerank_k1:
        raise ConfigError(f"{source}: eval.rerank_k2 ({e.rerank_k2}) must be <= eval.rerank_k1 ({e.rerank_k1})")
    if any(s <= 0 for s in d.std):
        raise ConfigError(f"{source}: data.std must be > 0 per channel, got {list(d.std)}")
    milestones = list(cfg.optim.milestones)
    if milestones != sorted(set(milestones)) or any(m < 1 for m in milestones):
        raise ConfigError(f"{source}: optim.milestones must be strictly increasing epochs >= 1, got {milestones}")
    if c.knn_backend == "faiss" and importlib.util.find_spec("faiss") is None:
        raise ConfigError(f"{source}: cluster.knn_backend=faiss but faiss is not installed "
                          "(pip install 'lwtgpf[faiss]', or use cluster.knn_backend=torch)")


# ---------------------------------------------------------------------------------------------------
# Registries: names a plain string setting must be one of (imported lazily, none imports torch)


def _registered(key: str) -> Mapping[str, Any]:
    if key == "method":
        from lwtgpf.methods import METHODS
        return METHODS
    if key == "data.dataset":
        from lwtgpf.data.datasets import DATASETS
        return DATASETS
    if key == "model.backbone":
        from lwtgpf.models.registry import BACKBONES
        return BACKBONES
    raise KeyError(key)


REGISTRY_KEYS = ("method", "data.dataset", "model.backbone")
PATH_KEYS = ("data.root", "model.pretrained")


# ---------------------------------------------------------------------------------------------------
# Parsing and applying


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        where = getattr(err, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where is not None else ""
        raise ConfigError(f"{path}: not valid YAML{at}: {getattr(err, 'problem', None) or err}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: cannot read the config file ({err})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections, got {type(data).__name__}")
    return data


def _parse_overrides(overrides: Mapping[str, Any] | Iterable[str]) -> dict[str, Any]:
    if isinstance(overrides, Mapping):
        return _flatten(overrides)
    if isinstance(overrides, str):
        overrides = [overrides]
    flat: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r} is not of the form section.key=value")
        flat[key.strip()] = _Text(raw)
    return flat


class _Text(str):
    """The text of a `key=value` override: read as YAML (`3`, `0.5`, `[1, 2]`, `true`) for numbers, flags
    and lists, taken as it is for string settings (so `train.amp=off` stays "off", not YAML's False)."""

    def parse(self, key: str, as_string: bool) -> Any:
        text = self.strip()
        if as_string and not (len(text) >= 2 and text[0] == text[-1] and text[0] in "'\""):
            return text
        try:
            return yaml.safe_load(text) if text else ""
        except yaml.YAMLError as err:
            raise ConfigError(f"override {key}={self}: the value is not valid YAML "
                              f"({getattr(err, 'problem', None) or err}); quote it") from None


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


def _apply(cfg: Config, flat: Mapping[str, Any], source: str) -> set[str]:
    """Set each dotted key after checking its type, range and registry; returns the keys set."""
    for dotted, value in flat.items():
        *path, name = str(dotted).split(".")
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
        value = _coerce(value, hint, dotted, source)
        _check_limits(target, name, value, dotted, source)
        if dotted in REGISTRY_KEYS:
            registry = _registered(dotted)
            if value not in registry:
                raise ConfigError(f"{source}: {dotted} {value!r} is not one of: {', '.join(sorted(registry))}")
        setattr(target, name, value)
    return set(flat)


def _apply_method_defaults(cfg: Config, explicit: set[str]) -> set[str]:
    from lwtgpf.methods import METHODS

    defaults = {k: v for k, v in METHODS[cfg.method].loss_defaults.items() if k not in explicit}
    return _apply(cfg, defaults, source=f"method {cfg.method}") if defaults else set()


def _fields(obj: Any) -> set[str]:
    return {f.name for f in dataclasses.fields(obj)}


def _check_limits(target: Any, name: str, value: Any, key: str, source: str) -> None:
    spec = next(f for f in dataclasses.fields(target) if f.name == name).metadata.get("limits")
    if spec is None:
        return
    ge, gt, le, lt = spec
    bounds = [f">= {ge:g}" if ge is not None else "", f"> {gt:g}" if gt is not None else "",
              f"<= {le:g}" if le is not None else "", f"< {lt:g}" if lt is not None else ""]
    ok = (math.isfinite(value) and (ge is None or value >= ge) and (gt is None or value > gt)
          and (le is None or value <= le) and (lt is None or value < lt))
    if not ok:
        raise ConfigError(f"{source}: {key} must be {' and '.join(b for b in bounds if b)}, got {value!r}")


def _coerce(value: Any, hint: Any, key: str, source: str) -> Any:
    """Check `value` against the field's annotation; ints widen to floats, lists become tuples."""
    origin = typing.get_origin(hint)
    if isinstance(value, _Text):
        value = value.parse(key, as_string=hint is str or (origin is Literal and isinstance(typing.get_args(hint)[0], str)))
    if origin is Literal:
        choices = typing.get_args(hint)
        if value in choices and type(value) is type(choices[0]):
            return value
        raise ConfigError(f"{source}: {key} must be one of {', '.join(map(str, choices))}; got {value!r}")
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
        if value is None:
            raise ConfigError(f"{source}: {key} expects a string, got nothing (write {key}='' for empty)")
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
