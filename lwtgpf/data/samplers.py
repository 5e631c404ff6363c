"""P x K batch samplers over pseudo-label groups (SPEC section 6).

Each batch holds P = batch_size // K groups (proxies or clusters) with K crops each, laid out group by
group: indices [g*K, (g+1)*K) of a batch belong to one group. Crops whose group id is -1 (clustering
outliers) are never drawn. An epoch is a fixed `iters_per_epoch` batches.

Both samplers are BATCH samplers: pass them as `DataLoader(dataset, batch_sampler=sampler)`; each
iteration yields the list of dataset indices of one (per-rank) batch.

Determinism and DDP: the indices of an epoch depend only on (seed, epoch, group ids), never on global
random state; call `set_epoch(epoch)` every epoch. `batch_size` is the GLOBAL batch size: every rank
draws the same global batches and keeps its contiguous slice [rank*B/W, (rank+1)*B/W) of each, so one
process with batch B and W processes with B/W each train on exactly the same crops. With
`with_seeds=True` each index comes as `(index, augmentation seed)` for `ImageDataset`, so the random
augmentation of every crop is the same too.
"""
from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import torch


class _GroupBatchSampler(torch.utils.data.Sampler[list[int]]):
    """Shared machinery: validate, pick P distinct groups per batch, split the global batch by rank.

    Subclasses implement `_draw_members(groups, rng) -> (n, K) dataset indices` for n drawn groups.
    """

    def __init__(
        self,
        group_ids: Sequence[int] | np.ndarray,
        batch_size: int = 32,
        num_instances: int = 4,
        iters_per_epoch: int = 200,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        with_seeds: bool = False,
    ) -> None:
        ids = np.asarray(group_ids, dtype=np.int64)
        if ids.ndim != 1:
            raise ValueError(f"group ids must be a 1-D sequence (one per crop), got shape {ids.shape}")
        if num_instances < 1 or batch_size < num_instances or batch_size % num_instances:
            raise ValueError(
                f"batch_size ({batch_size}) must be a positive multiple of num_instances ({num_instances})"
            )
        if world_size < 1 or batch_size % world_size or not 0 <= rank < world_size:
            raise ValueError(
                f"batch_size ({batch_size}) must split evenly over world_size ({world_size}), "
                f"and rank ({rank}) must be in [0, world_size)"
            )
        if iters_per_epoch < 1:
            raise ValueError(f"iters_per_epoch must be >= 1, got {iters_per_epoch}")
        # Crops of each group, contiguous: members[starts[g] : starts[g] + sizes[g]].
        valid = np.flatnonzero(ids >= 0)
        if valid.size == 0:
            raise ValueError("no crop has a group id >= 0 (all are outliers); nothing to sample")
        self.members = valid[np.argsort(ids[valid], kind="stable")]
        self.group_labels, self.starts, self.sizes = np.unique(
            ids[self.members], return_index=True, return_counts=True
        )
        self.batch_size = batch_size
        self.num_instances = num_instances
        self.groups_per_batch = batch_size // num_instances
        self.iters_per_epoch = iters_per_epoch
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.with_seeds = with_seeds
        self.epoch = 0

    @property
    def num_groups(self) -> int:
        return len(self.sizes)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.iters_per_epoch

    def __iter__(self) -> Iterator[list[int]] | Iterator[list[tuple[int, int]]]:
        share = self.batch_size // self.world_size
        per_rank = slice(self.rank * share, (self.rank + 1) * share)
        local = self.global_batches()[:, per_rank].tolist()
        if not self.with_seeds:
            return iter(local)
        seeds = self.augmentation_seeds()[:, per_rank].tolist()
        return iter([list(zip(batch, batch_seeds)) for batch, batch_seeds in zip(local, seeds)])

    def augmentation_seeds(self) -> np.ndarray:
        """(iters_per_epoch, batch_size) seeds, one per position of the global batches: a crop's random
        augmentation depends on (seed, epoch, position) only, not on the number of ranks or workers."""
        rng = np.random.default_rng([self.seed, self.epoch, 1])
        return rng.integers(0, 2**31 - 1, size=(self.iters_per_epoch, self.batch_size))

    def global_batches(self) -> np.ndarray:
        """(iters_per_epoch, batch_size) dataset indices of this epoch, identical on every rank."""
        rng = np.random.default_rng([self.seed, self.epoch])
        groups = self._draw_groups(rng)  # (iters * P,) group positions
        crops = self._draw_members(groups, rng)  # (iters * P, K) dataset indices
        return crops.reshape(self.iters_per_epoch, self.batch_size)

    def _draw_groups(self, rng: np.random.Generator) -> np.ndarray:
        """P distinct groups per batch, walking through random permutations of all groups so that every
        group is drawn once before any is drawn again. A permutation is cut to a multiple of P (the rest
        of it is dropped) so that no batch straddles two permutations and repeats a group. With fewer
        groups than P, groups repeat inside a batch (drawn with replacement)."""
        n_draws = self.iters_per_epoch * self.groups_per_batch
        if self.num_groups < self.groups_per_batch:
            return rng.integers(0, self.num_groups, size=n_draws)
        usable = self.num_groups // self.groups_per_batch * self.groups_per_batch
        n_perms = -(-n_draws // usable)
        perms = np.argsort(rng.random((n_perms, self.num_groups)), axis=1)[:, :usable]
        return perms.reshape(-1)[:n_draws]

    def _draw_members(self, groups: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError


class ProxyBalancedSampler(_GroupBatchSampler):
    """P proxies x K crops per batch (SPEC: 8 x 4 = 32).

    `group_ids` (N,): the camera-aware proxy of each crop, -1 for outliers. A proxy with >= K crops gives
    K distinct crops; successive draws of the same proxy in an epoch walk through a shuffled order of its
    crops, so all are used before one repeats. A proxy with < K crops is resampled with replacement.
    """

    def _draw_members(self, groups: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        k = self.num_instances
        # Shuffle crops within each group: sort by (group, random key).
        group_of_member = np.repeat(np.arange(self.num_groups), self.sizes)
        shuffled = self.members[np.lexsort((rng.random(len(self.members)), group_of_member))]
        # Occurrence number of each draw among the draws of the same group (0, 1, 2, ... in draw order).
        order = np.argsort(groups, kind="stable")
        occurrence = np.empty_like(groups)
        occurrence[order] = _position_in_run(groups[order])

        sizes = self.sizes[groups][:, None]  # (n, 1)
        walk = (occurrence[:, None] * k + np.arange(k)) % sizes  # (n, K), distinct when size >= K
        with_replacement = (rng.random((len(groups), k)) * sizes).astype(np.int64)
        positions = np.where(sizes >= k, walk, with_replacement)
        return shuffled[self.starts[groups][:, None] + positions]


class CameraDiverseSampler(_GroupBatchSampler):
    """P groups x K crops per batch where each group's K crops are one random anchor plus crops from
    OTHER cameras where possible.

    `group_ids` (N,): pseudo label (cluster) of each crop, -1 for outliers; `camids` (N,): 0-based cameras.
    The K-1 companions are chosen round-robin over the other cameras (one crop per other camera, then a
    second per camera, ...), then crops of the anchor's camera; a group with < K crops repeats crops.
    """

    def __init__(
        self,
        group_ids: Sequence[int] | np.ndarray,
        camids: Sequence[int] | np.ndarray,
        batch_size: int = 32,
        num_instances: int = 4,
        iters_per_epoch: int = 200,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        with_seeds: bool = False,
    ) -> None:
        super().__init__(group_ids, batch_size, num_instances, iters_per_epoch, seed, rank, world_size, with_seeds)
        self.camids = np.asarray(camids, dtype=np.int64)
        if self.camids.shape != (len(np.asarray(group_ids)),):
            raise ValueError(
                f"camids must have one entry per crop ({len(np.asarray(group_ids))}), got shape {self.camids.shape}"
            )

    def _draw_members(self, groups: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        k = self.num_instances
        out = np.empty((len(groups), k), dtype=np.int64)
        # One loop step per drawn group (iters * P per epoch, independent of the dataset size).
        for row, group in enumerate(groups):
            crops = self.members[self.starts[group] : self.starts[group] + self.sizes[group]]
            anchor = rng.integers(len(crops))
            others = np.delete(crops, anchor)
            preferred = others[_camera_round_robin(self.camids[others], self.camids[crops[anchor]], rng)]
            companions = preferred[: k - 1]
            if len(companions) < k - 1:  # small group: fill with repeats of its crops
                companions = np.r_[companions, rng.choice(crops, size=k - 1 - len(companions))]
            out[row, 0] = crops[anchor]
            out[row, 1:] = companions
        return out


def _camera_round_robin(cams: np.ndarray, anchor_cam: int, rng: np.random.Generator) -> np.ndarray:
    """Order (a permutation of range(len(cams))) that takes one random crop of each other camera, then a
    second of each, ..., and the anchor's camera last."""
    if len(cams) == 0:
        return np.zeros(0, dtype=np.int64)
    random_key = rng.random(len(cams))
    by_camera = np.lexsort((random_key, cams))
    rank_in_camera = np.empty(len(cams), dtype=np.int64)
    rank_in_camera[by_camera] = _position_in_run(cams[by_camera])
    return np.lexsort((random_key, rank_in_camera, cams == anchor_cam))


def _position_in_run(sorted_values: np.ndarray) -> np.ndarray:
    """For a sorted array, the position of each element within its run of equal values: [5,5,7,9,9,9]
    -> [0,1,0,0,1,2]."""
    run_start = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    run_length = np.diff(np.r_[run_start, len(sorted_values)])
    return np.arange(len(sorted_values)) - np.repeat(run_start, run_length)
