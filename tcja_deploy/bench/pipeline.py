"""``pipeline --preset P``: the whole chain at a preset's size, on seeded random weights.

For each preset: one training step (forward, MSE rate loss, backward, Adam) on a batch of random spikes
(density 0.1); the conversion for ``loihi2`` with the gates on neuro cores (no fidelity checks,
:func:`tcja_deploy.bench._deploy.convert_without_fidelity`); the emulator scoring random samples
(samples/s, auto batch size); and the Lava simulation of the converted network on the same samples,
stopped by a wall-time budget (Lava steps/s, and the time one sample takes). The resources (neurons,
synapses, cores, chips with whole layers packed, the smallest Loihi 2 system) come from one emulator run.
The "peer" of each row is the issue's goal where it has one (convert ≤ 600 s, emulator ≥ 2 samples/s).

Then, at sizes ``cpu`` and ``full``, the user's command as it is: ``convert --target loihi2`` with its defaults
(``--budget 600``, the Lava check in ``auto`` mode) on the random run, timed as a whole. dvs128_gesture converts
with a dataset folder in tonic's format of the real test-set size (:mod:`gesture_files`: 264 test recordings of
60,000 random events, 256 training recordings for calibration); presets without such a writer convert on the
conversion's fallback (64 random test samples), which the row names.

Sizes: ``toy`` digits, 1 sample, Lava budget 60 s; ``cpu`` the given presets (default dvs128_gesture),
2 samples, whole-network budget 300 s; ``full`` 8 samples, budget 1800 s.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tcja_deploy import atomic
from tcja_deploy.bench import _deploy, common

NAME = "pipeline"
DESCRIPTION = "train step, convert, emulator and Lava check at a preset's size (random weights)"
SIZES = {"toy": {"presets": ["digits"], "samples": 1, "budget_s": 60.0, "batch": 2, "convert_check": False},
         "cpu": {"presets": ["dvs128_gesture"], "samples": 2, "budget_s": 300.0, "batch": 2, "convert_check": True},
         "full": {"presets": ["dvs128_gesture"], "samples": 8, "budget_s": 1800.0, "batch": 8, "convert_check": True}}
GOAL_CONVERT_S = 600.0
GOAL_EMULATOR_SPS = 2.0


def _train_step_s(config, batch: int, seed: int) -> float:
    from tcja_deploy.models.network import TCJASNN, rate_loss

    torch.manual_seed(seed)
    model = TCJASNN(config)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = (torch.rand((config.T, batch, *config.input_shape)) < 0.1).float()
    y = torch.randint(0, config.num_classes, (batch,))
    times = []
    for _ in range(2):  # the first step builds the kernels
        t = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        rate_loss(model(x), y, "mse", config.num_classes).backward()
        opt.step()
        times.append(time.perf_counter() - t)
    return times[-1]


def _convert_with_check(preset: str, run: Path, work: Path, seed: int) -> dict[str, Any]:
    """``convert --target loihi2`` with its defaults on ``run`` (a dataset folder written first for dvs128_gesture);
    the wall time of the whole call, its phases, and what the Lava check covered."""
    import json
    import os

    from tcja_deploy.bench.gesture_files import write_gesture_dataset
    from tcja_deploy.conversion.deploy import convert
    from tcja_deploy.hardware.verify import lava_check

    data = "random fallback (64 samples)"
    if preset == "dvs128_gesture":
        root = write_gesture_dataset(work / "data", seed=seed)
        info = json.loads((run / "config.json").read_text())
        info.setdefault("train", {})["data_dir"] = str(root)
        atomic.write_json(run / "config.json", info)
        data = "tonic-format folder, 264 test recordings × 60,000 events"
    old = os.environ.get("TCJA_ALLOW_PARTIAL_DATA")
    os.environ["TCJA_ALLOW_PARTIAL_DATA"] = "1"  # 256 of the training recordings
    try:
        t = time.perf_counter()
        fid = convert(run, work / "deploy-default", "loihi2", lava_check=lava_check, log=lambda line: None)
        seconds = time.perf_counter() - t
    finally:
        if old is None:
            os.environ.pop("TCJA_ALLOW_PARTIAL_DATA", None)
        else:
            os.environ["TCJA_ALLOW_PARTIAL_DATA"] = old
    lv = fid.get("lava") or {}
    return {"seconds": seconds, "data": data, "data_source": fid["data"]["source"],
            "test_samples": fid["data"]["test_samples"], "phases": fid["seconds"], "budget": fid.get("budget"),
            "lava_mode": lv.get("mode"), "lava_samples": lv.get("samples"), "lava_reason": lv.get("samples_reason"),
            "lava_parts": lv.get("parts"), "all_layers_identical": lv.get("all_layers_identical"),
            "layers_checked": {k: v.get("samples_checked", v.get("steps_checked")) for k, v in
                               (lv.get("layers") or {}).items()}}


def _one(preset: str, work: Path, case: dict, opts: common.BenchOptions) -> dict[str, Any]:
    from tcja_deploy.conversion.deploy_dir import read_deploy
    from tcja_deploy.conversion.execute import auto_batch_size, bytes_per_sample
    from tcja_deploy.hardware.emulator import emulate
    from tcja_deploy.hardware.resources import network_resources
    from tcja_deploy.hardware.verify import lava_check

    config = _deploy.make_random_run(preset, work / "run", opts.seed)
    train_s = _train_step_s(config, case["batch"], opts.seed)
    t = time.perf_counter()
    deploy, _ = _deploy.random_deploy(preset, work, 2, opts.seed)  # reuses the run saved above
    convert_s = time.perf_counter() - t
    graph = read_deploy(deploy).graph
    n = case["samples"]
    x = _deploy.random_spikes(config.T, n, tuple(config.input_shape), opts.seed + 5)
    emulate(graph, x[:, :1], record=False)  # warm-up
    t = time.perf_counter()
    emu = emulate(graph, x, record=True)
    emulator_s = time.perf_counter() - t
    res = network_resources(emu.layers)
    labels = np.zeros(n, dtype=np.int64)
    t = time.perf_counter()
    check = lava_check(deploy, graph, x, labels, np.zeros((n, config.num_classes)), budget_s=case["budget_s"],
                       log=lambda line: None, progress=False, mode="whole")  # the assembled network's rate
    lava_s = time.perf_counter() - t
    if "error" in check:
        raise RuntimeError(f"{preset}: the Lava simulation failed: {check['error']}")
    default = _convert_with_check(preset, work / "run", work, opts.seed) if case["convert_check"] else None
    return {
        "T": config.T, "input_shape": list(config.input_shape), "convert_default": default,
        "train_step_s": train_s, "train_batch": case["batch"],
        "convert_s": convert_s,
        "emulator_samples_per_s": n / emulator_s, "emulator_batch": auto_batch_size(graph),
        "emulator_bytes_per_sample": bytes_per_sample(graph),
        "lava": {"samples_requested": n, "samples_done": check["samples"], "seconds": lava_s,
                 "steps": check["steps"], "steps_per_s": check["steps"] / check["seconds"],
                 "processes": check["processes"], "stopped_by_budget": check["samples"] < n,
                 "budget_s": case["budget_s"], "estimated_s": check["estimated_s"],
                 "samples_reason": check["samples_reason"], "partial_steps": check.get("partial_steps"),
                 "all_layers_identical": check["all_layers_identical"]},
        "resources": dict(res["total"]),
        "partition": {"chips": res["partition"]["chips"], "system": res["partition"]["system"]},
    }


def run(opts: common.BenchOptions) -> dict[str, Any]:
    size = opts.size if opts.size in SIZES else "cpu"
    case = SIZES[size]
    presets = list(opts.extra.get("presets") or case["presets"])
    per: dict[str, Any] = {}
    rows, notes = [], []
    with tempfile.TemporaryDirectory(prefix="tcja-bench-pipeline-") as tmp:
        for preset in presets:
            r = _one(preset, Path(tmp) / preset, case, opts)
            per[preset] = r
            lv = r["lava"]
            rows += [
                common.ratio_row(f"{preset}: train step (batch {r['train_batch']})", "s", r["train_step_s"], None,
                                 "-", "lower"),
                common.ratio_row(f"{preset}: convert (no fidelity)", "s", r["convert_s"], GOAL_CONVERT_S, "goal",
                                 "lower"),
                common.ratio_row(f"{preset}: emulator scoring", "samples/s", r["emulator_samples_per_s"],
                                 GOAL_EMULATOR_SPS, "goal", "higher"),
                common.ratio_row(f"{preset}: Lava simulation, whole network ({lv['processes']} processes)", "steps/s",
                                 lv["steps_per_s"], None, "-", "higher"),
            ]
            cd = r["convert_default"]
            if cd is not None:
                rows.append(common.ratio_row(f"{preset}: convert with its default Lava check ({cd['data']})", "s",
                                             cd["seconds"], GOAL_CONVERT_S, "goal", "lower"))
                notes.append(f"{preset}: convert (defaults) {cd['seconds']:.0f} s; Lava check ({cd['lava_mode']}): "
                             f"{cd['lava_reason']}; identical: {cd['all_layers_identical']}")
            system = r["partition"]["system"]
            notes.append(f"{preset}: Lava {lv['samples_reason']}; {lv['seconds']:.0f} s for {lv['steps']} steps "
                         f"(estimated {lv['estimated_s']:.0f} s), spikes identical: "
                         f"{lv['all_layers_identical']}; {r['resources']['neurons']:,} neurons, "
                         f"{r['resources']['cores']} cores, {r['partition']['chips']} chip(s) packed → "
                         + (f"{system['name']}" if system else "larger than every listed system"))
    return {"size": {"name": size, "presets": presets, **case}, "per_preset": per, "rows": rows, "notes": notes}
