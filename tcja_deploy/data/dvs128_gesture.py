"""DVS128 Gesture (Amir et al., CVPR 2017) through tonic: 11 classes, 2×128×128 event frames, official split.

On disk (tonic 1.7's ``tonic.datasets.DVSGesture`` layout, i.e. its two archives extracted)::

    <data_dir>/DVSGesture/ibmGestureTrain/user<NN>_<lighting>/<label>.npy
    <data_dir>/DVSGesture/ibmGestureTest/user<NN>_<lighting>/<label>.npy

Each ``.npy`` is one gesture: an [N, 4] array of (x, y, p, t in ms), the file name its class index. tonic
lists and reads the files (its ``__getitem__``: t → µs, structured x/y/p/t events); this module only keeps
tonic from downloading unless asked, frames the events (T frames of equal event count, two polarity
channels, counts) and caches the frames. The split is the official one (tonic's ``train=True/False``).
Augmentation is off by default (the reference trains without it); ``augment=True`` rolls frames by up to
±5 pixels but never flips them (a flip would turn "right hand wave" into "left hand wave").
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import tonic

from tcja_deploy.data.event_frames import (EventFrameDataset, FlipRoll, FrameCache, FrameSpec, Sample,
                                           check_complete, resolve_data_dir, tonic_minimum_files, training_augment)
from tcja_deploy.errors import UserError

NAME = "dvs128_gesture"
TITLE = "DVS128 Gesture"
TONIC_CLASS = tonic.datasets.DVSGesture
#: Where IBM Research publishes the original recordings (tonic's docstring cites it).
ORIGINAL_SOURCE = "http://research.ibm.com/dvsgesture/"
#: Default training augmentation: none (ridgerchu/TCJA ``src/dvs128.py`` uses none).
AUGMENT_DEFAULT = False
#: ``augment=True``: roll up to ±5 pixels (the reference's dvs_aug amount), no flip (left/right classes).
AUGMENTATION = FlipRoll(flip=False, max_shift=5)
SPLIT_FOLDERS = {True: "ibmGestureTrain", False: "ibmGestureTest"}


class _OfflineDVSGesture(TONIC_CLASS):  # type: ignore[misc, valid-type]
    """tonic's DVSGesture over the files already on disk: its existence check always passes, so it never downloads."""

    def _check_exists(self) -> bool:
        return True


# tonic places the data under <save_to>/<class name>: keep tonic's name.
_OfflineDVSGesture.__name__ = TONIC_CLASS.__name__


class _TonicReader:
    """Events of a sample through tonic's ``__getitem__`` (picklable: holds the tonic dataset object)."""

    def __init__(self, dataset: TONIC_CLASS):
        self.dataset = dataset

    def __call__(self, sample: Sample) -> np.ndarray:
        check_npy_events(sample.path)
        events, _ = self.dataset[sample.source_index]
        return events


def check_npy_events(path: Path) -> None:
    """UserError (one line, naming ``path``) unless it is a complete ``.npy`` of an [N, 4] array, N ≥ 1."""
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dtype = read_header(f)
            header_end = f.tell()
    except Exception as e:  # noqa: BLE001
        raise UserError(f"{path}: not a readable .npy file ({type(e).__name__}); replace it with a fresh copy") from None
    expected = header_end + int(np.prod(shape)) * dtype.itemsize
    size = os.path.getsize(path)
    if len(shape) != 2 or shape[1] != 4 or shape[0] < 1:
        raise UserError(f"{path}: expected an [N, 4] event array (x, y, p, t), found shape {shape}")
    if size < expected:
        raise UserError(f"{path}: truncated ({size} of {expected} bytes); replace it with a fresh copy")


def expected_layout(root: Path) -> str:
    """One-line description of the files this loader looks for under ``root`` (= <data_dir>/DVSGesture)."""
    return (f"{root}/{SPLIT_FOLDERS[True]}/user<NN>_<lighting>/<label>.npy and {root}/{SPLIT_FOLDERS[False]}/... "
            f"(tonic's {TONIC_CLASS.train_filename} and {TONIC_CLASS.test_filename} extracted there)")


