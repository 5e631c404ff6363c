"""Running a sweep's jobs: here N at a time, through a scheduler (submitit), or as printed commands.

Every job is a real `lwtgpf train` (or `lwtgpf notebook`) subprocess started by `run_job`, which also
keeps the job's manifest entry (`lwtgpf.experiments.manifest`) and its log file: the local pool, a
submitit job on a Slurm node, and a printed command (`lwtgpf sweep --out SWEEP --job ID`) all go
through it, so the manifest means the same whoever ran the job.

- `run_local(sweep, ids, jobs=N)`: N subprocesses at once on this machine. Threads are split:
  each job gets `threads` (default: CPU cores // N, capped by this process's OMP_NUM_THREADS if set)
  through OMP_NUM_THREADS / MKL_NUM_THREADS /
  OPENBLAS_NUM_THREADS, which torch takes as its intra-op thread count; `gpus` hands each of the N
  slots one GPU (CUDA_VISIBLE_DEVICES). A job that fails is recorded and the others go on; Ctrl-C stops
  the running jobs (they resume from their last checkpoint) and starts no new one.
- `submit(sweep, ids, cluster="slurm")`: the same `run_job` calls as a submitit job array (Slurm), or
  through submitit's local executor (`cluster="local"`, what the tests use). Needs the `slurm` extra
  (`pip install 'lwtgpf[slurm]'`).
- `job_commands(sweep, ids)`: one shell line per job, for a Slurm job array or GNU parallel.

Which jobs run (`select_jobs`): pending and interrupted ones; failed ones (and submitted ones that never
started) only on request (`rerun_failed`). Done jobs are never rerun. A training job continues its run
folder with `--resume` when that holds a checkpoint; a notebook job that failed has its folder moved
to SWEEP/attempts/ first (notebook runs need an empty folder; nothing is deleted).
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from lwtgpf.experiments.manifest import SweepFolder, now
from lwtgpf.experiments.spec import Job, SweepError
from lwtgpf.fileio import write_text_atomic
from lwtgpf.run_folder import RunFolder

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
INTERRUPTED_CODES = (130, -signal.SIGINT, -signal.SIGTERM, -signal.SIGKILL, 128 + signal.SIGTERM)
_TQDM = re.compile(r"\d+%\|")

_children: set[subprocess.Popen] = set()
_children_lock = threading.Lock()


def select_jobs(sweep: SweepFolder, rerun_failed: bool = False, only: Iterable[str] = ()) -> list[str]:
    """Ids of the jobs to run now, in manifest order (see the module docstring). only: restrict to these ids."""
    wanted = {"pending", "interrupted"} | ({"failed", "submitted"} if rerun_failed else set())
    jobs = sweep.reconcile()["jobs"]
    only = list(only)
    for job_id in only:
        sweep.job(job_id)  # SweepError names an unknown id
    return [job_id for job_id, entry in jobs.items() if entry["status"] in wanted and (not only or job_id in only)]


def default_threads(jobs: int) -> int:
    """CPU threads per job when `jobs` run at once on this machine: cores // jobs, at least 1, and no
    more than OMP_NUM_THREADS when this process has it (a limit the user set holds for the jobs too)."""
    threads = max(1, (os.cpu_count() or 1) // max(1, jobs))
    try:
        return max(1, min(threads, int(os.environ.get("OMP_NUM_THREADS", threads))))
    except ValueError:
        return threads


def job_environment(threads: int | None, gpu: str | None = None, base: Mapping[str, str] | None = None,
                    sweep: SweepFolder | None = None, job_id: str = "") -> dict[str, str]:
    """The environment of a job's subprocess: `base` (default os.environ) with the thread count, the GPU
    and LWTGPF_SWEEP / LWTGPF_SWEEP_JOB (recorded in the run's provenance)."""
    env = dict(os.environ if base is None else base)
    if threads is not None:
        env.update({name: str(int(threads)) for name in THREAD_VARIABLES})
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = str(gpu)
    if sweep is not None:
        env["LWTGPF_SWEEP"] = str(sweep.path)
        env["LWTGPF_SWEEP_JOB"] = job_id
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def run_job(sweep_path: str | Path, job_id: str, threads: int | None = None, gpu: str | None = None) -> dict[str, Any]:
    """Run one job of a sweep now, in a subprocess, and record it; returns its manifest entry.

    threads: CPU threads of the job (None: this process's environment decides); gpu: its
    CUDA_VISIBLE_DEVICES. A done job is not run again (its entry is returned). The job's output goes
    to SWEEP/logs/<job>.log; on failure the entry's `error` is the job's one-line error (`lwtgpf ...:
    error: ...`) or the last line it printed. Never raises for a failing job: that is a status.
    """
    sweep = SweepFolder.of(sweep_path)
    spec = sweep.read_spec()
    entry = sweep.job(job_id)
    if entry["status"] == "done":
        return entry
    job = Job(job_id, entry["values"], tuple(entry["settings"]))
    run_dir = sweep.path / entry["folder"]
    resume = False
    if spec.kind == "train":
        run = RunFolder(run_dir)
        if run.metrics.is_file():
            return sweep.update_job(job_id, status="done", error=None)
        resume = run.has_checkpoint()
    elif run_dir.exists() and any(run_dir.iterdir()):
        sweep.attempts.mkdir(parents=True, exist_ok=True)
        aside = sweep.attempts / f"{job_id}.{entry['attempts']}"
        n = entry["attempts"]
        while aside.exists():
            n += 1
            aside = sweep.attempts / f"{job_id}.{n}"
        shutil.move(str(run_dir), str(aside))
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    command = spec.command(job, run_dir, resume=resume)
    log = sweep.log_file(job_id)
    log.parent.mkdir(parents=True, exist_ok=True)
    attempt = entry["attempts"] + 1
    started = time.perf_counter()
    with open(log, "a", encoding="utf-8") as stream:
        stream.write(f"=== attempt {attempt} at {now()} on {socket.gethostname()}"
                     f"{f' ({threads} threads)' if threads else ''}: {shlex.join(command)}\n")
        stream.flush()
        offset = stream.tell()
        try:
            process = subprocess.Popen(command, cwd=spec.cwd or None, stdout=stream, stderr=subprocess.STDOUT,
                                       env=job_environment(threads, gpu, sweep=sweep, job_id=job_id))
        except OSError as err:
            return sweep.update_job(job_id, status="failed", error=f"cannot start the job: {err}", attempts=attempt,
                                    command=command, returncode=None, ended=now())
        with _children_lock:
            _children.add(process)
        sweep.update_job(job_id, status="running", started=now(), ended=None, host=socket.gethostname(),
                         pid=process.pid, attempts=attempt, command=command, error=None, returncode=None)
        try:
            returncode = process.wait()
        finally:
            with _children_lock:
                _children.discard(process)
    seconds = round(time.perf_counter() - started, 3)
    if returncode == 0 and (spec.kind != "train" or RunFolder(run_dir).metrics.is_file()):
        status, error = "done", None
    elif returncode in INTERRUPTED_CODES:
        status, error = "interrupted", f"stopped by a signal (exit {returncode}); it resumes from its last checkpoint"
    else:
        status, error = "failed", error_line(log, offset) or f"exit {returncode}"
    return sweep.update_job(job_id, status=status, error=error, returncode=returncode, seconds=seconds,
                            ended=now(), pid=None)


def error_line(log: Path, offset: int = 0) -> str:
    """The line that says why a job failed, from its log after `offset` (bytes): the CLI's one-line error
    (`lwtgpf train: error: ...`), else the last exception line of a traceback, else the last line."""
    try:
        with open(log, "rb") as stream:
            stream.seek(offset)
            text = stream.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    lines = [line.split("\r")[-1].strip() for line in text.splitlines()]
    lines = [line for line in lines if line and not _TQDM.search(line)]
    for pattern in (r"^lwtgpf \w+: error: ", r"^\w[\w.]*(Error|Exception|Interrupt)\b"):
        found = [line for line in lines if re.search(pattern, line)]
        if found:
            return found[-1]
    return lines[-1] if lines else ""


def run_local(sweep: SweepFolder, job_ids: Sequence[str], jobs: int = 1, threads: int | None = None,
              gpus: Sequence[str] = (), echo: Callable[[str], None] | None = print) -> dict[str, dict[str, Any]]:
    """Run `job_ids` here, `jobs` at a time (each with `threads` CPU threads, default cores // jobs).

    gpus: one GPU id per slot, cycled (slot k uses gpus[k % len(gpus)]). echo: called with one line per
    finished job. Returns {job id: manifest entry}; one failing job never stops the others. On Ctrl-C
    or SIGTERM the running jobs get SIGINT (they stop at once and resume later), the pending ones stay
    pending, and KeyboardInterrupt propagates (the CLI exits with 130).
    """
    if jobs < 1:
        raise SweepError(f"--jobs must be >= 1, got {jobs}")
    threads = threads or default_threads(jobs)
    slots: list[int] = list(range(jobs))
    slot_lock = threading.Lock()
    stop = threading.Event()
    results: dict[str, dict[str, Any]] = {}

    def work(job_id: str) -> dict[str, Any] | None:
        if stop.is_set():
            return None
        with slot_lock:
            slot = slots.pop(0)
        try:
            gpu = str(gpus[slot % len(gpus)]) if gpus else None
            return run_job(sweep.path, job_id, threads=threads, gpu=gpu)
        finally:
            with slot_lock:
                slots.append(slot)

    pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="sweep-job")
    previous = _terminate_as_interrupt()
    try:
        futures = {pool.submit(work, job_id): job_id for job_id in job_ids}
        for done, future in enumerate(as_completed(futures), start=1):
            entry = future.result()
            if entry is None:
                continue
            results[futures[future]] = entry
            if echo is not None:
                echo(f"[{done}/{len(job_ids)}] {describe(futures[future], entry, sweep)}")
    except KeyboardInterrupt:
        stop.set()
        _stop_children()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    finally:
        pool.shutdown(wait=True)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return results


