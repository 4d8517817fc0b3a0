"""N-Caltech101 (Orchard et al., Front. Neurosci. 2015) through tonic: 101 classes, 2×180×240 event frames.

On disk (tonic 1.7's ``tonic.datasets.NCALTECH101`` layout: the archive's ``Caltech101.zip`` extracted)::

    <data_dir>/NCALTECH101/Caltech101/<class>/image_<NNNN>.bin

Each ``.bin`` is one saccade recording of the ATIS sensor: 40-bit events (byte 0: x, byte 1: y, byte 2 bit 7:
polarity, the remaining 23 bits: timestamp in µs; y = 240 marks a timestamp overflow). tonic lists the
files and reads them (``tonic.io.read_mnist_file``), labelling each by its folder name and shifting x and y
so that each recording's smallest coordinate is 0. Class indices are the class folders in sorted order
(the archive has 101 folders: 100 object classes and ``BACKGROUND_Google``).

Recordings have different sizes (tonic's ``sensor_size`` is None). Every recording is placed on a fixed
240 (W) × 180 (H) canvas — the preset's input shape, SpikingJelly's N-Caltech101 size that the reference
uses — at its top-left corner (tonic's shift): events with x ≥ 240 or y ≥ 180 are dropped (crop) before
framing, and a smaller recording leaves the bottom/right of the canvas empty (zero padding). There is no
official split: a seeded 90/10 split per class is written to ``<data_dir>/ncaltech101_split_seed<seed>.json``.
Augmentation is off by default; ``augment=True`` flips the width axis (p = 1/2) and rolls ±5 px.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tonic

from tcja_deploy.data.event_frames import (EventFrameDataset, FlipRoll, FrameCache, FrameSpec, Sample,
                                           check_complete, check_file_records, load_or_make_split, resolve_data_dir,
                                           split_file_path, tonic_minimum_files, training_augment)
from tcja_deploy.errors import UserError

NAME = "ncaltech101"
TITLE = "N-Caltech101"
TONIC_CLASS = tonic.datasets.NCALTECH101
#: Garrick Orchard's page for the dataset (cited in tonic's docstring).
ORIGINAL_SOURCE = "https://www.garrickorchard.com/datasets/n-caltech101"
#: Default training augmentation: none (the reference ``src/caltech101.py`` trains without it).
AUGMENT_DEFAULT = False
#: ``augment=True``: the reference's dvs_aug (flip the width axis with p = 1/2, roll ±5 px).
AUGMENTATION = FlipRoll(flip=True, max_shift=5)
ATIS_RECORD_BYTES = 5  # 40-bit events


class _OfflineNCALTECH101(TONIC_CLASS):  # type: ignore[misc, valid-type]
    """tonic's NCALTECH101 over the files already on disk: its existence check always passes, so it never downloads."""

    def _check_exists(self) -> bool:
        return True


# tonic places the data under <save_to>/<class name>: keep tonic's name.
_OfflineNCALTECH101.__name__ = TONIC_CLASS.__name__


def canvas_size() -> tuple[int, int, int]:
    """(W, H, P) of the frames, in tonic's sensor_size order: the ncaltech101 preset's input (240, 180, 2)."""
    from tcja_deploy.models.presets import get_preset

    polarities, height, width = get_preset(NAME).model.input_shape
    return width, height, polarities


def crop_events(events: np.ndarray, width: int, height: int) -> np.ndarray:
    """Events inside the ``width`` × ``height`` canvas (0 ≤ x < width, 0 ≤ y < height); the rest are dropped."""
    inside = (events["x"] >= 0) & (events["x"] < width) & (events["y"] >= 0) & (events["y"] < height)
    return events[inside]


class _TonicReader:
    """Events of a sample through tonic's ``__getitem__``, cropped to the canvas (picklable)."""

    def __init__(self, dataset: _OfflineNCALTECH101, width: int, height: int):
        self.dataset = dataset
        self.width = width
        self.height = height

    def __call__(self, sample: Sample) -> np.ndarray:
        check_file_records(sample.path, ATIS_RECORD_BYTES, 0, "N-Caltech101 .bin file")
        events, _ = self.dataset[sample.source_index]
        return crop_events(events, self.width, self.height)


def expected_layout(root: Path) -> str:
    """One-line description of the files this loader looks for under ``root`` (= <data_dir>/NCALTECH101)."""
    return (f"{root}/{TONIC_CLASS.folder_name}/<class>/image_<NNNN>.bin (the {TONIC_CLASS.data_filename} inside "
            f"tonic's {TONIC_CLASS.filename}, extracted)")


def how_to_get() -> str:
    """Where the files come from (tonic's URL, read from tonic's class, and the dataset's page)."""
    return f"run with --download (tonic fetches {TONIC_CLASS.url}) or get it from {ORIGINAL_SOURCE}"


