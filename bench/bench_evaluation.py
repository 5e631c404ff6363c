"""Time and peak memory of the evaluation paths at Market-1501 and MSMT17 scale.

    .venv/bin/python bench/bench_evaluation.py                 # market and msmt17
    .venv/bin/python bench/bench_evaluation.py --scale market  # one scale

Rows, each measured in its own subprocess (so its peak RSS is its own):
  naive     full (Q, G) distance matrix, full argsort, per-query Python loop (torchreid style,
            `reference_evaluate_rank`)
  dense     full (Q, G) distance matrix, then `evaluate_rank` (chunked stable sort, vectorised)
  chunked   `evaluate_features`: distances, sort and metrics per query chunk; no (Q, G) matrix
A row whose estimated memory does not fit in this machine's available memory is skipped and says so.

Features are random with identity structure (a random centre per person plus noise, d = 768), the
camera of each crop random among the dataset's cameras, Market-style pid 0 distractors in the
gallery. "peak RSS" is the worker's peak resident memory minus its peak after the features were
made (ru_maxrss), i.e. what the method itself added.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from dataclasses import dataclass

import torch
from common import available_bytes

# name: (queries, gallery, identities in the test split, cameras, distractor gallery crops)
SCALES = {
    "market": (3368, 15913, 750, 6, 2798),
    "msmt17": (11659, 82161, 3060, 15, 0),
}
METHODS = ("naive", "dense", "chunked")
NOISE = 2.5  # per-dimension noise around a person's centre (unit-variance centres)


@dataclass
class Split:
    q_feats: torch.Tensor
    g_feats: torch.Tensor
    q_pids: torch.Tensor
    g_pids: torch.Tensor
    q_camids: torch.Tensor
    g_camids: torch.Tensor


def make_split(scale: str, dim: int, seed: int = 0) -> Split:
    """Random features with identity structure, built in place (no full-size temporaries) so the
    worker's memory peak after this step is the features themselves."""
    num_q, num_g, num_ids, num_cams, num_distractors = SCALES[scale]
    gen = torch.Generator().manual_seed(seed)
    centres = torch.randn(num_ids, dim, generator=gen)
    q_pids = torch.randint(1, num_ids, (num_q,), generator=gen)
    g_pids = torch.randint(1, num_ids, (num_g,), generator=gen)
    g_pids[:num_distractors] = 0  # distractors: their own random "centre" 0, never a query
    feats = []
    for pids in (q_pids, g_pids):
        crops = torch.randn(len(pids), dim, generator=gen).mul_(NOISE)
        for start in range(0, len(pids), 4096):
            crops[start:start + 4096] += centres[pids[start:start + 4096]]
        feats.append(crops)
    return Split(feats[0], feats[1], q_pids, g_pids,
                 torch.randint(0, num_cams, (num_q,), generator=gen),
                 torch.randint(0, num_cams, (num_g,), generator=gen))


def estimated_bytes(method: str, num_q: int, num_g: int) -> int:
    """Rough peak of each method beyond the features (the dominant (Q, G) arrays)."""
    cells = num_q * num_g
    return {"naive": cells * (4 + 8), "dense": cells * 4 + (1 << 30), "chunked": 1 << 30}[method]


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def run_worker(method: str, scale: str, dim: int, chunk_size: int | None) -> dict:
    from lwtgpf.evaluation import evaluate_features, evaluate_rank, pairwise_distance, reference_evaluate_rank

    split = make_split(scale, dim)
    labels = [split.q_pids.numpy(), split.g_pids.numpy(), split.q_camids.numpy(), split.g_camids.numpy()]
    rss_before = peak_rss_bytes()
    start = time.perf_counter()
    if method == "chunked":
        result = evaluate_features(split.q_feats, split.g_feats, *labels, chunk_size=chunk_size)
        mAP, r1 = result["mAP"], result["R1"]
    else:
        distmat = pairwise_distance(split.q_feats, split.g_feats).numpy()
        evaluate = reference_evaluate_rank if method == "naive" else evaluate_rank
        cmc, mAP, _ = evaluate(distmat, *labels)
        r1 = cmc[0]
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "peak_rss_delta": peak_rss_bytes() - rss_before, "mAP": float(mAP),
            "R1": float(r1)}


def measure(method: str, scale: str, dim: int, chunk_size: int | None) -> dict:
    """Run one method in a fresh interpreter and read back its JSON line."""
    command = [sys.executable, __file__, "--worker", method, "--scale", scale, "--dim", str(dim)]
    if chunk_size:
        command += ["--chunk-size", str(chunk_size)]
    proc = subprocess.run(command, capture_output=True, text=True)
    if proc.returncode != 0:
        return {"error": f"worker exited {proc.returncode}: {proc.stderr.strip()[-300:]}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", choices=[*SCALES, "all"], default="all")
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--chunk-size", type=int, default=None,
                        help="queries per chunk of the chunked method (default: evaluate_features' own)")
    parser.add_argument("--worker", choices=METHODS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(run_worker(args.worker, args.scale, args.dim, args.chunk_size)))
        return

    scales = list(SCALES) if args.scale == "all" else [args.scale]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, d = {args.dim}, CPU")
    header = f"{'scale':<8} {'Q x G':>15} {'method':<8} {'time (s)':>9} {'peak RSS (MB)':>14} {'mAP':>7} {'R1':>7}"
    print(header)
    print("-" * len(header))
    for scale in scales:
        num_q, num_g = SCALES[scale][:2]
        features_bytes = (num_q + num_g) * args.dim * 4
        for method in args.methods:
            need = estimated_bytes(method, num_q, num_g) + features_bytes
            prefix = f"{scale:<8} {f'{num_q} x {num_g}':>15} {method:<8}"
            if need > available_bytes() - (2 << 30):  # keep 2 GiB for everyone else on the machine
                print(f"{prefix} skipped: needs about {need / 2**30:.1f} GiB, "
                      f"{available_bytes() / 2**30:.1f} GiB available")
                continue
            row = measure(method, scale, args.dim, args.chunk_size)
            if "error" in row:
                print(f"{prefix} {row['error']}")
                continue
            print(f"{prefix} {row['seconds']:>9.1f} {row['peak_rss_delta'] / 2**20:>14.0f} "
                  f"{100 * row['mAP']:>6.2f}% {100 * row['R1']:>6.2f}%", flush=True)


if __name__ == "__main__":
    main()
