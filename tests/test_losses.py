"""GP-O2CAP loss against a per-sample reference written straight from SPEC section 5."""
import dataclasses

import pytest
import torch
import torch.nn.functional as F

from lwtgpf.config import LossConfig
from lwtgpf.losses import gp_o2cap_loss
from lwtgpf.memory import CameraProxyMemory


def _soft_ce(logits, positives, negatives):
    log_prob = torch.log_softmax(logits[positives + negatives], dim=0)
    return -log_prob[: len(positives)].mean()


def _take(ranked, hard_negatives):
    return ranked if hard_negatives <= 0 else ranked[:hard_negatives]


def reference_loss(features, proxy_ids, memory, cfg, use_online):
    """Loops over features and samples, sets built from the spec's sentences."""
    bank, cluster, camera = memory.features, memory.cluster_of_proxy.tolist(), memory.camera_of_proxy.tolist()
    num_features, num_proxies = bank.shape[:2]
    batch = features.shape[0]
    per_sample = {name: [[None] * batch for _ in range(num_features)] for name in ("offline", "online")}
    for k in range(num_features):
        for i in range(batch):
            y = int(proxy_ids[i])
            logits = bank[k] @ features[i, k] / cfg.temperature
            sim = (bank[k] @ features[i, k]).detach()  # f_i . M_p for every p, ranks without gradient
            # offline: all proxies of y's cluster vs the hardest others by score
            positives = [p for p in range(num_proxies) if cluster[p] == cluster[y]]
            others = sorted((p for p in range(num_proxies) if p not in positives), key=lambda p: -float(sim[p]))
            per_sample["offline"][k][i] = _soft_ce(logits, positives, _take(others, cfg.hard_negatives))
            if not use_online:
                continue
            b = cfg.online_balance
            a = [b * float(sim[p]) + (1 - b) * float(bank[k, y] @ bank[k, p]) for p in range(num_proxies)]
            best_of_camera = {}
            for p in range(num_proxies):
                if camera[p] not in best_of_camera or a[p] > a[best_of_camera[camera[p]]]:
                    best_of_camera[camera[p]] = p
            positives = sorted(best_of_camera.values(), key=lambda p: -a[p])[: cfg.online_positives]
            rest = sorted((p for p in range(num_proxies) if p not in positives), key=lambda p: -a[p])
            per_sample["online"][k][i] = _soft_ce(logits, positives, _take(rest, cfg.hard_negatives))

    sample_cameras = [camera[int(y)] for y in proxy_ids]

    def reduce(losses):
        if cfg.reduction == "batch_mean":
            return sum(losses) / len(losses)
        total = 0
        for c in set(sample_cameras):
            members = [loss for loss, cam in zip(losses, sample_cameras) if cam == c]
            total = total + sum(members) / len(members)
        return total

    total = 0
    weights = {"offline": cfg.offline_weight, "online": cfg.online_weight}
    for name in (["offline", "online"] if use_online else ["offline"]):
        per_feature = [reduce(per_sample[name][k]) for k in range(num_features)]
        term = per_feature[0]
        if num_features > 1:
            term = term + cfg.part_weight * sum(per_feature[1:]) / (num_features - 1)
        total = total + weights[name] * term
    return total


