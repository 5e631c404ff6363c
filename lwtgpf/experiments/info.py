"""`lwtgpf info`: what produced a run, printed readably, and what differs between two runs, key by key.

    print(describe("runs/exp1"))                 # a training run, a notebook run or a sweep folder
    for key, a, b in differences("runs/a", "runs/b"):
        ...                                      # ("config.train.seed", 1, 2), ("provenance.packages.torch", ...)
    print(format_differences("runs/a", "runs/b"))

A folder's record (`folder_record`) is flat: `config.<section.key>` (config.yaml), `provenance.<...>`
(provenance.json, nested keys joined with dots: `provenance.code.git_commit`,
`provenance.packages.torch`, `provenance.datasets.synthetic.train`), `parameters.<name>` (a notebook
run's parameters) and `metrics.<name>` (metrics.json). Reading goes through `RunFolder`.

Differences are sorted into three kinds: causes (config, parameters, code, packages, machine, seed,
dataset fingerprints: what can make two runs differ), results (metrics) and bookkeeping that differs
between any two runs (start / end times, seconds, the command line with its --out, the notebook's
run_dir, the sweep job's name): `format_differences` lists the causes key by key, then the results,
and counts the bookkeeping keys (`show_all=True` lists them too).
"""
from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import yaml

from lwtgpf.errors import UserError
from lwtgpf.run_folder import CONFIG, RunFolder

MISSING = "<missing>"
BOOKKEEPING = re.compile(
    r"^provenance\.(started|ended|seconds|phase_seconds(\..*)?|resumed|command|status|returncode|"
    r"environment\.LWTGPF_SWEEP_JOB|environment\.LWTGPF_NOTEBOOK_RUN|parameters\.run_dir)$"
    r"|^parameters\.run_dir$"
)
PARAMETERS = "parameters.yaml"
STAMP = "%Y-%m-%d %H:%M:%S"  # the time format of provenance.json


class InfoError(UserError):
    """A folder that is not a run folder, a notebook run folder or a sweep folder."""


def folder_kind(path: str | Path) -> str:
    """"sweep", "train" (config.yaml), "notebook" (parameters.yaml or a notebook provenance), or InfoError."""
    from lwtgpf.experiments.manifest import SweepFolder

    path = Path(path)
    if not path.is_dir():
        raise InfoError(f"{path} is not a folder")
    if SweepFolder.is_sweep(path):
        return "sweep"
    if (path / CONFIG).is_file():
        return "train"
    if (path / PARAMETERS).is_file() or RunFolder(path).read_provenance().get("kind") == "notebook":
        return "notebook"
    raise InfoError(f"{path} is not a run folder (no config.yaml, no parameters.yaml, no provenance.json)")


def folder_record(path: str | Path) -> dict[str, Any]:
    """The flat record of a run folder (see the module docstring); lists stay values."""
    path = Path(path)
    kind = folder_kind(path)
    if kind == "sweep":
        raise InfoError(f"{path} is a sweep folder; `lwtgpf info` compares two run folders (e.g. {path}/runs/<job>)")
    run = RunFolder(path)
    record: dict[str, Any] = {}
    if kind == "train":
        record.update({f"config.{k}": v for k, v in run.read_config().flat().items()})
    else:
        record.update({f"parameters.{k}": v for k, v in _read_parameters(path).items()})
    record.update(_flatten(run.read_provenance(), "provenance."))
    record.update(_flatten(run.read_metrics(), "metrics."))
    return record


def differences(a: str | Path, b: str | Path) -> list[tuple[str, Any, Any]]:
    """(key, value in a, value in b) for every key of the two records that differs (MISSING where one
    lacks it), in the order of a's record then b's."""
    ra, rb = folder_record(a), folder_record(b)
    keys = list(dict.fromkeys([*ra, *rb]))
    return [(k, ra.get(k, MISSING), rb.get(k, MISSING)) for k in keys if ra.get(k, MISSING) != rb.get(k, MISSING)]


def format_differences(a: str | Path, b: str | Path, show_all: bool = False) -> str:
    """The differences of two runs as text: causes key by key, results, bookkeeping (counted or listed)."""
    diffs = differences(a, b)
    causes = [d for d in diffs if not d[0].startswith("metrics.") and not BOOKKEEPING.match(d[0])]
    results = [d for d in diffs if d[0].startswith("metrics.")]
    bookkeeping = [d for d in diffs if BOOKKEEPING.match(d[0])]
    lines = [f"A = {Path(a).absolute()}", f"B = {Path(b).absolute()}"]
    if causes:
        width = max(len(k) for k, _, _ in causes)
        lines.append(f"{len(causes)} setting(s) differ (config, parameters, code, packages, machine, seed, data):")
        lines += [f"  {k:<{width}}  A: {_show(va)}  B: {_show(vb)}" for k, va, vb in causes]
    else:
        lines.append("same config, parameters, code, packages, machine, seed and dataset fingerprints")
    if results:
        lines.append("results: " + ", ".join(f"{k[len('metrics.'):]} {_show(va)} -> {_show(vb)}" for k, va, vb in results))
    if bookkeeping and show_all:
        lines.append("bookkeeping (differs between any two runs):")
        width = max(len(k) for k, _, _ in bookkeeping)
        lines += [f"  {k:<{width}}  A: {_show(va)}  B: {_show(vb)}" for k, va, vb in bookkeeping]
    elif bookkeeping:
        lines.append(f"(and {len(bookkeeping)} bookkeeping key(s) that differ between any two runs: times, seconds, "
                     "command line, output folder; --all lists them)")
    return "\n".join(lines)


