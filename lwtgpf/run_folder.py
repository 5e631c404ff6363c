"""The run folder: the unit of reproducibility, and the one module that knows its layout.

    RUN/
      config.yaml          the resolved config; paths in it are absolute, so the run opens the same from
                           any working folder (relative paths, if written by hand, are relative to RUN)
      provenance.json      what produced the run: code version, package versions, device, threads, seed,
                           command line, dataset fingerprints, start / end time, seconds per phase
      train.log            one human-readable line per epoch and per event (start, resume, warnings)
      log.csv, log.json    one row per epoch: losses, lr, clusters, proxies, outliers, quality, mAP, seconds
      metrics.json         the final mAP / R1 / R5 / R10 / mINP (percent) of the last epoch
      checkpoints/last.pt  the checkpoint: model, optimizer, schedule, RNG, history, config (weights_only)
      epochs/NNN/          what epoch NNN (1-based) saw, for the workbench to go back in time:
        labels.npy           (N,) int32 pseudo label of every train crop that epoch trained on (-1 outlier)
        train_features.npy   (N, D) float16 global train features the labels came from (the model after
                             epoch NNN-1), at the `train.keep_features` cadence
        ranking.npz          the evaluation of the model after epoch NNN, on the epochs it was evaluated
                             and features are kept: every query's first RANKED_LIST_LENGTH gallery
                             crops (topk, topk_distance), per_query_ap, mAP / R1 / R5 / R10 / mINP
        weights.pt           the model after epoch NNN (`train.keep_weights`), for the attention view
        umap.npz             the workbench's 2-D embedding of that epoch, cached on first use
      figures/             static figures written by notebooks and the workbench
      .lock                held (flock) by the one process writing the run

Rules, each enforced here:
- One writer: `create` and `resume` take `.lock` with flock; a second process on the same folder is
  refused with the holder's pid, host and command while the first is alive. The OS drops the lock
  when its holder dies, so a stale `.lock` never blocks.
- A folder that already holds a run is never overwritten. A folder whose run failed before its first
  checkpoint holds only layout files and is reused by the next `create` (nothing to lose).
- The checkpoint is written before the logs, so the logs are never ahead of it; a resume rewrites the
  logs from the checkpoint's history.
- Loading the model of a run (`load_model`) needs the run folder only: the checkpoint replaces every
  weight, so the original `model.pretrained` file is not read.
- `--resume` continues with the saved config; only `RESUME_SETTABLE` keys may change (a moved dataset).
"""
from __future__ import annotations

import errno
import json
import os
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping

import yaml

from lwtgpf.config import Config, ConfigError, read_config_file
from lwtgpf.errors import UserError
from lwtgpf.fileio import append_line, atomic_write, write_json_atomic, write_text_atomic
from lwtgpf.provenance import collect_environment, command_line

if TYPE_CHECKING:
    import torch

    from lwtgpf.data.records import ReidDataset

try:
    import fcntl
except ImportError:  # Windows: no flock; the pid check below is the fallback
    fcntl = None

CONFIG = "config.yaml"
PROVENANCE = "provenance.json"
TRAIN_LOG = "train.log"
LOG_CSV = "log.csv"
LOG_JSON = "log.json"
METRICS = "metrics.json"
CHECKPOINTS = "checkpoints"
CHECKPOINT = f"{CHECKPOINTS}/last.pt"
EPOCHS = "epochs"
FIGURES = "figures"
LOCK = ".lock"
LAYOUT = (CONFIG, PROVENANCE, TRAIN_LOG, LOG_CSV, LOG_JSON, METRICS, CHECKPOINTS, EPOCHS, FIGURES, LOCK)
FEATURE_DTYPE = "float16"  # stored features: half the bytes; cosine scores move by ~1e-3 at most
RANKED_LIST_LENGTH = 20  # gallery crops kept per query in ranking.npz (the rank list view shows up to this)
RANKING_KEYS = ("topk", "topk_distance", "per_query_ap", "mAP", "mINP", "R1", "R5", "R10", "cmc")

