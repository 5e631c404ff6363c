"""Sparse Jaccard distance and DBSCAN against a dense, literal implementation of SPEC section 4."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.cluster import DBSCAN

from lwtgpf.cluster import dbscan, jaccard_distance


def dense_reference(features: np.ndarray, k1: int, k2: int) -> np.ndarray:
    """SPEC section 4.2 read literally: dense N x N float64 matrices and Python loops."""
    f = np.asarray(features, dtype=np.float64)
    n = len(f)
    width = min(k1, n)
    sq = np.array([f[i] @ f[i] for i in range(n)])
    rank = []
    for i in range(n):  # i itself first, then by Euclidean distance, ties by index
        d = sq[i] + sq - 2 * np.array([np.sum(f[i] * f[j]) for j in range(n)])
        d[i] = -np.inf
        rank.append(np.lexsort((np.arange(n), d))[:width])
    rank = np.array(rank)

    def reciprocal(i: int, k: int) -> list[int]:
        first = min(k + 1, width)
        return [j for j in rank[i, :first] if i in rank[j, :first]]

    half = int(np.around(k1 / 2))
    v = np.zeros((n, n))
    for i in range(n):
        r_i = reciprocal(i, k1)
        expanded = set(r_i)
        for c in r_i:
            r_c = reciprocal(c, half)
            if len(set(r_c) & set(r_i)) > 2 / 3 * len(r_c):
                expanded |= set(r_c)
        members = sorted(expanded)
        logits = np.array([-(2 - 2 * f[i] @ f[j]) for j in members])
        weights = np.exp(logits - logits.max())
        v[i, members] = weights / weights.sum()
    v = np.array([v[rank[i, : min(k2, width)]].mean(axis=0) for i in range(n)])
    dist = np.ones((n, n))
    for i in range(n):
        for j in range(n):
            m = np.minimum(v[i], v[j]).sum()
            if m > 0:
                dist[i, j] = max(1 - m / (2 - m), 0.0)
    return dist


def clustered(n: int, dim: int, seed: int, groups: int, noise: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(groups, dim))[rng.integers(0, groups, n)] + noise * rng.normal(size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def with_duplicates(seed: int) -> np.ndarray:
    x = clustered(90, 12, seed, groups=6, noise=0.7)
    x[10:16] = x[3]
    x[40] = x[41]
    return x


CASES = {
    "clustered": (lambda: clustered(120, 16, 0, groups=8, noise=0.6), 20, 6),
    "clustered_noisy": (lambda: clustered(120, 16, 1, groups=10, noise=1.2), 20, 6),
    "uniform": (lambda: clustered(100, 8, 2, groups=100, noise=1.0), 20, 6),
    "duplicates": (lambda: with_duplicates(3), 20, 6),
    "odd_k1_k2_1": (lambda: clustered(80, 10, 4, groups=6, noise=0.6), 7, 1),
    "k1_5_rounds_half_to_even": (lambda: clustered(60, 10, 5, groups=5, noise=0.6), 5, 3),
    "n_below_k1": (lambda: clustered(12, 6, 6, groups=3, noise=0.5), 20, 6),
    "n1": (lambda: clustered(1, 4, 7, groups=1, noise=0.1), 20, 6),
    "n2": (lambda: clustered(2, 4, 8, groups=1, noise=0.1), 20, 6),
    "n3": (lambda: clustered(3, 4, 9, groups=2, noise=0.1), 20, 6),
}


def as_dense(distance: sp.csr_matrix) -> np.ndarray:
    out = np.ones(distance.shape)
    coo = distance.tocoo()
    out[coo.row, coo.col] = coo.data
    return out


@pytest.mark.parametrize("case", list(CASES))
def test_sparse_jaccard_equals_dense_reference(case):
    make, k1, k2 = CASES[case]
    x = make()
    ref = dense_reference(x, k1, k2)
    got = jaccard_distance(x, k1, k2, knn_backend="torch")
    assert isinstance(got, sp.csr_matrix) and got.shape == ref.shape
    stored = got.tocoo()
    assert np.abs(stored.data - ref[stored.row, stored.col]).max() <= 1e-6
    assert (stored.data < 1).all()
    # Exactly the pairs with d < 1 are stored; everything absent is 1 in the reference too.
    assert np.array_equal(as_dense(got) < 1, ref < 1)
    # The diagonal is stored explicitly as 0, and the matrix is exactly symmetric.
    assert np.array_equal(got.diagonal(), np.zeros(len(x)))
    assert got.has_canonical_format and (got != got.T).nnz == 0
    n_stored_diagonal = np.count_nonzero(stored.row == stored.col)
    assert n_stored_diagonal == len(x)


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("eps,min_samples", [(0.5, 4), (0.6, 4), (0.3, 2), (0.45, 7)])
def test_dbscan_labels_equal_sklearn_on_the_dense_reference(case, eps, min_samples):
    make, k1, k2 = CASES[case]
    x = make()
    ref = dense_reference_cached(case)
    expected = DBSCAN(eps=eps, min_samples=min_samples, metric="precomputed").fit_predict(ref)
    got = dbscan(jaccard_distance(x, k1, k2), eps, min_samples)
    assert got.dtype == np.int64
    assert np.array_equal(got, expected)


_REFERENCES: dict[str, np.ndarray] = {}


def dense_reference_cached(case: str) -> np.ndarray:
    if case not in _REFERENCES:
        make, k1, k2 = CASES[case]
        _REFERENCES[case] = dense_reference(make(), k1, k2)
    return _REFERENCES[case]


def test_dbscan_matches_sklearn_on_sparse_input_too():
    x = clustered(300, 16, 11, groups=12, noise=0.9)
    distance = jaccard_distance(x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns that it stores the sparse diagonal
        expected = DBSCAN(eps=0.5, min_samples=4, metric="precomputed").fit_predict(distance)
    got = dbscan(distance, 0.5, 4)
    assert np.array_equal(got, expected)
    assert (got >= 0).any() and (got == -1).any()  # the case has clusters and outliers


def test_dbscan_border_point_and_numbering_follow_sklearn():
    # Two dense groups {0, 1, 2} and {4, 5, 6} joined through point 3 (3 neighbours counting
    # itself), point 7 alone: 3 is core, border or the bridge depending on min_samples.
    d = np.full((8, 8), 0.9)
    np.fill_diagonal(d, 0.0)
    links = [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 6), (6, 4), (0, 2)]
    for a, b in links:
        d[a, b] = d[b, a] = 0.2
    for min_samples in (2, 3, 4):
        expected = DBSCAN(eps=0.5, min_samples=min_samples, metric="precomputed").fit_predict(d)
        assert np.array_equal(dbscan(d, 0.5, min_samples), expected)
        assert np.array_equal(dbscan(sp.csr_matrix(d), 0.5, min_samples), expected)


def test_dbscan_random_graphs_equal_sklearn():
    rng = np.random.default_rng(0)
    for trial in range(30):
        n = int(rng.integers(1, 40))
        d = rng.uniform(0, 1, (n, n))
        d = np.minimum(d, d.T)
        np.fill_diagonal(d, 0)
        eps, min_samples = float(rng.uniform(0.05, 0.4)), int(rng.integers(1, 6))
        expected = DBSCAN(eps=eps, min_samples=min_samples, metric="precomputed").fit_predict(d)
        assert np.array_equal(dbscan(d, eps, min_samples), expected), trial


def test_explicit_zeros_are_neighbours_and_the_diagonal_counts():
    # Three crops at distance 0 from each other: stored zeros, no stored diagonal.
    distance = sp.csr_matrix((np.zeros(6), ([0, 0, 1, 1, 2, 2], [1, 2, 0, 2, 0, 1])), shape=(4, 4))
    assert distance.nnz == 6
    assert dbscan(distance, 0.5, 3).tolist() == [0, 0, 0, -1]  # 2 others + itself = 3
    assert dbscan(distance, 0.5, 4).tolist() == [-1, -1, -1, -1]


def test_dbscan_rejects_bad_input():
    distance = jaccard_distance(clustered(80, 8, 0, groups=8, noise=0.3))
    assert distance.nnz < 80 * 80  # some pairs are absent (distance 1), so eps >= 1 is ambiguous
    with pytest.raises(ValueError, match="eps"):
        dbscan(distance, 1.0, 4)
    with pytest.raises(ValueError, match="min_samples"):
        dbscan(distance, 0.5, 0)
    with pytest.raises(ValueError, match="symmetric"):
        dbscan(np.array([[0.0, 0.1], [0.9, 0.0]]), 0.5, 1)
    with pytest.raises(ValueError, match="square"):
        dbscan(np.zeros((2, 3)), 0.5, 1)


def test_integer_two_thirds_test_equals_the_float_one():
    """The expansion compares 3 |shared| > 2 |R|; the public code writes |shared| > 2/3 * |R|."""
    for size in range(0, 200):
        for shared in range(0, size + 1):
            assert (3 * shared > 2 * size) == (shared > 2 / 3 * size)


def test_jaccard_rejects_bad_parameters():
    x = clustered(10, 4, 0, groups=2, noise=0.5)
    with pytest.raises(ValueError, match="k1"):
        jaccard_distance(x, k1=0)
    with pytest.raises(ValueError, match="k2"):
        jaccard_distance(x, k2=0)
