"""Tiny datasets written in the real on-disk formats that tonic 1.7 and our idx reader read (offline tests).

Each writer returns what it wrote — per recording its key (path relative to the dataset folder), label and
the events as the loader should see them — so tests can check frames against an independent computation.
Formats (facts, from tonic 1.7's sources and the datasets' documentation):

- DVS128 Gesture (tonic's preprocessed release): ``DVSGesture/ibmGestureTrain|ibmGestureTest/
  user<NN>_<lighting>/<label>.npy``, an [N, 4] array of (x, y, p, t in ms).
- CIFAR10-DVS original release: ``CIFAR10DVS/<class>/<name>.aedat``, AEDAT 2.0: ``#`` header lines ending
  in CR LF, then big-endian uint32 (address, timestamp µs) pairs; address bits: ``(a & 0xFE) >> 1``
  and ``(a & 0x7F00) >> 8`` hold the two coordinates, bit 0 the inverted polarity (SpikingJelly's decoding).
- N-Caltech101: ``NCALTECH101/Caltech101/<class>/image_<NNNN>.bin``, 5 bytes per event: x, y,
  polarity << 7 | t >> 16, t >> 8 & 0xFF, t & 0xFF (y = 240 marks a timestamp-overflow record).
- Fashion-MNIST: idx files (``00 00 08 d``, d big-endian uint32 sizes, bytes), optionally gzipped.
"""

from __future__ import annotations

import gzip
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

GESTURE_CLASSES = 11
CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CALTECH_CLASSES = ("BACKGROUND_Google", "Faces_easy", "accordion", "airplanes")


@dataclass
class FakeRecording:
    """One written recording: its key, label and the events the loader should produce (x, y, p; sorted by t)."""

    key: str
    label: int
    x: np.ndarray
    y: np.ndarray
    p: np.ndarray


def random_events(rng: np.random.Generator, n: int, width: int, height: int) -> tuple[np.ndarray, ...]:
    """``n`` random events (x, y, p, t µs ascending) on a width × height sensor."""
    x = rng.integers(0, width, n)
    y = rng.integers(0, height, n)
    p = rng.integers(0, 2, n)
    t = np.sort(rng.choice(np.arange(1, 50 * n), size=n, replace=False))
    return x, y, p, t


def write_dvs_gesture(data_dir: Path, seed: int = 0, n_events: int = 97,
                      users: dict[str, tuple[int, ...]] | None = None) -> dict[str, FakeRecording]:
    """One recording per class per user; train users 1, 2 and test user 3 by default."""
    rng = np.random.default_rng(seed)
    users = users or {"ibmGestureTrain": (1, 2), "ibmGestureTest": (3,)}
    written = {}
    for folder, user_ids in users.items():
        for user in user_ids:
            session = data_dir / "DVSGesture" / folder / f"user{user:02d}_fluorescent"
            session.mkdir(parents=True, exist_ok=True)
            for label in range(GESTURE_CLASSES):
                x, y, p, t = random_events(rng, n_events + label, 128, 128)
                t_ms = t // 1000
                np.save(session / f"{label}.npy", np.stack([x, y, p, t_ms], axis=1).astype(np.int64))
                key = f"{folder}/{session.name}/{label}.npy"
                written[key] = FakeRecording(key, label, x, y, p)
    return written


