"""Clusters through time (lwtgpf.workbench.history): lineage events, trajectories and camera pairs,
checked on hand-made labels and against a pair-by-pair reference."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from lwtgpf.workbench.history import camera_pairs, lineage, trajectory


def test_lineage_names_every_event():
    #            crops:  0  1  2  3 | 4  5  6  7 | 8  9 10 11 | 12 13 14 15 | 16 17 | 18 19 20
    a = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 5, 5, 5])
    b = np.array([0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3, -1, -1, -1, -1, 4])
    # a0 -> b0 whole (kept); a1 -> b1 + b2 (split); a2 + a3 -> b3 (merged); a4 -> outliers (dissolved);
    # a5: two of three crops become outliers (dissolved) and b4 is a new cluster from ... a5's third crop
    result = lineage(a, b, epoch_a=3, epoch_b=4)
    assert result.event_a == {0: "kept", 1: "split", 2: "merged", 3: "merged", 4: "dissolved", 5: "dissolved"}
    assert result.event_b == {0: "kept", 1: "split", 2: "split", 3: "merged", 4: "kept"}
    assert result.counts_a == {"kept": 1, "split": 1, "merged": 2, "dissolved": 2}
    assert result.targets(1).tolist() == [[1, 2], [2, 2]]
    assert result.sources(3).tolist() == [[2, 4], [3, 4]]
    assert result.flows[:, 2].sum() == len(a) and (np.diff(result.flows[:, 2]) <= 0).all()
    assert result.events("merged") == [2, 3]

    appeared = lineage(np.array([-1, -1, -1, 0, 0]), np.array([1, 1, 1, 0, 0]))
    assert appeared.event_b == {0: "kept", 1: "appeared"} and appeared.event_a == {0: "kept"}


def test_lineage_of_an_epoch_with_itself_keeps_everything_and_a_small_leak_is_not_a_split():
    rng = np.random.default_rng(0)
    labels = rng.integers(-1, 30, 500)
    same = lineage(labels, labels)
    assert set(same.event_a.values()) <= {"kept"} and set(same.event_b.values()) <= {"kept"}
    leaked = labels.copy()
    leaked[np.flatnonzero(labels == 7)[:1]] = 8  # one crop of cluster 7 (about 16 crops) moves
    assert lineage(labels, leaked).event_a[7] == "kept"


def test_trajectory_follows_an_identity_split_by_camera_and_merged_back():
    camids = np.array([0, 0, 1, 1, 2])
    members = np.arange(5)  # one identity, cameras 0, 0, 1, 1, 2
    labels = {1: np.array([0, 0, 1, 1, -1, 2, 2]), 2: np.array([0, 0, 0, 0, 0, 1, 1])}
    steps = trajectory(labels, members, np.r_[camids, 3, 3])
    assert [s.num_clusters for s in steps] == [2, 1]
    assert steps[0].camera_pure.tolist() == [True, True] and steps[0].outliers == 1
    assert steps[1].camera_pure.tolist() == [False] and steps[1].largest_share == 1.0 and steps[1].purity == 1.0


def _pairs_reference(labels, pids, camids, num_cameras):
    together = np.zeros((num_cameras, num_cameras), dtype=np.int64)
    correct, true = together.copy(), together.copy()
    for i, j in itertools.permutations(range(len(labels)), 2):
        a, b = camids[i], camids[j]
        same_cluster = labels[i] >= 0 and labels[i] == labels[j]
        together[a, b] += same_cluster
        correct[a, b] += same_cluster and pids[i] == pids[j]
        true[a, b] += pids[i] == pids[j]
    return together, correct, true


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_camera_pairs_equal_the_pair_by_pair_count(seed):
    rng = np.random.default_rng(seed)
    n, cams = 60, 4
    pids, camids, labels = rng.integers(0, 8, n), rng.integers(0, cams, n), rng.integers(-1, 6, n)
    result = camera_pairs(labels, pids, camids, cams)
    together, correct, true = _pairs_reference(labels, pids, camids, cams)
    np.testing.assert_array_equal(result.together, together)
    np.testing.assert_array_equal(result.correct, correct)
    np.testing.assert_array_equal(result.true_pairs, true)
    perfect = camera_pairs(pids, pids, camids, cams)
    assert perfect.cross_camera_recall() == 1.0 and np.nanmin(perfect.precision) == 1.0
    by_camera = camera_pairs(pids * cams + camids, pids, camids, cams)  # clusters = (person, camera)
    assert by_camera.cross_camera_recall() == 0.0 and by_camera.same_camera_recall() == 1.0
