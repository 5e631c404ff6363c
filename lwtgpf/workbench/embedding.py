"""2-D UMAP of one epoch: the train crops and the camera proxies' centroids, embedded together.

The kNN graph comes from `lwtgpf.cluster.nearest_neighbours` (exact, the clustering's own search)
instead of umap-learn's approximate NN-descent: the same neighbours the pseudo labels see, and a
session's first fit does not compile NN-descent's numba kernels (bench/bench_widgets.py times both).
Seeded, so an epoch's layout is reproducible. A fit costs seconds at Market size, so the workbench
computes it once per epoch and keeps it in the run folder (`save_embedding` / `load_embedding`).
"""
from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from lwtgpf.cluster import nearest_neighbours

UMAP_EPOCHS = 200  # umap-learn's own choice for large inputs; its 500 for small ones buys little here


@dataclass(frozen=True)
class Embedding:
    """crops: (N, 2) float32, row i = train crop i; proxies: (P, 2) float32, row p = proxy p."""

    crops: np.ndarray
    proxies: np.ndarray


def umap_embedding(crops: torch.Tensor, centres: torch.Tensor, n_neighbors: int = 15, n_epochs: int = UMAP_EPOCHS,
                   seed: int = 0, knn_backend: str = "auto") -> Embedding:
    """One cosine UMAP fit of L2-normalised crops (N, D) and proxy centroids (P, D) together."""
    try:
        import umap
    except ImportError as error:
        raise ImportError("the UMAP view needs umap-learn: pip install 'lwtgpf[notebooks]'") from error
    points = F.normalize(torch.cat([crops.float(), centres.float()]), dim=1)
    if len(points) < 3:
        raise ValueError(f"UMAP needs at least 3 points, got {len(points)}")
    k = min(n_neighbors, len(points))
    neighbours = nearest_neighbours(points, k, backend=knn_backend)  # itself first, as umap-learn expects
    cosine_distance = (neighbours.sqdist.cpu().numpy() / 2).clip(min=0).astype(np.float32)  # |a-b|^2 = 2 - 2cos
    reducer = umap.UMAP(n_neighbors=k, n_epochs=n_epochs, random_state=seed, metric="cosine", n_jobs=1,
                        precomputed_knn=(neighbours.indices.cpu().numpy(), cosine_distance, None))
    # umap resets numba's thread count when done, and numba's OpenMP layer shares it with torch: without
    # the restore, torch would run on every core afterwards (OMP_NUM_THREADS=1 silently undone).
    torch_threads = torch.get_num_threads()
    try:
        with warnings.catch_warnings():  # it warns that transform() needs its own index: never called here
            warnings.filterwarnings("ignore", message=r"precomputed_knn\[2\]", category=UserWarning)
            xy = reducer.fit_transform(points.numpy()).astype(np.float32)
    finally:
        torch.set_num_threads(torch_threads)
    return Embedding(crops=xy[: len(crops)], proxies=xy[len(crops):])


def save_embedding(path: Path, embedding: Embedding) -> None:
    """Keep an epoch's embedding (atomic .npz) so that going back to that epoch costs a file read."""
    from lwtgpf.fileio import atomic_write

    buffer = io.BytesIO()
    np.savez(buffer, crops=embedding.crops, proxies=embedding.proxies)
    atomic_write(path, lambda stream: stream.write(buffer.getvalue()))


def load_embedding(path: Path, num_crops: int, num_proxies: int) -> Embedding | None:
    """The embedding saved at `path`, or None when missing or of other sizes (then it is recomputed)."""
    if not path.is_file():
        return None
    with np.load(path) as saved:
        crops, proxies = saved["crops"], saved["proxies"]
    if crops.shape != (num_crops, 2) or proxies.shape != (num_proxies, 2):
        return None
    return Embedding(crops, proxies)
