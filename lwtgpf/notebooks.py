"""The workbench notebooks' parameters, read and checked before any kernel starts.

Every notebook in `notebooks/` has one code cell tagged `parameters` (papermill's convention) made of
plain assignments, one per line, each with a comment that says what it is:

    epochs = 3              # [train.epochs] epochs to train
    data_root = "../benchmarks"  # [path] datasets folder
    preset = "synthetic"    # config preset (lwtgpf/configs/)

A `[section.key]` tag says the parameter is that config key: its value is checked by the one config
system (`lwtgpf.config.load_config`), so a wrong type is the same error as `--set section.key=...`.
A `[config]` tag marks a dict of further config overrides (`{"cluster.eps": 0.6}`), checked the same
way. A `[path]` tag says the value is a file or folder: values given on the command line are made
absolute (the kernel runs in `notebooks/`, as it does in JupyterLab). Other parameters must keep the
type of their default (an int may stand for a float; a `None` default takes anything). Every notebook
has a `run_dir` parameter: the folder its outputs go to (`run_notebook` sets it).

This module reads the .ipynb with json + ast only: it never imports Jupyter or papermill. `run_notebook`
runs papermill in a subprocess (`python -m papermill`), after every check has passed.
"""
from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from lwtgpf.config import Config, ConfigError, load_config
from lwtgpf.errors import UserError
from lwtgpf.fileio import write_json_atomic
from lwtgpf.run_folder import RunFolder

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
RUN_DIR_PARAMETER = "run_dir"  # every notebook writes its outputs (figures, executed copy) here
_TAG = re.compile(r"#\s*(?:\[(?P<tag>[\w.]+)\])?\s*(?P<help>.*)$")


class NotebookError(UserError):
    """A notebook that does not exist, a malformed parameters cell, or a bad parameter (named)."""


@dataclass(frozen=True)
class NotebookParameter:
    name: str
    default: Any
    help: str = ""
    tag: str = ""  # "", "path", "config" (a dict of overrides) or the config key this parameter sets

    @property
    def config_key(self) -> str:
        return "" if self.tag in ("", "path", "config") else self.tag

    @property
    def is_path(self) -> bool:
        return self.tag == "path"

    @property
    def is_overrides(self) -> bool:
        return self.tag == "config"

    def config_overrides(self, value: Any) -> dict[str, Any]:
        """What this parameter's value adds to the notebook's `load_config` overrides."""
        if self.is_overrides:
            return dict(value)
        return {self.config_key: value} if self.config_key else {}

    def describe(self) -> str:
        tag = f" [{self.tag}]" if self.tag else ""
        return f"{self.name} = {self.default!r}{tag}  {self.help}".rstrip()


def available_notebooks(folder: Path = NOTEBOOK_DIR) -> list[str]:
    return sorted(p.stem for p in folder.glob("*.ipynb"))


def find_notebook(name: str | Path, folder: Path = NOTEBOOK_DIR) -> Path:
    """`name` is a notebook in `notebooks/` (with or without .ipynb) or a path to an .ipynb file."""
    path = Path(name)
    if path.suffix == ".ipynb" and path.is_file():
        return path
    path = folder / f"{Path(name).stem}.ipynb"
    if not path.is_file():
        raise NotebookError(f"unknown notebook {str(name)!r}; available: {', '.join(available_notebooks(folder))}")
    return path


