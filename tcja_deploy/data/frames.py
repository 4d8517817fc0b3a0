"""Helpers shared by the dataset loaders: resampling, event → frame binning, splits, datasets, augmentation.

Conventions used by every loader (and by the models):

- an **event array** is a numpy structured array with fields ``x``, ``y``, ``t`` (µs), ``p``
  (``EVENT_DTYPE``), sorted by ``t``. Polarity follows tonic: ``p = 1`` is ON (brightness up),
  ``p = 0`` is OFF; :func:`events_to_frames` therefore puts OFF in channel 0 and ON in channel 1.
- a dataset **item** is ``(frames, label)``: ``frames`` a float32 tensor [T, C, H, W], ``label`` an int.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch
import tonic
from torch.utils.data import Dataset

#: Event record: pixel column ``x``, pixel row ``y``, timestamp ``t`` in µs, polarity ``p`` (1 = ON, 0 = OFF).
#: The field names and their order are tonic's (``tonic.io.events_struct``); integer widths are ours.
EVENT_DTYPE = np.dtype([("x", np.int16), ("y", np.int16), ("t", np.int64), ("p", np.int8)])

#: Channel index of each polarity in frames made by :func:`events_to_frames` (tonic's ToFrame order).
OFF_CHANNEL, ON_CHANNEL = 0, 1

FrameTransform = Callable[[torch.Tensor], torch.Tensor]


# ---------------------------------------------------------------------------------------------------------------
# Resampling
# ---------------------------------------------------------------------------------------------------------------


def linear_resample_matrix(out_size: int, in_size: int, scale: float, shift: float = 0.0,
                           border: str = "zero") -> np.ndarray:
    """[out_size, in_size] matrix of 1-D linear interpolation (one axis of a bilinear resampling).

    Output pixel ``j`` (centre at ``j + 0.5``) samples the input at the continuous coordinate
    ``u = (j + 0.5 - shift) / scale - 0.5`` (input pixel indices; centres at integers): ``scale`` is
    output pixels per input pixel and ``shift`` (output pixels) is where the input's left edge lands.
    With ``shift = 0`` and ``scale = out_size / in_size`` this is PyTorch's ``interpolate(mode="bilinear",
    align_corners=False)`` along one axis. ``border="clamp"`` repeats the edge pixels (PyTorch's
    behaviour); ``border="zero"`` reads zeros outside the input (an image on a black background).
    """
    if border not in ("zero", "clamp"):
        raise ValueError(f"border must be 'zero' or 'clamp', got {border!r}")
    u = (np.arange(out_size) + 0.5 - shift) / scale - 0.5
    if border == "clamp":
        u = np.clip(u, 0.0, in_size - 1)
    lo = np.floor(u).astype(np.int64)
    frac = u - lo
    matrix = np.zeros((out_size, in_size), dtype=np.float64)
    rows = np.arange(out_size)
    for index, weight in ((lo, 1.0 - frac), (lo + 1, frac)):
        inside = (index >= 0) & (index < in_size)
        np.add.at(matrix, (rows[inside], index[inside]), weight[inside])
    return matrix


def resize_bilinear(images: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of [..., h, w] images to [..., H, W] (``size = (H, W)``), edges clamped.

    Equal to ``torch.nn.functional.interpolate(mode="bilinear", align_corners=False)``.
    """
    h, w = images.shape[-2:]
    H, W = size
    rows = linear_resample_matrix(H, h, H / h, border="clamp")
    cols = linear_resample_matrix(W, w, W / w, border="clamp")
    return np.einsum("Yh,...hw,Xw->...YX", rows, images, cols, optimize=True)


# ---------------------------------------------------------------------------------------------------------------
# Events → frames
# ---------------------------------------------------------------------------------------------------------------


def events_to_frames(events: np.ndarray, sensor_size: tuple[int, int, int], T: int) -> np.ndarray:
    """Bin events into ``T`` frames of equal event count with ``tonic.transforms.ToFrame(n_event_bins=T)``.

    Args:
        events: event array (:data:`EVENT_DTYPE` or any tonic x/y/t/p structured array), sorted by t.
        sensor_size: tonic's (width, height, polarities).
        T: number of frames.

    Returns:
        float32 [T, polarities, height, width] event counts (not binarized). As in tonic, every frame
        holds ``len(events) // T`` events (the last ``len(events) % T`` are dropped); fewer than ``T``
        events give all-zero frames.
    """
    width, height, polarities = sensor_size
    if len(events) < T:
        return np.zeros((T, polarities, height, width), dtype=np.float32)
    frames = tonic.transforms.ToFrame(sensor_size=sensor_size, n_event_bins=T)(events)
    return frames.astype(np.float32)


def repeat_frames(image: torch.Tensor, T: int) -> torch.Tensor:
    """Direct input: [C, H, W] → [T, C, H, W], the same image at every step (a view, no copy)."""
    return image.unsqueeze(0).expand(T, *image.shape)


# ---------------------------------------------------------------------------------------------------------------
# Splits
# ---------------------------------------------------------------------------------------------------------------


