"""Shared machinery of the paper's dataset loaders (DVS128 Gesture, CIFAR10-DVS, N-Caltech101, Fashion-MNIST).

What lives here, used by ``dvs128_gesture``, ``cifar10_dvs``, ``ncaltech101`` and ``fashion_mnist``:

- **where data lives**: :func:`resolve_data_dir` (``--data-dir``, else ``$TCJA_DATA_DIR``, else ``~/data``);
- **offline tonic**: :func:`tonic_minimum_files` reads tonic's own "is the dataset complete" threshold, so a
  partly extracted dataset is refused (:func:`check_complete`) instead of silently trained on;
- **framing with an on-disk cache**: :class:`EventFrameDataset` turns a recording into ``T`` frames of equal
  event count (tonic's ``ToFrame(n_event_bins=T)``, via :func:`tcja_deploy.data.frames.events_to_frames`) the
  first time it is read and keeps the integer counts in ``<data_dir>/.frames_cache/<dataset>-T<T>-<hash>/``,
  one compressed ``.npz`` per recording written atomically, so later epochs (and DataLoader worker
  processes) read no raw events;
- **seeded split files**: :func:`load_or_make_split` writes/reads ``<data_dir>/<dataset>_split_seed<seed>.json``;
- **augmentation**: :class:`FlipRoll`, the reference's ``dvs_aug`` (ridgerchu/TCJA ``src/cifar10dvs.py``).

Layouts: a frame tensor is [T, C, H, W] (C = polarity: 0 = OFF, 1 = ON, tonic's order), float32 event counts
(never binarized). tonic's ``sensor_size`` is (W, H, P).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from tcja_deploy import atomic
from tcja_deploy.errors import UserError

#: Environment variable naming the default data folder (used when ``--data-dir`` is not given).
DATA_DIR_ENV = "TCJA_DATA_DIR"
#: Environment variable that lets a loader use a dataset smaller than tonic's completeness check
#: (``1``): for tests and deliberate subsets. Without it an incomplete dataset is a UserError.
ALLOW_PARTIAL_ENV = "TCJA_ALLOW_PARTIAL_DATA"
#: Folder under the data folder that holds the frame caches.
CACHE_DIR_NAME = ".frames_cache"
#: Bumped when the cache layout or the framing code changes, so old caches are not reused.
CACHE_FORMAT = 1
#: Fraction of each class that goes to the test split for datasets without an official split.
TEST_FRACTION = 0.1


def resolve_data_dir(data_dir: str | os.PathLike | None) -> Path:
    """The dataset root: ``data_dir``, else ``$TCJA_DATA_DIR``, else ``~/data`` (``~`` expanded)."""
    if data_dir is None:
        data_dir = os.environ.get(DATA_DIR_ENV, "~/data")
    return Path(data_dir).expanduser()


def allow_partial_data(allow_partial: bool | None) -> bool:
    """``allow_partial`` if given, else whether ``$TCJA_ALLOW_PARTIAL_DATA`` is ``1``."""
    if allow_partial is not None:
        return allow_partial
    return os.environ.get(ALLOW_PARTIAL_ENV, "") == "1"


def one_line(text: str) -> str:
    """``text`` with line breaks folded into spaces (UserError messages are one line)."""
    return " ".join(str(text).split())


@dataclass(frozen=True)
class Sample:
    """One recording on disk.

    Attributes:
        path: the file.
        key: its path relative to the dataset folder, with ``/`` separators: its name in split files
            and in the frame cache.
        label: class index.
        source_index: its index in the tonic dataset object that reads it (-1 when no tonic object does).
    """

    path: Path
    key: str
    label: int
    source_index: int = -1


# ---------------------------------------------------------------------------------------------------------------
# tonic, offline
# ---------------------------------------------------------------------------------------------------------------


def tonic_minimum_files(tonic_cls: type, folder_name: str = "") -> tuple[int, str] | None:
    """tonic's completeness threshold for ``tonic_cls``: (minimum file count, file suffix), or None.

    tonic decides whether a dataset is on disk with ``_check_exists()``, which asks
    ``_folder_contains_at_least_n_files_of_type(n, suffix)``. We call it on a probe object that records the
    question instead of answering it, so the number is tonic's, not re-typed here. ``folder_name`` is the
    sub-folder the check looks in (DVSGesture: ``ibmGestureTrain`` / ``ibmGestureTest``). None if tonic's
    check has another shape (then no completeness check is possible).
    """
    asked: list[tuple[int, str]] = []

    class _Probe(tonic_cls):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:  # no folder walk, no download
            self.location_on_system = ""
            self.folder_name = folder_name

        def _is_file_present(self) -> bool:
            return True

        def _folder_contains_at_least_n_files_of_type(self, n_files: int, file_type: str) -> bool:
            asked.append((int(n_files), str(file_type)))
            return True

    try:
        _Probe()._check_exists()
    except Exception:  # noqa: BLE001 - an unexpected tonic version: no threshold
        return None
    return asked[0] if asked else None


def check_complete(title: str, found: int, minimum: int | None, what: str, where: Path,
                   allow_partial: bool | None, source: str = "tonic's check") -> None:
    """Refuse an incomplete dataset: ``found`` items of kind ``what`` under ``where``, ``source`` wants ``minimum``.

    Raises UserError (one line) when ``found < minimum`` unless partial data is allowed
    (:func:`allow_partial_data`), in which case it warns.
    """
    if minimum is None or found >= minimum:
        return
    message = (f"{title}: found {found} {what} under {where}, but the complete dataset has at least {minimum} "
               f"({source}): the download or extraction looks partial")
    if allow_partial_data(allow_partial):
        warnings.warn(f"{message}; using it anyway ({ALLOW_PARTIAL_ENV}=1)", stacklevel=3)
        return
    raise UserError(f"{message}; extract the archive again (or set {ALLOW_PARTIAL_ENV}=1 to use a subset on purpose)")


def check_file_records(path: Path, record_bytes: int, header_bytes: int = 0, what: str = "event file") -> int:
    """Number of fixed-size records in ``path`` after a ``header_bytes`` header; UserError if it is cut short.

    A file whose payload is empty or not a whole number of ``record_bytes`` records was truncated (or is
    not this format): one line naming the file.
    """
    size = path.stat().st_size
    payload = size - header_bytes
    if payload <= 0 or payload % record_bytes:
        raise UserError(f"{path}: truncated or corrupted {what} ({size} bytes: {max(payload, 0)} bytes of events, "
                        f"not a positive multiple of {record_bytes}); replace it with a fresh copy")
    return payload // record_bytes


# ---------------------------------------------------------------------------------------------------------------
# Frames and their cache
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FrameSpec:
    """What the frames of one cache are: everything that changes the cached arrays.

    Attributes:
        dataset: dataset name (``dvs128_gesture``, ...).
        T: frames per recording.
        sensor_size: tonic's (W, H, P) of the cached frames (after any crop).
        reader: a short description of how events are read (format, orientation, crop); part of the key.
    """

    dataset: str
    T: int
    sensor_size: tuple[int, int, int]
    reader: str
    cache_format: int = field(default=CACHE_FORMAT)

    def cache_name(self) -> str:
        """Folder name ``<dataset>-T<T>-<10 hex digits of the spec's SHA-1>``."""
        digest = hashlib.sha1(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:10]
        return f"{self.dataset}-T{self.T}-{digest}"


