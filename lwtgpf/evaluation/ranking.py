"""Retrieval metrics of the re-id protocol (SPEC section 7): CMC, mAP and mINP.

Protocol, as in torchreid's `eval_market1501`:
- rank the whole gallery for each query by ascending distance;
- drop the gallery crops with the same pid AND the same camid as the query ("junk": the same person
  seen by the same camera is no re-identification); different-person crops of that camera stay;
- a query whose person has no crop left in the gallery is skipped; if every query is skipped the
  evaluation is meaningless and raises `ValueError`;
- AP is the non-interpolated average precision over all the query's true matches; mAP its mean over
  the valid queries;
- CMC is first-match-break: rank-k is 1 if the first true match is within the first k kept crops;
- INP (Ye et al., "Deep Learning for Person Re-identification: A Survey and Outlook") is
  (number of true matches) / (1-based rank of the hardest, i.e. last, true match); mINP its mean.
- Market-1501 distractors (pid 0) are ordinary gallery crops of another person: negatives.

Ties: the ranking is a *stable* sort of the distance row, so crops at equal distance keep gallery
order (the lower gallery index ranks first). Every path here (dense, chunked, CPU, GPU and the
reference loop) ranks the same way, so they agree exactly on tied distances too.

All metrics only need, per query, the 0-based ranks of its true matches among the kept crops
("match ranks"). The fast paths produce those ranks chunk by chunk and never hold more than
`chunk_size x G` distances; `_metrics_from_match_ranks` turns them into numbers.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

# Distances held at once per chunk in the fast paths when chunk_size is not given: 2^24 float32
# values is 64 MiB; with the sort's values, indices and the masks a chunk takes several hundred MiB
# (bench/bench_evaluation.py measured about 1 GiB peak at MSMT17 scale, normalised gallery included).
# Fewer elements save memory but cost time (small matmuls and per-chunk overhead).
CHUNK_ELEMENTS = 1 << 24


# ----------------------------------------------------------------------------------------------
# inputs
# ----------------------------------------------------------------------------------------------

def _as_label_vector(values: Any, name: str) -> np.ndarray:
    array = values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of integer labels, got shape {array.shape}")
    if array.size and not np.issubdtype(array.dtype, np.integer):
        if not np.all(np.mod(array, 1) == 0):
            raise ValueError(f"{name} must hold integer labels, got dtype {array.dtype}")
    return array.astype(np.int64)


def _label_codes(
    q_pids: Any, g_pids: Any, q_camids: Any, g_camids: Any, num_q: int, num_g: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Check the four label vectors against (num_q, num_g) and relabel pids and camids to compact
    int32 codes (equality is all the protocol uses; int32 halves the gathered (C, G) temporaries)."""
    vectors = {
        "q_pids": (_as_label_vector(q_pids, "q_pids"), num_q),
        "g_pids": (_as_label_vector(g_pids, "g_pids"), num_g),
        "q_camids": (_as_label_vector(q_camids, "q_camids"), num_q),
        "g_camids": (_as_label_vector(g_camids, "g_camids"), num_g),
    }
    for name, (vector, expected) in vectors.items():
        if len(vector) != expected:
            raise ValueError(f"{name} has {len(vector)} entries, expected {expected} (one per "
                             f"{'query' if name.startswith('q') else 'gallery'} crop)")
    if num_q == 0 or num_g == 0:
        raise ValueError(f"need at least one query and one gallery crop, got {num_q} x {num_g}")
    codes = []
    for q_name, g_name in (("q_pids", "g_pids"), ("q_camids", "g_camids")):
        both = np.concatenate([vectors[q_name][0], vectors[g_name][0]])
        _, inverse = np.unique(both, return_inverse=True)
        codes += [inverse[:num_q].astype(np.int32), inverse[num_q:].astype(np.int32)]
    q_pid_codes, g_pid_codes, q_cam_codes, g_cam_codes = codes
    return q_pid_codes, g_pid_codes, q_cam_codes, g_cam_codes


