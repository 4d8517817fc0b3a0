"""Profile a deployed network: run a backend on test samples, count, estimate energy, write profile.json.

The driver: read the deploy directory once (:func:`tcja_deploy.conversion.deploy_dir.read_deploy`),
pick the test samples of its dataset, run a backend (:mod:`tcja_deploy.hardware.backends`) chunk by
chunk and accumulate the counts (:mod:`tcja_deploy.hardware.profile_doc`). After each chunk
``profile.json`` is rewritten atomically, marked ``"partial": true`` until the last chunk, so an
interrupted run (Ctrl-C) leaves a usable profile of the samples done so far. The profile records the
hash of every deploy file the backend loads and of the inputs it ran (docs/FORMATS.md).

Next to it, ``raster.npz`` holds the spikes of the first sample: ``names`` (layer names, the first
``input``), and ``layer_<i>`` = [T, units] uint8 event counts.
"""

from __future__ import annotations

import hashlib
import io
import sys
import time
from pathlib import Path
from typing import Iterator, Optional

import numpy as np

from tcja_deploy import atomic, outputs
from tcja_deploy.conversion.deploy_dir import Deploy, read_deploy
from tcja_deploy.errors import UserError
from tcja_deploy.hardware import energy as E
from tcja_deploy.hardware.backends import BACKENDS, Backend, get_backend, prepare_backend
from tcja_deploy.hardware.profile_doc import ProfileAccumulator, raster_arrays, versions

__all__ = ["BACKENDS", "deploy_info", "load_test_samples", "profile_batches", "run_profile"]


def deploy_info(deploy: Deploy) -> dict:
    """{"preset", "dataset", "T"} of a deploy directory, from graph.json's ``meta`` (preset defaults fill gaps)."""
    graph_path = deploy.dir / "graph.json"
    meta = dict(deploy.graph.meta)
    preset = meta.get("preset") or deploy.doc.get("preset")
    dataset, T = meta.get("dataset"), meta.get("T")
    if preset and dataset is None:
        from tcja_deploy.models.presets import get_preset

        try:
            p = get_preset(str(preset))
        except ValueError as e:
            raise UserError(f"{graph_path}: {e}") from None
        dataset = p.dataset
    if dataset is None or T is None:
        raise UserError(f"{graph_path}: meta names no preset (or dataset and T): cannot choose test samples")
    return {"preset": preset, "dataset": str(dataset), "T": int(T)}


def load_test_samples(dataset: str, T: int, samples: Optional[int], chunk: int, data_dir: Optional[str | Path] = None
                      ) -> tuple[int, Iterator[tuple[np.ndarray, np.ndarray]]]:
    """(count, iterator of (frames [T, n, C, H, W] float32, labels [n] int64)) over the first test samples
    (``data_dir``: where the dataset's files are; None: the loader's default)."""
    from tcja_deploy.data.registry import get_dataset

    test = get_dataset(dataset, T, None if data_dir is None else Path(data_dir)).test
    n = len(test) if samples is None else min(int(samples), len(test))

    def chunks():
        for start in range(0, n, chunk):
            items = [test[i] for i in range(start, min(start + chunk, n))]
            frames = np.stack([np.asarray(f, dtype=np.float32) for f, _ in items], axis=1)
            labels = np.asarray([int(y) for _, y in items], dtype=np.int64)
            yield frames, labels

    return n, chunks()


def write_npz(target: Path, arrays: dict[str, np.ndarray]) -> None:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic.write_bytes(target, buf.getvalue())


class InputHash:
    """sha256 over the frames (float32, C order) and labels (int64) of every sample run, in order."""

    def __init__(self):
        self._h = hashlib.sha256()

    def update(self, frames: np.ndarray, labels: np.ndarray) -> None:
        # one sample at a time, so the hash does not depend on the chunking: frames [T, n, ...] → sample-major
        f = np.ascontiguousarray(np.moveaxis(np.asarray(frames, dtype=np.float32), 1, 0))
        lab = np.asarray(labels, dtype=np.int64)
        for i in range(f.shape[0]):
            self._h.update(f[i].tobytes())
            self._h.update(lab[i:i + 1].tobytes())

    def hexdigest(self) -> str:
        return "sha256:" + self._h.hexdigest()