# Settings a resumed run may change: where the data is, and how it is read. Everything else would make
# the run something it was not started as.
RESUME_SETTABLE = ("data.root", "data.workers", "eval.batch_size", "train.device")


class RunFolderError(UserError):
    """A run folder that is in use, holds another run, lacks what was asked for, or cannot resume as asked."""


class RunFolder:
    """One run folder. Paths: `config`, `checkpoint`, `provenance`, `train_log`, `log_csv`, `log_json`,
    `metrics`, `figures`; `create` / `resume` make this process its writer."""

    def __init__(self, path: str | Path):
        self.path = Path(path).expanduser().absolute()
        self._lock_handle: Any = None

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    # ---- the layout ------------------------------------------------------------------------------
    config = property(lambda self: self.path / CONFIG)
    provenance = property(lambda self: self.path / PROVENANCE)
    train_log = property(lambda self: self.path / TRAIN_LOG)
    log_csv = property(lambda self: self.path / LOG_CSV)
    log_json = property(lambda self: self.path / LOG_JSON)
    metrics = property(lambda self: self.path / METRICS)
    checkpoint = property(lambda self: self.path / CHECKPOINT)
    figures = property(lambda self: self.path / FIGURES)

    def has_checkpoint(self) -> bool:
        return self.checkpoint.is_file()

    def is_abandoned(self) -> bool:
        """True for a folder left by a run that failed before its first checkpoint: only layout files."""
        if not self.path.is_dir() or self.has_checkpoint():
            return False
        if not {p.name for p in self.path.iterdir()} <= set(LAYOUT):
            return False
        checkpoints = self.path / CHECKPOINTS
        return not checkpoints.is_dir() or not any(checkpoints.iterdir())

    @classmethod
    def of(cls, path: str | Path) -> "RunFolder":
        """An existing run folder (config.yaml and checkpoints/last.pt), or RunFolderError saying what is missing.

        `path` may also be the checkpoint file inside one (RUN/checkpoints/last.pt).
        """
        path = Path(path).expanduser()
        if path.is_file() and path.name == Path(CHECKPOINT).name and path.parent.name == CHECKPOINTS:
            path = path.parent.parent
        run = cls(path)
        if not run.path.is_dir():
            raise RunFolderError(f"run folder {run.path} does not exist")
        for need in (run.config, run.checkpoint):
            if not need.is_file():
                raise RunFolderError(f"{run.path} is not a run folder with a checkpoint: {need} is missing "
                                     "(`lwtgpf train --out RUN` writes config.yaml and checkpoints/last.pt)")
        return run

    # ---- one writer --------------------------------------------------------------------------------
    def create(self, cfg: Config, dataset: "ReidDataset | None" = None, **environment: Any) -> None:
        """Make this a new run of `cfg` and this process its writer: lock, config.yaml, provenance.json.

        Refuses a folder that holds anything but an abandoned run (see `is_abandoned`).
        """
        if self.path.exists() and not self.path.is_dir():
            raise RunFolderError(f"run folder {self.path} is a file; pick a new --out")
        if self.path.is_dir() and any(self.path.iterdir()) and not self.is_abandoned():
            what = "holds a run" if self.has_checkpoint() or self.config.is_file() else "is not empty"
            raise RunFolderError(f"run folder {self.path} {what}; pick a new --out"
                                 + (" or pass --resume" if self.has_checkpoint() else ""))
        (self.path / CHECKPOINTS).mkdir(parents=True, exist_ok=True)
        self.lock()
        for name in (LOG_CSV, LOG_JSON, METRICS, TRAIN_LOG, PROVENANCE):  # an abandoned attempt's files
            (self.path / name).unlink(missing_ok=True)
        self.drop_epochs_after(0)
        self.write_config(cfg)
        record = {"seed": cfg.train.seed, "started": _now(), "ended": None, "phase_seconds": {},
                  "datasets": dataset_fingerprints(dataset) if dataset is not None else {},
                  **collect_environment(**environment), "resumed": []}
        write_json_atomic(self.provenance, record)
        self.log_event(f"started: {record['command']}")

    def resumed_config(self, requested: Mapping[str, Any]) -> Config:
        """The run's config with what a resume command asks for (`requested_settings` of its --config and
        --set): a value equal to the run's is fine, RESUME_SETTABLE keys may change, anything else is
        refused by name."""
        from lwtgpf.config import override

        saved = self.read_config()
        current = saved.flat()
        changed = {k: (current[k], v) for k, v in requested.items() if current[k] != v}
        self._refuse(changed)
        return override(saved, {k: v for k, (_, v) in changed.items()})

    def check_resume(self, cfg: Config) -> dict[str, tuple[Any, Any]]:
        """RunFolderError unless `cfg` equals the run's config but for RESUME_SETTABLE keys; the changes."""
        if not self.has_checkpoint():
            raise RunFolderError(f"--resume: no checkpoint at {self.checkpoint}")
        changed = config_changes(self.read_config(), cfg.with_absolute_paths(Path.cwd()))
        self._refuse(changed)
        return changed

    def _refuse(self, changed: Mapping[str, tuple[Any, Any]]) -> None:
        refused = [key for key in changed if key not in RESUME_SETTABLE]
        if refused:
            shown = ", ".join(f"{k} ({changed[k][0]!r} in the run, {changed[k][1]!r} now)" for k in refused[:6])
            raise RunFolderError(f"--resume {self.path}: the config differs from the run's in {shown}; a resumed "
                                 f"run keeps its config (only {', '.join(RESUME_SETTABLE)} may change): "
                                 "start a new run to change it")

    def resume(self, cfg: Config, dataset: "ReidDataset | None" = None) -> list[str]:
        """Make this process the writer of an existing run to continue it with `cfg` (see `check_resume`;
        the new values of RESUME_SETTABLE keys are saved). Returns warnings (e.g. the training set
        changed since the run started), also written to train.log."""
        changed = self.check_resume(cfg)
        self.lock()
        warnings: list[str] = []
        if changed:
            self.write_config(cfg)
            self.log_event("resume changes " + ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in changed.items()))
        record = self.read_provenance()
        if dataset is not None:
            now = dataset_fingerprints(dataset)[dataset.name]
            before = record.get("datasets", {}).get(dataset.name, {})
            if before.get("train") and before["train"] != now["train"]:
                warnings.append(f"the training set of {dataset.name} changed since the run started "
                                f"(train list fingerprint {before['train']} -> {now['train']}, "
                                f"{before.get('train_size')} -> {now['train_size']} crops); the resumed epochs "
                                "train on the new list")
        record.setdefault("resumed", []).append({"at": _now(), "command": command_line(), "changes": sorted(changed)})
        write_json_atomic(self.provenance, record)
        self.log_event(f"resumed: {command_line()}")
        for line in warnings:
            self.log_event(f"warning: {line}")
        return warnings

    def lock(self) -> None:
        """Become the one writer of this folder; RunFolderError names the process that holds it."""
        if self._lock_handle is not None:
            return
        self.path.mkdir(parents=True, exist_ok=True)
        lock_path = self.path / LOCK
        handle = open(lock_path, "a+", encoding="utf-8")
        try:
            if fcntl is not None:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            elif _holder_alive(lock_path):
                raise BlockingIOError(errno.EWOULDBLOCK, "locked")
        except (BlockingIOError, PermissionError):
            handle.close()
            raise RunFolderError(f"run folder {self.path} is in use by {_describe_holder(lock_path)}; "
                                 "wait for it to finish or stop it (one writer per run folder)") from None
        except OSError:
            pass  # a file system without flock (some network mounts): proceed unlocked rather than fail
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": _now(),
                                 "command": command_line()}))
        handle.flush()
        self._lock_handle = handle

    def unlock(self) -> None:
        if self._lock_handle is not None:
            self._lock_handle.close()  # closing the file releases the flock
            self._lock_handle = None

    # ---- config ------------------------------------------------------------------------------------
    def write_config(self, cfg: Config) -> None:
        """config.yaml with absolute paths (relative ones resolved from the working folder now)."""
        write_text_atomic(self.config, yaml.safe_dump(cfg.with_absolute_paths(Path.cwd()).to_dict(), sort_keys=False))

    def read_config(self, data_root: str | Path | None = None) -> Config:
        """The run's config; relative paths in it are relative to the run folder. data_root: the dataset
        folder when it moved since the run (also checked to exist)."""
        if not self.config.is_file():
            raise RunFolderError(f"{self.config} is missing: {self.path} is not a run folder")
        cfg = read_config_file(self.config, base=self.path)
        if data_root is not None and str(data_root):
            root = Path(data_root).expanduser().absolute()
            if not root.is_dir():
                raise ConfigError(f"data_root {root} is not a folder")
            cfg.data.root = str(root)
        return cfg

    # ---- logs --------------------------------------------------------------------------------------
    def log_event(self, text: str) -> None:
        """One timestamped line in train.log."""
        append_line(self.train_log, f"{_now()} {text}")

    def write_history(self, history: list[dict[str, Any]]) -> None:
        """log.json and log.csv: one row per epoch (written after the epoch's checkpoint)."""
        import pandas as pd

        write_json_atomic(self.log_json, history)
        write_text_atomic(self.log_csv, pd.DataFrame(history).to_csv(index=False))

    def read_history(self) -> list[dict[str, Any]]:
        if not self.log_json.is_file():
            return []
        try:
            history = json.loads(self.log_json.read_text())
        except json.JSONDecodeError as err:
            raise RunFolderError(f"{self.log_json}: not valid JSON ({err})") from None
        if not isinstance(history, list):
            raise RunFolderError(f"{self.log_json}: expected a list of per-epoch rows, got {type(history).__name__}")
        return history

    def write_metrics(self, metrics: Mapping[str, Any]) -> None:
        write_json_atomic(self.metrics, dict(metrics))

    def read_metrics(self) -> dict[str, Any]:
        """metrics.json ({} when the run has not finished): mAP, R1, R5, R10, mINP in percent, epochs."""
        if not self.metrics.is_file():
            return {}
        try:
            metrics = json.loads(self.metrics.read_text())
        except json.JSONDecodeError as err:
            raise RunFolderError(f"{self.metrics}: not valid JSON ({err})") from None
        if not isinstance(metrics, dict):
            raise RunFolderError(f"{self.metrics}: expected a mapping of metrics, got {type(metrics).__name__}")
        return metrics

    def read_provenance(self) -> dict[str, Any]:
        if not self.provenance.is_file():
            return {}
        try:
            return json.loads(self.provenance.read_text())
        except json.JSONDecodeError as err:
            raise RunFolderError(f"{self.provenance}: not valid JSON ({err})") from None

    def finish(self, phase_seconds: Mapping[str, float]) -> None:
        """Record the end time and the seconds per phase of the whole run in provenance.json."""
        record = self.read_provenance()
        record["ended"] = _now()
        totals = dict(record.get("phase_seconds") or {})
        for phase, seconds in phase_seconds.items():
            totals[phase] = round(totals.get(phase, 0.0) + float(seconds), 3)
        record["phase_seconds"] = totals
        write_json_atomic(self.provenance, record)

    # ---- what each epoch saw -------------------------------------------------------------------
    def epoch_dir(self, epoch: int) -> Path:
        return self.path / EPOCHS / f"{epoch:03d}"

    def stored_epochs(self) -> list[int]:
        """Epochs with a stored record (labels at least), ascending."""
        folder = self.path / EPOCHS
        if not folder.is_dir():
            return []
        return sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit() and (p / "labels.npy").is_file())

    def write_epoch(self, epoch: int, labels, train_features=None, ranking=None, model_state=None) -> int:
        """Store what epoch `epoch` saw (see the layout); returns the bytes written.

        Written before the epoch's checkpoint: a crash in between redoes the epoch and overwrites it.
        """
        import numpy as np

        folder = self.epoch_dir(epoch)
        written = self._write_array(folder / "labels.npy", np.asarray(labels, dtype=np.int32))
        if train_features is not None:
            array = train_features.float().cpu().numpy() if hasattr(train_features, "cpu") else np.asarray(train_features)
            written += self._write_array(folder / "train_features.npy", array.astype(FEATURE_DTYPE))
        if ranking is not None:
            import io

            buffer = io.BytesIO()
            np.savez(buffer, **{key: np.asarray(ranking[key]) for key in RANKING_KEYS})
            atomic_write(folder / "ranking.npz", lambda stream: stream.write(buffer.getvalue()))
            written += len(buffer.getvalue())
        if model_state is not None:
            import torch

            atomic_write(folder / "weights.pt", lambda stream: torch.save(model_state, stream))
            written += (folder / "weights.pt").stat().st_size
        return written

    def read_labels(self, epoch: int):
        """(N,) int64 pseudo labels epoch `epoch` trained on; RunFolderError when not stored."""
        import numpy as np

        path = self.epoch_dir(epoch) / "labels.npy"
        if not path.is_file():
            raise RunFolderError(f"{self.path} stores no labels of epoch {epoch} (stored: {self.stored_epochs()})")
        return np.load(path).astype(np.int64)

    def read_features(self, epoch: int):
        """The stored (N, D) global train features of `epoch` as float32, or None when not kept."""
        import numpy as np

        path = self.epoch_dir(epoch) / "train_features.npy"
        return np.load(path).astype(np.float32) if path.is_file() else None

    def read_ranking(self, epoch: int) -> dict | None:
        """The stored evaluation of `epoch` (RANKING_KEYS; scalars as floats), or None when not kept."""
        import numpy as np

        path = self.epoch_dir(epoch) / "ranking.npz"
        if not path.is_file():
            return None
        with np.load(path) as saved:
            return {key: saved[key].item() if saved[key].ndim == 0 else saved[key] for key in saved.files}

    def drop_epochs_after(self, epoch: int) -> None:
        """Remove records of epochs after `epoch` (a resume redoes them)."""
        import shutil

        for stored in self.stored_epochs():
            if stored > epoch:
                shutil.rmtree(self.epoch_dir(stored))

    def epochs_size(self) -> int:
        """Bytes under epochs/."""
        folder = self.path / EPOCHS
        return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else 0

    @staticmethod
    def _write_array(path: Path, array) -> int:
        import numpy as np

        atomic_write(path, lambda stream: np.save(stream, array, allow_pickle=False))
        return path.stat().st_size

    # ---- the model of a run ------------------------------------------------------------------------
