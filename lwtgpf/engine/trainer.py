"""The training loop, one epoch at a time: extract -> cluster -> proxies + memory -> train -> evaluate.

`Trainer.fit()` runs the whole recipe; a notebook calls the same steps one by one
(`extract_train_features`, `cluster`, `build_memory`, `train_epoch`, `evaluate`) or `step()` for a whole
epoch, and reads the state they leave behind (`features`, `pseudo`, `memory`, `history`): plain tensors,
arrays and dicts, so widgets never reach into the loop.

The methods are configurations of this one loop (see METHODS): LWTGPF (GP-O2CAP on global and
part features), O2CAP (global only), Cluster Contrast (one proxy per cluster, offline loss only), a
supervised upper bound (true identities through the same proxies, memory and losses) and `classifier`
(true identities, cross-entropy over a learned classifier: supervised pretraining on labelled data).
"""
from __future__ import annotations

import json
import logging
import math
import random
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from lwtgpf.cluster import PseudoLabels, pseudo_label
from lwtgpf.config import Config
from lwtgpf.data import (
    CameraDiverseSampler,
    ImageDataset,
    ProxyBalancedSampler,
    build_test_transform,
    build_dataset,
    build_train_transform,
    contiguous_labels,
)
from lwtgpf.engine.checkpoint import capture_rng_state, load_checkpoint, restore_rng_state, save_checkpoint
from lwtgpf.engine.distributed import (
    DistInfo,
    all_gather_rows,
    all_reduce_mean,
    broadcast_object,
    convert_batch_norms_for_ddp,
    init_distributed,
)
from lwtgpf.engine.evaluate import evaluate_model
from lwtgpf.engine.extract import autocast_context, extract_features
from lwtgpf.engine.schedule import build_optimizer, build_scheduler
from lwtgpf.losses import IdentityClassifier, gp_o2cap_loss
from lwtgpf.memory import CameraProxyMemory
from lwtgpf.models import build_model

log = logging.getLogger("lwtgpf")


@dataclass(frozen=True)
class Method:
    camera_aware: bool  # one proxy per (cluster, camera), else one per cluster
    use_parts: bool  # part features in the memory and the loss
    online: bool  # online association loss on top of the offline one
    true_labels: bool  # supervised: identities instead of pseudo labels
    classifier: bool = False  # identity cross-entropy (IdentityClassifier) instead of the proxy memory


METHODS = {
    "lwtgpf": Method(camera_aware=True, use_parts=True, online=True, true_labels=False),
    "o2cap": Method(camera_aware=True, use_parts=False, online=True, true_labels=False),
    "cluster_contrast": Method(camera_aware=False, use_parts=False, online=False, true_labels=False),
    "supervised": Method(camera_aware=True, use_parts=True, online=True, true_labels=True),
    "classifier": Method(camera_aware=False, use_parts=True, online=False, true_labels=True, classifier=True),
}


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("train.device=cuda but CUDA is not available on this machine")
    return torch.device(name)


