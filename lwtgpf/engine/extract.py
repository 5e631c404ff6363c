"""Feature extraction in eval mode with the test transform: for clustering and for evaluation."""
from __future__ import annotations

from contextlib import nullcontext
from typing import Sequence

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from lwtgpf.data.loading import ImageDataset
from lwtgpf.data.records import Record
from lwtgpf.engine.distributed import all_gather_rows, current_info, shard_range


def autocast_context(device: torch.device, amp_dtype: torch.dtype | None):
    """bf16/fp16 autocast on CUDA when asked for; a no-op on the CPU path."""
    if amp_dtype is None or device.type != "cuda":
        return nullcontext()
    return torch.autocast("cuda", dtype=amp_dtype)


@torch.no_grad()
def extract_features(
    model: torch.nn.Module,
    records: Sequence[Record],
    transform,
    *,
    kind: str = "test",
    batch_size: int = 128,
    workers: int = 0,
    device: torch.device | str = "cpu",
    amp_dtype: torch.dtype | None = None,
    desc: str = "extract",
) -> torch.Tensor:
    """Features of `records`, in record order, on the CPU as float32.

    kind="all":  every neck output stacked, (N, 1 + num_parts, D): what clustering and the memory use.
    kind="test": the test-time feature the config selects (global, or global+parts, flip-averaged),
                 (N, D'): what evaluation ranks with.
    Under torchrun each rank extracts a contiguous shard and the shards are all-gathered.
    """
    if kind not in ("all", "test"):
        raise ValueError(f"kind must be 'all' or 'test', got {kind!r}")
    device = torch.device(device)
    info = current_info()
    shard = shard_range(len(records), info)
    loader = DataLoader(
        ImageDataset([records[i] for i in shard], transform),
        batch_size=batch_size, shuffle=False, num_workers=workers, pin_memory=device.type == "cuda",
    )
    was_training = model.training
    model.eval()
    chunks = []
    for images, _, camids, _ in tqdm(loader, desc=desc, leave=False, disable=not info.is_main):
        images, camids = images.to(device, non_blocking=True), camids.to(device, non_blocking=True)
        with autocast_context(device, amp_dtype):
            out = model(images, camids).stacked() if kind == "all" else model.test_features(images, camids)
        chunks.append(out.float())
    model.train(was_training)
    local = torch.cat(chunks) if chunks else torch.zeros(0, device=device)
    return all_gather_rows(local).cpu()


# ---------------------------------------------------------------------------------------------------
# The features file of `lwtgpf extract` (read by `lwtgpf cluster` and by anyone's own analysis)

FEATURE_FILE_KEYS = ("features", "pids", "camids", "paths", "num_cameras")


def save_feature_file(path, features: torch.Tensor, records: Sequence[Record], num_cameras: int) -> None:
    """{"features": (N, F, D) or (N, D) float32, "pids"/"camids": (N,) int64, "paths": N str, "num_cameras"},
    written atomically with torch.save (weights_only-loadable)."""
    from lwtgpf.fileio import atomic_write

    payload = {
        "features": features,
        "pids": torch.tensor([r.pid for r in records], dtype=torch.int64),
        "camids": torch.tensor([r.camid for r in records], dtype=torch.int64),
        "paths": [r.path for r in records],
        "num_cameras": int(num_cameras),
    }
    atomic_write(path, lambda stream: torch.save(payload, stream))


def load_feature_file(path) -> dict:
    """A file written by `save_feature_file`, checked; UserError naming the file and what is wrong."""
    from pathlib import Path

    from lwtgpf.errors import UserError

    path = Path(path)
    if not path.is_file():
        raise UserError(f"features file {path} does not exist (write one with `lwtgpf extract --out FILE.pt`)")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # not a torch file, truncated, or objects weights_only refuses
        raise UserError(f"{path}: not a features file of `lwtgpf extract` ({type(error).__name__}: "
                        f"{str(error).splitlines()[0] if str(error) else ''})") from None
    missing = [k for k in FEATURE_FILE_KEYS if not isinstance(saved, dict) or k not in saved]
    if missing:
        found = sorted(saved)[:6] if isinstance(saved, dict) else type(saved).__name__
        raise UserError(f"{path}: not a features file of `lwtgpf extract`: it lacks {', '.join(missing)} "
                        f"(found {found}); a checkpoint goes to --checkpoint, not --features")
    feats, n = saved["features"], len(saved["paths"])
    if not (isinstance(feats, torch.Tensor) and feats.dim() in (2, 3) and feats.shape[0] == n
            and saved["pids"].shape == (n,) and saved["camids"].shape == (n,)):
        raise UserError(f"{path}: inconsistent features file: features {tuple(getattr(feats, 'shape', ()))}, "
                        f"{n} paths, pids {tuple(saved['pids'].shape)}, camids {tuple(saved['camids'].shape)}")
    return saved
