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
from tcja_deploy.conversion.execute import bytes_per_sample
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


def expected_stages(graph: g.Graph, gate_name: str, outputs: dict, n: int) -> dict:
    """{stage: [n·T, ...]}: what each stage of neuro-core gate ``gate_name`` must hold per Lava step for the first n
    samples of the emulator's records ``outputs`` (the squeezed spikes' counts through
    :func:`neurocore_gate.stages`, laid out by :func:`lava_gate.expected_series`)."""
    from tcja_deploy.conversion.neurocore_gate import NeurocoreGate, stages as nc_stages
    from tcja_deploy.hardware.lava_gate import expected_series

    names = graph.names
    node = graph.nodes[gate_name]
    ng = NeurocoreGate.from_arrays(node.params)
    src = node.squeeze_from or names[names.index(gate_name) - 1]
    counts = outputs[src][:, :n].sum(dim=(3, 4)).permute(1, 0, 2).round().to(torch.int64).numpy()
    return expected_series(nc_stages(counts, ng), ng, outputs[gate_name][:, :n].round().to(torch.int64).numpy())


def compare_stage(got: np.ndarray, exp: np.ndarray) -> dict:
    """One gate stage: Lava's record vs the expectation (the expectation cut to the steps recorded)."""
    exp = exp[: len(got)]
    same_shape = got.shape == exp.shape
    if not got.size:  # nothing was recorded (the budget ended the run first): nothing is proven
        return {"identical": False, "agreement": 0.0, "nonzero": 0, "not_checked": True}
    return {"identical": bool(same_shape and np.array_equal(got, exp)),
            "agreement": float((got == exp).mean()) if same_shape else 0.0, "nonzero": int(np.count_nonzero(exp))}


def gate_stage_agreement(graph: g.Graph, x: torch.Tensor, stages: dict, outputs: Optional[dict] = None) -> dict:
    """Per neuro-core gate and stage: does Lava's record equal what the stage must hold (:func:`expected_stages`
    on the emulator's records ``outputs``; None: the emulator's own run of ``graph`` on x)?"""
    from tcja_deploy.conversion.execute import run_graph

    if not stages:
        return {}
    if outputs is None:
        _, outputs = run_graph(graph, x.to(torch.float64), record=True)
    n = int(x.shape[1])
    return {gate_name: {stage: compare_stage(got, want[stage])
                        for stage, got in recorded.items()
                        for want in [expected_stages(graph, gate_name, outputs, n)]}
            for gate_name, recorded in stages.items()}


def compare_layer(got: np.ndarray, want: np.ndarray) -> dict:
    """One layer's output, Lava vs emulator (same layout): agreement, identical, non-zero entries of each."""
    if got.shape != want.shape:
        return {"agreement": 0.0, "identical": False, "shapes": [list(want.shape), list(got.shape)]}
    eq = got == want if got.dtype.kind in "iub" and want.dtype.kind in "iub" else \
        np.isclose(got, want, rtol=0, atol=1e-9)
    if not eq.size:  # nothing was recorded (the budget ended the run first): nothing is proven
        return {"agreement": 0.0, "identical": False, "not_checked": True, "spikes_emulator": 0, "spikes_lava": 0}
    return {"agreement": float(eq.mean()), "identical": bool(eq.all()),
            "spikes_emulator": int(np.count_nonzero(want)), "spikes_lava": int(np.count_nonzero(got))}


