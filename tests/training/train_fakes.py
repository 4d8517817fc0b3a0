"""A tiny, learnable fake dataset standing in for the dataset registry in training tests."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch.utils.data import Dataset


FAKE_SHAPE = (2, 16, 16)
NUM_CLASSES = 10


class FakeFrames(Dataset):
    """``n`` samples ([T, 2, 16, 16] float32 spikes, label); class k fires mostly in two rows of one channel.

    Deterministic in (index, split); ``augment`` flips frames left-right with torch's global generator.
    ``delay`` (seconds, class-wide) slows every item down without changing it.
    """

    delay = 0.0

    def __init__(self, n: int, T: int, split: int, augment: bool = False):
        self.n, self.T, self.augment = n, T, augment
        g = torch.Generator().manual_seed(1000 + split)
        self.labels = torch.arange(n) % NUM_CLASSES
        base = torch.full((n, T, *FAKE_SHAPE), 0.05)
        for i, k in enumerate(self.labels.tolist()):
            base[i, :, min(k // 8, 1), 2 * (k % 8): 2 * (k % 8) + 2, :] = 0.9
        self.frames = (torch.rand(base.shape, generator=g) < base).float()

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        if self.delay:
            time.sleep(self.delay)
        x = self.frames[i]
        if self.augment and torch.rand(()) < 0.5:
            x = x.flip(-1)
        return x, int(self.labels[i])


@dataclass
class FakePair:
    train: Dataset
    test: Dataset
    input_shape: tuple[int, int, int]
    num_classes: int
    name: str


def fake_get_dataset(name: str, T: int, data_dir=None, augment=None, download=False, seed=0, workers=0) -> FakePair:
    return FakePair(FakeFrames(48, T, 0, bool(augment)), FakeFrames(20, T, 1), FAKE_SHAPE, NUM_CLASSES, name)
