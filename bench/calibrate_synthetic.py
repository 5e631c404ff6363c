"""Calibration report of the synthetic benchmarks: do features see people or cameras?

For each preset it measures, on the training crops (what clustering sees):

- **same-camera share @10**: of each crop's 10 nearest neighbours (global test feature, Euclidean on
  L2-normalised features), the share taken by the crop's own camera, for
  random weights, the `synthetic_source` pretraining (the start of every unsupervised run), and the
  supervised upper bound (`method=supervised` trained from that start with the true identities);
  plus two references that need no network: *chance* (neighbours drawn at random) and *identity
  only* (a feature that ranks every crop of the same person first, in random order, then the others
  at random): what a perfect person feature shows given how many cameras film each person;
- **first-epoch pseudo labels**: what `pseudo_label` (k-reciprocal Jaccard + DBSCAN, the preset's
  cluster settings) makes of those features - clusters, pairwise precision and recall against the
  hidden identities, and the camera-split rate (identities whose crops land only in camera-pure
  clusters) - from `lwtgpf.cluster.quality`. With the pretrained features this IS epoch 1 of LWTGPF;
- mAP of each network on query vs gallery, for scale.

Targets (issue #11): pretrained same-camera share well below the random network's and within reach of
the supervised one; first-epoch pairwise precision high enough that training can improve it.

`--learning-seeds 1 2 3` also trains LWTGPF and the supervised run from the same pretraining for each
seed (`train.seed`; the pretraining is shared) and prints mean +- std of the start, of both and of their
ratio: the learning check the calibration is for.

Run (one thread per process is the fair use of a shared 2-core CPU):
    OMP_NUM_THREADS=1 .venv/bin/python bench/calibrate_synthetic.py --out runs/calibration
    ... --preset synthetic --preset synthetic_occluded --pretrained runs/demo/pretrain/checkpoints/last.pt
The README's report reuses the checkpoints of bench/bench_methods.py (no training, about a minute):
    ... --pretrained runs/methods/pretrain/runs/run/checkpoints/last.pt \
        --supervised runs/methods/methods/runs/supervised-upper-bound__seed=1/checkpoints/last.pt
Datasets missing under `data.root` are generated first (seed 0). Everything lands in `--out`: the run
folders, `calibration.json` and `calibration.md` (the printed tables).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")  # progress bars would drown the report

import numpy as np
import torch

from lwtgpf.cluster import pseudo_label
from lwtgpf.cluster.knn import nearest_neighbours
from lwtgpf.config import PRESET_DIR, Config, load_config
from lwtgpf.data.synthetic import generate_synthetic
from lwtgpf.engine.trainer import Trainer

NEIGHBOURS = 10
SUPERVISED_DONE: dict[tuple[str, int], float] = {}  # (preset, train.seed) -> final mAP of a supervised run


def same_camera_share(features: torch.Tensor, camids: np.ndarray, k: int = NEIGHBOURS) -> float:
    """Mean share of each crop's k nearest neighbours (itself excluded) that come from its camera."""
    rank = nearest_neighbours(features, k + 1).indices[:, 1:].cpu().numpy()
    return float((camids[rank] == camids[:, None]).mean())


def chance_share(camids: np.ndarray) -> float:
    """Same-camera share of neighbours drawn at random among the other crops."""
    counts = np.bincount(camids)
    return float(((counts[camids] - 1) / (len(camids) - 1)).mean())


def identity_only_share(pids: np.ndarray, camids: np.ndarray, k: int = NEIGHBOURS) -> float:
    """Expected same-camera share of a feature that ranks the crop's own identity first (random order
    inside), then everyone else at random: the floor a perfect person feature shows."""
    n = len(pids)
    cam_counts = np.bincount(camids)
    shares = []
    for i in range(n):
        mine = pids == pids[i]
        same_id = int(mine.sum()) - 1
        same_id_cam = int((mine & (camids == camids[i])).sum()) - 1
        if same_id >= k:
            shares.append(same_id_cam / same_id)
            continue
        others = n - 1 - same_id
        others_cam = cam_counts[camids[i]] - 1 - same_id_cam
        shares.append((same_id_cam + (k - same_id) * others_cam / others) / k)
    return float(np.mean(shares))


