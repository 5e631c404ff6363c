"""GP-O2CAP: offline and online proxy-association losses for global and part features (SPEC section 5).

For every feature k (global, then each part) and sample i with proxy y_i:

  scores       s_ip = f_i . M_p / tau
  offline      positives = every proxy of y_i's cluster (all cameras); negatives = the `hard_negatives`
               highest-scoring other proxies
  online       a_ip = b * f_i . M_p + (1 - b) * M_{y_i} . M_p (detached); per camera the proxy with the
               highest a; positives = the `online_positives` best of those; negatives = the
               `hard_negatives` highest-a proxies among the rest
  each term    soft-target cross-entropy over positives + negatives, target 1/|positives| on each positive

  L = offline_weight * (off_g + part_weight * mean_k off_k) + online_weight * (on_g + part_weight * mean_k on_k)

Choices where the public code (O2CAP, LWTGPF-2025 `mb.py`) is silent or breaks, documented once here:
- The per-camera maximum runs over every camera that has proxies this epoch and excludes nothing (the
  sample's own proxy usually wins its camera, as in the public code); cameras without proxies are skipped
  (the public code would fail on them).
- Fewer cameras than `online_positives`: every camera's best proxy is a positive, target 1/|positives|
  (the public code keeps 1/3 on three slots and so labels a negative as a positive).
- Fewer proxies than `hard_negatives`: all non-positive proxies are negatives (the public code's
  top-k slice does the same implicitly). `hard_negatives <= 0` means "all", which with proxies =
  clusters and no online term is the Cluster Contrast loss (plain cross-entropy over all clusters).
- The ranking that picks negatives is detached, as in the public code; gradients flow into the
  features only, the memory is not a parameter.
- reduction "batch_mean" (LWTGPF) averages over the batch; "camera_sum" (O2CAP) averages within each
  camera present in the batch (a sample's camera is its proxy's camera) and sums over cameras.

Everything is vectorised over features, batch and proxies with masks, top-k and gather.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from lwtgpf.config import LossConfig
from lwtgpf.memory import CameraProxyMemory

REDUCTIONS = ("batch_mean", "camera_sum")


def gp_o2cap_loss(
    features: torch.Tensor,
    proxy_ids: torch.Tensor,
    memory: CameraProxyMemory,
    cfg: LossConfig,
    use_online: bool = True,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The GP-O2CAP loss of a batch and its components for the log.

    features:  (B, F, D) training-mode features, global first (`ReidFeatures.stacked()`); F must match
               the memory (F = 1 is O2CAP's global-only loss)
    proxy_ids: (B,) proxy of each sample
    use_online: False gives the offline term only (Cluster Contrast with proxies = clusters)
    Returns (scalar loss, {"loss", "offline_global", "offline_parts", "online_global", "online_parts"}),
    the part entries only when F > 1 and the online ones only with use_online; components are unweighted.
    """
    _check_inputs(features, proxy_ids, memory, cfg)
    # Scores and softmax in the memory's precision (float32) even inside an autocast region.
    with torch.autocast(device_type=memory.device.type, enabled=False):
        return _gp_o2cap_loss(features, proxy_ids.to(memory.device, torch.long), memory, cfg, use_online)


def _gp_o2cap_loss(
    features: torch.Tensor, proxy_ids: torch.Tensor, memory: CameraProxyMemory, cfg: LossConfig, use_online: bool
) -> tuple[torch.Tensor, dict[str, float]]:
    bank = memory.features  # (F, P, D), no grad
    feats = features.to(memory.device, bank.dtype).transpose(0, 1)  # (F, B, D)
    similarity = feats @ bank.transpose(1, 2)  # (F, B, P): f_i . M_p
    logits = similarity / cfg.temperature

    cluster = memory.cluster_of_proxy
    offline_positives = (cluster[None, :] == cluster[proxy_ids][:, None]).expand_as(logits)
    sample_weight = _sample_weights(memory.camera_of_proxy[proxy_ids], cfg.reduction, logits.dtype)  # (B,)

    terms = {"offline": soft_association_loss(logits, offline_positives, similarity.detach(), cfg.hard_negatives)}
    weights = {"offline": cfg.offline_weight}
    if use_online:
        with torch.no_grad():
            own_proxy = bank[:, proxy_ids]  # (F, B, D)
            proxy_similarity = own_proxy @ bank.transpose(1, 2)  # (F, B, P): M_{y_i} . M_p
            association = cfg.online_balance * similarity + (1.0 - cfg.online_balance) * proxy_similarity
            online_positives = camera_nearest_positives(association, memory.proxies_of_camera, cfg.online_positives)
        terms["online"] = soft_association_loss(logits, online_positives, association, cfg.hard_negatives)
        weights["online"] = cfg.online_weight

    total = logits.new_zeros(())
    components: dict[str, torch.Tensor] = {}
    for name, per_sample in terms.items():
        per_feature = (per_sample * sample_weight).sum(dim=1)  # (F,)
        term = components[f"{name}_global"] = per_feature[0]
        if per_feature.shape[0] > 1:
            parts = components[f"{name}_parts"] = per_feature[1:].mean()
            term = term + cfg.part_weight * parts
        total = total + weights[name] * term
    components["loss"] = total
    values = torch.stack(list(components.values())).tolist()  # one device sync for the whole log row
    return total, dict(zip(components, values))