def load_checkpoint_model(checkpoint: str | Path, cfg: Config, num_cameras: int | None,
                          device: "str | torch.device" = "cpu") -> "torch.nn.Module":
    """`cfg`'s model with the weights of a training checkpoint (camera embedding: see load_model_state)."""
    import torch

    from lwtgpf.engine.checkpoint import load_checkpoint
    from lwtgpf.models.pretrained import load_model_state
    from lwtgpf.models.registry import build_model

    state = load_checkpoint(checkpoint, map_location="cpu")["model"]
    if num_cameras is None:
        num_cameras = checkpoint_cameras(state)
    model = build_model(cfg, max(num_cameras, 1), pretrained=False)
    report = load_model_state(model, state, str(checkpoint))
    for reason in dict.fromkeys(report.skipped.values()):
        print(f"{checkpoint}: {reason}")
    return model.to(torch.device(device)).eval()


def checkpoint_cameras(model_state: Mapping[str, Any]) -> int:
    """The number of cameras a checkpoint's camera embedding was trained for (0: none)."""
    for key, value in model_state.items():
        if key.endswith("camera_embed"):
            return int(value.shape[0])
    return 0


def checkpoint_config(checkpoint: str | Path) -> Config:
    """The config a checkpoint was trained with: its run folder's config.yaml, else the copy inside it."""
    checkpoint = Path(checkpoint)
    run = checkpoint.parent.parent
    if checkpoint.parent.name == CHECKPOINTS and (run / CONFIG).is_file():
        return RunFolder(run).read_config()
    from lwtgpf.config import config_from_dict
    from lwtgpf.engine.checkpoint import load_checkpoint

    saved = load_checkpoint(checkpoint)
    if "config" not in saved:
        raise RunFolderError(f"{checkpoint}: holds no config; pass --config")
    return config_from_dict(json.loads(saved["config"]), source=str(checkpoint))


