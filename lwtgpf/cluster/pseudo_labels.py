"""The whole pseudo-labelling step of one epoch, one function: the trainer, the CLI and the
cluster-explorer widget all call `pseudo_label`.

features (N, D) -> exact kNN -> sparse k-reciprocal Jaccard distance -> DBSCAN -> camera-aware
proxies (-> quality row when the true identities are known).
"""
from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np
import scipy.sparse as sp
import torch

from lwtgpf.config import ClusterConfig

from .dbscan import dbscan
from .jaccard import jaccard_from_neighbours
from .knn import nearest_neighbours
from .proxies import CameraProxies, build_camera_proxies
from .quality import label_quality

log = logging.getLogger(__name__)
NORM_TOLERANCE = 1e-3  # features must be L2-normalised: the Jaccard weights use 2 - 2 f_i.f_j


@dataclass
class PseudoLabels:
    """One epoch's clustering.

    labels:   (N,) int64 cluster of each crop, -1 for outliers
    proxies:  the camera-aware (or per-cluster) proxy tables
    distance: (N, N) sparse Jaccard distance (see `jaccard_distance`), None when labels were given
    timings:  seconds per phase: knn, jaccard, dbscan, proxies (+ quality)
    quality:  `label_quality` row when true ids were given, else None
    """

    labels: np.ndarray
    proxies: CameraProxies
    distance: sp.csr_matrix | None
    timings: dict[str, float] = field(default_factory=dict)
    quality: dict[str, float] | None = None

    @property
    def num_clusters(self) -> int:
        return self.proxies.num_clusters

    def log_row(self) -> dict[str, Any]:
        """Flat numbers for the epoch log: counts, the quality row if any, and `sec_<phase>` timings."""
        row: dict[str, Any] = {
            "num_clusters": self.proxies.num_clusters,
            "num_proxies": self.proxies.num_proxies,
            "outlier_fraction": float((self.labels < 0).mean()) if len(self.labels) else 0.0,
        }
        row.update(self.quality or {})
        row.update({f"sec_{phase}": round(sec, 3) for phase, sec in self.timings.items()})
        return row


def pseudo_label(
    features: torch.Tensor | np.ndarray | None,
    camids: np.ndarray,
    cfg_cluster: ClusterConfig,
    num_cameras: int,
    true_pids: np.ndarray | None = None,
    camera_aware: bool = True,
    given_labels: np.ndarray | None = None,
    distance: sp.csr_matrix | None = None,
) -> PseudoLabels:
    """Cluster L2-normalised global features (N, D) into pseudo identities and camera-aware proxies.

    camids: (N,) 0-based camera of each crop. true_pids: (N,) optional, for the quality row only.
    camera_aware=False: one proxy per cluster (Cluster Contrast). given_labels: (N,) labels to use
    instead of clustering (the supervised methods); the distance is then not computed and features may
    be None.
    distance: the (N, N) Jaccard distance of these features at cfg_cluster's k1 / k2, computed before
    (the workbench re-clusters cached features with other eps / min_samples); kNN and Jaccard are skipped.
    """
    camids = np.asarray(camids)
    timings: dict[str, float] = {}
    if given_labels is None:
        if features is None:
            raise ValueError("pseudo_label needs features unless given_labels are passed")
        x = features if isinstance(features, torch.Tensor) else torch.from_numpy(np.asarray(features))
        x = x.detach()
        if x.dim() != 2 or x.shape[0] != len(camids):
            raise ValueError(f"features must be (N, D) with N = len(camids) = {len(camids)}, got {tuple(x.shape)}")
        _check_normalised(x)
        if not cfg_cluster.eps < 1:
            raise ValueError(f"cluster.eps must be < 1 for the Jaccard distance (1 = nothing shared), got {cfg_cluster.eps}")
        if distance is None:
            with _timed(timings, "knn"):
                neighbours = nearest_neighbours(x, cfg_cluster.k1, backend=cfg_cluster.knn_backend)
            with _timed(timings, "jaccard"):
                distance = jaccard_from_neighbours(x, neighbours, cfg_cluster.k1, cfg_cluster.k2)
            del neighbours
        elif distance.shape != (len(camids), len(camids)):
            raise ValueError(f"distance must be ({len(camids)}, {len(camids)}) to match the features, "
                             f"got {distance.shape}")
        with _timed(timings, "dbscan"):
            labels = dbscan(distance, cfg_cluster.eps, cfg_cluster.min_samples)
    else:
        labels = np.asarray(given_labels).astype(np.int64)
        if labels.shape != camids.shape:
            raise ValueError(f"given_labels must have shape {camids.shape}, got {labels.shape}")
    with _timed(timings, "proxies"):
        proxies = build_camera_proxies(labels, camids, num_cameras, camera_aware=camera_aware)
    quality = None
    if true_pids is not None:
        with _timed(timings, "quality"):
            quality = label_quality(labels, true_pids, camids, proxies)
    log.info(
        "pseudo labels: %d clusters, %d proxies, %.1f%% outliers (%s)",
        proxies.num_clusters, proxies.num_proxies, 100 * float((labels < 0).mean()),
        ", ".join(f"{k} {v:.2f}s" for k, v in timings.items()),
    )
    return PseudoLabels(labels, proxies, distance, timings, quality)


def _check_normalised(x: torch.Tensor) -> None:
    norms = torch.linalg.vector_norm(x.float(), dim=1)
    worst = int(torch.argmax((norms - 1).abs()))
    if abs(float(norms[worst]) - 1) > NORM_TOLERANCE:
        raise ValueError(
            f"features must be L2-normalised (the Jaccard weights use 2 - 2 f_i.f_j); row {worst} has norm "
            f"{float(norms[worst]):.4f}"
        )


@contextmanager
def _timed(timings: dict[str, float], phase: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    timings[phase] = time.perf_counter() - start
