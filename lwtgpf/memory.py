"""The camera-aware proxy memory of GP-O2CAP (SPEC sections 4.5 and 5).

One row per (feature, proxy): `features[k, p]` is the L2-normalised centre of proxy p for feature k
(k = 0 the global feature, k = 1.. the parts, the layout of `ReidFeatures.stacked()`). A proxy is a
(cluster, camera) pair; `cluster_of_proxy` and `camera_of_proxy` say which. The memory is rebuilt from
the extracted features every epoch (`from_features`) and moved towards each training batch once per
iteration (`update`). Camera-agnostic Cluster Contrast is the same memory with proxies = clusters.

Everything here is plain tensors without autograd, so a checkpoint stores `state_dict()` as is and DDP
ranks can broadcast it.
"""
from __future__ import annotations

from typing import Mapping

import torch
import torch.nn.functional as F


class CameraProxyMemory:
    """Proxy centres `features` (F, P, D) plus the tables `cluster_of_proxy` and `camera_of_proxy` (P,).

    `proxies_of_camera` (C, L) lists each camera's proxies (padded with -1) for the online association.
    momentum m weighs the old row in `update`: M_y <- normalise(m * M_y + (1 - m) * f).
    The memory owns `features` and writes it in place; pass a copy if the caller keeps using it.
    """

    def __init__(
        self,
        features: torch.Tensor,
        cluster_of_proxy: torch.Tensor,
        camera_of_proxy: torch.Tensor,
        momentum: float,
    ) -> None:
        if features.dim() != 3:
            raise ValueError(f"memory features must be (F, P, D), got shape {tuple(features.shape)}")
        num_proxies = features.shape[1]
        for name, table in (("cluster_of_proxy", cluster_of_proxy), ("camera_of_proxy", camera_of_proxy)):
            if table.shape != (num_proxies,):
                raise ValueError(f"{name} must have shape ({num_proxies},), got {tuple(table.shape)}")
            if num_proxies and int(table.min()) < 0:
                raise ValueError(f"{name} holds negative ids; outliers (-1) have no proxy")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"memory momentum must be in [0, 1), got {momentum}")
        self.features = features.detach()
        self.cluster_of_proxy = cluster_of_proxy.to(features.device, torch.long)
        self.camera_of_proxy = camera_of_proxy.to(features.device, torch.long)
        self.momentum = float(momentum)
        self.proxies_of_camera = proxies_by_camera(self.camera_of_proxy)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_features(
        cls,
        features: torch.Tensor,
        proxy_of_sample: torch.Tensor,
        cluster_of_proxy: torch.Tensor,
        camera_of_proxy: torch.Tensor,
        momentum: float,
    ) -> "CameraProxyMemory":
        """Each row = the L2-normalised mean of its proxy's sample features.

        features:        (F, N, D) or (N, D) (a single feature, F = 1), one column per training crop
        proxy_of_sample: (N,) proxy id of each crop, -1 for outliers (ignored)
        cluster_of_proxy, camera_of_proxy: (P,) integer tables; every proxy needs at least one crop
        """
        if features.dim() == 2:
            features = features.unsqueeze(0)
        if features.dim() != 3:
            raise ValueError(f"features must be (F, N, D) or (N, D), got shape {tuple(features.shape)}")
        num_samples = features.shape[1]
        if proxy_of_sample.shape != (num_samples,):
            raise ValueError(
                f"proxy_of_sample must have shape ({num_samples},) to match features, "
                f"got {tuple(proxy_of_sample.shape)}"
            )
        num_proxies = cluster_of_proxy.shape[0]
        proxy_of_sample = proxy_of_sample.to(features.device, torch.long)
        if num_samples and (int(proxy_of_sample.min()) < -1 or int(proxy_of_sample.max()) >= num_proxies):
            raise ValueError(
                f"proxy ids must be in [-1, {num_proxies}), got {proxy_of_sample.min()}..{proxy_of_sample.max()}"
            )
        kept = proxy_of_sample >= 0
        ids = proxy_of_sample[kept]
        counts = torch.bincount(ids, minlength=num_proxies)
        if num_proxies and int(counts.min()) == 0:
            empty = torch.nonzero(counts == 0).flatten()[:10].tolist()
            raise ValueError(f"proxies {empty} have no sample; every proxy needs at least one crop")
        dtype = torch.promote_types(features.dtype, torch.float32)  # half-precision rows drift under updates
        with torch.no_grad():
            sums = features.new_zeros(features.shape[0], num_proxies, features.shape[2], dtype=dtype)
            sums.index_add_(1, ids, features[:, kept].detach().to(dtype))
            centres = F.normalize(sums / counts.to(dtype)[None, :, None], dim=-1)
        return cls(centres, cluster_of_proxy, camera_of_proxy, momentum)

    # ------------------------------------------------------------------ shapes and tables
    @property
    def num_features(self) -> int:
        return self.features.shape[0]

    @property
    def num_proxies(self) -> int:
        return self.features.shape[1]

    @property
    def dim(self) -> int:
        return self.features.shape[2]

    @property
    def device(self) -> torch.device:
        return self.features.device

    # ------------------------------------------------------------------ the momentum update
    @torch.no_grad()
    def update(self, features: torch.Tensor, proxy_ids: torch.Tensor) -> None:
        """Move the rows of the batch's proxies towards its features, all F features at once.

        features:  (B, F, D) training-mode features (the layout of `ReidFeatures.stacked()`), any float
                   dtype (cast to the memory's); under DDP pass the batch all-gathered from every rank
        proxy_ids: (B,) proxy of each sample

        Same result as updating sample by sample in batch order: the i-th occurrence of a proxy in the
        batch is applied in round i, and one round updates distinct proxies only, so the loop runs
        max-repeats times (num_instances, 4 in the reference recipe), never once per sample.
        Call it after `loss.backward()`: it writes the rows in place, and the loss graph holds them.
        """
        if features.dim() != 3 or features.shape[1:] != (self.num_features, self.dim):
            raise ValueError(
                f"features must be (B, {self.num_features}, {self.dim}), got shape {tuple(features.shape)}"
            )
        if proxy_ids.shape != (features.shape[0],):
            raise ValueError(f"proxy_ids must have shape ({features.shape[0]},), got {tuple(proxy_ids.shape)}")
        if features.shape[0] == 0:
            return
        proxy_ids = proxy_ids.to(self.device, torch.long)
        if int(proxy_ids.min()) < 0 or int(proxy_ids.max()) >= self.num_proxies:
            raise ValueError(f"proxy ids must be in [0, {self.num_proxies}), got {proxy_ids.min()}..{proxy_ids.max()}")
        features = features.detach().to(self.device, self.features.dtype).transpose(0, 1)  # (F, B, D)
        rank = occurrence_rank(proxy_ids)
        m = self.momentum
        for r in range(int(rank.max()) + 1):
            at_rank = rank == r
            ids = proxy_ids[at_rank]
            moved = m * self.features[:, ids] + (1.0 - m) * features[:, at_rank]
            self.features[:, ids] = F.normalize(moved, dim=-1)

    # ------------------------------------------------------------------ persistence
    def to(self, device: torch.device | str) -> "CameraProxyMemory":
        """Move the memory in place (like `nn.Module.to`) and return it."""
        self.features = self.features.to(device)
        self.cluster_of_proxy = self.cluster_of_proxy.to(device)
        self.camera_of_proxy = self.camera_of_proxy.to(device)
        self.proxies_of_camera = self.proxies_of_camera.to(device)
        return self

    def clone(self) -> "CameraProxyMemory":
        """An independent copy (`update` writes rows in place)."""
        return CameraProxyMemory(self.features.clone(), self.cluster_of_proxy, self.camera_of_proxy, self.momentum)

    def state_dict(self) -> dict[str, torch.Tensor | float]:
        return {
            "features": self.features,
            "cluster_of_proxy": self.cluster_of_proxy,
            "camera_of_proxy": self.camera_of_proxy,
            "momentum": self.momentum,
        }

    @classmethod
    def from_state_dict(cls, state: Mapping[str, torch.Tensor | float]) -> "CameraProxyMemory":
        missing = {"features", "cluster_of_proxy", "camera_of_proxy", "momentum"} - set(state)
        if missing:
            raise KeyError(f"memory state lacks {sorted(missing)}")
        features = state["features"].clone()  # `update` writes in place: never alias the caller's tensor
        return cls(features, state["cluster_of_proxy"], state["camera_of_proxy"], float(state["momentum"]))