def measure(trainer: Trainer) -> dict:
    """Neighbour share, first pseudo labels and mAP of the trainer's current network."""
    feats = trainer.extract_train_features()[:, 0]  # the global feature clustering uses
    train = trainer.dataset.train
    camids = np.array([r.camid for r in train])
    pids = np.array([r.pid for r in train])
    pseudo = pseudo_label(feats, camids, trainer.cfg.cluster, trainer.dataset.num_cameras, true_pids=pids)
    q = pseudo.quality
    results = trainer.evaluate()
    return {
        "same_camera_share": same_camera_share(feats, camids),
        "clusters": int(q["num_clusters"]),
        "outliers": q["outlier_fraction"],
        "pairwise_precision": q["pairwise_precision"],
        "pairwise_recall": q["pairwise_recall"],
        "camera_split_rate": q["camera_split_rate"],
        "nmi": q["nmi"],
        "mAP": 100 * results["mAP"],
        "R1": 100 * results["R1"],
    }


def training_config(preset: str, overrides: list[str]) -> Config:
    """The training preset of a synthetic benchmark: its own YAML if there is one, else `synthetic`'s."""
    if (PRESET_DIR / f"{preset}.yaml").exists():
        return load_config(preset, overrides)
    return load_config("synthetic", [f"data.dataset={preset}", *overrides])


def ensure_dataset(cfg: Config) -> None:
    if not (Path(cfg.data.root) / cfg.data.dataset / "meta.json").exists():
        print(f"generating {cfg.data.dataset} in {cfg.data.root}/ ...", flush=True)
        generate_synthetic(cfg.data.root, preset=cfg.data.dataset, seed=0)


def pretrain(args: argparse.Namespace, out: Path) -> tuple[str, dict]:
    """The `synthetic_source` checkpoint (trained here unless --pretrained), and its loss curve."""
    if args.pretrained:
        return args.pretrained, {}
    source = load_config("synthetic_source", args.pretrain_overrides)
    ensure_dataset(source)
    started = time.perf_counter()
    trainer = Trainer(source, run_dir=out / "pretrain")
    trainer.fit()
    losses = [round(row["loss"], 4) for row in trainer.history]
    info = {"epochs": len(losses), "iterations": len(losses) * source.data.iters_per_epoch, "loss_per_epoch": losses,
            "minutes": (time.perf_counter() - started) / 60, "source_mAP": trainer.history[-1].get("mAP")}
    return str(out / "pretrain" / "checkpoints" / "last.pt"), info


def calibrate(preset: str, weights: str, args: argparse.Namespace, out: Path) -> dict:
    base = training_config(preset, args.overrides)
    ensure_dataset(base)
    rows = {}
    trainer = Trainer(base)
    camids = np.array([r.camid for r in trainer.dataset.train])
    pids = np.array([r.pid for r in trainer.dataset.train])
    rows["random weights"] = measure(trainer)
    rows["pretrained (synthetic_source)"] = measure(Trainer(training_config(preset, [*args.overrides, f"model.pretrained={weights}"])))
    for name, row in rows.items():
        print(f"{preset}, {name}: {json.dumps(row, default=float)}", flush=True)
    if args.no_supervised:
        rows["supervised from pretrained"] = {key: float("nan") for key in rows["random weights"]}
        return _preset_result(preset, trainer, camids, pids, rows)
    if args.supervised:  # a supervised run already trained (e.g. bench_methods' seed 1): measure it
        rows["supervised from pretrained"] = measure(
            Trainer(training_config(preset, [*args.overrides, f"model.pretrained={args.supervised}"])))
        print(f"{preset}, supervised: {json.dumps(rows['supervised from pretrained'], default=float)}", flush=True)
        return _preset_result(preset, trainer, camids, pids, rows)
    started = time.perf_counter()
    supervised = Trainer(training_config(preset, [*args.overrides, f"model.pretrained={weights}", "method=supervised",
                                                  *args.supervised_overrides]),
                         run_dir=out / preset / "supervised")
    metrics = supervised.fit()
    SUPERVISED_DONE[(preset, supervised.cfg.train.seed)] = metrics["mAP"]
    rows["supervised from pretrained"] = measure(supervised)
    rows["supervised from pretrained"]["minutes"] = (time.perf_counter() - started) / 60
    print(f"{preset}, supervised: {json.dumps(rows['supervised from pretrained'], default=float)}", flush=True)
    return _preset_result(preset, trainer, camids, pids, rows)


