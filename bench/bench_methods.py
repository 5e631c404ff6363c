"""The synthetic results table: every method trained with the `synthetic` preset, same seed and budget.

Each row is a real `lwtgpf train` run in its own process (tiny LewinViT on the CPU) on the built-in
synthetic benchmark (generated first if missing). Like `lwtgpf demo`, every method starts from the same
supervised pretraining on `synthetic_source` (other, labelled people: the stand-in for ImageNet /
LUPerson weights), run once first; one LWTGPF row starts from random weights instead, and the random
and the pretrained networks without any training on `synthetic` are the anchors.
Columns: final mAP / R1 / mINP on query vs gallery (the last epoch, never the best), and the quality of
the last epoch's pseudo labels against the hidden identities (NMI, pairwise F-score, clusters, and the
camera-split rate: the share of identities whose crops only ever land in camera-pure clusters).

Run:  .venv/bin/python bench/bench_methods.py [--jobs 2] [--out runs/methods] [--set key=value ...] [--pretrain-set ...]
`--jobs 2` runs two trainings at a time with one thread each (the fastest use of a 2-core CPU).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

# name -> overrides on top of the synthetic preset. Cluster Contrast uses its own temperature and all
# negatives (its paper's loss); LeFF adds the local-enhancing MLP to every stage (the ablation).
VARIANTS = {
    "LWTGPF from random weights": ["method=lwtgpf", "model.pretrained="],
    "supervised (upper bound)": ["method=supervised"],
    "LWTGPF": ["method=lwtgpf"],
    "LWTGPF + LeFF": ["method=lwtgpf", "model.leff_stages=[true,true,true,true]"],
    "O2CAP (global only)": ["method=o2cap"],
    "Cluster Contrast (no cameras)": ["method=cluster_contrast", "loss.temperature=0.05", "loss.hard_negatives=0"],
}

UNTRAINED = """
import json, sys
from lwtgpf.config import load_config
from lwtgpf.engine.trainer import Trainer
cfg = load_config("synthetic", sys.argv[1:])
r = Trainer(cfg).evaluate()
print(json.dumps({k: round(100 * r[k], 2) for k in ("mAP", "R1", "mINP")}))
"""


def train(preset: str, overrides: list[str], run_dir: Path, threads: int) -> float:
    """`lwtgpf train` in a subprocess; returns minutes."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    started = time.perf_counter()
    cmd = [sys.executable, "-m", "lwtgpf.cli", "train", "--config", preset, "--out", str(run_dir)]
    for item in overrides:
        cmd += ["--set", item]
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return (time.perf_counter() - started) / 60


def run_variant(name: str, overrides: list[str], out: Path, threads: int) -> dict:
    run_dir = out / name.split(" (")[0].replace(" ", "_").replace("+", "plus").lower()
    minutes = train("synthetic", overrides, run_dir, threads)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    last = json.loads((run_dir / "log.json").read_text())[-1]
    return dict(metrics, nmi=last["nmi"], pairwise_f=last["pairwise_f"], clusters=last["num_clusters"],
                camera_split=last["camera_split_rate"], minutes=minutes)


def run_untrained(extra: list[str], threads: int) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    done = subprocess.run([sys.executable, "-c", UNTRAINED, *extra], check=True, env=env, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/methods", help="parent of one run folder per method (must be new)")
    parser.add_argument("--jobs", type=int, default=2, help="trainings at once (each gets cores // jobs threads)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="applied to every method, e.g. train.epochs=4")
    parser.add_argument("--pretrain-set", dest="pretrain_overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="applied to the pretraining run (preset synthetic_source)")
    parser.add_argument("--only", action="append", default=[], help="run only these method names")
    args = parser.parse_args()

    from lwtgpf.config import load_config
    from lwtgpf.data.synthetic import generate_synthetic

    cfg = load_config("synthetic", args.overrides)
    source = load_config("synthetic_source", args.pretrain_overrides)
    for dataset_cfg in (cfg, source):
        if not (Path(dataset_cfg.data.root) / dataset_cfg.data.dataset / "meta.json").exists():
            generate_synthetic(dataset_cfg.data.root, preset=dataset_cfg.data.dataset, seed=0)
    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        raise SystemExit(f"{out} is not empty: pick a new --out")
    threads = max(1, (os.cpu_count() or 1) // args.jobs)
    variants = {name: o for name, o in VARIANTS.items() if not args.only or name.split(" (")[0] in args.only}

    started = time.perf_counter()
    pretrain_minutes = train("synthetic_source", args.pretrain_overrides, out / "pretrain", os.cpu_count() or 1)
    weights = f"model.pretrained={out / 'pretrain' / 'checkpoints' / 'last.pt'}"
    untrained = run_untrained(args.overrides, threads)
    pretrained = run_untrained([weights, *args.overrides], threads)
    with ThreadPoolExecutor(args.jobs) as pool:
        futures = {name: pool.submit(run_variant, name, [weights, *o, *args.overrides], out, threads)
                   for name, o in variants.items()}
        rows = {name: f.result() for name, f in futures.items()}

    print(f"synthetic benchmark, preset `synthetic` {' '.join(args.overrides)}: {cfg.train.epochs} epochs x "
          f"{cfg.data.iters_per_epoch} iterations, {cfg.model.backbone}, seed {cfg.train.seed}, "
          f"{args.jobs} job(s) x {threads} thread(s)")
    print("| method | mAP | R1 | mINP | NMI | pairwise F | clusters | camera-split rate | minutes |")
    print("|---|---|---|---|---|---|---|---|---|")
    print(f"| random weights, no training | {untrained['mAP']:.1f} | {untrained['R1']:.1f} | {untrained['mINP']:.1f} "
          "| - | - | - | - | - |")
    print(f"| pretrained on synthetic_source, no training on synthetic | {pretrained['mAP']:.1f} | "
          f"{pretrained['R1']:.1f} | {pretrained['mINP']:.1f} | - | - | - | - | {pretrain_minutes:.1f} |")
    for name, r in rows.items():
        print(f"| {name} | {r['mAP']:.1f} | {r['R1']:.1f} | {r['mINP']:.1f} | {r['nmi']:.3f} | "
              f"{r['pairwise_f']:.3f} | {r['clusters']} | {r['camera_split']:.2f} | {r['minutes']:.1f} |")
    print(f"total {(time.perf_counter() - started) / 60:.1f} min; run folders under {out}/")


if __name__ == "__main__":
    main()
