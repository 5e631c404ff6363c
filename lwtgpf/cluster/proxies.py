"""Camera-aware proxies (SPEC section 4.4) and their L2-normalised centroids (section 4.5).

A proxy is a (cluster, camera) pair that occurs among the clustered crops; proxy ids run cluster by
cluster and, inside a cluster, camera by camera (the sorted order of the pairs). Outliers (-1) get
no proxy. With `camera_aware=False` (Cluster Contrast) every cluster is one proxy; its
`camera_of_proxy` is then the cluster's most frequent camera (smallest id on a tie), so that the
tables keep one layout and the proxy memory accepts them.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CameraProxies:
    """Proxy tables of one epoch (P proxies, C clusters, `num_cameras` cameras).

    proxy_of_sample:    (N,) int64 proxy id of each crop, -1 for outliers
    cluster_of_proxy:   (P,) int64
    camera_of_proxy:    (P,) int64
    proxies_of_cluster: C arrays of proxy ids (ascending), one per cluster
    proxies_of_camera:  `num_cameras` arrays of proxy ids (ascending); empty for a camera without one
    """

    proxy_of_sample: np.ndarray
    cluster_of_proxy: np.ndarray
    camera_of_proxy: np.ndarray
    proxies_of_cluster: list[np.ndarray]
    proxies_of_camera: list[np.ndarray]
    camera_aware: bool

    @property
    def num_proxies(self) -> int:
        return len(self.cluster_of_proxy)

    @property
    def num_clusters(self) -> int:
        return len(self.proxies_of_cluster)

    @property
    def num_cameras(self) -> int:
        return len(self.proxies_of_camera)


def build_camera_proxies(
    labels: np.ndarray, camids: np.ndarray, num_cameras: int, camera_aware: bool = True
) -> CameraProxies:
    """Proxies from cluster labels (N,) (-1 = outlier, clusters 0..C-1) and 0-based cameras (N,)."""
    labels = _int_array(labels, "labels")
    camids = _int_array(camids, "camids")
    if labels.shape != camids.shape:
        raise ValueError(f"labels {labels.shape} and camids {camids.shape} must have the same length")
    if not isinstance(num_cameras, (int, np.integer)) or num_cameras < 1:
        raise ValueError(f"num_cameras must be a positive integer, got {num_cameras!r}")
    if len(camids) and (camids.min() < 0 or camids.max() >= num_cameras):
        raise ValueError(f"camids must lie in [0, {num_cameras}), got {camids.min()}..{camids.max()}")
    if len(labels) and labels.min() < -1:
        raise ValueError(f"labels must be -1 (outlier) or a cluster id >= 0, got {labels.min()}")
    num_clusters = int(labels.max()) + 1 if len(labels) else 0
    clustered = labels >= 0
    present = np.bincount(labels[clustered], minlength=num_clusters) > 0
    if not present.all():
        raise ValueError(f"cluster ids must be contiguous 0..{num_clusters - 1}; missing {np.flatnonzero(~present)[:10].tolist()}")

    if camera_aware:
        pair = labels[clustered] * num_cameras + camids[clustered]
        pairs, proxy_of_clustered = np.unique(pair, return_inverse=True)  # sorted: cluster, then camera
        cluster_of_proxy, camera_of_proxy = pairs // num_cameras, pairs % num_cameras
    else:
        proxy_of_clustered = labels[clustered]
        cluster_of_proxy = np.arange(num_clusters)
        camera_of_proxy = _majority_camera(labels[clustered], camids[clustered], num_clusters, num_cameras)
    proxy_of_sample = np.full(len(labels), -1, dtype=np.int64)
    proxy_of_sample[clustered] = proxy_of_clustered
    proxies = CameraProxies(
        proxy_of_sample=proxy_of_sample,
        cluster_of_proxy=cluster_of_proxy.astype(np.int64),
        camera_of_proxy=camera_of_proxy.astype(np.int64),
        proxies_of_cluster=_group(cluster_of_proxy, num_clusters),
        proxies_of_camera=_group(camera_of_proxy, num_cameras),
        camera_aware=camera_aware,
    )
    _log_edge_cases(proxies, len(labels), num_cameras)
    return proxies


def proxy_centroids(features: torch.Tensor, proxy_of_sample: np.ndarray | torch.Tensor, num_proxies: int | None = None) -> torch.Tensor:
    """L2-normalised mean feature of each proxy: (N, D) -> (P, D), or (F, N, D) -> (F, P, D).

    Outliers (-1) are ignored; P = num_proxies (default: largest id + 1). Every proxy needs a crop.
    """
    squeeze = features.dim() == 2
    feats = features.unsqueeze(0) if squeeze else features
    if feats.dim() != 3:
        raise ValueError(f"features must be (N, D) or (F, N, D), got shape {tuple(features.shape)}")
    ids = torch.as_tensor(proxy_of_sample, dtype=torch.long, device=feats.device)
    if ids.shape != (feats.shape[1],):
        raise ValueError(f"proxy_of_sample must have shape ({feats.shape[1]},), got {tuple(ids.shape)}")
    if num_proxies is None:
        num_proxies = int(ids.max()) + 1 if len(ids) else 0
    kept = ids >= 0
    counts = torch.bincount(ids[kept], minlength=num_proxies)
    if len(counts) > num_proxies or (num_proxies and int(counts.min()) == 0):
        raise ValueError(f"every proxy id must lie in [0, {num_proxies}) and own at least one crop")
    sums = feats.new_zeros(feats.shape[0], num_proxies, feats.shape[2])
    sums.index_add_(1, ids[kept], feats[:, kept])
    centres = F.normalize(sums / counts.to(sums.dtype)[None, :, None], dim=-1)
    return centres[0] if squeeze else centres


def _int_array(values, name: str) -> np.ndarray:
    array = values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values)
    if array.ndim != 1 or (array.size and not np.issubdtype(array.dtype, np.integer)):
        raise ValueError(f"{name} must be a 1-D integer array, got dtype {array.dtype} and shape {array.shape}")
    return array.astype(np.int64)


def _majority_camera(labels: np.ndarray, camids: np.ndarray, num_clusters: int, num_cameras: int) -> np.ndarray:
    counts = np.zeros((num_clusters, num_cameras), dtype=np.int64)
    np.add.at(counts, (labels, camids), 1)
    return counts.argmax(axis=1)  # first maximum: the smallest camera id on a tie


def _group(owner: np.ndarray, num_groups: int) -> list[np.ndarray]:
    """Proxy ids grouped by owner (cluster or camera): list of `num_groups` ascending int64 arrays."""
    if num_groups == 0:
        return []
    order = np.argsort(owner, kind="stable")
    bounds = np.cumsum(np.bincount(owner, minlength=num_groups))[:-1]
    return [group.astype(np.int64) for group in np.split(order, bounds)]


def _log_edge_cases(proxies: CameraProxies, num_samples: int, num_cameras: int) -> None:
    if proxies.num_clusters == 0:
        log.warning("no clusters: all %d crops are outliers, so there is no proxy this epoch", num_samples)
        return
    if num_cameras == 1:
        log.info("one camera only: camera-aware proxies coincide with the %d clusters", proxies.num_clusters)
        return
    empty = [cam for cam, ids in enumerate(proxies.proxies_of_camera) if len(ids) == 0]
    if empty and proxies.camera_aware:
        log.warning("cameras %s have no proxy this epoch (no clustered crop)", empty)