def _preset_result(preset: str, trainer: Trainer, camids: np.ndarray, pids: np.ndarray, rows: dict) -> dict:
    return {
        "preset": preset,
        "crops": len(camids), "identities": len(set(pids.tolist())), "cameras": trainer.dataset.num_cameras,
        "chance_share": chance_share(camids), "identity_only_share": identity_only_share(pids, camids),
        "features": rows,
    }


def learning_check(preset: str, weights: str, seeds: list[int], args: argparse.Namespace, out: Path) -> dict:
    """LWTGPF and supervised from the same pretraining, one run each per seed; mean +- std."""
    runs = []
    for seed in seeds:
        row = {"seed": seed}
        for method in ("lwtgpf", "supervised"):
            if method == "supervised" and (preset, seed) in SUPERVISED_DONE and not args.supervised_overrides:
                row["supervised_mAP"] = SUPERVISED_DONE[(preset, seed)]  # the calibration's run: same config
                continue
            overrides = [*args.overrides, f"model.pretrained={weights}", f"method={method}", f"train.seed={seed}"]
            trainer = Trainer(training_config(preset, overrides), run_dir=out / preset / f"{method}-seed{seed}")
            if method == "lwtgpf":
                row["start_mAP"] = 100 * trainer.evaluate()["mAP"]
                first = None
            metrics = trainer.fit()
            row[f"{method}_mAP"] = metrics["mAP"]
            if method == "lwtgpf":
                first = trainer.history[0]
                row["first_precision"], row["first_recall"] = first["pairwise_precision"], first["pairwise_recall"]
                row["last_precision"] = trainer.history[-1]["pairwise_precision"]
                row["last_recall"] = trainer.history[-1]["pairwise_recall"]
                row["last_camera_split"] = trainer.history[-1]["camera_split_rate"]
        row["ratio"] = row["lwtgpf_mAP"] / row["supervised_mAP"]
        row["gain"] = row["lwtgpf_mAP"] - row["start_mAP"]
        runs.append(row)
        print(json.dumps(row, default=float), flush=True)
    return {"preset": preset, "seeds": seeds, "runs": runs}


def _mean_std(values: list[float], scale: str = ".1f") -> str:
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:{scale}} +- {std:{scale}}"


