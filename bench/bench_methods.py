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
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

# name -> settings on top of the synthetic preset (and model.pretrained). Each method's own loss
# settings (O2CAP: per-camera reduction; Cluster Contrast: temperature 0.05, all negatives) come from
# lwtgpf.methods. "LWTGPF-no-parts" keeps LWTGPF's loss and drops the five part terms (part_weight 0):
# what the part features add, everything else equal.
VARIANTS = {
    "LWTGPF-random-init": ["method=lwtgpf", "model.pretrained="],
    "supervised-upper-bound": ["method=supervised"],
    "LWTGPF": ["method=lwtgpf"],
    "LWTGPF-no-parts": ["method=lwtgpf", "loss.part_weight=0"],
    "LWTGPF+LeFF": ["method=lwtgpf", "model.leff_stages=[true,true,true,true]"],
    "O2CAP": ["method=o2cap"],
    "ClusterContrast": ["method=cluster_contrast"],
}
LWTGPF = [sys.executable, "-m", "lwtgpf.cli"]


def step(command: list[str], dry_run: bool, check: bool = True) -> tuple[int, str]:
    """Print a command (as one would type it), then run it unless dry_run, echoing its output as it comes;
    returns its exit code and stdout. A failing step stops the benchmark unless check is False."""
    print("$ " + shlex.join(["lwtgpf", *command[len(LWTGPF):]] if command[:len(LWTGPF)] == LWTGPF else command),
          flush=True)
    if dry_run:
        return 0, ""
    lines = []
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        for line in process.stdout:
            print(line, end="", flush=True)
            lines.append(line)
    if check and process.returncode != 0:
        raise SystemExit(f"bench_methods: the step above failed (exit {process.returncode}); fix it and run the "
                         "same command again: finished runs are kept")
    return process.returncode, "".join(lines)


def evaluated_mAP(output: str) -> float:
    """The mAP (percent) that `lwtgpf evaluate` printed ('mAP 45.2% | R1 ...')."""
    found = re.search(r"mAP (\d+(?:\.\d+)?)%", output)
    if not found:
        raise SystemExit(f"bench_methods: no mAP in the output of lwtgpf evaluate: {output!r}")
    return float(found.group(1))


def story_table(sweep: Path, random_start: float, pretrained_start: float) -> str:
    """Per method: mean +- std over seeds of mAP / R1 / mINP, its start (the network it trained from,
    evaluated before any step), the gain over it, the ratio to the supervised run of the same seed (same
    start), and the last epoch's pseudo-label quality (NMI, pairwise precision / recall, camera-split rate)."""
    from lwtgpf.experiments.compare import compare

    metrics = ["mAP", "R1", "mINP", "nmi", "pairwise_precision", "pairwise_recall", "camera_split_rate", "minutes"]
    runs = compare([sweep], metrics=metrics).runs
    runs = runs[runs["status"] == "done"]
    supervised = runs[runs["variant"] == "supervised-upper-bound"].set_index("seed")["mAP"]

    def cell(values: pd.Series, digits: int = 1) -> str:
        values = pd.to_numeric(values, errors="coerce").dropna()
        if values.empty:
            return "-"
        spread = f" ± {values.std(ddof=1):.{digits}f}" if len(values) > 1 else ""
        return f"{values.mean():.{digits}f}{spread}"

    header = ["method", "seeds", "mAP", "R1", "mINP", "start mAP", "mAP - start", "/ supervised", "NMI",
              "pairwise precision", "pairwise recall", "camera-split rate", "minutes"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
             f"| random weights, no training | - | {random_start:.1f} | - | - | - | - | - | - | - | - | - | - |",
             f"| pretrained on synthetic_source, no training | - | {pretrained_start:.1f} | - | - | - | - | - | - | - "
             "| - | - | - |"]
    for name, group in runs.groupby("variant", sort=False):
        start = random_start if name == "LWTGPF-random-init" else pretrained_start
        ratio = group.set_index("seed")["mAP"] / supervised
        lines.append("| " + " | ".join([
            name, " ".join(str(int(s)) for s in sorted(group["seed"])), cell(group["mAP"]), cell(group["R1"]),
            cell(group["mINP"]), f"{start:.1f}", cell(group["mAP"] - start), cell(ratio, 2), cell(group["nmi"], 3),
            cell(group["pairwise_precision"], 3), cell(group["pairwise_recall"], 3),
            cell(group["camera_split_rate"], 2), cell(group["minutes"]),
        ]) + " |")
    return "\n".join(lines)


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
    parser.add_argument("--rerun-failed", action="store_true", help="rerun failed jobs of an earlier attempt")
    parser.add_argument("--dry-run", action="store_true", help="print the commands without running them")
    args = parser.parse_args(argv)

    from lwtgpf.config import load_config
    from lwtgpf.errors import UserError

    try:  # a bad --set fails here, before any work, in one line
        target = load_config("synthetic", args.overrides)
        source = load_config("synthetic_source", args.pretrain_overrides)
    except UserError as exc:
        print(f"bench_methods: {exc}", file=sys.stderr)
        return 2
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
    started = time.time()
    code, _ = step([*LWTGPF, "sweep", "--out", str(out / "methods"), "--config", "synthetic",
                    "--set", f"model.pretrained={weights}", *settings("--set", args.overrides), *variants,
                    "--seeds", *map(str, args.seeds), "--jobs", str(args.jobs), *rerun], args.dry_run, check=False)
    minutes = (time.time() - started) / 60

    print("anchors: the networks every method starts from, without any training on synthetic", flush=True)
    _, random_start = step([*LWTGPF, "evaluate", "--config", "synthetic", *settings("--set", args.overrides)],
                           args.dry_run)
    _, pretrained_start = step([*LWTGPF, "evaluate", "--config", "synthetic", "--set", f"model.pretrained={weights}",
                                *settings("--set", args.overrides)], args.dry_run)
    step([*LWTGPF, "compare", str(out / "methods")], args.dry_run)
    if args.dry_run:
        return 0
    title = (f"synthetic benchmark, preset `synthetic` {' '.join(args.overrides)}: {target.train.epochs} epochs x "
             f"{target.data.iters_per_epoch} iterations, {target.data.height}x{target.data.width}, "
             f"{target.model.backbone}, seeds {' '.join(map(str, args.seeds))}, {args.jobs} job(s) at once, "
             f"{os.cpu_count()} CPU(s); the sweep took {minutes:.1f} min (load average at the end "
             f"{' '.join(f'{v:.2f}' for v in os.getloadavg())})")
    table = story_table(out / "methods", evaluated_mAP(random_start), evaluated_mAP(pretrained_start))
    (out / "methods.md").write_text(title + "\n\n" + table + "\n")
    print(f"\n{title}\n\n{table}\n\nwrote {out / 'methods.md'}")
    return code


if __name__ == "__main__":
    sys.exit(main())
