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
("match ranks"); CMC only needs the first of them. `_metrics_from_match_ranks` turns them into
numbers, so two paths that produce the same match ranks give bit-identical metrics. Two ways to get
them, one chunk of queries at a time (never more than `chunk_size x G` distances held):

- by sorting (`_rank_chunk_by_sort`, used by `evaluate_rank`, the reference): a stable sort of each
  whole row, then the junk and the matches are read off the sorted labels;
- by partial selection (`_rank_chunk`, used by `evaluate_features` and the re-ranked evaluation):
  what ranks ahead of a true match m is exactly what has distance <= d(m) (with the tie rule above),
  so each row only needs the entries up to its farthest true match (and, for ranked lists, up to
  the k-th kept crop, found with a top-k). One comparison per distance selects those candidates;
  only they are sorted. A query's same-person crops (its matches and its junk) come from a per-person
  index of the gallery, never from the (C, G) label matrices. The cost beyond the distance matmul is
  one pass over the chunk plus a sort of the candidates: small when true matches rank high, and a
  chunk whose candidates are more than `SORT_SHARE` of it is ranked by sorting instead.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

# Distances held at once per chunk in the fast paths when chunk_size is not given: 2^24 float32
# values is 64 MiB (plus a bool mask of 16 MiB, and in the sorting path the sort's values, indices
# and label masks: several hundred MiB). Fewer elements save memory but cost time (smaller matmuls,
# per-chunk overhead).
CHUNK_ELEMENTS = 1 << 24
# A chunk whose candidates (entries up to each row's farthest match) are more than this share of its
# entries is ranked by sorting whole rows instead (same ranks; cheaper when nearly everything is a
# candidate, as with an untrained model). 1.0: never.
SORT_SHARE = 0.25


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
# labels on the ranking device
# ----------------------------------------------------------------------------------------------

