"""Process-group helpers for torchrun (one or several machines, NCCL on GPUs, gloo on CPUs).

The rule that keeps results independent of the GPU count: every rank sees the same global data
(features all-gathered before clustering, labels broadcast from rank 0, memory updated from the
all-gathered batch), and each rank computes only its slice of every global batch.
"""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device_type: str, timeout_minutes: float = 120.0) -> DistInfo:
    """Join the process group torchrun describes in the environment; a plain run gets DistInfo().

    The timeout is raised well above NCCL's 10-minute default because rank 0 may cluster a large
    dataset for longer than that while the other ranks wait at the broadcast.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistInfo()
    if not dist.is_initialized():
        dist.init_process_group(
            backend="nccl" if device_type == "cuda" else "gloo",
            timeout=datetime.timedelta(minutes=timeout_minutes),
        )
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device_type == "cuda":
        torch.cuda.set_device(local_rank)
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank)


def current_info() -> DistInfo:
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    return DistInfo()


def all_gather_rows(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate every rank's `tensor` (rows may differ in number) along dim 0, in rank order."""
    info = current_info()
    if not info.enabled:
        return tensor
    sizes = [torch.zeros(1, dtype=torch.long, device=tensor.device) for _ in range(info.world_size)]
    dist.all_gather(sizes, torch.tensor([tensor.shape[0]], device=tensor.device))
    longest = int(max(s.item() for s in sizes))
    padded = tensor.new_zeros((longest, *tensor.shape[1:]))
    padded[: tensor.shape[0]] = tensor
    gathered = [torch.empty_like(padded) for _ in range(info.world_size)]
    dist.all_gather(gathered, padded)
    return torch.cat([g[: int(s.item())] for g, s in zip(gathered, sizes)])


def broadcast_object(obj, src: int = 0):
    """Send a picklable object from `src` to every rank (labels, proxy tables, log rows)."""
    if not current_info().enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_reduce_mean(values: torch.Tensor) -> torch.Tensor:
    """Element-wise mean over ranks of a CPU tensor (log values: every rank holds the same result)."""
    info = current_info()
    if not info.enabled:
        return values
    device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    reduced = values.to(device).clone()
    dist.all_reduce(reduced)
    return reduced.cpu() / info.world_size


def shard_range(n: int, info: DistInfo) -> range:
    """This rank's contiguous share of n items (the first n % world ranks get one more)."""
    base, extra = divmod(n, info.world_size)
    start = info.rank * base + min(info.rank, extra)
    return range(start, start + base + (1 if info.rank < extra else 0))


def barrier() -> None:
    if current_info().enabled:
        dist.barrier()



class GlobalBatchNorm1d(torch.nn.BatchNorm1d):
    """BatchNorm1d whose training statistics cover the global batch of all ranks, on any backend.

    torch's SyncBatchNorm runs on GPUs only; the BN necks are small (B x C), so a differentiable
    all-reduce of their sums gives the same normalisation on gloo (CPU) and NCCL alike. Outside a
    multi-rank training forward it is a plain BatchNorm1d.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and current_info().enabled):
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce

        count = torch.tensor([float(x.shape[0])], device=x.device, dtype=x.dtype)
        sums = all_reduce(torch.cat([x.sum(0), (x * x).sum(0), count]))
        n = sums[-1]
        mean = sums[: x.shape[1]] / n
        var = sums[x.shape[1] : 2 * x.shape[1]] / n - mean * mean
        with torch.no_grad():
            self.num_batches_tracked += 1
            m = self.momentum
            self.running_mean.mul_(1 - m).add_(m * mean.detach())
            self.running_var.mul_(1 - m).add_(m * var.detach() * n / (n - 1))
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias


def convert_batch_norms_for_ddp(module: torch.nn.Module, device_type: str) -> torch.nn.Module:
    """Batch statistics over the global batch: SyncBatchNorm on GPUs; on CPUs (gloo) the BatchNorm1d
    necks become GlobalBatchNorm1d (a CPU ResNet's BatchNorm2d layers stay per rank)."""
    if device_type == "cuda":
        return torch.nn.SyncBatchNorm.convert_sync_batchnorm(module)
    for name, child in module.named_children():
        if type(child) is torch.nn.BatchNorm1d:
            synced = GlobalBatchNorm1d(child.num_features, child.eps, child.momentum, child.affine)
            synced.load_state_dict(child.state_dict())
            synced.bias.requires_grad_(child.bias.requires_grad)
            setattr(module, name, synced.to(child.weight.device))
        else:
            convert_batch_norms_for_ddp(child, device_type)
    return module
