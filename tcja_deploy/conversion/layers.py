"""The layers of a converted graph and their timing: what every runner and counter shares.

A *layer* is what a neuromorphic core runs: a synapse with the neuron after it (``conv``, ``dense``, or
``pool``: a max pool as an OR conv), or a gate. :func:`layer_plan` lists them; :func:`plan_timing`
gives the step at which each layer's output leaves it on Lava's clock (one step per synaptic hop, T per
window gate), which the deploy directory records and the Lava runner shifts out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from tcja_deploy.conversion import graph as g
from tcja_deploy.conversion import neurocore_gate
from tcja_deploy.conversion.graph import ConversionError


@dataclass(frozen=True)
class Layer:
    """One layer of a converted graph.

    Attributes:
        name: the synapse node's name (``conv0``), or the gate node's.
        kind: ``"conv"`` | ``"conv_transpose"`` (a transposed conv: one Lava ``Sparse``) | ``"dense"`` | ``"pool"`` |
            ``"gate"``.
        synapse: the synapse node, None for a gate.
        neuron: the node whose output is the layer's output (the neuron after the synapse, or the gate).
        input_from: the node whose output feeds the layer (flattens are nodes too).
        latency_steps: steps the layer adds between input and output (1 per synaptic hop; a gate:
            :func:`gate_latency`).
        squeeze_layer: for a gate that squeezes another layer's output (``squeeze_from``), that layer's
            name; None otherwise.
    """

    name: str
    kind: str
    synapse: Optional[str]
    neuron: str
    input_from: str
    latency_steps: int
    squeeze_layer: Optional[str] = None


def layer_plan(graph: g.Graph) -> list[Layer]:
    """The layers of a (float-CUBA or fixed-point) graph, in execution order."""
    names = graph.names
    plan: list[Layer] = []
    by_neuron: dict[str, str] = {}
    for i, (name, node) in enumerate(graph.items()):
        if node.category == "synapse":
            if i + 1 >= len(names) or graph.nodes[names[i + 1]].category != "neuron":
                raise ConversionError(f"node {name!r} ({node.kind}) is not followed by a neuron")
            kind = "pool" if getattr(node, "role", "conv") == "pool" else (
                "conv_transpose" if isinstance(node, (g.ConvTranspose2d, g.QConvTranspose2d)) else
                "conv" if node.weight.ndim == 4 else "dense")
            plan.append(Layer(name, kind, name, names[i + 1], names[i - 1], 1))
            by_neuron[names[i + 1]] = name
        elif node.category == "gate":
            squeeze = None
            if node.squeeze_from is not None:
                if node.squeeze_from not in by_neuron:
                    raise ConversionError(f"node {name!r} ({node.kind}): squeeze_from {node.squeeze_from!r} is not "
                                          f"the output of an earlier layer")
                squeeze = by_neuron[node.squeeze_from]
            plan.append(Layer(name, "gate", None, name, names[i - 1], gate_latency(graph, name), squeeze))
    return plan


def squeeze_skew(graph: g.Graph, gate_name: str) -> int:
    """Synaptic hops between the spikes a gate squeezes and the spikes it scales (1 behind an OR max pool)."""
    node, names = graph.nodes[gate_name], graph.names
    if node.squeeze_from is None:
        return 0
    lo, hi = names.index(node.squeeze_from), names.index(gate_name)
    return sum(1 for n in names[lo + 1:hi] if graph.nodes[n].category == "synapse")


def gate_latency(graph: g.Graph, gate_name: str) -> int:
    """Steps a gate adds on Lava's clock: host process T (window) or 0 (streaming); neuro-core sub-network
    :func:`tcja_deploy.conversion.neurocore_gate.latency_steps`."""
    node = graph.nodes[gate_name]
    T = int(graph.meta.get("T", 1))
    if getattr(node, "placement", "host") == "neurocore":
        return neurocore_gate.latency_steps(node.mode, T, squeeze_skew(graph, gate_name))
    return T if node.mode == "window" else 0


def latency_steps(graph: g.Graph) -> int:
    """Time steps from an input step to the readout of its effect: one per synaptic hop, T per window gate."""
    return sum(layer.latency_steps for layer in layer_plan(graph))


def payload_bits(graph: g.Graph, name: str) -> int:
    """Payload bits of the signal leaving node ``name`` (through flattens and dropouts): 0 = binary spikes,
    ``graph.FLOAT_BITS`` = float values, else graded payload bits."""
    names = graph.names
    i = names.index(name)
    while graph.nodes[names[i]].emitted_bits() is None:
        i -= 1
    return int(graph.nodes[names[i]].emitted_bits())


def plan_timing(graph: g.Graph, segs: list[dict], gates: list[dict]) -> dict:
    """Lava's clock for a deploy directory, from the hop structure alone: the lag of every layer output
    (1-based Lava step at which sample 0, step 0 leaves it) and each gate's window phase (its windows
    start at the Lava steps ≡ 1 + phase mod T, i.e. where the first step of a sample reaches it).

    Returns ``{"pad": 0, "lags": {node: step}, "delays": {}, "phases": {gate node: phase}}`` (``pad`` and
    ``delays`` are kept for readers of older deploy directories, which aligned windows with empty input steps
    and identity delay lines instead of phases).
    """
    T = int(graph.meta["T"])
    names = graph.names
    lags: dict[str, int] = {}
    phases: dict[str, int] = {}
    lag_in = 1  # the source sends sample 0, step 0 at Lava step 1
    lags[names[0]] = lag_in
    for k, seg in enumerate(segs):
        if k > 0:
            lag_in = lags[gates[k - 1]["node"]]
        hop = 0
        for n in seg["nodes"]:
            category = graph.nodes[n].category
            if category == "synapse":
                hop += 1
            if category in ("synapse", "neuron"):
                lags[n] = lag_in + hop  # a synapse's "output" is its neuron's spikes
        if k < len(gates):
            gate = gates[k]
            g_in = lag_in + hop
            phases[gate["node"]] = (g_in - 1) % T
            lags[gate["node"]] = g_in + gate_latency(graph, gate["node"])
    return {"pad": 0, "lags": lags, "delays": {}, "phases": phases}