def how_to_get() -> str:
    """Where the files come from (tonic's URLs, read from tonic's class)."""
    return (f"run with --download (tonic fetches {TONIC_CLASS.train_url} and {TONIC_CLASS.test_url}, "
            f"its preprocessing of IBM Research's recordings, {ORIGINAL_SOURCE})")


def _download(data_dir: Path) -> None:
    """tonic's own download and extraction of both splits (only if tonic finds them missing)."""
    for train in (True, False):
        try:
            TONIC_CLASS(str(data_dir), train=train)
        except Exception as e:  # noqa: BLE001 - network / archive errors → one line
            raise UserError(f"{TITLE}: download into {data_dir / TONIC_CLASS.__name__} failed "
                            f"({type(e).__name__}: {e})".replace("\n", " ")) from None


def list_split(data_dir: Path, train: bool) -> tuple[list[Sample], _OfflineDVSGesture]:
    """The recordings of one official split, sorted by key, and the tonic object that reads them."""
    dataset = _OfflineDVSGesture(str(data_dir), train=train)
    root = Path(dataset.location_on_system)
    num_classes = len(TONIC_CLASS.classes)
    samples = []
    for index, (path, target) in enumerate(zip(dataset.data, dataset.targets)):
        path = Path(path)
        if not 0 <= int(target) < num_classes:
            raise UserError(f"{path}: file name gives class {target}, outside 0..{num_classes - 1}")
        samples.append(Sample(path=path, key=path.relative_to(root).as_posix(), label=int(target), source_index=index))
    samples.sort(key=lambda s: s.key)
    return samples, dataset


def load(T: int, data_dir: Path | None = None, augment: bool | None = None, download: bool = False,
         seed: int = 0, workers: int = 0, allow_partial: bool | None = None):
    """DVS128 Gesture as frames: a :class:`tcja_deploy.data.registry.DatasetPair`.

    Args:
        T: frames per recording (each holds ``n_events // T`` events; reference T = 20).
        data_dir: folder holding ``DVSGesture/`` (None → :func:`resolve_data_dir`).
        augment: training augmentation (None → off; True → random roll ±5 px, no flip).
        download: let tonic download and extract missing files (never otherwise).
        seed: unused (the split is the official one); kept for the common loader interface.
        workers: unused: frames are built on first access and cached, safely from DataLoader workers.
        allow_partial: accept fewer files than tonic's completeness check (None → ``$TCJA_ALLOW_PARTIAL_DATA``).

    Returns:
        train/test datasets of (float32 [T, 2, 128, 128] event counts, label in 0..10), input_shape
        (2, 128, 128) and num_classes 11 (tonic's sensor size and class list).

    Raises:
        UserError: dataset missing or incomplete; a truncated or corrupted file (when first read).
    """
    from tcja_deploy.data.registry import DatasetPair

    data_dir = resolve_data_dir(data_dir)
    root = data_dir / TONIC_CLASS.__name__
    if download:
        _download(data_dir)
    train_samples, train_tonic = list_split(data_dir, train=True)
    test_samples, test_tonic = list_split(data_dir, train=False)
    if not train_samples or not test_samples:
        raise UserError(f"{TITLE} not found: expected {expected_layout(root)}; {how_to_get()}")
    for train, samples in ((True, train_samples), (False, test_samples)):
        minimum = tonic_minimum_files(TONIC_CLASS, SPLIT_FOLDERS[train])
        check_complete(TITLE, len(samples), minimum[0] if minimum else None, ".npy recordings",
                       root / SPLIT_FOLDERS[train], allow_partial)

    width, height, polarities = TONIC_CLASS.sensor_size
    spec = FrameSpec(dataset=NAME, T=int(T), sensor_size=(width, height, polarities),
                     reader="tonic DVSGesture npy (x, y, p, t ms)")
    cache = FrameCache.under(data_dir, spec)
    train = EventFrameDataset(train_samples, _TonicReader(train_tonic), spec, cache,
                              augment=training_augment(augment, AUGMENT_DEFAULT, AUGMENTATION))
    test = EventFrameDataset(test_samples, _TonicReader(test_tonic), spec, cache)
    return DatasetPair(train=train, test=test, input_shape=(polarities, height, width),
                       num_classes=len(TONIC_CLASS.classes), name=NAME)