def _partial_check(graph: g.Graph, x: torch.Tensor, lava: NetworkActivity, n: int, budget_s) -> dict:
    """The budget ended the Lava run inside sample 0: compare the steps of it that every layer and gate stage
    had sent with the emulator's same steps."""
    from tcja_deploy.conversion.execute import run_graph
    from tcja_deploy.conversion.layers import layer_plan

    partial = lava.extra["partial"]
    _, outputs = run_graph(graph, x[:, :1].to(torch.float64), record=True)
    layers, steps_checked = {}, {}
    for layer in layer_plan(graph):
        got = partial.get(layer.name)
        if got is None:
            continue
        want = outputs[layer.neuron][: len(got), 0].numpy()
        layers[layer.name] = {**compare_layer(got.reshape(want.shape), want), "steps_checked": int(len(got))}
        steps_checked[layer.name] = int(len(got))
    stages: dict = {}
    for probe, got in partial.items():
        if "." in probe:
            gate_name, stage = probe.split(".", 1)
            stages.setdefault(gate_name, {})[stage] = compare_stage(got, expected_stages(graph, gate_name, outputs,
                                                                                         1)[stage])
    least = min(steps_checked.values(), default=0)
    return {"accuracy": None, "samples": 0, "samples_requested": n, "mode": "whole",
            "samples_reason": f"the {budget_s:g} s Lava budget ended the run inside sample 0: its first steps "
                              f"checked in every layer (at least {least} of {int(graph.meta['T'])} in each)",
            "estimated_s": float(lava.extra.get("estimated_s", 0.0)), "partial_steps": steps_checked,
            "float_accuracy_same_samples": None, "emulator_accuracy_same_samples": None, "scores_identical": None,
            "steps": int(lava.extra["lava_steps"]), "seconds": float(lava.extra["seconds"]),
            "latency_steps": int(lava.extra["latency_steps"]),
            "alignment_delay_lines": {str(k): v for k, v in lava.extra["delay_lines"].items()},
            "gate_phases": dict(lava.extra["gate_phases"]), "processes": int(lava.extra.get("processes", 0)),
            "layers": layers, "gate_stages": stages, "all_layers_identical": _all_identical(layers, stages)}


def _all_identical(layers: dict, stages: dict) -> bool:
    return bool(layers) and all(r["identical"] for r in layers.values()) and \
        all(r["identical"] for per in stages.values() for r in per.values())


#: Memory the Lava check's records may take (the emulator's record of every node and Lava's probes, each about
#: ``execute.bytes_per_sample`` a sample): 16 digits samples take a few MB, one dvs128_gesture sample 2.1 GiB a side
#: (16 of them were killed for memory on a 24 GiB machine).
LAVA_MEMORY_BUDGET = 8 << 30