def profile_batches(batches: Iterator[tuple[np.ndarray, np.ndarray]], backend: Backend, deploy: Deploy,
                    out_dir: Path, profiles: dict[str, E.EnergyProfile], meta: dict, total: int,
                    progress: bool = True) -> dict:
    """Run ``backend`` on each batch, rewriting ``out_dir/profile.json`` after each; returns the final profile.

    ``meta["inputs"]["hash"]`` is kept up to date with the samples run so far (:class:`InputHash`).
    On Ctrl-C (or any error) after at least one batch, profile.json keeps the samples done so far,
    ``"partial": true`` with ``"stopped"`` saying why, and the exception propagates.
    """
    from tqdm import tqdm

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    outputs.write_marker(out_dir, "profile")
    acc = ProfileAccumulator(profiles=profiles)
    inputs = InputHash()
    meta = {**meta, "inputs": dict(meta.get("inputs", {}))}
    doc: Optional[dict] = None
    prepare_backend(backend)
    bar = tqdm(total=total, unit="sample", desc=f"profile ({backend.name})", disable=not progress, file=sys.stderr)
    try:
        for frames, labels in batches:
            t0 = time.perf_counter()
            activity = backend.run(deploy, frames, labels)
            first = acc.samples == 0
            acc.add(activity, wall_s=time.perf_counter() - t0)
            inputs.update(frames, labels)
            meta["inputs"].update(hash=inputs.hexdigest(), samples=acc.samples)
            done = acc.samples >= total
            doc = acc.build(meta, partial=not done)
            atomic.write_json(out_dir / "profile.json", doc)
            if first:  # after profile.json: a raster never stands without its profile
                write_npz(out_dir / "raster.npz", raster_arrays(activity, 0))
            bar.update(len(labels))
        if doc is not None and doc["partial"]:  # the data ran out before `total`
            doc = acc.build(meta, partial=False)
            atomic.write_json(out_dir / "profile.json", doc)
    except BaseException as e:
        if acc.samples:
            why = "interrupted (Ctrl-C)" if isinstance(e, KeyboardInterrupt) else f"error: {type(e).__name__}: {e}"
            atomic.write_json(out_dir / "profile.json", acc.build(meta, partial=True, stopped=why))
        raise
    finally:
        bar.close()
    if doc is None:
        raise UserError("no samples to profile")
    return doc


def check_counts(samples: Optional[int], chunk_size: Optional[int]) -> None:
    """``--samples`` and ``--chunk``, when given, are at least 1 (one line otherwise)."""
    if samples is not None and samples < 1:
        raise UserError(f"--samples must be at least 1, got {samples}")
    if chunk_size is not None and chunk_size < 1:
        raise UserError(f"--chunk must be at least 1, got {chunk_size}")


def run_profile(deploy_dir: str | Path, backend_name: str, out_dir: str | Path, samples: Optional[int] = None,
                energy_profile: Optional[str | Path] = None, chunk_size: Optional[int] = None,
                progress: bool = True, data_dir: Optional[str | Path] = None) -> dict:
    """The ``python -m tcja_deploy.profile`` pipeline; returns the profile.json document.

    Checks run before any work: the energy profile file, the backend (lava-loihi for ``loihi2``),
    the deploy directory.
    """
    check_counts(samples, chunk_size)
    profiles = E.resolve_profiles(energy_profile)
    backend = get_backend(backend_name)
    deploy_dir, out_dir = Path(deploy_dir), Path(out_dir)
    if not deploy_dir.is_dir():
        raise UserError(f"--deploy {deploy_dir}: no such directory")
    outputs.check_out_dir(out_dir, "profile", inputs=[deploy_dir])
    deploy = read_deploy(deploy_dir)
    for name in backend.files(deploy):  # confined to the directory, checked and hashed before any work
        deploy.path(name)
    info = deploy_info(deploy)
    n_req = samples if samples is not None else backend.default_samples
    chunk_for = getattr(backend, "chunk_for", None)
    chunk = int(chunk_size if chunk_size is not None else chunk_for(deploy) if callable(chunk_for)
                else backend.chunk_size)
    n, batches = load_test_samples(info["dataset"], info["T"], n_req, chunk, data_dir)
    meta = {
        "backend": backend.name,
        "deploy": {"dir": str(deploy_dir), "hash": deploy.combined_hash(), "files": deploy.file_hashes(), **info},
        "inputs": {"split": "test", "first_index": 0, "samples": 0, "hash": None},
        "versions": versions(),
        "samples": {"requested": n_req, "split": "test", "first_index": 0, "selected": n},
    }
    return profile_batches(batches, backend, deploy, Path(out_dir), profiles, meta, n, progress)
