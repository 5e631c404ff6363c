"""Re-clustering one epoch's cached features with other settings, and clusters ordered by purity.

`Reclusterer` is the pseudo-labelling step of `lwtgpf.cluster` (`pseudo_label`: kNN -> Jaccard ->
DBSCAN -> proxies -> quality) on one fixed feature set, with the kNN lists cached per k1 and the Jaccard
distances per (k1, k2): moving eps or min_samples reruns only DBSCAN, the proxies and the quality row
(milliseconds at Market size). No Jupyter, no plotting.
"""
from __future__ import annotations

import time
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import scipy.sparse as sp
import torch

from lwtgpf.cluster import Neighbours, PseudoLabels, jaccard_from_neighbours, nearest_neighbours, pseudo_label
from lwtgpf.config import ClusterConfig


@dataclass(frozen=True)
class ClusterSummary:
    """One pseudo cluster: its crops (indices into the train split) and how pure it is."""

    cluster: int
    members: np.ndarray
    purity: float  # share of its crops that belong to its most frequent true identity
    num_identities: int
    num_cameras: int


class Reclusterer:
    """`pseudo_label` on one fixed feature set with other settings, kNN and Jaccard distance cached.

    features: (N, D) L2-normalised; camids, true_pids: (N,). `run(...).timings` holds only the phases
    that actually ran (no "knn" when the kNN was reused, no "jaccard" when the distance was).
    """

    def __init__(self, features: torch.Tensor, camids: np.ndarray, num_cameras: int,
                 true_pids: np.ndarray | None = None, camera_aware: bool = True, knn_backend: str = "auto",
                 keep: int = 4):
        self.features = features.detach().float().cpu()
        self.camids = np.asarray(camids)
        self.num_cameras = num_cameras
        self.true_pids = None if true_pids is None else np.asarray(true_pids)
        self.camera_aware = camera_aware
        self.knn_backend = knn_backend
        self._neighbours: Lru[int, Neighbours] = Lru(keep)
        self._distances: Lru[tuple[int, int], sp.csr_matrix] = Lru(keep)

    def distance(self, k1: int, k2: int, timings: dict[str, float] | None = None) -> sp.csr_matrix:
        """(N, N) sparse Jaccard distance for (k1, k2), from the caches when possible."""
        timings = {} if timings is None else timings
        key = (int(k1), int(k2))
        if key not in self._distances:
            if key[0] not in self._neighbours:
                with timed(timings, "knn"):
                    self._neighbours[key[0]] = nearest_neighbours(self.features, key[0], backend=self.knn_backend)
            with timed(timings, "jaccard"):
                self._distances[key] = jaccard_from_neighbours(self.features, self._neighbours[key[0]], *key)
        return self._distances[key]

    def run(self, eps: float, min_samples: int, k1: int, k2: int) -> PseudoLabels:
        if not 0 < eps < 1:
            raise ValueError(f"eps must be in (0, 1) for the Jaccard distance (1 = nothing shared), got {eps}")
        timings: dict[str, float] = {}
        distance = self.distance(k1, k2, timings)
        settings = ClusterConfig(k1=int(k1), k2=int(k2), eps=float(eps), min_samples=int(min_samples),
                                 knn_backend=self.knn_backend)
        result = pseudo_label(self.features, self.camids, settings, self.num_cameras, true_pids=self.true_pids,
                              camera_aware=self.camera_aware, distance=distance)
        result.timings = {**timings, **result.timings}
        return result


def cluster_summaries(labels: np.ndarray, true_pids: np.ndarray, camids: np.ndarray) -> list[ClusterSummary]:
    """One summary per cluster (outliers -1 skipped), ordered purest first (ties: larger clusters first)."""
    labels, true_pids, camids = (np.asarray(a) for a in (labels, true_pids, camids))
    summaries = []
    order = np.argsort(labels, kind="stable")
    sorted_labels = labels[order]
    clusters = np.arange(labels.max() + 1 if len(labels) else 0)
    starts = np.searchsorted(sorted_labels, clusters)
    ends = np.searchsorted(sorted_labels, clusters, side="right")
    for cluster, (start, end) in enumerate(zip(starts, ends)):
        members = order[start:end]
        if len(members) == 0:
            continue
        counts = np.unique(true_pids[members], return_counts=True)[1]
        summaries.append(ClusterSummary(
            cluster=cluster, members=members, purity=float(counts.max() / len(members)),
            num_identities=len(counts), num_cameras=len(np.unique(camids[members])),
        ))
    summaries.sort(key=lambda s: (-s.purity, -len(s.members), s.cluster))
    return summaries


def majority(groups: np.ndarray, values: np.ndarray, num_groups: int) -> np.ndarray:
    """(num_groups,) most frequent value per group (smallest on a tie); groups -1 are ignored."""
    best = np.full(num_groups, -1, dtype=np.int64)
    kept = groups >= 0
    if not kept.any():
        return best
    pairs, counts = np.unique(np.stack([groups[kept], values[kept]]), axis=1, return_counts=True)
    # sort by (group, -count, value): the first row of each group is its majority value
    order = np.lexsort((pairs[1], -counts, pairs[0]))
    first = np.r_[True, pairs[0][order][1:] != pairs[0][order][:-1]]
    best[pairs[0][order][first]] = pairs[1][order][first]
    return best


class Lru(OrderedDict):
    """A dict that keeps its `size` most recently written entries."""

    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def __setitem__(self, key, value) -> None:
        super().__setitem__(key, value)
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)


@contextmanager
def timed(timings: dict[str, float], phase: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    timings[phase] = time.perf_counter() - start
