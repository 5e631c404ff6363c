"""The training loop, one epoch at a time: extract -> cluster -> proxies + memory -> train -> evaluate.

`Trainer.fit()` runs the whole recipe; a notebook calls the same steps one by one
(`extract_train_features`, `cluster`, `build_memory`, `train_epoch`, `evaluate`) or `step()` for a whole
epoch, and reads the state they leave behind (`features`, `pseudo`, `memory`, `history`): plain tensors,
arrays and dicts, so widgets never reach into the loop.

The methods are configurations of this one loop; what each means is the table `lwtgpf.methods.METHODS`
(LWTGPF, O2CAP, Cluster Contrast, the supervised upper bound, and `classifier` pretraining).

With a run folder (`lwtgpf.run_folder.RunFolder`, which owns its layout) every epoch prints one line
(`format_epoch_row`) and appends it to train.log, writes the checkpoint, then log.json / log.csv.
"""
from __future__ import annotations

import json
import math
import random
import time
from contextlib import contextmanager
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
from lwtgpf.errors import UserError
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
from lwtgpf.methods import METHODS
from lwtgpf.models import build_model
from lwtgpf.models.pretrained import load_model_state
from lwtgpf.run_folder import RANKED_LIST_LENGTH, RunFolder


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("train.device=cuda but CUDA is not available on this machine (use auto or cpu)")
    return torch.device(name)


def pick_amp_dtype(mode: str, device: torch.device) -> torch.dtype | None:
    """`auto` means bf16 where the GPU supports it, fp16 otherwise, nothing on the CPU.

    bf16 asked for on a GPU without bf16 is an error; on the CPU every mode means full precision.
    """
    if mode == "off" or device.type != "cuda":
        return None
    if mode == "bf16" and not torch.cuda.is_bf16_supported():
        raise UserError(f"train.amp=bf16 but {torch.cuda.get_device_name(device)} has no bf16; use auto or fp16")
    if mode == "bf16" or (mode == "auto" and torch.cuda.is_bf16_supported()):
        return torch.bfloat16
    return torch.float16


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class Trainer:
    """One training run of `cfg` writing into `run_dir` (None: keep everything in memory).

    Everything that can fail on the user's input (device, dataset, model, pretrained file) is built
    before the run folder is touched. resume=True continues the run in `run_dir` from its last
    checkpoint: `cfg` must be the run's config (`RunFolder.resume` names any other difference) and the
    original `model.pretrained` file is not read (the checkpoint replaces every weight).
    verbose: print one line per epoch (always written to the run folder's train.log).
    """

    def __init__(self, cfg: Config, run_dir: str | Path | None = None, resume: bool = False, verbose: bool = True):
        self.cfg = cfg
        self.method = METHODS[cfg.method]
        self.verbose = verbose
        self.device = pick_device(cfg.train.device)
        self.dist: DistInfo = init_distributed(self.device.type)
        if self.device.type == "cuda":
            self.device = torch.device("cuda", self.dist.local_rank)
        self.amp_dtype = pick_amp_dtype(cfg.train.amp, self.device)
        if resume and run_dir is None:
            raise UserError("resume needs the run folder (run_dir / --out) to continue")
        if resume:  # before any work: a config the run was not started with is refused by name
            RunFolder(run_dir).check_resume(cfg)
        seed_everything(cfg.train.seed)

        self.dataset = build_dataset(cfg.data.dataset, cfg.data.root)
        self.train_transform = build_train_transform(cfg.data)
        self.test_transform = build_test_transform(cfg.data)
        self.model = build_model(cfg, num_cameras=self.dataset.num_cameras, pretrained=not resume).to(self.device)
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
        self.labels_history: dict[int, np.ndarray] = {}  # epoch -> (N,) pseudo labels that epoch trained on
        self.features: torch.Tensor | None = None  # (N, F, D) train features of this epoch
        self.pseudo: PseudoLabels | None = None
        self.memory: CameraProxyMemory | None = None
        self.last_eval: dict[str, Any] | None = None
        self.step_losses: list[float] = []  # loss of every training step of the last epoch
        self._phase_seconds: dict[str, float] = {}
        self._run_seconds: dict[str, float] = {}  # phases summed over this process's epochs

        # The run folder, last: nothing above wrote anything.
        self.run = RunFolder(run_dir) if run_dir is not None else None
        self.run_dir = self.run.path if self.run is not None else None
        if self.run is not None and self.dist.is_main:
            environment = {"device": str(self.device), "threads": torch.get_num_threads()}
            if resume:
                for warning in self.run.resume(cfg, self.dataset):
                    self._say(f"warning: {warning}")
            else:
                self.run.create(cfg, self.dataset, **environment)
        if resume:
            self.load(self.run.checkpoint)
            if self.dist.is_main:
                self.run.write_history(self.history)  # logs back in step with the checkpoint
                self.run.drop_epochs_after(self.epoch)  # records of epochs the resume redoes
            self.labels_history = {e: self.run.read_labels(e) for e in self.run.stored_epochs()}

    def close(self) -> None:
        """Release the run folder (its lock) before `fit` ends it, e.g. to resume it from another process."""
        if self.run is not None:
            self.run.unlock()

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
            self._say(f"warning: epoch {self.epoch + 1}: no sample has a proxy (no clusters); no training step")
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
        self.last_eval["epoch"] = self.epoch  # the model after this many epochs
        return self.last_eval

    def step(self) -> dict[str, Any]:
        """One whole epoch of the recipe; appends and returns its log row.

        In a run folder the checkpoint is written first, then the logs (never ahead of the checkpoint).
        """
        if self.run is not None and self.dist.is_main:
            self.run.lock()  # held from the start of the run; again after `fit` released it
        self._phase_seconds = {}
        self.features = self.pseudo = self.memory = None
        self.cluster()
        if self.classifier is None:
            self.build_memory()
        row: dict[str, Any] = {"epoch": self.epoch + 1}
        row.update(self.train_epoch())
        self.epoch += 1
        self.labels_history[self.epoch] = self.pseudo.labels
        row.update(self.pseudo.log_row())
        if self._should_evaluate():
            results = self.evaluate(return_topk=RANKED_LIST_LENGTH if self.run is not None else 0)
            row.update({key: results[key] for key in ("mAP", "R1", "R5", "R10", "mINP")})
        row.update({f"sec_{phase}": round(sec, 3) for phase, sec in self._phase_seconds.items()})
        for phase, sec in self._phase_seconds.items():
            self._run_seconds[phase] = self._run_seconds.get(phase, 0.0) + sec
        self.history.append(row)
        if self.run is not None:
            if self.dist.is_main:  # the epoch's record first: a crash before the checkpoint redoes it
                self._write_epoch_record()
            if self.epoch % self.cfg.train.checkpoint_every == 0 or self.epoch == self.cfg.train.epochs:
                self.save(self.run.checkpoint)
            if self.dist.is_main:
                self.run.write_history(self.history)
        self._say(format_epoch_row(row, self.cfg.train.epochs))
        return row

    def keeps_features(self, epoch: int) -> bool:
        """Whether epoch `epoch` (1-based) stores its features in the run folder (`train.keep_features`)."""
        mode, every = self.cfg.train.keep_features, self.cfg.train.eval_every
        if mode == "eval":
            return epoch in (1, self.cfg.train.epochs) or (every > 0 and epoch % every == 0)
        return mode == "all"

    def _write_epoch_record(self) -> None:
        """labels (always), train / test features and weights at their cadence, into RUN/epochs/NNN/."""
        keep = self.keeps_features(self.epoch)
        evaluated = self.last_eval is not None and self.last_eval.get("epoch") == self.epoch
        size = self.run.write_epoch(
            self.epoch, self.pseudo.labels,
            train_features=self.features[:, 0] if keep and self.features is not None else None,
            ranking=self.last_eval if keep and evaluated and "topk" in self.last_eval else None,
            model_state=self.model.state_dict() if keep and self.cfg.train.keep_weights else None,
        )
        if keep:
            self.run.log_event(f"epoch {self.epoch}: stored its labels and features, {size / 2**20:.1f} MB "
                               f"(epochs/ holds {self.run.epochs_size() / 2**20:.1f} MB)")

    def fit(self) -> dict[str, float]:
        """Train the remaining epochs; return (and write to metrics.json) the last epoch's results."""
        while self.epoch < self.cfg.train.epochs:
            self.step()
        results = self.last_eval if self.last_eval is not None else self.evaluate()
        metrics = {key: round(100.0 * results[key], 2) for key in ("mAP", "R1", "R5", "R10", "mINP")}
        metrics["epochs"] = self.epoch
        if self.run is not None and self.dist.is_main:
            self.run.write_metrics(metrics)
            self.run.finish(self._run_seconds)
            self.run.log_event("finished: " + " ".join(f"{k} {v}" for k, v in metrics.items()))
            self.close()  # the run is complete: another process may now resume or extend it
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
        load_model_state(self.model, state["model"], str(path))
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
    def _should_evaluate(self) -> bool:
        every = self.cfg.train.eval_every
        return self.epoch == self.cfg.train.epochs or (every > 0 and self.epoch % every == 0)

    def _say(self, line: str) -> None:
        """A progress line: printed (verbose) and kept in the run folder's train.log (rank 0 only)."""
        if not self.dist.is_main:
            return
        if self.verbose:
            print(line, flush=True)
        if self.run is not None:
            self.run.log_event(line)

    @contextmanager
    def _timed(self, phase: str):
        start = time.perf_counter()
        yield
        self._phase_seconds[phase] = self._phase_seconds.get(phase, 0.0) + time.perf_counter() - start