def config_for_checkpoint(cfg: Config, trained: Config) -> tuple[Config, list[str]]:
    """`cfg` with the checkpoint's own model and input settings (`MODEL_KEYS` of `trained`, the config it
    was trained with): a checkpoint only works with the network and input size it was trained for.
    Returns the config and one note per replaced value (for the user: nothing is replaced silently)."""
    from lwtgpf.config import MODEL_KEYS, override

    changed = {k: v for k, v in config_changes(cfg, trained).items() if k in MODEL_KEYS}
    notes = [f"{k} = {b!r} from the checkpoint (the config says {a!r})" for k, (a, b) in changed.items()]
    return override(cfg, {k: b for k, (a, b) in changed.items()}), notes


def config_changes(before: Config, after: Config) -> dict[str, tuple[Any, Any]]:
    """{key: (before, after)} for every setting that differs."""
    a, b = before.flat(), after.flat()
    return {key: (a[key], b[key]) for key in a if a[key] != b[key]}


def dataset_fingerprints(dataset: "ReidDataset") -> dict[str, dict[str, Any]]:
    """{dataset name: {split: fingerprint, "<split>_size": crops}}: file names, pids and cameras of each
    split (not the folder, so a moved dataset keeps its fingerprint)."""
    from lwtgpf.provenance import fingerprint

    splits = {}
    for split in ("train", "query", "gallery"):
        records = dataset.split(split)
        splits[split] = fingerprint([(Path(r.path).name, r.pid, r.camid) for r in records])
        splits[f"{split}_size"] = len(records)
    return {dataset.name: splits}


def _now() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S")


def _describe_holder(lock_path: Path) -> str:
    try:
        holder = json.loads(lock_path.read_text() or "{}")
    except (OSError, json.JSONDecodeError):
        holder = {}
    if not holder:
        return "another process"
    return (f"process {holder.get('pid')} on {holder.get('host')} since {holder.get('since')} "
            f"({holder.get('command', '?')})")


def _holder_alive(lock_path: Path) -> bool:
    """Without flock: is the pid in the lock file a live process on this host?"""
    try:
        holder = json.loads(lock_path.read_text() or "{}")
    except (OSError, json.JSONDecodeError):
        return False
    if holder.get("host") != socket.gethostname() or not holder.get("pid"):
        return False
    try:
        os.kill(int(holder["pid"]), 0)
    except (OSError, ValueError):
        return False
    return int(holder["pid"]) != os.getpid()


def iter_runs(folder: str | Path) -> Iterable[RunFolder]:
    """Every run folder (with a checkpoint) under `folder`, newest checkpoint last."""
    checkpoints = sorted(Path(folder).glob(f"**/{CHECKPOINT}"), key=lambda p: p.stat().st_mtime)
    return [RunFolder(p.parent.parent) for p in checkpoints]
