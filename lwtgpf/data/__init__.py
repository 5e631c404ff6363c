"""Data: records, the dataset registry, image loading, transforms and P x K samplers.

The synthetic benchmark generator is imported on its own (`from lwtgpf.data import synthetic`); nothing
of it is re-exported here.
"""
from lwtgpf.data.datasets import DATASETS, available_datasets, build_dataset, register_dataset
from lwtgpf.data.loading import ImageDataset, contiguous_labels, read_image
from lwtgpf.data.records import DatasetError, Record, ReidDataset
from lwtgpf.data.samplers import CameraDiverseSampler, ProxyBalancedSampler
from lwtgpf.data.transforms import build_test_transform, build_train_transform

__all__ = [
    "DATASETS",
    "CameraDiverseSampler",
    "DatasetError",
    "ImageDataset",
    "ProxyBalancedSampler",
    "Record",
    "ReidDataset",
    "available_datasets",
    "build_dataset",
    "build_test_transform",
    "build_train_transform",
    "contiguous_labels",
    "read_image",
    "register_dataset",
]
