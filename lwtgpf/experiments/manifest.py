"""The sweep folder: one module knows its layout and keeps its manifest.

    SWEEP/
      sweep.yaml        the request (`lwtgpf.experiments.spec.SweepSpec`): kind, target, base settings,
                        grid, variants, seeds, the folder jobs run from
      manifest.json     one entry per job: folder, values (axis -> value), settings, command, status,
                        error, exit code, seconds, attempts, host / pid while running, scheduler job id
      runs/<job>/       the run folder of each job (a `lwtgpf train` run, or a `lwtgpf notebook` run)
      logs/<job>.log    everything each attempt of the job printed (stdout and stderr), attempt by attempt
      attempts/         earlier attempts of failed notebook jobs, moved aside before a rerun (never deleted)
      submitit/         submitit's own files when jobs went through it (pickles, scheduler logs)
      commands.txt      the commands of `--print-commands` (one job per line)
      comparison/       what `lwtgpf compare SWEEP` writes (CSV, PNG, Markdown)
      .manifest.lock    flock held while the manifest is read-modified-written

Job statuses: pending (never started), submitted (handed to a scheduler, not started yet), running,
done, failed (the job's command exited non-zero: the error line is kept), interrupted (stopped by a
signal, or its process vanished: it resumes from its last checkpoint).

Every job updates its own entry when it starts and ends, under an OS lock, so jobs in other processes
(submitit, GNU parallel, a Slurm array calling `lwtgpf sweep --job ID`) keep one consistent manifest.
`reconcile` brings stale entries up to date from what is on disk: a "running" job whose process is gone
(same host) becomes interrupted; a training job whose run folder has metrics.json is done.
"""
from __future__ import annotations

import json
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import yaml

from lwtgpf.experiments.spec import Job, SweepError, SweepSpec
from lwtgpf.fileio import write_json_atomic, write_text_atomic
from lwtgpf.run_folder import RunFolder

try:
    import fcntl
except ImportError:  # Windows: one process per sweep folder at a time is then the user's job
    fcntl = None

SPEC = "sweep.yaml"
MANIFEST = "manifest.json"
RUNS = "runs"
LOGS = "logs"
ATTEMPTS = "attempts"
SUBMITIT = "submitit"
COMMANDS = "commands.txt"
COMPARISON = "comparison"
LOCK = ".manifest.lock"
STATUSES = ("pending", "submitted", "running", "done", "failed", "interrupted")
MANIFEST_VERSION = 1


def now() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S")


