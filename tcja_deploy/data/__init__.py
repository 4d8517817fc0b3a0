"""Datasets as frames [T, C, H, W]: the embedded scikit-learn digits (images, or events from a simulated
DVS) and the paper's event datasets, all behind :func:`~tcja_deploy.data.registry.get_dataset`."""

from tcja_deploy.data.registry import DATASET_NAMES, DatasetPair, get_dataset

__all__ = ["DATASET_NAMES", "DatasetPair", "get_dataset"]
