"""Clusters through time: how the pseudo labels of one epoch became those of another.

Everything here is a function of label arrays (N,) over the same train crops (-1 = outlier), the
crops' true identities and cameras, so it works the same on a live trainer's history and on the
`epochs/NNN/labels.npy` records of a run folder (`lwtgpf.run_folder`). No plotting, no Jupyter.

    lineage(labels_a, labels_b)            what became of every cluster between two epochs
    trajectory(labels_by_epoch, members, camids)  where a group of crops (one identity, or one
                                           cluster's crops) went, epoch by epoch; trajectory_story
                                           says it in a sentence
    camera_pairs(labels, pids, camids)     per camera pair: crops clustered together, rightly and wrongly

Lineage rules (`min_share`, 0.2 by default): a flow from cluster A (epoch a) to cluster B (epoch b)
is significant for A when it carries at least `min_share` of A's crops, and for B when it carries at
least `min_share` of B's crops. Then each cluster of epoch a is
    dissolved  when at least half of its crops are outliers at epoch b (or it has no significant flow),
    split      when two or more of its flows are significant for it,
    merged     when its one significant flow goes into a B that two or more A's flow into significantly,
    kept       otherwise (one A, one B, each the other's only significant partner);
and each cluster of epoch b that draws at least half of its crops from outliers of epoch a (or has
no significant source) has appeared.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

EVENTS_A = ("kept", "split", "merged", "dissolved")  # what happened to a cluster of the earlier epoch
EVENTS_B = ("kept", "split", "merged", "appeared")  # how a cluster of the later epoch came to be


@dataclass(frozen=True)
class Lineage:
    """What became of the clusters of epoch a at epoch b.

    flows:    (F, 3) int64 rows (cluster at a, cluster at b, crops), -1 = outliers, largest first
    event_a:  {cluster at a: one of EVENTS_A};  event_b: {cluster at b: one of EVENTS_B}
    counts_a / counts_b: {event: number of clusters}
    size_a / size_b: (num clusters,) crops per cluster at a / at b
    """

    epoch_a: int
    epoch_b: int
    flows: np.ndarray
    event_a: dict[int, str]
    event_b: dict[int, str]
    size_a: np.ndarray
    size_b: np.ndarray
    counts_a: dict[str, int] = field(default_factory=dict)
    counts_b: dict[str, int] = field(default_factory=dict)

    def targets(self, cluster_a: int) -> np.ndarray:
        """(k, 2) rows (cluster at b or -1, crops) where the crops of `cluster_a` went, largest first."""
        rows = self.flows[self.flows[:, 0] == cluster_a]
        return rows[:, 1:]

    def sources(self, cluster_b: int) -> np.ndarray:
        """(k, 2) rows (cluster at a or -1, crops) where the crops of `cluster_b` came from, largest first."""
        rows = self.flows[self.flows[:, 1] == cluster_b]
        return rows[:, [0, 2]]

    def events(self, kind: str, side: str = "a") -> list[int]:
        """Clusters of epoch a (side "a") or b with this event, largest first."""
        events, size = (self.event_a, self.size_a) if side == "a" else (self.event_b, self.size_b)
        chosen = [c for c, e in events.items() if e == kind]
        return sorted(chosen, key=lambda c: (-size[c], c))


def lineage(labels_a: np.ndarray, labels_b: np.ndarray, epoch_a: int = 0, epoch_b: int = 0,
            min_share: float = 0.2) -> Lineage:
    """Flows of crops between the clusters of two epochs and the event of every cluster (module docstring).

    labels_a, labels_b: (N,) int, -1 = outlier, over the same crops in the same order. O(N log N).
    """
    a, b = np.asarray(labels_a, dtype=np.int64), np.asarray(labels_b, dtype=np.int64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"labels of both epochs must be (N,) over the same crops, got {a.shape} and {b.shape}")
    if not 0 < min_share <= 0.5:
        raise ValueError(f"min_share must be in (0, 0.5], got {min_share}")
    num_a, num_b = int(a.max(initial=-1)) + 1, int(b.max(initial=-1)) + 1
    pairs, crops = np.unique(np.stack([a, b], axis=1), axis=0, return_counts=True)
    order = np.lexsort((pairs[:, 1], pairs[:, 0], -crops))
    flows = np.column_stack([pairs[order], crops[order]]).astype(np.int64)
    size_a = np.bincount(a[a >= 0], minlength=num_a)
    size_b = np.bincount(b[b >= 0], minlength=num_b)

    clustered = flows[(flows[:, 0] >= 0) & (flows[:, 1] >= 0)]
    for_a = clustered[clustered[:, 2] >= min_share * size_a[clustered[:, 0]]]  # significant for their A
    for_b = clustered[clustered[:, 2] >= min_share * size_b[clustered[:, 1]]]  # significant for their B
    targets_of_a = np.bincount(for_a[:, 0], minlength=num_a)
    sources_of_b = np.bincount(for_b[:, 1], minlength=num_b)
    outliers_at_b = np.bincount(a[(a >= 0) & (b < 0)], minlength=num_a)
    from_outliers = np.bincount(b[(b >= 0) & (a < 0)], minlength=num_b)
    split_b = set(for_a[targets_of_a[for_a[:, 0]] >= 2, 1].tolist())

    event_a: dict[int, str] = {}
    only_target = {int(r[0]): int(r[1]) for r in for_a if targets_of_a[r[0]] == 1}
    for cluster in range(num_a):
        if 2 * outliers_at_b[cluster] >= size_a[cluster] or targets_of_a[cluster] == 0:
            event_a[cluster] = "dissolved"
        elif targets_of_a[cluster] >= 2:
            event_a[cluster] = "split"
        elif sources_of_b[only_target[cluster]] >= 2:
            event_a[cluster] = "merged"
        else:
            event_a[cluster] = "kept"
    event_b: dict[int, str] = {}
    for cluster in range(num_b):
        if 2 * from_outliers[cluster] >= size_b[cluster] or sources_of_b[cluster] == 0:
            event_b[cluster] = "appeared"
        elif sources_of_b[cluster] >= 2:
            event_b[cluster] = "merged"
        elif cluster in split_b:
            event_b[cluster] = "split"
        else:
            event_b[cluster] = "kept"
    return Lineage(
        epoch_a, epoch_b, flows, event_a, event_b, size_a, size_b,
        counts_a={e: sum(v == e for v in event_a.values()) for e in EVENTS_A},
        counts_b={e: sum(v == e for v in event_b.values()) for e in EVENTS_B},
    )


@dataclass(frozen=True)
class EpochShare:
    """Where a group of crops was at one epoch.

    clusters: (k,) cluster ids holding some of the group, largest share first;  crops: (k,) how many
    cluster_sizes: (k,) the whole size of each of those clusters (purity of the group in it = crops / size)
    camera_pure: (k,) bool, every crop of the group in that cluster comes from one camera
    outliers: crops of the group that were outliers
    """

    epoch: int
    clusters: np.ndarray
    crops: np.ndarray
    cluster_sizes: np.ndarray
    camera_pure: np.ndarray
    outliers: int

    @property
    def num_clusters(self) -> int:
        return len(self.clusters)

    @property
    def purity(self) -> float:
        """Share of the group's largest cluster that belongs to the group (1: the cluster is only them)."""
        return float(self.crops[0] / self.cluster_sizes[0]) if len(self.crops) else 0.0

    @property
    def largest_share(self) -> float:
        """Share of the group in its largest cluster (1: all of them together)."""
        total = int(self.crops.sum()) + self.outliers
        return float(self.crops[0] / total) if len(self.crops) and total else 0.0


