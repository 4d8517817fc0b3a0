"""The training stage's view of the data: the dataset pair of a run and its DataLoaders.

Items are ``(frames, label)`` with frames float32 [T, C, H, W]; loaders yield batches [N, T, C, H, W],
which :func:`time_major` turns into the network's [T, N, C, H, W].
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler, Subset

from tcja_deploy.errors import UserError


@dataclass(frozen=True)
class RunData:
    """Train and test splits of a run, after ``--max-samples``.

    Attributes:
        name: dataset name (as the registry knows it).
        train, test: datasets of ``(frames [T, C, H, W] float32, label int)``.
        input_shape: (C, H, W) of one frame.
        num_classes: number of labels.
    """

    name: str
    train: Dataset
    test: Dataset
    input_shape: tuple[int, int, int]
    num_classes: int


def get_dataset(name: str, **kwargs: Any) -> Any:
    """``tcja_deploy.data.registry.get_dataset`` (imported on use; tests replace this function)."""
    from tcja_deploy.data.registry import get_dataset as registry_get_dataset

    return registry_get_dataset(name, **kwargs)


def limit(dataset: Dataset, max_samples: int | None, seed: int) -> Dataset:
    """At most ``max_samples`` items of ``dataset``: a random subset fixed by ``seed``, in index order."""
    n = len(dataset)  # type: ignore[arg-type]
    if max_samples is None or max_samples >= n:
        return dataset
    generator = torch.Generator().manual_seed(seed)
    indices = torch.randperm(n, generator=generator)[:max_samples].sort().values
    return Subset(dataset, indices.tolist())


def load_run_data(name: str, T: int, *, data_dir: str | None, augment: bool | None, download: bool,
                  seed: int, workers: int, max_samples: int | None) -> RunData:
    """Load the named dataset at ``T`` frames per sample and apply ``max_samples`` to both splits."""
    try:
        pair = get_dataset(name, T=T, data_dir=data_dir, augment=augment, download=download, seed=seed,
                           workers=workers)
    except (ValueError, FileNotFoundError) as e:
        raise UserError(f"dataset {name!r}: {e}") from None
    train, test = limit(pair.train, max_samples, seed), limit(pair.test, max_samples, seed + 1)
    if len(train) == 0 or len(test) == 0:  # type: ignore[arg-type]
        sizes = f"train {len(train)}, test {len(test)}"  # type: ignore[arg-type]
        raise UserError(f"dataset {name!r}: empty split ({sizes})")
    return RunData(name=name, train=train, test=test, input_shape=tuple(int(v) for v in pair.input_shape),
                   num_classes=int(pair.num_classes))


def make_loader(dataset: Dataset, batch_size: int, *, workers: int, pin_memory: bool, sampler: Sampler | None = None,
                generator: torch.Generator | None = None, drop_last: bool = False) -> DataLoader:
    """DataLoader yielding ``(frames [N, T, C, H, W], labels [N])`` in ``sampler``'s order (dataset order without
    one); the seeds of worker processes come from ``generator``."""
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, shuffle=False, num_workers=workers,
                      pin_memory=pin_memory, generator=generator, drop_last=drop_last)


def time_major(frames: torch.Tensor) -> torch.Tensor:
    """[N, T, C, H, W] batch → [T, N, C, H, W] (contiguous)."""
    if frames.dim() != 5:
        raise ValueError(f"expected a batch [N, T, C, H, W], got shape {tuple(frames.shape)}")
    return frames.transpose(0, 1).contiguous()
