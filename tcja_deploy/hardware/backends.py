"""Backends: what runs a deployed network on a batch of samples and returns its activity.

- ``emulator``: the bit-exact emulator (:func:`tcja_deploy.hardware.emulator.emulate`);
- ``lava-sim``: Lava's CPU simulator on the NetX segments and gate processes (:mod:`.lava_sim`);
- ``loihi2``: Loihi 2 hardware through Intel's lava-loihi (measured power and time); not runnable without it.

Every backend reads the deploy directory through one :class:`~tcja_deploy.conversion.deploy_dir.Deploy`
and says which of its files it loads (:meth:`Backend.files`), so a profile records their hashes.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from typing import Optional, Protocol

import numpy as np

from tcja_deploy.conversion.deploy_dir import GRAPH_FILE, Deploy
from tcja_deploy.errors import UserError
from tcja_deploy.hardware.activity import NetworkActivity
from tcja_deploy.hardware.lava_runtime import import_lava_runtime

BACKENDS = ("emulator", "lava-sim", "loihi2")


class Backend(Protocol):
    """Runs a deployed network on a batch of samples.

    Attributes:
        name: ``"emulator"`` | ``"lava-sim"`` | ``"loihi2"``.
        chunk_size: samples per call of :meth:`run` (the profile is rewritten after each).
        default_samples: samples profiled when ``--samples`` is not given (None: the whole test set).

    A backend may also define ``chunk_for(deploy) -> int``: the chunk for that network when ``--chunk`` is not
    given (the emulator bounds the memory its recorded events take).
    """

    name: str
    chunk_size: int
    default_samples: Optional[int]

    def files(self, deploy: Deploy) -> list[str]:
        """The deploy directory's files this backend loads (relative paths)."""
        ...

    def run(self, deploy: Deploy, frames: np.ndarray, labels: np.ndarray) -> NetworkActivity:
        """frames [T, N, C, H, W] float32, labels [N] → the activity of every layer."""
        ...


def prepare_backend(backend: Backend) -> None:
    """Call the backend's optional ``prepare()`` (imports that must precede the progress bar)."""
    prepare = getattr(backend, "prepare", None)
    if callable(prepare):
        prepare()


@dataclass
class EmulatorBackend:
    """The bit-exact emulator (:func:`tcja_deploy.hardware.emulator.emulate`) on the deploy dir's graph.json."""

    name: str = "emulator"
    chunk_size: int = 64
    default_samples: Optional[int] = None

    def files(self, deploy: Deploy) -> list[str]:
        return [GRAPH_FILE]

    def run(self, deploy: Deploy, frames: np.ndarray, labels: np.ndarray) -> NetworkActivity:
        import torch

        from tcja_deploy.hardware.emulator import emulate

        # torch batches sized by the emulator's memory budget, not by the chunk (64 paper-size samples
        # at once would need ~100 GB)
        return emulate(deploy.graph, torch.from_numpy(np.ascontiguousarray(frames)), labels=labels,
                       record=True, backend=self.name)

    def chunk_for(self, deploy: Deploy) -> int:
        """Samples per chunk: ``chunk_size``, fewer where their recorded events would exceed the budget
        (:func:`tcja_deploy.hardware.emulator.record_chunk`; dvs128_gesture records ~150 MB a sample)."""
        from tcja_deploy.hardware.emulator import record_chunk

        return record_chunk(deploy.graph, cap=self.chunk_size)


def lava_files(deploy: Deploy) -> list[str]:
    """graph.json, the NetX segment files and the gate files of a deploy directory, each opened and checked
    first (one line if one is bad): the Lava backends load all of them."""
    for seg in deploy.segments:
        if seg.get("file"):
            deploy.check_segment_file(seg["file"])
    for gate in deploy.gates:
        deploy.gate_arrays(gate["file"])
    return [GRAPH_FILE] + [s["file"] for s in deploy.segments if s.get("file")] + [g["file"] for g in deploy.gates]


