"""Profile a deployed network: run a backend on test samples, count, estimate energy, write profile.json.

A *backend* turns frames into a :class:`~tcja_deploy.hardware.activity.NetworkActivity`
(:class:`Backend`): the bit-exact emulator, the Lava simulator, or Loihi 2 through Intel's lava-loihi.
Samples are run in chunks; after each chunk ``profile.json`` is rewritten atomically, marked
``"partial": true`` until the last chunk, so an interrupted run (Ctrl-C) leaves a usable profile of
the samples done so far.

``profile.json`` (``"format": "tcja_deploy.profile/1"``), every count per inference (one sample), as
``{"mean", "std", "min", "max"}`` over the samples (std: population, ddof = 0)::

    {"format", "partial", "stopped" (why a partial profile stopped, or null), "created",
     "backend", "deploy": {"dir", "hash", "preset", "dataset", "T"},
     "versions": {"python", "lava-nc", "lava-dl", "torch", "numpy", "tcja_deploy"},
     "samples": {"requested", "selected", "done", "split": "test", "first_index"},
     "accuracy": {"correct", "labelled", "value"},
     "latency": {"input_steps", "pipeline_steps", "window_gate_steps", "decision_steps", "steps_simulated"},
     "wall_s_per_sample": stat,
     "layers": [{"name", "kind", "in_shape", "out_shape", "stride", "padding", "input_payload_bits",
                 "output_payload_bits", "latency_steps", "gate", "neurons", "units", "steps",
                 "counts": {<COUNT_KEYS>: stat}, "firing_rate": stat,
                 "resources": {"neurons", "synapses", "weights", "synaptic_memory_bits", "cores"},
                 "ann": {<ANN_KEYS>: int},
                 "energy_pj": {"snn_chip" | "snn_cmos" | "ann_cmos": {"total": stat,
                               "by_category": {<CATEGORIES>: mean}}}}, ...],
     "total": {"counts": {...: stat}, "firing_rate": stat, "resources": {..., "chips"}, "ann": {...}},
     "resources_limits": {<LOIHI2_LIMITS>},
     "energy": {"unit": "pJ per inference", "status": "estimate", "profiles": {name: profile},
                "scenarios": {"snn_chip" | "snn_cmos" | "ann_cmos": {"label", "profile", "status",
                              "total": stat, "by_category": {<CATEGORIES>: stat}}},
                "ratios": {"ann_cmos_over_snn_chip", "ann_cmos_over_snn_cmos"},
                "measured": null | {...}},
     "caveats": [str, ...]}

Next to it, ``raster.npz`` holds the spikes of the first sample: ``names`` (layer names, the first
``input``), and ``layer_<i>`` = [T, units] uint8 event counts.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import io
import json
import platform
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator, Optional, Protocol

import numpy as np

from tcja_deploy import atomic
from tcja_deploy.errors import UserError
from tcja_deploy.hardware import energy as E
from tcja_deploy.hardware.lava_runtime import import_lava_runtime
from tcja_deploy.hardware.activity import NetworkActivity
from tcja_deploy.hardware.ann_baseline import ann_counts
from tcja_deploy.hardware.counters import COUNT_KEYS, NetworkCounts, count_network
from tcja_deploy.hardware.resources import network_resources

FORMAT = "tcja_deploy.profile/1"
BACKENDS = ("emulator", "lava-sim", "loihi2")
SCENARIOS = ("snn_chip", "snn_cmos", "ann_cmos")


# ---------------------------------------------------------------------------------------------------------------
# Backends
# ---------------------------------------------------------------------------------------------------------------


class Backend(Protocol):
    """Runs a deployed network on a batch of samples.

    Attributes:
        name: ``"emulator"`` | ``"lava-sim"`` | ``"loihi2"``.
        chunk_size: samples per call of :meth:`run` (the profile is rewritten after each).
        default_samples: samples profiled when ``--samples`` is not given (None: the whole test set).
    """

    name: str
    chunk_size: int
    default_samples: Optional[int]

    def run(self, deploy_dir: Path, frames: np.ndarray, labels: np.ndarray) -> NetworkActivity:
        """frames [T, N, C, H, W] float32, labels [N] → the activity of every layer."""
        ...


def prepare_backend(backend: Backend) -> None:
    """Call the backend's optional ``prepare()`` (imports that must precede the progress bar)."""
    prepare = getattr(backend, "prepare", None)
    if callable(prepare):
        prepare()


