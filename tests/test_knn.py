"""Exact kNN (lwtgpf.cluster.knn): every backend and precision gives the float64 brute-force lists,
ties ordered by index, the query itself first."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lwtgpf.cluster import knn
from lwtgpf.cluster.knn import nearest_neighbours


def brute_force(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """float64 distances, the query first, then by distance, equal distances by index (one query
    at a time; each dot product a numpy sum of the float64 products)."""
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    sq = (x * x).sum(axis=1)
    indices, dists = [], []
    for i in range(n):
        d = sq[i] + sq - 2 * (x * x[i]).sum(axis=1)
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


def small_blocks(monkeypatch, block: int = 128, groups: int = 48) -> None:
    """Blocks small enough that a few hundred points make several of them (and a short last one),
    few enough groups that each block has several members per group (so the bounds really filter),
    and several re-scoring blocks."""
    monkeypatch.setattr(knn, "SYMMETRIC_BLOCK", block)
    monkeypatch.setattr(knn, "COARSE_GROUPS", groups)
    monkeypatch.setattr(knn, "WINDOW_ROWS", 50)


@pytest.fixture(params=[True, False], ids=["bf16", "fp32"])
def torch_precision(request, monkeypatch):
    """Run the torch backend in bf16 and in fp32 whatever this CPU prefers, in small blocks."""
    monkeypatch.setattr(knn, "_bf16_is_faster", lambda device_type: request.param)
    small_blocks(monkeypatch)
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
def test_near_ties_below_search_precision_are_ordered_in_float64(backend, torch_precision):
    # 250 points within ~1e-5 of each other: bf16 (and mostly fp32) scores cannot tell them apart,
    # so the whole group lands in each window and float64 alone orders it.
    gen = torch.Generator().manual_seed(12)
    centre = torch.nn.functional.normalize(torch.randn(1, 32, generator=gen), dim=1)
    tight = torch.nn.functional.normalize(centre + 1e-5 * torch.randn(250, 32, generator=gen), dim=1)
    x = torch.cat([tight, clustered(150, 32, seed=13)])[torch.randperm(400, generator=gen)]
    ref_idx, ref_d = brute_force(x.numpy(), 20)
    got = nearest_neighbours(x, 20, backend=backend)
    assert np.array_equal(got.indices.numpy(), ref_idx)
    assert np.allclose(got.sqdist.numpy(), ref_d, atol=1e-12)


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


def scores_seen_by_the_scan(search: knn._TorchSearch, block: int) -> torch.Tensor:
    """(N, N) the approximate score of (query, candidate) as the block pass computes it: from block
    (I, J), J >= I, for the rows I, and from the same block's columns for the rows J."""
    n = search.base.shape[0]
    seen = torch.empty((n, n), dtype=search.dtype)
    for i in range(0, n, block):
        for j in range(i, n, block):
            scores = search.base[i : i + block] @ search.base[j : j + block].T  # same shapes, same kernel
            seen[i : i + block, j : j + block] = scores
            seen[j : j + block, i : i + block] = scores.T
    return seen


@pytest.mark.parametrize("bf16", [True, False], ids=["bf16", "fp32"])
def test_block_pass_pools_hold_everything_below_their_ceiling(bf16, monkeypatch):
    """The pool invariant the exactness rests on, checked entry by entry against the scores the
    block pass saw; and the bounds really filter (pools far smaller than N)."""
    monkeypatch.setattr(knn, "_bf16_is_faster", lambda device_type: bf16)
    small_blocks(monkeypatch)
    x = clustered(450, 32, seed=8, groups=15, noise=0.6)
    search = knn._TorchSearch(x, knn.float64_sqnorm(x))
    width = 40
    pool = search.all_rows(x, width)
    seen = scores_seen_by_the_scan(search, knn.SYMMETRIC_BLOCK).double()
    counts = pool.offsets.diff()
    assert (counts >= width).all() and counts.float().mean() < 450 / 4
    for q in range(450):
        members = pool.cols[pool.offsets[q] : pool.offsets[q + 1]]
        approx = pool.approx[pool.offsets[q] : pool.offsets[q + 1]]
        assert torch.equal(approx, -seen[q, members])  # the scan's own scores, ascending keys
        assert (approx.diff() >= 0).all() and len(set(members.tolist())) == len(members)
        below = torch.nonzero(-seen[q] < pool.ceiling[q]).squeeze(1)
        assert set(below.tolist()) <= set(members.tolist())
    assert torch.isfinite(pool.ceiling).all()  # every query has a real bound here


