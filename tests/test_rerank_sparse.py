"""Tests of lwtgpf.evaluation.rerank_sparse: the bounded-memory k-reciprocal re-ranking equals the dense
reference `re_ranking`, its pieces (farthest crop, bit-pattern comparisons, cross min-sums) equal
brute force, and the evaluation refuses re-ranking that would not fit in memory."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from lwtgpf.cluster import knn
from lwtgpf.cluster.jaccard import cross_min_sums
from lwtgpf.config import Config
from lwtgpf.evaluation import (
    KReciprocalReranking,
    estimate_rerank_bytes,
    evaluate_features,
    evaluate_rank,
    pairwise_distance,
    re_ranking_features,
    sparse_re_ranking,
)
from lwtgpf.evaluation import rerank_sparse


def _features(seed: int, num_q: int, num_g: int, dim: int, kind: str = "gauss"):
    gen = torch.Generator().manual_seed(seed)
    feats = torch.randn(num_q + num_g, dim, generator=gen)
    if kind == "cone":  # all cosines positive: the farthest crop still has a positive score
        feats = feats.abs()
    elif kind == "clustered":  # people: a centre per identity plus noise
        centres = torch.randn(max(2, (num_q + num_g) // 8), dim, generator=gen)
        feats = centres[torch.randint(0, len(centres), (num_q + num_g,), generator=gen)] + 0.6 * feats
    return feats[:num_q], feats[num_q:]


@pytest.fixture(params=["bf16", "fp32"])
def knn_precision(request, monkeypatch):
    """Run the kNN search (and the farthest scan that rides on it) in bf16 and in fp32 scores."""
    monkeypatch.setattr(knn, "_bf16_is_faster", lambda device_type: request.param == "bf16")
    return request.param


# ------------------------------------------------------------------------------------------------
# sparse == dense reference
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("num_q, num_g, dim, k1, k2, lam, kind", [
    (3, 7, 8, 20, 6, 0.3, "gauss"),      # N = 10 < k1: every list holds all crops
    (4, 17, 8, 20, 6, 0.3, "gauss"),     # N = 21 = k1 + 1
    (7, 33, 8, 20, 6, 0.3, "gauss"),
    (20, 200, 16, 20, 6, 0.3, "clustered"),
    (50, 400, 32, 6, 3, 0.5, "clustered"),
    (10, 60, 8, 5, 1, 0.3, "gauss"),     # k2 = 1: no query expansion
    (12, 90, 8, 4, 9, 0.3, "cone"),      # k2 > k1 + 1
    (30, 300, 64, 20, 6, 0.0, "clustered"),  # lambda 0: Jaccard alone
    (30, 300, 64, 20, 6, 1.0, "gauss"),  # lambda 1: normalised original distance alone
])
def test_sparse_equals_dense_reference(knn_precision, num_q, num_g, dim, k1, k2, lam, kind):
    q, g = _features(num_q * 7 + num_g, num_q, num_g, dim, kind)
    dense = re_ranking_features(q, g, k1, k2, lam)
    sparse = sparse_re_ranking(q, g, k1, k2, lam)
    assert sparse.shape == (num_q, num_g) and sparse.dtype == np.float32
    np.testing.assert_allclose(sparse, dense, rtol=0, atol=1e-6)
    assert np.abs(dense - sparse).max() < 1e-6
    if lam < 1:
        assert (dense < (1 - lam) + lam * 1.0 - 1e-3).any(), "some pairs should share neighbours"


def test_sparse_equals_dense_on_exact_features_with_ties(knn_precision):
    # Entries +-1/4 in 16 dims: unit norm exactly and every distance a multiple of 1/8, so the
    # neighbour lists tie often; both ties-by-index rules must agree (no duplicated crop here).
    gen = torch.Generator().manual_seed(1)
    prototypes = torch.randint(0, 2, (6, 16), generator=gen) * 2 - 1
    flips = torch.where(torch.rand(120, 16, generator=gen) < 0.2, -1, 1)
    feats = torch.unique((prototypes[torch.randint(0, 6, (120,), generator=gen)] * flips).float() / 4, dim=0)
    feats = feats[torch.randperm(len(feats), generator=gen)]
    q, g = feats[:15], feats[15:]
    dist = pairwise_distance(feats, feats)
    nearest = torch.sort(dist, dim=1).values[:, 1:22]
    assert (nearest[:, 1:] == nearest[:, :-1]).float().mean() > 0.5, "the lists should be full of ties"
    np.testing.assert_allclose(sparse_re_ranking(q, g), re_ranking_features(q, g), rtol=0, atol=1e-6)


def test_reranked_evaluation_equals_evaluate_rank_of_the_matrix_and_dense_metrics():
    q, g = _features(5, 40, 300, 16, "clustered")
    gen = torch.Generator().manual_seed(0)
    q_pids, g_pids = torch.randint(0, 30, (40,), generator=gen).numpy(), torch.randint(0, 30, (300,), generator=gen).numpy()
    q_cams, g_cams = torch.randint(0, 3, (40,), generator=gen).numpy(), torch.randint(0, 3, (300,), generator=gen).numpy()
    labels = (q_pids, g_pids, q_cams, g_cams)
    matrix = KReciprocalReranking(q, g).distance()
    cmc, mAP, mINP = evaluate_rank(matrix, *labels)
    for chunk_size in (7, None):
        result = evaluate_features(q, g, *labels, chunk_size=chunk_size, return_topk=12, rerank=True)
        assert (result["mAP"], result["mINP"]) == (mAP, mINP) and np.array_equal(result["cmc"], cmc)
        order = np.argsort(matrix, axis=1, kind="stable")
        for i, row in enumerate(order):
            junk = (g_pids[row] == q_pids[i]) & (g_cams[row] == q_cams[i])
            assert result["topk"][i].tolist() == row[~junk][:12].tolist()
    dense_cmc, dense_map, dense_minp = evaluate_rank(re_ranking_features(q, g), *labels)
    assert (dense_map, dense_minp) == pytest.approx((mAP, mINP), abs=1e-9)
    np.testing.assert_allclose(dense_cmc, cmc, atol=1e-12)
    plain = evaluate_features(q, g, *labels)
    assert plain["mAP"] != result["mAP"], "re-ranking should change the ranking"


def test_reranking_rejects_bad_input():
    q, g = _features(0, 3, 10, 8)
    with pytest.raises(ValueError, match="same D"):
        KReciprocalReranking(q, g[:, :4])
    with pytest.raises(ValueError, match="lambda_value"):
        KReciprocalReranking(q, g, lambda_value=1.5)
    with pytest.raises(ValueError, match="k1"):
        KReciprocalReranking(q, g, k1=0)
    with pytest.raises(ValueError, match="NaN or infinite"):
        KReciprocalReranking(q, g.clone().fill_(float("nan")))
    with pytest.raises(ValueError, match="all distances from crop 0"):
        KReciprocalReranking(torch.ones(1, 4), torch.ones(2, 4))


# ------------------------------------------------------------------------------------------------
# the pieces
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind, n, dim", [("gauss", 3000, 64), ("cone", 3000, 64), ("mixed", 3000, 64),
                                          ("near-constant", 2000, 32), ("gauss", 5000, 16)])
def test_farthest_scan_equals_brute_force(knn_precision, monkeypatch, kind, n, dim):
    monkeypatch.setattr(knn, "SYMMETRIC_BLOCK", 1024)  # several blocks, both directions of each
    gen = torch.Generator().manual_seed(n + dim)
    x = torch.randn(n, dim, generator=gen)
    if kind == "cone":
        x = x.abs()
    elif kind == "mixed":  # rows whose farthest score is positive (group 0) and rows where it is negative
        centres = torch.zeros(3, dim)
        centres[0, :2] = torch.tensor([1.0, 0.3])  # scores > 0 with all three groups
        centres[1, :2] = torch.tensor([0.3, 1.0])
        centres[2, :2] = torch.tensor([1.0, -0.5])  # < 0 with group 1
        x = centres[torch.arange(n) % 3] + 0.05 * x
    elif kind == "near-constant":  # every score within rounding of the others: rows overflow the cap
        x = 1 + 1e-3 * x
    x = F.normalize(x, dim=1)
    scan = rerank_sparse.FarthestScan(n, x.device)
    knn.nearest_neighbours(x, 5, backend="torch", block_observer=scan)
    got = scan.squared_farthest(x)
    exact = x.double() @ x.double().T
    want = (2 - 2 * exact.amin(dim=1)) ** 2
    # Rows whose near-farthest candidates overflowed the cap take a float32 matmul's minimum.
    over = scan.overflow
    assert over.any() == (kind == "near-constant")  # many crops at nearly the same score
    np.testing.assert_allclose(got[~over], want[~over], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(got[over], want[over], rtol=1e-6, atol=1e-6)
    if kind == "mixed":
        lowest = exact.amin(dim=1)
        assert (lowest > 0).any() and (lowest < 0).any()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
@pytest.mark.parametrize("dim", [0, 1])
def test_bit_pattern_comparison_equals_float_comparison(dtype, dim):
    gen = torch.Generator().manual_seed(dim)
    scores = (torch.randn(37, 53, generator=gen) * 0.5).to(dtype)
    scores[0, :5] = torch.tensor([0.0, -0.0, 1e-30, -1e-30, 0.0])
    num = scores.shape[1 - dim]
    limit = (torch.randn(num, generator=gen) * 0.6).to(dtype)
    limit[:3] = torch.tensor([0.0, 1e-30, -1e-30])
    for limits in (limit, limit.abs(), -limit.abs() - 0.01):  # mixed, all >= 0, all < 0
        scan = rerank_sparse.FarthestScan(1, torch.device("cpu"))
        flat, over = scan._at_most(scores, limits.to(dtype), dim)
        bound = limits[:, None] if dim == 1 else limits[None, :]
        want = (scores.float() <= bound.float()).reshape(-1).nonzero().squeeze(1)
        assert not over.any() and torch.equal(flat, want)


def test_bit_pattern_comparison_drops_rows_over_the_cap(monkeypatch):
    monkeypatch.setattr(rerank_sparse, "FOUND_PER_ROW", 4)
    scores = torch.arange(60, dtype=torch.float32).reshape(6, 10)  # row r: 10r .. 10r + 9
    limit = torch.tensor([2.0, 100.0, 23.0, -1.0, 100.0, 100.0])  # rows 1, 4, 5 take all 10 > 4
    flat, over = rerank_sparse.FarthestScan(1, torch.device("cpu"))._at_most(scores, limit, 1)
    assert over.tolist() == [False, True, False, False, True, True]
    assert flat.tolist() == [0, 1, 2, 20, 21, 22, 23]


def test_cross_min_sums_equal_dense():
    rng = np.random.default_rng(0)
    a = sp.random(30, 50, density=0.1, random_state=1, format="csr")
    b = sp.random(40, 50, density=0.15, random_state=2, format="csr")
    dense_a, dense_b = a.toarray(), b.toarray()
    want = np.minimum(dense_a[:, None, :], dense_b[None, :, :]).sum(axis=2)
    got = cross_min_sums(a, b)
    assert got.has_canonical_format
    np.testing.assert_allclose(got.toarray(), want, atol=1e-15)
    shares = (dense_a > 0).astype(int) @ (dense_b > 0).T.astype(int) > 0
    assert np.array_equal(got.toarray() > 0, shares)  # stored exactly where a column is shared
    assert cross_min_sums(sp.csr_matrix((3, 50)), b).nnz == 0
    assert rng is not None


# ------------------------------------------------------------------------------------------------
# memory check before extraction
# ------------------------------------------------------------------------------------------------

def test_estimate_grows_with_the_split():
    small, large = estimate_rerank_bytes(3368, 15913, 768), estimate_rerank_bytes(11659, 82161, 768)
    assert 0 < small < large and large < 4 * 2**30  # the MSMT17 target


def test_evaluation_refuses_reranking_that_does_not_fit_before_extracting(monkeypatch):
    from lwtgpf.engine import evaluate as engine

    monkeypatch.setattr(engine, "available_memory_bytes", lambda: 1 << 30)
    monkeypatch.setattr(engine, "extract_features", lambda *a, **k: pytest.fail("extracted features"))
    cfg = Config()
    cfg.eval.rerank = True
    model = SimpleNamespace(test_feature_dim=768)
    dataset = SimpleNamespace(query=[None] * 11659, gallery=[None] * 82161)
    with pytest.raises(ValueError, match=r"eval\.rerank.*needs about \d+\.\d GiB") as error:
        engine.evaluate_model(model, dataset, cfg)
    assert "\n" not in str(error.value)
    cfg.eval.rerank = False  # without re-ranking nothing is checked: extraction starts
    with pytest.raises(pytest.fail.Exception, match="extracted features"):
        engine.evaluate_model(model, dataset, cfg)


def test_cli_evaluates_with_reranking_and_writes_ranked_lists(synthetic_root, tmp_path, capsys):
    # eval.rerank with ranked lists used to raise; now the lists follow the re-ranked distance.
    from lwtgpf.cli import main

    csv_path = tmp_path / "ranked.csv"
    argv = ["evaluate", "--config", "synthetic", "--set", f"data.root={synthetic_root}", "--set",
            "eval.batch_size=64", "--set", "eval.rerank=true", "--ranked-csv", str(csv_path), "--topk", "5"]
    assert main(argv) == 0
    assert "mAP" in capsys.readouterr().out
    ranked = pd.read_csv(csv_path)
    assert set(ranked["rank"]) == {1, 2, 3, 4, 5}
    same = (ranked["query_pid"] == ranked["gallery_pid"]) & (ranked["query_camid"] == ranked["gallery_camid"])
    assert not same.any()


@pytest.mark.gpu
def test_gpu_reranking_equals_cpu():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    q, g = _features(3, 30, 300, 64, "clustered")
    cpu = KReciprocalReranking(q, g).distance()
    gpu = KReciprocalReranking(q.cuda(), g.cuda()).distance()
    np.testing.assert_allclose(gpu, cpu, rtol=0, atol=1e-6)
    labels = (np.arange(30) % 7, np.arange(300) % 7, np.zeros(30), np.ones(300))
    on_cpu = evaluate_features(q, g, *labels, rerank=True, return_topk=5)
    on_gpu = evaluate_features(q.cuda(), g.cuda(), *labels, rerank=True, return_topk=5)
    assert on_gpu["mAP"] == pytest.approx(on_cpu["mAP"], abs=1e-9)
