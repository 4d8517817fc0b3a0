"""Still images for image generation (the spiking VAE): one loader, five datasets, pixels in [−1, 1].

:func:`load_image_set` returns a whole split as two tensors: images float32 [N, C, H, W] scaled to [−1, 1]
(``2·x − 1`` of intensities in [0, 1], as FSVAE's ``SetRange``) and labels int64 [N]. Sizes follow FSVAE
(Kamata et al., AAAI 2022, repo kamata1729/FullySpikingVAE ``datasets/load_dataset_snn.py``): the 28×28
sets resized to 32×32, CIFAR10 at its own 32×32, CelebA center-cropped to 148×148 and resized to 64×64.

=================  ========  ===========================================================================
name               [C, H, W]  source on disk (under ``data_dir``; None → ``$TCJA_DATA_DIR`` or ``~/data``)
=================  ========  ===========================================================================
``digits``         1×32×32   embedded: scikit-learn's 8×8 digits, bilinear ×4 (``digits.py``'s split)
``mnist``          1×32×32   idx files in ``MNIST/raw`` (torchvision's layout), ``MNIST``, ``mnist`` or
                             ``data_dir`` itself; gzipped or not
``fashion_mnist``  1×32×32   idx files as :mod:`tcja_deploy.data.fashion_mnist` finds them
``cifar10``        3×32×32   ``cifar-10-batches-py/`` (``data_batch_1`` … ``_5``, ``test_batch``)
``celeba``         3×64×64   ``celeba/img_align_celeba/*.jpg`` + ``celeba/list_eval_partition.txt``
=================  ========  ===========================================================================

Resizing is bilinear (``interpolate(mode="bilinear", align_corners=False)`` on the 28×28 sets; PIL's
bilinear filter on CelebA, as torchvision's ``Resize`` on PIL images). CelebA has no classes: its labels
are all 0. The CIFAR10 batches are Python pickles; they are read with an unpickler that admits only the
numpy types such a batch holds, so a crafted file cannot run code. No augmentation here (FSVAE flips
CIFAR10 and CelebA horizontally while training; we do not).

Missing, truncated or malformed files raise a one-line :class:`~tcja_deploy.errors.UserError` naming
the file. ``download=True`` fetches a missing dataset with torchvision (MNIST, Fashion-MNIST, CIFAR10;
CelebA's Google-Drive download through torchvision where it still works).
"""

from __future__ import annotations

import functools
import io
import pickle
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from tcja_deploy.data import fashion_mnist
from tcja_deploy.data.event_frames import resolve_data_dir
from tcja_deploy.errors import UserError

NAMES = ("digits", "mnist", "fashion_mnist", "cifar10", "celeba")
SPLITS = ("train", "test")
#: [C, H, W] of each dataset's images as :func:`load_image_set` returns them.
IMAGE_SHAPES: dict[str, tuple[int, int, int]] = {
    "digits": (1, 32, 32), "mnist": (1, 32, 32), "fashion_mnist": (1, 32, 32), "cifar10": (3, 32, 32),
    "celeba": (3, 64, 64),
}
NUM_CLASSES = {"digits": 10, "mnist": 10, "fashion_mnist": 10, "cifar10": 10, "celeba": 1}
CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_FILES = {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)}
CELEBA_FOLDER = "celeba"
CELEBA_IMAGES = "img_align_celeba"
CELEBA_PARTITION = "list_eval_partition.txt"
#: list_eval_partition.txt's code of each split (1 is the validation split, unused).
CELEBA_SPLIT_CODE = {"train": 0, "test": 2}
CELEBA_CROP = 148