@pytest.mark.parametrize("scaled", [False, True], ids=["normalised", "norms_0.5_to_1.5"])
@pytest.mark.parametrize("bf16", [True, False], ids=["bf16", "fp32"])
def test_window_limit_covers_every_true_neighbour(bf16, scaled, monkeypatch):
    """The window bound against the real matmul of this machine: every true neighbour's key is at
    most the limit derived from the k-th smallest key; and, on normalised features, the window is
    not vacuous (unequal norms widen it by their spread)."""
    monkeypatch.setattr(knn, "_bf16_is_faster", lambda device_type: bf16)
    x = clustered(600, 128, seed=5, noise=1.0)
    if scaled:
        x = x * torch.linspace(0.5, 1.5, 600)[:, None]
    x[100:110] = x[4]  # exact ties
    k = 20
    search = knn._TorchSearch(x, knn.float64_sqnorm(x))
    keys = -(search.base @ search.base.T).double()  # (N, N), the key a = -s~
    kth = keys.sort(dim=1).values[:, k - 1]
    limit = search.window_limit(kth, torch.arange(600))
    true_idx, _ = brute_force(x.numpy(), k)
    assert (torch.gather(keys, 1, torch.from_numpy(true_idx)) <= limit[:, None]).all()
    exact = -(x.double() @ x.double().T)
    assert ((keys - exact).abs() > 1e-7).any()  # the search really is approximate here
    if not scaled:
        window = (keys <= limit[:, None]).sum(dim=1)
        assert window.float().mean() < 2 * k  # tight enough to be useful


def test_overflowing_queries_are_searched_again(monkeypatch):
    """Queries that take too many entries of a block (here: 120 duplicates, a cap of one width) are
    dropped from the block pass and found by the top-k search, still exactly."""
    monkeypatch.setattr(knn, "_bf16_is_faster", lambda device_type: True)
    small_blocks(monkeypatch)
    monkeypatch.setattr(knn, "OVERFLOW_FACTOR", 1)
    searched_again = []
    rows = knn._TorchSearch.rows

    def counted_rows(self, x, queries, width):
        searched_again.append(len(queries))
        return rows(self, x, queries, width)

    monkeypatch.setattr(knn._TorchSearch, "rows", counted_rows)
    x = clustered(400, 24, seed=9)
    x[200:320] = x[3]
    ref_idx, ref_d = brute_force(x.numpy(), 12)
    got = nearest_neighbours(x, 12, backend="torch")
    assert np.array_equal(got.indices.numpy(), ref_idx)
    assert np.allclose(got.sqdist.numpy(), ref_d, atol=1e-9)
    assert searched_again and searched_again[0] >= 120


@pytest.mark.parametrize("dim", [0, 1])
def test_entry_selection_numpy_and_torch_agree(dim):
    """The CPU (numpy) and the device (torch) paths of the block comparison, overflow included."""
    gen = torch.Generator().manual_seed(dim)
    bits = torch.randint(-32768, 32767, (70, 90), generator=gen, dtype=torch.int16)
    queries = bits.shape[1 - dim]
    bound = torch.randint(30000, 32767, (queries,), generator=gen, dtype=torch.int16)
    bound[:30] = -32768  # take-all queries: over the cap, and the block over its budget, so they take none
    cap = 20
    flat_np, over_np = knn._entries_at_least(bits, bound, dim, cap, np.empty(bits.numel(), dtype=bool))
    flat_t, over_t = knn._entries_at_least(bits, bound, dim, cap, None)
    assert torch.equal(flat_np, flat_t) and torch.equal(over_np, over_t)
    assert over_t[:30].all() and not over_t[30:].any()
    expected = (bits >= (bound[:, None] if dim == 1 else bound[None, :]))
    expected &= ~(over_t[:, None] if dim == 1 else over_t[None, :])
    assert torch.equal(flat_t, expected.reshape(-1).nonzero().squeeze(1)) and len(flat_t) > 0


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_float_bits_order(dtype):
    """_ordered maps float bit patterns (as integers) to the floats' order, signs and zeros included."""
    gen = torch.Generator().manual_seed(0)
    values = torch.cat([torch.randn(500, generator=gen) * 10 ** torch.randint(-3, 4, (500,), generator=gen),
                        torch.tensor([0.0, -0.0, 1.0, -1.0, float("inf"), float("-inf")])]).to(dtype)
    bits_dtype = torch.int16 if dtype == torch.bfloat16 else torch.int32
    ordered = knn._ordered(values.view(bits_dtype))
    a, b = values.float()[:, None], values.float()[None, :]
    oa, ob = ordered[:, None], ordered[None, :]
    assert ((a < b) <= (oa < ob)).all() and ((oa < ob) <= (a <= b)).all()


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