def _download(data_dir: Path) -> None:
    """tonic's own download; then extract the inner ``Caltech101.zip`` if tonic left it packed."""
    try:
        dataset = TONIC_CLASS(str(data_dir))
        location = Path(dataset.location_on_system)
        inner = location / TONIC_CLASS.data_filename
        if inner.exists() and not (location / TONIC_CLASS.folder_name).is_dir():
            tonic.download_utils.extract_archive(str(inner), str(location))
    except Exception as e:  # noqa: BLE001 - network / archive errors → one line
        raise UserError(f"{TITLE}: download into {data_dir / TONIC_CLASS.__name__} failed "
                        f"({type(e).__name__}: {e})".replace("\n", " ")) from None


def list_recordings(data_dir: Path) -> tuple[list[Sample], list[str], _OfflineNCALTECH101]:
    """All recordings sorted by key, the class names (sorted class folders) and the tonic object reading them."""
    dataset = _OfflineNCALTECH101(str(data_dir))
    root = Path(dataset.location_on_system)
    folder = root / TONIC_CLASS.folder_name
    class_names = sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    index_of = {name: i for i, name in enumerate(class_names)}
    samples = []
    for index, (path, target) in enumerate(zip(dataset.data, dataset.targets)):
        path = Path(path)
        if target not in index_of:  # a .bin directly in Caltech101/ or deeper
            raise UserError(f"{path}: not inside a class folder of {folder}")
        samples.append(Sample(path=path, key=path.relative_to(root).as_posix(), label=index_of[target],
                              source_index=index))
    samples.sort(key=lambda s: s.key)
    return samples, class_names, dataset


def load(T: int, data_dir: Path | None = None, augment: bool | None = None, download: bool = False,
         seed: int = 0, workers: int = 0, allow_partial: bool | None = None):
    """N-Caltech101 as frames: a :class:`tcja_deploy.data.registry.DatasetPair`.

    Args:
        T: frames per recording (each holds ``n_events // T`` of the cropped events; reference T = 14).
        data_dir: folder holding ``NCALTECH101/`` (None → :func:`resolve_data_dir`); the split file is written here.
        augment: training augmentation (None → off; True → flip + roll ±5 px).
        download: let tonic download and extract missing files (never otherwise).
        seed: seed of the 90/10 split (a split file per seed).
        workers: unused: frames are built on first access and cached, safely from DataLoader workers.
        allow_partial: accept fewer files or classes than the complete dataset (None → ``$TCJA_ALLOW_PARTIAL_DATA``).

    Returns:
        train/test datasets of (float32 [T, 2, 180, 240] event counts, label in 0..100), input_shape
        (2, 180, 240), num_classes 101 (the preset's; a complete dataset has exactly that many class folders).

    Raises:
        UserError: dataset missing or incomplete, a stale split file, a truncated or corrupted file (when first read).
    """
    from tcja_deploy.data.registry import DatasetPair
    from tcja_deploy.models.presets import get_preset

    data_dir = resolve_data_dir(data_dir)
    root = data_dir / TONIC_CLASS.__name__
    if download:
        _download(data_dir)
    samples, class_names, tonic_dataset = list_recordings(data_dir)
    if not samples:
        raise UserError(f"{TITLE} not found: expected {expected_layout(root)}; {how_to_get()}")
    num_classes = get_preset(NAME).model.num_classes
    minimum = tonic_minimum_files(TONIC_CLASS)
    check_complete(TITLE, len(samples), minimum[0] if minimum else None, ".bin recordings",
                   root / TONIC_CLASS.folder_name, allow_partial)
    if len(class_names) > num_classes:
        raise UserError(f"{TITLE}: {len(class_names)} class folders under {root / TONIC_CLASS.folder_name}, "
                        f"expected {num_classes}; remove the extra folders")
    check_complete(TITLE, len(class_names), num_classes, "class folders", root / TONIC_CLASS.folder_name,
                   allow_partial, source=f"the {NAME} preset's class count")

    width, height, polarities = canvas_size()
    spec = FrameSpec(dataset=NAME, T=int(T), sensor_size=(width, height, polarities),
                     reader="tonic NCALTECH101 bin, min-shifted, cropped to canvas at top-left")
    cache = FrameCache.under(data_dir, spec)
    train_samples, test_samples = load_or_make_split(samples, split_file_path(data_dir, NAME, seed), NAME, seed)
    reader = _TonicReader(tonic_dataset, width, height)
    train = EventFrameDataset(train_samples, reader, spec, cache,
                              augment=training_augment(augment, AUGMENT_DEFAULT, AUGMENTATION))
    test = EventFrameDataset(test_samples, reader, spec, cache)
    return DatasetPair(train=train, test=test, input_shape=(polarities, height, width), num_classes=num_classes, name=NAME)
