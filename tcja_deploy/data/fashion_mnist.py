"""Fashion-MNIST (Xiao et al. 2017) from its idx files: 10 classes, 1×28×28 images repeated over T (direct input).

On disk: the four standard files, gzipped or not, in the first of these folders that holds all four
(``<data_dir>/FashionMNIST/raw`` is where torchvision, and so ``--download``, puts them)::

    <data_dir>/FashionMNIST/raw/   or  <data_dir>/FashionMNIST/   or  <data_dir>/fashion_mnist/   or  <data_dir>/
        train-images-idx3-ubyte[.gz]  train-labels-idx1-ubyte[.gz]
        t10k-images-idx3-ubyte[.gz]   t10k-labels-idx1-ubyte[.gz]

The file names and class names are torchvision's (``torchvision.datasets.FashionMNIST.resources`` /
``.classes``). idx format (LeCun's MNIST page, the format Fashion-MNIST keeps): bytes 0–1 zero, byte 2 the
type (0x08 = unsigned byte), byte 3 the number of dimensions d, then d big-endian uint32 sizes, then the
data, row-major. A file shorter or longer than its header says is refused with a one-line UserError.

Items are (float32 [T, 1, 28, 28] intensities in [0, 1], the same image at every step, label). Splits are the
official 60 000 / 10 000. No augmentation by default; ``augment=True`` flips the width axis (p = 1/2) and
rolls ±2 px (ours: there is no reference code for this dataset). The images are read once per process
(47 MB), so there is no frame cache.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from tcja_deploy.data.event_frames import FlipRoll, resolve_data_dir, training_augment
from tcja_deploy.errors import UserError

NAME = "fashion_mnist"
TITLE = "Fashion-MNIST"
SOURCE = "https://github.com/zalandoresearch/fashion-mnist"
#: Default training augmentation: none.
AUGMENT_DEFAULT = False
#: ``augment=True``: flip the width axis with p = 1/2, roll up to ±2 pixels (ours).
AUGMENTATION = FlipRoll(flip=True, max_shift=2)
IDX_UNSIGNED_BYTE = 0x08


def _torchvision_dataset():
    from torchvision.datasets import FashionMNIST

    return FashionMNIST


def file_names() -> dict[str, tuple[str, str]]:
    """{"train": (images, labels), "test": (images, labels)}: torchvision's names without ``.gz``."""
    names = [name.removesuffix(".gz") for name, _ in _torchvision_dataset().resources]
    images = {n for n in names if "images" in n}
    labels = {n for n in names if "labels" in n}
    split_of = {"train": "train-", "test": "t10k-"}
    return {split: (next(n for n in images if n.startswith(prefix)), next(n for n in labels if n.startswith(prefix)))
            for split, prefix in split_of.items()}


def candidate_folders(data_dir: Path) -> list[Path]:
    """Folders searched for the files, in order."""
    return [data_dir / "FashionMNIST" / "raw", data_dir / "FashionMNIST", data_dir / "fashion_mnist", data_dir]


def find_files(data_dir: Path, folders: list[Path] | None = None) -> dict[str, tuple[Path, Path]] | None:
    """Paths of the four files in the first of ``folders`` (default :func:`candidate_folders`) holding all four
    (plain name before ``.gz``). MNIST's files have the same names (:mod:`tcja_deploy.data.image_sets`)."""
    for folder in (candidate_folders(data_dir) if folders is None else folders):
        found: dict[str, tuple[Path, Path]] = {}
        for split, pair in file_names().items():
            paths = []
            for name in pair:
                path = next((p for p in (folder / name, folder / f"{name}.gz") if p.is_file()), None)
                if path is None:
                    break
                paths.append(path)
            if len(paths) == 2:
                found[split] = (paths[0], paths[1])
        if len(found) == 2:
            return found
    return None


