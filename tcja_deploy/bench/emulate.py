"""``emulate``: the bit-exact emulator vs Lava's simulator on the same converted network and samples.

A seeded random ``digits`` model (the embedded default: 2×32×32, T=8, two TCJA gates) is
converted for ``loihi2`` (:mod:`tcja_deploy.bench._deploy`); the same random input spikes
(density 0.2) run through :func:`tcja_deploy.hardware.emulator.emulate` (``record=True``: every
layer's spikes, as Lava's probes record) and :func:`tcja_deploy.hardware.lava_sim.run_lava`
(``fixed_pt``). Every layer's spikes and the scores must be identical; then figures are sample
time steps per second (samples × T / wall seconds), alternating emulator and Lava runs.

Lava's figure uses the wall time of the whole ``run_lava`` call (building the processes, compiling,
running, reading the probes: what it costs to get the answer); its run-only time
(``extra["seconds"]``) is a second row. Goal: emulator ≥ 1000× faster with identical spikes.

Samples per size: ``toy`` 1, ``cpu`` 8, ``full`` 32 (the profile stage's Lava default). Lava runs
at most 3 times (it is slow); the emulator ``--repeats`` times.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from tcja_deploy.bench import _deploy, common

NAME = "emulate"
DESCRIPTION = "bit-exact emulator vs Lava simulator: time steps/s on the same network and samples (goal ≥ 1000×)"
SIZES = {"toy": {"samples": 1}, "cpu": {"samples": 8}, "full": {"samples": 32}}
PRESET = "digits"
CALIBRATION_SAMPLES = 16
LAVA_MAX_RUNS = 3
GOAL_SPEEDUP = 1000.0


def run(opts: common.BenchOptions) -> dict[str, Any]:
    _deploy.require("tcja_deploy.hardware.emulator", NAME)
    _deploy.require("tcja_deploy.hardware.lava_sim", NAME)
    _deploy.require("tcja_deploy.conversion.deploy", NAME)
    from tcja_deploy.conversion.fidelity import spike_agreement
    from tcja_deploy.hardware.emulator import emulate
    from tcja_deploy.hardware.lava_sim import load_deploy, run_lava

    size = opts.size if opts.size in SIZES else "cpu"
    n = SIZES[size]["samples"]
    preset = (opts.extra.get("presets") or [PRESET])[0]
    with tempfile.TemporaryDirectory(prefix="tcja-bench-emulate-") as tmp:
        deploy, config = _deploy.random_deploy(preset, Path(tmp), CALIBRATION_SAMPLES, opts.seed)
        _, graph = load_deploy(deploy)
        x = _deploy.random_spikes(config.T, n, tuple(config.input_shape), opts.seed + 5)
        labels = np.random.default_rng(opts.seed).integers(0, config.num_classes, n)

        emu_times, lava_walls, lava_runs = [], [], []
        emu = lava = None
        emulate(graph, x, labels, record=True)  # warm-up
        lava_reps = min(LAVA_MAX_RUNS, opts.repeats)
        for r in range(opts.repeats):
            t = time.perf_counter()
            emu = emulate(graph, x, labels, record=True)
            emu_times.append(time.perf_counter() - t)
            if r < lava_reps:
                t = time.perf_counter()
                lava = run_lava(deploy, x, labels, select_tag="fixed_pt")
                lava_walls.append(time.perf_counter() - t)
                lava_runs.append(float(lava.extra["seconds"]))
        emu_plain = []
        for _ in range(opts.repeats):
            t = time.perf_counter()
            emulate(graph, x, labels, record=False)
            emu_plain.append(time.perf_counter() - t)

        layers = spike_agreement(emu, lava)
        identical = all(v["identical"] for v in layers.values()) and bool(np.array_equal(emu.scores, lava.scores))
        check = {"layers": layers, "scores_identical": bool(np.array_equal(emu.scores, lava.scores)),
                 "all_identical": identical,
                 "spikes_emulator": int(sum(v.get("spikes_emulator", 0) for v in layers.values()))}
        if not identical:
            bad = [k for k, v in layers.items() if not v["identical"]]
            raise RuntimeError(f"emulator and Lava disagree (layers {bad}, scores identical: "
                               f"{check['scores_identical']}); not timing a wrong answer")

    steps = n * config.T
    med = lambda v: float(np.median(v))  # noqa: E731
    emu_sps, emu_plain_sps = steps / med(emu_times), steps / med(emu_plain)
    lava_sps, lava_run_sps = steps / med(lava_walls), steps / med(lava_runs)
    rows = [
        common.ratio_row("emulator (record) vs Lava sim (whole call)", "steps/s", emu_sps, lava_sps, "lava-sim", "higher",
                         goal=GOAL_SPEEDUP),
        common.ratio_row("emulator (record) vs Lava sim (run only)", "steps/s", emu_sps, lava_run_sps, "lava-sim run",
                         "higher", goal=GOAL_SPEEDUP),
        common.ratio_row("emulator (scores only) vs Lava sim (whole call)", "steps/s", emu_plain_sps, lava_sps,
                         "lava-sim", "higher", goal=GOAL_SPEEDUP),
    ]
    return {
        "size": {"name": size, "preset": preset, "samples": n, "T": config.T, "input_shape": list(config.input_shape),
                 "sample_steps": steps, "lava_steps_per_run": int(lava.extra["lava_steps"])},
        "check": check,
        "timing": {"emulator_record_s": emu_times, "emulator_scores_only_s": emu_plain,
                   "lava_call_s": lava_walls, "lava_run_s": lava_runs},
        "steps_per_s": {"emulator_record": emu_sps, "emulator_scores_only": emu_plain_sps,
                        "lava_call": lava_sps, "lava_run": lava_run_sps},
        "goal_speedup": GOAL_SPEEDUP,
        "goal_met": bool(emu_sps / lava_sps >= GOAL_SPEEDUP) if identical else False,
        "rows": rows,
        "notes": [f"spikes identical in every layer: {identical}; speedup (whole Lava call) "
                  f"{emu_sps / lava_sps:,.0f}× (goal ≥ {GOAL_SPEEDUP:,.0f}×)"],
    }
