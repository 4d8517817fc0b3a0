"""``convert``: conversion wall time per preset (fidelity checks excluded); goal < 30 s for dvs128_gesture.

For each preset, a seeded random model is saved as a run directory and converted for ``loihi2``
by :func:`tcja_deploy.bench._deploy.convert_without_fidelity` (load, graph, passes with
calibration, NetX + gate + ONNX export, graph.json), ``--repeats`` times; the median is reported
against the goal (the "peer" column is the goal, ratio = ours / goal, ≤ 1 meets it).

Calibration samples (random spikes) per size: ``toy`` 2 (digits only), ``cpu`` 2, ``full`` 64 (the
conversion stage's random fallback; with a real dataset it uses 256). The calibration keeps every
layer's float64 output for all samples at once; a preset whose estimate exceeds half of the
available memory is skipped and reported (see bench/NOTES.md).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from tcja_deploy.bench import _deploy, common

NAME = "convert"
DESCRIPTION = "conversion wall time per preset (no fidelity), goal < 30 s for dvs128_gesture"
GOAL_S = {"dvs128_gesture": 30.0}
SIZES = {
    "toy": {"presets": ["digits"], "calibration_samples": 2},
    "cpu": {"presets": ["digits", "dvs128_gesture", "cifar10_dvs", "ncaltech101", "fashion_mnist"],
            "calibration_samples": 2},
    "full": {"presets": ["digits", "dvs128_gesture", "cifar10_dvs", "ncaltech101", "fashion_mnist"],
             "calibration_samples": 64},
}
MEMORY_FRACTION = 0.5


def run(opts: common.BenchOptions) -> dict[str, Any]:
    size = opts.size if opts.size in SIZES else "cpu"
    case = dict(SIZES[size])
    presets = list(opts.extra.get("presets") or case["presets"])
    n_cal = case["calibration_samples"]
    per_preset: dict[str, Any] = {}
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="tcja-bench-convert-") as tmp:
        for preset in presets:
            work = Path(tmp) / preset
            config = _deploy.make_random_run(preset, work / "run", opts.seed)
            need = _deploy.calibration_bytes(config, n_cal)
            avail = _deploy.mem_available_bytes()
            if avail is not None and need > MEMORY_FRACTION * avail:
                msg = (f"{preset}: skipped — calibration on {n_cal} samples needs ≈{need / 2**30:.1f} GiB "
                       f"(> {MEMORY_FRACTION:.0%} of {avail / 2**30:.1f} GiB available)")
                notes.append(msg)
                per_preset[preset] = {"skipped": msg, "calibration_bytes_estimate": need}
                continue
            x_cal = _deploy.random_spikes(config.T, n_cal, tuple(config.input_shape), opts.seed + 11)
            runs = []
            try:
                for r in range(opts.repeats):
                    out = work / f"deploy{r}"
                    t = time.perf_counter()
                    phases = _deploy.convert_without_fidelity(work / "run", out, x_cal)
                    wall = time.perf_counter() - t
                    runs.append({"wall_s": wall, "phases_s": phases})
            except Exception as e:  # noqa: BLE001 - a preset the conversion rejects is a result, not a crash
                msg = f"{preset}: conversion failed: {type(e).__name__}: {str(e).splitlines()[0]}"
                notes.append(msg)
                per_preset[preset] = {"error": msg, "calibration_bytes_estimate": need}
                rows.append(common.ratio_row(f"convert {preset}", "s", None, GOAL_S.get(preset),
                                             "goal" if preset in GOAL_S else "(no goal)", "lower", error=msg))
                continue
            walls = [r["wall_s"] for r in runs]
            med = statistics.median(walls)
            per_preset[preset] = {"T": config.T, "input_shape": list(config.input_shape),
                                  "calibration_samples": n_cal, "calibration_bytes_estimate": need,
                                  "median_s": med, "min_s": min(walls), "runs": runs,
                                  "files": sorted(p.name for p in (work / "deploy0").iterdir())}
            goal = GOAL_S.get(preset)
            rows.append(common.ratio_row(f"convert {preset}", "s", med, goal, "goal" if goal else "(no goal)", "lower"))
    return {"size": {"name": size, "calibration_samples": n_cal, "presets": presets}, "per_preset": per_preset,
            "rows": rows, "notes": notes}
