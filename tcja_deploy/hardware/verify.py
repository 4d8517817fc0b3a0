"""The Lava check of a conversion: the deploy directory on Lava's simulator against the emulator.

:func:`lava_check` is what ``python -m tcja_deploy.convert`` hands to
:func:`tcja_deploy.conversion.deploy.convert`; its result is ``fidelity.json``'s ``lava`` section
(docs/FORMATS.md): accuracy on the checked samples, and per layer the fraction of equal output entries
(graded gate outputs compare payload codes).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from tcja_deploy.conversion import fidelity as F
from tcja_deploy.conversion import graph as g
from tcja_deploy.conversion.deploy_dir import read_deploy
from tcja_deploy.hardware.activity import NetworkActivity
from tcja_deploy.hardware.emulator import emulate


def spike_agreement(a: NetworkActivity, b: NetworkActivity, samples: Optional[int] = None) -> dict:
    """Per layer: fraction of equal output entries of a and b (first ``samples`` samples of each)."""
    out = {}
    lb = {layer.name: layer for layer in b.layers}
    for la in a.layers:
        if la.name not in lb:
            out[la.name] = {"agreement": 0.0, "identical": False, "missing": True}
            continue
        n = samples or min(la.output_spikes.shape[1], lb[la.name].output_spikes.shape[1])
        x = np.asarray(la.output_spikes[:, :n])
        y = np.asarray(lb[la.name].output_spikes[:, :n])
        if x.shape != y.shape:
            out[la.name] = {"agreement": 0.0, "identical": False, "shapes": [list(x.shape), list(y.shape)]}
            continue
        eq = x == y if x.dtype.kind in "iub" and y.dtype.kind in "iub" else np.isclose(x, y, rtol=0, atol=1e-9)
        out[la.name] = {"agreement": float(eq.mean()) if eq.size else 1.0, "identical": bool(eq.all()),
                        "spikes_emulator": int(np.count_nonzero(x)), "spikes_lava": int(np.count_nonzero(y))}
    return out


def gate_stage_agreement(graph: g.Graph, x: torch.Tensor, stages: dict) -> dict:
    """Per neuro-core gate and stage: does Lava's record equal what the stage must hold?

    The expectation comes from the emulator's own run of ``graph`` (the squeezed spikes' counts through
    :func:`neurocore_gate.stages`, laid out per Lava step by :func:`lava_gate.expected_series`).
    """
    from tcja_deploy.conversion.execute import run_graph
    from tcja_deploy.conversion.neurocore_gate import NeurocoreGate, stages as nc_stages
    from tcja_deploy.hardware.lava_gate import expected_series

    if not stages:
        return {}
    _, outputs = run_graph(graph, x.to(torch.float64), record=True)
    names = graph.names
    out = {}
    for gate_name, recorded in stages.items():
        node = graph.nodes[gate_name]
        ng = NeurocoreGate.from_arrays(node.params)
        src = node.squeeze_from or names[names.index(gate_name) - 1]
        counts = outputs[src].sum(dim=(3, 4)).permute(1, 0, 2).round().to(torch.int64).numpy()
        want = expected_series(nc_stages(counts, ng), ng, outputs[gate_name].round().to(torch.int64).numpy())
        per = {}
        for stage, got in recorded.items():
            exp = want[stage]
            eq = (got.shape == exp.shape) and np.array_equal(got, exp)
            agreement = float((got == exp).mean()) if got.shape == exp.shape else 0.0
            per[stage] = {"identical": bool(eq), "agreement": agreement, "nonzero": int(np.count_nonzero(exp))}
        out[gate_name] = per
    return out


def _partial_check(graph: g.Graph, x: torch.Tensor, lava: NetworkActivity, n: int, budget_s) -> dict:
    """The budget ended the Lava run inside sample 0: compare the steps of it that every layer and gate stage
    had sent with the emulator's same steps."""
    from tcja_deploy.conversion.execute import run_graph
    from tcja_deploy.conversion.layers import layer_plan
    from tcja_deploy.conversion.neurocore_gate import NeurocoreGate, stages as nc_stages
    from tcja_deploy.hardware.lava_gate import expected_series

    partial = lava.extra["partial"]
    _, outputs = run_graph(graph, x[:, :1].to(torch.float64), record=True)
    layers, steps_checked = {}, {}
    for layer in layer_plan(graph):
        got = partial.get(layer.name)
        if got is None:
            continue
        want = outputs[layer.neuron][: len(got), 0].numpy()
        t = int(len(got))
        eq = (got.reshape(want.shape) == want) if t else np.ones(0, dtype=bool)
        layers[layer.name] = {"agreement": float(eq.mean()) if eq.size else 1.0, "identical": bool(eq.all()),
                              "steps_checked": t, "spikes_emulator": int(np.count_nonzero(want)),
                              "spikes_lava": int(np.count_nonzero(got))}
        steps_checked[layer.name] = t
    stages: dict = {}
    names = graph.names
    for probe, got in partial.items():
        if "." not in probe:
            continue
        gate_name, stage = probe.split(".", 1)
        node = graph.nodes[gate_name]
        ng = NeurocoreGate.from_arrays(node.params)
        src = node.squeeze_from or names[names.index(gate_name) - 1]
        counts = outputs[src].sum(dim=(3, 4)).permute(1, 0, 2).round().to(torch.int64).numpy()
        want = expected_series(nc_stages(counts, ng), ng, outputs[gate_name].round().to(torch.int64).numpy())[stage]
        want = want[: len(got)]
        eq = got.reshape(want.shape) == want
        stages.setdefault(gate_name, {})[stage] = {"identical": bool(eq.all()), "agreement": float(eq.mean())
                                                   if eq.size else 1.0, "nonzero": int(np.count_nonzero(want))}
    least = min(steps_checked.values(), default=0)
    all_ok = all(r["identical"] for r in layers.values()) and \
        all(r["identical"] for per in stages.values() for r in per.values())
    return {"accuracy": None, "samples": 0, "samples_requested": n,
            "samples_reason": f"the {budget_s:g} s Lava budget ended the run inside sample 0: its first steps "
                              f"checked in every layer (at least {least} of {int(graph.meta['T'])} in each)",
            "estimated_s": float(lava.extra.get("estimated_s", 0.0)), "partial_steps": steps_checked,
            "float_accuracy_same_samples": None, "emulator_accuracy_same_samples": None, "scores_identical": None,
            "steps": int(lava.extra["lava_steps"]), "seconds": float(lava.extra["seconds"]),
            "latency_steps": int(lava.extra["latency_steps"]),
            "alignment_delay_lines": {str(k): v for k, v in lava.extra["delay_lines"].items()},
            "gate_phases": dict(lava.extra["gate_phases"]), "processes": int(lava.extra.get("processes", 0)),
            "layers": layers, "gate_stages": stages, "all_layers_identical": all_ok}


