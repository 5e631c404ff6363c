"""What the workbench shows of one run: `RunState`, from a live Trainer or from a finished run folder.

    state = RunState.from_trainer(trainer)          # live: follows trainer.epoch / features / pseudo
    state = RunState.from_run_dir("runs/demo")      # config.yaml + log.json + checkpoints/last.pt

Everything a widget or a static figure needs comes from here, as plain arrays and dataclasses:

    state.history                    per-epoch log rows (the keys of log.json)
    state.train_features()           (N, F, D) train features (the trainer's, else extracted once)
    state.pseudo_labels()            PseudoLabels of this epoch (the trainer's, else clustered once)
    state.recluster(eps=..., ...)    other DBSCAN / Jaccard settings on the cached features (`Reclusterer`)
    state.embedding()                2-D UMAP of the crops and proxy centroids (`Embedding`)
    state.attention(split, index)    a crop and the attention maps of every block (`CropAttention`)
    state.rank_list(query, k)        a query's top-k gallery crops, correct / wrong (`RankList`)
    state.ranking(k)                 evaluate_extracted(..., return_topk=k) of every query (mAP, per-query AP)
    state.crop(record)               the crop as an (H, W, 3) uint8 array

Helpers of their own: `Reclusterer` (re-clustering with cached kNN / Jaccard), `umap_embedding`,
`cluster_summaries` (clusters ordered by purity).

Expensive results are computed on first use and cached per *version* of the state: the completed epoch
(and, live, the trainer's feature and pseudo-label objects themselves), so after `trainer.step()` the
next call recomputes and every later call of the same epoch is a dictionary lookup. A run folder's state can
follow a run still being written: `sync()` reloads the checkpoint when it changed on disk.

Where the numbers come from in a run folder: the folder keeps the model of the last checkpoint, not the
features or pseudo labels of its epochs, so `train_features()` and `pseudo_labels()` are those of that
model (extracted and clustered here, with the run's own config), while `history` holds what the trainer
logged while it ran. A live trainer's `features` / `pseudo` are those of the START of its last epoch
(they are what that epoch trained on).

This module is core: it never imports ipywidgets, IPython or matplotlib.
"""
from __future__ import annotations

import json
import time
import warnings
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Hashable, Iterator

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from lwtgpf.cluster import (
    CameraProxies,
    Neighbours,
    PseudoLabels,
    jaccard_from_neighbours,
    nearest_neighbours,
    proxy_centroids,
    pseudo_label,
)
from lwtgpf.config import ClusterConfig, Config, load_config
from lwtgpf.data import Record, ReidDataset, build_dataset, build_test_transform, read_image
from lwtgpf.engine.checkpoint import load_checkpoint
from lwtgpf.engine.evaluate import evaluate_extracted
from lwtgpf.engine.extract import extract_features
from lwtgpf.engine.trainer import METHODS
from lwtgpf.models import build_model
from lwtgpf.models.lewinvit import AttentionMap

SPLITS = ("train", "query", "gallery")
UMAP_EPOCHS = 200  # umap-learn's own choice for large inputs; its 500 for small ones buys little here


# ---------------------------------------------------------------------------------------------------
# Results handed to the views


@dataclass(frozen=True)
class Embedding:
    """2-D UMAP of one epoch: the train crops and the proxy centroids, embedded together.

    crops:   (N, 2) float32, row i = train crop i
    proxies: (P, 2) float32, row p = proxy p of `pseudo.proxies` (L2-normalised centroid of its crops)
    """

    crops: np.ndarray
    proxies: np.ndarray


@dataclass(frozen=True)
class CropAttention:
    """One crop as the model sees it and the attention maps of every window-attention block.

    image: (H, W, 3) uint8, the crop resized to the model's input size (cfg.data.height x width)
    maps:  one AttentionMap per (stage, block), batch of 1, in `blocks` order
    """

    record: Record
    image: np.ndarray
    blocks: tuple[tuple[int, int], ...]
    maps: tuple[AttentionMap, ...]

    def map(self, stage: int, block: int) -> AttentionMap:
        if (stage, block) not in self.blocks:
            raise ValueError(f"no block ({stage}, {block}); this model has {list(self.blocks)}")
        return self.maps[self.blocks.index((stage, block))]


