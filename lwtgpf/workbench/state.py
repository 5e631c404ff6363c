"""What the workbench shows of one run, at any epoch: `RunState`, over a live Trainer or a run folder.

    state = RunState.from_trainer(trainer)              # live: follows trainer.step()
    state = RunState.from_run_dir("runs/demo/lwtgpf")   # any run folder, from any working folder

The epoch cursor. `state.epochs` lists the epochs whose pseudo labels are known (a run folder: its
epochs/NNN/ records; a live trainer: the epochs it has stepped); `state.go_to(e)` moves the cursor and
`state.epoch` says where it is (the latest by default; a live state keeps following new epochs until it
is moved back). Every per-epoch result follows the cursor:

    state.pseudo_labels()         labels, camera-aware proxies and label quality of the cursor epoch
    state.train_features()        (N, F, D) train features those labels came from
    state.recluster(eps=...)      other DBSCAN / Jaccard settings on those features (`Reclusterer`)
    state.embedding()             UMAP of the crops and proxy centroids (kept in the run folder once computed)
    state.attention(split, i)     a crop's attention maps (`CropAttention`)
    state.ranking(k), rank_list(q, k)   evaluation (the trainer's, re-ranking included) and a query's list
and across epochs: `history` (log rows), `labels_by_epoch()`, `lineage(a, b)`, `trajectory(members)`,
`camera_pairs(epoch)`, `camera_pair_series()`, `worst_identities(epoch)`.

What "epoch e" means (the trainer's convention): its pseudo labels are those epoch e trained on,
clustered from the model after epoch e - 1; its evaluation (log row mAP, stored test features, kept
weights) is that of the model after epoch e. A run keeps features and weights only at its
`train.keep_features` cadence: at another epoch the nearest earlier stored ones are used, and where none
are stored (a run without epochs/ records) the final checkpoint's model computes them.
`features_source()`, `test_source()` and `model_source()` say which, and every view prints it.

Expensive results are computed on first use and cached per epoch (a bounded LRU), and dropped when the
run moves on (a live trainer's next step, a changed checkpoint: `sync()`). No Jupyter, no matplotlib.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Hashable

import numpy as np
import torch

from lwtgpf.cluster import CameraProxies, PseudoLabels, proxy_centroids, pseudo_label
from lwtgpf.config import Config
from lwtgpf.data import Record, ReidDataset, build_dataset, build_test_transform
from lwtgpf.engine.checkpoint import load_checkpoint
from lwtgpf.engine.evaluate import evaluate_extracted
from lwtgpf.engine.extract import extract_features
from lwtgpf.methods import METHODS
from lwtgpf.models import build_model
from lwtgpf.models.pretrained import load_model_state
from lwtgpf.run_folder import RANKED_LIST_LENGTH, RunFolder

from . import history
from .attention import CropAttention, attention_blocks, crop_attention
from .crops import load_crop
from .embedding import UMAP_EPOCHS, Embedding, load_embedding, save_embedding, umap_embedding
from .ranking import RankList, rank_list
from .recluster import Lru, Reclusterer, majority

SPLITS = ("train", "query", "gallery")
FINAL = "the final model"


class RunState:
    """One run seen by the workbench. Attributes: cfg, dataset, model (the final / live model, eval mode
    for every computation here), device, run (RunFolder or None), trainer (None for a folder)."""

    def __init__(self, cfg: Config, dataset: ReidDataset, model: torch.nn.Module, device: torch.device,
                 *, trainer: Any = None, run: RunFolder | None = None):
        self.cfg = cfg
        self.dataset = dataset
        self.model = model
        self.device = torch.device(device)
        self.trainer = trainer
        self.run = run
        self.run_dir = run.path if run is not None else None
        self.train_pids = np.array([r.pid for r in dataset.train], dtype=np.int64)
        self.train_camids = np.array([r.camid for r in dataset.train], dtype=np.int64)
        self._cursor: int | None = None  # None: the latest epoch (and follow new ones)
        self._final_epoch = 0
        self._history: list[dict[str, Any]] = []
        self._checkpoint_stamp: float | None = None
        self._cache: Lru[Hashable, Any] = Lru(48)  # features, embeddings, rankings, models: large, bounded
        self._small: dict[Hashable, Any] = {}  # labels and per-epoch counts of every epoch: a few MB at most
        self._cache_version: tuple | None = None

    # ---- construction --------------------------------------------------------------------------
    @classmethod
    def from_trainer(cls, trainer) -> "RunState":
        """Live view of `trainer` (lwtgpf.engine.trainer.Trainer); follows it as it steps."""
        return cls(trainer.cfg, trainer.dataset, trainer.model, trainer.device, trainer=trainer, run=trainer.run)

    @classmethod
    def from_run_dir(cls, run_dir: str | Path, device: str | torch.device = "cpu",
                     data_root: str | Path | None = None) -> "RunState":
        """A run folder (`lwtgpf.run_folder`), from any working folder. Needs the folder and the dataset
        only, never the run's original `model.pretrained` file. data_root: the dataset's folder when it
        moved since the run (default: the run's data.root)."""
        run = RunFolder.of(run_dir)
        cfg = run.read_config(data_root=data_root or None)
        dataset = build_dataset(cfg.data.dataset, cfg.data.root)
        device = torch.device(device)
        model = build_model(cfg, num_cameras=dataset.num_cameras, pretrained=False).to(device).eval()
        state = cls(cfg, dataset, model, device, run=run)
        state._load_checkpoint()
        return state

    def _load_checkpoint(self) -> None:
        path = self.run.checkpoint
        stamp = path.stat().st_mtime
        checkpoint = load_checkpoint(path, map_location=self.device)
        load_model_state(self.model, checkpoint["model"], str(path))
        self.model.eval()
        self._final_epoch = int(checkpoint["epoch"])
        self._history = self.run.read_history() or json.loads(checkpoint["history"])
        self._checkpoint_stamp = stamp

    def sync(self) -> bool:
        """Catch up with the run: a folder reloads its checkpoint if it changed on disk. True if it did."""
        if self.trainer is not None or self.run is None or not self.run.has_checkpoint():
            return False
        if self.run.checkpoint.stat().st_mtime == self._checkpoint_stamp:
            return False
        self._load_checkpoint()
        return True

    # ---- the epoch cursor ------------------------------------------------------------------------
    @property
    def epochs(self) -> list[int]:
        """Epochs whose pseudo labels are known, ascending (empty before a live trainer's first step)."""
        if self.trainer is not None:
            return sorted(self.trainer.labels_history)
        if self.run is None:
            return []
        return self._stored_epochs() or ([self._final_epoch] if self._final_epoch else [])

    @property
    def latest(self) -> int:
        epochs = self.epochs
        return epochs[-1] if epochs else 0

    @property
    def epoch(self) -> int:
        """The cursor: the epoch every per-epoch result is of (0 before a live trainer's first step)."""
        return self._cursor if self._cursor is not None and self._cursor in self.epochs else self.latest

    def go_to(self, epoch: int) -> None:
        """Move the cursor; the latest epoch means "follow new epochs". ValueError for an unknown epoch."""
        epochs = self.epochs
        if epoch not in epochs:
            raise ValueError(f"epoch {epoch} is not stored; this run has epochs {_ranges(epochs)}")
        self._cursor = None if epoch == epochs[-1] else int(epoch)

    @property
    def history(self) -> list[dict[str, Any]]:
        """One log row per epoch (the keys of log.json)."""
        return self.trainer.history if self.trainer is not None else self._history

    @property
    def source(self) -> str:
        """A short name of where this state comes from, for figure titles."""
        where = "live trainer" if self.trainer is not None else "run"
        return f"{where} {self.run_dir.name}" if self.run_dir is not None else where

    @property
    def camera_aware(self) -> bool:
        return METHODS[self.cfg.method].camera_aware

    # ---- cache -----------------------------------------------------------------------------------
    def _version(self) -> tuple:
        if self.trainer is not None:
            return self.trainer.epoch, id(self.trainer.features), id(self.trainer.pseudo)
        return self._final_epoch, self._checkpoint_stamp

    def _cached(self, key: Hashable, compute: Callable[[], Any], small: bool = False) -> Any:
        version = self._version()
        if version != self._cache_version:
            self._cache.clear()
            self._small.clear()
            self._cache_version = version
        cache = self._small if small else self._cache
        if key not in cache:
            cache[key] = compute()
        return cache[key]

    def _live_now(self) -> bool:
        """The cursor is the live trainer's current clustering (its `pseudo` / `features`)."""
        return self.trainer is not None and self.epoch == self.latest and self.trainer.pseudo is not None

    # ---- labels ----------------------------------------------------------------------------------
    def labels(self, epoch: int | None = None) -> np.ndarray:
        """(N,) pseudo labels of `epoch` (default: the cursor), -1 = outlier."""
        epoch = self.epoch if epoch is None else epoch
        if self.trainer is not None and epoch in self.trainer.labels_history:
            return np.asarray(self.trainer.labels_history[epoch])
        if self.run is not None and epoch in self._stored_epochs():
            return self._cached(("labels", epoch), lambda: self.run.read_labels(epoch), small=True)
        if epoch == self.epoch:
            return self.pseudo_labels().labels
        raise ValueError(f"epoch {epoch} is not stored; this run has epochs {_ranges(self.epochs)}")

    def labels_are_kept(self, epoch: int | None = None) -> bool:
        """The labels `epoch` (default: the cursor) trained on are known (a record, or the live trainer's)."""
        epoch = self.epoch if epoch is None else epoch
        if self._live_now():
            return True
        if self.trainer is not None:
            return epoch in self.trainer.labels_history
        return self.run is not None and epoch in self._stored_epochs()

    def labels_by_epoch(self) -> dict[int, np.ndarray]:
        """{epoch: (N,) labels} of every known epoch."""
        return {epoch: self.labels(epoch) for epoch in self.epochs}

    def pseudo_labels(self) -> PseudoLabels:
        """The cursor epoch's labels with their camera-aware proxies and quality row."""
        if self._live_now():
            return self.trainer.pseudo
        epoch = self.epoch
        if self.labels_are_kept(epoch):
            return self._cached(("pseudo", epoch), small=True, compute=lambda: pseudo_label(
                None, self.train_camids, self.cfg.cluster, self.dataset.num_cameras, true_pids=self.train_pids,
                camera_aware=self.camera_aware, given_labels=self.labels(epoch)))
        return self._cached(("pseudo", "final"), lambda: pseudo_label(  # a run without epoch records
            self.train_features()[:, 0], self.train_camids, self.cfg.cluster, self.dataset.num_cameras,
            true_pids=self.train_pids, camera_aware=self.camera_aware))

    def proxy_true_ids(self, proxies: CameraProxies) -> np.ndarray:
        """(P,) the most frequent true identity among each proxy's crops (smallest pid on a tie)."""
        return majority(proxies.proxy_of_sample, self.train_pids, proxies.num_proxies)

    # ---- features --------------------------------------------------------------------------------
    def _stored(self, kind: str, epoch: int) -> int | None:
        """The latest epoch <= `epoch` whose `kind` ("train" features / "ranking" / "weights") the run kept."""
        if self.run is None:
            return None
        name = {"weights": "weights.pt", "ranking": "ranking.npz", "train": "train_features.npy"}[kind]
        kept = self._cached(("kept", name), small=True, compute=lambda: [
            e for e in self._stored_epochs() if (self.run.epoch_dir(e) / name).is_file()])
        earlier = [e for e in kept if e <= epoch]
        return earlier[-1] if earlier else None

    def _stored_epochs(self) -> list[int]:
        """The run folder's epoch records (listed once per version of the state: a new checkpoint or step)."""
        return self._cached("stored_epochs", self.run.stored_epochs, small=True)

    def features_source(self) -> str:
        """Which model's train features the cursor uses: "epoch e", "the live trainer" or "the final model"."""
        if self._live_now() and self.trainer.features is not None:
            return "the live trainer"
        stored = self._stored("train", self.epoch)
        return f"epoch {stored}" if stored is not None else FINAL

    def train_features(self) -> torch.Tensor:
        """(N, F, D) L2-normalised train features of the cursor (F = 1 for stored ones: the global feature)."""
        if self._live_now() and self.trainer.features is not None:
            return self.trainer.features
        stored = self._stored("train", self.epoch)
        if stored is not None:
            return self._cached(("train_features", stored), lambda: torch.from_numpy(
                self.run.read_features(stored)).unsqueeze(1))
        return self._cached(("train_features", "final"), self._extract_train_features)

    def _extract_train_features(self) -> torch.Tensor:
        feats = extract_features(
            self.model, self.dataset.train, build_test_transform(self.cfg.data), kind="all",
            batch_size=self.cfg.eval.batch_size, workers=self.cfg.data.workers, device=self.device,
            desc="workbench extract",
        )
        return feats if METHODS[self.cfg.method].use_parts else feats[:, :1]

    def reclusterer(self) -> Reclusterer:
        """The `Reclusterer` of the cursor's global train features."""
        return self._cached(("reclusterer", self.features_source()), lambda: Reclusterer(
            self.train_features()[:, 0], self.train_camids, self.dataset.num_cameras, true_pids=self.train_pids,
            camera_aware=self.camera_aware, knn_backend=self.cfg.cluster.knn_backend,
        ))

    def recluster(self, eps: float | None = None, min_samples: int | None = None, k1: int | None = None,
                  k2: int | None = None) -> PseudoLabels:
        """Pseudo labels of the cursor's features with other settings (None: the run's cfg.cluster value)."""
        c = self.cfg.cluster
        return self.reclusterer().run(
            c.eps if eps is None else eps, c.min_samples if min_samples is None else min_samples,
            c.k1 if k1 is None else k1, c.k2 if k2 is None else k2,
        )

    # ---- UMAP ------------------------------------------------------------------------------------
    def embedding(self, n_neighbors: int = 15, n_epochs: int = UMAP_EPOCHS, seed: int = 0) -> Embedding:
        """2-D UMAP of the cursor's global train features and proxy centroids, once per epoch; a run
        folder keeps it (epochs/NNN/umap-*.npz), so coming back to an epoch costs a file read."""
        source = self.features_source()
        key = ("embedding", self.epoch, source, n_neighbors, n_epochs, seed)
        return self._cached(key, lambda: self._embedding(source, n_neighbors, n_epochs, seed))

    def _embedding(self, source: str, n_neighbors: int, n_epochs: int, seed: int) -> Embedding:
        proxies = self.pseudo_labels().proxies
        stored = self._stored("train", self.epoch) if source.startswith("epoch") else None
        path = None
        if stored is not None:  # kept in the run folder: a file read, the features are not even loaded
            path = self.run.epoch_dir(stored) / f"umap-labels{self.epoch}-k{n_neighbors}-e{n_epochs}-s{seed}.npz"
            saved = load_embedding(path, len(self.dataset.train), proxies.num_proxies)
            if saved is not None:
                return saved
        crops = self.train_features()[:, 0].float()
        centres = (proxy_centroids(crops, proxies.proxy_of_sample, proxies.num_proxies)
                   if proxies.num_proxies else crops.new_zeros(0, crops.shape[1]))
        embedding = umap_embedding(crops, centres, n_neighbors, n_epochs, seed, knn_backend=self.cfg.cluster.knn_backend)
        if path is not None:
            try:
                save_embedding(path, embedding)
            except OSError:  # a read-only run folder: keep it in memory only
                pass
        return embedding

    # ---- attention -------------------------------------------------------------------------------
    def attention_blocks(self) -> tuple[tuple[int, int], ...]:
        return attention_blocks(self.model, self.cfg.model.backbone)

    def model_source(self) -> str:
        """Whose weights the attention view uses: "epoch e" (kept weights) or the final / live model."""
        stored = None if self.trainer is not None and self.epoch == self.latest else self._stored("weights", self.epoch)
        return f"epoch {stored}" if stored is not None else ("the live model" if self.trainer is not None else FINAL)

    def _model_at_cursor(self) -> torch.nn.Module:
        source = self.model_source()
        if not source.startswith("epoch"):
            return self.model
        epoch = int(source.split()[1])

        def load() -> torch.nn.Module:
            model = build_model(self.cfg, self.dataset.num_cameras, pretrained=False).to(self.device)
            path = self.run.epoch_dir(epoch) / "weights.pt"
            load_model_state(model, torch.load(path, map_location=self.device, weights_only=True), str(path))
            return model.eval()

        return self._cached(("model", epoch), load)

    def attention(self, split: str, index: int, branch: int = 0) -> CropAttention:
        """The crop `index` of `split` and the attention maps of all its blocks (last stage from `branch`)."""
        records = self.dataset.split(split)
        if not 0 <= index < len(records):
            raise IndexError(f"{split} has {len(records)} crops; index {index} is out of range")
        return self._cached(("attention", self.model_source(), split, index, branch), lambda: crop_attention(
            self._model_at_cursor(), records[index], self.cfg, self.device, branch))

    # ---- ranking ---------------------------------------------------------------------------------
    def test_source(self) -> str:
        """Whose evaluation the rank lists show: "epoch e" (the ranking the run kept at its evaluation
        after epoch e) or the final / live model (evaluated here)."""
        if self.trainer is not None and self.epoch == self.latest:
            return "the live model"
        stored = self._stored("ranking", self.epoch)
        return f"epoch {stored}" if stored is not None else FINAL

    def test_features(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(Q, D'), (G, D') query and gallery features of the final / live model (test-time feature)."""
        def compute() -> tuple[torch.Tensor, torch.Tensor]:
            feats = extract_features(
                self.model, list(self.dataset.query) + list(self.dataset.gallery),
                build_test_transform(self.cfg.data), kind="test", batch_size=self.cfg.eval.batch_size,
                workers=self.cfg.data.workers, device=self.device, desc="workbench evaluate")
            return feats[: len(self.dataset.query)], feats[len(self.dataset.query):]

        return self._cached("test_features", compute)

    def ranking(self, k: int = RANKED_LIST_LENGTH) -> dict[str, Any]:
        """The evaluation at the cursor, exactly as the trainer and `lwtgpf evaluate` compute it (re-ranked
        when the run's config says eval.rerank): mAP, per_query_ap, topk (Q, k), topk_distance, ...
        From the run's stored ranking of that epoch when it kept one (k <= RANKED_LIST_LENGTH)."""
        source = self.test_source()
        if source.startswith("epoch") and k <= RANKED_LIST_LENGTH:
            epoch = int(source.split()[1])
            stored = self._cached(("ranking", epoch), lambda: self.run.read_ranking(epoch))
            return {**stored, "topk": stored["topk"][:, :k], "topk_distance": stored["topk_distance"][:, :k]}

        def compute() -> dict[str, Any]:
            q, g = self.test_features()
            return evaluate_extracted(q, g, self.dataset.query, self.dataset.gallery, self.cfg, return_topk=k)

        return self._cached(("ranking", "model", k), compute)

    def rank_list(self, query_index: int, k: int = 10) -> RankList:
        return rank_list(self.ranking(k), self.dataset.query, self.dataset.gallery, query_index)

    # ---- across epochs ---------------------------------------------------------------------------
    def lineage(self, epoch_a: int, epoch_b: int) -> history.Lineage:
        """What became of the clusters of `epoch_a` at `epoch_b` (`lwtgpf.workbench.history.lineage`)."""
        return self._cached(("lineage", epoch_a, epoch_b),
                            lambda: history.lineage(self.labels(epoch_a), self.labels(epoch_b), epoch_a, epoch_b),
                            small=True)

    def trajectory(self, members: np.ndarray) -> list[history.EpochShare]:
        """Epoch by epoch, the clusters of the crops `members` (train indices)."""
        return history.trajectory(self.labels_by_epoch(), members, self.train_camids)

    def identity_crops(self, identity: int) -> np.ndarray:
        """Train indices of the crops of true identity `identity` (empty when there are none)."""
        return np.flatnonzero(self.train_pids == identity)

    def cluster_crops(self, cluster: int, epoch: int | None = None) -> np.ndarray:
        return np.flatnonzero(self.labels(epoch) == cluster)

    def camera_pairs(self, epoch: int | None = None) -> history.CameraPairs:
        epoch = self.epoch if epoch is None else epoch
        return self._cached(("camera_pairs", epoch), lambda: history.camera_pairs(
            self.labels(epoch), self.train_pids, self.train_camids, self.dataset.num_cameras), small=True)

    def camera_pair_series(self) -> dict[int, tuple[float, float, float]]:
        """{epoch: (cross-camera recall, same-camera recall, pair precision)} over every known epoch."""
        def point(pairs: history.CameraPairs) -> tuple[float, float, float]:
            together = pairs.together.sum()
            return (pairs.cross_camera_recall(), pairs.same_camera_recall(),
                    float(pairs.correct.sum() / together) if together else float("nan"))

        return {epoch: point(self.camera_pairs(epoch)) for epoch in self.epochs}

    def worst_identities(self, epoch: int | None = None, count: int = 10) -> list[tuple[int, int, float]]:
        """(identity, clusters its crops span, share in its largest cluster) of the `count` identities the
        labels of `epoch` split most (most clusters, then the smallest share), the hardest first."""
        labels = self.labels(epoch)
        rows = []
        for identity in np.unique(self.train_pids):
            mine = labels[self.train_pids == identity]
            clustered = mine[mine >= 0]
            counts = np.unique(clustered, return_counts=True)[1]
            share = float(counts.max() / len(mine)) if len(counts) else 0.0
            rows.append((int(identity), len(counts), share))
        rows.sort(key=lambda r: (-r[1], r[2], r[0]))
        return rows[:count]

    # ---- crops -----------------------------------------------------------------------------------
    @staticmethod
    def crop(record: Record, size: tuple[int, int] | None = None) -> np.ndarray:
        """(H, W, 3) uint8 pixels of a crop, resized to size = (height, width) when given."""
        return load_crop(record.path, size)


def _ranges(epochs: list[int]) -> str:
    return f"{epochs[0]}..{epochs[-1]} ({len(epochs)} stored)" if epochs else "none yet"