def trajectory(labels_by_epoch: dict[int, np.ndarray], members: np.ndarray, camids: np.ndarray) -> list[EpochShare]:
    """Epoch by epoch, the clusters the crops `members` (indices into the train split) were in.

    For one identity, `members` = its crops (`np.flatnonzero(pids == identity)`): "when did identity 17
    get split by camera, and did it ever merge back?" reads off `num_clusters` and `camera_pure`. For one
    cluster, `members` = its crops at the epoch it was chosen: where its crops came from and went.
    """
    members = np.asarray(members, dtype=np.int64)
    camids = np.asarray(camids)
    out = []
    for epoch in sorted(labels_by_epoch):
        labels = np.asarray(labels_by_epoch[epoch])
        mine = labels[members]
        clustered = mine >= 0
        clusters, crops = np.unique(mine[clustered], return_counts=True)
        order = np.lexsort((clusters, -crops))
        clusters, crops = clusters[order], crops[order]
        sizes = np.bincount(labels[labels >= 0], minlength=int(labels.max(initial=-1)) + 1)[clusters]
        pure = np.array([len(np.unique(camids[members[mine == c]])) == 1 for c in clusters], dtype=bool)
        out.append(EpochShare(epoch, clusters, crops, sizes, pure, int((~clustered).sum())))
    return out


