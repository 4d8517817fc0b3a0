"""CIFAR10-DVS (Li et al., Front. Neurosci. 2017) through tonic: 10 classes, frames pooled to 2×48×48.

On disk, one folder per class (tonic 1.7's ``tonic.datasets.CIFAR10DVS`` layout; class names and indices
are tonic's ``CIFAR10DVS.classes``)::

    <data_dir>/CIFAR10DVS/<class>/<name>.aedat4     tonic's CIFAR10DVS.zip (and its per-class zips) extracted
    <data_dir>/CIFAR10DVS/<class>/<name>.aedat      or: the original release from figshare, extracted

``.aedat4`` files are listed and read by tonic (its reader needs the ``aedat`` package). The original
``.aedat`` files are AEDAT 2.0 (jAER DVS128 format: ``#`` header lines, then big-endian uint32 pairs
(address, timestamp in µs)); tonic 1.7 lists only ``.aedat4`` and its ``read_dvs_128`` fails on its own
3-value header tuple, so we read them with tonic's ``read_aedat_header_from_file`` and
``get_aer_events_from_file`` and decode the address as SpikingJelly does for this dataset (the reference
``ridgerchu/TCJA`` trains through SpikingJelly): ``ax = (a & 0xFE) >> 1``, ``ay = (a & 0x7F00) >> 8``,
``on = a & 1``; then ``x = 127 − ay``, ``y = 127 − ax``, ``p = 1 − on`` (upright images).

Frames: T frames of equal event count at the 128×128 sensor resolution (cached), then — after augmentation,
as in the reference, whose network starts with ``nn.AdaptiveAvgPool2d(48)`` — reduced to 48×48 with
``torch.nn.functional.adaptive_avg_pool2d`` (the 48×48 size is the preset's input shape). There is no
official split: a seeded 90/10 split per class is written to ``<data_dir>/cifar10_dvs_split_seed<seed>.json``.
Training augmentation is on by default: the reference ``dvs_aug`` (flip width with p = 1/2, roll ±5 px).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import tonic

from tcja_deploy.data.event_frames import (EventFrameDataset, FlipRoll, FrameCache, FrameSpec, Sample,
                                           check_complete, check_file_records, load_or_make_split, resolve_data_dir,
                                           split_file_path, tonic_minimum_files, training_augment)
from tcja_deploy.errors import UserError

NAME = "cifar10_dvs"
TITLE = "CIFAR10-DVS"
TONIC_CLASS = tonic.datasets.CIFAR10DVS
#: The original release (Li et al. 2017): per-class zips on figshare, e.g. airplane.zip (SpikingJelly's URL list).
ORIGINAL_SOURCE = "figshare (Li et al. 2017; e.g. airplane.zip = https://ndownloader.figshare.com/files/7712788)"
#: Default training augmentation: on (the reference trains CIFAR10-DVS with ``dvs_aug``).
AUGMENT_DEFAULT = True
#: The reference's ``dvs_aug``: flip the width axis with probability 1/2, roll (H, W) by up to ±5 pixels.
AUGMENTATION = FlipRoll(flip=True, max_shift=5)
#: Suffixes of the two releases: tonic's AEDAT 4 conversion and the original AEDAT 2.0 files.
TONIC_SUFFIX, ORIGINAL_SUFFIX = ".aedat4", ".aedat"
AEDAT2_RECORD_BYTES = 8  # big-endian uint32 address + uint32 timestamp


class _OfflineCIFAR10DVS(TONIC_CLASS):  # type: ignore[misc, valid-type]
    """tonic's CIFAR10DVS over the files already on disk: its existence check always passes, so it never downloads."""

    def _check_exists(self) -> bool:
        return True


# tonic places the data under <save_to>/<class name>: keep tonic's name.
_OfflineCIFAR10DVS.__name__ = TONIC_CLASS.__name__


def read_original_aedat(path: Path) -> np.ndarray:
    """Events of an original CIFAR10-DVS ``.aedat`` (AEDAT 2.0) file, tonic's CIFAR10DVS dtype (t, x, y, p).

    x, y in 0..127 (column, row of an upright image), p 1 = ON, t in µs. UserError (one line, naming the
    file) for a missing header, another AEDAT version, or a payload that is not whole 8-byte events.
    """
    try:
        version, data_start, _ = tonic.io.read_aedat_header_from_file(str(path))
    except Exception as e:  # noqa: BLE001 - no '#!AER-DAT' header line
        raise UserError(f"{path}: no AEDAT header ({type(e).__name__}); truncated or not an .aedat file") from None
    if not 2 <= version < 3:
        raise UserError(f"{path}: AEDAT version {version}, expected 2.x (the original CIFAR10-DVS release)")
    check_file_records(path, AEDAT2_RECORD_BYTES, data_start, "AEDAT 2.0 file")
    raw = tonic.io.get_aer_events_from_file(str(path), version, data_start)
    address = raw["address"].astype(np.int64)
    width, height, _ = TONIC_CLASS.sensor_size
    events = np.empty(len(address), dtype=TONIC_CLASS.dtype)
    events["t"] = raw["timeStamp"]
    events["x"] = (width - 1) - ((address & 0x7F00) >> 8)
    events["y"] = (height - 1) - ((address & 0xFE) >> 1)
    events["p"] = (address & 1) == 0
    return events


class _Reader:
    """Events of a sample: ``.aedat`` by :func:`read_original_aedat`, ``.aedat4`` by tonic (picklable)."""

    def __init__(self, dataset: _OfflineCIFAR10DVS | None):
        self.dataset = dataset

    def __call__(self, sample: Sample) -> np.ndarray:
        if sample.path.suffix == ORIGINAL_SUFFIX:
            return read_original_aedat(sample.path)
        assert self.dataset is not None
        events, _ = self.dataset[sample.source_index]
        return events


