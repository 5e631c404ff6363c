"""Time and peak memory of the evaluation paths at Market-1501 and MSMT17 scale.

    .venv/bin/python bench/bench_evaluation.py                 # market and msmt17, every method
    .venv/bin/python bench/bench_evaluation.py --scale market  # one scale
    .venv/bin/python bench/bench_evaluation.py --methods floor fast rerank

Rows, each measured in its own subprocess (so its peak RSS is its own):
  floor         the distance matmul alone: normalise, (C, D) x (D, G) matmul and 2 - 2cos per chunk
                of queries, nothing else (`distance_chunks`, the same chunks as `fast`)
  fast          `evaluate_features`: chunked distances ranked by partial selection
  sort          chunked distances, stable sort of every row per chunk (the evaluation before partial
                selection: `evaluate_features` ranked by `_rank_chunk_by_sort`)
  dense         full (Q, G) distance matrix, then `evaluate_rank` (stable sort of every row, vectorised)
  naive         full (Q, G) distance matrix, full argsort, per-query Python loop (torchreid style,
                `reference_evaluate_rank`)
  rerank        `evaluate_features(rerank=True)`: sparse re-ranking in bounded memory (rerank_sparse.py)
  rerank-dense  k-reciprocal re-ranking by the dense reference `re_ranking_features`, then `evaluate_rank`
  rerank-diff   max |dense - sparse| of the two re-ranked (Q, G) matrices, also with the dense reference
                given the sparse path's neighbour lists (not in the default list; see rerank_difference)
A row whose estimated memory does not fit in this machine's available memory is skipped and says so.

Features are random with identity structure (a random centre per person plus noise, d = 768), the
camera of each crop random among the dataset's cameras, Market-style pid 0 distractors in the
gallery. "peak RSS" is the worker's peak resident memory minus its peak after the features were
made (ru_maxrss), i.e. what the method itself added; "load" the 1-minute load average as the row
ended (the row's own two threads account for up to about 2 of it; more means other work shared the
CPU). Re-ranking uses k1 20, k2 6, lambda 0.3.
"""
from __future__ import annotations

import argparse
import json
import os
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
# floor and fast first and side by side (their ratio is the headline), the long baselines after them
METHODS = ("floor", "fast", "sort", "dense", "naive", "rerank", "rerank-dense", "rerank-diff")
DEFAULT_METHODS = METHODS[:-1]
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


def estimated_bytes(method: str, num_q: int, num_g: int, dim: int) -> int:
    """Rough peak of each method beyond the features."""
    from lwtgpf.evaluation import estimate_rerank_bytes

    cells, n = num_q * num_g, num_q + num_g
    return {
        "floor": 1 << 30, "naive": cells * (4 + 8), "dense": cells * 4 + (1 << 30), "sort": 1 << 30,
        "fast": 1 << 30,
        "rerank-dense": int(9.7 * n * n) + cells * 4,  # rerank.py: N x N float32 + the three inputs
        "rerank": estimate_rerank_bytes(num_q, num_g, dim),
        "rerank-diff": int(9.7 * n * n) + cells * 8,
    }[method]


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def run_worker(method: str, scale: str, dim: int, chunk_size: int | None) -> dict:
    from lwtgpf.evaluation import (
        evaluate_features,
        evaluate_rank,
        pairwise_distance,
        re_ranking_features,
        reference_evaluate_rank,
    )
    from lwtgpf.evaluation.ranking import (
        _evaluate_chunks,
        _Labels,
        _rank_chunk_by_sort,
        _resolve_chunk_size,
        distance_chunks,
    )

    split = make_split(scale, dim)
    labels = [split.q_pids.numpy(), split.g_pids.numpy(), split.q_camids.numpy(), split.g_camids.numpy()]
    num_q, num_g = len(split.q_feats), len(split.g_feats)
    rss_before = peak_rss_bytes()
    start = time.perf_counter()
    out: dict = {}
    if method == "floor":
        for _ in distance_chunks(split.q_feats, split.g_feats, _resolve_chunk_size(chunk_size, num_g),
                                 torch.device("cpu")):
            pass
    elif method in ("fast", "rerank"):
        result = evaluate_features(split.q_feats, split.g_feats, *labels, chunk_size=chunk_size,
                                   rerank=method == "rerank")
        out = {"mAP": result["mAP"], "R1": result["R1"]}
    elif method == "sort":
        ranked = _Labels.build(*labels, num_q, num_g, torch.device("cpu"))
        chunks = distance_chunks(split.q_feats, split.g_feats, _resolve_chunk_size(chunk_size, num_g),
                                 torch.device("cpu"))
        result = _evaluate_chunks(chunks, ranked, num_q, 50, rank_chunk=_rank_chunk_by_sort)
        out = {"mAP": result["mAP"], "R1": result["R1"]}
    elif method == "rerank-diff":
        out = rerank_difference(split)
    else:
        if method == "rerank-dense":
            distmat = re_ranking_features(split.q_feats, split.g_feats)
        else:
            distmat = pairwise_distance(split.q_feats, split.g_feats).numpy()
        evaluate = reference_evaluate_rank if method == "naive" else evaluate_rank
        cmc, mAP, _ = evaluate(distmat, *labels)
        out = {"mAP": float(mAP), "R1": float(cmc[0])}
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "peak_rss_delta": peak_rss_bytes() - rss_before, **out}