@dataclass
class _Labels:
    """The label vectors as compact codes on the ranking device, plus a per-person gallery index.

    q_pid, q_cam (Q,), g_pid, g_cam (G,) int32 codes; by_pid (G,) int64: gallery indices grouped by
    pid code, ascending within a person; pid_start, pid_count (P,) int64: where each person's group
    starts in by_pid and how long it is (0 for a person with no gallery crop).
    """

    q_pid: torch.Tensor
    q_cam: torch.Tensor
    g_pid: torch.Tensor
    g_cam: torch.Tensor
    by_pid: torch.Tensor
    pid_start: torch.Tensor
    pid_count: torch.Tensor

    @classmethod
    def build(cls, q_pids: Any, g_pids: Any, q_camids: Any, g_camids: Any, num_q: int, num_g: int,
              device: torch.device) -> "_Labels":
        codes = _label_codes(q_pids, g_pids, q_camids, g_camids, num_q, num_g)
        q_pid, g_pid, q_cam, g_cam = (torch.from_numpy(c).to(device) for c in codes)
        num_pids = int(max(codes[0].max(), codes[1].max())) + 1
        by_pid = torch.from_numpy(np.argsort(codes[1], kind="stable")).to(device)
        pid_count = torch.from_numpy(np.bincount(codes[1], minlength=num_pids)).to(device)
        return cls(q_pid, q_cam, g_pid, g_cam, by_pid, torch.cumsum(pid_count, 0) - pid_count, pid_count)

    def same_person(self, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The gallery crops of the same person as each query start..stop-1, as pairs sorted by
        (query, gallery index): row (H,) 0-based within the chunk, gallery (H,) index, junk (H,) bool
        (same camera too: removed from the ranking; the others are the true matches)."""
        pids = self.q_pid[start:stop].long()
        counts = self.pid_count[pids]
        row = torch.repeat_interleave(torch.arange(len(pids), device=pids.device), counts)
        within = torch.arange(len(row), device=pids.device) - torch.repeat_interleave(
            torch.cumsum(counts, 0) - counts, counts)
        gallery = self.by_pid[self.pid_start[pids][row] + within]
        junk = self.g_cam[gallery] == self.q_cam[start:stop][row]
        return row, gallery, junk


def _flat_nonzero(mask: torch.Tensor) -> torch.Tensor:
    """Flat positions (int64, ascending) of the True entries of a contiguous bool tensor. numpy on
    the CPU (several times faster than torch there for sparse masks), torch elsewhere."""
    if mask.device.type == "cpu":
        return torch.from_numpy(np.flatnonzero(mask.numpy()))
    return mask.reshape(-1).nonzero().squeeze(1)


def _sort_by_row_and_value(rows: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """The permutation (int64) that sorts entries by (row, value), equal keys keeping their order.

    rows (P,) int64 ascending, values (P,) float. float32 values: one stable sort of the int64 keys
    row * 2^32 + (the value's bits mapped to an order-preserving integer), in numpy on the CPU (3x
    faster than two torch sorts there); other dtypes: a stable sort by value, then by row."""
    if values.dtype != torch.float32:
        by_value = torch.sort(values, stable=True).indices
        return by_value[torch.sort(rows[by_value], stable=True).indices]
    values = values + 0.0  # -0.0 becomes +0.0: equal floats must get equal keys
    if values.device.type == "cpu":
        bits = values.numpy().view(np.int32).astype(np.int64)
        bits ^= (bits >> 31) & 0x7FFFFFFF  # negative floats: reverse the magnitude order
        return torch.from_numpy(np.argsort((rows.numpy() << 32) + bits, kind="stable"))
    bits = values.view(torch.int32).long()
    bits ^= (bits >> 31) & 0x7FFFFFFF
    return torch.sort((rows << 32) + bits, stable=True).indices


# ----------------------------------------------------------------------------------------------
# ranks of the true matches, one chunk of queries at a time
# ----------------------------------------------------------------------------------------------

ChunkRanks = tuple[torch.Tensor, torch.Tensor, "torch.Tensor | None"]


def _rank_chunk(dist: torch.Tensor, labels: _Labels, start: int, topk: int = 0) -> ChunkRanks:
    """Rank the gallery for queries start..start+C-1 by partial selection (module docstring).

    dist (C, G) float, contiguous, finite, on the labels' device. Returns (match_query (H,),
    match_rank (H,), topk_index (C, topk) or None): for each of the H true matches of the chunk, its
    query row (0..C-1) and its 0-based rank among the kept gallery crops, sorted by query then rank;
    and the gallery indices of the first `topk` kept crops (-1 where a query has fewer kept crops).
    The same values as `_rank_chunk_by_sort` on the same distances.
    """
    num_c, num_g = dist.shape
    device = dist.device
    row, gallery, junk = labels.same_person(start, start + num_c)
    pair_dist = dist[row, gallery]

    # Each row's threshold: its farthest true match (-inf without one), or for ranked lists at least
    # the (topk + junk)-th smallest distance, which bounds the topk-th kept crop's distance.
    good = ~junk
    threshold = torch.full((num_c,), float("-inf"), dtype=dist.dtype, device=device)
    threshold.scatter_reduce_(0, row[good], pair_dist[good], reduce="amax")
    if topk:
        junk_count = torch.bincount(row[junk], minlength=num_c)
        width = min(num_g, topk + int(junk_count.max()))
        smallest = torch.topk(dist, width, dim=1, largest=False).values  # (C, width) ascending
        kth = smallest.gather(1, ((topk + junk_count).clamp(max=width) - 1)[:, None]).squeeze(1)
        threshold = torch.maximum(threshold, kth)

    flat = _flat_nonzero(dist <= threshold[:, None]).to(device)  # candidates, by (row, gallery index)
    if len(flat) > SORT_SHARE * dist.numel():
        return _rank_chunk_by_sort(dist, labels, start, topk)
    cand_row, cand_gallery = flat // num_g, flat % num_g
    order = _sort_by_row_and_value(cand_row, dist.reshape(-1)[flat])  # then by gallery index
    position = torch.empty_like(order)
    position[order] = torch.arange(len(order), device=device)  # sorted position of each candidate
    row_start = torch.searchsorted(cand_row, torch.arange(num_c, device=device))  # (C,)

    # Column of each same-person candidate in its row's full ranking (all crops, junk included).
    inside = pair_dist <= threshold[row]  # every true match is; junk may be farther
    row, junk = row[inside], junk[inside]
    cand_index = torch.searchsorted(flat, row * num_g + gallery[inside])
    column = position[cand_index] - row_start[row]
    # Rank among kept crops = column - junk crops ahead of it in the row.
    by_column = torch.argsort(row * num_g + column)
    row, column, junk = row[by_column], column[by_column], junk[by_column]
    junk_ahead = torch.cumsum(junk, 0) - junk.long()
    junk_ahead -= junk_ahead[torch.searchsorted(row, row)]
    match_row, match_rank = row[~junk], (column - junk_ahead)[~junk]

    topk_index = None
    if topk:
        is_junk = torch.zeros(len(flat), dtype=torch.bool, device=device)
        is_junk[cand_index[by_column][junk]] = True
        kept = ~is_junk[order]
        sorted_row = cand_row[order]
        kept_rank = torch.cumsum(kept, 0) - kept.long()  # kept candidates before, over all rows
        kept_rank -= kept_rank[row_start[sorted_row]]
        take = kept & (kept_rank < topk)
        topk_index = torch.full((num_c, topk), -1, dtype=torch.long, device=device)
        topk_index[sorted_row[take], kept_rank[take]] = cand_gallery[order][take]
    return match_row, match_rank, topk_index


def _rank_chunk_by_sort(dist: torch.Tensor, labels: _Labels, start: int, topk: int = 0) -> ChunkRanks:
    """Rank the gallery for queries start..start+C-1 by a stable sort of every whole row: the
    reference way (`evaluate_rank`). Same arguments and returns as `_rank_chunk`."""
    num_g = dist.shape[1]
    q_pids, q_camids = labels.q_pid[start:start + len(dist)], labels.q_cam[start:start + len(dist)]
    order = torch.sort(dist, dim=1, stable=True).indices  # (C, G)
    same_pid = labels.g_pid[order] == q_pids[:, None]
    junk = same_pid & (labels.g_cam[order] == q_camids[:, None])
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


def _evaluate_chunks(
    chunks: Iterable[tuple[int, torch.Tensor]],
    labels: _Labels,
    num_q: int,
    max_rank: int,
    topk: int = 0,
    rank_chunk: Callable[..., ChunkRanks] = _rank_chunk,
) -> dict[str, Any]:
    """Metrics from (start, dist (C, G)) chunks that cover queries 0..Q-1 in order (see
    `evaluate_features` for the returned dict)."""
    queries, ranks, topk_rows = [], [], []
    for start, dist in chunks:
        match_row, match_rank, topk_index = rank_chunk(dist, labels, start, topk)
        queries.append((match_row + start).cpu().numpy())
        ranks.append(match_rank.cpu().numpy())
        if topk:
            topk_rows.append(topk_index.cpu().numpy())
    metrics = _metrics_from_match_ranks(np.concatenate(queries), np.concatenate(ranks), num_q, max_rank)
    if topk:
        metrics["topk"] = np.concatenate(topk_rows).astype(np.int64)
    return metrics


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
    """torchreid's entry point on a precomputed distance matrix: the reference of the fast paths.

    distmat (Q, G) numpy array or tensor (smaller = more similar); pids and camids (Q,) / (G,) ints.
    Returns (all_cmc (min(max_rank, G),) float64 in [0, 1], mAP in [0, 1], mINP in [0, 1]).
    Rows are ranked `chunk_size` queries at a time by a stable sort of each whole row (module
    docstring), so only the matrix itself must fit in memory. Raises ValueError on NaN distances.
    """
    if isinstance(distmat, np.ndarray):
        distmat = torch.from_numpy(distmat)  # shares memory
    distmat = torch.as_tensor(distmat)
    if distmat.ndim != 2:
        raise ValueError(f"distmat must be a (num_query, num_gallery) matrix, got shape "
                         f"{tuple(distmat.shape)}")
    num_q, num_g = distmat.shape
    labels = _Labels.build(q_pids, g_pids, q_camids, g_camids, num_q, num_g, distmat.device)
    max_rank = _check_max_rank(max_rank, num_g)
    step = _resolve_chunk_size(chunk_size, num_g)

    def chunks():
        for start in range(0, num_q, step):
            dist = distmat[start:start + step]
            if torch.isnan(dist).any():
                bad = start + int(torch.isnan(dist).any(dim=1).nonzero()[0])
                raise ValueError(f"distmat row {bad} contains NaN distances")
            yield start, dist

    metrics = _evaluate_chunks(chunks(), labels, num_q, max_rank, rank_chunk=_rank_chunk_by_sort)
    return metrics["cmc"], metrics["mAP"], metrics["mINP"]


def _as_feature_pair(q_feats: Any, g_feats: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Check (Q, D), (G, D) finite features; returns them as tensors (no copy when they are)."""
    q_feats, g_feats = torch.as_tensor(q_feats), torch.as_tensor(g_feats)
    if q_feats.ndim != 2 or g_feats.ndim != 2 or q_feats.shape[1] != g_feats.shape[1]:
        raise ValueError(f"q_feats and g_feats must be (Q, D) and (G, D) with the same D, got "
                         f"{tuple(q_feats.shape)} and {tuple(g_feats.shape)}")
    for name, feats in (("q_feats", q_feats), ("g_feats", g_feats)):
        if not torch.isfinite(feats).all():
            raise ValueError(f"{name} contains NaN or infinite values")
    return q_feats, g_feats