def _resolve_chunk_size(chunk_size: int | None, num_g: int) -> int:
    if chunk_size is None:
        return max(1, CHUNK_ELEMENTS // num_g)
    if int(chunk_size) < 1:
        raise ValueError(f"chunk_size must be a positive number of queries, got {chunk_size}")
    return int(chunk_size)


# ----------------------------------------------------------------------------------------------
# distances
# ----------------------------------------------------------------------------------------------

def _distance_of_normalised(q_normed: torch.Tensor, g_normed: torch.Tensor) -> torch.Tensor:
    """(C, D), (G, D) unit rows -> (C, G) squared Euclidean distance 2 - 2 cos (in place on the
    matmul output: one (C, G) buffer)."""
    return (q_normed @ g_normed.T).mul_(-2.0).add_(2.0)


def pairwise_distance(a: Any, b: Any) -> torch.Tensor:
    """Squared Euclidean distance between L2-normalised rows: (N, D), (M, D) -> (N, M), = 2 - 2cos.

    Dense: the (N, M) float32 result is held whole. The evaluation of SPEC section 7 uses exactly
    this distance; `evaluate_features` computes the same values chunk by chunk.
    """
    a, b = torch.as_tensor(a), torch.as_tensor(b)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"features must be (N, D) and (M, D) with the same D, got {tuple(a.shape)} "
                         f"and {tuple(b.shape)}")
    return _distance_of_normalised(F.normalize(a.float(), dim=1), F.normalize(b.float(), dim=1))


# ----------------------------------------------------------------------------------------------
# ranks of the true matches, one chunk of queries at a time
# ----------------------------------------------------------------------------------------------

