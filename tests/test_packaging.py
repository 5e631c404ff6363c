"""pyproject.toml and environment.yml must name the same packages, and the core stays Jupyter-free."""
import ast
import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
# pip name -> conda-forge name on the GPU route
CONDA_NAME = {"torch": "pytorch-gpu", "faiss-cpu": "faiss-gpu", "faiss-gpu-cu12": "faiss-gpu"}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement, maxsplit=1)[0].strip().lower()


def _pyproject_packages() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        reqs += extra
    return {CONDA_NAME.get(_name(r), _name(r)) for r in reqs}


def _conda_packages() -> set[str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert env["channels"] == ["conda-forge"], "the GPU route is conda-forge only (the pytorch channel stopped at 2.5)"
    return {_name(d) for d in env["dependencies"] if isinstance(d, str)} - {"python", "pip"}


def test_environment_yml_matches_pyproject():
    pip_side, conda_side = _pyproject_packages(), _conda_packages()
    assert pip_side - conda_side == set(), f"in pyproject.toml but not environment.yml: {pip_side - conda_side}"
    assert conda_side - pip_side == set(), f"in environment.yml but not pyproject.toml: {conda_side - pip_side}"


def test_core_never_imports_jupyter_or_widgets():
    banned = {"ipywidgets", "IPython", "ipykernel", "jupyter", "notebook", "widgets", "papermill"}
    offenders = []
    for path in (ROOT / "lwtgpf").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] in banned]
    assert offenders == []


def test_matplotlib_only_inside_viz():
    offenders = [
        str(p.relative_to(ROOT))
        for p in (ROOT / "lwtgpf").rglob("*.py")
        if "viz" not in p.parts and re.search(r"^\s*(import|from)\s+matplotlib", p.read_text(), re.M)
    ]
    assert offenders == []
