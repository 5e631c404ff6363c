"""P x K samplers: batch composition, outliers, determinism, DDP rank split, camera diversity."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from lwtgpf.config import DataConfig
from lwtgpf.data import CameraDiverseSampler, ImageDataset, ProxyBalancedSampler, Record, build_train_transform

K = 4


def proxy_ids() -> np.ndarray:
    """Proxies of sizes 1, 2, 4, 7, 8, 10, 12 shuffled among 9 outliers (-1)."""
    sizes = {10: 1, 11: 2, 12: 4, 13: 7, 14: 8, 15: 10, 16: 12}
    ids = np.r_[np.repeat(list(sizes), list(sizes.values())), np.full(9, -1)]
    return np.random.default_rng(0).permutation(ids)


def groups_of(batch: list[int]) -> np.ndarray:
    """(P, K) view of a batch."""
    return np.asarray(batch).reshape(-1, K)


@pytest.mark.parametrize("make", [
    lambda ids, **kw: ProxyBalancedSampler(ids, **kw),
    lambda ids, **kw: CameraDiverseSampler(ids, np.arange(len(ids)) % 3, **kw),
], ids=["proxy_balanced", "camera_diverse"])
def test_batch_composition(make):
    ids = proxy_ids()
    sampler = make(ids, batch_size=12, num_instances=K, iters_per_epoch=30, seed=3)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 30
    assert sum(len(b) for b in batches) == 30 * 12
    drawn = set()
    for batch in batches:
        chunks = ids[groups_of(batch)]  # (P, K) proxy ids
        assert (chunks >= 0).all(), "an outlier was drawn"
        assert (chunks == chunks[:, :1]).all(), "a group of K mixes proxies"
        assert len(set(chunks[:, 0])) == 3, "a batch repeats a proxy"
        for group in groups_of(batch):
            size = int((ids == ids[group[0]]).sum())
            if size >= K:
                assert len(set(group)) == K, f"proxy of {size} crops gave repeated crops {group}"
        drawn |= set(chunks[:, 0])
    assert drawn == set(ids[ids >= 0]), "some proxy was never drawn in 90 draws of 7 proxies"


def test_repeated_draws_walk_through_all_crops_of_a_proxy():
    ids = proxy_ids()
    batches = np.asarray(list(ProxyBalancedSampler(ids, batch_size=12, num_instances=K, iters_per_epoch=30)))
    chunks = batches.reshape(-1, K)
    of_size_8 = chunks[ids[chunks[:, 0]] == 14]
    assert len(of_size_8) >= 2
    # two successive draws of an 8-crop proxy use all 8 crops before any repeats
    assert len(set(of_size_8[:2].ravel())) == 8


def test_small_proxies_are_resampled_with_replacement():
    ids = np.r_[np.zeros(2, dtype=int), np.ones(2, dtype=int)]  # two proxies of 2 crops
    batches = list(ProxyBalancedSampler(ids, batch_size=8, num_instances=K, iters_per_epoch=5))
    for batch in batches:
        for group in groups_of(batch):
            assert set(group) <= set(np.flatnonzero(ids == ids[group[0]]))
            assert len(set(group)) <= 2


def test_fewer_proxies_than_p_still_fills_batches():
    ids = np.repeat([0, 1], 5)
    batches = list(ProxyBalancedSampler(ids, batch_size=16, num_instances=K, iters_per_epoch=3))
    assert [len(b) for b in batches] == [16, 16, 16]


def test_determinism_and_epochs():
    ids = proxy_ids()
    a = ProxyBalancedSampler(ids, batch_size=12, num_instances=K, iters_per_epoch=10, seed=5)
    b = ProxyBalancedSampler(ids, batch_size=12, num_instances=K, iters_per_epoch=10, seed=5)
    torch.manual_seed(0), np.random.seed(0)
    epoch0 = list(a)
    torch.manual_seed(1), np.random.seed(1)  # global random state must not matter
    assert list(b) == epoch0 and list(a) == epoch0
    a.set_epoch(1)
    assert list(a) != epoch0
    a.set_epoch(0)
    assert list(a) == epoch0
    other_seed = ProxyBalancedSampler(ids, batch_size=12, num_instances=K, iters_per_epoch=10, seed=6)
    assert list(other_seed) != epoch0


@pytest.mark.parametrize("world_size", [2, 4])
@pytest.mark.parametrize("cls", [ProxyBalancedSampler, CameraDiverseSampler])
def test_rank_split_sees_the_same_crops(cls, world_size):
    ids = proxy_ids()
    extra = (np.arange(len(ids)) % 3,) if cls is CameraDiverseSampler else ()

    def make(rank, world):
        sampler = cls(ids, *extra, batch_size=16, num_instances=K, iters_per_epoch=12, seed=2,
                      rank=rank, world_size=world)
        sampler.set_epoch(3)
        return list(sampler)

    single = make(0, 1)
    per_rank = [make(rank, world_size) for rank in range(world_size)]
    assert all(len(batch) == 16 // world_size for rank in per_rank for batch in rank)
    joined = [sum((per_rank[r][i] for r in range(world_size)), []) for i in range(12)]
    assert joined == single


def test_invalid_arguments():
    ids = proxy_ids()
    with pytest.raises(ValueError, match="multiple of num_instances"):
        ProxyBalancedSampler(ids, batch_size=10, num_instances=4)
    with pytest.raises(ValueError, match="world_size"):
        ProxyBalancedSampler(ids, batch_size=12, num_instances=4, world_size=5)
    with pytest.raises(ValueError, match="outliers"):
        ProxyBalancedSampler(np.full(10, -1), batch_size=8, num_instances=4)
    with pytest.raises(ValueError, match="camids"):
        CameraDiverseSampler(ids, np.zeros(3), batch_size=8, num_instances=4)


def test_camera_diverse_groups():
    # cluster 0: 4 cameras x 5 crops; cluster 1: one camera; cluster 2: 2 cameras, 6 crops; outliers
    ids = np.r_[np.zeros(20, dtype=int), np.ones(6, dtype=int), np.full(6, 2), np.full(5, -1)]
    cams = np.r_[np.repeat([0, 1, 2, 3], 5), np.zeros(6, dtype=int), [0, 0, 0, 0, 0, 1], np.arange(5)]
    sampler = CameraDiverseSampler(ids, cams, batch_size=12, num_instances=K, iters_per_epoch=20, seed=0)
    anchors_by_camera = set()
    for batch in sampler:
        for group in groups_of(batch):
            cluster = ids[group[0]]
            assert (ids[group] == cluster).all() and len(set(group)) == K
            if cluster == 0:
                assert len(set(cams[group])) == 4, f"cluster spanning 4 cameras gave cameras {cams[group]}"
                anchors_by_camera.add(cams[group[0]])
            elif cluster == 2:
                assert set(cams[group]) == {0, 1}, "the single crop of camera 1 must join every draw"
    assert anchors_by_camera == {0, 1, 2, 3}, "anchors should come from every camera"


def test_proxy_balanced_is_not_camera_diverse_by_construction():
    """Control for the test above: plain P x K sampling of the same cluster often repeats a camera."""
    ids = np.zeros(20, dtype=int)
    cams = np.repeat([0, 1, 2, 3], 5)
    batches = np.asarray(list(ProxyBalancedSampler(ids, batch_size=4, num_instances=K, iters_per_epoch=50)))
    assert any(len(set(cams[batch])) < 4 for batch in batches)
    diverse = np.asarray(list(CameraDiverseSampler(ids, cams, batch_size=4, num_instances=K, iters_per_epoch=50)))
    assert all(len(set(cams[batch])) == 4 for batch in diverse)


def test_dataloader_with_batch_sampler(tmp_path):
    records = []
    for i, proxy in enumerate([0, 0, 1, 1, 1, 2, -1, 2]):
        path = tmp_path / f"{i:04d}_c1s1_000001_00.jpg"
        Image.new("RGB", (8, 16), (i * 20, 50, 90)).save(path)
        records.append(Record(str(path), proxy, 0))
    sampler = ProxyBalancedSampler([r.pid for r in records], batch_size=8, num_instances=2, iters_per_epoch=2,
                                   seed=1, rank=1, world_size=2)
    transform = build_train_transform(DataConfig(height=32, width=16, pad=2))
    loader = torch.utils.data.DataLoader(ImageDataset(records, transform), batch_sampler=sampler)
    expected = list(sampler)
    got = list(loader)
    assert len(got) == 2
    for (images, pids, camids, index), indices in zip(got, expected):
        assert images.shape == (4, 3, 32, 16)
        assert index.tolist() == indices
        assert pids.tolist() == [records[i].pid for i in indices] and -1 not in pids.tolist()


def test_seeded_augmentation_does_not_depend_on_world_size(tmp_path):
    """With `with_seeds=True` every crop of a global batch gets the same random augmentation whether one
    process loads the whole batch or two ranks load half each (and whatever the global RNG state is)."""
    records = []
    for i, proxy in enumerate([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]):
        path = tmp_path / f"{i:04d}_c1s1_000001_00.jpg"
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (16, 8, 3), dtype=np.uint8)).save(path)
        records.append(Record(str(path), proxy, 0))
    transform = build_train_transform(DataConfig(height=32, width=16, pad=4, erasing_p=0.5, flip_p=0.5))
    dataset = ImageDataset(records, transform)

    def load(rank, world):
        sampler = ProxyBalancedSampler([r.pid for r in records], batch_size=8, num_instances=2, iters_per_epoch=3,
                                       seed=4, rank=rank, world_size=world, with_seeds=True)
        sampler.set_epoch(1)
        return list(torch.utils.data.DataLoader(dataset, batch_sampler=sampler))

    torch.manual_seed(0)
    single = load(0, 1)
    torch.manual_seed(123)  # a different global RNG state must not matter
    halves = [load(rank, 2) for rank in range(2)]
    for i, (images, _, _, index) in enumerate(single):
        joined = torch.cat([halves[0][i][0], halves[1][i][0]])
        assert torch.equal(torch.cat([halves[0][i][3], halves[1][i][3]]), index)
        assert torch.equal(joined, images)
    # the augmentation is really random: some loaded crops differ from their un-augmented version
    plain = ImageDataset(records, build_train_transform(DataConfig(height=32, width=16, flip_p=0, pad=0, erasing_p=0)))
    augmented = [not torch.equal(images[j], plain[int(index[j])][0]) for images, _, _, index in single for j in range(8)]
    assert any(augmented)