def stratified_split(labels: Sequence[int] | np.ndarray, test_fraction: float,
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Seeded stratified split: (train indices, test indices), each sorted ascending.

    Per class, the class's indices are shuffled with ``np.random.RandomState(seed)`` (the legacy
    generator, whose streams NumPy keeps fixed across versions) and the first
    ``round(test_fraction · n_class)`` go to the test set. Depends only on ``labels``, ``test_fraction``
    and ``seed``.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    labels = np.asarray(labels)
    rng = np.random.RandomState(seed)
    test: list[np.ndarray] = []
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        shuffled = members[rng.permutation(len(members))]
        test.append(shuffled[: int(round(test_fraction * len(members)))])
    test_idx = np.sort(np.concatenate(test))
    train_idx = np.setdiff1d(np.arange(len(labels)), test_idx)
    return train_idx, test_idx


# ---------------------------------------------------------------------------------------------------------------
# Datasets
# ---------------------------------------------------------------------------------------------------------------


class ImageFrames(Dataset):
    """Static images as direct input: item ``i`` is ([T, C, H, W] float32 frames, label int).

    Args:
        images: [N, C, H, W] float32 tensor (intensities in [0, 1]).
        labels: N integer labels.
        T: time steps; every step shows the same image.
        transform: optional callable on the [T, C, H, W] frames (augmentation).
    """

    def __init__(self, images: torch.Tensor, labels: Sequence[int], T: int,
                 transform: FrameTransform | None = None):
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.images = images
        self.labels = [int(v) for v in labels]
        self.T = T
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        frames = repeat_frames(self.images[index], self.T)
        if self.transform is not None:
            frames = self.transform(frames)
        return frames, self.labels[index]


class EventFrames(Dataset):
    """Event streams binned on access: item ``i`` is ([T, P, H, W] float32 event counts, label int).

    Args:
        events: the event arrays of all stored samples concatenated (:data:`EVENT_DTYPE`).
        offsets: M + 1 ascending indices; stored sample ``j`` is ``events[offsets[j]:offsets[j + 1]]``,
            sorted by t.
        labels: M integer labels of the stored samples.
        sensor_size: tonic's (width, height, polarities).
        T: frames per sample (equal event count per frame, :func:`events_to_frames`).
        transform: optional callable on the [T, P, H, W] frames (augmentation).
        indices: which stored samples the dataset shows (item ``i`` is stored sample ``indices[i]``);
            None = all. Lets a train and a test set share one event array without copying it.
    """

    def __init__(self, events: np.ndarray, offsets: np.ndarray, labels: Sequence[int],
                 sensor_size: tuple[int, int, int], T: int, transform: FrameTransform | None = None,
                 indices: Sequence[int] | np.ndarray | None = None):
        if len(offsets) != len(labels) + 1:
            raise ValueError(f"{len(offsets)} offsets for {len(labels)} samples (need samples + 1)")
        self.events = events
        self.offsets = np.asarray(offsets, dtype=np.int64)
        self.indices = np.arange(len(labels)) if indices is None else np.asarray(indices, dtype=np.int64)
        self.labels = [int(labels[j]) for j in self.indices]
        self.sensor_size = tuple(sensor_size)
        self.T = T
        self.transform = transform

    def __len__(self) -> int:
        return len(self.indices)

    def sample_events(self, index: int) -> np.ndarray:
        """The raw event array of item ``index`` (a view into the shared array)."""
        j = self.indices[index]
        return self.events[self.offsets[j]: self.offsets[j + 1]]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        frames = torch.from_numpy(events_to_frames(self.sample_events(index), self.sensor_size, self.T))
        if self.transform is not None:
            frames = self.transform(frames)
        return frames, self.labels[index]


# ---------------------------------------------------------------------------------------------------------------
# Augmentation
# ---------------------------------------------------------------------------------------------------------------


def shift_frames(frames: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Translate [..., H, W] frames by (dy, dx) pixels, filling the uncovered border with zeros."""
    H, W = frames.shape[-2:]
    out = torch.zeros_like(frames)
    if abs(dy) >= H or abs(dx) >= W:
        return out
    src_y, dst_y = slice(max(0, -dy), H - max(0, dy)), slice(max(0, dy), H - max(0, -dy))
    src_x, dst_x = slice(max(0, -dx), W - max(0, dx)), slice(max(0, dx), W - max(0, -dx))
    out[..., dst_y, dst_x] = frames[..., src_y, src_x]
    return out


class RandomShift:
    """Augmentation: translate all frames of a sample by one random (dy, dx) in [-max_shift, max_shift]².

    Draws from torch's global generator, so it is reproducible under ``torch.manual_seed`` (and per
    DataLoader worker, which torch seeds from the base seed).
    """

    def __init__(self, max_shift: int):
        self.max_shift = int(max_shift)

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        dy, dx = torch.randint(-self.max_shift, self.max_shift + 1, (2,)).tolist()
        return shift_frames(frames, dy, dx)
