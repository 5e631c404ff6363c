"""What produced a run: code version, package versions, machine, command line, dataset fingerprint.

`collect_environment()` returns plain JSON data; `lwtgpf.run_folder.RunFolder` writes it into every run
folder as `provenance.json` (with the run's seed, start / end time and seconds per phase) whether the
run was started from the CLI, from Python or from a notebook. Nothing here imports torch until asked
for the versions, and nothing reaches the network.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import os
import platform
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any, Sequence

PACKAGES = ("lwtgpf", "torch", "torchvision", "timm", "numpy", "scipy", "scikit-learn", "faiss-cpu",
            "faiss-gpu-cu12", "faiss-gpu", "faiss", "pillow", "pandas", "matplotlib", "umap-learn", "papermill",
            "submitit")
# Environment variables that change what a run computes or say who started it: thread counts (a
# floating-point sum depends on them), visible GPUs, the scheduler's job, and the sweep / notebook run
# that launched this process (set by `lwtgpf sweep` and `lwtgpf notebook`).
ENVIRONMENT_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "CUDA_VISIBLE_DEVICES",
                         "SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURM_JOB_PARTITION",
                         "LWTGPF_SWEEP", "LWTGPF_SWEEP_JOB", "LWTGPF_NOTEBOOK_RUN")
SOURCE_DIR = Path(__file__).resolve().parents[1]  # the checkout when installed editable (`pip install -e .`)


def code_version() -> dict[str, Any]:
    """{"package": version, "git_commit": sha or None, "git_dirty": bool or None} of the lwtgpf code running.

    The commit is read from the checkout the package is imported from (an editable install); a wheel
    install has none and is described by its version alone. `git_dirty` counts tracked files only.
    """
    version = _version("lwtgpf")
    commit = dirty = None
    if (SOURCE_DIR / ".git").exists():
        commit = _git("rev-parse", "HEAD")
        status = _git("status", "--porcelain", "--untracked-files=no")
        dirty = None if status is None else bool(status.strip())
    return {"package": version, "git_commit": commit, "git_dirty": dirty}


def collect_environment(device: str = "", threads: int | None = None) -> dict[str, Any]:
    """Plain data describing this process: code, Python and package versions, machine and device.

    Keys: code {package, git_commit, git_dirty}, python, packages {distribution: version}, platform, host,
    cpu_count, device ("cpu", "cuda:0", or "" when not known), torch_threads (intra-op threads, None when
    not known), cuda_devices [names], command, cwd, environment {ENVIRONMENT_VARIABLES that are set}.
    """
    versions = {name: _version(name) for name in PACKAGES}
    return {
        "code": code_version(),
        "python": platform.python_version(),
        "packages": {name: v for name, v in versions.items() if v is not None},
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "cpu_count": os.cpu_count(),
        "device": device,
        "torch_threads": threads,
        "cuda_devices": _cuda_devices(),
        "command": command_line(),
        "cwd": os.getcwd(),
        "environment": {name: os.environ[name] for name in ENVIRONMENT_VARIABLES if name in os.environ},
    }


def command_line(argv: Sequence[str] | None = None) -> str:
    """The command that started this process: `lwtgpf train --config synthetic --out runs/x` for the CLI,
    else the interpreter's own command line (`python -m pytest ...`, a notebook kernel's)."""
    argv = list(sys.argv if argv is None else argv)
    if argv and (Path(argv[0]).name == "lwtgpf" or argv[0].endswith(("lwtgpf/cli.py", "lwtgpf/__main__.py"))):
        return " ".join(["lwtgpf", *argv[1:]])
    return " ".join(getattr(sys, "orig_argv", argv))


def file_fingerprint(path: str | Path) -> str:
    """A sha256 (first 16 hex digits) of a file's bytes, e.g. the notebook a run executed."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def fingerprint(rows: Sequence[tuple[Any, ...]]) -> str:
    """A sha256 (first 16 hex digits) of rows of plain values, e.g. a split's (file name, pid, camera)."""
    digest = hashlib.sha256()
    for row in rows:
        digest.update(("\t".join(map(str, row)) + "\n").encode())
    return digest.hexdigest()[:16]


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(SOURCE_DIR), *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _cuda_devices() -> list[str]:
    if "torch" not in sys.modules:  # never import torch just to say there is no GPU
        return []
    import torch

    if not torch.cuda.is_available():
        return []
    return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
