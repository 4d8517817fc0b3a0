"""``profile``: the profile stage's counting overhead relative to the plain emulator run (goal ≤ 1.2×).

On the converted random ``digits`` network (:mod:`tcja_deploy.bench._deploy`) and the same random
input spikes, alternating:

- ours: the profile pipeline on the emulator backend —
  :func:`tcja_deploy.hardware.profiling.profile_batches` with ``EmulatorBackend`` (emulate with
  every layer recorded, count spikes / SynOps / updates / gate ops, energy estimates, profile.json
  and raster.npz written after each chunk of 64 samples);
- peer: the plain emulator run that scores the same samples
  (:func:`tcja_deploy.hardware.emulator.emulate` with ``record=False``).

Ratio = ours / peer (the overhead factor). A third row splits off the recording alone
(``emulate(record=True)`` vs ``record=False``). Samples per size: ``toy`` 4, ``cpu`` 64, ``full`` 256.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from tcja_deploy.bench import _deploy, common

NAME = "profile"
DESCRIPTION = "profile (counting) overhead vs the plain emulator run, goal ≤ 1.2×"
SIZES = {"toy": {"samples": 4}, "cpu": {"samples": 64}, "full": {"samples": 256}}
PRESET = "digits"
CALIBRATION_SAMPLES = 16
CHUNK = 64
GOAL_OVERHEAD = 1.2


def run(opts: common.BenchOptions) -> dict[str, Any]:
    from tcja_deploy.conversion.deploy_dir import read_deploy
    from tcja_deploy.hardware import energy as E
    from tcja_deploy.hardware import profiling as P
    from tcja_deploy.hardware.backends import EmulatorBackend
    from tcja_deploy.hardware.emulator import emulate
    from tcja_deploy.hardware.profile_doc import versions

    size = opts.size if opts.size in SIZES else "cpu"
    n = SIZES[size]["samples"]
    preset = (opts.extra.get("presets") or [PRESET])[0]
    with tempfile.TemporaryDirectory(prefix="tcja-bench-profile-") as tmp:
        deploy, config = _deploy.random_deploy(preset, Path(tmp), CALIBRATION_SAMPLES, opts.seed)
        deploy = read_deploy(deploy)
        graph = deploy.graph
        x = _deploy.random_spikes(config.T, n, tuple(config.input_shape), opts.seed + 5)
        frames = x.numpy()
        labels = np.random.default_rng(opts.seed).integers(0, config.num_classes, n)
        profiles = E.resolve_profiles(None)
        info = P.deploy_info(deploy)
        meta = {"backend": "emulator", "deploy": {"dir": str(deploy.dir), "hash": deploy.combined_hash(), **info},
                "versions": versions(), "samples": {"requested": n, "split": "random spikes (bench)",
                                                      "first_index": 0, "selected": n}}
        out_dir = Path(tmp) / "profile"
        docs: list[dict] = []
        # One backend for all repetitions: its graph.json is parsed once, as the plain side's graph is
        # (like with like: both sides warm; a CLI run parses it once either way).
        backend = EmulatorBackend(chunk_size=CHUNK)

        def profiled() -> None:
            batches = ((frames[:, s:s + CHUNK], labels[s:s + CHUNK]) for s in range(0, n, CHUNK))
            docs.append(P.profile_batches(batches, backend, deploy, out_dir, profiles, meta, n, progress=False))

        def plain() -> None:
            emulate(graph, x, labels, batch_size=CHUNK, record=False)

        def recorded() -> None:
            emulate(graph, x, labels, batch_size=CHUNK, record=True)

        times = common.time_interleaved({"profile": profiled, "emulator": plain, "emulator_record": recorded},
                                        opts.repeats, opts.device)
    timing = {k: common.summarize(v) for k, v in times.items()}
    t_prof, t_plain, t_rec = (timing[k]["median_s"] for k in ("profile", "emulator", "emulator_record"))
    rows = [
        common.ratio_row("profile pipeline vs plain emulator", "s", t_prof, t_plain, "emulator", "lower",
                         goal=GOAL_OVERHEAD),
        common.ratio_row("emulator recording vs plain emulator", "s", t_rec, t_plain, "emulator", "lower"),
        common.ratio_row("profile pipeline vs recording emulator", "s", t_prof, t_rec, "emulator (record)", "lower"),
    ]
    return {
        "size": {"name": size, "preset": preset, "samples": n, "T": config.T, "chunk": CHUNK},
        "timing": timing,
        "overhead": t_prof / t_plain,
        "goal_overhead": GOAL_OVERHEAD,
        "goal_met": bool(t_prof / t_plain <= GOAL_OVERHEAD),
        "rows": rows,
        "notes": [f"overhead of the profile pipeline: {t_prof / t_plain:.2f}× the plain emulator "
                  f"(goal ≤ {GOAL_OVERHEAD}×)"],
    }
