"""Pseudo labels at scale (SPEC section 4): exact kNN -> sparse k-reciprocal Jaccard distance ->
DBSCAN -> camera-aware proxies, plus label-quality metrics. `pseudo_label` runs the whole step."""
from .dbscan import dbscan
from .jaccard import jaccard_distance, jaccard_from_neighbours
from .knn import BACKENDS as KNN_BACKENDS
from .knn import Neighbours, nearest_neighbours
from .proxies import CameraProxies, build_camera_proxies, proxy_centroids
from .pseudo_labels import PseudoLabels, pseudo_label
from .quality import label_quality

__all__ = [
    "KNN_BACKENDS",
    "CameraProxies",
    "Neighbours",
    "PseudoLabels",
    "build_camera_proxies",
    "dbscan",
    "jaccard_distance",
    "jaccard_from_neighbours",
    "label_quality",
    "nearest_neighbours",
    "proxy_centroids",
    "pseudo_label",
]
