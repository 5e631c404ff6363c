"""A sweep's request and the jobs it expands to: one job per combination of variant x grid values x seed.

    spec = SweepSpec.for_train("synthetic", base=["train.epochs=4"],
                               grid=[("cluster.eps", ["0.4", "0.5"]), ("method", ["lwtgpf", "o2cap"])],
                               seeds=[1, 2, 3])
    spec.validate()          # every combination's config checked before anything runs (SweepError names it)
    for job in spec.jobs():  # 12 jobs: job.id "cluster.eps=0.4__method=lwtgpf__seed=1", job.values, job.settings
        ...

Kinds:
- `train`: each job is `lwtgpf train --config TARGET --set KEY=VALUE ... --out RUN`; settings are config
  keys (`--set` text, parsed by the one config system).
- `notebook`: each job is `lwtgpf notebook TARGET --out RUN -p NAME VALUE ...`; a setting's key is a
  parameter of the notebook's parameters cell, or a dotted config key that goes into the notebook's
  `[config]` dict parameter; the seed goes to a parameter tagged `[train.seed]`, else into that dict.

Axes, in order: `variant` (named sets of settings that go together, e.g. "LWTGPF + LeFF" = method=lwtgpf
and model.leff_stages=[...]), the grid keys (each a list of values; the grid is their product) and
`seed`. Settings apply in the order base, variant, grid, seed; a key may be set by only one axis.
Values are kept as the text a user types (`0.5`, `[true,true,false,false]`, `o2cap`), so every job's
command is exactly what one would type by hand. Relative paths in values are relative to `cwd`, the
folder the sweep was started from (every job runs there).
"""
from __future__ import annotations

import hashlib
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import yaml

from lwtgpf.errors import UserError

KINDS = ("train", "notebook")
SEED_AXIS = "seed"
VARIANT_AXIS = "variant"
SEED_KEY = "train.seed"
MAX_ID_LENGTH = 120


class SweepError(UserError):
    """A sweep request that cannot run (a bad grid, an invalid combination, a sweep folder that holds
    another sweep); the message names the key, value or job."""


@dataclass(frozen=True)
class Job:
    """One combination. id: its folder name under SWEEP/runs/; values: {axis: value} (grid values as text,
    the variant's name, the seed as int); settings: the `key=value` texts it applies, in order."""
    id: str
    values: dict[str, Any]
    settings: tuple[str, ...]


