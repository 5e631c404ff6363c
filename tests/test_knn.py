"""Exact kNN (lwtgpf.cluster.knn): every backend and precision gives the float64 brute-force lists,
ties ordered by index, the query itself first."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lwtgpf.cluster import knn
from lwtgpf.cluster.knn import nearest_neighbours


def brute_force(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """float64 distances, the query first, then by distance, equal distances by index (loops)."""
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    sq = np.array([np.sum(row * row) for row in x])
    indices, dists = [], []
    for i in range(n):
        d = sq[i] + sq - 2 * np.array([np.sum(x[i] * x[j]) for j in range(n)])
        d = np.maximum(d, 0)
        key = d.copy()
        key[i] = -np.inf
        order = np.lexsort((np.arange(n), key))[: min(k, n)]
        indices.append(order)
        dists.append(np.where(order == i, 0.0, d[order]))
    return np.array(indices), np.array(dists)


def clustered(n: int, dim: int, seed: int, groups: int = 10, noise: float = 0.5) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    centres = torch.randn(groups, dim, generator=gen)
    x = centres[torch.randint(0, groups, (n,), generator=gen)] + noise * torch.randn(n, dim, generator=gen)
    return torch.nn.functional.normalize(x, dim=1)


def available_backends() -> list[str]:
    return ["torch", "faiss"] if knn._faiss_available() else ["torch"]


@pytest.fixture(params=[True, False], ids=["bf16", "fp32"])
def torch_precision(request, monkeypatch):
    """Run the torch backend in bf16 and in fp32 whatever this CPU prefers, with blocks small enough
    that the symmetric block pass and the row blocks really have several blocks."""
    monkeypatch.setattr(knn, "_bf16_is_faster", lambda device_type: request.param)
    monkeypatch.setattr(knn, "SYMMETRIC_BLOCK", 64)
    monkeypatch.setattr(knn, "ROWS_PER_BLOCK", 50)
    return request.param


@pytest.mark.parametrize("backend", available_backends())
def test_matches_float64_brute_force_with_duplicates(backend, torch_precision):
    x = clustered(400, 48, seed=0)
    x[50:60] = x[7]  # a group of duplicates: exact ties, ordered by index
    x[300] = x[301]
    ref_idx, ref_d = brute_force(x.numpy(), 20)
    got = nearest_neighbours(x, 20, backend=backend)
    assert np.array_equal(got.indices.numpy(), ref_idx)
    assert np.allclose(got.sqdist.numpy(), ref_d, atol=1e-9)
    assert (got.indices[:, 0] == torch.arange(400)).all()  # itself first, even among duplicates


@pytest.mark.parametrize("backend", available_backends())
def test_all_equal_distances_are_ordered_by_index(backend, torch_precision):
    # One-hot vectors: every pair of distinct points is at distance 2, so each list is the query
    # followed by the smallest other indices. The approximate window holds every point here, which
    # exercises the widening retries up to all N.
    x = torch.eye(64)[:60]
    got = nearest_neighbours(x, 10, backend=backend).indices.numpy()
    for i in range(60):
        expected = [i] + [j for j in range(60) if j != i][:9]
        assert got[i].tolist() == expected


def test_backends_agree_on_uniform_data():
    if not knn._faiss_available():
        pytest.skip("faiss is not installed: nothing to compare the torch backend with")
    gen = torch.Generator().manual_seed(3)
    x = torch.nn.functional.normalize(torch.randn(1500, 96, generator=gen), dim=1)
    a = nearest_neighbours(x, 20, backend="torch")
    b = nearest_neighbours(x, 20, backend="faiss")
    assert torch.equal(a.indices, b.indices)
    assert torch.equal(a.sqdist, b.sqdist)


def test_unnormalised_features_use_euclidean_distance():
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(200, 16, generator=gen) * torch.rand(200, 1, generator=gen) * 5
    ref_idx, _ = brute_force(x.numpy(), 12)
    assert np.array_equal(nearest_neighbours(x, 12, backend="torch").indices.numpy(), ref_idx)


@pytest.mark.parametrize("n", [1, 2, 3, 7])
def test_fewer_points_than_k(n):
    x = clustered(n, 8, seed=n)
    got = nearest_neighbours(x.numpy(), 20)  # numpy input works too
    ref_idx, _ = brute_force(x.numpy(), 20)
    assert got.indices.shape == (n, n)
    assert np.array_equal(got.indices.numpy(), ref_idx)


def test_bf16_error_bound_holds(monkeypatch):
    """The bound the window relies on, checked against the real bf16 matmul on this machine."""
    monkeypatch.setattr(knn, "_bf16_is_faster", lambda device_type: True)
    x = clustered(600, 128, seed=5, noise=1.0) * torch.linspace(0.5, 1.5, 600)[:, None]
    sqnorm = (x.double() ** 2).sum(1)
    search = knn._TorchSearch(x, sqnorm)
    approx = sqnorm[:, None] + search.mean_sqnorm - 2 * (search.base @ search.base.T).double()
    exact = sqnorm[:, None] + sqnorm[None, :] - 2 * (x.double() @ x.double().T)
    error = (approx - exact).abs().max(dim=1).values
    assert (error <= search.bound(torch.arange(600))).all()
    assert (error > 1e-4).any()  # bf16 really is approximate here: the check is not vacuous


def test_bad_input_is_rejected():
    x = clustered(10, 4, seed=0)
    with pytest.raises(ValueError, match="k must be"):
        nearest_neighbours(x, 0)
    with pytest.raises(ValueError, match="unknown kNN backend"):
        nearest_neighbours(x, 3, backend="annoy")
    x[2, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        nearest_neighbours(x, 3)
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        nearest_neighbours(torch.zeros(5), 3)


@pytest.mark.gpu
def test_cuda_matches_cpu():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device on this machine")
    x = clustered(3000, 256, seed=6)
    x[10:20] = x[3]
    cpu = nearest_neighbours(x, 20, backend="torch")
    gpu = nearest_neighbours(x.cuda(), 20, backend="torch")
    assert torch.equal(cpu.indices, gpu.indices.cpu())
    assert torch.allclose(cpu.sqdist, gpu.sqdist.cpu(), atol=1e-9)
