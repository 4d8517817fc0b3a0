"""Shared benchmark machinery: options, interleaved timing, peak memory, machine info, results, tables.

A benchmark module exposes ``NAME``, ``DESCRIPTION`` and ``run(opts) -> dict``; the dict holds
``rows`` (one per compared figure: ours, peer, ratio = ours/peer) and anything the benchmark
wants to record (sizes, equivalence checks). :func:`write_results` adds the machine and options
and writes ``<out_dir>/<name>-<host>-<timestamp>.json``.

Timing rule: ours and the peer are measured in the same process, alternating repetitions
(ours, peer, ours, peer, …) after one warm-up each, and the median is reported, so that load
from other jobs on a shared machine hits both alike.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import os
import platform
import resource
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from tcja_deploy import atomic

DEFAULT_OUT_DIR = Path("bench") / "results"


class BenchUnavailable(RuntimeError):
    """A benchmark needs a module that does not exist (yet)."""


@dataclass(frozen=True)
class BenchOptions:
    """Command-line options shared by all benchmarks (flag names = field names).

    Attributes:
        size: ``"cpu"`` (reduced, stated in each benchmark's docstring), ``"full"`` (the issue's
            sizes) or ``"toy"`` (seconds; what the smoke tests run).
        device: ``"cpu"`` or ``"cuda"``.
        compile: wrap models in ``torch.compile``.
        amp: autocast (bfloat16 on CPU, float16 + GradScaler on CUDA).
        repeats: timed repetitions per implementation (after one warm-up).
        memory: measure peak memory (CPU: one subprocess per implementation; GPU: in process).
        threads: torch intra-op threads (None: torch's default).
        out_dir: where the JSON goes.
        seed: RNG seed for weights and inputs.
    """

    size: str = "cpu"
    device: str = "cpu"
    compile: bool = False
    amp: bool = False
    repeats: int = 5
    memory: bool = True
    threads: int | None = None
    out_dir: Path = DEFAULT_OUT_DIR
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["out_dir"] = str(self.out_dir)
        return d


# ----------------------------------------------------------------------------------------------- timing


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_interleaved(fns: dict[str, Callable[[], Any]], repeats: int, device: str = "cpu",
                     warmup: int = 2) -> dict[str, dict[str, list[float]]]:
    """Wall and process-CPU seconds per call of each function, alternating the functions every repetition.

    Each function runs ``warmup`` untimed calls first (in the same alternation). Returns
    ``{name: {"wall": [...], "cpu": [...]}}``; CPU time (all threads of this process) is less
    sensitive than wall time to other jobs on a shared machine.
    """
    for _ in range(warmup):
        for fn in fns.values():
            fn()
            synchronize(device)
    times: dict[str, dict[str, list[float]]] = {k: {"wall": [], "cpu": []} for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            synchronize(device)
            c0, t0 = time.process_time(), time.perf_counter()
            fn()
            synchronize(device)
            times[k]["wall"].append(time.perf_counter() - t0)
            times[k]["cpu"].append(time.process_time() - c0)
    return times


def summarize(times: dict[str, list[float]]) -> dict[str, Any]:
    """median / min / max of wall seconds, median CPU seconds, and the raw lists."""
    wall, cpu = times["wall"], times["cpu"]
    return {"median_s": statistics.median(wall), "min_s": min(wall), "max_s": max(wall), "n": len(wall),
            "cpu_median_s": statistics.median(cpu), "wall_s": wall, "cpu_s": cpu}


# ----------------------------------------------------------------------------------------------- memory


def maxrss_bytes() -> int:
    """This process's peak resident set size in bytes (Linux reports KiB, macOS bytes).

    On Linux ``ru_maxrss`` survives ``fork`` + ``exec``: a child starts with its parent's peak.
    """
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(r if sys.platform == "darwin" else r * 1024)


def _proc_status_bytes(key: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def start_peak_rss() -> tuple[int, str]:
    """Reset the peak-RSS mark where possible; returns (baseline bytes, method description).

    Linux: write 5 to ``/proc/self/clear_refs`` (resets VmHWM to the current RSS), baseline =
    VmRSS now; the step's peak is then VmHWM − baseline. Elsewhere: ``ru_maxrss`` now (so only
    growth beyond the set-up's own peak is seen).
    """
    rss = _proc_status_bytes("VmRSS")
    if rss is not None:
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            return _proc_status_bytes("VmRSS") or rss, "VmHWM after clear_refs minus VmRSS after set-up (fresh process, 2 steps)"
        except OSError:
            hwm = _proc_status_bytes("VmHWM")
            if hwm is not None:
                return hwm, "VmHWM growth over the set-up's peak (fresh process, 2 steps)"
    return maxrss_bytes(), "ru_maxrss growth over the set-up's peak (fresh process, 2 steps)"


def peak_rss_bytes() -> int:
    """Peak RSS of this process so far (VmHWM on Linux, else ru_maxrss)."""
    return _proc_status_bytes("VmHWM") or maxrss_bytes()


def probe_memories(bench: str, impls: tuple[str, ...] | list[str], opts: BenchOptions, case: dict[str, Any],
                   timeout: float = 1800, parallel: bool = True) -> dict[str, dict[str, Any]]:
    """Peak memory of each implementation's step, each measured in a fresh Python process.

    The child (``python -m tcja_deploy.bench._probe``) builds the case (model, optimizer, inputs),
    records its peak RSS, runs the step twice, and reports how much the peak RSS grew: the memory
    the step itself needs (torch's CPU allocations are invisible to tracemalloc). Children run in
    parallel unless ``parallel`` is False (their timings are not used, only their peaks).
    """
    env = dict(os.environ)
    env.setdefault("PYTHONWARNINGS", "ignore")
    procs = {}
    results: dict[str, dict[str, Any]] = {}
    for impl in impls:
        spec = {"bench": bench, "impl": impl, "options": opts.to_dict(), "case": case}
        cmd = [sys.executable, "-m", "tcja_deploy.bench._probe", json.dumps(spec)]
        procs[impl] = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        if not parallel:
            results[impl] = _probe_result(procs[impl], timeout)
    for impl, proc in procs.items():
        if impl not in results:
            results[impl] = _probe_result(proc, timeout)
    return results


def _probe_result(proc: subprocess.Popen, timeout: float) -> dict[str, Any]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        return {"error": f"memory probe timed out after {timeout:.0f} s"}
    lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (err or out).strip().splitlines()[-3:]
        return {"error": f"memory probe failed (rc {proc.returncode}): {' | '.join(tail)}"}
    return json.loads(lines[-1])


def mib(entry: dict[str, Any] | None) -> float | None:
    """Peak bytes of a memory entry in MiB (None if it failed or is missing)."""
    if not entry or entry.get("peak_bytes") is None:
        return None
    return entry["peak_bytes"] / 2**20


def cuda_peak_bytes(step: Callable[[], Any]) -> int:
    """Peak CUDA memory allocated during one call of ``step`` (bytes, above what was allocated before)."""
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    step()
    torch.cuda.synchronize()
    return int(torch.cuda.max_memory_allocated() - base)


# ----------------------------------------------------------------------------------------------- results


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _dist_version(dist: str) -> str | None:
    """Installed version of a distribution (pip name), or None."""
    try:
        from importlib.metadata import PackageNotFoundError, version
    except ImportError:  # pragma: no cover
        return None
    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def machine_info(device: str) -> dict[str, Any]:
    """CPU model, core counts, load, library versions and the accelerator used."""
    info: dict[str, Any] = {
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "torch_threads": torch.get_num_threads(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "torch": torch.__version__,
        "norse": _dist_version("norse"),
        "spikingjelly": _dist_version("spikingjelly"),
        "lava-nc": _dist_version("lava-nc"),
        "lava-dl": _dist_version("lava-dl"),
        "numpy": _dist_version("numpy"),
        "cupy": _dist_version("cupy") or _dist_version("cupy-cuda12x") or _dist_version("cupy-cuda11x"),
        "device": device,
        "env": {k: os.environ.get(k) for k in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "MKL_NUM_THREADS")},
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
        info["cuda"] = torch.version.cuda
    return info


def ratio_row(figure: str, unit: str, ours: float | None, peer: float | None, peer_name: str,
              better: str, **extra: Any) -> dict[str, Any]:
    """One table row: ``ratio`` = ours / peer; ``better`` says which direction is good ("higher"/"lower")."""
    ratio = (ours / peer) if (ours is not None and peer not in (None, 0)) else None
    return {"figure": figure, "unit": unit, "ours": ours, "peer": peer, "peer_name": peer_name,
            "ratio": ratio, "better": better, **extra}


def write_results(name: str, result: dict[str, Any], opts: BenchOptions) -> Path:
    """Write ``<out_dir>/<name>-<host>-<timestamp>.json`` with machine info and options; return its path."""
    now = _dt.datetime.now(_dt.timezone.utc)
    host = socket.gethostname().replace("/", "_") or "host"
    out_dir = Path(opts.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}-{host}-{now.strftime('%Y%m%dT%H%M%S%fZ')}.json"
    doc = {"benchmark": name, "timestamp": now.isoformat(), "machine": machine_info(opts.device),
           "options": opts.to_dict(), **result}
    atomic.write_text(path, json.dumps(doc, indent=2, default=_json_default) + "\n")
    return path


def _json_default(o: Any) -> Any:
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "tolist"):
        return o.tolist()
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def _fmt(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        if v == 0:
            return "0"
        a = abs(v)
        if a >= 1000:
            return f"{v:,.0f}"
        if a >= 10:
            return f"{v:.1f}"
        if a >= 0.01:
            return f"{v:.3f}"
        return f"{v:.2e}"
    return str(v)


def format_table(rows: list[dict[str, Any]]) -> str:
    """Plain-text table: figure | unit | better (higher/lower) | ours | peer name | peer figure | ours/peer."""
    header = ["figure", "unit", "better", "ours", "peer", "peer figure", "ours/peer"]
    body = [[r["figure"], r["unit"], r.get("better", ""), _fmt(r["ours"]), r.get("peer_name", ""), _fmt(r["peer"]),
             (_fmt(r["ratio"]) + "×") if r.get("ratio") is not None else "—"] for r in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *body)]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths))  # noqa: E731
    out = [line(header), line(["-" * w for w in widths])]
    out += [line(b) for b in body]
    return "\n".join(out)


def autocast_context(opts: BenchOptions):
    """``torch.autocast`` for ``--amp`` (bfloat16 on CPU, float16 on CUDA) or a no-op context."""
    import contextlib

    if not opts.amp:
        return contextlib.nullcontext()
    if opts.device.startswith("cuda"):
        return torch.autocast("cuda", dtype=torch.float16)
    return torch.autocast("cpu", dtype=torch.bfloat16)


def maybe_compile(module: torch.nn.Module, opts: BenchOptions) -> torch.nn.Module:
    return torch.compile(module) if opts.compile else module


def cupy_available() -> bool:
    try:
        import cupy  # noqa: F401
    except Exception:  # noqa: BLE001
        return False
    return True
