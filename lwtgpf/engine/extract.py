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
