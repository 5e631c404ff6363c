"""k-reciprocal re-ranking at test time (Zhong et al., "Re-ranking Person Re-identification with
k-reciprocal Encoding", CVPR 2017), with the semantics of the reference Python version that
torchreid and open-reid ship (`re_ranking(q_g_dist, q_q_dist, g_g_dist, k1, k2, lambda_value)`):

1. Stack the query and gallery crops (N = Q + G) into one N x N distance matrix, square it and divide
   each crop's row by its largest entry (the reference squares its input: torchreid feeds it squared
   Euclidean distances, so the effective distance is (2 - 2cos)^2 there and here).
2. R(i, k): the k-reciprocal neighbours of i: j among i's k + 1 nearest (i itself included) with i
   among j's k + 1 nearest.
3. Expand R(i, k1) by R(c, round(k1 / 2)) of each member c that shares more than 2/3 of it with R(i, k1).
4. V[i, j] = exp(-d(i, j)) over the expanded set, normalised to sum 1 (zero elsewhere).
5. Local query expansion: V[i] <- mean of V over i's k2 nearest crops (skipped when k2 == 1).
6. Jaccard distance J(i, j) = 1 - sum_k min(V[i,k], V[j,k]) / sum_k max(V[i,k], V[j,k]),
   and the result (1 - lambda) * J + lambda * d over query rows x gallery columns.

Ranking inside uses a stable sort (ties keep crop order), like lwtgpf.evaluation.ranking.

This is the dense, whole-test-set version: it holds one N x N float32 matrix (Market-1501:
N = 19,281, 1.5 GB) besides the caller's three input matrices (another 1.5 GB at Market size);
V is kept sparse (scipy CSR, a few times k1 entries per row). MSMT17 (N = 93,820: 35 GB) is out of reach.
The sparse k-reciprocal neighbourhoods used for training pseudo labels live in lwtgpf/cluster/.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from .ranking import pairwise_distance

ROWS_PER_BLOCK = 256  # rows of the N x N matrix processed at once when selecting nearest neighbours


def _as_matrix(values: Any, name: str, shape: tuple[int, int]) -> np.ndarray:
    array = values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values)
    if array.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or infinite distances")
    return array


def _normalised_squared_distance(q_g: np.ndarray, q_q: np.ndarray, g_g: np.ndarray) -> np.ndarray:
    """(Q, G), (Q, Q), (G, G) -> (N, N) float32: row i holds the squared distances from crop i to
    every crop, divided by their maximum (the reference normalises columns and transposes, which
    reads the blocks transposed: this builds that result directly, in one buffer)."""
    num_q = q_q.shape[0]
    dist = np.empty((num_q + g_g.shape[0],) * 2, dtype=np.float32)
    dist[:num_q, :num_q] = q_q.T
    dist[:num_q, num_q:] = q_g
    dist[num_q:, :num_q] = q_g.T
    dist[num_q:, num_q:] = g_g.T
    np.square(dist, out=dist)
    row_max = dist.max(axis=1, keepdims=True)
    if (row_max <= 0).any():
        crop = int(np.flatnonzero(row_max[:, 0] <= 0)[0])
        raise ValueError(f"all distances from crop {crop} (row {crop} of the stacked query+gallery "
                         "matrix) are zero: re-ranking needs distinct features")
    dist /= row_max
    return dist


def _nearest_stable(dist: np.ndarray, k: int) -> np.ndarray:
    """(N, M) -> (N, k) int64: the first k columns of a stable argsort of each row (ties by column
    index), found by partitioning instead of sorting whole rows."""
    k = min(k, dist.shape[1])
    out = np.empty((dist.shape[0], k), dtype=np.int64)
    for start in range(0, dist.shape[0], ROWS_PER_BLOCK):
        block = dist[start:start + ROWS_PER_BLOCK]
        kth = np.partition(block, k - 1, axis=1)[:, k - 1:k]
        rows, cols = np.nonzero(block <= kth)  # the k nearest plus anything tied with the k-th
        by_row_value_col = np.lexsort((cols, block[rows, cols], rows))
        counts = np.bincount(rows, minlength=len(block))
        firsts = (np.cumsum(counts) - counts)[:, None] + np.arange(k)
        out[start:start + len(block)] = cols[by_row_value_col][firsts]
    return out


def _reciprocal_neighbours(nearest: np.ndarray, k: int) -> list[np.ndarray]:
    """nearest (N, >= k+1) -> R(i, k) for every i: the j in nearest[i, :k+1] with i in nearest[j, :k+1]."""
    forward = nearest[:, :k + 1]  # (N, k+1)
    backward = forward[forward]  # (N, k+1, k+1): the k+1 nearest of each forward neighbour
    is_reciprocal = (backward == np.arange(len(nearest))[:, None, None]).any(axis=2)
    return [forward[i][is_reciprocal[i]] for i in range(len(nearest))]


def _encode_neighbourhoods(dist: np.ndarray, nearest: np.ndarray, k1: int) -> sp.csr_matrix:
    """Steps 2-4: (N, N) distances and nearest neighbours -> V (N, N) sparse, rows summing to 1."""
    num = len(dist)
    recip = _reciprocal_neighbours(nearest, k1)
    recip_half = _reciprocal_neighbours(nearest, int(np.around(k1 / 2.0)))
    is_member = np.zeros(num, dtype=bool)
    rows, cols, weights = [], [], []
    for i in range(num):
        members = recip[i]
        is_member[members] = True
        expansion = [members]
        for candidate in members:
            candidate_set = recip_half[candidate]
            if is_member[candidate_set].sum() > 2.0 / 3.0 * len(candidate_set):
                expansion.append(candidate_set)
        is_member[members] = False
        expanded = np.unique(np.concatenate(expansion))
        weight = np.exp(-dist[i, expanded].astype(np.float64))
        rows.append(np.full(len(expanded), i))
        cols.append(expanded)
        weights.append(weight / weight.sum())
    return sp.csr_matrix((np.concatenate(weights), (np.concatenate(rows), np.concatenate(cols))),
                         shape=(num, num))


def _query_expansion(v: sp.csr_matrix, nearest: np.ndarray, k2: int) -> sp.csr_matrix:
    """Step 5: V[i] <- mean of V[nearest[i, :k2]], as a sparse averaging matrix times V."""
    num = v.shape[0]
    averaging = sp.csr_matrix(
        (np.full(num * k2, 1.0 / k2), (np.repeat(np.arange(num), k2), nearest[:, :k2].ravel())),
        shape=(num, num))
    return (averaging @ v).tocsr()


def _jaccard_query_gallery(v: sp.csr_matrix, num_q: int) -> np.ndarray:
    """Step 6: (Q, G) Jaccard distance between query rows and gallery rows of V.

    With rows of V summing to 1, sum_k max = 2 - sum_k min, so J = 1 - m / (2 - m) with
    m = sum_k min(V[i,k], V[j,k]); m only gathers the gallery rows that share a nonzero column with
    query i (an inverted index: the columns of the gallery block, CSC)."""
    gallery_by_column = v[num_q:].tocsc()  # column k -> the gallery rows j with V[j, k] != 0
    num_g = gallery_by_column.shape[0]
    jaccard = np.empty((num_q, num_g), dtype=np.float32)
    for i in range(num_q):
        row = v.getrow(i)
        columns, query_values = row.indices, row.data
        starts = gallery_by_column.indptr[columns]
        lengths = gallery_by_column.indptr[columns + 1] - starts
        # flat positions of all entries of those columns, column after column
        offsets = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths) + np.arange(lengths.sum())
        overlap = np.minimum(np.repeat(query_values, lengths), gallery_by_column.data[offsets])
        shared = np.bincount(gallery_by_column.indices[offsets], weights=overlap, minlength=num_g)
        jaccard[i] = 1.0 - shared / (2.0 - shared)
    return jaccard


def re_ranking(
    q_g_dist: Any,
    q_q_dist: Any,
    g_g_dist: Any,
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
) -> np.ndarray:
    """k-reciprocal re-ranking (see the module docstring for the steps and the memory it takes).

    q_g_dist (Q, G), q_q_dist (Q, Q), g_g_dist (G, G): distances (numpy arrays or tensors), e.g.
    `pairwise_distance` of the features. k1: reciprocal neighbourhood size; k2: query-expansion size
    (1 turns it off); lambda_value in [0, 1]: weight of the original distance.
    Returns the re-ranked (Q, G) float32 distance, to pass to `evaluate_rank`.
    """
    q_g = np.asarray(q_g_dist.detach().cpu() if isinstance(q_g_dist, torch.Tensor) else q_g_dist)
    if q_g.ndim != 2:
        raise ValueError(f"q_g_dist must be a (num_query, num_gallery) matrix, got shape {q_g.shape}")
    num_q, num_g = q_g.shape
    q_g = _as_matrix(q_g, "q_g_dist", (num_q, num_g))
    q_q = _as_matrix(q_q_dist, "q_q_dist", (num_q, num_q))
    g_g = _as_matrix(g_g_dist, "g_g_dist", (num_g, num_g))
    if int(k1) < 1 or int(k2) < 1:
        raise ValueError(f"k1 and k2 must be >= 1, got k1={k1}, k2={k2}")
    if not 0.0 <= lambda_value <= 1.0:
        raise ValueError(f"lambda_value must lie in [0, 1], got {lambda_value}")

    dist = _normalised_squared_distance(q_g, q_q, g_g)
    nearest = _nearest_stable(dist, max(int(k1) + 1, int(k2)))
    v = _encode_neighbourhoods(dist, nearest, int(k1))
    if k2 != 1:
        v = _query_expansion(v, nearest, int(k2))
    jaccard = _jaccard_query_gallery(v, num_q)
    return (jaccard * (1.0 - lambda_value) + dist[:num_q, num_q:] * lambda_value).astype(np.float32)


def re_ranking_features(
    q_feats: Any, g_feats: Any, k1: int = 20, k2: int = 6, lambda_value: float = 0.3
) -> np.ndarray:
    """q_feats (Q, D), g_feats (G, D) -> re-ranked (Q, G) distance, starting from the protocol's
    distance `pairwise_distance` (2 - 2cos) as torchreid does."""
    return re_ranking(pairwise_distance(q_feats, g_feats), pairwise_distance(q_feats, q_feats),
                      pairwise_distance(g_feats, g_feats), k1, k2, lambda_value)