def compact_counts(frames: np.ndarray) -> np.ndarray:
    """Event counts as the smallest unsigned/signed integer type that holds them exactly (uint8, int16, int32)."""
    counts = np.rint(frames)
    if counts.size and (counts.min() < 0 or not np.array_equal(counts, frames)):
        raise ValueError("event counts must be non-negative integers")
    peak = counts.max() if counts.size else 0
    dtype = np.uint8 if peak <= np.iinfo(np.uint8).max else np.int16 if peak <= np.iinfo(np.int16).max else np.int32
    return counts.astype(dtype)


class FrameCache:
    """One compressed ``.npz`` of integer event counts [T, P, H, W] per recording, under ``folder``.

    Files are written atomically (temporary file + rename), so concurrent DataLoader workers that frame the
    same recording at once, or a killed run, never leave a half-written file. ``folder=None`` disables caching.
    """

    def __init__(self, folder: Path | None, spec: FrameSpec):
        self.folder = folder
        self.spec = spec

    @classmethod
    def under(cls, data_dir: Path, spec: FrameSpec) -> "FrameCache":
        """The cache ``<data_dir>/.frames_cache/<spec.cache_name()>``; disabled (with a warning) if unwritable."""
        folder = data_dir / CACHE_DIR_NAME / spec.cache_name()
        try:
            folder.mkdir(parents=True, exist_ok=True)
            spec_file = folder / "spec.json"
            if not spec_file.exists():
                atomic.write_json(spec_file, asdict(spec))
        except OSError as e:
            warnings.warn(f"frame cache disabled: cannot write {folder} ({e}); every epoch will read raw events",
                          stacklevel=2)
            return cls(None, spec)
        return cls(folder, spec)

    def path(self, key: str) -> Path | None:
        """Cache file of the recording named ``key`` (its relative path, ``/`` replaced by ``__``)."""
        if self.folder is None:
            return None
        return self.folder / (key.replace("/", "__") + ".npz")

    def load(self, key: str) -> np.ndarray | None:
        """The cached counts of ``key``, or None when absent or unreadable (then it is framed again)."""
        path = self.path(key)
        if path is None or not path.exists():
            return None
        try:
            with np.load(path) as archive:
                frames = archive["frames"]
        except Exception:  # noqa: BLE001 - a damaged cache file is rebuilt, not fatal
            return None
        W, H, P = self.spec.sensor_size
        if frames.shape != (self.spec.T, P, H, W):
            return None
        return frames

    def save(self, key: str, frames: np.ndarray) -> None:
        """Store ``frames`` (integer counts [T, P, H, W]) for ``key``; a failing disk only warns."""
        path = self.path(key)
        if path is None:
            return
        buffer = io.BytesIO()
        np.savez_compressed(buffer, frames=frames)
        try:
            atomic.write_bytes(path, buffer.getvalue())
        except OSError as e:
            warnings.warn(f"cannot write frame cache file {path}: {e}", stacklevel=2)