class SweepFolder:
    """One sweep folder (see the module docstring for its layout)."""

    def __init__(self, path: str | Path):
        self.path = Path(path).expanduser().absolute()

    def __repr__(self) -> str:
        return f"SweepFolder({str(self.path)!r})"

    spec_file = property(lambda self: self.path / SPEC)
    manifest_file = property(lambda self: self.path / MANIFEST)
    logs = property(lambda self: self.path / LOGS)
    attempts = property(lambda self: self.path / ATTEMPTS)
    submitit = property(lambda self: self.path / SUBMITIT)
    commands = property(lambda self: self.path / COMMANDS)
    comparison = property(lambda self: self.path / COMPARISON)

    def run_folder(self, job_id: str) -> Path:
        return self.path / RUNS / job_id

    def log_file(self, job_id: str) -> Path:
        return self.logs / f"{job_id}.log"

    @staticmethod
    def is_sweep(path: str | Path) -> bool:
        return (Path(path) / MANIFEST).is_file() and (Path(path) / SPEC).is_file()

    @classmethod
    def of(cls, path: str | Path) -> "SweepFolder":
        """An existing sweep folder, or SweepError saying what is missing."""
        sweep = cls(path)
        if not cls.is_sweep(sweep.path):
            raise SweepError(f"{sweep.path} is not a sweep folder (no {SPEC} and {MANIFEST}; "
                             "`lwtgpf sweep --out FOLDER ...` makes one)")
        return sweep

    # ---- the request -------------------------------------------------------------------------------
    def read_spec(self) -> SweepSpec:
        try:
            data = yaml.safe_load(self.spec_file.read_text())
        except (OSError, yaml.YAMLError) as err:
            raise SweepError(f"{self.spec_file}: cannot read the sweep request ({err})") from None
        return SweepSpec.from_dict(data or {}, source=str(self.spec_file))

    def open(self, spec: SweepSpec | None) -> tuple[SweepSpec, list[str]]:
        """Start this sweep with `spec`, or continue it: None means the stored request.

        A folder that holds files but no sweep is refused. An existing sweep may be asked for more values
        of its own axes (more seeds, grid values or variants: the product is extended); other base
        settings, other axes, or a job id whose settings changed are refused by name.
        Returns (the request now stored, ids of the jobs it added)."""
        exists = self.is_sweep(self.path)
        if spec is None:
            if not exists:
                raise SweepError(f"{self.path} is not a sweep folder yet: give --config PRESET or --notebook NAME "
                                 "with --grid / --variant / --seeds")
            return self.read_spec(), []
        if not exists and self.path.exists() and (not self.path.is_dir() or any(self.path.iterdir())):
            raise SweepError(f"{self.path} exists and is not a sweep folder; pick a new --out")
        if exists:
            spec = _merge_specs(self.read_spec(), spec, self.path)
        new = []
        with self.editing() as manifest:
            jobs = manifest["jobs"]
            for job in spec.jobs():
                if job.id not in jobs:
                    jobs[job.id] = self._entry(job)
                    new.append(job.id)
                elif tuple(jobs[job.id]["settings"]) != job.settings:
                    raise SweepError(f"{self.path}: job {job.id} ran with {' '.join(jobs[job.id]['settings'])}, "
                                     f"now asked with {' '.join(job.settings)}; pick a new --out")
            write_text_atomic(self.spec_file, yaml.safe_dump(spec.to_dict(), sort_keys=False))
        return spec, new

    def _entry(self, job: Job) -> dict[str, Any]:
        return {"folder": f"{RUNS}/{job.id}", "values": job.values, "settings": list(job.settings),
                "command": None, "status": "pending", "error": None, "returncode": None, "seconds": None,
                "started": None, "ended": None, "attempts": 0, "host": None, "pid": None, "scheduler_job": None}

    # ---- the manifest ------------------------------------------------------------------------------
    def read_manifest(self) -> dict[str, Any]:
        if not self.manifest_file.is_file():
            return {"version": MANIFEST_VERSION, "created": now(), "jobs": {}}
        try:
            return json.loads(self.manifest_file.read_text())
        except json.JSONDecodeError as err:
            raise SweepError(f"{self.manifest_file}: not valid JSON ({err})") from None

    @contextmanager
    def editing(self) -> Iterator[dict[str, Any]]:
        """The manifest, read under the sweep's lock and written back (atomically) when the block ends."""
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.path / LOCK, "a+", encoding="utf-8") as handle:
            if fcntl is not None:
                try:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
                except OSError:
                    pass  # a file system without flock: proceed unlocked rather than fail
            manifest = self.read_manifest()
            yield manifest
            manifest["updated"] = now()
            write_json_atomic(self.manifest_file, manifest)

    def job(self, job_id: str) -> dict[str, Any]:
        jobs = self.read_manifest()["jobs"]
        if job_id not in jobs:
            raise SweepError(f"{self.path} has no job {job_id!r}; its jobs: {', '.join(list(jobs)[:8])}"
                             + (", ..." if len(jobs) > 8 else ""))
        return jobs[job_id]

    def update_job(self, job_id: str, **fields: Any) -> dict[str, Any]:
        """Set fields of one job's entry (under the lock); returns the entry."""
        unknown = set(fields) - set(self._entry(Job("x", {}, ())))
        if unknown:
            raise KeyError(f"unknown manifest fields {sorted(unknown)}")
        if "status" in fields and fields["status"] not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {fields['status']!r}")
        with self.editing() as manifest:
            manifest["jobs"][job_id].update(fields)
            return dict(manifest["jobs"][job_id])

    def reconcile(self) -> dict[str, Any]:
        """Bring the manifest up to date with the disk (see the module docstring); returns it."""
        spec = self.read_spec()
        host = socket.gethostname()
        with self.editing() as manifest:
            for job_id, entry in manifest["jobs"].items():
                if entry["status"] == "running" and entry.get("host") == host and not _alive(entry.get("pid")):
                    entry.update(status="interrupted", error="the job's process is gone (killed?)", pid=None)
                if spec.kind == "train" and entry["status"] != "done" and RunFolder(self.path / entry["folder"]).metrics.is_file():
                    entry.update(status="done", error=None)
            return manifest

    def counts(self, manifest: dict[str, Any] | None = None) -> dict[str, int]:
        jobs = (manifest or self.read_manifest())["jobs"].values()
        return {status: n for status in STATUSES if (n := sum(j["status"] == status for j in jobs))}

    def status_lines(self, manifest: dict[str, Any] | None = None) -> list[str]:
        """One line per job (status, seconds, attempts, error) and a count line."""
        manifest = manifest or self.read_manifest()
        lines = []
        width = max((len(j) for j in manifest["jobs"]), default=3)
        for job_id, entry in manifest["jobs"].items():
            seconds = f"{entry['seconds'] / 60:6.1f} min" if entry.get("seconds") is not None else " " * 10
            extra = f"  {entry['error']}" if entry.get("error") and entry["status"] != "done" else ""
            if entry["status"] == "submitted" and entry.get("scheduler_job"):
                extra = f"  scheduler job {entry['scheduler_job']}"
            lines.append(f"{job_id:<{width}}  {entry['status']:<11} {seconds}  attempts {entry['attempts']}{extra}")
        counts = ", ".join(f"{n} {status}" for status, n in self.counts(manifest).items())
        lines.append(f"{len(manifest['jobs'])} jobs: {counts} ({self.path})")
        return lines