def describe(path: str | Path) -> str:
    """What produced a run (or what a sweep holds), as readable lines."""
    path = Path(path)
    kind = folder_kind(path)
    if kind == "sweep":
        return _describe_sweep(path)
    run = RunFolder(path)
    prov = run.read_provenance()
    metrics = run.read_metrics()
    lines = [f"{'training run' if kind == 'train' else 'notebook run'} {run.path}"]
    if not prov:
        lines.append("  (no provenance.json: written by a version of lwtgpf before provenance was recorded)")
    else:
        lines += _describe_provenance(prov)
    if kind == "notebook":
        lines += _describe_notebook(run.path, prov)
    if metrics:
        lines.append("  metrics     " + "  ".join(f"{k} {v}" for k, v in metrics.items()))
    if kind == "train":
        lines += _describe_config(run)
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------


def _describe_provenance(prov: dict[str, Any]) -> list[str]:
    code = prov.get("code") or {}
    commit = code.get("git_commit")
    state = {True: " (dirty: uncommitted changes in tracked files)", False: " (clean)", None: ""}[code.get("git_dirty")]
    version = f"lwtgpf {code.get('package') or '?'}" + (f", git {commit[:12]}{state}" if commit else ", no git checkout")
    packages = prov.get("packages") or {}
    shown = ", ".join(f"{name} {packages[name]}" for name in packages if name != "lwtgpf")
    threads = prov.get("torch_threads")
    cuda = ", ".join(prov.get("cuda_devices") or []) or "none"
    lines = [f"  code        {version}",
             f"  python      {prov.get('python', '?')}; {shown}",
             f"  machine     {prov.get('host', '?')} ({prov.get('platform', '?')}), {prov.get('cpu_count', '?')} CPU(s), "
             f"device {prov.get('device') or '-'}, torch threads {threads if threads is not None else '-'}, CUDA: {cuda}"]
    env = prov.get("environment") or {}
    if env:
        lines.append("  environment " + " ".join(f"{k}={v}" for k, v in env.items()))
    lines.append(f"  command     {prov.get('command', '?')}  (in {prov.get('cwd', '?')})")
    lines.append(f"  seed        {prov.get('seed', '?')}")
    for name, splits in (prov.get("datasets") or {}).items():
        parts = [f"{split} {splits[split]} ({splits.get(f'{split}_size', '?')} crops)"
                 for split in ("train", "query", "gallery") if split in splits]
        lines.append(f"  dataset     {name}: " + ", ".join(parts))
    ended = prov.get("ended") or "not ended"
    phases = prov.get("phase_seconds") or {}
    timing = f"  time        {prov.get('started', '?')} -> {ended}"
    seconds = prov.get("seconds")
    if seconds is None and prov.get("ended"):
        try:
            seconds = time.mktime(time.strptime(prov["ended"], STAMP)) - time.mktime(time.strptime(prov["started"], STAMP))
        except (KeyError, TypeError, ValueError):
            seconds = None
    if seconds is not None:
        timing += f" ({seconds / 60:.1f} min)"
    if phases:
        timing += "; " + ", ".join(f"{k} {v:.1f} s" for k, v in phases.items())
    lines.append(timing)
    for resume in prov.get("resumed") or []:
        lines.append(f"  resumed     {resume.get('at')}: {resume.get('command')}"
                     + (f" (changed {', '.join(resume['changes'])})" if resume.get("changes") else ""))
    return lines


def _describe_notebook(path: Path, prov: dict[str, Any]) -> list[str]:
    lines = []
    if prov.get("notebook"):
        lines.append(f"  notebook    {prov['notebook']} ({prov.get('notebook_file')}, sha256 {prov.get('notebook_fingerprint')}),"
                     f" kernel {prov.get('kernel')}, status {prov.get('status')}")
    parameters = prov.get("parameters") or _read_parameters(path)
    for name, value in parameters.items():
        lines.append(f"  parameter   {name} = {value!r}")
    for config in sorted(path.glob(f"**/{CONFIG}")):
        lines.append(f"  trained     {config.parent}  (`lwtgpf info {config.parent}`)")
    return lines


def _describe_config(run: RunFolder) -> list[str]:
    from lwtgpf.config import Config

    defaults = Config().flat()
    flat = run.read_config().flat()
    changed = [k for k in flat if flat[k] != defaults.get(k)]
    lines = [f"  config      {run.config} ({len(changed)} of {len(flat)} keys differ from the reference recipe):"]
    lines += [f"    {k} = {_show(flat[k])}" for k in changed]
    return lines


def _describe_sweep(path: Path) -> str:
    from lwtgpf.experiments.manifest import SweepFolder

    sweep = SweepFolder.of(path)
    spec = sweep.read_spec()
    lines = [f"sweep {sweep.path}: {spec.kind} {spec.target}",
             f"  base        {' '.join(spec.base) or '-'}",
             *[f"  grid        {k} = {', '.join(v)}" for k, v in spec.grid],
             *[f"  variant     {name}: {' '.join(s)}" for name, s in spec.variants],
             f"  seeds       {' '.join(map(str, spec.seeds)) or '-'}",
             f"  runs from   {spec.cwd}"]
    lines += ["  " + line for line in sweep.status_lines()]
    return "\n".join(lines)


def _read_parameters(path: Path) -> dict[str, Any]:
    file = path / PARAMETERS
    if not file.is_file():
        return {}
    try:
        data = yaml.safe_load(file.read_text()) or {}
    except yaml.YAMLError as err:
        raise InfoError(f"{file}: not valid YAML ({err})") from None
    return dict(data)


def _flatten(data: Any, prefix: str) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in (data or {}).items():
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _show(value: Any, width: int = 70) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= width else text[: width - 3] + "..."