def cifar_address(x: np.ndarray, y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """AEDAT 2.0 DVS128 address of events at image column x, row y, polarity p (1 = ON)."""
    ax, ay, bit = 127 - y, 127 - x, 1 - p
    return ((ay << 8) | (ax << 1) | bit).astype(">u4")


def write_aedat2(path: Path, address: np.ndarray, t: np.ndarray) -> None:
    """An AEDAT 2.0 file: jAER-style header, then big-endian (address, timestamp) uint32 pairs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = (b"#!AER-DAT2.0\r\n"
              b"# This is a raw AE data file - do not edit\r\n"
              b"# Data format is int32 address, int32 timestamp (8 bytes total), repeated for each event\r\n"
              b"# Timestamps tick is 1 us\r\n")
    records = np.empty(len(address), dtype=[("address", ">u4"), ("t", ">u4")])
    records["address"] = address
    records["t"] = t
    path.write_bytes(header + records.tobytes())


def write_cifar10_dvs(data_dir: Path, per_class: int = 6, seed: int = 0, n_events: int = 83) -> dict[str, FakeRecording]:
    """``per_class`` original-release .aedat recordings per class."""
    rng = np.random.default_rng(seed)
    written = {}
    for label, name in enumerate(CIFAR_CLASSES):
        for i in range(per_class):
            x, y, p, t = random_events(rng, n_events + i, 128, 128)
            key = f"{name}/cifar10_{name}_{i}.aedat"
            write_aedat2(data_dir / "CIFAR10DVS" / key, cifar_address(x, y, p), t)
            written[key] = FakeRecording(key, label, x, y, p)
    return written


def atis_bytes(x: np.ndarray, y: np.ndarray, p: np.ndarray, t: np.ndarray) -> bytes:
    """40-bit ATIS events (N-MNIST / N-Caltech101 .bin)."""
    record = np.zeros((len(x), 5), dtype=np.uint8)
    record[:, 0] = x
    record[:, 1] = y
    record[:, 2] = (p << 7) | ((t >> 16) & 0x7F)
    record[:, 3] = (t >> 8) & 0xFF
    record[:, 4] = t & 0xFF
    return record.tobytes()


def write_ncaltech101(data_dir: Path, per_class: int = 6, seed: int = 0, n_events: int = 71,
                      classes: tuple[str, ...] = CALTECH_CLASSES) -> dict[str, FakeRecording]:
    """``per_class`` .bin recordings per class folder.

    Raw x spans 5..254 and y 3..201, so after tonic's shift to 0 some events fall outside the 240 × 180
    canvas (they must be cropped); the first recording also holds one timestamp-overflow record.
    """
    rng = np.random.default_rng(seed)
    written = {}
    for label, name in enumerate(sorted(classes)):
        for i in range(per_class):
            n = n_events + i
            x = rng.integers(5, 255, n)
            y = rng.integers(3, 202, n)
            x[0], y[0] = 5, 3  # pin the minimum: tonic shifts by it
            p = rng.integers(0, 2, n)
            t = np.sort(rng.choice(np.arange(1, 2**20), size=n, replace=False))
            data = atis_bytes(x, y, p, t)
            if i == 0:  # an overflow record (y = 240) in the middle: not an event
                data = data[: 5 * 10] + atis_bytes(np.array([0]), np.array([240]), np.array([0]), np.array([0])) + data[5 * 10:]
            key = f"Caltech101/{name}/image_{i + 1:04d}.bin"
            path = data_dir / "NCALTECH101" / key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            xs, ys = x - x.min(), y - y.min()
            keep = (xs < 240) & (ys < 180)
            written[key] = FakeRecording(key, label, xs[keep], ys[keep], p[keep])
    return written


def idx_bytes(array: np.ndarray) -> bytes:
    """An unsigned-byte idx file holding ``array``."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write_fashion_mnist(folder: Path, n_train: int = 12, n_test: int = 5, gz: bool = True,
                        seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The four idx files in ``folder`` (gzipped if ``gz``); returns {split: (images [N, 28, 28], labels)}."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for split, prefix, n in (("train", "train", n_train), ("test", "t10k", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        for kind, array, dims in (("images", images, 3), ("labels", labels, 1)):
            name = f"{prefix}-{kind}-idx{dims}-ubyte"
            data = idx_bytes(array)
            if gz:
                (folder / f"{name}.gz").write_bytes(gzip.compress(data))
            else:
                (folder / name).write_bytes(data)
        written[split] = (images, labels)
    return written