@dataclass
class LavaSimBackend:
    """Lava's CPU simulator (:func:`tcja_deploy.hardware.lava_sim.run_lava`) on the deploy directory's
    NetX segments and gate processes; slow (≈ 0.1 ms per process per step), so 32 samples by default."""

    name: str = "lava-sim"
    chunk_size: int = 4
    default_samples: Optional[int] = 32

    def prepare(self) -> None:
        import_lava_runtime()

    def files(self, deploy: Deploy) -> list[str]:
        return lava_files(deploy)

    def run(self, deploy: Deploy, frames: np.ndarray, labels: np.ndarray) -> NetworkActivity:
        import torch

        import_lava_runtime()
        from tcja_deploy.hardware.lava_sim import run_lava

        return run_lava(deploy, torch.from_numpy(np.ascontiguousarray(frames)), labels=labels)


LOIHI_MODULES = ("lava.utils.loihi2_profiler", "lava.magma.compiler.subcompilers.nc")


def lava_loihi_missing() -> Optional[str]:
    """The first lava-loihi module that cannot be imported, or None when Intel's lava-loihi is installed."""
    for m in LOIHI_MODULES:
        try:
            importlib.import_module(m)
        except Exception:  # ImportError, or a broken install
            return m
    return None


@dataclass
class Loihi2Backend:
    """Loihi 2 hardware through Intel's lava-loihi: the Lava network of :mod:`lava_sim` run with
    ``Loihi2HwCfg(callback_fxs=[Loihi2Power, Loihi2ExecutionTime, Loihi2Activity])``; the measured
    power, time and activity go to ``NetworkActivity.extra["measured"]``. Not runnable without it.
    """

    name: str = "loihi2"
    chunk_size: int = 1
    default_samples: Optional[int] = 32

    def prepare(self) -> None:
        import_lava_runtime()

    def check(self) -> None:
        missing = lava_loihi_missing()
        if missing is not None:
            raise UserError(f"--backend loihi2 needs Intel's lava-loihi (Loihi 2 access through the INRC); "
                            f"{missing} is not importable here")

    def files(self, deploy: Deploy) -> list[str]:
        return lava_files(deploy)

    def run(self, deploy: Deploy, frames: np.ndarray, labels: np.ndarray) -> NetworkActivity:  # pragma: no cover
        self.check()
        import torch
        from lava.magma.core.run_configs import Loihi2HwCfg
        from lava.utils import loihi2_profiler as prof

        from tcja_deploy.hardware.lava_sim import run_lava

        if "run_cfg" not in inspect.signature(run_lava).parameters:
            raise UserError("--backend loihi2: tcja_deploy.hardware.lava_sim.run_lava takes no run_cfg, so it "
                            "cannot run on Loihi 2 yet")
        steps = int(frames.shape[0]) * int(frames.shape[1])
        power = prof.Loihi2Power(num_steps=steps)
        exec_time = prof.Loihi2ExecutionTime()
        activity = prof.Loihi2Activity()
        run_cfg = Loihi2HwCfg(callback_fxs=[power, exec_time, activity])
        out = run_lava(deploy, torch.from_numpy(np.ascontiguousarray(frames)), labels=labels, run_cfg=run_cfg)
        measured = {}
        for key, obj, attr in (("total_energy_j", power, "total_energy"), ("dynamic_energy_j", power, "dynamic_energy"),
                               ("static_power_w", power, "static_power"), ("total_power_w", power, "total_power"),
                               ("time_per_step_s", exec_time, "avg_time_per_step")):
            v = getattr(obj, attr, None)
            if v is not None:
                measured[key] = float(np.mean(np.asarray(v, dtype=np.float64)))
        out.extra["measured"] = measured
        return out


def get_backend(name: str) -> Backend:
    """The backend called ``name`` (checked: a missing lava-loihi fails here, before any work)."""
    if name == "emulator":
        return EmulatorBackend()
    if name == "lava-sim":
        return LavaSimBackend()
    if name == "loihi2":
        b = Loihi2Backend()
        b.check()
        return b
    raise UserError(f"unknown backend {name!r}; choose one of: {', '.join(BACKENDS)}")