@dataclass
class SweepSpec:
    """What a sweep runs: see the module docstring. `target` is a preset name or YAML file (train) or a
    notebook name or .ipynb file (notebook); files are stored absolute."""
    kind: str
    target: str
    base: list[str] = field(default_factory=list)
    grid: list[tuple[str, list[str]]] = field(default_factory=list)
    variants: list[tuple[str, list[str]]] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    cwd: str = ""

    # ---- building ----------------------------------------------------------------------------------
    @classmethod
    def create(cls, kind: str, target: str, base: Iterable[str] = (), grid: Iterable[str | tuple[str, Sequence[Any]]] = (),
               variants: Iterable[tuple[str, Sequence[str]]] = (), seeds: Iterable[int] = (),
               cwd: str | Path | None = None) -> "SweepSpec":
        """A checked request. grid items: `"key=v1,v2"` (CLI text; commas inside [] {} or quotes do not
        split) or (key, [values]); variants: (name, ["key=value", ...]). Raises SweepError."""
        if kind not in KINDS:
            raise SweepError(f"sweep kind must be one of {', '.join(KINDS)}, got {kind!r}")
        if not target:
            raise SweepError("a new sweep needs --config PRESET (train runs) or --notebook NAME (notebook runs)")
        cwd = Path(cwd or Path.cwd()).absolute()
        target = str(target)
        if Path(target).suffix in (".yaml", ".yml", ".ipynb"):
            target = str((cwd / Path(target).expanduser()).resolve())
        spec = cls(kind=kind, target=target, base=[_setting(s, "--set") for s in base],
                   grid=[_grid_axis(item) for item in grid],
                   variants=[(str(name), [_setting(s, f"--variant {name}") for s in settings])
                             for name, settings in variants],
                   seeds=[_seed(s) for s in seeds], cwd=str(cwd))
        spec._check_axes()
        return spec

    def _check_axes(self) -> None:
        keys = [key for key, _ in self.grid]
        for key in keys:
            if keys.count(key) > 1:
                raise SweepError(f"--grid {key} is given twice; put all its values in one --grid {key}=a,b,...")
            if key in (SEED_AXIS, SEED_KEY):
                raise SweepError(f"--grid {key}: seeds are their own axis; use --seeds 1 2 3")
            if key == VARIANT_AXIS:
                raise SweepError("--grid variant: variants are named with --variant NAME KEY=VALUE ...")
        for key, values in self.grid:
            if not values:
                raise SweepError(f"--grid {key}= has no values")
            if len(set(values)) != len(values):
                raise SweepError(f"--grid {key}: a value is repeated in {','.join(values)}")
        names = [name for name, _ in self.variants]
        for name, settings in self.variants:
            if not name or names.count(name) > 1:
                raise SweepError(f"--variant {name!r}: variant names must be non-empty and unique")
            for setting in settings:
                key = setting.partition("=")[0]
                if key in keys:
                    raise SweepError(f"{key} is set both by --variant {name} and by --grid {key}: pick one")
                if key == SEED_KEY and self.seeds:
                    raise SweepError(f"--variant {name} sets {SEED_KEY} and --seeds is given: pick one")
        if len(set(self.seeds)) != len(self.seeds):
            raise SweepError(f"--seeds repeats a seed: {self.seeds}")
        if self.seeds and any(s.partition("=")[0] == SEED_KEY for s in self.base):
            raise SweepError(f"--set {SEED_KEY}=... and --seeds are both given: pick one")

    # ---- what it expands to --------------------------------------------------------------------------
    @property
    def axes(self) -> list[str]:
        """The keys that vary between jobs, in order: variant, grid keys, seed (only those given)."""
        return ([VARIANT_AXIS] if self.variants else []) + [k for k, _ in self.grid] + ([SEED_AXIS] if self.seeds else [])

    def jobs(self) -> list[Job]:
        """Every combination, variants outermost, seeds innermost; ids unique (a hash is added on a clash)."""
        combos: list[tuple[dict[str, Any], list[str], list[str]]] = [({}, list(self.base), [])]
        if self.variants:
            combos = [({**v, VARIANT_AXIS: name}, s + settings, p + [_slug(name)])
                      for v, s, p in combos for name, settings in self.variants]
        for key, values in self.grid:
            combos = [({**v, key: value}, s + [f"{key}={value}"], p + [_slug(f"{key}={value}")])
                      for v, s, p in combos for value in values]
        if self.seeds:
            combos = [({**v, SEED_AXIS: seed}, s + [f"{SEED_KEY}={seed}"], p + [f"seed={seed}"])
                      for v, s, p in combos for seed in self.seeds]
        jobs, seen = [], set()
        for values, settings, parts in combos:
            job_id = "__".join(parts) or "run"
            digest = hashlib.sha256(json.dumps(settings).encode()).hexdigest()[:8]
            if len(job_id) > MAX_ID_LENGTH:
                job_id = f"{job_id[:MAX_ID_LENGTH - 9]}-{digest}"
            if job_id in seen:
                job_id = f"{job_id}-{digest}"
            seen.add(job_id)
            jobs.append(Job(job_id, values, tuple(settings)))
        return jobs

    def command(self, job: Job, run_dir: str | Path, resume: bool = False) -> list[str]:
        """The `lwtgpf` command of one job (this interpreter: `python -m lwtgpf.cli ...`), run from `cwd`.

        train: `train --config TARGET --set ... --out RUN` (+ `--resume` to continue a run that stopped);
        notebook: `notebook TARGET --out RUN -p NAME VALUE ...` (`notebook_parameters`)."""
        head = [sys.executable, "-m", "lwtgpf.cli"]
        if self.kind == "train":
            sets = [arg for setting in job.settings for arg in ("--set", setting)]
            return [*head, "train", "--config", self.target, *sets, "--out", str(run_dir),
                    *(["--resume"] if resume else [])]
        pairs = [arg for name, text in self.notebook_parameters(job) for arg in ("-p", name, text)]
        return [*head, "notebook", self.target, "--out", str(run_dir), *pairs]

    def notebook_parameters(self, job: Job) -> list[tuple[str, str]]:
        """(name, text) pairs of `lwtgpf notebook -p` for a notebook job: parameters as given, config keys
        (and the seed) merged into the notebook's `[config]` dict parameter (JSON text)."""
        from lwtgpf.notebooks import notebook_parameters

        spec = notebook_parameters(self.target)
        seed_params = [p.name for p in spec.values() if p.config_key == SEED_KEY]
        dict_params = [p.name for p in spec.values() if p.is_overrides]
        pairs: dict[str, str] = {}
        config_keys: dict[str, str] = {}
        for setting in job.settings:
            key, _, text = setting.partition("=")
            if key == SEED_KEY and seed_params:
                key = seed_params[0]
            if key in spec:
                pairs[key] = text
            elif "." in key or key == "method":
                config_keys[key] = text
            else:
                raise SweepError(f"notebook {Path(self.target).stem!r} has no parameter {key!r}; "
                                 f"its parameters: {', '.join(spec)}")
        if config_keys:
            if not dict_params:
                raise SweepError(f"notebook {Path(self.target).stem!r} has no [config] parameter to take "
                                 f"{', '.join(config_keys)}; sweep its own parameters: {', '.join(spec)}")
            name = dict_params[0]
            given = yaml.safe_load(pairs[name]) if name in pairs else dict(spec[name].default)
            if not isinstance(given, dict):
                raise SweepError(f"parameter {name!r} expects a dict of config overrides, got {pairs[name]!r}")
            pairs[name] = json.dumps({**given, **_typed(config_keys)})
        return list(pairs.items())

    def validate(self) -> None:
        """Check every job's settings with the one config system (train: `load_config`; notebook: the
        notebook's parameter checks) before any job runs. SweepError names the job and the key."""
        from lwtgpf.config import load_config

        for job in self.jobs():
            try:
                if self.kind == "train":
                    load_config(self.target, list(job.settings))
                else:
                    from lwtgpf.notebooks import parse_cli_parameters

                    parse_cli_parameters(self.target, self.notebook_parameters(job), cwd=self.cwd)
            except SweepError:
                raise
            except UserError as err:
                raise SweepError(f"combination {job.id}: {err}") from None

    # ---- storage (sweep.yaml) ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "target": self.target, "base": list(self.base),
                "grid": {key: list(values) for key, values in self.grid},
                "variants": {name: list(settings) for name, settings in self.variants},
                "seeds": list(self.seeds), "cwd": self.cwd}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "sweep.yaml") -> "SweepSpec":
        try:
            return cls(kind=data["kind"], target=data["target"], base=list(data.get("base") or []),
                       grid=[(str(k), [str(v) for v in vs]) for k, vs in (data.get("grid") or {}).items()],
                       variants=[(str(k), list(vs)) for k, vs in (data.get("variants") or {}).items()],
                       seeds=[int(s) for s in data.get("seeds") or []], cwd=str(data.get("cwd") or ""))
        except (KeyError, TypeError, ValueError) as err:
            raise SweepError(f"{source}: not a sweep request ({type(err).__name__}: {err})") from None