@dataclass(frozen=True)
class RankList:
    """A query and its first k gallery crops after the protocol drops same-person same-camera crops.

    gallery_index: (k,) int64 indices into dataset.gallery (fewer than k when the gallery is short)
    distance:      (k,) float32 squared Euclidean distance between unit features (2 - 2 cos)
    correct:       (k,) bool, same person as the query
    average_precision: the query's AP (NaN when the gallery has no true match of it)
    """

    query_index: int
    query: Record
    gallery_index: np.ndarray
    gallery: tuple[Record, ...]
    distance: np.ndarray
    correct: np.ndarray
    average_precision: float


@dataclass(frozen=True)
class ClusterSummary:
    """One pseudo cluster: its crops (indices into the train split) and how pure it is."""

    cluster: int
    members: np.ndarray
    purity: float  # share of its crops that belong to its most frequent true identity
    num_identities: int
    num_cameras: int


# ---------------------------------------------------------------------------------------------------
# Re-clustering cached features


class Reclusterer:
    """The pseudo-labelling step of `lwtgpf.cluster` on one fixed feature set, with other settings.

    kNN lists are cached per k1 and Jaccard distances per (k1, k2), so moving eps or min_samples only
    reruns DBSCAN, the proxies and the quality row (milliseconds), and k2 reuses the kNN of its k1.
    The result is `pseudo_label` itself, given the cached distance (same kNN, same
    Jaccard, same DBSCAN); `timings` holds only the phases that actually ran.

    features: (N, D) L2-normalised; camids, true_pids: (N,)
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
        self._neighbours: _Lru[int, Neighbours] = _Lru(keep)
        self._distances: _Lru[tuple[int, int], sp.csr_matrix] = _Lru(keep)

    def distance(self, k1: int, k2: int, timings: dict[str, float] | None = None) -> sp.csr_matrix:
        """(N, N) sparse Jaccard distance for (k1, k2), from the caches when possible."""
        timings = {} if timings is None else timings
        key = (int(k1), int(k2))
        if key not in self._distances:
            if key[0] not in self._neighbours:
                with _timed(timings, "knn"):
                    self._neighbours[key[0]] = nearest_neighbours(self.features, key[0], backend=self.knn_backend)
            with _timed(timings, "jaccard"):
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


# ---------------------------------------------------------------------------------------------------
# The state of one run


class RunState:
    """What the workbench shows of one run, from a live Trainer or from a finished run folder.

    Build it with `from_trainer` or `from_run_dir`. Attributes: cfg, dataset, model (eval mode for
    every computation here), device, run_dir (None for an in-memory trainer), trainer (None for a folder).
    """

    def __init__(self, cfg: Config, dataset: ReidDataset, model: torch.nn.Module, device: torch.device,
                 *, trainer: Any = None, run_dir: Path | None = None, epoch: int = 0,
                 history: list[dict[str, Any]] | None = None):
        self.cfg = cfg
        self.dataset = dataset
        self.model = model
        self.device = torch.device(device)
        self.trainer = trainer
        self.run_dir = run_dir
        self._epoch = epoch
        self._history = history or []
        self._checkpoint_stamp: float | None = None
        self._cache: dict[Hashable, Any] = {}
        self._cache_version: tuple | None = None
        self.train_pids = np.array([r.pid for r in dataset.train], dtype=np.int64)
        self.train_camids = np.array([r.camid for r in dataset.train], dtype=np.int64)

    # ---- construction --------------------------------------------------------------------------
    @classmethod
    def from_trainer(cls, trainer) -> "RunState":
        """Live view of `trainer` (an lwtgpf.engine.trainer.Trainer); follows it as it steps."""
        return cls(trainer.cfg, trainer.dataset, trainer.model, trainer.device, trainer=trainer,
                   run_dir=trainer.run_dir)

    @classmethod
    def from_run_dir(cls, run_dir: str | Path, device: str | torch.device = "cpu",
                     data_root: str | Path | None = None) -> "RunState":
        """A run folder written by the Trainer: config.yaml, checkpoints/last.pt and log.json.

        data_root: where the dataset lives when it moved since the run (default: the run's data.root).
        """
        run_dir = Path(run_dir)
        for name in ("config.yaml", "checkpoints/last.pt"):
            if not (run_dir / name).is_file():
                raise FileNotFoundError(
                    f"{run_dir} is not a finished run folder: {run_dir / name} is missing (expected config.yaml, "
                    "log.json and checkpoints/last.pt, as `lwtgpf train --out` writes them)")
        cfg = load_config(run_dir / "config.yaml")
        if data_root is not None:
            cfg.data.root = str(data_root)
        dataset = build_dataset(cfg.data.dataset, cfg.data.root)
        device = torch.device(device)
        model = build_model(cfg, num_cameras=dataset.num_cameras).to(device).eval()
        state = cls(cfg, dataset, model, device, run_dir=run_dir)
        state._load_checkpoint()
        return state

    def _load_checkpoint(self) -> None:
        path = self.run_dir / "checkpoints" / "last.pt"
        stamp = path.stat().st_mtime
        checkpoint = load_checkpoint(path, map_location=self.device)
        self.model.load_state_dict(checkpoint["model"])
        self.model.eval()
        self._epoch = int(checkpoint["epoch"])
        log_path = self.run_dir / "log.json"
        history = json.loads(log_path.read_text()) if log_path.is_file() else json.loads(checkpoint["history"])
        if not isinstance(history, list):
            raise ValueError(f"{log_path}: expected a list of per-epoch rows, got {type(history).__name__}")
        self._history = history
        self._checkpoint_stamp = stamp

    def sync(self) -> bool:
        """Catch up with the run: a folder reloads its checkpoint if it changed on disk. True if it did."""
        if self.trainer is not None or self.run_dir is None:
            return False
        if (self.run_dir / "checkpoints" / "last.pt").stat().st_mtime == self._checkpoint_stamp:
            return False
        self._load_checkpoint()
        return True

    # ---- what the run logged ---------------------------------------------------------------------
    @property
    def epoch(self) -> int:
        """Completed epochs (live: the trainer's)."""
        return self.trainer.epoch if self.trainer is not None else self._epoch

    @property
    def history(self) -> list[dict[str, Any]]:
        return self.trainer.history if self.trainer is not None else self._history

    @property
    def source(self) -> str:
        """A short name of where this state comes from, for figure titles."""
        where = "live trainer" if self.trainer is not None else "run"
        return f"{where} {self.run_dir.name}" if self.run_dir is not None else where

    @property
    def camera_aware(self) -> bool:
        return METHODS[self.cfg.method].camera_aware

    # ---- per-epoch cache -----------------------------------------------------------------------
    def _version(self) -> tuple:
        """What the cache depends on. Live: the epoch and the trainer's feature / pseudo-label objects
        themselves (compared by identity: a manual `trainer.cluster()` mid-epoch invalidates too)."""
        if self.trainer is not None:
            return self.trainer.epoch, self.trainer.features, self.trainer.pseudo
        return self._epoch, self._checkpoint_stamp

    def _cached(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        version = self._version()
        if self._cache_version is None or not all(map(_same, version, self._cache_version)):
            self._cache.clear()
            self._cache_version = version
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    # ---- features and pseudo labels ----------------------------------------------------------------
    def train_features(self) -> torch.Tensor:
        """(N, F, D) L2-normalised train features, F = 1 + parts (1 for global-only methods)."""
        if self.trainer is not None and self.trainer.features is not None:
            return self.trainer.features
        return self._cached("train_features", self._extract_train_features)

    def _extract_train_features(self) -> torch.Tensor:
        feats = extract_features(
            self.model, self.dataset.train, build_test_transform(self.cfg.data), kind="all",
            batch_size=self.cfg.eval.batch_size, workers=self.cfg.data.workers, device=self.device,
            desc="workbench extract",
        )
        return feats if METHODS[self.cfg.method].use_parts else feats[:, :1]

    def pseudo_labels(self) -> PseudoLabels:
        """This epoch's pseudo labels: the trainer's, else `pseudo_label` with the run's cluster config."""
        if self.trainer is not None and self.trainer.pseudo is not None:
            return self.trainer.pseudo
        return self._cached("pseudo_labels", lambda: pseudo_label(
            self.train_features()[:, 0], self.train_camids, self.cfg.cluster, self.dataset.num_cameras,
            true_pids=self.train_pids, camera_aware=self.camera_aware,
        ))

    def reclusterer(self) -> Reclusterer:
        """The `Reclusterer` of this epoch's global train features (kept while the epoch lasts)."""
        return self._cached("reclusterer", lambda: Reclusterer(
            self.train_features()[:, 0], self.train_camids, self.dataset.num_cameras, true_pids=self.train_pids,
            camera_aware=self.camera_aware, knn_backend=self.cfg.cluster.knn_backend,
        ))

    def recluster(self, eps: float | None = None, min_samples: int | None = None, k1: int | None = None,
                  k2: int | None = None) -> PseudoLabels:
        """Pseudo labels of this epoch's features with other settings (None: the run's cfg.cluster value)."""
        c = self.cfg.cluster
        return self.reclusterer().run(
            c.eps if eps is None else eps, c.min_samples if min_samples is None else min_samples,
            c.k1 if k1 is None else k1, c.k2 if k2 is None else k2,
        )

    def proxy_true_ids(self, proxies: CameraProxies) -> np.ndarray:
        """(P,) the most frequent true identity among each proxy's crops (smallest pid on a tie)."""
        return _majority(proxies.proxy_of_sample, self.train_pids, proxies.num_proxies)

    # ---- UMAP ------------------------------------------------------------------------------------
    def embedding(self, n_neighbors: int = 15, n_epochs: int = UMAP_EPOCHS, seed: int = 0) -> Embedding:
        """2-D UMAP of the global train features and this epoch's proxy centroids, computed once per epoch."""
        return self._cached(("embedding", n_neighbors, n_epochs, seed),
                            lambda: self._compute_embedding(n_neighbors, n_epochs, seed))

    def _compute_embedding(self, n_neighbors: int, n_epochs: int, seed: int) -> Embedding:
        crops = self.train_features()[:, 0].float()
        proxies = self.pseudo_labels().proxies
        centres = (proxy_centroids(crops, proxies.proxy_of_sample, proxies.num_proxies)
                   if proxies.num_proxies else crops.new_zeros(0, crops.shape[1]))
        return umap_embedding(crops, centres, n_neighbors, n_epochs, seed, knn_backend=self.cfg.cluster.knn_backend)

    # ---- attention -------------------------------------------------------------------------------
    def attention_blocks(self) -> tuple[tuple[int, int], ...]:
        """Every (stage, block) with window attention; ValueError for models without it."""
        trunk = getattr(self.model, "trunk", self.model)
        shape = getattr(trunk, "shape", None)
        if not hasattr(self.model, "forward_with_attention") or shape is None:
            raise ValueError(
                f"model.backbone {self.cfg.model.backbone!r} has no window attention to show; "
                "the attention view needs a LewinViT backbone (lewinvit_tiny, lewinvit_t, ...)")
        return tuple((s, b) for s, depth in enumerate(shape.depths) for b in range(depth))

    def attention(self, split: str, index: int, branch: int = 0) -> CropAttention:
        """The crop `index` of `split` and the attention maps of all its blocks (last stage from `branch`)."""
        records = self.dataset.split(split)
        if not 0 <= index < len(records):
            raise IndexError(f"{split} has {len(records)} crops; index {index} is out of range")
        return self._cached(("attention", split, index, branch),
                            lambda: self._compute_attention(records[index], branch))

    def _compute_attention(self, record: Record, branch: int) -> CropAttention:
        blocks = self.attention_blocks()
        image = build_test_transform(self.cfg.data)(read_image(record.path)).unsqueeze(0).to(self.device)
        camids = torch.tensor([record.camid], device=self.device)
        kwargs = {"branch": branch} if hasattr(self.model, "branches") else {}
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                _, maps = self.model.forward_with_attention(image, camids, blocks, **kwargs)
        finally:
            self.model.train(was_training)
        maps = tuple(_map_to_cpu(m) for m in maps)
        return CropAttention(record, self.crop(record, (self.cfg.data.height, self.cfg.data.width)), blocks, maps)

    # ---- ranking ---------------------------------------------------------------------------------
    def test_features(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(Q, D'), (G, D') query and gallery features with the config's test-time feature."""
        def compute() -> tuple[torch.Tensor, torch.Tensor]:
            records = list(self.dataset.query) + list(self.dataset.gallery)
            feats = extract_features(
                self.model, records, build_test_transform(self.cfg.data), kind="test",
                batch_size=self.cfg.eval.batch_size, workers=self.cfg.data.workers, device=self.device,
                desc="workbench evaluate",
            )
            return feats[: len(self.dataset.query)], feats[len(self.dataset.query):]

        return self._cached("test_features", compute)

    def ranking(self, k: int) -> dict[str, Any]:
        """`evaluate_extracted(..., return_topk=k)` of this epoch (re-ranked when the run's config says
        eval.rerank): mAP, per_query_ap, topk (Q, k), ..."""
        def compute() -> dict[str, Any]:
            q, g = self.test_features()
            return evaluate_extracted(q, g, self.dataset.query, self.dataset.gallery, self.cfg, return_topk=k)

        return self._cached(("ranking", k), compute)

    def rank_list(self, query_index: int, k: int = 10) -> RankList:
        queries = self.dataset.query
        if not 0 <= query_index < len(queries):
            raise IndexError(f"query has {len(queries)} crops; index {query_index} is out of range")
        results = self.ranking(k)
        row = results["topk"][query_index]
        row = row[row >= 0]
        q, g = self.test_features()
        qf, gf = F.normalize(q[query_index:query_index + 1], dim=1), F.normalize(g[row], dim=1)
        distance = (2 - 2 * qf @ gf.T)[0].numpy().astype(np.float32)
        gallery = tuple(self.dataset.gallery[i] for i in row)
        query = queries[query_index]
        return RankList(
            query_index=query_index, query=query, gallery_index=row.astype(np.int64), gallery=gallery,
            distance=distance, correct=np.array([r.pid == query.pid for r in gallery], dtype=bool),
            average_precision=float(results["per_query_ap"][query_index]),
        )

    # ---- crops -----------------------------------------------------------------------------------
    @staticmethod
    def crop(record: Record, size: tuple[int, int] | None = None) -> np.ndarray:
        """(H, W, 3) uint8 pixels of a crop, resized to size = (height, width) when given."""
        return _load_crop(record.path, size)


def umap_embedding(crops: torch.Tensor, centres: torch.Tensor, n_neighbors: int = 15, n_epochs: int = UMAP_EPOCHS,
                   seed: int = 0, knn_backend: str = "auto") -> Embedding:
    """One cosine UMAP fit of L2-normalised crops (N, D) and proxy centroids (P, D) together -> `Embedding`.

    The kNN graph comes from `lwtgpf.cluster.nearest_neighbours` (exact, the clustering's own search)
    instead of umap-learn's approximate NN-descent: the same neighbours the pseudo labels see, and a
    session's first fit does not compile NN-descent's numba kernels (bench/bench_widgets.py times both).
    Seeded, so an epoch's layout is reproducible (umap-learn then optimises on one thread).
    """
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


def cluster_summaries(labels: np.ndarray, true_pids: np.ndarray, camids: np.ndarray) -> list[ClusterSummary]:
    """One summary per cluster (outliers -1 skipped), ordered purest first (ties: larger clusters first)."""
    labels, true_pids, camids = (np.asarray(a) for a in (labels, true_pids, camids))
    summaries = []
    order = np.argsort(labels, kind="stable")
    sorted_labels = labels[order]
    starts = np.searchsorted(sorted_labels, np.arange(labels.max() + 1 if len(labels) else 0))
    ends = np.searchsorted(sorted_labels, np.arange(labels.max() + 1 if len(labels) else 0), side="right")
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


# ---------------------------------------------------------------------------------------------------
# helpers


class _Lru(OrderedDict):
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
def _timed(timings: dict[str, float], phase: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    timings[phase] = time.perf_counter() - start


def _same(a: Any, b: Any) -> bool:
    """Numbers by value, everything else (tensors, PseudoLabels) by identity."""
    return a is b or (isinstance(a, (int, float)) and isinstance(b, (int, float)) and a == b)


def _majority(groups: np.ndarray, values: np.ndarray, num_groups: int) -> np.ndarray:
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


def _map_to_cpu(amap: AttentionMap) -> AttentionMap:
    return replace(amap, weights=amap.weights.float().cpu())


@lru_cache(maxsize=4096)
def _load_crop(path: str, size: tuple[int, int] | None) -> np.ndarray:
    image = read_image(path)
    if size is not None:
        image = image.resize((size[1], size[0]))
    array = np.asarray(image, dtype=np.uint8)
    array.setflags(write=False)  # shared by the cache
    return array
