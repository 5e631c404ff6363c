"""What each training method means: one table the trainer, the config system, the CLI, the notebooks
and the benchmarks read.

The methods are configurations of one training loop (`lwtgpf.engine.trainer`):

| method           | labels        | proxies                 | features        | losses                         |
|------------------|---------------|-------------------------|-----------------|--------------------------------|
| lwtgpf           | pseudo        | one per (cluster, cam)  | global + 5 parts| offline + online (GP-O2CAP)    |
| o2cap            | pseudo        | one per (cluster, cam)  | global          | offline + online, per camera   |
| cluster_contrast | pseudo        | one per cluster         | global          | offline, all negatives, tau .05|
| supervised       | true ids      | one per (identity, cam) | global + 5 parts| offline + online (upper bound) |
| classifier       | true ids      | none (a classifier)     | global + 5 parts| label-smoothed cross-entropy   |

`loss_defaults` are the method's own loss settings (O2CAP's per-camera loss reduction; Cluster
Contrast's temperature 0.05 and all negatives; from their papers and public code): `load_config` applies them whenever the method is chosen
and the key was not set explicitly by a preset or an override.

This module imports nothing heavy, so a config can be checked without importing torch.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping


@dataclass(frozen=True)
class Method:
    camera_aware: bool  # one proxy per (cluster, camera), else one per cluster
    use_parts: bool  # part features in the memory and the loss
    online: bool  # online association loss on top of the offline one
    true_labels: bool  # supervised: identities instead of pseudo labels
    classifier: bool = False  # identity cross-entropy (IdentityClassifier) instead of the proxy memory
    loss_defaults: Mapping[str, Any] = field(default_factory=dict)  # `loss.*` values of this method
    description: str = ""


METHODS: dict[str, Method] = {
    "lwtgpf": Method(camera_aware=True, use_parts=True, online=True, true_labels=False,
                     description="GP-O2CAP on global + part features with camera-aware proxies (SPEC section 5)"),
    "o2cap": Method(camera_aware=True, use_parts=False, online=True, true_labels=False,
                    loss_defaults={"loss.reduction": "camera_sum"},
                    description="O2CAP: offline + online camera-aware association on the global feature, "
                                "losses averaged within each camera and summed"),
    "cluster_contrast": Method(
        camera_aware=False, use_parts=False, online=False, true_labels=False,
        loss_defaults={"loss.temperature": 0.05, "loss.hard_negatives": 0},
        description="Cluster Contrast: one proxy per cluster, all negatives, temperature 0.05"),
    "supervised": Method(camera_aware=True, use_parts=True, online=True, true_labels=True,
                         description="true identities through the same proxies, memory and losses (upper bound)"),
    "classifier": Method(camera_aware=False, use_parts=True, online=False, true_labels=True, classifier=True,
                         description="supervised pretraining: label-smoothed cosine cross-entropy per feature"),
}