def distance_chunks(
    q_feats: torch.Tensor, g_feats: torch.Tensor, step: int, device: torch.device
) -> Iterator[tuple[int, torch.Tensor]]:
    """(start, (C, G) float32 distances 2 - 2cos of queries start..start+C-1) for C = `step` queries
    at a time (the last chunk may be shorter). Every chunk is written into one reused buffer: use a
    chunk before asking for the next."""
    g_normed = F.normalize(g_feats.to(device, torch.float32), dim=1)
    buffer = torch.empty((min(step, len(q_feats)), len(g_normed)), dtype=torch.float32, device=device)
    for start in range(0, len(q_feats), step):
        q_normed = F.normalize(q_feats[start:start + step].to(device, torch.float32), dim=1)
        dist = torch.mm(q_normed, g_normed.T, out=buffer[:len(q_normed)])
        yield start, dist.mul_(-2.0).add_(2.0)  # = _distance_of_normalised, without a fresh buffer


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
    rerank: bool = False,
    rerank_k1: int = 20,
    rerank_k2: int = 6,
    rerank_lambda: float = 0.3,
) -> dict[str, Any]:
    """The protocol of SPEC section 7 straight from features, never holding the (Q, G) matrix.

    q_feats (Q, D), g_feats (G, D) numpy arrays or tensors (any float dtype; L2-normalised here);
    pids and camids (Q,) / (G,) ints. Distance: squared Euclidean between unit vectors (2 - 2cos),
    computed `chunk_size` queries at a time with a matmul (default: about 2^24 distances per chunk,
    204 queries at MSMT17's 82,161 gallery crops) and ranked by partial selection (module docstring).
    `device`: where the matmul and ranking run (default: q_feats' device for tensors, else CPU).
    rerank=True ranks by the k-reciprocal re-ranked distance instead (Zhong et al. 2017; k1, k2,
    lambda as in `re_ranking`), computed in bounded memory by `lwtgpf.evaluation.rerank_sparse`.

    Returns a dict: mAP, mINP (floats in [0, 1]), cmc ((min(max_rank, G),) float64), R1, R5, R10,
    num_valid_queries, per_query_ap ((Q,), NaN for skipped queries) and, with return_topk=k > 0,
    topk ((Q, k) int64 gallery indices of each query's first k crops after removing its
    same-person same-camera crops, -1 padding).
    Gives the same numbers as `evaluate_rank(pairwise_distance(q_feats, g_feats), ...)` (with
    rerank: as `evaluate_rank` of the re-ranked distance). Raises ValueError on bad shapes, labels,
    non-finite features, or when no query has a true match.
    """
    q_feats, g_feats = _as_feature_pair(q_feats, g_feats)
    if int(return_topk) < 0:
        raise ValueError(f"return_topk must be >= 0, got {return_topk}")
    num_q, num_g = q_feats.shape[0], g_feats.shape[0]
    device = torch.device(device) if device is not None else q_feats.device
    labels = _Labels.build(q_pids, g_pids, q_camids, g_camids, num_q, num_g, device)
    max_rank = _check_max_rank(max_rank, num_g)
    step = _resolve_chunk_size(chunk_size, num_g)
    topk = min(int(return_topk), num_g)
    if rerank:
        from .rerank_sparse import KReciprocalReranking  # imports this module

        reranking = KReciprocalReranking(q_feats, g_feats, rerank_k1, rerank_k2, rerank_lambda, device=device)
        chunks = reranking.chunks(step)
    else:
        chunks = distance_chunks(q_feats, g_feats, step, device)
    return _evaluate_chunks(chunks, labels, num_q, max_rank, topk)


def topk_distances(q_feats: Any, g_feats: Any, topk: np.ndarray) -> np.ndarray:
    """(Q, k) float32 squared Euclidean distance between unit features (2 - 2cos) of each query to the
    gallery crops of its ranked list `topk` ((Q, k) gallery indices, -1 padding -> NaN)."""
    q, g = _as_feature_pair(q_feats, g_feats)
    index = torch.as_tensor(np.asarray(topk), dtype=torch.long, device=q.device)
    picked = g[index.clamp(min=0)]  # (Q, k, D)
    cosine = torch.einsum("qd,qkd->qk", F.normalize(q.float(), dim=1), F.normalize(picked.float(), dim=2))
    distance = (2 - 2 * cosine).clamp(min=0).cpu().numpy().astype(np.float32)
    distance[np.asarray(topk) < 0] = np.nan
    return distance


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
