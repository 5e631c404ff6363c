"""CameraProxyMemory: centres from features, the batch-order momentum update, tables, persistence."""
import io

import pytest
import torch
import torch.nn.functional as F

from lwtgpf.memory import CameraProxyMemory, occurrence_rank, proxies_by_camera


def _unit(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(*shape, generator=g, dtype=torch.float64), dim=-1)


def test_from_features_is_normalised_mean_per_proxy_and_skips_outliers():
    features = _unit(3, 20, 8)  # F=3, N=20, D=8
    proxy_of_sample = torch.tensor([0, 1, 2, -1, 0, 1, 3, 3, -1, 2, 0, 1, 2, 3, 4, 4, -1, 0, 4, 2])
    clusters, cameras = torch.tensor([0, 0, 1, 1, 2]), torch.tensor([0, 1, 0, 2, 1])
    memory = CameraProxyMemory.from_features(features, proxy_of_sample, clusters, cameras, momentum=0.2)
    assert memory.features.shape == (3, 5, 8)
    for p in range(5):
        members = (proxy_of_sample == p).nonzero().flatten()
        expected = F.normalize(features[:, members].mean(dim=1), dim=-1)
        torch.testing.assert_close(memory.features[:, p], expected)
    assert not memory.features.requires_grad


def test_from_features_accepts_a_single_feature_matrix():
    features = _unit(6, 4)
    proxy_of_sample, cameras = torch.tensor([0, 0, 1, 1, 2, 2]), torch.zeros(3, dtype=torch.long)
    memory = CameraProxyMemory.from_features(features, proxy_of_sample, torch.arange(3), cameras, 0.2)
    assert memory.features.shape == (1, 3, 4)
    torch.testing.assert_close(memory.features[0, 1], F.normalize(features[2] + features[3], dim=0))


def test_from_features_rejects_empty_proxies_and_bad_ids():
    features = _unit(4, 3)
    with pytest.raises(ValueError, match=r"proxies \[2\] have no sample"):
        CameraProxyMemory.from_features(features, torch.tensor([0, 1, 1, -1]), torch.arange(3), torch.arange(3), 0.2)
    with pytest.raises(ValueError, match="proxy ids must be in"):
        CameraProxyMemory.from_features(features, torch.tensor([0, 1, 5, -1]), torch.arange(3), torch.arange(3), 0.2)
    with pytest.raises(ValueError, match="shape"):
        CameraProxyMemory.from_features(features, torch.tensor([0, 1]), torch.arange(2), torch.arange(2), 0.2)


def test_occurrence_rank_counts_earlier_equal_entries():
    assert occurrence_rank(torch.tensor([4, 2, 4, 4, 2, 7])).tolist() == [0, 0, 1, 2, 1, 0]


def _sequential_update(memory_rows, features, proxy_ids, momentum):
    """The public code's per-sample loop, the reference the vectorised update must equal."""
    rows = memory_rows.clone()
    for i, y in enumerate(proxy_ids.tolist()):
        moved = momentum * rows[:, y] + (1 - momentum) * features[i]
        rows[:, y] = moved / moved.norm(dim=-1, keepdim=True)
    return rows


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_update_equals_the_sequential_per_sample_update(seed):
    g = torch.Generator().manual_seed(seed)
    num_proxies = 7
    proxies = torch.arange(num_proxies)
    memory = CameraProxyMemory(_unit(3, num_proxies, 16, seed=seed), proxies // 2, proxies % 3, 0.2)
    # P x K style batch with repeats scattered in random order, plus a proxy seen once.
    repeats = torch.tensor([1, 1, 1, 1, 4, 4, 4, 4, 6, 6, 0])
    proxy_ids = torch.cat([repeats, torch.randint(0, num_proxies, (9,), generator=g)])
    proxy_ids = proxy_ids[torch.randperm(len(proxy_ids), generator=g)]
    features = _unit(len(proxy_ids), 3, 16, seed=seed + 10)
    expected = _sequential_update(memory.features, features, proxy_ids, 0.2)
    untouched = torch.tensor([p for p in range(num_proxies) if p not in proxy_ids.tolist()], dtype=torch.long)
    before = memory.features[:, untouched].clone()
    memory.update(features, proxy_ids)
    torch.testing.assert_close(memory.features, expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(memory.features[:, untouched], before)


def test_update_order_matters_and_is_batch_order():
    memory = CameraProxyMemory(_unit(1, 2, 4), torch.arange(2), torch.arange(2), 0.2)
    features = _unit(2, 1, 4, seed=5)
    forward, backward = memory.clone(), memory.clone()
    forward.update(features, torch.tensor([0, 0]))
    backward.update(features.flip(0), torch.tensor([0, 0]))
    assert not torch.allclose(forward.features, backward.features)
    expected = _sequential_update(memory.features, features, torch.tensor([0, 0]), 0.2)
    torch.testing.assert_close(forward.features, expected)


def test_update_takes_no_gradient_and_checks_shapes():
    memory = CameraProxyMemory(_unit(2, 3, 4), torch.arange(3), torch.arange(3), 0.2)
    features = _unit(2, 2, 4).requires_grad_()
    memory.update(features, torch.tensor([0, 2]))
    assert not memory.features.requires_grad
    with pytest.raises(ValueError, match=r"\(B, 2, 4\)"):
        memory.update(_unit(2, 4), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="proxy ids must be in"):
        memory.update(_unit(2, 2, 4), torch.tensor([0, 3]))


def test_proxies_by_camera_lists_each_camera_padded_and_empty_cameras():
    table = proxies_by_camera(torch.tensor([2, 0, 2, 0, 2]))
    assert table.tolist() == [[1, 3, -1], [-1, -1, -1], [0, 2, 4]]


def test_state_dict_survives_a_weights_only_round_trip():
    memory = CameraProxyMemory(_unit(2, 3, 4).float(), torch.tensor([0, 0, 1]), torch.tensor([0, 1, 0]), 0.2)
    buffer = io.BytesIO()
    torch.save(memory.state_dict(), buffer)
    buffer.seek(0)
    restored = CameraProxyMemory.from_state_dict(torch.load(buffer, weights_only=True))
    torch.testing.assert_close(restored.features, memory.features)
    assert restored.cluster_of_proxy.tolist() == [0, 0, 1] and restored.camera_of_proxy.tolist() == [0, 1, 0]
    assert restored.momentum == 0.2
    restored.update(_unit(1, 2, 4).float(), torch.tensor([1]))
    assert not torch.equal(restored.features, memory.features)  # a copy, not a view of the saved rows


def test_half_precision_features_give_a_float32_memory():
    features = _unit(6, 4).half()
    proxy_of_sample = torch.tensor([0, 0, 1, 1, 2, 2])
    memory = CameraProxyMemory.from_features(features, proxy_of_sample, torch.arange(3), torch.arange(3), 0.2)
    assert memory.features.dtype == torch.float32
    memory.update(_unit(2, 1, 4).half(), torch.tensor([0, 0]))
    assert memory.features.dtype == torch.float32
    torch.testing.assert_close(memory.features.norm(dim=-1), torch.ones(1, 3))