def report(pretraining: dict, presets: list[dict], learning: list[dict], args: argparse.Namespace) -> str:
    lines = []
    if pretraining:
        losses = pretraining["loss_per_epoch"]
        lines.append(f"pretraining on synthetic_source ({pretraining['epochs']} epochs, {pretraining['iterations']} "
                     f"iterations, {pretraining['minutes']:.1f} min): loss per epoch {' '.join(f'{v:.2f}' for v in losses)}")
    for p in presets:
        lines += ["", f"preset `{p['preset']}`: {p['crops']} training crops, {p['identities']} identities, "
                      f"{p['cameras']} cameras", "",
                  "| features | same-camera share @10 | clusters | pairwise precision | pairwise recall | "
                  "camera-split rate | mAP |", "|---|---|---|---|---|---|---|",
                  f"| chance (random neighbours) | {p['chance_share']:.2f} | - | - | - | - | - |",
                  f"| identity only (perfect person feature) | {p['identity_only_share']:.2f} | - | - | - | - | - |"]
        for name, r in p["features"].items():
            lines.append(f"| {name} | {r['same_camera_share']:.2f} | {r['clusters']} | {r['pairwise_precision']:.2f} | "
                         f"{r['pairwise_recall']:.2f} | {r['camera_split_rate']:.2f} | {r['mAP']:.1f} |")
    for check in learning:
        runs = check["runs"]
        lines += ["", f"learning check, preset `{check['preset']}`, seeds {check['seeds']} (mean +- std):", "",
                  "| start mAP | LWTGPF mAP | supervised mAP | LWTGPF - start | LWTGPF / supervised | "
                  "epoch-1 precision / recall | last-epoch precision / recall | last camera-split rate |",
                  "|---|---|---|---|---|---|---|---|",
                  f"| {_mean_std([r['start_mAP'] for r in runs])} | {_mean_std([r['lwtgpf_mAP'] for r in runs])} | "
                  f"{_mean_std([r['supervised_mAP'] for r in runs])} | {_mean_std([r['gain'] for r in runs])} | "
                  f"{_mean_std([r['ratio'] for r in runs], '.2f')} | "
                  f"{statistics.fmean(r['first_precision'] for r in runs):.2f} / "
                  f"{statistics.fmean(r['first_recall'] for r in runs):.2f} | "
                  f"{statistics.fmean(r['last_precision'] for r in runs):.2f} / "
                  f"{statistics.fmean(r['last_recall'] for r in runs):.2f} | "
                  f"{statistics.fmean(r['last_camera_split'] for r in runs):.2f} |"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", action="append", default=[], help="synthetic benchmark(s) (default: synthetic)")
    parser.add_argument("--out", default="runs/calibration", help="output folder (must be new or empty)")
    parser.add_argument("--pretrained", default="", help="a synthetic_source checkpoint to reuse instead of pretraining")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override of every run on the benchmark (random, pretrained, supervised, learning check)")
    parser.add_argument("--pretrain-set", dest="pretrain_overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override of the pretraining (preset synthetic_source)")
    parser.add_argument("--supervised", default="",
                        help="a checkpoint of a supervised run from that pretraining to measure instead of training one")
    parser.add_argument("--supervised-set", dest="supervised_overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="override of the supervised run only")
    parser.add_argument("--learning-seeds", type=int, nargs="*", default=[],
                        help="also train LWTGPF and supervised from the pretraining for each of these train.seed values")
    parser.add_argument("--skip-features", action="store_true", help="only the learning check")
    parser.add_argument("--no-supervised", action="store_true", help="skip the supervised run (a quick probe)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    presets = args.preset or ["synthetic"]
    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        raise SystemExit(f"{out} is not empty: pick a new --out")
    out.mkdir(parents=True, exist_ok=True)

    started = time.perf_counter()
    weights, pretraining = pretrain(args, out)
    if pretraining:
        print(f"pretraining: {json.dumps(pretraining, default=float)}", flush=True)
    calibrated = [] if args.skip_features else [calibrate(p, weights, args, out) for p in presets]
    learning = [learning_check(p, weights, args.learning_seeds, args, out) for p in presets if args.learning_seeds]
    text = report(pretraining, calibrated, learning, args)
    load = os.getloadavg()
    text += (f"\n\n{(time.perf_counter() - started) / 60:.1f} min with {torch.get_num_threads()} thread(s); "
             f"load average at the end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}\n"
             f"command: {' '.join([Path(sys.argv[0]).as_posix(), *(argv if argv is not None else sys.argv[1:])])}")
    print(text)
    (out / "calibration.md").write_text(text + "\n")
    (out / "calibration.json").write_text(json.dumps(
        {"pretraining": pretraining, "presets": calibrated, "learning": learning}, indent=1, default=float) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