def _case(num_features, clusters, cameras, proxy_ids, dim=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    bank = F.normalize(torch.randn(num_features, len(clusters), dim, generator=g, dtype=torch.float64), dim=-1)
    memory = CameraProxyMemory(bank, torch.tensor(clusters), torch.tensor(cameras), momentum=0.2)
    features = F.normalize(torch.randn(len(proxy_ids), num_features, dim, generator=g, dtype=torch.float64), dim=-1)
    return features, torch.tensor(proxy_ids), memory


def _compare(features, proxy_ids, memory, cfg, use_online=True):
    mine = features.clone().requires_grad_()
    theirs = features.clone().requires_grad_()
    loss, components = gp_o2cap_loss(mine, proxy_ids, memory, cfg, use_online=use_online)
    expected = reference_loss(theirs, proxy_ids, memory, cfg, use_online)
    loss.backward()
    expected.backward()
    torch.testing.assert_close(loss, expected, rtol=0, atol=1e-5)
    torch.testing.assert_close(mine.grad, theirs.grad, rtol=0, atol=1e-5)
    assert components["loss"] == pytest.approx(expected.item(), abs=1e-5)
    return components


# 14 proxies: 5 clusters over 4 cameras, one single-proxy cluster (4) and a camera-1-free cluster.
CLUSTERS = [0, 0, 0, 1, 1, 2, 2, 2, 2, 3, 3, 4, 1, 3]
CAMERAS = [0, 1, 2, 0, 3, 0, 1, 2, 3, 1, 2, 3, 2, 0]
BATCH = [0, 0, 3, 5, 5, 5, 11, 9, 13, 7, 2, 12]


@pytest.mark.parametrize("reduction", ["batch_mean", "camera_sum"])
@pytest.mark.parametrize("hard_negatives", [4, 50, 0])
def test_matches_reference_with_parts(reduction, hard_negatives):
    cfg = LossConfig(reduction=reduction, hard_negatives=hard_negatives)
    components = _compare(*_case(6, CLUSTERS, CAMERAS, BATCH), cfg)
    assert set(components) == {"loss", "offline_global", "offline_parts", "online_global", "online_parts"}


def test_matches_reference_with_weights_and_fewer_cameras_than_positives():
    # Two cameras (< online_positives = 3), fewer proxies than hard negatives, camera 1 has no proxy.
    cfg = LossConfig(offline_weight=0.7, online_weight=1.3, part_weight=0.25, online_balance=0.4)
    _compare(*_case(3, [0, 0, 1, 2, 2], [0, 2, 2, 0, 2], [0, 1, 2, 3, 4, 4]), cfg)


def test_matches_reference_with_a_single_camera_and_single_proxy_clusters():
    cfg = LossConfig(reduction="camera_sum", hard_negatives=2)
    _compare(*_case(2, [0, 1, 2, 3, 4], [0, 0, 0, 0, 0], [0, 1, 1, 4, 2], seed=3), cfg)


def test_o2cap_is_global_only():
    cfg = LossConfig(reduction="camera_sum", hard_negatives=5)
    components = _compare(*_case(1, CLUSTERS, CAMERAS, BATCH, seed=4), cfg)
    assert set(components) == {"loss", "offline_global", "online_global"}


def test_cluster_contrast_is_cross_entropy_over_all_clusters():
    cfg = LossConfig(temperature=0.05, hard_negatives=0)
    features, proxy_ids, memory = _case(1, list(range(9)), [0] * 9, [0, 3, 3, 8, 5, 1], seed=7)
    loss, components = gp_o2cap_loss(features, proxy_ids, memory, cfg, use_online=False)
    expected = F.cross_entropy(features[:, 0] @ memory.features[0].T / 0.05, proxy_ids)
    torch.testing.assert_close(loss, expected)
    assert set(components) == {"loss", "offline_global"}
    _compare(features, proxy_ids, memory, cfg, use_online=False)


def test_gradient_reaches_features_only_and_memory_is_untouched():
    features, proxy_ids, memory = _case(6, CLUSTERS, CAMERAS, BATCH, seed=2)
    before = memory.features.clone()
    features.requires_grad_()
    loss, _ = gp_o2cap_loss(features, proxy_ids, memory, LossConfig())
    loss.backward()
    assert features.grad is not None and features.grad.abs().sum() > 0
    assert not memory.features.requires_grad
    torch.testing.assert_close(memory.features, before)
    memory.update(features.detach(), proxy_ids)  # the trainer's order: backward, then update
    assert not torch.equal(memory.features, before)


def test_float32_features_against_the_float64_reference():
    features, proxy_ids, memory = _case(6, CLUSTERS, CAMERAS, BATCH, seed=5)
    memory32 = CameraProxyMemory(memory.features.float(), memory.cluster_of_proxy, memory.camera_of_proxy, 0.2)
    loss32, _ = gp_o2cap_loss(features.float(), proxy_ids, memory32, LossConfig())
    loss64, _ = gp_o2cap_loss(features, proxy_ids, memory, LossConfig())
    assert loss32.dtype == torch.float32
    torch.testing.assert_close(loss32.double(), loss64, rtol=1e-5, atol=1e-5)


def test_bad_inputs_are_named():
    features, proxy_ids, memory = _case(2, [0, 1], [0, 1], [0, 1])
    with pytest.raises(ValueError, match="reduction"):
        gp_o2cap_loss(features, proxy_ids, memory, dataclasses.replace(LossConfig(), reduction="sum"))
    with pytest.raises(ValueError, match=r"\(B, 2, 8\)"):
        gp_o2cap_loss(features[:, :1], proxy_ids, memory, LossConfig())
    with pytest.raises(ValueError, match="proxy ids"):
        gp_o2cap_loss(features, torch.tensor([0, 2]), memory, LossConfig())
    with pytest.raises(ValueError, match="temperature"):
        gp_o2cap_loss(features, proxy_ids, memory, LossConfig(temperature=0.0))


def test_autocast_keeps_the_loss_in_float32():
    features, proxy_ids, memory = _case(6, CLUSTERS, CAMERAS, BATCH, seed=6)
    memory32 = CameraProxyMemory(memory.features.float(), memory.cluster_of_proxy, memory.camera_of_proxy, 0.2)
    expected, _ = gp_o2cap_loss(features.float(), proxy_ids, memory32, LossConfig())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, _ = gp_o2cap_loss(features.float(), proxy_ids, memory32, LossConfig())
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss, expected)


def test_identity_classifier_is_label_smoothed_cross_entropy_per_feature():
    from lwtgpf.losses import IdentityClassifier

    torch.manual_seed(0)
    cfg = LossConfig(temperature=0.1, part_weight=0.5, label_smoothing=0.2)
    classifier = IdentityClassifier(num_features=3, num_classes=5, dim=8, cfg=cfg)
    feats = F.normalize(torch.randn(6, 3, 8), dim=-1)
    labels = torch.tensor([0, 1, 2, 3, 4, 0])
    loss, parts = classifier(feats, labels)

    def ce(k):  # per sample: -(1 - s) log p_y - s/C sum_c log p_c
        logits = feats[:, k] @ F.normalize(classifier.weight[k], dim=-1).T / 0.1
        logp = logits.log_softmax(dim=1)
        return (-(0.8 * logp[torch.arange(6), labels]) - 0.2 * logp.mean(dim=1)).mean()

    expected = ce(0) + 0.5 * (ce(1) + ce(2)) / 2
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert parts["ce_global"] == pytest.approx(ce(0).item(), rel=1e-5)
    loss.backward()
    assert classifier.weight.grad is not None and classifier.weight.grad.abs().sum() > 0
