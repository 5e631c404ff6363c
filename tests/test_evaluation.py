"""Tests of lwtgpf.evaluation: hand-computed metrics, protocol details, chunked == dense, re-ranking."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lwtgpf.evaluation import (
    evaluate_features,
    evaluate_rank,
    format_results,
    pairwise_distance,
    re_ranking,
    re_ranking_features,
    reference_evaluate_rank,
)
from lwtgpf.evaluation import ranking
from lwtgpf.evaluation.rerank import _nearest_stable

# ------------------------------------------------------------------------------------------------
# A hand-computed case: 4 queries x 6 gallery crops
# ------------------------------------------------------------------------------------------------
#   gallery   g0       g1       g2       g3            g4       g5
#   pid       1        2        1        0 (distract.) 1        3
#   camid     0        1        1        1             2        0
HAND_G_PIDS = np.array([1, 2, 1, 0, 1, 3])
HAND_G_CAMIDS = np.array([0, 1, 1, 1, 2, 0])
HAND_Q_PIDS = np.array([1, 1, 2, 3])
HAND_Q_CAMIDS = np.array([0, 2, 2, 0])
HAND_DIST = np.array([
    # q0 (pid 1, cam 0): order g0 g1 g2 g3 g4 g5; g0 is junk (pid 1, cam 0) and is removed.
    #   kept: g1- g2+ g3- g4+ g5-  -> matches at ranks 2, 4
    #   AP = (1/2 + 2/4) / 2 = 0.5;  first match rank 2;  INP = 2 matches / rank 4 = 0.5
    [0.10, 0.20, 0.30, 0.40, 0.50, 0.60],
    # q1 (pid 1, cam 2): order g4 g3 g0 g2 g5 g1; g4 is junk (pid 1, cam 2).
    #   kept: g3- (distractor) g0+ g2+ g5- g1-  -> matches at ranks 2, 3
    #   AP = (1/2 + 2/3) / 2 = 7/12;  first match rank 2;  INP = 2 / 3
    [0.15, 0.90, 0.35, 0.05, 0.01, 0.50],
    # q2 (pid 2, cam 2): g1 (pid 2, cam 1) is nearest and is the only match.
    #   AP = 1;  first match rank 1;  INP = 1 / 1 = 1
    [0.70, 0.00, 0.20, 0.30, 0.40, 0.50],
    # q3 (pid 3, cam 0): its only crop g5 is same pid same camera -> no valid match, skipped.
    [0.90, 0.80, 0.70, 0.60, 0.50, 0.00],
])
# Valid queries q0, q1, q2:
#   mAP  = (1/2 + 7/12 + 1) / 3 = (6 + 7 + 12) / 36 = 25/36
#   mINP = (1/2 + 2/3 + 1) / 3  = (3 + 4 + 6) / 18 = 13/18
#   CMC: first matches at ranks 2, 2, 1 -> rank-1 = 1/3, rank-2 and beyond = 3/3
#        (max_rank 50 is cut to the 6 gallery crops)
HAND_MAP, HAND_MINP = 25 / 36, 13 / 18
HAND_CMC = np.array([1 / 3, 1, 1, 1, 1, 1])


def test_hand_computed_case():
    cmc, mAP, mINP = evaluate_rank(HAND_DIST, HAND_Q_PIDS, HAND_G_PIDS, HAND_Q_CAMIDS, HAND_G_CAMIDS)
    np.testing.assert_allclose(cmc, HAND_CMC, atol=1e-12)
    assert mAP == pytest.approx(HAND_MAP, abs=1e-12)
    assert mINP == pytest.approx(HAND_MINP, abs=1e-12)


def test_reference_loop_agrees_with_hand_computation():
    cmc, mAP, mINP = reference_evaluate_rank(
        HAND_DIST, HAND_Q_PIDS, HAND_G_PIDS, HAND_Q_CAMIDS, HAND_G_CAMIDS)
    np.testing.assert_allclose(cmc, HAND_CMC, atol=1e-12)
    assert (mAP, mINP) == pytest.approx((HAND_MAP, HAND_MINP), abs=1e-12)


def test_same_camera_same_pid_removed_but_other_cameras_kept():
    # If q0's same-camera crop g0 counted, q0 would have AP (1 + 2/3 + 3/5) / 3 and rank-1 hit.
    # Moving g0 to camera 3 makes it a true match at rank 1: AP = (1/1 + 2/3 + 3/5) / 3.
    g_camids = HAND_G_CAMIDS.copy()
    g_camids[0] = 3
    _, mAP, _ = evaluate_rank(HAND_DIST[:1], HAND_Q_PIDS[:1], HAND_G_PIDS, HAND_Q_CAMIDS[:1], g_camids)
    assert mAP == pytest.approx((1 + 2 / 3 + 3 / 5) / 3, abs=1e-12)


def test_query_without_valid_match_is_skipped():
    # q3 alone would raise; with q2 it is skipped and the result is q2's alone.
    cmc, mAP, mINP = evaluate_rank(
        HAND_DIST[2:], HAND_Q_PIDS[2:], HAND_G_PIDS, HAND_Q_CAMIDS[2:], HAND_G_CAMIDS, max_rank=3)
    np.testing.assert_allclose(cmc, [1, 1, 1])
    assert (mAP, mINP) == (1.0, 1.0)


def test_all_queries_invalid_raises():
    with pytest.raises(ValueError, match="no query has a true match"):
        evaluate_rank(HAND_DIST[3:], HAND_Q_PIDS[3:], HAND_G_PIDS, HAND_Q_CAMIDS[3:], HAND_G_CAMIDS)


def test_ties_keep_gallery_order():
    # All distances equal: the stable sort keeps gallery order g0- g1+ g2+ -> matches at ranks 2, 3:
    # AP = (1/2 + 2/3) / 2 = 7/12 (the reverse order would give 1.0), INP = 2/3, rank-1 = 0.
    g_pids, g_camids = np.array([5, 1, 1]), np.array([1, 1, 1])
    cmc, mAP, mINP = evaluate_rank(np.zeros((1, 3)), [1], g_pids, [0], g_camids)
    assert mAP == pytest.approx(7 / 12, abs=1e-12)
    assert mINP == pytest.approx(2 / 3, abs=1e-12)
    np.testing.assert_allclose(cmc, [0, 1, 1])
    # the feature path sees the same tie (identical gallery features) and ranks it the same way
    feats = torch.ones(3, 4)
    result = evaluate_features(torch.ones(1, 4), feats, [1], g_pids, [0], g_camids, return_topk=3)
    assert result["mAP"] == pytest.approx(7 / 12, abs=1e-12)
    assert result["topk"].tolist() == [[0, 1, 2]]


def test_distractors_are_negatives():
    # pid-0 distractor ahead of the single true match: AP = 1/2, rank-1 = 0, INP = 1/2.
    cmc, mAP, mINP = evaluate_rank(np.array([[0.1, 0.2]]), [7], [0, 7], [0], [1, 1])
    assert (mAP, mINP) == (0.5, 0.5)
    np.testing.assert_allclose(cmc, [0, 1])


def test_format_results_in_percent():
    text = format_results({"mAP": 0.5, "R1": 0.25, "R5": 1.0, "R10": 1.0, "mINP": 0.125})
    assert text == "mAP 50.0% | R1 25.0% | R5 100.0% | R10 100.0% | mINP 12.5%"
    with pytest.raises(KeyError, match="mINP"):
        format_results({"mAP": 0.5, "R1": 0.25, "R5": 1.0, "R10": 1.0})


@pytest.mark.parametrize("bad, message", [
    (dict(q_pids=[1, 1]), "q_pids has 2 entries, expected 4"),
    (dict(g_camids=[0] * 5), "g_camids has 5 entries, expected 6"),
    (dict(q_pids=[1.5, 1, 2, 3]), "integer labels"),
])
def test_bad_labels_are_named(bad, message):
    args = dict(q_pids=HAND_Q_PIDS, g_pids=HAND_G_PIDS, q_camids=HAND_Q_CAMIDS, g_camids=HAND_G_CAMIDS)
    args.update(bad)
    with pytest.raises(ValueError, match=message):
        evaluate_rank(HAND_DIST, **args)


def test_nan_inputs_are_rejected():
    dist = HAND_DIST.copy()
    dist[2, 1] = np.nan
    with pytest.raises(ValueError, match="row 2"):
        evaluate_rank(dist, HAND_Q_PIDS, HAND_G_PIDS, HAND_Q_CAMIDS, HAND_G_CAMIDS)
    feats = torch.randn(4, 8)
    feats[1, 3] = float("inf")
    with pytest.raises(ValueError, match="q_feats"):
        evaluate_features(feats, torch.randn(6, 8), HAND_Q_PIDS, HAND_G_PIDS, HAND_Q_CAMIDS, HAND_G_CAMIDS)


# ------------------------------------------------------------------------------------------------
# Chunked feature path == dense matrix path == reference loop
# ------------------------------------------------------------------------------------------------

def _exact_structured_split(seed: int, num_q: int = 37, num_g: int = 113, num_ids: int = 9):
    """Features with entries +-1/4 in 16 dims: unit norm exactly and every dot product a multiple of
    1/16, so distances are exact whatever the matmul blocking, and ties are frequent. Each person is
    a random sign pattern with a few signs flipped per crop; pid 0 crops are distractors."""
    gen = torch.Generator().manual_seed(seed)
    prototypes = torch.randint(0, 2, (num_ids, 16), generator=gen) * 2 - 1
    pids = torch.randint(0, num_ids, (num_q + num_g,), generator=gen)
    flips = torch.where(torch.rand(num_q + num_g, 16, generator=gen) < 0.2, -1, 1)
    feats = (prototypes[pids] * flips).float() / 4
    camids = torch.randint(0, 3, (num_q + num_g,), generator=gen)
    pids[:num_q][pids[:num_q] == 0] = 1  # queries are never distractors
    return (feats[:num_q], feats[num_q:], pids[:num_q].numpy(), pids[num_q:].numpy(),
            camids[:num_q].numpy(), camids[num_q:].numpy())


@pytest.mark.parametrize("chunk_size", [1, 5, 37, None])
def test_chunked_features_equal_dense_matrix_exactly(chunk_size):
    q_feats, g_feats, q_pids, g_pids, q_camids, g_camids = _exact_structured_split(seed=0)
    dist = pairwise_distance(q_feats, g_feats)
    assert len(torch.unique(dist[0])) < dist.shape[1] / 2, "the data should contain many ties"
    cmc, mAP, mINP = evaluate_rank(dist.numpy(), q_pids, g_pids, q_camids, g_camids, max_rank=20)
    result = evaluate_features(q_feats, g_feats, q_pids, g_pids, q_camids, g_camids,
                               max_rank=20, chunk_size=chunk_size)
    assert result["mAP"] == mAP and result["mINP"] == mINP
    assert np.array_equal(result["cmc"], cmc)
    assert (result["R1"], result["R5"], result["R10"]) == (cmc[0], cmc[4], cmc[9])
    short = evaluate_features(q_feats, g_feats, q_pids, g_pids, q_camids, g_camids, max_rank=1)
    assert len(short["cmc"]) == 1 and short["R10"] == cmc[9]  # R-k do not depend on max_rank
    # and both agree with the per-query reference loop (up to float summation order)
    ref_cmc, ref_map, ref_minp = reference_evaluate_rank(
        dist.numpy(), q_pids, g_pids, q_camids, g_camids, max_rank=20)
    np.testing.assert_allclose(cmc, ref_cmc, atol=1e-12)
    assert (mAP, mINP) == pytest.approx((ref_map, ref_minp), abs=1e-12)
    assert 0.0 < mAP < 1.0 and 0.0 < mINP < 1.0


def test_dense_path_matches_reference_on_random_distances():
    rng = np.random.default_rng(3)
    dist = rng.random((50, 300)).astype(np.float32)
    q_pids, g_pids = rng.integers(0, 40, 50), rng.integers(0, 40, 300)
    q_camids, g_camids = rng.integers(0, 6, 50), rng.integers(0, 6, 300)
    for chunk_size in (7, None):
        cmc, mAP, mINP = evaluate_rank(dist, q_pids, g_pids, q_camids, g_camids, chunk_size=chunk_size)
        ref_cmc, ref_map, ref_minp = reference_evaluate_rank(dist, q_pids, g_pids, q_camids, g_camids)
        np.testing.assert_allclose(cmc, ref_cmc, atol=1e-12)
        assert (mAP, mINP) == pytest.approx((ref_map, ref_minp), abs=1e-12)


def test_topk_lists_the_kept_gallery_in_rank_order():
    q_feats, g_feats, q_pids, g_pids, q_camids, g_camids = _exact_structured_split(seed=1)
    result = evaluate_features(q_feats, g_feats, q_pids, g_pids, q_camids, g_camids,
                               chunk_size=4, return_topk=10)
    order = np.argsort(pairwise_distance(q_feats, g_feats).numpy(), axis=1, kind="stable")
    for q, row in enumerate(order):
        junk = (g_pids[row] == q_pids[q]) & (g_camids[row] == q_camids[q])
        assert result["topk"][q].tolist() == row[~junk][:10].tolist()
    assert result["per_query_ap"].shape == (len(q_pids),)


def test_topk_pads_when_fewer_kept_crops_than_k():
    result = evaluate_features(torch.eye(2), torch.eye(2), [1, 2], [1, 2], [0, 0], [1, 0], return_topk=2)
    # query 1 (pid 2, cam 0) loses gallery crop 1 (pid 2, cam 0): one kept crop, then -1
    assert result["topk"].tolist() == [[0, 1], [0, -1]]


@pytest.mark.gpu
def test_gpu_path_equals_cpu_path():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    split = _exact_structured_split(seed=2)
    cpu = evaluate_features(*split, chunk_size=8, return_topk=5)
    gpu = evaluate_features(split[0].cuda(), split[1].cuda(), *split[2:], chunk_size=8, return_topk=5)
    assert (gpu["mAP"], gpu["mINP"]) == (cpu["mAP"], cpu["mINP"])
    assert np.array_equal(gpu["cmc"], cpu["cmc"]) and np.array_equal(gpu["topk"], cpu["topk"])


# ------------------------------------------------------------------------------------------------
# k-reciprocal re-ranking
# ------------------------------------------------------------------------------------------------

def _naive_re_ranking(q_g, q_q, g_g, k1, k2, lam):
    """The original algorithm written as directly as possible (full argsort, per-element loops)."""
    num_q = len(q_q)
    full = np.block([[q_q, q_g], [q_g.T, g_g]]).astype(np.float64) ** 2
    dist = (full / full.max(axis=0)).T  # column-normalised, transposed, as in the reference
    n = len(dist)
    rank = np.argsort(dist, axis=1, kind="stable")

    def reciprocal(i, k):
        return [j for j in rank[i, :k + 1] if i in rank[j, :k + 1]]

    v = np.zeros((n, n))
    for i in range(n):
        r = reciprocal(i, k1)
        expanded = set(r)
        for c in r:
            rc = reciprocal(c, int(np.around(k1 / 2)))
            if len(set(rc) & set(r)) > 2 / 3 * len(rc):
                expanded |= set(rc)
        idx = sorted(expanded)
        w = np.exp(-dist[i, idx])
        v[i, idx] = w / w.sum()
    if k2 != 1:
        v = np.stack([v[rank[i, :k2]].mean(axis=0) for i in range(n)])
    jaccard = np.zeros((num_q, n))
    for i in range(num_q):
        for j in range(n):
            jaccard[i, j] = 1 - np.minimum(v[i], v[j]).sum() / np.maximum(v[i], v[j]).sum()
    return (jaccard * (1 - lam) + dist[:num_q] * lam)[:, num_q:]


def _random_distances(seed, num_q, num_g, dim=8):
    gen = torch.Generator().manual_seed(seed)
    q, g = torch.randn(num_q, dim, generator=gen), torch.randn(num_g, dim, generator=gen)
    return q, g, (pairwise_distance(q, g).numpy(), pairwise_distance(q, q).numpy(),
                  pairwise_distance(g, g).numpy())


@pytest.mark.parametrize("k1, k2, lam", [(6, 3, 0.3), (5, 1, 0.5), (20, 6, 0.3)])
def test_re_ranking_matches_naive_algorithm(k1, k2, lam):
    _, _, (q_g, q_q, g_g) = _random_distances(seed=k1, num_q=7, num_g=33)
    fast = re_ranking(q_g, q_q, g_g, k1=k1, k2=k2, lambda_value=lam)
    assert fast.shape == (7, 33) and fast.dtype == np.float32
    np.testing.assert_allclose(fast, _naive_re_ranking(q_g, q_q, g_g, k1, k2, lam), atol=2e-6)


def test_re_ranking_lambda_one_is_the_normalised_original_distance():
    q, g, (q_g, q_q, g_g) = _random_distances(seed=5, num_q=4, num_g=20)
    out = re_ranking(q_g, q_q, g_g, lambda_value=1.0)
    # row i of the stacked squared distances divided by its maximum (query rows, gallery columns)
    rows = np.concatenate([q_q, q_g], axis=1) ** 2
    np.testing.assert_allclose(out, (rows / rows.max(axis=1, keepdims=True))[:, 4:], rtol=1e-6)
    np.testing.assert_allclose(re_ranking_features(q, g, lambda_value=1.0), out, rtol=1e-6)


def test_re_ranking_improves_map_on_clustered_identities():
    # 20 people, each a random centre in 16-d with 2 query and 8 gallery crops around it (noise
    # 0.9 per dimension): crops of one person share reciprocal neighbours, which is what the
    # Jaccard distance rewards (Zhong et al. report +10 to +15 mAP on Market-1501).
    gen = torch.Generator().manual_seed(0)
    centres = torch.randn(20, 16, generator=gen)
    q_pids, g_pids = np.repeat(np.arange(20), 2), np.repeat(np.arange(20), 8)
    q_feats = centres[q_pids] + 0.9 * torch.randn(len(q_pids), 16, generator=gen)
    g_feats = centres[g_pids] + 0.9 * torch.randn(len(g_pids), 16, generator=gen)
    q_camids, g_camids = np.zeros(len(q_pids)), np.ones(len(g_pids))
    _, map_before, _ = evaluate_rank(pairwise_distance(q_feats, g_feats).numpy(),
                                     q_pids, g_pids, q_camids, g_camids)
    _, map_after, _ = evaluate_rank(re_ranking_features(q_feats, g_feats),
                                    q_pids, g_pids, q_camids, g_camids)
    assert map_after > map_before + 0.05, (map_before, map_after)


def test_re_ranking_rejects_bad_input():
    _, _, (q_g, q_q, g_g) = _random_distances(seed=1, num_q=3, num_g=10)
    with pytest.raises(ValueError, match=r"g_g_dist must have shape \(10, 10\)"):
        re_ranking(q_g, q_q, g_g[:5])
    with pytest.raises(ValueError, match="lambda_value"):
        re_ranking(q_g, q_q, g_g, lambda_value=1.5)


def test_nearest_stable_equals_stable_argsort_with_ties():
    rng = np.random.default_rng(0)
    dist = rng.integers(0, 4, (300, 50)).astype(np.float32)  # many ties
    np.testing.assert_array_equal(_nearest_stable(dist, 7), np.argsort(dist, axis=1, kind="stable")[:, :7])


# ------------------------------------------------------------------------------------------------
# Partial selection (the fast path) == full stable sort (the reference), chunk by chunk
# ------------------------------------------------------------------------------------------------

def _random_chunk_case(rng):
    """A small split whose distances tie often (a few integer levels, negative ones, -0.0 beside
    +0.0) or never (uniform floats); few people and cameras, so queries without a match, all-junk
    rows and long junk runs occur."""
    num_q, num_g = int(rng.integers(1, 14)), int(rng.integers(1, 40))
    if rng.random() < 0.7:
        dist = rng.integers(-2, int(rng.integers(-1, 5)), (num_q, num_g)).astype(np.float32)
        dist[(dist == 0) & (rng.random(dist.shape) < 0.5)] = -0.0  # ties with +0.0
    else:
        dist = (rng.random((num_q, num_g)) - 0.5).astype(np.float32)
    num_ids, num_cams = int(rng.integers(1, 6)), int(rng.integers(1, 4))
    labels = (rng.integers(0, num_ids, num_q), rng.integers(0, num_ids, num_g),
              rng.integers(0, num_cams, num_q), rng.integers(0, num_cams, num_g))
    return torch.from_numpy(dist), labels


@pytest.mark.parametrize("sort_share", [1.0, ranking.SORT_SHARE])  # never fall back to sorting, default
def test_partial_selection_equals_full_sort_chunk_by_chunk(monkeypatch, sort_share):
    monkeypatch.setattr(ranking, "SORT_SHARE", sort_share)
    rng = np.random.default_rng(int(100 * sort_share))
    for case in range(400):
        dist, labels = _random_chunk_case(rng)
        num_q, num_g = dist.shape
        table = ranking._Labels.build(*labels, num_q, num_g, torch.device("cpu"))
        start = int(rng.integers(0, num_q))  # a chunk that does not start at query 0
        chunk = dist[start:].contiguous()
        topk = int(rng.integers(0, num_g + 1))
        fast = ranking._rank_chunk(chunk, table, start, topk)
        reference = ranking._rank_chunk_by_sort(chunk, table, start, topk)
        for got, want in zip(fast, reference):
            assert (got is None and want is None) or torch.equal(got, want), (case, got, want)


def test_fast_path_falls_back_to_sorting_when_everything_is_a_candidate(monkeypatch):
    calls = []
    # Every crop is the same person: the farthest match is the farthest crop, all are candidates.
    dist = torch.rand(3, 50)
    table = ranking._Labels.build([1, 1, 1], [1] * 50, [0, 1, 2], [3] * 50, 3, 50, torch.device("cpu"))
    original = ranking._rank_chunk_by_sort
    monkeypatch.setattr(ranking, "_rank_chunk_by_sort", lambda *a: calls.append(a) or original(*a))
    result = ranking._rank_chunk(dist, table, 0, 5)
    assert len(calls) == 1
    assert torch.equal(result[1], torch.arange(50).repeat(3))  # every crop a match, in rank order


@pytest.mark.parametrize("sort_share", [1.0, ranking.SORT_SHARE])
@pytest.mark.parametrize("seed", [3, 4])
@pytest.mark.parametrize("return_topk", [0, 7, 500])  # 500 > G: clipped to the gallery
def test_evaluate_features_equals_evaluate_rank_with_lists(monkeypatch, sort_share, seed, return_topk):
    monkeypatch.setattr(ranking, "SORT_SHARE", sort_share)
    q_feats, g_feats, q_pids, g_pids, q_camids, g_camids = _exact_structured_split(seed, num_q=41, num_g=97)
    dist = pairwise_distance(q_feats, g_feats).numpy()
    cmc, mAP, mINP = evaluate_rank(dist, q_pids, g_pids, q_camids, g_camids)
    for chunk_size in (1, 6, None):
        result = evaluate_features(q_feats, g_feats, q_pids, g_pids, q_camids, g_camids,
                                   chunk_size=chunk_size, return_topk=return_topk)
        assert (result["mAP"], result["mINP"]) == (mAP, mINP) and np.array_equal(result["cmc"], cmc)
        if return_topk:
            order = np.argsort(dist, axis=1, kind="stable")
            k = min(return_topk, dist.shape[1])
            assert result["topk"].shape == (len(q_pids), k)
            for q, row in enumerate(order):
                junk = (g_pids[row] == q_pids[q]) & (g_camids[row] == q_camids[q])
                kept = row[~junk][:k]
                assert result["topk"][q].tolist() == kept.tolist() + [-1] * (k - len(kept))


def test_evaluate_features_skips_queries_without_match_and_raises_when_none_has_one():
    feats = torch.eye(4)
    # query 0 (pid 1, cam 0): its only gallery crop is same camera -> skipped; query 1 finds its match
    result = evaluate_features(feats[:2], feats, [1, 2], [1, 2, 3, 3], [0, 0], [0, 1, 1, 1])
    assert result["num_valid_queries"] == 1 and np.isnan(result["per_query_ap"][0])
    assert result["mAP"] == 1.0
    with pytest.raises(ValueError, match="no query has a true match"):
        evaluate_features(feats[:1], feats, [1], [1, 2, 3, 3], [0], [0, 1, 1, 1])