def split_values(text: str) -> list[str]:
    """`0.4,0.5` -> ["0.4", "0.5"]; commas inside brackets, braces or quotes do not split:
    `[true,false],[false,true]` -> ["[true,false]", "[false,true]"]."""
    values, depth, quote, start = [], 0, "", 0
    for i, char in enumerate(text):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "[{(":
            depth += 1
        elif char in "]})":
            depth -= 1
        elif char == "," and depth == 0:
            values.append(text[start:i].strip())
            start = i + 1
    values.append(text[start:].strip())
    return [v for v in values if v != ""]


def _grid_axis(item: str | tuple[str, Sequence[Any]]) -> tuple[str, list[str]]:
    if isinstance(item, str):
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise SweepError(f"--grid {item!r} is not of the form KEY=VALUE1,VALUE2,...")
        return key.strip(), split_values(text)
    key, values = item
    return str(key), [v if isinstance(v, str) else json.dumps(v) for v in values]


def _setting(text: str, option: str) -> str:
    key, sep, value = str(text).partition("=")
    if not sep or not key.strip():
        raise SweepError(f"{option} {text!r} is not of the form KEY=VALUE")
    return f"{key.strip()}={value}"


def _seed(value: Any) -> int:
    try:
        seed = int(value)
    except (TypeError, ValueError):
        raise SweepError(f"--seeds: {value!r} is not an integer") from None
    if seed < 0:
        raise SweepError(f"--seeds: {seed} must be >= 0")
    return seed


def _slug(text: str) -> str:
    """A folder-name-safe form of `key=value` text."""
    return re.sub(r"[^A-Za-z0-9._=+-]+", "_", text).strip("_") or "_"


def _typed(settings: Mapping[str, str]) -> dict[str, Any]:
    """`key=value` texts read by the config system (so `train.amp=off` stays "off"), as plain values."""
    from lwtgpf.config import load_config

    flat = load_config(None, [f"{k}={v}" for k, v in settings.items()], validate=False).flat()
    return {key: flat[key] for key in settings}
