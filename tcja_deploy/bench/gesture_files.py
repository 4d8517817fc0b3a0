"""A DVS128 Gesture folder of the real test-set size, in tonic's on-disk format, for the paper-size benchmark.

No recording can be downloaded here, so ``bench pipeline`` times ``convert`` on random events written where and
how tonic's ``DVSGesture`` reads them (``DVSGesture/ibmGestureTest/user<NN>_<lighting>/<label>.npy``: an [N, 4]
int64 array of x, y, p, t in ms, docs/FORMATS.md): 264 test recordings (tonic's test split) and the 256 training
recordings the conversion calibrates on, 60,000 events each (about one recording's count in the real data).
The loader's completeness check is told to accept the partial training split (``TCJA_ALLOW_PARTIAL_DATA``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

CLASSES = 11
TEST_RECORDINGS = 264
TRAIN_RECORDINGS = 256
EVENTS = 60_000
#: Recording length in ms (events spread uniformly over it).
DURATION_MS = 6_000


def write_split(root: Path, folder: str, recordings: int, events: int = EVENTS, seed: int = 0) -> int:
    """``recordings`` files under ``root/DVSGesture/folder``, one class per file in turn (11 per user folder);
    returns how many were written."""
    rng = np.random.default_rng(seed)
    for i in range(recordings):
        session = root / "DVSGesture" / folder / f"user{i // CLASSES + 1:02d}_fluorescent"
        session.mkdir(parents=True, exist_ok=True)
        ev = np.empty((events, 4), dtype=np.int64)
        ev[:, 0] = rng.integers(0, 128, events)
        ev[:, 1] = rng.integers(0, 128, events)
        ev[:, 2] = rng.integers(0, 2, events)
        ev[:, 3] = np.sort(rng.integers(0, DURATION_MS, events))
        np.save(session / f"{i % CLASSES}.npy", ev)
    return recordings


def write_gesture_dataset(root: Path, test: int = TEST_RECORDINGS, train: int = TRAIN_RECORDINGS,
                          events: int = EVENTS, seed: int = 0) -> Path:
    """The dataset folder (``root``, which then holds ``DVSGesture/``)."""
    write_split(root, "ibmGestureTrain", train, events, seed)
    write_split(root, "ibmGestureTest", test, events, seed + 1)
    return root