@dataclass(frozen=True)
class FlipRoll:
    """Training augmentation on [T, C, H, W] frames: the reference's ``dvs_aug``.

    With probability 1/2 flip the width axis (if ``flip``), then roll (circular shift) the height and width axes
    by two integers drawn uniformly from [-max_shift, max_shift] (pixels). The same flip and shift apply to
    all T frames. Draws from torch's global generator: reproducible under ``torch.manual_seed``, and distinct
    per DataLoader worker (torch seeds each worker).
    """

    flip: bool = True
    max_shift: int = 5

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        if self.flip and bool(torch.rand(()) < 0.5):
            frames = frames.flip(-1)
        if self.max_shift > 0:
            dy, dx = torch.randint(-self.max_shift, self.max_shift + 1, (2,)).tolist()
            frames = torch.roll(frames, shifts=(dy, dx), dims=(-2, -1))
        return frames


EventReader = Callable[[Sample], np.ndarray]


class EventFrameDataset(Dataset):
    """Recordings as frames: item ``i`` is (float32 [T, P, H', W'] event counts, int label).

    Args:
        samples: the recordings of this split.
        read_events: ``Sample → structured event array`` with fields x, y, p (and t), coordinates already
            inside ``spec.sensor_size``; raises UserError for a bad file. Must be picklable for DataLoader
            workers (a module-level function or a picklable object).
        spec: T, sensor size and reader description (the cache key).
        cache: where frames are kept between epochs (see :class:`FrameCache`).
        augment: optional transform of the float frames [T, P, H, W] (training split only).
        resize: optional (H', W'): ``torch.nn.functional.adaptive_avg_pool2d`` of every frame, after ``augment``
            (CIFAR10-DVS: 128×128 → 48×48, as the reference network's first layer ``nn.AdaptiveAvgPool2d(48)``).

    Frames are never binarized; every frame of a recording holds ``n_events // T`` events (tonic drops the
    last ``n_events % T``).
    """

    def __init__(self, samples: Sequence[Sample], read_events: EventReader, spec: FrameSpec, cache: FrameCache,
                 augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 resize: tuple[int, int] | None = None):
        self.samples = list(samples)
        self.read_events = read_events
        self.spec = spec
        self.cache = cache
        self.augment = augment
        self.resize = resize

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def labels(self) -> list[int]:
        """Label of every item, in order."""
        return [s.label for s in self.samples]

    def raw_frames(self, index: int) -> np.ndarray:
        """Integer event counts [T, P, H, W] of item ``index`` at sensor resolution (cached after the first call)."""
        sample = self.samples[index]
        frames = self.cache.load(sample.key)
        if frames is not None:
            return frames
        frames = frame_recording(sample, self.read_events, self.spec)
        self.cache.save(sample.key, frames)
        return frames

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        frames = torch.from_numpy(self.raw_frames(index).astype(np.float32))
        if self.augment is not None:
            frames = self.augment(frames)
        if self.resize is not None:
            frames = F.adaptive_avg_pool2d(frames, self.resize)
        return frames.contiguous(), self.samples[index].label