def load_graph(deploy_dir: Path):
    """The converted graph of a deploy directory (``graph.json``)."""
    from tcja_deploy.conversion.graph import Graph

    path = Path(deploy_dir) / "graph.json"
    try:
        return Graph.from_json(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{deploy_dir}: not a deploy directory (no graph.json)") from None
    except (ValueError, KeyError, TypeError) as e:
        raise UserError(f"{path}: not a graph this version reads ({e})") from None


@dataclass
class EmulatorBackend:
    """The bit-exact emulator (:func:`tcja_deploy.hardware.emulator.emulate`) on the deploy dir's graph.json."""

    name: str = "emulator"
    chunk_size: int = 64
    default_samples: Optional[int] = None
    _graphs: dict = field(default_factory=dict, repr=False)

    def run(self, deploy_dir: Path, frames: np.ndarray, labels: np.ndarray) -> NetworkActivity:
        import torch

        from tcja_deploy.hardware.emulator import emulate

        key = str(Path(deploy_dir).resolve())
        if key not in self._graphs:
            self._graphs[key] = load_graph(deploy_dir)
        return emulate(self._graphs[key], torch.from_numpy(np.ascontiguousarray(frames)), labels=labels,
                       batch_size=self.chunk_size, record=True, backend=self.name)


@dataclass
class LavaSimBackend:
    """Lava's CPU simulator (:func:`tcja_deploy.hardware.lava_sim.run_lava`) on the deploy directory's
    NetX segments and gate processes; slow (≈ 0.1 ms per process per step), so 32 samples by default."""

    name: str = "lava-sim"
    chunk_size: int = 4
    default_samples: Optional[int] = 32

    def prepare(self) -> None:
        import_lava_runtime()

    def run(self, deploy_dir: Path, frames: np.ndarray, labels: np.ndarray) -> NetworkActivity:
        import torch

        import_lava_runtime()
        from tcja_deploy.hardware.lava_sim import run_lava

        out = run_lava(Path(deploy_dir), torch.from_numpy(np.ascontiguousarray(frames)), labels=labels)
        # the graph's node order lets the counters find a gate's squeeze_from layer by name
        out.extra.setdefault("graph_names", load_graph(deploy_dir).names)
        return out


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

    def run(self, deploy_dir: Path, frames: np.ndarray, labels: np.ndarray) -> NetworkActivity:  # pragma: no cover
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
        out = run_lava(Path(deploy_dir), torch.from_numpy(np.ascontiguousarray(frames)), labels=labels,
                       run_cfg=run_cfg)
        out.extra.setdefault("graph_names", load_graph(deploy_dir).names)
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


# ---------------------------------------------------------------------------------------------------------------
# The deploy directory and its test samples
# ---------------------------------------------------------------------------------------------------------------


def deploy_hash(deploy_dir: Path) -> str:
    """sha256 over the deploy directory's files (relative path and bytes, sorted; hidden files skipped)."""
    h = hashlib.sha256()
    files = sorted(p for p in deploy_dir.rglob("*") if p.is_file()
                   and not any(part.startswith(".") for part in p.relative_to(deploy_dir).parts))
    for p in files:
        h.update(p.relative_to(deploy_dir).as_posix().encode() + b"\0")
        with p.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        h.update(b"\0")
    return "sha256:" + h.hexdigest()


def deploy_info(deploy_dir: Path) -> dict:
    """{"preset", "dataset", "T"} of a deploy directory, from graph.json's ``meta`` (preset defaults fill gaps)."""
    graph_path = deploy_dir / "graph.json"
    if not graph_path.is_file():
        raise UserError(f"{deploy_dir}: not a deploy directory (no graph.json); run python -m tcja_deploy.convert first")
    try:
        graph = json.loads(graph_path.read_text())
    except json.JSONDecodeError as e:
        raise UserError(f"{graph_path}: not valid JSON ({e.msg}, line {e.lineno})") from None
    meta = dict(graph.get("meta") or {})
    preset = meta.get("preset") or graph.get("preset")
    dataset, T = meta.get("dataset"), meta.get("T")
    if preset and (dataset is None or T is None):
        from tcja_deploy.models.presets import get_preset

        try:
            p = get_preset(str(preset))
        except ValueError as e:
            raise UserError(f"{graph_path}: {e}") from None
        dataset = dataset or p.dataset
        T = T or p.model.T
    if dataset is None or T is None:
        raise UserError(f"{graph_path}: meta names no preset (or dataset and T): cannot choose test samples")
    return {"preset": preset, "dataset": str(dataset), "T": int(T)}


def test_samples(dataset: str, T: int, samples: Optional[int], chunk: int) -> tuple[int, Iterator[tuple[np.ndarray, np.ndarray]]]:
    """(count, iterator of (frames [T, n, C, H, W] float32, labels [n] int64)) over the first test samples."""
    from tcja_deploy.data.registry import get_dataset

    test = get_dataset(dataset, T).test
    n = len(test) if samples is None else min(int(samples), len(test))

    def chunks():
        for start in range(0, n, chunk):
            items = [test[i] for i in range(start, min(start + chunk, n))]
            frames = np.stack([np.asarray(f, dtype=np.float32) for f, _ in items], axis=1)
            labels = np.asarray([int(y) for _, y in items], dtype=np.int64)
            yield frames, labels

    return n, chunks()


# ---------------------------------------------------------------------------------------------------------------
# Accumulating counts into a profile
# ---------------------------------------------------------------------------------------------------------------


def stat(values) -> dict[str, float]:
    """{"mean", "std", "min", "max"} of per-sample values (population std); NaN-free input expected."""
    a = np.asarray(values, dtype=np.float64).reshape(-1)
    if a.size == 0:
        return {"mean": float("nan"), "std": float("nan"), "min": float("nan"), "max": float("nan")}
    return {"mean": float(a.mean()), "std": float(a.std()), "min": float(a.min()), "max": float(a.max())}


def versions() -> dict[str, str]:
    """Versions of Python and of the packages that decide the numbers."""
    from importlib import metadata

    out = {"python": platform.python_version()}
    for pkg in ("lava-nc", "lava-dl", "torch", "numpy", "tcja_deploy"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def _layer_static(layer) -> dict:
    return {
        "name": layer.name, "kind": layer.kind,
        "in_shape": [int(v) for v in layer.in_shape], "out_shape": [int(v) for v in layer.out_shape],
        "stride": int(layer.stride), "padding": int(layer.padding),
        "input_payload_bits": int(layer.input_payload_bits), "output_payload_bits": int(layer.output_payload_bits),
        "latency_steps": int(layer.latency_steps),
        "gate": None if layer.gate is None else {k: (v if isinstance(v, (str, int, float, bool)) else str(v))
                                                 for k, v in layer.gate.items()},
    }


@dataclass
class ProfileAccumulator:
    """Per-sample counts of every layer, gathered chunk by chunk; :meth:`build` makes profile.json's dict."""

    profiles: dict[str, E.EnergyProfile]
    static: list[dict] = field(default_factory=list)
    resources: Optional[dict] = None
    ann_per_layer: list[dict] = field(default_factory=list)
    ann_total: dict = field(default_factory=dict)
    latency: dict = field(default_factory=dict)
    per_layer: list[dict[str, list[np.ndarray]]] = field(default_factory=list)
    rates: list[list[np.ndarray]] = field(default_factory=list)
    total_rate: list[np.ndarray] = field(default_factory=list)
    correct: list[np.ndarray] = field(default_factory=list)
    wall_s: list[np.ndarray] = field(default_factory=list)
    measured: list[dict] = field(default_factory=list)
    meta_layers: list[tuple[int, int, int]] = field(default_factory=list)  # (neurons, units, steps)

    @property
    def samples(self) -> int:
        return int(sum(len(c) for c in self.correct))

    def add(self, activity: NetworkActivity, wall_s: float = 0.0) -> NetworkCounts:
        """Count one chunk's activity and keep its per-sample values."""
        counts = count_network(activity)
        if not self.static:
            self.static = [_layer_static(l) for l in activity.layers]
            self.resources = network_resources(activity.layers)
            self.ann_per_layer, self.ann_total = ann_counts(activity.layers)
            self.latency = counts.latency
            self.per_layer = [{k: [] for k in COUNT_KEYS} for _ in activity.layers]
            self.rates = [[] for _ in activity.layers]
            self.meta_layers = [(lc.neurons, lc.units, lc.steps) for lc in counts.layers]
        elif [l.name for l in activity.layers] != [s["name"] for s in self.static]:
            raise ValueError("the backend returned different layers for different chunks")
        for i, lc in enumerate(counts.layers):
            for k in COUNT_KEYS:
                self.per_layer[i][k].append(lc.counts[k])
            self.rates[i].append(lc.firing_rate)
        self.total_rate.append(counts.firing_rate)
        self.correct.append(counts.correct)
        self.wall_s.append(np.full(counts.samples, wall_s / max(counts.samples, 1)))
        if activity.extra.get("measured"):
            self.measured.append({"samples": counts.samples, **activity.extra["measured"]})
        return counts

    # -- building the profile -------------------------------------------------------------------------------
    def _layer_counts(self, i: int) -> dict[str, np.ndarray]:
        return {k: np.concatenate(v) for k, v in self.per_layer[i].items()}

    def _energies(self, counts: dict[str, np.ndarray], ann: dict) -> dict[str, dict[str, np.ndarray]]:
        neu, cmos = self.profiles["neuromorphic"], self.profiles["cmos"]
        n = len(next(iter(counts.values())))
        ann_e = {k: np.broadcast_to(np.asarray(v, dtype=np.float64), (n,)) for k, v in E.ann_cmos_energy(ann, cmos).items()}
        return {"snn_chip": E.snn_chip_energy(counts, neu), "snn_cmos": E.snn_cmos_energy(counts, cmos), "ann_cmos": ann_e}

    def scenario_labels(self) -> dict[str, dict[str, str]]:
        neu, cmos = self.profiles["neuromorphic"], self.profiles["cmos"]
        return {
            "snn_chip": {"label": f"SNN on Loihi 2 ({neu.name}, {neu.status})", "profile": neu.name, "status": neu.status},
            "snn_cmos": {"label": f"SNN on 45 nm CMOS ({cmos.name}, {cmos.status})", "profile": cmos.name,
                         "status": cmos.status},
            "ann_cmos": {"label": f"equivalent ANN on 45 nm CMOS ({cmos.name}, {cmos.status})", "profile": cmos.name,
                         "status": cmos.status},
        }

    def build(self, meta: dict, partial: bool, stopped: Optional[str] = None) -> dict:
        """The profile.json document (see the module docstring)."""
        if not self.static:
            raise ValueError("no samples were profiled")
        layers_out = []
        total_counts = None
        total_energy: dict[str, dict[str, np.ndarray]] = {}
        for i, s in enumerate(self.static):
            c = self._layer_counts(i)
            total_counts = {k: v.copy() for k, v in c.items()} if total_counts is None else \
                {k: total_counts[k] + c[k] for k in COUNT_KEYS}
            en = self._energies(c, self.ann_per_layer[i])
            for sc, br in en.items():
                acc = total_energy.setdefault(sc, {cat: 0.0 for cat in E.CATEGORIES})
                for cat in E.CATEGORIES:
                    acc[cat] = acc[cat] + br[cat]
            neurons, units, steps = self.meta_layers[i]
            layers_out.append({
                **s, "neurons": neurons, "units": units, "steps": steps,
                "counts": {k: stat(v) for k, v in c.items()},
                "firing_rate": stat(np.concatenate(self.rates[i])),
                "resources": self.resources["layers"][i].to_dict(),
                "ann": self.ann_per_layer[i],
                "energy_pj": {sc: {"total": stat(E.total(br)),
                                   "by_category": {cat: float(np.mean(br[cat])) for cat in E.CATEGORIES}}
                              for sc, br in en.items()},
            })
        # The network's input events are the first layer's input (each later input is an earlier output).
        total_counts["input_events"] = self._layer_counts(0)["input_events"]
        correct = np.concatenate(self.correct)
        labelled = int(np.sum(~np.isnan(correct)))
        n_correct = int(np.nansum(correct))
        labels = self.scenario_labels()
        scenarios = {sc: {**labels[sc], "total": stat(E.total(br)),
                          "by_category": {cat: stat(br[cat]) for cat in E.CATEGORIES}}
                     for sc, br in total_energy.items()}

        def ratio(a: str, b: str) -> Optional[float]:
            den = scenarios[b]["total"]["mean"]
            return float(scenarios[a]["total"]["mean"] / den) if den else None

        measured = None
        if self.measured:
            keys = sorted({k for m in self.measured for k in m if k != "samples"})
            measured = {"profile": "measured", "status": "measured", "source": "lava-loihi Loihi2Power / "
                        "Loihi2ExecutionTime / Loihi2Activity", "per_chunk": self.measured,
                        **{k: stat([m[k] for m in self.measured if k in m]) for k in keys}}
        caveats = [p.caveat for p in self.profiles.values() if p.caveat]
        caveats += [
            "Counts come from the activity of this run; energies are counts × per-op constants (estimates) "
            "unless marked measured.",
            "Neuron updates are charged for every neuron at each of the T steps of an inference (pipelined "
            "stream; a lone inference's flush steps are not charged); an update is 'active' when the neuron "
            "fires in that step.",
            "Spike traffic on chip: one message per spike and "
            f"{self.profiles['neuromorphic'].get('hops_per_spike'):g} mesh hop(s) each (placement unknown).",
            "The TCJA gate is non-spiking arithmetic (MACs, products, sigmoid lookups, squeeze adds), "
            "charged at 45 nm CMOS figures in every scenario.",
            "Loihi 2 cores: a lower bound from per-core neuron and synaptic-memory limits, without weight "
            "sharing (synaptic memory = synapses × weight bits); some limits are unverified (see the table).",
            "The equivalent ANN runs the same layers once with dense fp32 MACs (TCJA at T = 1). Both carry a "
            "memory-access term because leaving memory traffic out overstates an SNN's advantage "
            "(arXiv:2409.08290); the ANN's term assumes ideal reuse, so the comparison errs towards the ANN.",
        ]
        return {
            "format": FORMAT,
            "partial": bool(partial),
            "stopped": stopped,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            **meta,
            "samples": {**meta.get("samples", {}), "done": self.samples},
            "accuracy": {"correct": n_correct, "labelled": labelled,
                         "value": (n_correct / labelled) if labelled else None},
            "latency": self.latency,
            "wall_s_per_sample": stat(np.concatenate(self.wall_s)),
            "layers": layers_out,
            "total": {"counts": {k: stat(v) for k, v in total_counts.items()},
                      "firing_rate": stat(np.concatenate(self.total_rate)),
                      "resources": self.resources["total"], "ann": self.ann_total},
            "resources_limits": self.resources["limits"],
            "energy": {"unit": "pJ per inference", "status": "estimate",
                       "profiles": {p.name: p.to_dict() for p in self.profiles.values()},
                       "scenarios": scenarios,
                       "ratios": {"ann_cmos_over_snn_chip": ratio("ann_cmos", "snn_chip"),
                                  "ann_cmos_over_snn_cmos": ratio("ann_cmos", "snn_cmos")},
                       "measured": measured},
            "caveats": caveats,
        }


# ---------------------------------------------------------------------------------------------------------------
# Raster of one sample
# ---------------------------------------------------------------------------------------------------------------


def raster_arrays(activity: NetworkActivity, sample: int = 0) -> dict[str, np.ndarray]:
    """{"names": [input, layer names...], "layer_<i>": [T, units] uint8} for one sample."""
    from tcja_deploy.hardware.counters import event_counts

    first = activity.layers[0]
    names = ["input"] + [l.name for l in activity.layers]
    arrays = [event_counts(np.asarray(first.input_spikes)[:, sample], first.input_payload_bits)]
    arrays += [event_counts(np.asarray(l.output_spikes)[:, sample], l.output_payload_bits) for l in activity.layers]
    out: dict[str, np.ndarray] = {"names": np.asarray(names)}
    for i, a in enumerate(arrays):
        out[f"layer_{i}"] = np.clip(a.reshape(a.shape[0], -1), 0, 255).astype(np.uint8)
    return out


def write_npz(target: Path, arrays: dict[str, np.ndarray]) -> None:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic.write_bytes(target, buf.getvalue())


# ---------------------------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------------------------


def profile_batches(batches: Iterator[tuple[np.ndarray, np.ndarray]], backend: Backend, deploy_dir: Path,
                    out_dir: Path, profiles: dict[str, E.EnergyProfile], meta: dict, total: int,
                    progress: bool = True) -> dict:
    """Run ``backend`` on each batch, rewriting ``out_dir/profile.json`` after each; returns the final profile.

    On Ctrl-C (or any error) after at least one batch, profile.json keeps the samples done so far,
    ``"partial": true`` with ``"stopped"`` saying why, and the exception propagates.
    """
    from tqdm import tqdm

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    acc = ProfileAccumulator(profiles=profiles)
    doc: Optional[dict] = None
    prepare_backend(backend)
    bar = tqdm(total=total, unit="sample", desc=f"profile ({backend.name})", disable=not progress, file=sys.stderr)
    try:
        for frames, labels in batches:
            t0 = time.perf_counter()
            activity = backend.run(deploy_dir, frames, labels)
            first = acc.samples == 0
            acc.add(activity, wall_s=time.perf_counter() - t0)
            if first:
                write_npz(out_dir / "raster.npz", raster_arrays(activity, 0))
            done = acc.samples >= total
            doc = acc.build(meta, partial=not done)
            atomic.write_json(out_dir / "profile.json", doc)
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


def run_profile(deploy_dir: str | Path, backend_name: str, out_dir: str | Path, samples: Optional[int] = None,
                energy_profile: Optional[str | Path] = None, chunk_size: Optional[int] = None,
                progress: bool = True) -> dict:
    """The ``python -m tcja_deploy.profile`` pipeline; returns the profile.json document.

    Checks run before any work: the energy profile file, the backend (lava-loihi for ``loihi2``),
    the deploy directory.
    """
    profiles = E.resolve_profiles(energy_profile)
    backend = get_backend(backend_name)
    deploy_dir = Path(deploy_dir)
    if not deploy_dir.is_dir():
        raise UserError(f"--deploy {deploy_dir}: no such directory")
    info = deploy_info(deploy_dir)
    if samples is not None and samples < 1:
        raise UserError(f"--samples must be at least 1, got {samples}")
    n_req = samples if samples is not None else backend.default_samples
    chunk = int(chunk_size or backend.chunk_size)
    if chunk < 1:
        raise UserError(f"--chunk must be at least 1, got {chunk}")
    n, batches = test_samples(info["dataset"], info["T"], n_req, chunk)
    meta = {
        "backend": backend.name,
        "deploy": {"dir": str(deploy_dir), "hash": deploy_hash(deploy_dir), **info},
        "versions": versions(),
        "samples": {"requested": n_req, "split": "test", "first_index": 0, "selected": n},
    }
    return profile_batches(batches, backend, deploy_dir, Path(out_dir), profiles, meta, n, progress)
