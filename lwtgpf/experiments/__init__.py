"""Experiments sit above runs: provenance read back, sweeps, comparison (issue #13).

    info.py      `lwtgpf info RUN [RUN2]`: what produced a run, readably; two runs' differences key by key
    spec.py      a sweep's request (preset or notebook, base settings, grid, variants, seeds) -> its jobs
    manifest.py  the sweep folder: sweep.yaml, manifest.json (one entry per job: status, error, seconds)
    launch.py    running jobs: N local subprocesses at once, submitit (Slurm / local), printed commands
    compare.py   run and sweep folders -> per-run table, mean +- std over seeds, per-epoch curves

A sweep is a folder of run folders plus a manifest; comparison reads run folders only (through
`lwtgpf.run_folder.RunFolder`), and the manifest only for which run is which combination. Nothing here
imports torch: every job is a `lwtgpf train` or `lwtgpf notebook` subprocess.
"""