def lava_check(deploy_dir: Path, graph: g.Graph, x: torch.Tensor, labels: np.ndarray, float_scores: np.ndarray,
               select_tag: str = "fixed_pt", log: Callable[[str], None] = print, budget_s: Optional[float] = None,
               progress: bool = True) -> dict:
    """Run the n samples of x [T, n, C, H, W] on Lava and on the emulator; the ``lava`` section of fidelity.json.

    A failed simulation is recorded (``{"error", "samples", "all_layers_identical": false}``) and logged, not
    raised: the artifacts stand and the table shows the failure. With ``budget_s`` the simulation stops once
    that many seconds have passed and the samples completed by then are checked (``samples_reason``).
    """
    from tcja_deploy.hardware.lava_sim import run_lava

    n = int(x.shape[1])
    emu = emulate(graph, x, labels, record=True)
    try:
        lava = run_lava(read_deploy(deploy_dir, require_complete=False), x, labels, select_tag=select_tag,
                        budget_s=budget_s, log=log, progress=progress)
    except Exception as e:  # the artifacts stand; the failed check is recorded and shown
        log(f"warning: the Lava simulation failed: {e.__class__.__name__}: {e}")
        return {"error": f"{e.__class__.__name__}: {e}", "samples": n, "all_layers_identical": False}
    k = int(lava.scores.shape[0])  # samples completed (fewer than n when the budget stopped the run)
    if k == 0:
        return _partial_check(graph, x, lava, n, budget_s)
    if k < n:
        emu = emulate(graph, x[:, :k], labels[:k], record=True)
        labels, float_scores = labels[:k], float_scores[:k]
    reason = (f"the first {k} of {n} requested: the {budget_s:g} s Lava budget was reached" if k < n else
              f"{n} requested (--lava-samples)" + ("" if budget_s is None else f", within the {budget_s:g} s budget"))
    layers = spike_agreement(emu, lava)
    stages = gate_stage_agreement(graph, x[:, :k], lava.extra.get("gate_stages", {}))
    all_stages = all(r["identical"] for per in stages.values() for r in per.values())
    return {"accuracy": F.accuracy(lava.scores, labels), "samples": k, "samples_requested": n,
            "samples_reason": reason, "estimated_s": float(lava.extra.get("estimated_s", 0.0)),
            "float_accuracy_same_samples": F.accuracy(float_scores, labels),
            "emulator_accuracy_same_samples": F.accuracy(emu.scores, labels),
            "scores_identical": bool(np.array_equal(emu.scores, lava.scores)),
            "steps": int(lava.extra["lava_steps"]), "seconds": float(lava.extra["seconds"]),
            "latency_steps": int(lava.extra["latency_steps"]),
            "alignment_delay_lines": {str(k): v for k, v in lava.extra["delay_lines"].items()},
            "gate_phases": dict(lava.extra["gate_phases"]),
            "processes": int(lava.extra.get("processes", 0)),
            "layers": layers, "gate_stages": stages,
            "all_layers_identical": all(r["identical"] for r in layers.values()) and all_stages}