def format_epoch_row(row: dict[str, Any], epochs: int) -> str:
    """One line of an epoch's log row, e.g.
    `epoch 3/8 | loss 4.213 lr 3.5e-04 | 94 clusters, 231 proxies, 4.1% outliers, NMI 0.743 | mAP 15.3% R1 27.3%
    | extract 5.1s cluster 0.3s train 40.2s evaluate 3.0s`."""
    def number(key: str, fmt: str) -> str:
        value = row.get(key)
        return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, fmt)

    parts = [f"epoch {row['epoch']}/{epochs}", f"loss {number('loss', '.4f')} lr {number('lr', '.2e')}"]
    labels = f"{row.get('num_clusters', '-')} clusters, {row.get('num_proxies', '-')} proxies"
    if "outlier_fraction" in row:
        labels += f", {100 * row['outlier_fraction']:.1f}% outliers"
    if "nmi" in row:
        labels += f", NMI {row['nmi']:.3f}"
    parts.append(labels)
    if "mAP" in row:
        parts.append(f"mAP {100 * row['mAP']:.1f}% R1 {100 * row['R1']:.1f}%")
    seconds = " ".join(f"{k[4:]} {v:.1f}s" for k, v in row.items()
                       if k.startswith("sec_") and k[4:] in ("extract", "cluster", "train", "evaluate"))
    if seconds:
        parts.append(seconds)
    return " | ".join(parts)