def _merge_specs(stored: SweepSpec, new: SweepSpec, where: Path) -> SweepSpec:
    """The stored request extended by the values of `new` on the same axes (SweepError otherwise)."""
    if (stored.kind, stored.target) != (new.kind, new.target):
        raise SweepError(f"{where} is a sweep of {stored.kind} {stored.target!r}, not {new.kind} {new.target!r}; "
                         "pick a new --out")
    if stored.base != new.base:
        raise SweepError(f"{where}: the base settings differ from the sweep's ({' '.join(stored.base) or 'none'}); "
                         "pick a new --out")
    if stored.axes != new.axes:
        raise SweepError(f"{where}: the sweep's axes are {', '.join(stored.axes) or 'none'}, the request's "
                         f"{', '.join(new.axes) or 'none'}; pick a new --out")
    grid = {k: list(v) for k, v in stored.grid}
    for key, values in new.grid:
        grid[key] += [v for v in values if v not in grid[key]]
    variants = dict(stored.variants)
    for name, settings in new.variants:
        if name in variants and variants[name] != settings:
            raise SweepError(f"{where}: --variant {name} differs from the sweep's ({' '.join(variants[name])}); "
                             "pick a new --out or another name")
        variants.setdefault(name, settings)
    seeds = stored.seeds + [s for s in new.seeds if s not in stored.seeds]
    return SweepSpec(stored.kind, stored.target, stored.base, list(grid.items()), list(variants.items()), seeds,
                     stored.cwd)


def _alive(pid: Any) -> bool:
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError, ValueError):
        return True
    return True


def latest_sweep(folder: str | Path = "runs") -> Path:
    """The sweep folder under `folder` whose manifest was written last; SweepError when there is none."""
    manifests = [p for p in Path(folder).glob(f"**/{MANIFEST}") if SweepFolder.is_sweep(p.parent)]
    if not manifests:
        raise SweepError(f"no sweep under {Path(folder).resolve()}: run `lwtgpf sweep --out FOLDER ...` first, "
                         "or give the folder to compare")
    return max(manifests, key=lambda p: p.stat().st_mtime).parent