def lava_samples_in_memory(graph: g.Graph, n: int) -> int:
    """How many of n samples the Lava check runs so that both sides' records fit :data:`LAVA_MEMORY_BUDGET`
    (at least 1)."""
    return int(max(1, min(n, LAVA_MEMORY_BUDGET // max(1, 2 * bytes_per_sample(graph)))))


#: Lava check modes: ``whole`` (the assembled network), ``parts`` (each segment and gate alone on recorded
#: inputs, :mod:`tcja_deploy.hardware.lava_parts`), ``auto`` (parts when the whole run's estimate exceeds the budget).
LAVA_MODES = ("auto", "whole", "parts")


def choose_mode(deploy, n: int, mode: str, budget_s: Optional[float]) -> tuple[str, str]:
    """(mode, why): ``auto`` → ``whole`` unless its prior estimate for n samples exceeds the budget."""
    from tcja_deploy.conversion.layers import plan_timing
    from tcja_deploy.hardware.lava_sim import estimate_seconds

    if mode not in LAVA_MODES:
        raise ValueError(f"Lava check mode {mode!r}: expected one of {', '.join(LAVA_MODES)}")
    if mode != "auto":
        return mode, f"--lava-mode {mode}"
    if len(deploy.segments) < 2 or budget_s is None:
        return "whole", "one segment" if len(deploy.segments) < 2 else "no budget"
    lags = plan_timing(deploy.graph, deploy.segments, deploy.gates)["lags"]
    steps = max(lags.values()) + n * int(deploy.graph.meta["T"]) - 1
    est = estimate_seconds(deploy.graph, steps, 1)
    if est <= budget_s:
        return "whole", f"the whole network's estimate ({est:,.0f} s) fits the {budget_s:,.0f} s budget"
    return "parts", f"the whole network's estimate ({est:,.0f} s) exceeds the {budget_s:,.0f} s budget"


def _parts_check(deploy, graph: g.Graph, x: torch.Tensor, labels: np.ndarray, float_scores: np.ndarray, tag: str,
                 log: Callable[[str], None], budget_s: Optional[float], progress: bool, why: str) -> dict:
    """The Lava check in parts (:mod:`tcja_deploy.hardware.lava_parts`), as ``fidelity.json``'s ``lava`` section."""
    from tcja_deploy.conversion.execute import run_graph
    from tcja_deploy.conversion.layers import layer_plan, plan_timing
    from tcja_deploy.hardware.lava_parts import run_parts
    from tcja_deploy.hardware.lava_sim import host_scores

    n = int(x.shape[1])
    _, outputs = run_graph(graph, x.to(torch.float64), record=True)
    runs = run_parts(deploy, x, outputs, tag, budget_s=budget_s, log=log, progress=progress)
    neuron_of = {layer.name: layer.neuron for layer in layer_plan(graph)}
    layers, stages, parts, checked = {}, {}, [], {}
    for r in runs:
        k = r.samples
        for name in r.part.layers:
            want = outputs[neuron_of[name]]
            if k > 0:
                got, ref = r.recorded[name], want[:, :k].numpy()
                layers[name] = {**compare_layer(got.astype(ref.dtype) if tag != "fixed_pt" else got,
                                                np.rint(ref).astype(np.int64) if tag == "fixed_pt" else ref),
                                "samples_checked": k}
                checked[name] = f"{k} sample(s)"
            else:
                got = r.partial.get(name, np.zeros((0,)))
                ref = want[: len(got), 0].numpy()
                ref = np.rint(ref).astype(np.int64) if tag == "fixed_pt" else ref
                layers[name] = {**compare_layer(got.reshape(ref.shape), ref), "steps_checked": int(len(got))}
                checked[name] = f"{len(got)} of {int(graph.meta['T'])} steps of sample 0"
        for gate_name, per in r.stages.items():
            want = expected_stages(graph, gate_name, outputs, k)
            stages[gate_name] = {stage: compare_stage(got, want[stage]) for stage, got in per.items()}
        for probe, got in r.partial.items():
            if "." in probe:
                gate_name, stage = probe.split(".", 1)
                stages.setdefault(gate_name, {})[stage] = compare_stage(
                    got, expected_stages(graph, gate_name, outputs, 1)[stage])
        parts.append({"part": r.part.name, "layers": r.part.layers, "samples": k, "steps": r.steps,
                      "steps_planned": r.part.steps, "seconds": r.seconds, "estimated_s": r.part.estimated_s,
                      "processes": r.processes, "stopped_by_budget": r.stopped_by_budget})
    k_all = min(r.samples for r in runs)
    last = runs[-1]
    accuracy = scores_identical = None
    if k_all > 0 and last.part.kind == "segment":
        scores = host_scores(graph, last.recorded[last.part.layers[-1]][:, :k_all])
        emu_scores = host_scores(graph, np.rint(outputs[neuron_of[last.part.layers[-1]]][:, :k_all].numpy()))
        accuracy = F.accuracy(scores, labels[:k_all])
        scores_identical = bool(np.array_equal(scores, emu_scores))
    short = [p["part"] for p in parts if p["samples"] < n]
    reason = (f"in {len(runs)} parts on recorded inputs ({why}): {k_all} of {n} requested sample(s) in every part"
              + ("" if not short else f"; the budget ended {', '.join(short)} early, each layer checked on: "
                 + ", ".join(f"{name} {c}" for name, c in checked.items())))
    timing = plan_timing(graph, deploy.segments, deploy.gates)
    lags = timing["lags"]
    return {"accuracy": accuracy, "samples": k_all, "samples_requested": n, "mode": "parts", "samples_reason": reason,
            "estimated_s": float(sum(p["estimated_s"] for p in parts)),
            "float_accuracy_same_samples": F.accuracy(float_scores[:k_all], labels[:k_all]) if k_all else None,
            "emulator_accuracy_same_samples":
                F.accuracy(host_scores(graph, np.rint(outputs[neuron_of[last.part.layers[-1]]][:, :k_all].numpy())),
                           labels[:k_all]) if k_all and last.part.kind == "segment" else None,
            "scores_identical": scores_identical, "steps": int(sum(p["steps"] for p in parts)),
            "seconds": float(sum(p["seconds"] for p in parts)),
            "latency_steps": int(lags[[m for m in graph.names if m in lags][-1]] - lags[graph.names[0]]),
            "alignment_delay_lines": {}, "gate_phases": dict(timing["phases"]),
            "processes": int(max(p["processes"] for p in parts)), "parts": parts,
            "layers": layers, "gate_stages": stages, "all_layers_identical": _all_identical(layers, stages)}


def lava_check(deploy_dir: Path, graph: g.Graph, x: torch.Tensor, labels: np.ndarray, float_scores: np.ndarray,
               select_tag: str = "fixed_pt", log: Callable[[str], None] = print, budget_s: Optional[float] = None,
               progress: bool = True, mode: str = "auto") -> dict:
    """Run the n samples of x [T, n, C, H, W] on Lava and on the emulator; the ``lava`` section of fidelity.json.

    ``mode``: ``whole`` runs the assembled network; ``parts`` each segment and gate alone on the emulator's records
    of their inputs (:mod:`tcja_deploy.hardware.lava_parts`); ``auto`` parts when the whole run's prior estimate
    exceeds ``budget_s``. A failed simulation is recorded (``{"error", "samples", "all_layers_identical": false}``)
    and logged, not raised: the artifacts stand and the table shows the failure. With ``budget_s`` the simulation
    stops when the next step would not fit and the samples (or the steps of sample 0) completed by then are
    checked (``samples_reason``).
    """
    from tcja_deploy.hardware.lava_sim import run_lava

    requested = int(x.shape[1])
    n = lava_samples_in_memory(graph, requested)
    memory_note = ""
    if n < requested:  # the records of both sides must fit: the rest is the emulator's job
        memory_note = (f"; {n} of {requested} requested samples fit the {LAVA_MEMORY_BUDGET / 2**30:.0f} GiB "
                       "record budget")
        log(f"Lava check: {n} of {requested} samples (the records of a sample take "
            f"{2 * bytes_per_sample(graph) / 2**30:.1f} GiB; budget {LAVA_MEMORY_BUDGET / 2**30:.0f} GiB)")
        x, labels, float_scores = x[:, :n], labels[:n], float_scores[:n]
    deploy = read_deploy(deploy_dir, require_complete=False)
    chosen, why = choose_mode(deploy, n, mode, budget_s)
    why += memory_note
    if chosen == "parts":
        try:
            return _parts_check(deploy, graph, x, labels, float_scores, select_tag, log, budget_s, progress, why)
        except Exception as e:  # the artifacts stand; the failed check is recorded and shown
            log(f"warning: the Lava simulation failed: {e.__class__.__name__}: {e}")
            return {"error": f"{e.__class__.__name__}: {e}", "samples": n, "all_layers_identical": False}
    emu = emulate(graph, x, labels, record=True)
    try:
        lava = run_lava(deploy, x, labels, select_tag=select_tag, budget_s=budget_s, log=log, progress=progress)
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
    return {"accuracy": F.accuracy(lava.scores, labels), "samples": k, "samples_requested": n, "mode": "whole",
            "samples_reason": reason + f" (whole network: {why})",
            "estimated_s": float(lava.extra.get("estimated_s", 0.0)),
            "float_accuracy_same_samples": F.accuracy(float_scores, labels),
            "emulator_accuracy_same_samples": F.accuracy(emu.scores, labels),
            "scores_identical": bool(np.array_equal(emu.scores, lava.scores)),
            "steps": int(lava.extra["lava_steps"]), "seconds": float(lava.extra["seconds"]),
            "latency_steps": int(lava.extra["latency_steps"]),
            "alignment_delay_lines": {str(k): v for k, v in lava.extra["delay_lines"].items()},
            "gate_phases": dict(lava.extra["gate_phases"]),
            "processes": int(lava.extra.get("processes", 0)),
            "layers": layers, "gate_stages": stages, "all_layers_identical": _all_identical(layers, stages)}