def occurrence_rank(ids: torch.Tensor) -> torch.Tensor:
    """(B,) how many earlier entries of `ids` (B,) equal each entry: [4, 2, 4, 4] -> [0, 0, 1, 2]."""
    order = torch.argsort(ids, stable=True)
    sorted_ids = ids[order]
    position = torch.arange(len(ids), device=ids.device)
    new_group = torch.ones_like(sorted_ids, dtype=torch.bool)
    new_group[1:] = sorted_ids[1:] != sorted_ids[:-1]
    group_start = torch.cummax(torch.where(new_group, position, 0), dim=0).values
    rank = torch.empty_like(position)
    rank[order] = position - group_start
    return rank


def proxies_by_camera(camera_of_proxy: torch.Tensor) -> torch.Tensor:
    """(C, L) proxy ids of each camera 0..C-1 from camera_of_proxy (P,), padded at the end with -1.

    C = max camera id + 1; a camera without proxies this epoch is a row of -1s.
    """
    num_proxies = camera_of_proxy.shape[0]
    num_cameras = int(camera_of_proxy.max()) + 1 if num_proxies else 0
    counts = torch.bincount(camera_of_proxy, minlength=num_cameras)
    width = int(counts.max()) if num_cameras else 0
    order = torch.argsort(camera_of_proxy, stable=True)
    sorted_cams = camera_of_proxy[order]
    starts = torch.cumsum(counts, 0) - counts
    slot = torch.arange(num_proxies, device=camera_of_proxy.device) - starts[sorted_cams]
    table = torch.full((num_cameras, width), -1, dtype=torch.long, device=camera_of_proxy.device)
    table[sorted_cams, slot] = order
    return table
