"""DBSCAN on a precomputed (sparse) distance, with scikit-learn's labels, vectorised.

`sklearn.cluster.DBSCAN(metric="precomputed")` walks the points in index order and grows each new
cluster depth-first from its first unlabelled core point. Its labels are therefore fixed by three
vectorisable facts:
- core points: at least `min_samples` neighbours within eps, the point itself included;
- clusters: the connected components of the core points (core-core pairs within eps), numbered in
  the order of their smallest core index;
- a border point (not core, within eps of some core) joins the lowest-numbered cluster among its core
  neighbours: each cluster's walk finishes before the next one starts and claims every unlabelled
  border point next to its cores. Everything else is -1.
Same labels, without per-point Python work or sklearn's per-row neighbourhood arrays
(tests/test_jaccard.py compares both on dense and sparse input).

Sparse input: stored entries are the only candidate neighbours (absent pairs are "far": at least
eps away), the diagonal counts whether stored or not (as in scikit-learn, which stores it), and
explicit zeros are neighbours. The neighbourhood relation must be symmetric.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components


def dbscan(distance: sp.spmatrix | np.ndarray, eps: float = 0.5, min_samples: int = 4) -> np.ndarray:
    """Labels (N,) int64 of DBSCAN on `distance` (N, N), -1 for outliers; see the module docstring."""
    if not eps > 0:
        raise ValueError(f"DBSCAN eps must be positive, got {eps!r}")
    if not isinstance(min_samples, (int, np.integer)) or min_samples < 1:
        raise ValueError(f"DBSCAN min_samples must be a positive integer, got {min_samples!r}")
    within = _within_eps(distance, eps)  # (N, N) CSR bool, diagonal included
    n = within.shape[0]
    is_core = np.diff(within.indptr) >= min_samples
    core_ids = np.flatnonzero(is_core)
    labels = np.full(n, -1, dtype=np.int64)
    if len(core_ids) == 0:
        return labels
    _, component = connected_components(within[core_ids][:, core_ids], directed=False)
    # Number components by their first core point (the order in which sklearn's walk meets them).
    first_core = np.full(component.max() + 1, n, dtype=np.int64)
    np.minimum.at(first_core, component, core_ids)
    number = np.empty_like(first_core)
    number[np.argsort(first_core)] = np.arange(len(first_core))
    labels[core_ids] = number[component]
    # Border points: the smallest label among their core neighbours.
    rows = np.repeat(np.arange(n), np.diff(within.indptr))
    cols = within.indices
    link = ~is_core[rows] & is_core[cols]
    best = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(best, rows[link], labels[cols[link]])
    border = ~is_core & (best < np.iinfo(np.int64).max)
    labels[border] = best[border]
    return labels


def _within_eps(distance: sp.spmatrix | np.ndarray, eps: float) -> sp.csr_matrix:
    if sp.issparse(distance):
        coo = distance.tocoo()
        n = _square_size(coo.shape)
        if eps >= 1 and coo.nnz < n * n:
            # Only a concern for the Jaccard convention (absent = distance 1); say so rather than guess.
            raise ValueError(
                f"eps={eps} >= 1 with a sparse distance: absent pairs (distance 1 in jaccard_distance) "
                "would be neighbours too; use eps < 1 or pass a dense matrix"
            )
        if coo.nnz and not np.isfinite(coo.data).all():
            raise ValueError("the distance matrix holds NaN or infinite values")
        keep = (coo.data <= eps) & (coo.row != coo.col)
        rows, cols = coo.row[keep], coo.col[keep]
    else:
        dense = np.asarray(distance)
        n = _square_size(dense.shape)
        if not np.isfinite(dense).all():
            raise ValueError("the distance matrix holds NaN or infinite values")
        rows, cols = np.nonzero(dense <= eps)
        keep = rows != cols
        rows, cols = rows[keep], cols[keep]
    # Each point is its own neighbour (sklearn stores the diagonal explicitly before its search).
    diagonal = distance.diagonal() if sp.issparse(distance) else np.diagonal(dense)
    own = np.flatnonzero(diagonal <= eps)
    rows = np.concatenate([rows, own])
    cols = np.concatenate([cols, own])
    within = sp.csr_matrix((np.ones(len(rows), dtype=bool), (rows, cols)), shape=(n, n))
    if (within != within.T).nnz:
        raise ValueError("the neighbourhood relation is not symmetric: DBSCAN needs a symmetric distance")
    return within


def _square_size(shape: tuple[int, ...]) -> int:
    if len(shape) != 2 or shape[0] != shape[1]:
        raise ValueError(f"distance must be a square (N, N) matrix, got shape {shape}")
    return shape[0]