def expected_layout(root: Path) -> str:
    """One-line description of the files this loader looks for under ``root`` (= <data_dir>/CIFAR10DVS)."""
    names = list(TONIC_CLASS.classes)
    return (f"{root}/<class>/*{TONIC_SUFFIX} (tonic's {TONIC_CLASS.filename} extracted) or {root}/<class>/*"
            f"{ORIGINAL_SUFFIX} (the original release), <class> one of {names[0]}, {names[1]}, ..., {names[-1]}")


def how_to_get() -> str:
    """Where the files come from (tonic's URL, read from tonic's class, and the original release)."""
    return f"run with --download (tonic fetches {TONIC_CLASS.url}) or get the original from {ORIGINAL_SOURCE}"


def _download(data_dir: Path) -> None:
    """tonic's own download and extraction (only if tonic finds the files missing)."""
    try:
        TONIC_CLASS(str(data_dir))
    except Exception as e:  # noqa: BLE001 - network / archive errors → one line
        raise UserError(f"{TITLE}: download into {data_dir / TONIC_CLASS.__name__} failed "
                        f"({type(e).__name__}: {e})".replace("\n", " ")) from None


def list_recordings(data_dir: Path) -> tuple[list[Sample], _OfflineCIFAR10DVS | None]:
    """All recordings (either release, not both), sorted by key, and the tonic object reading ``.aedat4``."""
    root = data_dir / TONIC_CLASS.__name__
    samples: list[Sample] = []
    dataset = None
    if any(root.glob(f"*/*{TONIC_SUFFIX}")):
        try:
            dataset = _OfflineCIFAR10DVS(str(data_dir))
        except KeyError as e:  # tonic maps the parent folder name to a class
            raise UserError(f"{root}: a {TONIC_SUFFIX} file lies in folder {e}, which is not a class "
                            f"({', '.join(TONIC_CLASS.classes)})") from None
        for index, (path, target) in enumerate(zip(dataset.data, dataset.targets)):
            path = Path(path)
            samples.append(Sample(path=path, key=path.relative_to(root).as_posix(), label=int(target),
                                  source_index=index))
    originals = [Sample(path=path, key=path.relative_to(root).as_posix(), label=int(label))
                 for name, label in TONIC_CLASS.classes.items() for path in (root / name).glob(f"*{ORIGINAL_SUFFIX}")]
    if samples and originals:
        raise UserError(f"{root}: holds both {TONIC_SUFFIX} and {ORIGINAL_SUFFIX} recordings; keep one release")
    if originals:
        samples = originals
    samples.sort(key=lambda s: s.key)
    return samples, dataset


def load(T: int, data_dir: Path | None = None, augment: bool | None = None, download: bool = False,
         seed: int = 0, workers: int = 0, allow_partial: bool | None = None):
    """CIFAR10-DVS as frames: a :class:`tcja_deploy.data.registry.DatasetPair`.

    Args:
        T: frames per recording (each holds ``n_events // T`` events; reference T = 10).
        data_dir: folder holding ``CIFAR10DVS/`` (None → :func:`resolve_data_dir`); the split file is written here.
        augment: training augmentation (None → on: flip + roll ±5 px at 128×128, before pooling).
        download: let tonic download and extract missing files (never otherwise).
        seed: seed of the 90/10 split (a split file per seed).
        workers: unused: frames are built on first access and cached, safely from DataLoader workers.
        allow_partial: accept fewer files than tonic's completeness check (None → ``$TCJA_ALLOW_PARTIAL_DATA``).

    Returns:
        train/test datasets of (float32 [T, 2, 48, 48] pooled event counts, label in 0..9), input_shape
        (2, 48, 48), num_classes 10.

    Raises:
        UserError: dataset missing or incomplete, a stale split file, a truncated or corrupted file (when first read).
    """
    from tcja_deploy.data.registry import DatasetPair
    from tcja_deploy.models.presets import get_preset

    data_dir = resolve_data_dir(data_dir)
    root = data_dir / TONIC_CLASS.__name__
    if download:
        _download(data_dir)
    samples, tonic_dataset = list_recordings(data_dir)
    if not samples:
        raise UserError(f"{TITLE} not found: expected {expected_layout(root)}; {how_to_get()}")
    if tonic_dataset is not None and importlib.util.find_spec("aedat") is None:
        raise UserError(f"{TITLE}: tonic reads the {TONIC_SUFFIX} files under {root} with the 'aedat' package, "
                        f"which is not installed (pip install aedat), or use the original {ORIGINAL_SUFFIX} release")
    minimum = tonic_minimum_files(TONIC_CLASS)
    check_complete(TITLE, len(samples), minimum[0] if minimum else None, "recordings", root, allow_partial)

    width, height, polarities = TONIC_CLASS.sensor_size
    release = "tonic aedat4" if tonic_dataset is not None else "original aedat2, SpikingJelly orientation"
    spec = FrameSpec(dataset=NAME, T=int(T), sensor_size=(width, height, polarities), reader=release)
    cache = FrameCache.under(data_dir, spec)
    train_samples, test_samples = load_or_make_split(samples, split_file_path(data_dir, NAME, seed), NAME, seed)
    _, out_height, out_width = get_preset(NAME).model.input_shape
    reader = _Reader(tonic_dataset)
    train = EventFrameDataset(train_samples, reader, spec, cache, resize=(out_height, out_width),
                              augment=training_augment(augment, AUGMENT_DEFAULT, AUGMENTATION))
    test = EventFrameDataset(test_samples, reader, spec, cache, resize=(out_height, out_width))
    return DatasetPair(train=train, test=test, input_shape=(polarities, out_height, out_width),
                       num_classes=len(TONIC_CLASS.classes), name=NAME)
