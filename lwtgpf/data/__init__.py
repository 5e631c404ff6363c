"""Data: records, the dataset registry, image loading, transforms and P x K samplers.

The synthetic benchmark generator is imported on its own (`from lwtgpf.data import synthetic`); nothing
of it is re-exported here. Names are imported on first use (PEP 562), so the registry
(`lwtgpf.data.datasets`) can be read without torch.
"""
from __future__ import annotations

from lwtgpf.lazy import lazy_exports

_EXPORTS = {
    "DATASETS": ".datasets", "available_datasets": ".datasets", "build_dataset": ".datasets",
    "register_dataset": ".datasets",
    "ImageDataset": ".loading", "contiguous_labels": ".loading", "read_image": ".loading",
    "DatasetError": ".records", "Record": ".records", "ReidDataset": ".records",
    "CameraDiverseSampler": ".samplers", "ProxyBalancedSampler": ".samplers",
    "build_test_transform": ".transforms", "build_train_transform": ".transforms",
}
__all__ = sorted(_EXPORTS)


__getattr__ = lazy_exports(__name__, _EXPORTS)
