"""Pretrained-weight loading: published checkpoint layouts -> our models, with a report and loud failures.

A layout knows how to recognise its files (`detect`) and how to rename/reshape their tensors into the
canonical names of a backbone family (`convert`):

| layout     | family    | files                                                     | canonical names      |
|------------|-----------|-----------------------------------------------------------|----------------------|
| solider    | swin      | SOLIDER teacher `{'teacher': {'backbone.*'}}` (mmseg)     | LewinViT state_dict  |
| timm_swin  | swin      | timm or official ImageNet Swin (`layers.*`)               | LewinViT state_dict  |
| resnet50   | resnet50  | LUPerson / torchvision ResNet-50 (`layer1.0.conv1.*`)     | timm resnet50        |
| vit_small  | vit_small | TransReID-SSL / timm ViT-S/16 (`blocks.*`, `cls_token`)   | timm ViT-S/16        |
| lwtgpf     | (same)    | a run of this project (`checkpoints/last.pt`, `necks.*`)   | the model's own keys |

The model then says where each canonical key goes (`model.backbone_targets(key)`: LWTGPF sends the last
Swin stage into both branches). Every tensor is copied only after its shape is checked; any mismatch,
an unknown layout, a layout of the wrong family or a file that fills nothing raises PretrainedError.
Checkpoints are untrusted: `torch.load(weights_only=True)`.

The `lwtgpf` layout is a whole model trained here (e.g. supervised pretraining with the `classifier`
method) loaded into a model of the same backbone and shape, necks included. `load_model_state` is the
strict form used to restore a run's own checkpoint (evaluate, resume, the workbench): every key must be
there with its shape, and a mismatch names the file and the keys.

Wrapped weights load in every layout: containers (`state_dict`, `model`, `teacher`) are unwrapped and a
prefix that every key shares (`module.` from DataParallel / DDP, `model.` from Lightning-style wrappers,
`_orig_mod.` from torch.compile) is removed before the layout is detected.

Camera embedding policy (SIE, one learned row per camera; `camera_embedding_for`): cameras do not
transfer between datasets. When the checkpoint's number of cameras equals the model's, the rows load
as they are (the same dataset, or Duke -> Occluded-Duke). When it differs (direct transfer, e.g.
Market's 6 cameras -> Duke's 8, or fine-tuning on another dataset), every camera of the model gets the
MEAN of the trained rows: an unseen camera is treated as the average seen camera, which keeps the token
statistics the network was trained with (a random row, or none, would shift every token by up to
sie_coef times a row it never saw). The load report says so.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

import safetensors.torch
import torch
import torch.nn.functional as F
from torch import nn

from lwtgpf.errors import UserError

from .lewinvit import relative_position_index


class PretrainedError(UserError):
    """A checkpoint that cannot be loaded as asked; the message names the file and the key."""


@dataclass
class LoadReport:
    """What a load did. `loaded`/`missing` are model keys; `unexpected`/`skipped` are checkpoint keys."""

    path: str
    layout: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # checkpoint key -> why it was dropped

    def summary(self, show: int = 6) -> str:
        def names(keys: list[str]) -> str:
            more = f", ... (+{len(keys) - show})" if len(keys) > show else ""
            return ", ".join(keys[:show]) + more

        reasons: dict[str, int] = {}
        for reason in self.skipped.values():
            reasons[reason] = reasons.get(reason, 0) + 1
        lines = [f"pretrained {self.path} (layout {self.layout}): loaded {len(self.loaded)} tensors"]
        if self.missing:
            lines.append(f"  missing (kept their init) {len(self.missing)}: {names(self.missing)}")
        if self.unexpected:
            lines.append(f"  unexpected (not loaded) {len(self.unexpected)}: {names(self.unexpected)}")
        for reason, count in reasons.items():
            lines.append(f"  skipped {count}: {reason}")
        return "\n".join(lines)


StateDict = dict[str, torch.Tensor]
Skipped = dict[str, str]


# ---------------------------------------------------------------------------------------------------
# Reading and unwrapping


def read_checkpoint(path: str | Path) -> StateDict:
    """The tensors of a checkpoint file, unwrapped from 'teacher' / 'state_dict' / 'model' containers.

    `.safetensors` files (timm's hub format) are read with safetensors, everything else with
    `torch.load(weights_only=True)`: neither can run code from the file.
    """
    path = Path(path)
    if not path.is_file():
        raise PretrainedError(f"pretrained file {path} does not exist (put weight files under pretrain/, "
                              "see pretrain/README.md)")
    try:
        if path.suffix == ".safetensors":
            obj = safetensors.torch.load_file(str(path), device="cpu")
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a pickle with arbitrary objects, a truncated file, not a torch file at all
        raise PretrainedError(f"{path}: not a weights-only torch checkpoint ({err})") from err
    for container in ("teacher", "state_dict", "model"):
        if isinstance(obj, Mapping) and isinstance(obj.get(container), Mapping):
            obj = obj[container]
    if not isinstance(obj, Mapping):
        raise PretrainedError(f"{path}: expected a mapping of tensors, got {type(obj).__name__}")
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise PretrainedError(f"{path}: holds no tensors (keys: {list(obj)[:8]})")
    return strip_wrapper_prefixes(tensors)


WRAPPER_PREFIXES = ("module.", "model.", "_orig_mod.")  # DataParallel / DDP, Lightning-style, torch.compile


def strip_wrapper_prefixes(state: StateDict) -> StateDict:
    """Remove a wrapper prefix while EVERY key starts with it (a prefix only some keys share is a name)."""
    changed = True
    while changed and state:
        changed = False
        for prefix in WRAPPER_PREFIXES:
            if all(key.startswith(prefix) for key in state):
                state = {key[len(prefix):]: value for key, value in state.items()}
                changed = True
    return state


def strip_prefixes(state: StateDict, prefixes: tuple[str, ...]) -> StateDict:
    """Remove wrapper prefixes (DataParallel's 'module.', MoCo's 'encoder_q.', ...) wherever they lead a key."""
    out = {}
    for key, value in state.items():
        changed = True
        while changed:
            changed = False
            for prefix in prefixes:
                if key.startswith(prefix):
                    key, changed = key[len(prefix):], True
        out[key] = value
    return out


# ---------------------------------------------------------------------------------------------------
# Swin layouts


def _check_relative_index(key: str, value: torch.Tensor, path: str) -> None:
    """A stored relative_position_index must equal ours (we recompute it; a mismatch means another window)."""
    window = int(round(value.shape[0] ** 0.5))
    if value.ndim != 2 or window * window != value.shape[0] or not torch.equal(
            value.long(), relative_position_index(window)):
        raise PretrainedError(f"{path}: {key} is not the standard relative position index of a square window")


def convert_solider(state: StateDict, model: nn.Module, path: str = "") -> tuple[StateDict, Skipped]:
    """SOLIDER (mmseg Swin) teacher -> LewinViT names. Same merge position and 4C order: renames only."""
    state = strip_prefixes(state, ("module.", "backbone."))
    renames = [("patch_embed.projection.", "patch_embed.proj."), ("attn.w_msa.", "attn."),
               ("ffn.layers.0.0.", "mlp.fc1."), ("ffn.layers.1.", "mlp.fc2.")]
    out: StateDict = {}
    skipped: Skipped = {}
    for key, value in state.items():
        if key.startswith("head"):
            skipped[key] = "SOLIDER training head"
        elif key.startswith("semantic_embed_"):
            skipped[key] = "SOLIDER semantic controller (LWTGPF does not use it)"
        elif re.match(r"norm\d*\.", key):
            skipped[key] = "per-stage output LayerNorm (LWTGPF has no final LayerNorm)"
        elif key.endswith("relative_position_index"):
            _check_relative_index(key, value, path)
            skipped[key] = "relative_position_index buffer (recomputed, checked equal)"
        else:
            for old, new in renames:
                key = key.replace(old, new)
            out[key] = value
    return out, skipped


def timm_to_unfold_order(value: torch.Tensor) -> torch.Tensor:
    """Patch-merging tensor with a 4C axis LAST, timm/official order -> nn.Unfold (channel-major) order.

    timm concatenates the 2x2 neighbours (dy, dx) = (0,0), (1,0), (0,1), (1,1): index (2*dx + dy) * C + c.
    SOLIDER/LewinViT use index c * 4 + 2*dy + dx.
    """
    C = value.shape[-1] // 4
    by_neighbour = value.reshape(*value.shape[:-1], 4, C)[..., [0, 2, 1, 3], :]  # neighbours now 2*dy + dx
    return by_neighbour.transpose(-1, -2).reshape(value.shape)


def convert_timm_swin(state: StateDict, model: nn.Module, path: str = "") -> tuple[StateDict, Skipped]:
    """timm (merge at the start of stage i+1) or official (merge at the end of stage i) Swin -> LewinViT."""
    state = strip_prefixes(state, ("module.", "backbone."))
    merge_at_end = any(k.startswith("layers.0.downsample.") for k in state)  # official layout
    out: StateDict = {}
    skipped: Skipped = {}
    for key, value in state.items():
        if key.startswith("head"):
            skipped[key] = "ImageNet classifier"
        elif key.startswith("norm."):
            skipped[key] = "final LayerNorm (LWTGPF has no final LayerNorm)"
        elif key.endswith("attn_mask"):
            skipped[key] = "attn_mask buffer (recomputed)"
        elif key.endswith("relative_position_index"):
            _check_relative_index(key, value, path)
            skipped[key] = "relative_position_index buffer (recomputed, checked equal)"
        elif match := re.match(r"layers\.(\d+)\.downsample\.(.*)", key):
            stage = int(match.group(1)) - (0 if merge_at_end else 1)
            rest = match.group(2)
            if rest in ("norm.weight", "norm.bias", "reduction.weight"):
                value = timm_to_unfold_order(value)
            out[f"stages.{stage}.downsample.{rest}"] = value
        else:
            out[re.sub(r"^layers\.", "stages.", key)] = value
    return out, skipped


# ---------------------------------------------------------------------------------------------------
# Baseline layouts


def convert_resnet50(state: StateDict, model: nn.Module, path: str = "") -> tuple[StateDict, Skipped]:
    """LUPerson (MoCo) / torchvision ResNet-50 -> timm resnet50 names (identical apart from wrappers)."""
    state = strip_prefixes(state, ("module.", "encoder_q.", "backbone.", "base."))
    out: StateDict = {}
    skipped: Skipped = {}
    for key, value in state.items():
        if key.startswith("fc."):
            skipped[key] = "classifier / MoCo projection head"
        elif key.startswith(("encoder_k.", "queue")):
            skipped[key] = "MoCo key encoder / queue"
        else:
            out[key] = value
    return out, skipped


def resize_vit_pos_embed(pos_embed: torch.Tensor, grid: tuple[int, int], num_prefix: int, path: str = ""
                         ) -> torch.Tensor:
    """(1, prefix + g*g, C) square-grid embedding -> (1, prefix + rows*cols, C), bilinear (TransReID's rule)."""
    prefix, patches = pos_embed[:, :num_prefix], pos_embed[0, num_prefix:]
    if patches.shape[0] == grid[0] * grid[1]:
        return pos_embed
    side = int(round(patches.shape[0] ** 0.5))
    if side * side != patches.shape[0]:
        raise PretrainedError(f"{path}: pos_embed has {patches.shape[0]} patch positions: neither a square grid "
                              f"nor the model's {grid[0]}x{grid[1]} grid")
    square = patches.reshape(1, side, side, -1).permute(0, 3, 1, 2)
    resized = F.interpolate(square, size=grid, mode="bilinear", align_corners=False)
    return torch.cat([prefix, resized.permute(0, 2, 3, 1).reshape(1, grid[0] * grid[1], -1)], dim=1)


def convert_vit_small(state: StateDict, model: nn.Module, path: str = "") -> tuple[StateDict, Skipped]:
    """TransReID-SSL / timm ViT-S/16 -> timm names, pos_embed resized to the model's token grid."""
    state = strip_prefixes(state, ("module.", "backbone."))
    out: StateDict = {}
    skipped: Skipped = {}
    for key, value in state.items():
        if key.startswith("head") or key.startswith("fc_norm"):
            skipped[key] = "classification / projection head"
        elif "dist" in key:
            skipped[key] = "distillation token"
        elif key == "pos_embed":
            out[key] = resize_vit_pos_embed(value, model.grid_size, num_prefix=1, path=path)
        else:
            out[key] = value
    return out, skipped


# ---------------------------------------------------------------------------------------------------
# Registry and loading


@dataclass(frozen=True)
class Layout:
    family: str
    detect: Callable[[StateDict], bool]
    convert: Callable[[StateDict, nn.Module, str], tuple[StateDict, Skipped]]


def _has(pattern: str) -> Callable[[StateDict], bool]:
    regex = re.compile(pattern)
    return lambda state: any(regex.search(k) for k in state)


LAYOUTS: dict[str, Layout] = {
    "solider": Layout("swin", _has(r"attn\.w_msa\.qkv\.weight$"), convert_solider),
    "timm_swin": Layout("swin", _has(r"(^|\.)layers\.\d+\.blocks\.\d+\.attn\.qkv\.weight$"), convert_timm_swin),
    "vit_small": Layout("vit_small", _has(r"(^|\.)cls_token$"), convert_vit_small),
    "resnet50": Layout("resnet50", _has(r"(^|\.)layer4\.0\.conv2\.weight$"), convert_resnet50),
}


is_run_checkpoint = _has(r"^necks\.bn\.weight$")  # every ReidModel of this project has BN necks


def camera_embedding_for(saved: torch.Tensor, own: torch.Tensor, path: str = "") -> tuple[torch.Tensor, str]:
    """The camera table (C', 1, D) to load into a model whose table is `own`, from a trained (C, 1, D).

    Same C: the trained rows. Another C: every row the mean of the trained rows (see the module
    docstring). Returns the table and a note for the load report ("" when the rows load as they are).
    """
    if saved.shape[1:] != own.shape[1:]:
        raise PretrainedError(f"{path}: the camera embedding has shape {tuple(saved.shape)}, the model's "
                              f"{tuple(own.shape)}: another model width (another backbone or size?)")
    if saved.shape[0] == own.shape[0]:
        return saved, ""
    mean = saved.float().mean(0, keepdim=True).to(saved.dtype).expand_as(own).clone()
    return mean, (f"camera embedding: trained for {saved.shape[0]} cameras, this dataset has {own.shape[0]}; "
                  "every camera gets the mean of the trained ones (direct-transfer policy)")


def load_run_checkpoint(model: nn.Module, state: StateDict, path: str = "") -> LoadReport:
    """A model saved by this project, as pretrained weights: key by key into the same architecture.

    Lenient about keys (a model with LeFF added keeps its zero-initialised LeFF; unknown keys are
    reported), strict about shapes; the camera embedding follows `camera_embedding_for`.
    """
    own = model.state_dict()
    report = LoadReport(path=path, layout="lwtgpf")
    usable = {}
    for key, value in state.items():
        if key not in own:
            report.unexpected.append(key)
        elif key.endswith("camera_embed"):
            usable[key], note = camera_embedding_for(value, own[key], path)
            if note:
                report.skipped[key] = note
        elif own[key].shape == value.shape:
            usable[key] = value
        else:
            raise PretrainedError(f"{path}: {key} has shape {tuple(value.shape)}, but the model expects "
                                  f"{tuple(own[key].shape)} (another backbone or size?)")
    if not usable:
        raise PretrainedError(f"{path}: no key matches {type(model).__name__}; first keys: {list(state)[:6]}")
    model.load_state_dict(usable, strict=False)
    report.loaded = [k for k in own if k in usable]
    report.missing = [k for k in own if k not in usable]
    return report


def load_model_state(model: nn.Module, state: StateDict, path: str = "") -> LoadReport:
    """Restore a run's own checkpoint into the model its config builds: every key, every shape.

    Raises PretrainedError naming `path` and the keys that are missing, unexpected or of another shape
    (a checkpoint of another backbone, size or LeFF setting). The camera embedding follows
    `camera_embedding_for`, so a checkpoint evaluates on a dataset with another number of cameras.
    """
    state = strip_wrapper_prefixes(dict(state))
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own
             if k in state and state[k].shape != own[k].shape and not k.endswith("camera_embed")]
    if missing or unexpected or wrong:
        parts = [f"{len(wrong)} of another shape (checkpoint vs model): {', '.join(wrong[:3])}" if wrong else "",
                 f"{len(missing)} missing: {', '.join(missing[:3])}" if missing else "",
                 f"{len(unexpected)} unexpected: {', '.join(unexpected[:3])}" if unexpected else ""]
        raise PretrainedError(f"{path}: the checkpoint does not fit this {type(model).__name__} "
                              f"(another backbone, size or model setting?): {'; '.join(p for p in parts if p)}")
    report = LoadReport(path=path, layout="lwtgpf")
    usable = dict(state)
    for key in [k for k in own if k.endswith("camera_embed")]:
        usable[key], note = camera_embedding_for(state[key], own[key], path)
        if note:
            report.skipped[key] = note
    model.load_state_dict(usable, strict=True)
    report.loaded = list(own)
    return report


def detect_layout(state: StateDict, path: str = "") -> str:
    """The one layout whose signature keys the checkpoint has."""
    found = [name for name, layout in LAYOUTS.items() if layout.detect(state)]
    if len(found) != 1:
        what = "no known layout" if not found else f"several layouts {found}"
        raise PretrainedError(f"{path}: {what} recognised (known: {', '.join(LAYOUTS)}); first keys: "
                              f"{list(state)[:6]}. Set model.pretrained_layout explicitly.")
    return found[0]


def load_pretrained(model: nn.Module, path: str | Path, layout: str = "auto") -> LoadReport:
    """Load a published checkpoint (or one of this project's runs) into `model` in place; report it."""
    state = read_checkpoint(path)
    path = str(path)
    if layout == "lwtgpf" or (layout == "auto" and is_run_checkpoint(state)):
        return load_run_checkpoint(model, state, path)
    if layout == "auto":
        layout = detect_layout(state, path)
    if layout not in LAYOUTS:
        raise PretrainedError(f"unknown pretrained layout {layout!r}; known: auto, lwtgpf, {', '.join(LAYOUTS)}")
    spec = LAYOUTS[layout]
    family = getattr(model, "pretrained_family", None)
    if family != spec.family:
        raise PretrainedError(f"{path}: layout {layout!r} holds {spec.family} weights, but "
                              f"{type(model).__name__} loads {family} weights")
    canonical, skipped = spec.convert(state, model, path)
    return copy_into(model, canonical, LoadReport(path=path, layout=layout, skipped=skipped))


def copy_into(model: nn.Module, canonical: StateDict, report: LoadReport) -> LoadReport:
    """Copy canonical backbone tensors to `model.backbone_targets(key)`, shape-checked; fill the report."""
    own = model.state_dict()  # tensors share storage with the parameters and buffers
    loaded: set[str] = set()
    with torch.no_grad():
        for key, value in canonical.items():
            targets = model.backbone_targets(key)
            if not all(t in own for t in targets):
                report.unexpected.append(key)
                continue
            for target in targets:
                if own[target].shape != value.shape:
                    raise PretrainedError(f"{report.path}: {key} has shape {tuple(value.shape)}, but the model's "
                                          f"{target} expects {tuple(own[target].shape)} (another model size or "
                                          f"window size?)")
                own[target].copy_(value)
                loaded.add(target)
    if not loaded:
        raise PretrainedError(f"{report.path}: nothing matched {type(model).__name__} (layout {report.layout}); "
                              f"unexpected keys: {report.unexpected[:6]}")
    report.loaded = [k for k in own if k in loaded]
    report.missing = [k for k in own if k not in loaded]
    return report