def _rank_chunk(
    dist: torch.Tensor,
    q_pids: torch.Tensor,
    q_camids: torch.Tensor,
    g_pids: torch.Tensor,
    g_camids: torch.Tensor,
    topk: int = 0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Rank the gallery for a chunk of queries.

    dist (C, G) float; q_pids, q_camids (C,); g_pids, g_camids (G,) int32 codes, same device.
    Returns (match_query (H,), match_rank (H,), topk_index (C, topk) or None): for each of the H true
    matches of the chunk, its query row (0..C-1) and its 0-based rank among the kept gallery crops,
    sorted by query then rank; and the gallery indices of the first `topk` kept crops (-1 where a
    query has fewer kept crops than topk).
    """
    num_g = dist.shape[1]
    order = torch.sort(dist, dim=1, stable=True).indices  # (C, G)
    same_pid = g_pids[order] == q_pids[:, None]
    junk = same_pid & (g_camids[order] == q_camids[:, None])
    good = same_pid & ~junk
    del same_pid

    # Rank among kept crops = column in the full ranking minus the junk crops before it. Junk and
    # true matches are sparse, so count the junk before each match on flat (row * G + column) keys.
    match_row, match_col = good.nonzero(as_tuple=True)  # row-major: sorted by (row, column)
    junk_row, junk_col = junk.nonzero(as_tuple=True)
    junk_keys = junk_row * num_g + junk_col
    junk_before = (torch.searchsorted(junk_keys, match_row * num_g + match_col)
                   - torch.searchsorted(junk_keys, match_row * num_g))
    match_rank = match_col - junk_before

    topk_index = None
    if topk:
        # The first topk kept crops lie within the first topk + (most junk in a row) columns.
        width = min(num_g, topk + int(junk.sum(dim=1).max()))
        kept = ~junk[:, :width]
        pick = torch.sort((~kept).to(torch.int8), dim=1, stable=True).indices[:, :topk]
        topk_index = order[:, :width].gather(1, pick)
        topk_index[~kept.gather(1, pick)] = -1
    return match_row, match_rank, topk_index


# ----------------------------------------------------------------------------------------------
# metrics from match ranks
# ----------------------------------------------------------------------------------------------

def _metrics_from_match_ranks(
    match_query: np.ndarray, match_rank: np.ndarray, num_q: int, max_rank: int
) -> dict[str, Any]:
    """match_query, match_rank (H,) int, sorted by query then rank (global query index, 0-based rank
    among kept crops) -> metrics dict. Float64 throughout; the result depends only on these arrays,
    so every path that produces the same match ranks gives bit-identical numbers."""
    num_matches = np.bincount(match_query, minlength=num_q)  # (Q,)
    valid = num_matches > 0
    num_valid = int(valid.sum())
    if num_valid == 0:
        raise ValueError(f"no query has a true match in the gallery after removing same-person "
                         f"same-camera crops ({num_q} queries): check the pids and camids of the split")
    starts = np.cumsum(num_matches) - num_matches  # first match of each query in the flat arrays
    hit_number = np.arange(len(match_query)) - starts[match_query] + 1  # 1..num_matches per query
    precision_at_hit = hit_number / (match_rank + 1.0)

    ap = np.full(num_q, np.nan)
    ap[valid] = np.add.reduceat(precision_at_hit, starts[valid]) / num_matches[valid]
    first_rank = match_rank[starts[valid]]
    last_rank = match_rank[starts[valid] + num_matches[valid] - 1]
    inp = num_matches[valid] / (last_rank + 1.0)
    first_counts = np.bincount(first_rank, minlength=max_rank)[:max_rank]
    return {
        "mAP": float(np.mean(ap[valid])),
        "cmc": np.cumsum(first_counts) / num_valid,  # (max_rank,)
        "mINP": float(np.mean(inp)),
        **{f"R{k}": float(np.mean(first_rank < k)) for k in (1, 5, 10)},  # whatever max_rank is
        "num_valid_queries": num_valid,
        "per_query_ap": ap,  # NaN for skipped queries
    }


def _check_max_rank(max_rank: int, num_g: int) -> int:
    if int(max_rank) < 1:
        raise ValueError(f"max_rank must be >= 1, got {max_rank}")
    return min(int(max_rank), num_g)  # like torchreid: a small gallery shortens the CMC curve


# ----------------------------------------------------------------------------------------------
# entry points
# ----------------------------------------------------------------------------------------------

def evaluate_rank(
    distmat: Any,
    q_pids: Any,
    g_pids: Any,
    q_camids: Any,
    g_camids: Any,
    max_rank: int = 50,
    chunk_size: int | None = None,
) -> tuple[np.ndarray, float, float]:
    """torchreid's entry point on a precomputed distance matrix.

    distmat (Q, G) numpy array or tensor (smaller = more similar); pids and camids (Q,) / (G,) ints.
    Returns (all_cmc (min(max_rank, G),) float64 in [0, 1], mAP in [0, 1], mINP in [0, 1]).
    Rows are ranked `chunk_size` queries at a time (a stable sort, see the module docstring), so
    only the matrix itself must fit in memory.
    """
    if isinstance(distmat, np.ndarray):
        distmat = torch.from_numpy(distmat)  # shares memory
    distmat = torch.as_tensor(distmat)
    if distmat.ndim != 2:
        raise ValueError(f"distmat must be a (num_query, num_gallery) matrix, got shape "
                         f"{tuple(distmat.shape)}")
    num_q, num_g = distmat.shape
    codes = _label_codes(q_pids, g_pids, q_camids, g_camids, num_q, num_g)
    q_pid_t, g_pid_t, q_cam_t, g_cam_t = (torch.from_numpy(c).to(distmat.device) for c in codes)
    max_rank = _check_max_rank(max_rank, num_g)
    step = _resolve_chunk_size(chunk_size, num_g)

    queries, ranks = [], []
    for start in range(0, num_q, step):
        rows = slice(start, start + step)
        dist = distmat[rows]
        if torch.isnan(dist).any():
            bad = start + int(torch.isnan(dist).any(dim=1).nonzero()[0])
            raise ValueError(f"distmat row {bad} contains NaN distances")
        match_row, match_rank, _ = _rank_chunk(dist, q_pid_t[rows], q_cam_t[rows], g_pid_t, g_cam_t)
        queries.append((match_row + start).cpu().numpy())
        ranks.append(match_rank.cpu().numpy())
    metrics = _metrics_from_match_ranks(np.concatenate(queries), np.concatenate(ranks), num_q, max_rank)
    return metrics["cmc"], metrics["mAP"], metrics["mINP"]


def evaluate_features(
    q_feats: Any,
    g_feats: Any,
    q_pids: Any,
    g_pids: Any,
    q_camids: Any,
    g_camids: Any,
    max_rank: int = 50,
    chunk_size: int | None = None,
    return_topk: int = 0,
    device: str | torch.device | None = None,
) -> dict[str, Any]:
    """The protocol of SPEC section 7 straight from features, never holding the (Q, G) matrix.

    q_feats (Q, D), g_feats (G, D) numpy arrays or tensors (any float dtype; L2-normalised here);
    pids and camids (Q,) / (G,) ints. Distance: squared Euclidean between unit vectors (2 - 2cos),
    computed `chunk_size` queries at a time with a matmul (default: about 2^24 distances per chunk,
    205 queries at MSMT17's 82,161 gallery crops), ranked by a stable sort per chunk.
    `device`: where the matmul and sort run (default: q_feats' device for tensors, else CPU).

    Returns a dict: mAP, mINP (floats in [0, 1]), cmc ((min(max_rank, G),) float64), R1, R5, R10,
    num_valid_queries, per_query_ap ((Q,), NaN for skipped queries) and, with return_topk=k > 0,
    topk ((Q, k) int64 gallery indices of each query's first k crops after removing its
    same-person same-camera crops, -1 padding).
    Gives the same numbers as `evaluate_rank(pairwise_distance(q_feats, g_feats), ...)`.
    """
    q_feats, g_feats = torch.as_tensor(q_feats), torch.as_tensor(g_feats)
    if q_feats.ndim != 2 or g_feats.ndim != 2 or q_feats.shape[1] != g_feats.shape[1]:
        raise ValueError(f"q_feats and g_feats must be (Q, D) and (G, D) with the same D, got "
                         f"{tuple(q_feats.shape)} and {tuple(g_feats.shape)}")
    for name, feats in (("q_feats", q_feats), ("g_feats", g_feats)):
        if not torch.isfinite(feats).all():
            raise ValueError(f"{name} contains NaN or infinite values")
    if int(return_topk) < 0:
        raise ValueError(f"return_topk must be >= 0, got {return_topk}")
    num_q, num_g = q_feats.shape[0], g_feats.shape[0]
    device = torch.device(device) if device is not None else q_feats.device
    codes = _label_codes(q_pids, g_pids, q_camids, g_camids, num_q, num_g)
    q_pid_t, g_pid_t, q_cam_t, g_cam_t = (torch.from_numpy(c).to(device) for c in codes)
    max_rank = _check_max_rank(max_rank, num_g)
    step = _resolve_chunk_size(chunk_size, num_g)
    topk = min(int(return_topk), num_g)

    g_normed = F.normalize(g_feats.to(device, torch.float32), dim=1)
    queries, ranks, topk_rows = [], [], []
    for start in range(0, num_q, step):
        rows = slice(start, start + step)
        q_normed = F.normalize(q_feats[rows].to(device, torch.float32), dim=1)
        dist = _distance_of_normalised(q_normed, g_normed)
        match_row, match_rank, topk_index = _rank_chunk(
            dist, q_pid_t[rows], q_cam_t[rows], g_pid_t, g_cam_t, topk)
        del dist
        queries.append((match_row + start).cpu().numpy())
        ranks.append(match_rank.cpu().numpy())
        if topk:
            topk_rows.append(topk_index.cpu().numpy())
    metrics = _metrics_from_match_ranks(np.concatenate(queries), np.concatenate(ranks), num_q, max_rank)
    if topk:
        metrics["topk"] = np.concatenate(topk_rows).astype(np.int64)
    return metrics


def reference_evaluate_rank(
    distmat: np.ndarray,
    q_pids: np.ndarray,
    g_pids: np.ndarray,
    q_camids: np.ndarray,
    g_camids: np.ndarray,
    max_rank: int = 50,
) -> tuple[np.ndarray, float, float]:
    """The protocol as a plain per-query loop over a full (Q, G) matrix, torchreid style.

    Slow and memory hungry (a full (Q, G) argsort); it is the readable statement of the protocol
    that the tests and bench/bench_evaluation.py check the fast paths against. Same returns as
    `evaluate_rank`.
    """
    distmat = np.asarray(distmat)
    q_pids, g_pids = np.asarray(q_pids), np.asarray(g_pids)
    q_camids, g_camids = np.asarray(q_camids), np.asarray(g_camids)
    max_rank = min(max_rank, distmat.shape[1])
    order = np.argsort(distmat, axis=1, kind="stable")
    all_cmc, all_ap, all_inp = [], [], []
    for q in range(distmat.shape[0]):
        ranked = order[q]
        junk = (g_pids[ranked] == q_pids[q]) & (g_camids[ranked] == q_camids[q])
        is_match = (g_pids[ranked] == q_pids[q])[~junk]  # over kept crops, best first
        if not is_match.any():
            continue
        hits_so_far = np.cumsum(is_match)
        match_positions = np.flatnonzero(is_match)  # 0-based ranks of the true matches
        all_cmc.append((np.arange(max_rank) >= match_positions[0]).astype(np.float64))
        all_ap.append(np.mean(hits_so_far[match_positions] / (match_positions + 1.0)))
        all_inp.append(is_match.sum() / (match_positions[-1] + 1.0))
    if not all_cmc:
        raise ValueError("no query has a true match in the gallery")
    return np.mean(all_cmc, axis=0), float(np.mean(all_ap)), float(np.mean(all_inp))


def format_results(results: dict[str, Any]) -> str:
    """One line in percent: 'mAP 45.2% | R1 70.1% | R5 85.0% | R10 89.9% | mINP 12.3%'."""
    missing = [k for k in ("mAP", "R1", "R5", "R10", "mINP") if k not in results]
    if missing:
        raise KeyError(f"results lack {missing}; pass the dict returned by evaluate_features")
    return " | ".join(f"{k} {100.0 * results[k]:.1f}%" for k in ("mAP", "R1", "R5", "R10", "mINP"))
