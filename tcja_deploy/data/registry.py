"""The one entry point to every dataset: ``get_dataset(name, T) -> DatasetPair``.

Each name maps to a loader function with the signature
``load(T, data_dir, augment, download, seed, workers) -> DatasetPair``, imported only when asked for
(so that loading the embedded digits never imports tonic's dataset readers, and a missing optional
loader fails only for its own name).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from torch.utils.data import Dataset

from tcja_deploy.errors import UserError


@dataclass
class DatasetPair:
    """A train/test pair of frame datasets.

    Attributes:
        train, test: datasets whose items are (frames, label): frames a float32 tensor [T, C, H, W]
            (event counts per polarity, or a repeated image), label an int in [0, num_classes).
        input_shape: (C, H, W) of one frame.
        num_classes: number of labels.
        name: the registry name the pair was loaded under.
    """

    train: Dataset
    test: Dataset
    input_shape: tuple[int, int, int]
    num_classes: int
    name: str


DATASET_NAMES = ("digits-events", "digits-images", "dvs128_gesture", "cifar10_dvs", "ncaltech101", "fashion_mnist")

#: name → (module under tcja_deploy.data, loader function in it).
_LOADERS: dict[str, tuple[str, str]] = {
    "digits-events": ("digits", "load_events"),
    "digits-images": ("digits", "load_images"),
    "dvs128_gesture": ("dvs128_gesture", "load"),
    "cifar10_dvs": ("cifar10_dvs", "load"),
    "ncaltech101": ("ncaltech101", "load"),
    "fashion_mnist": ("fashion_mnist", "load"),
}


def get_dataset(name: str, T: int, data_dir: Path | None = None, augment: bool | None = None,
                download: bool = False, seed: int = 0, workers: int = 0) -> DatasetPair:
    """Load dataset ``name`` as frames of ``T`` time steps.

    Args:
        name: one of :data:`DATASET_NAMES`.
        T: time steps (frames) per sample, ≥ 1.
        data_dir: where the loader finds (or downloads) its files; the embedded digits need none.
        augment: training-set augmentation; None = the dataset's default.
        download: allow the loader to fetch missing files (never done otherwise).
        seed: the loader's randomness (the digits' split and events never depend on it).
        workers: processes the loader may use for preprocessing.

    Raises:
        UserError: unknown name, T < 1, or a loader module that is not part of this installation.
    """
    if name not in _LOADERS:
        raise UserError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASET_NAMES)}")
    if int(T) < 1:
        raise UserError(f"T must be at least 1, got {T}")
    module_name, function_name = _LOADERS[name]
    qualified = f"tcja_deploy.data.{module_name}"
    try:
        module = importlib.import_module(qualified)
    except ModuleNotFoundError as e:
        if e.name != qualified:
            raise
        raise UserError(f"dataset {name!r}: its loader {qualified} is not available in this installation") from None
    loader = getattr(module, function_name)
    return loader(T=int(T), data_dir=None if data_dir is None else Path(data_dir), augment=augment,
                  download=download, seed=seed, workers=workers)