def trajectory_story(steps: list[EpochShare]) -> str:
    """One sentence on a trajectory: when the group was first split over camera-pure clusters and
    whether (and when) it came back together in one cluster."""
    if not steps:
        return "no epoch stored"
    split = [s.epoch for s in steps if s.num_clusters >= 2 and s.camera_pure.all()]
    together = [s.epoch for s in steps if s.num_clusters == 1 and s.outliers == 0]
    first, last = steps[0], steps[-1]
    parts = [f"epoch {first.epoch}: {first.num_clusters} cluster(s), {100 * first.largest_share:.0f}% in the largest"]
    if split:
        parts.append(f"split over camera-pure clusters at epoch {split[0]}")
        merged = [e for e in together if e > split[0]]
        parts.append(f"together again from epoch {merged[0]}" if merged else "never together again")
    elif together:
        parts.append(f"in one cluster at epoch {together[0]}")
    parts.append(f"epoch {last.epoch}: {last.num_clusters} cluster(s), {100 * last.largest_share:.0f}% in the largest")
    return "; ".join(parts)


@dataclass(frozen=True)
class CameraPairs:
    """Per ordered camera pair (a, b), counted over pairs of distinct crops (a != b: crops of a with crops
    of b; a == b: ordered pairs within camera a).

    together:   (C, C) pairs in the same cluster
    correct:    (C, C) of those, pairs of the same person
    true_pairs: (C, C) pairs of the same person (whatever their clusters)
    recall = correct / true_pairs: how often a person's crops from a and b are clustered together
    precision = correct / together: how often crops of a and b clustered together are one person
    """

    together: np.ndarray
    correct: np.ndarray
    true_pairs: np.ndarray

    @property
    def wrong(self) -> np.ndarray:
        return self.together - self.correct

    @property
    def recall(self) -> np.ndarray:
        return _ratio(self.correct, self.true_pairs)

    @property
    def precision(self) -> np.ndarray:
        return _ratio(self.correct, self.together)

    def cross_camera_recall(self) -> float:
        """Recall over all pairs of different cameras: the thing camera-aware proxies are meant to raise."""
        off = ~np.eye(len(self.correct), dtype=bool)
        total = self.true_pairs[off].sum()
        return float(self.correct[off].sum() / total) if total else float("nan")

    def same_camera_recall(self) -> float:
        on = np.eye(len(self.correct), dtype=bool)
        total = self.true_pairs[on].sum()
        return float(self.correct[on].sum() / total) if total else float("nan")


def camera_pairs(labels: np.ndarray, pids: np.ndarray, camids: np.ndarray, num_cameras: int) -> CameraPairs:
    """Same-cluster and same-person pair counts per camera pair, from group sizes: O(N), no pair loop.

    With n[g, a] = crops of group g in camera a, the ordered pairs of distinct crops of one group across
    cameras a, b number n[g, a] n[g, b] (a != b) and n[g, a] (n[g, a] - 1) (a == b); summing over groups
    gives (N^T N - diag(sum n)). Groups: clusters (together), (cluster, person) (correct), persons (true).
    """
    labels, pids, camids = (np.asarray(x, dtype=np.int64) for x in (labels, pids, camids))
    clustered = labels >= 0

    def pair_counts(groups: np.ndarray, keep: np.ndarray) -> np.ndarray:
        _, group = np.unique(groups[keep], return_inverse=True, axis=0)
        n = sp.csr_matrix((np.ones(int(keep.sum())), (group.ravel(), camids[keep])),
                          shape=(int(group.max(initial=-1)) + 1, num_cameras))
        gram = (n.T @ n).toarray()
        return (gram - np.diag(np.asarray(n.sum(0)).ravel())).astype(np.int64)

    everyone = np.ones(len(labels), dtype=bool)
    return CameraPairs(
        together=pair_counts(labels, clustered),
        correct=pair_counts(np.stack([labels, pids], axis=1), clustered),
        true_pairs=pair_counts(pids, everyone),
    )


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, numerator / np.maximum(denominator, 1), np.nan)
