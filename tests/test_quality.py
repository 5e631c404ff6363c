"""Label-quality metrics against brute force over pairs, and the whole `pseudo_label` step."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from lwtgpf.cluster import build_camera_proxies, dbscan, jaccard_distance, label_quality, pseudo_label
from lwtgpf.config import ClusterConfig


def brute_force_pairwise(labels, pids):
    kept = np.flatnonzero(labels >= 0)
    both = same_cluster = same_id = 0
    for a, b in itertools.combinations(kept, 2):
        c, p = labels[a] == labels[b], pids[a] == pids[b]
        both += c and p
        same_cluster += c
        same_id += p
    precision, recall = both / same_cluster, both / same_id
    return precision, recall, 2 * precision * recall / (precision + recall)


def test_pairwise_scores_equal_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(5):
        pids = rng.integers(0, 12, 150)
        labels = np.where(rng.random(150) < 0.7, pids % 9, rng.integers(-1, 9, 150))
        labels = np.unique(labels, return_inverse=True)[1] - int(labels.min() == -1)  # contiguous, -1 kept
        row = label_quality(labels, pids, rng.integers(0, 3, 150))
        precision, recall, f = brute_force_pairwise(labels, pids)
        assert row["pairwise_precision"] == pytest.approx(precision)
        assert row["pairwise_recall"] == pytest.approx(recall)
        assert row["pairwise_f"] == pytest.approx(f)


def test_counts_nmi_ari_and_purity():
    labels = np.array([0, 0, 1, 1, 1, -1, 2, 2])
    pids = np.array([5, 5, 6, 6, 7, 7, 8, 8])
    cams = np.array([0, 1, 0, 0, 1, 1, 0, 0])
    row = label_quality(labels, pids, cams)
    assert row["num_clusters"] == 3 and row["num_true_ids"] == 4
    assert row["outlier_fraction"] == pytest.approx(1 / 8)
    singletons = np.array([0, 0, 1, 1, 1, 3, 2, 2])  # the outlier becomes its own cluster
    assert row["nmi"] == pytest.approx(normalized_mutual_info_score(pids, singletons))
    assert row["ari"] == pytest.approx(adjusted_rand_score(pids, singletons))
    assert row["cluster_purity"] == pytest.approx(6 / 7)
    assert row["camera_pure_cluster_fraction"] == pytest.approx(1 / 3)  # only cluster 2 sees one camera
    assert "proxy_purity" not in row


def test_camera_split_rate():
    # person 0: cams 0 and 1, clustered apart (split); person 1: cams 0 and 1 in one cluster (linked);
    # person 2: one camera only (not counted); person 3: two cameras but every crop an outlier.
    pids = np.array([0, 0, 0, 1, 1, 2, 2, 3, 3])
    cams = np.array([0, 0, 1, 0, 1, 1, 1, 0, 1])
    labels = np.array([0, 0, 1, 2, 2, 3, 3, -1, -1])
    assert label_quality(labels, pids, cams)["camera_split_rate"] == pytest.approx(1 / 2)
    labels_linked = np.array([0, 0, 0, 1, 1, 2, 2, -1, -1])
    assert label_quality(labels_linked, pids, cams)["camera_split_rate"] == pytest.approx(0.0)


def test_proxy_purity():
    labels = np.array([0, 0, 0, 0])
    cams = np.array([0, 0, 1, 1])
    pids = np.array([1, 2, 3, 3])  # proxy (0, cam 0) holds two people, proxy (0, cam 1) one
    proxies = build_camera_proxies(labels, cams, 2)
    row = label_quality(labels, pids, cams, proxies)
    assert row["num_proxies"] == 2
    assert row["proxy_purity"] == pytest.approx(3 / 4)


def test_all_outliers_gives_nan_not_a_crash():
    row = label_quality(np.full(4, -1), np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1]))
    assert row["num_clusters"] == 0 and row["outlier_fraction"] == 1.0
    assert np.isnan(row["pairwise_precision"]) and np.isnan(row["camera_split_rate"])


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="one length"):
        label_quality(np.zeros(3, dtype=int), np.zeros(4, dtype=int), np.zeros(3, dtype=int))


# --------------------------------------------------------------------------- the whole step
def synthetic(n: int = 400, people: int = 25, cameras: int = 4, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    pids = torch.randint(0, people, (n,), generator=gen)
    cams = torch.randint(0, cameras, (n,), generator=gen)
    x = torch.randn(people, 64, generator=gen)[pids] + 0.4 * torch.randn(cameras, 64, generator=gen)[cams]
    x = torch.nn.functional.normalize(x + 0.8 * torch.randn(n, 64, generator=gen), dim=1)
    return x, pids.numpy(), cams.numpy()


def test_pseudo_label_runs_the_whole_step():
    x, pids, cams = synthetic()
    cfg = ClusterConfig()
    result = pseudo_label(x, cams, cfg, num_cameras=4, true_pids=pids)
    expected = dbscan(jaccard_distance(x, cfg.k1, cfg.k2), cfg.eps, cfg.min_samples)
    assert np.array_equal(result.labels, expected)
    assert result.labels.max() >= 5  # it really found clusters
    assert np.array_equal(
        result.proxies.proxy_of_sample, build_camera_proxies(expected, cams, 4).proxy_of_sample
    )
    assert (result.distance != jaccard_distance(x, cfg.k1, cfg.k2)).nnz == 0
    assert set(result.timings) == {"knn", "jaccard", "dbscan", "proxies", "quality"}
    assert result.quality == label_quality(expected, pids, cams, result.proxies)
    row = result.log_row()
    assert row["num_proxies"] == result.proxies.num_proxies and "sec_knn" in row and "nmi" in row


def test_pseudo_label_camera_agnostic_and_given_labels():
    x, pids, cams = synthetic(seed=1)
    agnostic = pseudo_label(x.numpy(), cams, ClusterConfig(), 4, camera_aware=False)
    assert agnostic.proxies.num_proxies == agnostic.proxies.num_clusters
    assert agnostic.quality is None
    given = pseudo_label(x, cams, ClusterConfig(), 4, given_labels=np.unique(pids, return_inverse=True)[1])
    assert given.distance is None and "knn" not in given.timings
    assert given.proxies.num_clusters == len(np.unique(pids))


def test_pseudo_label_rejects_bad_input():
    x, pids, cams = synthetic(n=50)
    with pytest.raises(ValueError, match="L2-normalised"):
        pseudo_label(x * 2, cams, ClusterConfig(), 4)
    with pytest.raises(ValueError, match="N = len"):
        pseudo_label(x, cams[:-1], ClusterConfig(), 4)
    with pytest.raises(ValueError, match="eps must be < 1"):
        pseudo_label(x, cams, ClusterConfig(eps=1.0), 4)
