"""k-reciprocal Jaccard distance (SPEC section 4.2) in sparse form: memory O(N k), never N x N.

With rank(i) the k1 nearest crops of i, i itself first (`knn.nearest_neighbours`):
  R(i, k)  = the j among the first k + 1 entries of rank(i) whose own first k + 1 entries hold i;
  R(i)     = R(i, k1), and the half sets use k = round(k1 / 2) (Python/numpy rounding, half to even);
  R*(i)    = R(i) united with R(c, k1/2) for every c in R(i) with |R(c, k1/2) & R(i)| > 2/3 |R(c, k1/2)|;
  V[i, j]  = softmax over j in R*(i) of -(2 - 2 f_i.f_j), zero elsewhere;
  V[i]    <- mean of V[r] over the first k2 entries r of rank(i) (i included);
  d(i, j)  = 1 - m / (2 - m), m = sum_c min(V[i, c], V[j, c]), clamped below at 0.

When N < k1 every list is as long as it can be: rank(i) holds all N crops and "the first k + 1
entries" are min(k + 1, N) of them (the public code would index past the end there).

The result is a scipy CSR matrix holding every pair with d < 1, i.e. every pair that shares a
column of V; all other pairs have distance exactly 1. The diagonal is always stored, as an explicit
0.0 (m(i, i) = 1 exactly; the sums would leave a rounding residue), and so is every other zero
distance (duplicated crops): stored entries are the candidate neighbourhoods that `dbscan` reads,
so never call `eliminate_zeros()` on it. The matrix is exactly symmetric (each pair is computed
once). Values are float64.

Exact ties with eps: two crops whose query expansions share 4 of their 6 rows (and whose other rows
touch nothing in common) have m = 2/3 exactly, so d = 0.5 = the default eps. Such pairs are common
in tight groups; float64 here (and float32 in the public code) rounds them to either side of 0.5,
and DBSCAN's "d <= eps" then decides by rounding. bench/bench_cluster.py shows the labels of this
and the dense public algorithm are identical at eps + 1e-6, and differ at eps only through them.

Every step is vectorised over rows (torch on the features' device for the index work, scipy.sparse
for the products); the only Python loops run over at most k1 + 1 list positions or over row blocks.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import scipy.sparse as sp
import torch

from .knn import Neighbours, float64_sqnorm, nearest_neighbours, pair_dots

PAIR_BUDGET = 1 << 22  # (row, column, partner) triples generated at once in the min-sum step


def jaccard_distance(
    features: torch.Tensor | np.ndarray, k1: int = 20, k2: int = 6, knn_backend: str = "auto"
) -> sp.csr_matrix:
    """(N, N) sparse Jaccard distance of L2-normalised features (N, D); see the module docstring."""
    _check_ks(k1, k2)
    neighbours = nearest_neighbours(features, k1, backend=knn_backend)
    return jaccard_from_neighbours(features, neighbours, k1, k2)


def jaccard_from_neighbours(
    features: torch.Tensor | np.ndarray, neighbours: Neighbours, k1: int = 20, k2: int = 6
) -> sp.csr_matrix:
    """The Jaccard distance from precomputed `nearest_neighbours(features, k1)` (reused, not redone)."""
    _check_ks(k1, k2)
    rank = neighbours.indices
    x = features if isinstance(features, torch.Tensor) else torch.from_numpy(np.asarray(features))
    x = x.detach().to(rank.device, torch.float32)
    n = x.shape[0]
    if rank.shape != (n, min(k1, n)) or (n and bool((rank[:, 0] != torch.arange(n, device=rank.device)).any())):
        raise ValueError(f"rank must be ({n}, {min(k1, n)}) with rank[i, 0] == i, got shape {tuple(rank.shape)}")
    expanded = expanded_neighbourhoods(rank, k1)
    v = encode(x, expanded, neighbours)
    v = query_expand(v, rank.cpu().numpy(), k2)
    return min_sum_distance(v)


def _check_ks(k1: int, k2: int) -> None:
    for name, value in (("k1", k1), ("k2", k2)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


# --------------------------------------------------------------------------- R(i), R*(i)
def reciprocal_neighbours(rank: torch.Tensor, k: int) -> torch.Tensor:
    """R(i, k) as (N, P) indices, P = min(k + 1, K): rank[:, :P] with -1 where not reciprocal."""
    n, width = rank.shape
    depth = min(k + 1, width)
    forward = rank[:, :depth]  # (N, P)
    me = torch.arange(n, device=rank.device)[:, None]
    reciprocal = torch.zeros_like(forward, dtype=torch.bool)
    for position in range(depth):  # is i at this position of its candidate's own list?
        reciprocal |= rank[forward, position] == me
    return torch.where(reciprocal, forward, -1)


def expanded_neighbourhoods(rank: torch.Tensor, k1: int) -> tuple[torch.Tensor, torch.Tensor]:
    """R*(i) in compressed rows: sizes (N,) and the members of row 0, row 1, ... each ascending."""
    n = rank.shape[0]
    full = reciprocal_neighbours(rank, k1).sort(dim=1).values  # (N, P1), rows ascending, -1 first
    half = reciprocal_neighbours(rank, int(np.around(k1 / 2)))  # (N, Ph)
    half_size = (half >= 0).sum(dim=1)  # (N,)
    p1, ph = full.shape[1], half.shape[1]
    rows_per_step = max(1, PAIR_BUDGET // (p1 * ph))
    counts, blocks = [], []
    for s in range(0, n, rows_per_step):
        own = full[s : s + rows_per_step]  # (B, P1): R(i), ascending
        cand = own.clamp(min=0)
        cand_half = torch.where(own[..., None] >= 0, half[cand], -1)  # (B, P1, Ph): R(c, k1/2)
        # Membership "j in R(i)" by binary search in i's own sorted row.
        flat = cand_half.flatten(1)
        at = torch.searchsorted(own, flat).clamp_(max=p1 - 1)
        member = (torch.gather(own, 1, at) == flat) & (flat >= 0)
        shared = member.unflatten(1, (p1, ph)).sum(dim=2)  # |R(c, k1/2) & R(i)|
        accept = (own >= 0) & (3 * shared > 2 * half_size[cand])  # integer form of "> 2/3 |R(c, k1/2)|"
        added = torch.where(accept[..., None], cand_half, -1).flatten(1)
        members = torch.cat([own, added], dim=1).sort(dim=1).values
        keep = members >= 0
        keep[:, 1:] &= members[:, 1:] != members[:, :-1]  # first copy of each index only
        counts.append(keep.sum(dim=1))
        blocks.append(members[keep])
    return torch.cat(counts), torch.cat(blocks)


# --------------------------------------------------------------------------- V
def encode(
    x: torch.Tensor,
    expanded: tuple[torch.Tensor, torch.Tensor],
    neighbours: Neighbours,
    logits_of: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> sp.csr_matrix:
    """V (N, N) CSR float64: row i = softmax over R*(i) of -(2 - 2 f_i.f_j).

    logits_of(rows (P,), dots (P,) float64 f_i.f_j) -> (P,) float64 replaces the logits -(2 - 2 f_i.f_j)
    (test-time re-ranking weighs by its own normalised distance: lwtgpf.evaluation.rerank_sparse).
    """
    n = x.shape[0]
    counts, cols = expanded  # rows in order, columns ascending within a row
    rows = torch.repeat_interleave(torch.arange(n, device=x.device), counts)
    dots = _dots(x, rows, cols, neighbours)
    logits = -(2 - 2 * dots) if logits_of is None else logits_of(rows, dots)
    row_max = torch.full((n,), float("-inf"), dtype=torch.float64, device=x.device)
    row_max = row_max.scatter_reduce(0, rows, logits, reduce="amax")
    weights = torch.exp(logits - row_max[rows])
    totals = torch.zeros(n, dtype=torch.float64, device=x.device).index_add_(0, rows, weights)
    values = weights / totals[rows]
    indptr = np.concatenate([[0], np.cumsum(counts.cpu().numpy())])
    return sp.csr_matrix((values.cpu().numpy(), cols.cpu().numpy(), indptr), shape=(n, n))


def _dots(x: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, neighbours: Neighbours) -> torch.Tensor:
    """(P,) float64 f_i.f_j. Most pairs are kNN pairs, whose exact distance the search already holds:
    f_i.f_j = (|f_i|^2 + |f_j|^2 - d_ij) / 2; only the others are gathered and multiplied."""
    n = x.shape[0]
    by_col = neighbours.indices.sort(dim=1)
    known_keys = (torch.arange(n, device=x.device)[:, None] * n + by_col.values).flatten()  # ascending
    known_d = torch.gather(neighbours.sqdist, 1, by_col.indices).flatten()
    keys = rows * n + cols
    at = torch.searchsorted(known_keys, keys).clamp_(max=len(known_keys) - 1)
    found = known_keys[at] == keys
    sqnorm = float64_sqnorm(x)
    dots = torch.empty(len(rows), dtype=torch.float64, device=x.device)
    dots[found] = (sqnorm[rows[found]] + sqnorm[cols[found]] - known_d[at[found]]) / 2
    missing = ~found
    dots[missing] = pair_dots(x, rows[missing], cols[missing])
    return dots


def query_expand(v: sp.csr_matrix, rank: np.ndarray, k2: int) -> sp.csr_matrix:
    """V[i] <- mean of V[r] over the first min(k2, K) entries of rank(i): a sparse (N, N) product."""
    n, width = rank.shape
    depth = min(k2, width)
    if depth == 1:
        return v
    averaging = sp.csr_matrix(
        (np.full(n * depth, 1.0 / depth), rank[:, :depth].reshape(-1), np.arange(0, n * depth + 1, depth)),
        shape=(n, n),
    )
    expanded = averaging @ v
    expanded.sort_indices()
    return expanded


# --------------------------------------------------------------------------- d(i, j)
def cross_min_sums(a: sp.csr_matrix, b: sp.csr_matrix) -> sp.csr_matrix:
    """m[i, j] = sum_c min(a[i, c], b[j, c]) for every row i of a (A, M) and row j of b (B, M) that
    share a column: CSR (A, B) float64, canonical (columns ascending), pairs with no shared column
    absent. Nonnegative inputs. For a block of rows of a at a time (about PAIR_BUDGET contributions),
    each entry (i, c) meets the entries of column c of b; scipy's COO -> CSR conversion sums them per
    pair. (`min_sum_distance` is the symmetric a = b case, which halves the work.)"""
    a = a.tocsr()
    b_by_col = b.tocsc()
    b_by_col.sort_indices()
    num_a, num_b = a.shape[0], b.shape[0]
    partners = np.diff(b_by_col.indptr)[a.indices]  # per entry (i, c) of a: the entries of column c of b
    pairs_before_row = np.concatenate([[0], np.cumsum(partners)])[a.indptr]  # (A + 1,)
    row_of_entry = np.repeat(np.arange(num_a), np.diff(a.indptr))
    blocks = []
    start = 0
    while start < num_a:
        stop = int(np.searchsorted(pairs_before_row, pairs_before_row[start] + PAIR_BUDGET, side="right")) - 1
        stop = min(max(stop, start + 1), num_a)
        lo, hi = a.indptr[start], a.indptr[stop]
        count = partners[lo:hi]
        second = np.repeat(b_by_col.indptr[a.indices[lo:hi]] - (np.cumsum(count) - count), count) + np.arange(count.sum())
        block = sp.coo_matrix(
            (np.minimum(np.repeat(a.data[lo:hi], count), b_by_col.data[second]),
             (np.repeat(row_of_entry[lo:hi] - start, count), b_by_col.indices[second])),
            shape=(stop - start, num_b),
        ).tocsr()  # sums the contributions of each pair; canonical
        blocks.append(block)
        start = stop
    if not blocks:
        return sp.csr_matrix((num_a, num_b))
    return sp.vstack(blocks, format="csr")


def min_sum_distance(v: sp.csr_matrix) -> sp.csr_matrix:
    """d(i, j) = 1 - m / (2 - m), m = sum_c min(V[i, c], V[j, c]), for every pair sharing a column.

    Each column's rows pair up (i <= j); pairs are generated for a block of rows i at a time (memory
    stays bounded), summed per pair by scipy's COO -> CSR conversion, then mirrored.
    """
    n = v.shape[0]
    v = v.tocsr()
    v.sort_indices()
    by_col = v.tocsc()
    by_col.sort_indices()
    row_of_entry = np.repeat(np.arange(n), np.diff(v.indptr))
    # position[e]: where row-major entry e sits in the column-major arrays of by_col
    position = np.empty(v.nnz, dtype=np.int64)
    position[np.lexsort((row_of_entry, v.indices))] = np.arange(v.nnz)
    partners = by_col.indptr[1:][v.indices] - position  # entries at or below e in its column: rows j >= i
    pairs_before_row = np.concatenate([[0], np.cumsum(partners)])[v.indptr]  # (N + 1,)
    rows, cols, sums = [], [], []
    start = 0
    while start < n:
        stop = int(np.searchsorted(pairs_before_row, pairs_before_row[start] + PAIR_BUDGET, side="right")) - 1
        stop = min(max(stop, start + 1), n)
        lo, hi = v.indptr[start], v.indptr[stop]
        count = partners[lo:hi]
        # Entry e = (i, c) pairs with the count[e] column-major entries (j, c) from its own position on.
        second = np.repeat(position[lo:hi] - (np.cumsum(count) - count), count) + np.arange(count.sum())
        value_i = np.repeat(v.data[lo:hi], count)
        row_i = np.repeat(row_of_entry[lo:hi] - start, count)
        block = sp.coo_matrix(
            (np.minimum(value_i, by_col.data[second]), (row_i, by_col.indices[second])), shape=(stop - start, n)
        ).tocsr()  # the conversion sums the contributions of each pair
        rows.append(start + np.repeat(np.arange(stop - start), np.diff(block.indptr)))
        cols.append(block.indices)
        sums.append(block.data)
        start = stop
    i, j, m = np.concatenate(rows), np.concatenate(cols), np.concatenate(sums)  # i <= j, row-major, j ascending
    d = np.maximum(1.0 - m / (2.0 - m), 0.0)
    d[i == j] = 0.0  # m(i, i) = sum_c V[i, c] = 1 exactly: d(i, i) = 0 without the rounding residue
    strict = i < j
    # Canonical CSR, explicit zeros kept: row r holds the mirrored pairs (columns < r, ascending since
    # the upper triangle is row-major), then its own upper-triangle pairs (columns >= r); a stable
    # sort by row keeps that order.
    rows_all = np.concatenate([j[strict], i])
    order = np.argsort(rows_all, kind="stable")
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows_all, minlength=n))])
    cols_all = np.concatenate([i[strict], j]).astype(np.int64)[order]
    return sp.csr_matrix((np.concatenate([d[strict], d])[order], cols_all, indptr), shape=(n, n))