def _terminate_as_interrupt():
    """SIGTERM (a `kill`, a scheduler's time limit) stops the sweep like Ctrl-C: running jobs are stopped
    and marked interrupted, none starts. Returns the previous handler (None off the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, interrupt)


def describe(job_id: str, entry: Mapping[str, Any], sweep: SweepFolder) -> str:
    """One line about a job that ended: status, minutes, and its error and log when it failed."""
    minutes = f" in {entry['seconds'] / 60:.1f} min" if entry.get("seconds") is not None else ""
    line = f"{entry['status']:<11} {job_id}{minutes}"
    if entry["status"] != "done" and entry.get("error"):
        line += f": {entry['error']} (log: {sweep.log_file(job_id)})"
    return line


def submit(sweep: SweepFolder, job_ids: Sequence[str], cluster: str = "slurm", threads: int | None = None,
           parameters: Mapping[str, Any] | None = None, wait: bool = True,
           echo: Callable[[str], None] | None = print) -> dict[str, dict[str, Any]]:
    """Hand the jobs to a scheduler through submitit: one array of `run_job` calls.

    cluster: "slurm", or "local" (submitit's local executor: every job at once, as subprocesses of
    this machine). threads: CPUs per job (`cpus_per_task` and the job's thread variables; default 1 on
    the local executor, otherwise what the scheduler gives). parameters: any further submitit
    `update_parameters` keys (`timeout_min`, `slurm_partition`, `gpus_per_node`, `mem_gb`,
    `slurm_array_parallelism`, ...; default timeout 24 h). wait: block until every job ended and return
    their entries; else return right after submission (the manifest says "submitted"; each job records
    itself when it starts and ends). Raises SweepError when submitit is not installed.
    """
    try:
        import submitit
    except ImportError:
        raise SweepError("the scheduler route needs submitit: pip install 'lwtgpf[slurm]'") from None
    if not job_ids:
        return {}
    if cluster == "local" and threads is None:
        threads = 1
    executor = submitit.AutoExecutor(folder=sweep.submitit / "%j", cluster=cluster)
    settings: dict[str, Any] = {"name": f"lwtgpf-{sweep.path.name}", "timeout_min": 24 * 60}
    if threads:
        settings["cpus_per_task"] = int(threads)
    settings.update(parameters or {})
    try:
        executor.update_parameters(**settings)
    except (NameError, ValueError, TypeError) as err:
        raise SweepError(f"submitit parameters {sorted(settings)}: {' '.join(str(err).split())}") from None
    n = len(job_ids)
    handles = executor.map_array(run_job, [str(sweep.path)] * n, list(job_ids), [threads] * n)
    for job_id, handle in zip(job_ids, handles):
        sweep.update_job(job_id, status="submitted", scheduler_job=str(handle.job_id), error=None)
    if echo is not None:
        echo(f"submitted {n} job(s) to {cluster} through submitit (ids {handles[0].job_id} ...); "
             f"scheduler files in {sweep.submitit}")
    if not wait:
        return {job_id: sweep.job(job_id) for job_id in job_ids}
    results = {}
    for done, (job_id, handle) in enumerate(zip(job_ids, handles), start=1):
        try:
            entry = handle.result()
        except Exception as err:  # the scheduler's failure (timeout, node lost, cancelled): a job status
            message = " ".join(str(err).split())[-300:]
            entry = sweep.update_job(job_id, status="failed", error=f"{type(err).__name__}: {message}", ended=now())
        results[job_id] = entry
        if echo is not None:
            echo(f"[{done}/{n}] {describe(job_id, entry, sweep)}")
    return results


def job_commands(sweep: SweepFolder, job_ids: Sequence[str], threads: int | None = None) -> list[str]:
    """One shell line per job: `[OMP_NUM_THREADS=T ...] python -m lwtgpf.cli sweep --out SWEEP --job ID`,
    runnable from any folder and on any machine that sees the sweep folder (also written to
    SWEEP/commands.txt). Each line runs the job's `lwtgpf train` / `lwtgpf notebook` and records it."""
    prefix = [f"{name}={int(threads)}" for name in THREAD_VARIABLES] if threads else []
    lines = [shlex.join([*prefix, sys.executable, "-m", "lwtgpf.cli", "sweep", "--out", str(sweep.path),
                         "--job", job_id]) for job_id in job_ids]
    write_text_atomic(sweep.commands, "".join(line + "\n" for line in lines))
    return lines


def _stop_children(grace: float = 15.0) -> None:
    """SIGINT to every running job (it stops like a Ctrl-C'd `lwtgpf train`), SIGTERM to those still
    running after `grace` seconds (a process that ignores SIGINT, e.g. started in a background shell)."""
    with _children_lock:
        children = [p for p in _children if p.poll() is None]
    for signum, wait in ((signal.SIGINT, grace), (signal.SIGTERM, grace)):
        for process in children:
            if process.poll() is None:
                try:
                    process.send_signal(signum)
                except OSError:
                    pass
        deadline = time.monotonic() + wait
        while any(p.poll() is None for p in children) and time.monotonic() < deadline:
            time.sleep(0.1)
