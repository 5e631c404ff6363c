"""How good are this epoch's pseudo labels? One row of numbers for the epoch log (needs true ids).

Everything is computed from contingency tables (cluster x identity counts), never from the N^2 pairs.
"""
from __future__ import annotations

import numpy as np
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from sklearn.metrics.cluster import contingency_matrix

from .proxies import CameraProxies


def label_quality(
    labels: np.ndarray, true_pids: np.ndarray, camids: np.ndarray, proxies: CameraProxies | None = None
) -> dict[str, float]:
    """Quality row of pseudo labels (N,) (-1 = outlier) against true identities and cameras (N,).

    num_clusters, num_true_ids   clusters found vs distinct true identities among the N crops
    outlier_fraction             share of crops labelled -1
    nmi, ari                     sklearn NMI (arithmetic mean) and ARI over all N crops, each outlier
                                 counted as a cluster of its own (dropping a crop is not free)
    pairwise_precision / _recall / _f
                                 over unordered pairs of distinct non-outlier crops: precision = pairs
                                 in one cluster that share the identity / pairs in one cluster; recall =
                                 those / pairs that share the identity; F = harmonic mean (NaN when a
                                 denominator is 0)
    camera_split_rate            among the identities whose crops (all N) come from >= 2 cameras and that
                                 have at least one clustered crop: the share for which no cluster holds
                                 that identity's crops from two different cameras, i.e. clustering
                                 never linked the person across cameras (NaN without such identities)
    camera_pure_cluster_fraction share of clusters whose crops all come from one camera
    cluster_purity               clustered crops that belong to their cluster's majority identity /
                                 clustered crops
    num_proxies, proxy_purity    the same purity per proxy (only when `proxies` is given)
    """
    labels, true_pids, camids = (np.asarray(a).astype(np.int64) for a in (labels, true_pids, camids))
    n = len(labels)
    if n == 0 or labels.shape != (n,) or true_pids.shape != (n,) or camids.shape != (n,):
        raise ValueError(
            f"labels, true_pids and camids must be non-empty 1-D arrays of one length, got shapes "
            f"{labels.shape}, {true_pids.shape}, {camids.shape}"
        )
    clustered = labels >= 0
    row: dict[str, float] = {
        "num_clusters": int(labels.max()) + 1 if clustered.any() else 0,
        "num_true_ids": len(np.unique(true_pids)),
        "outlier_fraction": float(1.0 - clustered.mean()),
    }
    singletons = np.where(clustered, labels, labels.max() + 1 + np.arange(n))
    row["nmi"] = float(normalized_mutual_info_score(true_pids, singletons))
    row["ari"] = float(adjusted_rand_score(true_pids, singletons))
    row.update(_pairwise_scores(labels[clustered], true_pids[clustered]))
    row["camera_split_rate"] = _camera_split_rate(labels, true_pids, camids)
    row["camera_pure_cluster_fraction"] = _camera_pure_fraction(labels[clustered], camids[clustered])
    row["cluster_purity"] = _purity(labels[clustered], true_pids[clustered])
    if proxies is not None:
        if proxies.proxy_of_sample.shape != (n,):
            raise ValueError(f"proxies cover {len(proxies.proxy_of_sample)} crops, labels {n}")
        kept = proxies.proxy_of_sample >= 0
        row["num_proxies"] = proxies.num_proxies
        row["proxy_purity"] = _purity(proxies.proxy_of_sample[kept], true_pids[kept])
    return row


def _pairs(counts: np.ndarray) -> float:
    counts = counts.astype(np.float64)
    return float((counts * (counts - 1) / 2).sum())


def _pairwise_scores(labels: np.ndarray, pids: np.ndarray) -> dict[str, float]:
    if len(labels) == 0:
        return {"pairwise_precision": float("nan"), "pairwise_recall": float("nan"), "pairwise_f": float("nan")}
    table = contingency_matrix(labels, pids, sparse=True)  # (clusters, identities) crop counts
    same_both = _pairs(table.data)
    same_cluster = _pairs(np.asarray(table.sum(axis=1)).ravel())
    same_identity = _pairs(np.asarray(table.sum(axis=0)).ravel())
    precision = same_both / same_cluster if same_cluster else float("nan")
    recall = same_both / same_identity if same_identity else float("nan")
    f = 2 * precision * recall / (precision + recall) if precision + recall > 0 else float("nan")
    return {"pairwise_precision": precision, "pairwise_recall": recall, "pairwise_f": f}


def _camera_split_rate(labels: np.ndarray, pids: np.ndarray, camids: np.ndarray) -> float:
    _, person = np.unique(pids, return_inverse=True)  # identities as 0..I-1
    num_people, num_cams = person.max() + 1, camids.max() + 1
    cameras_of_person = np.bincount(np.unique(person * num_cams + camids) // num_cams, minlength=num_people)
    clustered = labels >= 0
    # Distinct cameras of each (cluster, person) pair among the clustered crops.
    triples = np.unique((labels[clustered] * num_people + person[clustered]) * num_cams + camids[clustered])
    pairs, cameras_in_pair = np.unique(triples // num_cams, return_counts=True)
    most_linked = np.zeros(num_people, dtype=np.int64)  # max over clusters; 0 = never clustered
    np.maximum.at(most_linked, pairs % num_people, cameras_in_pair)
    eligible = (cameras_of_person >= 2) & (most_linked > 0)
    if not eligible.any():
        return float("nan")
    return float((most_linked[eligible] == 1).mean())


def _camera_pure_fraction(labels: np.ndarray, camids: np.ndarray) -> float:
    if len(labels) == 0:
        return float("nan")
    table = contingency_matrix(labels, camids, sparse=True)
    cameras_per_cluster = np.diff(table.tocsr().indptr)
    return float((cameras_per_cluster == 1).mean())


def _purity(groups: np.ndarray, pids: np.ndarray) -> float:
    if len(groups) == 0:
        return float("nan")
    table = contingency_matrix(groups, pids, sparse=True).tocsr()
    return float(table.max(axis=1).toarray().sum() / len(groups))
