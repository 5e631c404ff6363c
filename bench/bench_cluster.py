"""Time and peak memory of one epoch's pseudo-labelling step at Market, MSMT17 and 100k scale.

    .venv/bin/python bench/bench_cluster.py                     # N = 12,936, 32,621, 100,000
    .venv/bin/python bench/bench_cluster.py --sizes 12936       # one size

Rows, each measured in its own subprocess (so its peak RSS is its own):
  sparse   `lwtgpf.cluster.pseudo_label`: exact kNN (one bf16 pass over the symmetric score blocks,
           bounded candidate pools, float64 re-scoring) -> sparse Jaccard -> vectorised DBSCAN ->
           camera-aware proxies
  dense    the public-code algorithm (O2CAP/TMGF `compute_jaccard_distance` style): faiss kNN, three
           dense N x N float32 matrices filled by per-row Python loops, then scikit-learn DBSCAN on the
           dense matrix and the same proxies. Skipped, saying so, when its estimated memory does
           not fit in this machine's available memory.
  floor    the exact-kNN anchor: the row-blocked bf16 matmul of all N x N scores alone (no top-k,
           no re-scoring), what a row-by-row exact search pays at least.
  floor-sym  the bf16 matmul of the square blocks J >= I alone (~0.55 of those flops at these
           sizes): the part of the sparse row's kNN that no selection or re-scoring can remove.
"same labels" compares the sparse and dense DBSCAN labels element by element, at eps and at
eps + 1e-6 (see TIE_MARGIN: d = eps exactly happens structurally; float32 rounding decides it).

Features: d = 768, seeded, with identity structure (a centre per person drawn from a 16-d
"appearance space", a shared shift per camera, an offset per (person, camera) and per-crop noise),
L2-normalised; 751 / 1,041 / 3,000 people and 6 / 15 / 15 cameras. Clustering them is about as hard
as early-epoch features: ~7% outliers, NMI ~0.95, ~40% of multi-camera people split by camera.
"peak RSS" is the worker's peak resident memory (ru_maxrss); "step RSS" is that peak minus the
peak right after the features were made (the interpreter, libraries and features themselves).
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from common import available_bytes

# N: (identities, cameras)
SCALES = {12936: (751, 6), 32621: (1041, 15), 100000: (3000, 15)}
DIM = 768
LATENT = 16
NOISE = 1.0  # per-crop noise, relative to the unit-variance person centres
METHODS = ("sparse", "dense", "floor", "floor-sym")
# Pairs sharing 4 of their 6 query-expansion rows (with otherwise disjoint supports) have m = 2/3
# exactly, i.e. d = 0.5 = eps exactly; float32 (dense) and float64 (sparse) round them to either side.
# Comparing the labels at eps + TIE_MARGIN as well shows whether that is the only difference.
TIE_MARGIN = 1e-6


def make_features(n: int, num_ids: int, num_cams: int, seed: int = 0, camera_scale: float = 1.0,
                  feature_seed: int | None = None) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """(N, 768) L2-normalised features, true ids (N,) and cameras (N,), built in place in blocks.

    camera_scale scales the per-camera shifts (1: as measured; smaller: a network that learned to
    ignore the camera). feature_seed (default: seed) draws other noise for the same people and cameras.
    """
    gen = torch.Generator().manual_seed(seed)
    pids = torch.randint(0, num_ids, (n,), generator=gen)
    cams_per_id = torch.randint(2, min(6, num_cams) + 1, (num_ids,), generator=gen)  # cameras a person passes
    id_cams = torch.argsort(torch.rand(num_ids, num_cams, generator=gen), dim=1)
    cams = id_cams[pids, (torch.rand(n, generator=gen) * cams_per_id[pids]).long()]
    # Person centres from a low-dimensional "appearance space", so that people resemble each other
    # (cosine ~0 +- 0.18 between people rather than +- 0.04 for isotropic 768-d vectors).
    centres = torch.randn(num_ids, LATENT, generator=gen) @ torch.randn(LATENT, DIM, generator=gen) / LATENT**0.5
    camera_shift = 0.5 * camera_scale * torch.randn(num_cams, DIM, generator=gen)
    appearance = 0.6 * camera_scale * torch.randn(num_ids * num_cams, DIM, generator=gen)  # per (person, camera)
    if feature_seed is not None:
        gen = torch.Generator().manual_seed(feature_seed)
    feats = torch.randn(n, DIM, generator=gen).mul_(NOISE)
    for s in range(0, n, 8192):
        p, c = pids[s : s + 8192], cams[s : s + 8192]
        feats[s : s + 8192] += centres[p] + camera_shift[c] + appearance[p * num_cams + c]
    feats = torch.nn.functional.normalize(feats, dim=1, out=feats)
    return feats, pids.numpy(), cams.numpy()


# --------------------------------------------------------------------------- the public-code baseline
def dense_public_style(features: torch.Tensor, k1: int = 20, k2: int = 6) -> np.ndarray:
    """The public compute_jaccard_distance algorithm (faiss kNN, dense float32 N x N, per-row loops)."""
    import faiss

    x = features.numpy()
    n = len(x)
    index = faiss.IndexFlatL2(x.shape[1])
    index.add(x)
    _, initial_rank = index.search(x, k1)

    def k_reciprocal(i: int, k: int) -> np.ndarray:
        forward = initial_rank[i, : k + 1]
        backward = initial_rank[forward, : k + 1]
        return forward[np.where(backward == i)[0]]

    nn_k1 = [k_reciprocal(i, k1) for i in range(n)]
    nn_half = [k_reciprocal(i, int(np.around(k1 / 2))) for i in range(n)]
    v = np.zeros((n, n), dtype=np.float32)
    for i in range(n):
        expansion = nn_k1[i]
        for candidate in nn_k1[i]:
            half = nn_half[candidate]
            if len(np.intersect1d(half, nn_k1[i])) > 2 / 3 * len(half):
                expansion = np.append(expansion, half)
        expansion = np.unique(expansion)
        dist = 2 - 2 * x[i] @ x[expansion].T
        weights = np.exp(-dist - (-dist).max())
        v[i, expansion] = weights / weights.sum()
    if k2 != 1:
        v_qe = np.zeros_like(v)
        for i in range(n):
            v_qe[i] = v[initial_rank[i, :k2]].mean(axis=0)
        v = v_qe
        del v_qe
    inv_index = [np.where(v[:, i] != 0)[0] for i in range(n)]
    jaccard = np.zeros((n, n), dtype=np.float32)
    for i in range(n):
        temp_min = np.zeros(n, dtype=np.float32)
        nonzero = np.where(v[i] != 0)[0]
        for j in nonzero:
            temp_min[inv_index[j]] += np.minimum(v[i, j], v[inv_index[j], j])
        jaccard[i] = 1 - temp_min / (2 - temp_min)
    del v
    np.maximum(jaccard, 0, out=jaccard)
    return jaccard


def dense_estimated_bytes(n: int) -> int:
    return 3 * n * n * 4 + (1 << 30)  # V, V_qe and the Jaccard matrix at once, plus DBSCAN's work


# --------------------------------------------------------------------------- workers
def run_worker(method: str, n: int, labels_path: str) -> dict:
    from sklearn.cluster import DBSCAN

    from lwtgpf.cluster import build_camera_proxies, dbscan, nearest_neighbours, pseudo_label
    from lwtgpf.cluster.knn import SYMMETRIC_BLOCK
    from lwtgpf.config import ClusterConfig

    num_ids, num_cams = SCALES.get(n, (max(1, n // 30), 15))
    feats, pids, cams = make_features(n, num_ids, num_cams)
    nearest_neighbours(feats[:64], 2)  # warm-up: the one-off bf16-vs-fp32 probe is not part of the step
    base_rss = _peak_rss()
    cfg = ClusterConfig()
    result: dict = {}
    start = time.perf_counter()
    if method == "sparse":
        pseudo = pseudo_label(feats, cams, cfg, num_cams)
        labels = pseudo.labels
        result["phases"] = {k: round(v, 2) for k, v in pseudo.timings.items()}
        result["clusters"] = pseudo.num_clusters
        result["outliers"] = float((labels < 0).mean())
        result["stored_pairs_per_row"] = pseudo.distance.nnz / n
    elif method == "dense":
        jaccard = dense_public_style(feats, cfg.k1, cfg.k2)
        labels = DBSCAN(eps=cfg.eps, min_samples=cfg.min_samples, metric="precomputed").fit_predict(jaccard)
        build_camera_proxies(labels, cams, num_cams)
    elif method == "floor":  # the bf16 score matmul of all N x N pairs alone, in row blocks
        base = feats.bfloat16()
        rows = max(1, (1 << 26) // n)
        for s in range(0, n, rows):
            base[s : s + rows] @ base.T
        labels = np.zeros(0, dtype=np.int64)
    else:  # floor-sym: the square blocks J >= I alone, into one reused buffer as the sparse kNN does
        base = feats.bfloat16()
        block = min(n, SYMMETRIC_BLOCK)
        buffer = torch.empty(block * block, dtype=torch.bfloat16)
        for i in range(0, n, block):
            for j in range(i, n, block):
                a, b = base[i : i + block], base[j : j + block]
                torch.mm(a, b.T, out=buffer[: len(a) * len(b)].view(len(a), len(b)))
        labels = np.zeros(0, dtype=np.int64)
    result["seconds"] = time.perf_counter() - start
    result["peak_rss"] = _peak_rss()
    result["step_rss"] = result["peak_rss"] - base_rss
    # Untimed: the labels just above eps as well (see TIE_MARGIN).
    if method == "sparse":
        nudged = dbscan(pseudo.distance, cfg.eps + TIE_MARGIN, cfg.min_samples)
    elif method == "dense":
        nudged = DBSCAN(eps=cfg.eps + TIE_MARGIN, min_samples=cfg.min_samples, metric="precomputed").fit_predict(jaccard)
    else:
        nudged = labels
    np.save(labels_path, np.stack([labels, nudged]))
    return result


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def measure(method: str, n: int, labels_path: Path) -> dict:
    cmd = [sys.executable, __file__, "--worker", method, "--n", str(n), "--labels", str(labels_path)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"worker {method} N={n} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def gib(nbytes: float) -> str:
    return f"{nbytes / 2**30:.2f} GiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SCALES))
    parser.add_argument("--skip-dense", action="store_true", help="do not run the dense baseline")
    parser.add_argument("--worker", choices=METHODS, help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--labels", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(run_worker(args.worker, args.n, args.labels)))
        return

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; load average at start "
          f"{open('/proc/loadavg').read().split()[:3]}")
    header = f"{'N':>7} | {'method':<9} | {'seconds':>8} | {'peak RSS':>10} | {'step RSS':>10} | notes"
    print(header)
    print("-" * len(header))
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            results = {}
            for method in METHODS:
                if method == "dense" and args.skip_dense:
                    continue
                if method == "dense" and dense_estimated_bytes(n) > 0.85 * available_bytes():
                    print(f"{n:>7} | {method:<9} | {'skipped':>8} | needs ~{gib(dense_estimated_bytes(n))}, "
                          f"{gib(available_bytes())} available")
                    continue
                path = Path(tmp) / f"{method}_{n}.npy"
                results[method] = r = measure(method, n, path)
                notes = ""
                if method == "sparse":
                    notes = (f"phases {r['phases']}, {r['clusters']} clusters, {100 * r['outliers']:.1f}% outliers, "
                             f"{r['stored_pairs_per_row']:.0f} stored pairs/row")
                elif method == "dense":
                    sparse_labels, dense_labels = np.load(Path(tmp) / f"sparse_{n}.npy"), np.load(path)
                    same = [np.array_equal(a, b) for a, b in zip(sparse_labels, dense_labels)]
                    speedup = r["seconds"] / results["sparse"]["seconds"]
                    notes = (f"same labels as sparse: {same[0]} at eps, {same[1]} at eps + {TIE_MARGIN:g}; "
                             f"sparse is {speedup:.1f}x faster")
                else:
                    notes = f"sparse step = {results['sparse']['seconds'] / r['seconds']:.2f}x this floor"
                print(f"{n:>7} | {method:<9} | {r['seconds']:>8.2f} | {gib(r['peak_rss']):>10} | "
                      f"{gib(r['step_rss']):>10} | {notes}", flush=True)
    print(f"load average at end {open('/proc/loadavg').read().split()[:3]}")


if __name__ == "__main__":
    main()
