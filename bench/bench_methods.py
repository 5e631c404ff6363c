"""The README's synthetic results table, made by `lwtgpf sweep` + `lwtgpf compare` (one command).

    .venv/bin/python bench/bench_methods.py --out runs/methods --jobs 2 --seeds 1 2 3

runs, each step a plain `lwtgpf` command (printed before it runs; `--dry-run` only prints them):
1. `lwtgpf synth` for the `synthetic` and `synthetic_source` benchmarks when they are missing;
2. the supervised pretraining on `synthetic_source` (the stand-in for ImageNet / LUPerson / SOLIDER
   weights), as a one-job sweep in OUT/pretrain: every method starts from its checkpoint;
3. `lwtgpf sweep --out OUT/methods --config synthetic --set model.pretrained=... --variant ... --seeds ...`:
   one `lwtgpf train` per method variant x seed, `--jobs` at a time (threads split between them);
4. `lwtgpf evaluate` of the random and of the pretrained network without training (the anchors);
5. `lwtgpf compare OUT/methods`: the table (mean ± std over seeds, differences inside the seed spread
   marked), written with the per-epoch curves to OUT/methods/comparison/.

Every step resumes: run the same command again after a crash or Ctrl-C and finished runs are skipped
(`--rerun-failed` reruns failed ones). Options `--set` / `--pretrain-set` apply to every method / to the
pretraining; `--only NAME` keeps some variants; `--pretrained FILE` skips step 2 and starts every method
from FILE. Thread counts change floating-point sums: a table is reproducible for a given `--jobs`.
"""
from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from pathlib import Path

# name -> settings on top of the synthetic preset (and model.pretrained). Each method's own loss
# settings (Cluster Contrast: temperature 0.05, all negatives) come from lwtgpf.methods.
VARIANTS = {
    "LWTGPF-random-init": ["method=lwtgpf", "model.pretrained="],
    "supervised-upper-bound": ["method=supervised"],
    "LWTGPF": ["method=lwtgpf"],
    "LWTGPF+LeFF": ["method=lwtgpf", "model.leff_stages=[true,true,true,true]"],
    "O2CAP": ["method=o2cap"],
    "ClusterContrast": ["method=cluster_contrast"],
}
LWTGPF = [sys.executable, "-m", "lwtgpf.cli"]


def step(command: list[str], dry_run: bool, check: bool = True) -> int:
    """Print a command (as one would type it), then run it unless dry_run; returns its exit code."""
    print("$ " + shlex.join(["lwtgpf", *command[len(LWTGPF):]] if command[:len(LWTGPF)] == LWTGPF else command),
          flush=True)
    if dry_run:
        return 0
    code = subprocess.run(command).returncode
    if check and code != 0:
        raise SystemExit(f"bench_methods: the step above failed (exit {code}); fix it and run the same command "
                         "again: finished runs are kept")
    return code


def settings(option: str, items: list[str]) -> list[str]:
    return [arg for item in items for arg in (option, item)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/methods", help="OUT/pretrain and OUT/methods (sweep folders)")
    parser.add_argument("--jobs", type=int, default=2, help="trainings at once (each gets cores // jobs threads)")
    parser.add_argument("--seeds", nargs="+", default=["1", "2", "3"], help="train.seed of every variant")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="applied to every method, e.g. train.epochs=4")
    parser.add_argument("--pretrain-set", dest="pretrain_overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="applied to the pretraining run (preset synthetic_source)")
    parser.add_argument("--only", nargs="+", default=[], choices=list(VARIANTS), metavar="NAME",
                        help=f"run only these variants: {', '.join(VARIANTS)}")
    parser.add_argument("--pretrained", default="", help="start every method from this file; no pretraining step")
    parser.add_argument("--no-anchors", action="store_true", help="skip step 4 (the untrained networks)")
    parser.add_argument("--rerun-failed", action="store_true", help="rerun failed jobs of an earlier attempt")
    parser.add_argument("--dry-run", action="store_true", help="print the commands without running them")
    args = parser.parse_args(argv)

    from lwtgpf.config import load_config

    target = load_config("synthetic", args.overrides)  # a bad --set fails here, before any work
    source = load_config("synthetic_source", args.pretrain_overrides)
    out = Path(args.out).absolute()
    rerun = ["--rerun-failed"] if args.rerun_failed else []
    for cfg in (target, source):
        if not args.pretrained or cfg is target:
            if not (Path(cfg.data.root) / cfg.data.dataset / "meta.json").exists():
                step([*LWTGPF, "synth", "--preset", cfg.data.dataset, "--root", cfg.data.root], args.dry_run)

    weights = args.pretrained
    if not weights:
        step([*LWTGPF, "sweep", "--out", str(out / "pretrain"), "--config", "synthetic_source",
              *settings("--set", args.pretrain_overrides), *rerun], args.dry_run)
        weights = str(out / "pretrain" / "runs" / "run" / "checkpoints" / "last.pt")

    variants = [arg for name, items in VARIANTS.items() if not args.only or name in args.only
                for arg in ("--variant", name, *items)]
    code = step([*LWTGPF, "sweep", "--out", str(out / "methods"), "--config", "synthetic",
                 "--set", f"model.pretrained={weights}", *settings("--set", args.overrides), *variants,
                 "--seeds", *map(str, args.seeds), "--jobs", str(args.jobs), *rerun], args.dry_run, check=False)

    if not args.no_anchors:
        print("anchors: the networks every method starts from, without any training on synthetic", flush=True)
        step([*LWTGPF, "evaluate", "--config", "synthetic", *settings("--set", args.overrides)], args.dry_run)
        step([*LWTGPF, "evaluate", "--config", "synthetic", "--set", f"model.pretrained={weights}",
              *settings("--set", args.overrides)], args.dry_run)
    print(f"synthetic benchmark, preset `synthetic` {' '.join(args.overrides)}: {target.train.epochs} epochs x "
          f"{target.data.iters_per_epoch} iterations, {target.model.backbone}, seeds {' '.join(map(str, args.seeds))}, "
          f"{args.jobs} job(s) at once", flush=True)
    step([*LWTGPF, "compare", str(out / "methods")], args.dry_run)
    return code


if __name__ == "__main__":
    sys.exit(main())