def read_idx(path: Path) -> np.ndarray:
    """The unsigned-byte array stored in idx file ``path`` (gzip if it ends in ``.gz``).

    Raises UserError (one line naming the file) if it cannot be read, is not an unsigned-byte idx file, or
    holds fewer or more bytes than its header declares.
    """
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                data = f.read()
        else:
            data = path.read_bytes()
    except (OSError, EOFError, zlib.error) as e:
        raise UserError(f"{path}: cannot read ({type(e).__name__}: {e}); truncated or corrupted, "
                        f"replace it with a fresh copy".replace("\n", " ")) from None
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] != IDX_UNSIGNED_BYTE:
        raise UserError(f"{path}: not an unsigned-byte idx file (bad header); replace it with a fresh copy")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise UserError(f"{path}: truncated idx header ({len(data)} bytes)")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    expected = header + int(np.prod(shape, dtype=np.int64))
    if len(data) != expected:
        raise UserError(f"{path}: {'truncated' if len(data) < expected else 'too long'}: {len(data)} bytes, "
                        f"its header {list(shape)} needs {expected}; replace it with a fresh copy")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def read_split(images_path: Path, labels_path: Path, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 [N, H, W], labels int64 [N]) of one split, checked for matching counts and label range."""
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3:
        raise UserError(f"{images_path}: expected [N, H, W] images, found shape {list(images.shape)}")
    if labels.ndim != 1 or len(labels) != len(images):
        raise UserError(f"{labels_path}: {labels.shape[0] if labels.ndim else 0} labels for the "
                        f"{len(images)} images of {images_path.name}")
    if labels.size and labels.max() >= num_classes:
        raise UserError(f"{labels_path}: label {int(labels.max())} outside 0..{num_classes - 1}")
    return images, labels.astype(np.int64)


class RepeatedImages(Dataset):
    """Static images as direct input: item ``i`` is (float32 [T, 1, H, W] in [0, 1], int label).

    Args:
        images: uint8 [N, H, W] (0–255, kept as bytes; scaled by 1/255 per item).
        labels: int [N].
        T: time steps; every step shows the same image.
        augment: optional transform of the [T, 1, H, W] frames (training split only).
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, T: int,
                 augment: Callable[[torch.Tensor], torch.Tensor] | None = None):
        self.images = torch.from_numpy(np.array(images, dtype=np.uint8, copy=True))
        self.labels = [int(v) for v in labels]
        self.T = int(T)
        self.augment = augment

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        from tcja_deploy.data.frames import repeat_frames

        image = self.images[index].to(torch.float32).div_(255.0).unsqueeze(0)  # [1, H, W]
        frames = repeat_frames(image, self.T)
        if self.augment is not None:
            frames = self.augment(frames)
        return frames.contiguous(), self.labels[index]


def expected_layout(data_dir: Path) -> str:
    """One-line description of the files this loader looks for."""
    names = [n for pair in file_names().values() for n in pair]
    return f"{', '.join(names)} (or .gz) in {data_dir / 'FashionMNIST' / 'raw'} (or {data_dir / 'FashionMNIST'}, {data_dir})"


def _download(data_dir: Path) -> None:
    """torchvision's download of the four files into ``<data_dir>/FashionMNIST/raw`` (skipped if present)."""
    try:
        _torchvision_dataset()(str(data_dir), train=True, download=True)
    except Exception as e:  # noqa: BLE001 - network errors → one line
        raise UserError(f"{TITLE}: download into {data_dir / 'FashionMNIST' / 'raw'} failed "
                        f"({type(e).__name__}: {e})".replace("\n", " ")) from None


def load(T: int, data_dir: Path | None = None, augment: bool | None = None, download: bool = False,
         seed: int = 0, workers: int = 0):
    """Fashion-MNIST as repeated frames: a :class:`tcja_deploy.data.registry.DatasetPair`.

    Args:
        T: time steps (the image is shown at each; reference preset T = 8).
        data_dir: folder holding the idx files (see the module docstring; None → :func:`resolve_data_dir`).
        augment: training augmentation (None → off; True → flip + roll ±2 px).
        download: fetch the files with torchvision if missing (never otherwise).
        seed: unused (official split).
        workers: unused.

    Returns:
        train (60 000) / test (10 000) datasets of (float32 [T, 1, 28, 28], label in 0..9), input_shape
        (1, 28, 28), num_classes 10.

    Raises:
        UserError: files missing, truncated or corrupted.
    """
    from tcja_deploy.data.registry import DatasetPair

    data_dir = resolve_data_dir(data_dir)
    if download and find_files(data_dir) is None:
        _download(data_dir)
    paths = find_files(data_dir)
    if paths is None:
        raise UserError(f"{TITLE} not found: expected {expected_layout(data_dir)}; run with --download or get them "
                        f"from {SOURCE}")
    num_classes = len(_torchvision_dataset().classes)
    train_images, train_labels = read_split(*paths["train"], num_classes)
    test_images, test_labels = read_split(*paths["test"], num_classes)
    if train_images.shape[1:] != test_images.shape[1:]:
        raise UserError(f"{paths['test'][0]}: images of {list(test_images.shape[1:])} pixels, the training images "
                        f"have {list(train_images.shape[1:])}")
    train = RepeatedImages(train_images, train_labels, T,
                           augment=training_augment(augment, AUGMENT_DEFAULT, AUGMENTATION))
    test = RepeatedImages(test_images, test_labels, T)
    height, width = train_images.shape[1:]
    return DatasetPair(train=train, test=test, input_shape=(1, int(height), int(width)), num_classes=num_classes,
                       name=NAME)