def notebook_parameters(notebook: str | Path) -> dict[str, NotebookParameter]:
    """The parameters cell of `notebook`, in order; raises NotebookError when it is missing or not plain."""
    path = find_notebook(notebook)
    try:
        cells = json.loads(path.read_text())["cells"]
    except (json.JSONDecodeError, KeyError) as err:
        raise NotebookError(f"{path}: not a notebook file ({err})") from err
    tagged = [c for c in cells
              if c.get("cell_type") == "code" and "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(tagged) != 1:
        raise NotebookError(f"{path}: expected one code cell tagged 'parameters', found {len(tagged)}")
    source = "".join(tagged[0]["source"])
    try:
        body = ast.parse(source).body
    except SyntaxError as err:
        raise NotebookError(f"{path}: the parameters cell is not valid Python ({err})") from err
    params: dict[str, NotebookParameter] = {}
    for node in body:
        param = _parameter_of(node, source.splitlines(), path)
        try:  # a config tag must be a real config key, and the default must fit it
            load_config(None, param.config_overrides(param.default), validate=False)
        except (ConfigError, TypeError) as err:
            raise NotebookError(f"{path}: parameter {param.name!r}: {err}") from err
        params[param.name] = param
    if RUN_DIR_PARAMETER not in params:
        raise NotebookError(f"{path}: the parameters cell has no {RUN_DIR_PARAMETER!r} (where outputs go)")
    return params


def parse_cli_parameters(
    notebook: str | Path, pairs: Iterable[tuple[str, str]], cwd: str | Path = "."
) -> dict[str, Any]:
    """`-p NAME VALUE` pairs (strings) -> checked values. Strings stay strings for str parameters, else
    the text is read as YAML (`3`, `0.5`, `true`, `[1, 2]`); `[path]` values become absolute from `cwd`."""
    spec = notebook_parameters(notebook)
    values: dict[str, Any] = {}
    for name, text in pairs:
        param = _known(spec, name, notebook)
        if isinstance(param.default, str):
            value: Any = text
        else:
            try:
                value = yaml.safe_load(text)
            except yaml.YAMLError as err:
                raise NotebookError(f"parameter {name!r}: cannot read {text!r} ({err})") from err
        if param.is_path and value:
            value = str((Path(cwd) / value).resolve())
        values[name] = value
    return check_parameters(notebook, values)


def check_parameters(notebook: str | Path, values: Mapping[str, Any]) -> dict[str, Any]:
    """Check Python values against the parameters cell; returns them (ints widened where a float is due).

    Config-backed parameters go through `load_config`, one by one (the error names the parameter), then
    together with the notebook's `preset` parameter, exactly as the notebook will build its config.
    """
    spec = notebook_parameters(notebook)
    checked: dict[str, Any] = {}
    for name, value in values.items():
        param = _known(spec, name, notebook)
        if param.config_key or param.is_overrides:
            if param.is_overrides and not isinstance(value, dict):
                raise NotebookError(f"parameter {name!r} expects a dict of config overrides, got {value!r}")
            try:  # types, ranges and registry names (method, data.dataset, model.backbone); rules between
                cfg = load_config(None, param.config_overrides(value), validate=False)  # keys: below
            except ConfigError as err:
                raise NotebookError(f"parameter {name!r}: {err}") from err
            checked[name] = _lookup(cfg, param.config_key) if param.config_key else value
        else:
            checked[name] = _check_type(param, value)
    try:  # all config-backed parameters together, as the notebook builds its config
        _notebook_config(spec, checked)
    except ConfigError as err:
        together = "parameter 'preset' with the config parameters" if "preset" in spec else "the config parameters"
        raise NotebookError(f"{together}: {err}") from err
    return checked


def _notebook_config(spec: Mapping[str, NotebookParameter], values: Mapping[str, Any]) -> Config:
    """The config the notebook's config-backed parameters make (its `preset` parameter, if any, first)."""
    merged = {n: values.get(n, p.default) for n, p in spec.items()}
    overrides = {k: v for n, p in spec.items() for k, v in p.config_overrides(merged[n]).items()}
    return load_config(merged.get("preset") or None, overrides)


def papermill_command(notebook: Path, output: Path, parameters_file: Path, kernel: str = "python3") -> list[str]:
    """papermill in a subprocess, the kernel started in `notebooks/` as JupyterLab starts it."""
    return [
        sys.executable, "-m", "papermill", str(notebook), str(output), "-f", str(parameters_file),
        "--cwd", str(notebook.parent), "-k", kernel, "--log-output", "--no-progress-bar",
    ]


def run_notebook(
    notebook: str | Path, parameters: Mapping[str, Any], run_dir: str | Path, kernel: str = "python3",
    env: Mapping[str, str] | None = None,
) -> Path:
    """Check `parameters`, then execute `notebook` headless into `run_dir`; returns the executed notebook.

    `run_dir` must be new or empty (runs never overwrite runs); it receives `parameters.yaml`, the
    executed `<name>.ipynb`, `provenance.json` and whatever the notebook writes (figures/, the training
    run). provenance.json (`notebook_provenance`) is written before the kernel starts and completed
    when papermill ends (status done / failed / interrupted, end time, seconds); the kernel gets
    LWTGPF_NOTEBOOK_RUN=<run_dir>, so the provenance of every run a Trainer writes inside names it.
    """
    path = find_notebook(notebook)
    if RUN_DIR_PARAMETER in parameters:
        raise NotebookError("the run folder is run_notebook's run_dir argument (CLI: --out), not a parameter")
    run_dir = Path(run_dir).resolve()
    if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
        raise NotebookError(f"run folder {run_dir} is not empty; pick a new --out")
    checked = check_parameters(path, {**parameters, RUN_DIR_PARAMETER: str(run_dir)})
    run_dir.mkdir(parents=True, exist_ok=True)
    parameters_file = run_dir / "parameters.yaml"
    parameters_file.write_text(yaml.safe_dump(checked, sort_keys=False))
    output = run_dir / path.name
    provenance = RunFolder(run_dir).provenance
    record = notebook_provenance(path, checked, kernel)
    write_json_atomic(provenance, record)
    env = {**(os.environ if env is None else env), "LWTGPF_NOTEBOOK_RUN": str(run_dir)}
    started = time.perf_counter()
    status = "interrupted"
    try:
        done = subprocess.run(papermill_command(path, output, parameters_file, kernel), env=env)
        status = "done" if done.returncode == 0 else "failed"
    finally:
        record.update(ended=time.strftime("%Y-%m-%d %H:%M:%S"), seconds=round(time.perf_counter() - started, 3),
                      status=status, returncode=done.returncode if status != "interrupted" else None)
        write_json_atomic(provenance, record)
    if done.returncode != 0:
        raise NotebookError(f"notebook {path.stem!r} failed (papermill exit {done.returncode}); "
                            f"the executed notebook with the error is {output}")
    return output


def notebook_provenance(notebook: str | Path, parameters: Mapping[str, Any], kernel: str = "python3") -> dict[str, Any]:
    """What a notebook run folder's provenance.json starts as: the environment (`collect_environment`:
    code version, packages, machine, command line), the notebook (name, file, sha256 fingerprint of the
    .ipynb), its checked parameters, the seed of the config its parameters make (`train.seed`; None for a
    notebook without config parameters), the kernel and the start time; `run_notebook` adds the end
    time, seconds, status and papermill's exit code."""
    from lwtgpf.provenance import collect_environment, file_fingerprint

    path = find_notebook(notebook)
    spec = notebook_parameters(path)
    configured = any(p.config_key or p.is_overrides for p in spec.values())  # else the notebook trains nothing
    return {"kind": "notebook", "notebook": path.stem, "notebook_file": str(path.resolve()),
            "notebook_fingerprint": file_fingerprint(path), "kernel": kernel, "parameters": dict(parameters),
            "seed": _notebook_config(spec, parameters).train.seed if configured else None,
            "started": time.strftime("%Y-%m-%d %H:%M:%S"), "ended": None, "seconds": None, "status": "running",
            **collect_environment()}


def latest_run(runs_folder: str | Path = "../runs") -> Path:
    """The most recently written training run (a folder with checkpoints/last.pt) under `runs_folder`."""
    from lwtgpf.run_folder import iter_runs

    runs = iter_runs(runs_folder)
    if not runs:
        raise FileNotFoundError(
            f"no finished run under {Path(runs_folder).resolve()}: run the quickstart notebook "
            "(or `lwtgpf train`) first, or set the source_run parameter"
        )
    return runs[-1].path


def _parameter_of(node: ast.stmt, lines: list[str], path: Path) -> NotebookParameter:
    """One `name = literal  # [tag] help` line of the parameters cell."""
    if isinstance(node, ast.Assign) and len(node.targets) == 1:
        target = node.targets[0]
    elif isinstance(node, ast.AnnAssign) and node.value is not None:
        target = node.target
    else:
        target = None
    if not isinstance(target, ast.Name):
        raise NotebookError(f"{path}: parameters cell line {node.lineno} is not `name = value`")
    try:
        default = ast.literal_eval(node.value)
    except ValueError as err:
        raise NotebookError(f"{path}: parameter {target.id!r} needs a literal default ({err})") from err
    comment = _TAG.search(lines[node.end_lineno - 1][node.end_col_offset:])
    tag = (comment.group("tag") or "") if comment else ""
    return NotebookParameter(target.id, default, comment.group("help").strip() if comment else "", tag)


def _known(spec: Mapping[str, NotebookParameter], name: str, notebook: str | Path) -> NotebookParameter:
    if name not in spec:
        raise NotebookError(
            f"notebook {Path(notebook).stem!r} has no parameter {name!r}; its parameters: {', '.join(spec)}"
        )
    return spec[name]


def _check_type(param: NotebookParameter, value: Any) -> Any:
    expected = type(param.default)
    if param.default is None or isinstance(value, expected) and not (isinstance(value, bool) and expected is int):
        return value
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    raise NotebookError(
        f"parameter {param.name!r} expects {expected.__name__} (default {param.default!r}), "
        f"got {value!r} ({type(value).__name__})"
    )


def _lookup(cfg: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        cfg = getattr(cfg, part)
    return list(cfg) if isinstance(cfg, tuple) else cfg
