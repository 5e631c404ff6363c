"""Camera-aware proxies: id order, lookup tables, edge cases, centroids."""
from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from lwtgpf.cluster import build_camera_proxies, proxy_centroids

#                 crop: 0   1   2   3   4   5   6   7   8
LABELS = np.array([1, 0, 1, -1, 0, 2, 1, 2, 0])
CAMIDS = np.array([2, 1, 0, 1, 1, 0, 2, 0, 0])


def test_ids_run_cluster_by_cluster_then_camera_by_camera():
    proxies = build_camera_proxies(LABELS, CAMIDS, num_cameras=3)
    # (cluster, camera) pairs present, sorted: (0,0) (0,1) (1,0) (1,2) (2,0)
    assert proxies.cluster_of_proxy.tolist() == [0, 0, 1, 1, 2]
    assert proxies.camera_of_proxy.tolist() == [0, 1, 0, 2, 0]
    assert proxies.proxy_of_sample.tolist() == [3, 1, 2, -1, 1, 4, 3, 4, 0]
    assert [p.tolist() for p in proxies.proxies_of_cluster] == [[0, 1], [2, 3], [4]]
    assert [p.tolist() for p in proxies.proxies_of_camera] == [[0, 2, 4], [1], [3]]
    assert (proxies.num_proxies, proxies.num_clusters, proxies.num_cameras) == (5, 3, 3)
    assert proxies.proxy_of_sample.dtype == np.int64 and proxies.cluster_of_proxy.dtype == np.int64


def test_tables_are_consistent_on_random_labels():
    rng = np.random.default_rng(0)
    labels = rng.integers(-1, 30, 2000)
    labels[np.isin(labels, [7])] = -1
    labels = np.where(labels > 7, labels - 1, labels)  # contiguous 0..28
    camids = rng.integers(0, 6, 2000)
    proxies = build_camera_proxies(labels, camids, 6)
    kept = labels >= 0
    pid = proxies.proxy_of_sample
    assert (pid[~kept] == -1).all()
    assert np.array_equal(proxies.cluster_of_proxy[pid[kept]], labels[kept])
    assert np.array_equal(proxies.camera_of_proxy[pid[kept]], camids[kept])
    keys = proxies.cluster_of_proxy * 6 + proxies.camera_of_proxy
    assert (np.diff(keys) > 0).all()  # strictly increasing: cluster-major, one proxy per pair
    for cluster, ids in enumerate(proxies.proxies_of_cluster):
        assert (proxies.cluster_of_proxy[ids] == cluster).all()
    assert sum(len(ids) for ids in proxies.proxies_of_camera) == proxies.num_proxies


def test_camera_agnostic_mode_has_one_proxy_per_cluster():
    proxies = build_camera_proxies(LABELS, CAMIDS, num_cameras=3, camera_aware=False)
    assert proxies.proxy_of_sample.tolist() == LABELS.tolist()
    assert proxies.cluster_of_proxy.tolist() == [0, 1, 2]
    # majority camera: cluster 0 has cameras 1, 1, 0 -> 1; cluster 1 has 2, 0, 2 -> 2; cluster 2 -> 0
    assert proxies.camera_of_proxy.tolist() == [1, 2, 0]
    assert not proxies.camera_aware


def test_no_clusters_logs_and_returns_empty_tables(caplog):
    with caplog.at_level(logging.WARNING, logger="lwtgpf.cluster.proxies"):
        proxies = build_camera_proxies(np.full(5, -1), np.arange(5) % 2, num_cameras=2)
    assert "no clusters" in caplog.text
    assert proxies.num_proxies == 0 and proxies.num_clusters == 0
    assert (proxies.proxy_of_sample == -1).all()
    assert [len(p) for p in proxies.proxies_of_camera] == [0, 0]


def test_camera_without_proxy_is_logged(caplog):
    with caplog.at_level(logging.WARNING, logger="lwtgpf.cluster.proxies"):
        proxies = build_camera_proxies(np.array([0, 0, -1, 1]), np.array([0, 0, 2, 1]), num_cameras=4)
    assert "cameras [2, 3] have no proxy" in caplog.text
    assert [p.tolist() for p in proxies.proxies_of_camera] == [[0], [1], [], []]


def test_single_camera_dataset(caplog):
    with caplog.at_level(logging.INFO, logger="lwtgpf.cluster.proxies"):
        proxies = build_camera_proxies(np.array([0, 1, 1, 0]), np.zeros(4, dtype=int), num_cameras=1)
    assert "one camera only" in caplog.text
    assert proxies.cluster_of_proxy.tolist() == [0, 1]
    assert proxies.proxy_of_sample.tolist() == [0, 1, 1, 0]


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="same length"):
        build_camera_proxies(np.zeros(3, dtype=int), np.zeros(4, dtype=int), 1)
    with pytest.raises(ValueError, match=r"camids must lie in \[0, 2\)"):
        build_camera_proxies(np.zeros(3, dtype=int), np.array([0, 1, 2]), 2)
    with pytest.raises(ValueError, match="contiguous"):
        build_camera_proxies(np.array([0, 2, 2]), np.zeros(3, dtype=int), 1)
    with pytest.raises(ValueError, match="integer"):
        build_camera_proxies(np.array([0.0, 1.0]), np.zeros(2, dtype=int), 1)


def test_centroids_are_normalised_means_of_each_proxy():
    gen = torch.Generator().manual_seed(0)
    feats = torch.randn(3, 9, 5, generator=gen)  # (F, N, D)
    proxies = build_camera_proxies(LABELS, CAMIDS, num_cameras=3)
    centres = proxy_centroids(feats, proxies.proxy_of_sample)
    assert centres.shape == (3, 5, 5)
    for p in range(5):
        members = np.flatnonzero(proxies.proxy_of_sample == p)
        expected = torch.nn.functional.normalize(feats[:, members].mean(dim=1), dim=-1)
        assert torch.allclose(centres[:, p], expected, atol=1e-6)
    single = proxy_centroids(feats[0], torch.as_tensor(proxies.proxy_of_sample))  # (N, D) -> (P, D)
    assert torch.allclose(single, centres[0])


def test_centroids_reject_an_empty_proxy():
    with pytest.raises(ValueError, match="own at least one crop"):
        proxy_centroids(torch.randn(3, 4), np.array([0, 2, 2]))