def to_signed(images01: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Intensities in [0, 1] → float32 tensor in [−1, 1] (``2·x − 1``)."""
    x = torch.as_tensor(np.asarray(images01), dtype=torch.float32)
    return x.mul(2.0).sub_(1.0)


def resize(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of float [N, C, h, w] to [N, C, H, W] (``align_corners=False``); unchanged if equal."""
    if tuple(images.shape[-2:]) == tuple(size):
        return images
    return F.interpolate(images, size=size, mode="bilinear", align_corners=False)


# ---------------------------------------------------------------------------------------------------------------
# digits (embedded)
# ---------------------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=2)
def _digits(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    from tcja_deploy.data.digits import digits_arrays, digits_split

    images, labels = digits_arrays()
    idx = digits_split()[SPLITS.index(split)]
    small = torch.from_numpy(images[idx].astype(np.float32)).unsqueeze(1)  # [N, 1, 8, 8] in [0, 1]
    big = resize(small, IMAGE_SHAPES["digits"][1:]).clamp_(0.0, 1.0)
    return to_signed(big), torch.from_numpy(labels[idx].copy())


# ---------------------------------------------------------------------------------------------------------------
# MNIST / Fashion-MNIST (idx)
# ---------------------------------------------------------------------------------------------------------------


def mnist_folders(data_dir: Path) -> list[Path]:
    """Folders searched for MNIST's idx files, in order."""
    return [data_dir / "MNIST" / "raw", data_dir / "MNIST", data_dir / "mnist", data_dir]


def _find_mnist(data_dir: Path) -> dict[str, tuple[Path, Path]] | None:
    """MNIST's files (the same four names as Fashion-MNIST's) in the first folder that holds all four."""
    return fashion_mnist.find_files(data_dir, mnist_folders(data_dir))


def _download_torchvision(dataset_class: str, data_dir: Path, title: str, **kwargs) -> None:
    """Download ``torchvision.datasets.<dataset_class>`` into ``data_dir`` (network errors → one line)."""
    import torchvision.datasets as tvd

    try:
        getattr(tvd, dataset_class)(str(data_dir), download=True, **kwargs)
    except Exception as e:  # noqa: BLE001 - network and archive errors → one line
        raise UserError(f"{title}: download into {data_dir} failed ({type(e).__name__}: {e})".replace("\n", " ")) \
            from None


def _idx_set(name: str, split: str, data_dir: Path, download: bool) -> tuple[torch.Tensor, torch.Tensor]:
    if name == "mnist":
        find, title, cls = _find_mnist, "MNIST", "MNIST"
        where = f"{', '.join(n for pair in fashion_mnist.file_names().values() for n in pair)} (or .gz) in " \
                f"{data_dir / 'MNIST' / 'raw'} (or {data_dir / 'MNIST'}, {data_dir / 'mnist'}, {data_dir})"
    else:
        find, title, cls = fashion_mnist.find_files, fashion_mnist.TITLE, "FashionMNIST"
        where = fashion_mnist.expected_layout(data_dir)
    if download and find(data_dir) is None:
        _download_torchvision(cls, data_dir, title, train=True)
        _download_torchvision(cls, data_dir, title, train=False)
    paths = find(data_dir)
    if paths is None:
        raise UserError(f"{title} not found: expected {where}; run with --download")
    images, labels = fashion_mnist.read_split(*paths[split], NUM_CLASSES[name])
    x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
    return to_signed(resize(x, IMAGE_SHAPES[name][1:]).clamp_(0.0, 1.0)), torch.from_numpy(labels)


# ---------------------------------------------------------------------------------------------------------------
# CIFAR10 (python pickle batches)
# ---------------------------------------------------------------------------------------------------------------


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Admits only the globals a CIFAR batch needs (numpy arrays and dtypes); anything else is refused."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy", "ndarray"), ("numpy", "dtype"),
               ("numpy.core.multiarray", "scalar"), ("_codecs", "encode"),
               ("numpy._core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "scalar")}

    def find_class(self, module: str, name: str):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR batch")


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 [N, 3, 32, 32], labels int64 [N]) of one CIFAR10 batch file; bad files → UserError."""
    try:
        raw = path.read_bytes()
        batch = _NumpyOnlyUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror or e})") from None
    except Exception as e:  # noqa: BLE001 - any unpickling failure is a bad file
        raise UserError(f"{path}: not a CIFAR10 batch ({type(e).__name__}: {e})".replace("\n", " ")) from None
    if not isinstance(batch, dict):
        raise UserError(f"{path}: not a CIFAR10 batch (a {type(batch).__name__}, not a dict)")
    data, labels = batch.get(b"data", batch.get("data")), batch.get(b"labels", batch.get("labels"))
    if data is None or labels is None:
        raise UserError(f"{path}: not a CIFAR10 batch (no 'data' and 'labels' entries)")
    data = np.asarray(data)
    labels = np.asarray(labels, dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise UserError(f"{path}: 'data' is {data.dtype} {list(data.shape)}, expected uint8 [N, 3072]")
    if labels.shape != (len(data),):
        raise UserError(f"{path}: {labels.size} labels for {len(data)} images")
    if labels.size and (labels.min() < 0 or labels.max() >= NUM_CLASSES["cifar10"]):
        raise UserError(f"{path}: labels outside 0..9")
    return data.reshape(-1, 3, 32, 32), labels


def _cifar10(split: str, data_dir: Path, download: bool) -> tuple[torch.Tensor, torch.Tensor]:
    folder = data_dir / CIFAR10_FOLDER
    names = CIFAR10_FILES["train"] + CIFAR10_FILES["test"]
    if download and not all((folder / n).is_file() for n in names):
        _download_torchvision("CIFAR10", data_dir, "CIFAR10", train=True)
    missing = [n for n in CIFAR10_FILES[split] if not (folder / n).is_file()]
    if missing:
        raise UserError(f"CIFAR10 not found: {folder / missing[0]} is missing (expected {', '.join(names)} in "
                        f"{folder}); run with --download")
    parts = [read_cifar_batch(folder / n) for n in CIFAR10_FILES[split]]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    return to_signed(torch.from_numpy(images).float().div_(255.0)), torch.from_numpy(labels)


# ---------------------------------------------------------------------------------------------------------------
# CelebA (aligned JPEGs + partition list)
# ---------------------------------------------------------------------------------------------------------------


def read_celeba_partition(path: Path) -> list[tuple[str, int]]:
    """[(file name, split code 0/1/2)] from ``list_eval_partition.txt`` (``<name> <code>`` per line)."""
    try:
        text = path.read_text(encoding="ascii")
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror or e})") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a text partition list (non-ASCII bytes)") from None
    entries = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 2 or fields[1] not in ("0", "1", "2") or "/" in fields[0] or fields[0].startswith("."):
            raise UserError(f"{path}: line {number} is not '<image>.jpg <0|1|2>': {line.strip()[:80]!r}")
        entries.append((fields[0], int(fields[1])))
    return entries


def celeba_image(path: Path, size: int) -> np.ndarray:
    """One CelebA image: center crop 148×148, bilinear resize to size×size; uint8 [3, size, size]."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
            w, h = img.size
            if w < CELEBA_CROP or h < CELEBA_CROP:
                raise UserError(f"{path}: {w}×{h} pixels, smaller than the {CELEBA_CROP}×{CELEBA_CROP} crop")
            left, top = round((w - CELEBA_CROP) / 2), round((h - CELEBA_CROP) / 2)
            img = img.crop((left, top, left + CELEBA_CROP, top + CELEBA_CROP)).resize((size, size),
                                                                                      Image.BILINEAR)
            return np.asarray(img, dtype=np.uint8).transpose(2, 0, 1).copy()
    except (OSError, UnidentifiedImageError, SyntaxError) as e:
        raise UserError(f"{path}: not a readable image ({type(e).__name__}: {e})".replace("\n", " ")) from None


def _celeba(split: str, data_dir: Path, download: bool, limit: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    root = data_dir / CELEBA_FOLDER
    partition = root / CELEBA_PARTITION
    if download and not (partition.is_file() and (root / CELEBA_IMAGES).is_dir()):
        _download_torchvision("CelebA", data_dir, "CelebA", split="all", target_type=[])
    if not partition.is_file() or not (root / CELEBA_IMAGES).is_dir():
        raise UserError(f"CelebA not found: expected {root / CELEBA_IMAGES}/ and {partition}; run with --download "
                        f"or get them from https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html")
    names = [n for n, code in read_celeba_partition(partition) if code == CELEBA_SPLIT_CODE[split]]
    if limit is not None:
        names = names[:limit]
    if not names:
        raise UserError(f"{partition}: no image of the {split} split (code {CELEBA_SPLIT_CODE[split]})")
    size = IMAGE_SHAPES["celeba"][1]
    images = np.empty((len(names), 3, size, size), dtype=np.uint8)
    for i, name in enumerate(names):
        path = root / CELEBA_IMAGES / name
        if not path.is_file():
            raise UserError(f"{path}: missing (listed in {partition})")
        images[i] = celeba_image(path, size)
    return to_signed(torch.from_numpy(images).float().div_(255.0)), torch.zeros(len(names), dtype=torch.int64)


def load_image_set(name: str, split: str, data_dir: Path | None = None, download: bool = False,
                   limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """A whole split of an image dataset for generation.

    Args:
        name: one of :data:`NAMES`.
        split: ``train`` or ``test``.
        data_dir: dataset root (None → ``$TCJA_DATA_DIR`` or ``~/data``); unused for ``digits``.
        download: fetch a missing dataset with torchvision (never otherwise).
        limit: CelebA only: read at most this many images of the split (in partition-list order).

    Returns:
        (images float32 [N, C, H, W] in [−1, 1] with [C, H, W] = ``IMAGE_SHAPES[name]``, labels int64 [N]).

    Raises:
        UserError: unknown name or split; files missing, truncated or malformed (one line naming the file).
    """
    if name not in NAMES:
        raise UserError(f"image set {name!r}: unknown; choose one of {', '.join(NAMES)}")
    if split not in SPLITS:
        raise UserError(f"split {split!r}: choose train or test")
    if name == "digits":
        images, labels = _digits(split)
        return images.clone(), labels.clone()
    root = resolve_data_dir(data_dir)
    if name in ("mnist", "fashion_mnist"):
        return _idx_set(name, split, root, download)
    if name == "cifar10":
        return _cifar10(split, root, download)
    return _celeba(split, root, download, limit)