def frame_recording(sample: Sample, read_events: EventReader, spec: FrameSpec) -> np.ndarray:
    """Read ``sample`` and bin it into ``spec.T`` frames: integer counts [T, P, H, W].

    Any failure to read or bin the file becomes one UserError line naming it (a truncated or corrupted file).
    """
    from tcja_deploy.data.frames import events_to_frames

    try:
        events = read_events(sample)
        if len(events) == 0:
            raise UserError(f"{sample.path}: no events in the file (truncated or corrupted); replace it with a fresh copy")
        W, H, P = spec.sensor_size
        if (int(events["x"].min()) < 0 or int(events["x"].max()) >= W or int(events["y"].min()) < 0
                or int(events["y"].max()) >= H):
            raise UserError(f"{sample.path}: event coordinates outside the {W}×{H} sensor "
                            f"(x {int(events['x'].min())}..{int(events['x'].max())}, "
                            f"y {int(events['y'].min())}..{int(events['y'].max())}): corrupted file")
        frames = events_to_frames(events, spec.sensor_size, spec.T)
        return compact_counts(np.asarray(frames))
    except UserError as e:
        raise UserError(one_line(str(e))) from None
    except Exception as e:  # noqa: BLE001 - every read failure is reported as a bad file
        raise UserError(one_line(f"{sample.path}: cannot read events ({type(e).__name__}: {e}); the file looks "
                                 f"truncated or corrupted, replace it with a fresh copy")) from None


# ---------------------------------------------------------------------------------------------------------------
# Split files
# ---------------------------------------------------------------------------------------------------------------


def split_file_path(data_dir: Path, dataset: str, seed: int) -> Path:
    """``<data_dir>/<dataset>_split_seed<seed>.json``."""
    return data_dir / f"{dataset}_split_seed{seed}.json"


def load_or_make_split(samples: Sequence[Sample], path: Path, dataset: str, seed: int,
                       test_fraction: float = TEST_FRACTION) -> tuple[list[Sample], list[Sample]]:
    """(train, test) samples: read from the split file ``path`` if it exists, else made and written there.

    A new split is per class and seeded: :func:`tcja_deploy.data.frames.stratified_split` over the samples
    sorted by key (``round(test_fraction · n_class)`` recordings of each class go to the test split). The file
    (JSON) lists the test recordings by key, with the seed, the fraction and the number of recordings; it is
    written atomically. An existing file is read, not recomputed, and checked against the recordings present:
    a listed key that is missing, or a different number of recordings, is a UserError (delete the file to make
    a new split).
    """
    from tcja_deploy.data.frames import stratified_split

    ordered = sorted(samples, key=lambda s: s.key)
    by_key = {s.key: s for s in ordered}
    if path.exists():
        try:
            content = json.loads(path.read_text())
            test_keys = [str(k) for k in content["test"]]
            recorded = int(content["num_samples"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise UserError(one_line(f"{path}: unreadable split file ({type(e).__name__}: {e}); delete it to "
                                     f"make a new split")) from None
        missing = [k for k in test_keys if k not in by_key]
        if missing or recorded != len(ordered) or len(set(test_keys)) != len(test_keys):
            detail = (f"{len(missing)} listed test recordings are missing (first: {missing[0]})" if missing
                      else f"it was made for {recorded} recordings, {len(ordered)} are present")
            raise UserError(f"{path}: split file does not match the dataset ({detail}); restore the dataset or "
                            f"delete the file to make a new split")
        test_set = set(test_keys)
    else:
        labels = [s.label for s in ordered]
        _, test_idx = stratified_split(labels, test_fraction, seed=seed)
        test_keys = [ordered[i].key for i in test_idx]
        test_set = set(test_keys)
        content = {
            "dataset": dataset,
            "seed": seed,
            "test_fraction": test_fraction,
            "num_samples": len(ordered),
            "method": "per class: shuffle with numpy RandomState(seed) over recordings sorted by key, "
                      "round(test_fraction * n_class) to test",
            "test": sorted(test_keys),
        }
        try:
            atomic.write_json(path, content)
        except OSError as e:
            warnings.warn(f"cannot write split file {path} ({e}); the split is recomputed on every run",
                          stacklevel=2)
    train = [s for s in ordered if s.key not in test_set]
    test = [s for s in ordered if s.key in test_set]
    return train, test


def training_augment(augment: bool | None, default: bool, transform: FlipRoll) -> FlipRoll | None:
    """The training split's augmentation: ``transform`` if ``augment`` (None → the dataset's ``default``)."""
    return transform if (default if augment is None else augment) else None