def pick_amp_dtype(mode: str, device: torch.device) -> torch.dtype | None:
    """`auto` means bf16 where the GPU supports it, fp16 otherwise, nothing on the CPU."""
    if mode == "off" or device.type != "cuda":
        return None
    if mode == "bf16" or (mode == "auto" and torch.cuda.is_bf16_supported()):
        return torch.bfloat16
    if mode in ("fp16", "auto"):
        return torch.float16
    raise ValueError(f"train.amp must be auto, off, bf16 or fp16, got {mode!r}")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class Trainer:
    """One training run of `cfg` writing into `run_dir` (None: keep everything in memory)."""

    def __init__(self, cfg: Config, run_dir: str | Path | None = None, resume: bool = False):
        if cfg.method not in METHODS:
            raise ValueError(f"method {cfg.method!r} is unknown; expected one of {', '.join(METHODS)}")
        self.cfg = cfg
        self.method = METHODS[cfg.method]
        self.device = pick_device(cfg.train.device)
        self.dist: DistInfo = init_distributed(self.device.type)
        if self.device.type == "cuda":
            self.device = torch.device("cuda", self.dist.local_rank)
        self.amp_dtype = pick_amp_dtype(cfg.train.amp, self.device)
        self.run_dir = Path(run_dir) if run_dir is not None else None
        if self.run_dir is not None and self.dist.is_main:
            _prepare_run_dir(self.run_dir, resume)
        seed_everything(cfg.train.seed)

        self.dataset = build_dataset(cfg.data.dataset, cfg.data.root)
        self.train_transform = build_train_transform(cfg.data)
        self.test_transform = build_test_transform(cfg.data)
        self.model = build_model(cfg, num_cameras=self.dataset.num_cameras).to(self.device)
        self.train_model = self.model
        if self.dist.enabled:  # batch statistics over the global batch, then gradient averaging
            self.model = convert_batch_norms_for_ddp(self.model, self.device.type)
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            self.train_model = DistributedDataParallel(self.model, device_ids=device_ids)
        self.classifier: IdentityClassifier | None = None
        trained = self.model
        if self.method.classifier:
            num_ids = int(contiguous_labels(self.dataset.train)[0].max()) + 1
            num_features = 1 + self.model.num_parts if self.method.use_parts else 1
            self.classifier = IdentityClassifier(num_features, num_ids, self.model.feature_dim, cfg.loss).to(self.device)
            trained = torch.nn.ModuleList([self.model, self.classifier])
        self.optimizer = build_optimizer(trained, cfg.optim)
        self.scheduler = build_scheduler(self.optimizer, cfg.optim)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)

        # State after each step: what a notebook or widget reads.
        self.epoch = 0  # completed epochs
        self.history: list[dict[str, Any]] = []
        self.features: torch.Tensor | None = None  # (N, F, D) train features of this epoch
        self.pseudo: PseudoLabels | None = None
        self.memory: CameraProxyMemory | None = None
        self.last_eval: dict[str, Any] | None = None
        self.step_losses: list[float] = []  # loss of every training step of the last epoch
        self._phase_seconds: dict[str, float] = {}
        if resume:
            self.load(self._checkpoint_path())
        elif self.run_dir is not None and self.dist.is_main:
            cfg.save(self.run_dir / "config.yaml")

    # ---- the steps of one epoch -------------------------------------------------------------
    def extract_train_features(self) -> torch.Tensor:
        """(N, F, D) features of every train crop in eval mode; F = 1 + parts (1 for global-only methods)."""
        with self._timed("extract"):
            feats = extract_features(
                self.model, self.dataset.train, self.test_transform, kind="all",
                batch_size=self.cfg.eval.batch_size, workers=self.cfg.data.workers,
                device=self.device, amp_dtype=self.amp_dtype, desc=f"epoch {self.epoch + 1} extract",
            )
        self.features = feats if self.method.use_parts else feats[:, :1]
        return self.features

    def cluster(self) -> PseudoLabels:
        """Pseudo labels + camera-aware proxies (rank 0 clusters, the others receive its result).

        The classifier method trains on the true identities and keeps no memory: it needs no features.
        """
        if self.features is None and not self.method.classifier:
            self.extract_train_features()
        with self._timed("cluster"):
            camids = np.array([r.camid for r in self.dataset.train])
            pids = np.array([r.pid for r in self.dataset.train])
            pseudo = None
            if self.dist.is_main:
                pseudo = pseudo_label(
                    None if self.features is None else self.features[:, 0], camids, self.cfg.cluster,
                    self.dataset.num_cameras,
                    true_pids=pids, camera_aware=self.method.camera_aware,
                    given_labels=contiguous_labels(self.dataset.train)[0] if self.method.true_labels else None,
                )
            self.pseudo = broadcast_object(pseudo)
        return self.pseudo

    def build_memory(self) -> CameraProxyMemory:
        """Memory rows = L2-normalised proxy centroids of this epoch's features."""
        if self.pseudo is None:
            self.cluster()
        proxies = self.pseudo.proxies
        self.memory = CameraProxyMemory.from_features(
            self.features.transpose(0, 1).to(self.device),
            torch.as_tensor(proxies.proxy_of_sample, device=self.device),
            torch.as_tensor(proxies.cluster_of_proxy, device=self.device),
            torch.as_tensor(proxies.camera_of_proxy, device=self.device),
            momentum=self.cfg.loss.memory_momentum,
        )
        return self.memory

    def train_epoch(self) -> dict[str, float]:
        """`data.iters_per_epoch` SGD steps on proxy-balanced batches; returns mean loss components."""
        if self.memory is None and self.classifier is None:
            self.build_memory()
        cfg = self.cfg
        proxy_of_sample = self.pseudo.proxies.proxy_of_sample
        if (proxy_of_sample >= 0).sum() == 0:
            log.warning("epoch %d: no sample has a proxy (no clusters); skipping the training step", self.epoch + 1)
            self.scheduler.step()
            return {"loss": float("nan")}
        shared = dict(
            batch_size=cfg.data.batch_size, num_instances=cfg.data.num_instances,
            iters_per_epoch=cfg.data.iters_per_epoch, seed=cfg.train.seed,
            rank=self.dist.rank, world_size=self.dist.world_size, with_seeds=True,
        )
        if cfg.data.sampler == "proxy_balanced":
            sampler = ProxyBalancedSampler(proxy_of_sample, **shared)
        elif cfg.data.sampler == "camera_diverse":
            camids = np.array([r.camid for r in self.dataset.train])
            sampler = CameraDiverseSampler(self.pseudo.labels, camids, **shared)
        else:
            raise ValueError(f"data.sampler must be proxy_balanced or camera_diverse, got {cfg.data.sampler!r}")
        sampler.set_epoch(self.epoch)
        loader = DataLoader(
            ImageDataset(self.dataset.train, self.train_transform), batch_sampler=sampler,
            num_workers=cfg.data.workers, pin_memory=self.device.type == "cuda",
        )
        proxy_table = torch.as_tensor(proxy_of_sample, device=self.device)
        self.train_model.train()
        step_parts: list[dict[str, float]] = []
        with self._timed("train"):
            for images, _, camids, index in tqdm(
                loader, desc=f"epoch {self.epoch + 1} train", leave=False, disable=not self.dist.is_main
            ):
                images, camids = images.to(self.device, non_blocking=True), camids.to(self.device)
                proxy_ids = proxy_table[index.to(self.device)]
                with autocast_context(self.device, self.amp_dtype):
                    out = self.train_model(images, camids)
                feats = (out.stacked() if self.method.use_parts else out.global_feat.unsqueeze(1)).float()
                if self.classifier is not None:  # proxies are identities here (true labels, no cameras)
                    loss, parts = self.classifier(feats, proxy_ids)
                else:
                    loss, parts = gp_o2cap_loss(feats, proxy_ids, self.memory, cfg.loss, use_online=self.method.online)
                self.optimizer.zero_grad(set_to_none=True)
                self.scaler.scale(loss).backward()
                if self.classifier is not None and self.dist.enabled:  # outside DDP: average its gradient here
                    for param in self.classifier.parameters():
                        param.grad = all_reduce_mean(param.grad).to(param.device)
                self.scaler.step(self.optimizer)
                self.scaler.update()
                if self.memory is not None:
                    # Every rank applies the same global batch to its memory, in global batch order.
                    self.memory.update(all_gather_rows(feats.detach()), all_gather_rows(proxy_ids))
                step_parts.append(parts)
        lr = self.optimizer.param_groups[0]["lr"]
        self.scheduler.step()
        # (steps, components) averaged over ranks: per step, the loss of the global batch
        keys = list(step_parts[0])
        table = all_reduce_mean(torch.tensor([[p[k] for k in keys] for p in step_parts], dtype=torch.float64))
        self.step_losses = table[:, keys.index("loss")].tolist()
        row = dict(zip(keys, table.mean(0).tolist()))
        row["lr"] = lr
        return row

    def evaluate(self, return_topk: int = 0) -> dict[str, Any]:
        """mAP, CMC and mINP on query vs gallery with the test-time feature of the config."""
        with self._timed("evaluate"):
            self.last_eval = evaluate_model(
                self.model, self.dataset, self.cfg, self.device, self.amp_dtype, return_topk=return_topk
            )
        return self.last_eval

    def step(self) -> dict[str, Any]:
        """One whole epoch of the recipe; appends and returns its log row."""
        self._phase_seconds = {}
        self.features = self.pseudo = self.memory = None
        self.cluster()
        if self.classifier is None:
            self.build_memory()
        row: dict[str, Any] = {"epoch": self.epoch + 1}
        row.update(self.train_epoch())
        self.epoch += 1
        row.update(self.pseudo.log_row())
        if self._should_evaluate():
            results = self.evaluate()
            row.update({key: results[key] for key in ("mAP", "R1", "R5", "R10", "mINP")})
        row.update({f"sec_{phase}": round(sec, 3) for phase, sec in self._phase_seconds.items()})
        self.history.append(row)
        if self.run_dir is not None:
            if self.dist.is_main:
                self._write_log()
            if self.epoch % self.cfg.train.checkpoint_every == 0 or self.epoch == self.cfg.train.epochs:
                self.save(self._checkpoint_path())
        return row

    def fit(self) -> dict[str, float]:
        """Train the remaining epochs; return (and write to metrics.json) the last epoch's results."""
        while self.epoch < self.cfg.train.epochs:
            row = self.step()
            if self.dist.is_main:
                log.info(_format_row(row))
        results = self.last_eval if self.last_eval is not None else self.evaluate()
        metrics = {key: round(100.0 * results[key], 2) for key in ("mAP", "R1", "R5", "R10", "mINP")}
        metrics["epochs"] = self.epoch
        if self.run_dir is not None and self.dist.is_main:
            _write_json_atomic(self.run_dir / "metrics.json", metrics)
        return metrics

    # ---- checkpoints -------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "model": self.model.state_dict(),
            "classifier": self.classifier.state_dict() if self.classifier is not None else {},
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": capture_rng_state(),
            "history": json.dumps(self.history),
            "config": json.dumps(self.cfg.to_dict()),
        }

    def save(self, path: Path) -> None:
        if self.dist.is_main:
            save_checkpoint(path, self.state_dict())

    def load(self, path: Path) -> None:
        state = load_checkpoint(path, map_location=self.device)
        self.model.load_state_dict(state["model"])
        if self.classifier is not None:
            self.classifier.load_state_dict(state["classifier"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        restore_rng_state(state["rng"])
        self.epoch = int(state["epoch"])
        self.history = json.loads(state["history"])
        evaluated = [row for row in self.history if "mAP" in row]
        if evaluated:
            self.last_eval = {key: evaluated[-1][key] for key in ("mAP", "R1", "R5", "R10", "mINP")}

    # ---- helpers -----------------------------------------------------------------------------
    def _checkpoint_path(self) -> Path:
        if self.run_dir is None:
            raise ValueError("resume needs a run folder (run_dir)")
        return self.run_dir / "checkpoints" / "last.pt"

    def _should_evaluate(self) -> bool:
        every = self.cfg.train.eval_every
        return self.epoch == self.cfg.train.epochs or (every > 0 and self.epoch % every == 0)

    @contextmanager
    def _timed(self, phase: str):
        start = time.perf_counter()
        yield
        self._phase_seconds[phase] = self._phase_seconds.get(phase, 0.0) + time.perf_counter() - start

    def _write_log(self) -> None:
        import pandas as pd

        pd.DataFrame(self.history).to_csv(self.run_dir / "log.csv", index=False)
        _write_json_atomic(self.run_dir / "log.json", self.history)


def _prepare_run_dir(run_dir: Path, resume: bool) -> None:
    """A run folder belongs to one run: refuse to write into someone else's results."""
    if resume:
        if not (run_dir / "checkpoints" / "last.pt").exists():
            raise FileNotFoundError(f"--resume: no checkpoint at {run_dir / 'checkpoints' / 'last.pt'}")
        return
    if run_dir.exists() and any(run_dir.iterdir()):
        raise FileExistsError(f"run folder {run_dir} is not empty; pick a new --out or pass --resume")
    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)


def _write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=float))
    tmp.replace(path)


def _format_row(row: dict[str, Any]) -> str:
    keys = ["epoch", "loss", "lr", "num_clusters", "num_proxies", "outlier_fraction", "nmi", "mAP", "R1"]
    parts = []
    for key in keys:
        if key in row:
            value = row[key]
            parts.append(f"{key}={value:.4g}" if isinstance(value, float) and not math.isnan(value) else f"{key}={value}")
    return " ".join(parts)
