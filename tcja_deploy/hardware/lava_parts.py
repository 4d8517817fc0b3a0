"""The Lava check in parts: each trunk segment and each gate alone on Lava's simulator, fed with the emulator's
record of its input and compared with the emulator's record of its output.

Why parts. In the whole-network run (:func:`tcja_deploy.hardware.lava_sim.run_lava`) every process runs every Lava
step, but a segment works only in the windows in which a sample passes through it; the rest of the run its
``Conv`` models convolve zeros at full cost (Lava's Python ``Conv`` runs one scipy ``convolve2d`` per channel pair
and step, whatever the input). One dvs128_gesture sample takes 86 Lava steps, of which its first segment, almost
all of the simulator's work, is busy in 28. Alone, each part runs only its own steps.

Why the parts check the whole. Let the parts in graph order be P_0 … P_m: P_0's input is the network's input
payload, the input of P_j (j > 0) is an output of parts before it. If every P_j, given the emulator's record of its
input, sends the emulator's record of its output on every step checked, then by induction over j the whole network,
given the real input, sends the emulator's outputs on those steps. What the parts do not exercise is the wiring
between them (port layouts, WHC ↔ CHW); the whole-network run does, and the tests run both on one deploy.

Parts (each built with the same functions as the whole network, :mod:`lava_sim`):

- ``segment k``: a ``RingBuffer`` sending the input payload (k = 0) or gate k − 1's recorded payloads, sample 0,
  step 0 at Lava step 1 → the NetX network of ``segment_<k>.net``; its layers are recorded;
- ``gate k``: ``RingBuffer``\\ s of the squeezed layer's and the gated layer's recorded spikes (at Lava steps 1 and
  1 + the hops between them, as in the network) → the gate (neuro-core sub-network or host process); its output
  and, on neuro cores, every stage are recorded.

:func:`run_parts` runs the parts cheapest first (by :func:`lava_sim.estimate_seconds`), each within an equal share
of what is left of the budget, so a part that finishes early leaves its time to the costlier ones.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import torch

from tcja_deploy.conversion import graph as g
from tcja_deploy.conversion.deploy_dir import Deploy
from tcja_deploy.conversion.execute import infer_shapes
from tcja_deploy.conversion.fixed_point import input_payload
from tcja_deploy.conversion.layers import gate_latency
from tcja_deploy.hardware import lava_sim as S
from tcja_deploy.hardware.lava_runtime import import_lava_runtime

#: Lava processes of a neuro-core gate, for the estimate made before a gate part is built (about 21, plus the clock).
GATE_PROCESSES = 22


@dataclass
class Part:
    """One part of the check: ``kind`` ``"segment"`` or ``"gate"``, its index in the deploy's segments / gates,
    the layers it records (synapse node names as in ``layer_plan``; a gate's node name) and its Lava steps for
    ``samples`` samples."""

    kind: str
    index: int
    layers: list[str]
    steps: int
    samples: int
    estimated_s: float = 0.0

    @property
    def name(self) -> str:
        return f"{self.kind} {self.index}"


@dataclass
class PartRun:
    """What one part's run recorded: ``recorded`` {probe: [T, n, ...]} for the n samples it completed, ``stages``
    {gate: {stage: [n·T, ...]}}, ``partial`` {probe: [≤ T, ...]} when not even sample 0 finished."""

    part: Part
    recorded: dict = field(default_factory=dict)
    stages: dict = field(default_factory=dict)
    partial: dict = field(default_factory=dict)
    samples: int = 0
    steps: int = 0
    seconds: float = 0.0
    processes: int = 0
    stopped_by_budget: bool = False


def _sources(graph: g.Graph, gate: dict) -> tuple[str, str, int]:
    """(squeezed layer, gated layer, hops from the first to the second) of a gate."""
    names = graph.names
    x_src = names[names.index(gate["node"]) - 1]
    s_src = gate.get("squeeze_from") or x_src
    hops = sum(1 for n in names[names.index(s_src) + 1: names.index(x_src) + 1] if graph.nodes[n].category == "synapse")
    return s_src, x_src, hops


def plan_parts(deploy: Deploy, n: int) -> list[Part]:
    """The parts of ``deploy`` for n samples, in graph order, with their Lava steps and prior estimates."""
    graph, T = deploy.graph, int(deploy.graph.meta["T"])
    parts: list[Part] = []
    for k, seg in enumerate(deploy.segments):
        steps = 1 + len(seg["layers"]) + n * T - 1  # the last layer's lag (1 + hops) + n·T − 1
        est = S.estimate_seconds(graph, steps, 1 + 3 * len(seg["layers"]), seg["layers"])
        parts.append(Part("segment", k, list(seg["layers"]), steps, n, est))
        if k < len(deploy.gates):
            gate = deploy.gates[k]
            _, _, hops = _sources(graph, gate)
            steps = 1 + hops + gate_latency(graph, gate["node"]) + n * T - 1
            est = S.estimate_seconds(graph, steps, GATE_PROCESSES, layers=[])  # no Conv process
            parts.append(Part("gate", k, [gate["node"]], steps, n, est))
    return parts


def _build_segment(b: S._Builder, part: Part, inputs: np.ndarray, tag: str):
    """Segment ``part.index`` fed with ``inputs`` [T, n, ...] (payloads) from Lava step 1; returns the source."""
    from lava.proc.io.source import RingBuffer

    deploy, graph, T = b.deploy, b.graph, b.T
    k = part.index
    seg = deploy.segments[k]
    bits = (graph.nodes[graph.names[0]].payload_bits if isinstance(graph.nodes[graph.names[0]], g.QInput) else 32) \
        if k == 0 else deploy.gates[k - 1]["payload_bits"]
    seq = inputs.transpose(1, 0, *range(2, inputs.ndim)).reshape(part.samples * T, *inputs.shape[2:])
    if isinstance(graph.nodes[seg["nodes"][0]], g.Flatten):
        seq = seq.reshape(part.samples * T, -1)
    src = RingBuffer(data=S.source_data(seq, 1, part.steps, tag))
    b.keep.append(src)
    net_in, layer_ports = S._segment(b, seg, k, tag, 1, bits)
    src.s_out.connect(net_in)
    for j, (syn, _neuron, port, shape) in enumerate(layer_ports):
        b.probe(syn, port, 2 + j, shape, part.steps, whc=len(shape) == 3)
    return src, 1 + len(layer_ports)


def _build_gate(b: S._Builder, part: Part, outputs: dict, n: int, tag: str):
    """Gate ``part.index`` fed with the recorded spikes of its squeezed and gated layers; returns the source."""
    from lava.proc.io.source import RingBuffer

    graph, T = b.graph, b.T
    gate = b.deploy.gates[part.index]
    s_src, x_src, hops = _sources(graph, gate)
    shapes = infer_shapes(graph)
    lags = {s_src: 1, x_src: 1 + hops}
    ports = {}
    for name, lag in lags.items():
        rec = _integers(outputs[name][:, :n], tag)
        seq = rec.transpose(1, 0, *range(2, rec.ndim)).reshape(n * T, *rec.shape[2:])
        src = RingBuffer(data=S.source_data(seq, lag, part.steps, tag))
        b.keep.append(src)
        ports[name] = src.s_out  # WHC for a [C, H, W] layer, like a NetX layer's port
    x_shape = tuple(shapes[x_src])
    seg_layers = {s_src: (ports[s_src], tuple(shapes[s_src]))}
    if gate.get("placement") == "neurocore":
        out = S._neurocore_gate(b, graph, gate, ports[x_src], x_shape, seg_layers, lags, part.steps)
    else:
        out = S._gate(b, graph, gate, ports[x_src], x_shape, seg_layers, tag, (lags[x_src] - 1) % T)
    lag_out = lags[x_src] + gate_latency(graph, gate["node"])
    b.probe(gate["node"], out, lag_out, tuple(gate["x_shape"]), part.steps, whc=False)
    return src, lag_out  # any source starts the run: both feed the gate


def _integers(a, tag: str) -> np.ndarray:
    a = a.numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
    return np.rint(a).astype(np.int64) if tag == "fixed_pt" else a.astype(np.float64)


def run_part(deploy: Deploy, part: Part, x: torch.Tensor, outputs: dict, tag: str,
             budget_s: Optional[float] = None, progress: bool = False) -> PartRun:
    """Run one part on Lava for the n = ``part.samples`` samples of x [T, n, ...] (the network input) and the
    emulator's records ``outputs`` {node: [T, ≥ n, ...]} (``execute.run_graph(record=True)``)."""
    import_lava_runtime()
    b = S._Builder(deploy, tag)
    n = part.samples
    if part.kind == "segment":
        if part.index == 0:
            in_node = deploy.graph.nodes[deploy.graph.names[0]]
            inputs = (input_payload(x[:, :n], in_node).numpy() if isinstance(in_node, g.QInput)
                      else x[:, :n].numpy().astype(np.float64))
        else:
            inputs = _integers(outputs[deploy.gates[part.index - 1]["node"]][:, :n], tag)
        src, max_lag = _build_segment(b, part, inputs, tag)
    else:
        src, max_lag = _build_gate(b, part, outputs, n, tag)
    t0 = time.perf_counter()
    sim = S.simulate(b, src, S.sim_config(tag), part.steps, n, b.T, max_lag, tag, budget_s=budget_s,
                     progress=progress, desc=f"Lava {part.name}")
    return PartRun(part, sim["recorded"], sim["stages"], sim["partial"], sim["samples"], sim["done"],
                   time.perf_counter() - t0, len(b.keep), sim["stopped"])


def run_parts(deploy: Deploy, x: torch.Tensor, outputs: dict, tag: str, budget_s: Optional[float] = None,
              log: Optional[Callable[[str], None]] = None, progress: bool = False) -> list[PartRun]:
    """Every part of ``deploy`` for the samples of x [T, n, ...], cheapest first, each within an equal share of
    what is left of ``budget_s`` (None: no limit); returns the runs in graph order."""
    n = int(x.shape[1])
    parts = plan_parts(deploy, n)
    if log is not None:
        total = sum(p.estimated_s for p in parts)
        log(f"Lava check in {len(parts)} parts on recorded inputs: {n} sample(s), "
            f"{sum(p.steps for p in parts)} part-steps; estimated {total:,.0f} s (prior: {S.describe_prior()})"
            + ("" if budget_s is None else f", budget {budget_s:,.0f} s"))
    start = time.perf_counter()
    runs: dict[str, PartRun] = {}
    order = sorted(parts, key=lambda p: p.estimated_s)
    for i, part in enumerate(order):
        share = None
        if budget_s is not None:
            share = max(0.0, budget_s - (time.perf_counter() - start)) / (len(order) - i)
        runs[part.name] = run_part(deploy, part, x, outputs, tag, share, progress)
        if log is not None:
            r = runs[part.name]
            log(f"  {part.name}: {r.samples} of {n} sample(s), {r.steps} of {part.steps} steps, {r.seconds:.1f} s "
                f"(estimated {part.estimated_s:.0f} s, share {'∞' if share is None else f'{share:.0f} s'})")
    return [runs[p.name] for p in parts]
