"""``emulate``: the bit-exact emulator vs Lava's simulator on the same converted network and samples.

A seeded random ``digits`` model (the embedded default: 2×32×32, T=8, two TCJA gates) is
converted for ``loihi2`` (:mod:`tcja_deploy.bench._deploy`); the same random input spikes
(density 0.2) run through :func:`tcja_deploy.hardware.emulator.emulate` (``record=True``: every
layer's spikes, as Lava's probes record) and :func:`tcja_deploy.hardware.lava_sim.run_lava`
(``fixed_pt``), once with the gates on neuro cores (standard Lava processes) and once as host processes.
Every layer's spikes (and every neuro-core gate stage) and the scores must be identical; then figures
are sample time steps per second (samples × T / wall seconds) and the number of Lava processes, per
placement, alternating emulator and Lava runs.

Lava's main figure uses the wall time of the whole ``run_lava`` call (building the processes,
compiling, running, reading the probes: what it costs to get the answer). Lava's start-up is a
large fixed cost, so a second figure is its marginal rate: the same call on one sample is timed
too, and (n − 1)·T / (t_n − t_1) is Lava's rate once started. Goal: emulator ≥ 1000× faster with
identical spikes.

Samples per size: ``toy`` 1, ``cpu`` 8, ``full`` 32 (the profile stage's Lava default). Lava runs
at most twice (it is slow), the emulator ``--repeats`` times before and after Lava (two warm-up
calls first).
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
LAVA_MAX_RUNS = 2
GOAL_SPEEDUP = 1000.0


PLACEMENTS = ("neurocore", "host")


def _time_placement(preset: str, tmp: Path, placement: str, n: int, opts: common.BenchOptions) -> dict[str, Any]:
    from tcja_deploy.conversion.deploy_dir import read_deploy
    from tcja_deploy.hardware.emulator import emulate
    from tcja_deploy.hardware.lava_sim import run_lava
    from tcja_deploy.hardware.verify import gate_stage_agreement, spike_agreement

    deploy, config = _deploy.random_deploy(preset, tmp, CALIBRATION_SAMPLES, opts.seed, gate_placement=placement)
    graph = read_deploy(deploy).graph
    x = _deploy.random_spikes(config.T, n, tuple(config.input_shape), opts.seed + 5)
    labels = np.random.default_rng(opts.seed).integers(0, config.num_classes, n)

    def time_emulator(record: bool, reps: int) -> list[float]:
        out = []
        for _ in range(reps):
            t = time.perf_counter()
            emulate(graph, x, labels, record=record)
            out.append(time.perf_counter() - t)
        return out

    for _ in range(2):  # warm-up (first calls create the convolution primitives)
        emu = emulate(graph, x, labels, record=True)
    emu_times = time_emulator(True, opts.repeats)
    emu_plain = time_emulator(False, opts.repeats)
    lava_walls, lava_one = [], []
    lava = None
    for _ in range(min(LAVA_MAX_RUNS, opts.repeats)):
        if n > 1:  # one sample: Lava's fixed cost (build, compile, start), for the marginal rate
            t = time.perf_counter()
            run_lava(deploy, x[:, :1], labels[:1], select_tag="fixed_pt")
            lava_one.append(time.perf_counter() - t)
        t = time.perf_counter()
        lava = run_lava(deploy, x, labels, select_tag="fixed_pt")
        lava_walls.append(time.perf_counter() - t)
    emu_times += time_emulator(True, opts.repeats)  # after Lava too: both see the same machine state
    emu_plain += time_emulator(False, opts.repeats)

    layers = spike_agreement(emu, lava)
    stages = gate_stage_agreement(graph, x, lava.extra.get("gate_stages", {}))
    identical = (all(v["identical"] for v in layers.values()) and bool(np.array_equal(emu.scores, lava.scores))
                 and all(r["identical"] for per in stages.values() for r in per.values()))
    if not identical:
        bad = [k for k, v in layers.items() if not v["identical"]]
        raise RuntimeError(f"{placement} gates: emulator and Lava disagree (layers {bad}); not timing a wrong answer")
    steps = n * config.T
    med = lambda v: float(np.median(v))  # noqa: E731
    marginal = (steps - config.T) / (med(lava_walls) - med(lava_one)) \
        if lava_one and med(lava_walls) > med(lava_one) else None
    return {"config": config, "steps": steps, "lava_steps_per_run": int(lava.extra["lava_steps"]),
            "lava_processes": int(lava.extra.get("processes", 0)),
            "check": {"layers": layers, "gate_stages": stages, "all_identical": identical,
                      "spikes_emulator": int(sum(v.get("spikes_emulator", 0) for v in layers.values()))},
            "timing": {"emulator_record_s": emu_times, "emulator_scores_only_s": emu_plain,
                       "lava_call_s": lava_walls, "lava_call_one_sample_s": lava_one},
            "steps_per_s": {"emulator_record": steps / med(emu_times), "emulator_scores_only": steps / med(emu_plain),
                            "lava_call": steps / med(lava_walls), "lava_marginal": marginal}}


def run(opts: common.BenchOptions) -> dict[str, Any]:
    size = opts.size if opts.size in SIZES else "cpu"
    n = SIZES[size]["samples"]
    preset = (opts.extra.get("presets") or [PRESET])[0]
    per: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="tcja-bench-emulate-") as tmp:
        for placement in PLACEMENTS:  # the same random model, converted with each gate placement
            per[placement] = _time_placement(preset, Path(tmp), placement, n, opts)
    rows, notes = [], []
    for placement, r in per.items():
        sps = r["steps_per_s"]
        tag = f"[{placement} gates, {r['lava_processes']} Lava processes]"
        rows.append(common.ratio_row(f"emulator (record) vs Lava sim (whole call) {tag}", "steps/s",
                                     sps["emulator_record"], sps["lava_call"], "lava-sim", "higher", goal=GOAL_SPEEDUP))
        rows.append(common.ratio_row(f"emulator (scores only) vs Lava sim (whole call) {tag}", "steps/s",
                                     sps["emulator_scores_only"], sps["lava_call"], "lava-sim", "higher",
                                     goal=GOAL_SPEEDUP))
        if sps["lava_marginal"] is not None:
            rows.append(common.ratio_row(f"emulator (record) vs Lava sim (marginal, no start-up) {tag}", "steps/s",
                                         sps["emulator_record"], sps["lava_marginal"], "lava-sim marginal", "higher",
                                         goal=GOAL_SPEEDUP))
        notes.append(f"{placement} gates: every layer{' and gate stage' if r['check']['gate_stages'] else ''} "
                     f"identical; {r['lava_processes']} Lava processes; speedup "
                     f"{sps['emulator_record'] / sps['lava_call']:,.0f}× over the whole Lava call"
                     + ("" if sps["lava_marginal"] is None
                        else f", {sps['emulator_record'] / sps['lava_marginal']:,.0f}× over Lava's marginal rate")
                     + f" (goal ≥ {GOAL_SPEEDUP:,.0f}×)")
    main = per["neurocore"]
    config = main["config"]
    marginal = main["steps_per_s"]["lava_marginal"]
    return {
        "size": {"name": size, "preset": preset, "samples": n, "T": config.T, "input_shape": list(config.input_shape),
                 "sample_steps": main["steps"], "lava_steps_per_run": main["lava_steps_per_run"]},
        "check": main["check"],
        "timing": main["timing"],
        "steps_per_s": main["steps_per_s"],
        "placements": {p: {k: v for k, v in r.items() if k != "config"} for p, r in per.items()},
        "goal_speedup": GOAL_SPEEDUP,
        "goal_met_whole_call": bool(main["steps_per_s"]["emulator_record"] / main["steps_per_s"]["lava_call"]
                                    >= GOAL_SPEEDUP),
        "goal_met_marginal": None if marginal is None else bool(main["steps_per_s"]["emulator_record"] / marginal
                                                                >= GOAL_SPEEDUP),
        "rows": rows,
        "notes": notes,
    }