def rerank_difference(split: Split) -> dict:
    """|dense - sparse| of the two re-ranked (Q, G) matrices: the largest, the query rows above 1e-6,
    and the largest when the dense reference is given the sparse path's neighbour lists (float64 kNN)
    instead of ranking its own float32 matrix (where rounding ties or swaps near-equal neighbours)."""
    import numpy as np
    import torch.nn.functional as F

    from lwtgpf.cluster import nearest_neighbours
    from lwtgpf.evaluation import re_ranking_features, rerank, sparse_re_ranking

    sparse = sparse_re_ranking(split.q_feats, split.g_feats)
    dense = re_ranking_features(split.q_feats, split.g_feats)
    gap = np.abs(dense - sparse).max(axis=1)
    del dense
    x = F.normalize(torch.cat([split.q_feats, split.g_feats]), dim=1)
    lists = nearest_neighbours(x, 21, backend="torch").indices.numpy()
    own_ranking = rerank._nearest_stable
    rerank._nearest_stable = lambda dist, k: lists[:, :k]
    try:
        same_lists = re_ranking_features(split.q_feats, split.g_feats)
    finally:
        rerank._nearest_stable = own_ranking
    return {"max_abs_diff": float(gap.max()), "rows_over": int((gap > 1e-6).sum()), "rows": len(gap),
            "same_lists_diff": float(np.abs(same_lists - sparse).max())}


def measure(method: str, scale: str, dim: int, chunk_size: int | None) -> dict:
    """Run one method in a fresh interpreter and read back its JSON line."""
    command = [sys.executable, __file__, "--worker", method, "--scale", scale, "--dim", str(dim)]
    if chunk_size:
        command += ["--chunk-size", str(chunk_size)]
    proc = subprocess.run(command, capture_output=True, text=True)
    if proc.returncode != 0:
        return {"error": f"worker exited {proc.returncode}: {proc.stderr.strip()[-300:]}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", choices=[*SCALES, "all"], default="all")
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(DEFAULT_METHODS))
    parser.add_argument("--chunk-size", type=int, default=None,
                        help="queries per chunk of floor/sort/fast/rerank (default: evaluate_features' own)")
    parser.add_argument("--worker", choices=METHODS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(run_worker(args.worker, args.scale, args.dim, args.chunk_size)))
        return

    scales = list(SCALES) if args.scale == "all" else [args.scale]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, d = {args.dim}, CPU; "
          f"load average at start {load_average()}")
    header = (f"{'scale':<8} {'Q x G':>15} {'method':<12} {'time (s)':>9} {'peak RSS (MB)':>14} {'load':>5} "
              f"{'mAP':>7} {'R1':>7}")
    print(header)
    print("-" * len(header))
    for scale in scales:
        num_q, num_g = SCALES[scale][:2]
        features_bytes = (num_q + num_g) * args.dim * 4
        seconds = {}
        for method in args.methods:
            need = estimated_bytes(method, num_q, num_g, args.dim) + features_bytes
            prefix = f"{scale:<8} {f'{num_q} x {num_g}':>15} {method:<12}"
            if need > available_bytes() - (2 << 30):  # keep 2 GiB for everyone else on the machine
                print(f"{prefix} skipped: needs about {need / 2**30:.1f} GiB, "
                      f"{available_bytes() / 2**30:.1f} GiB available", flush=True)
                continue
            row = measure(method, scale, args.dim, args.chunk_size)
            if "error" in row:
                print(f"{prefix} {row['error']}", flush=True)
                continue
            seconds[method] = row["seconds"]
            if "max_abs_diff" in row:
                quality = (f" max |dense - sparse| {row['max_abs_diff']:.1e} ({row['rows_over']} of {row['rows']}"
                           f" query rows > 1e-6); with the same kNN lists {row['same_lists_diff']:.1e}")
            elif "mAP" in row:
                quality = f" {100 * row['mAP']:>6.2f}% {100 * row['R1']:>6.2f}%"
            else:
                quality = f" {'-':>7} {'-':>7}"
            load = os.getloadavg()[0]  # 1-minute load average as the row ends: other work on the machine
            print(f"{prefix} {row['seconds']:>9.1f} {row['peak_rss_delta'] / 2**20:>14.0f} {load:>5.2f}{quality}",
                  flush=True)
        ratios = [f"{a} / {b} = {seconds[a] / seconds[b]:.2f}"
                  for a, b in (("fast", "floor"), ("naive", "fast"), ("sort", "fast"), ("rerank-dense", "rerank"))
                  if a in seconds and b in seconds]
        if ratios:
            print(f"{scale:<8} time ratios: {', '.join(ratios)}", flush=True)
    print(f"load average at end {load_average()}")


if __name__ == "__main__":
    main()