def soft_association_loss(
    logits: torch.Tensor, positives: torch.Tensor, ranking: torch.Tensor, hard_negatives: int
) -> torch.Tensor:
    """(F, B) soft-target cross-entropy of each feature and sample.

    logits:    (F, B, P) scaled scores (carry the gradient)
    positives: (F, B, P) bool, at least one per row; the target is 1/|positives| on each
    ranking:   (F, B, P) detached scores that pick the `hard_negatives` hardest non-positives
               (all of them when hard_negatives <= 0 or fewer exist)
    """
    negatives = ~positives
    if 0 < hard_negatives < logits.shape[-1]:
        hardest = ranking.masked_fill(positives, float("-inf")).topk(hard_negatives, dim=-1).indices
        # With fewer non-positives than hard_negatives the top-k also returns positives; harmless, since
        # only the union with the positives is used.
        negatives = torch.zeros_like(positives).scatter_(-1, hardest, True)
    selected = positives | negatives
    log_prob = torch.log_softmax(logits.masked_fill(~selected, float("-inf")), dim=-1)
    positive_log_prob = log_prob.masked_fill(~positives, 0.0).sum(dim=-1)
    return -positive_log_prob / positives.sum(dim=-1)


def camera_nearest_positives(association: torch.Tensor, proxies_of_camera: torch.Tensor, k: int) -> torch.Tensor:
    """(F, B, P) bool: per camera the proxy with the highest association, then the k best of those.

    association:       (F, B, P) detached a_ip
    proxies_of_camera: (C, L) proxy ids per camera padded with -1 (`CameraProxyMemory.proxies_of_camera`)
    k: online positives; fewer cameras with proxies than k make all of their best proxies positives.
    """
    table = proxies_of_camera[proxies_of_camera[:, 0] >= 0]  # cameras that have proxies, (C', L)
    per_camera = association[..., table.clamp(min=0)].masked_fill(table < 0, float("-inf"))  # (F, B, C', L)
    best_value, best_slot = per_camera.max(dim=-1)  # (F, B, C')
    best_proxy = table.expand(*best_slot.shape, -1).gather(-1, best_slot.unsqueeze(-1)).squeeze(-1)
    chosen = best_value.topk(min(k, table.shape[0]), dim=-1).indices
    positive_ids = best_proxy.gather(-1, chosen)  # (F, B, k')
    return torch.zeros_like(association, dtype=torch.bool).scatter_(-1, positive_ids, True)


def _sample_weights(camera_of_sample: torch.Tensor, reduction: str, dtype: torch.dtype) -> torch.Tensor:
    """(B,) weights that turn per-sample losses into the batch loss by a weighted sum."""
    if reduction == "batch_mean":
        batch = camera_of_sample.numel()
        return torch.full((batch,), 1.0 / batch, dtype=dtype, device=camera_of_sample.device)
    # camera_sum: mean within each camera present, summed over cameras.
    counts = torch.bincount(camera_of_sample)
    return 1.0 / counts[camera_of_sample].to(dtype)


def _check_inputs(features: torch.Tensor, proxy_ids: torch.Tensor, memory: CameraProxyMemory, cfg: LossConfig) -> None:
    if features.dim() != 3 or features.shape[1:] != (memory.num_features, memory.dim):
        raise ValueError(
            f"features must be (B, {memory.num_features}, {memory.dim}) to match the memory, "
            f"got {tuple(features.shape)}"
        )
    if features.shape[0] == 0:
        raise ValueError("the loss needs a non-empty batch")
    if proxy_ids.shape != (features.shape[0],):
        raise ValueError(f"proxy_ids must have shape ({features.shape[0]},), got {tuple(proxy_ids.shape)}")
    if int(proxy_ids.min()) < 0 or int(proxy_ids.max()) >= memory.num_proxies:
        raise ValueError(f"proxy ids must be in [0, {memory.num_proxies}), got {proxy_ids.min()}..{proxy_ids.max()}")
    if cfg.reduction not in REDUCTIONS:
        raise ValueError(f"loss.reduction must be one of {REDUCTIONS}, got {cfg.reduction!r}")
    if cfg.temperature <= 0:
        raise ValueError(f"loss.temperature must be > 0, got {cfg.temperature}")
    if cfg.online_positives < 1:
        raise ValueError(f"loss.online_positives must be >= 1, got {cfg.online_positives}")


class IdentityClassifier(torch.nn.Module):
    """Cross-entropy over known identities: the `classifier` method, supervised pretraining on labelled data.

    One cosine classifier per feature (global, then each part): logits = f . normalise(W_c) / temperature,
    label-smoothed cross-entropy, combined like GP-O2CAP: L = ce_global + part_weight * mean_k ce_k.
    The weights are trained with the network; unlike the proxy memory they never go stale, which is what
    lets a randomly initialised network learn from labels quickly.
    """

    def __init__(self, num_features: int, num_classes: int, dim: int, cfg: LossConfig):
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"the classifier needs at least 2 identities, got {num_classes}")
        self.weight = torch.nn.Parameter(torch.randn(num_features, num_classes, dim) * 0.01)
        self.cfg = cfg

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """features (B, F, D) L2-normalised, labels (B,) identity ids -> (loss, {"loss", "ce_global", "ce_parts"})."""
        logits = torch.einsum("bfd,fcd->fbc", features, F.normalize(self.weight, dim=-1)) / self.cfg.temperature
        per_feature = torch.stack([
            F.cross_entropy(feature_logits, labels, label_smoothing=self.cfg.label_smoothing) for feature_logits in logits
        ])  # (F,)
        components = {"ce_global": per_feature[0]}
        loss = per_feature[0]
        if per_feature.shape[0] > 1:
            components["ce_parts"] = per_feature[1:].mean()
            loss = loss + self.cfg.part_weight * components["ce_parts"]
        components["loss"] = loss
        values = torch.stack(list(components.values())).tolist()
        return loss, dict(zip(components, values))
