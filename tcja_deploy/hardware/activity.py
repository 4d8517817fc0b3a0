"""The activity of one run of a converted network: the interface between runners and counters.

Runners (the bit-exact emulator, the Lava simulator, Loihi 2) record each layer's input and output
events and hand them to :func:`layer_activities`, the one builder of :class:`LayerActivity`; the
counters (SynOps, neuron updates, energy) and the report consume the resulting :class:`NetworkActivity`.
SynOps are charged to the *receiving* layer: each input spike of layer L times its fan-out inside L's
weights.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Optional

import numpy as np

from tcja_deploy.conversion import graph as g
from tcja_deploy.conversion.execute import infer_shapes
from tcja_deploy.conversion.layers import Layer, layer_plan, payload_bits


@dataclass(frozen=True)
class GateGeometry:
    """What the counters need to know about a TCJA gate.

    Attributes:
        T: steps per window. C: channels. H, W: the squeezed map (the unpooled one when the gate moved past a
        max pool). kernel_tla, kernel_cla: the two 1-D kernels. mode: ``"window"`` | ``"streaming"``.
        squeeze_from: the layer (a name in the activity's layers) whose output the gate squeezes, or None
            when it squeezes its own input.
        placement: ``"neurocore"`` (standard Lava processes on neuro cores) | ``"host"`` (a host process; also
            every float gate).
        knots: sigmoid knots of a neuro-core gate (0 on the host).
    """

    T: int
    C: int
    H: int
    W: int
    kernel_tla: int
    kernel_cla: int
    mode: str
    squeeze_from: Optional[str] = None
    placement: str = "host"
    knots: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class LayerActivity:
    """One layer of the converted network and what it did.

    Attributes:
        name: the layer's name (its synapse node in graph.json, e.g. ``"conv0"``, or its gate node).
        kind: ``"conv"`` | ``"conv_transpose"`` | ``"dense"`` | ``"pool"`` (max pool as an OR conv) | ``"gate"``
            (TCJA gate).
        in_shape: per-step input shape, (C, H, W) or (F,).
        out_shape: per-step output shape.
        input_spikes: [T, N, *in_shape] input events (uint8 0/1, or graded payloads), as numpy.
        output_spikes: [T, N, *out_shape] output events of this layer's neurons.
        weight: synaptic weights: conv [C_out, C_in, kh, kw], conv_transpose [C_in, C_out, k, k] (torch's layout),
            dense [out, in]; None for a gate, and for a pool
            (its OR kernel is :func:`tcja_deploy.hardware.counters.pool_weight`).
        stride, padding: convolution geometry in pixels (conv and pool).
        input_payload_bits: 0 for binary input spikes, else the graded payload width.
        output_payload_bits: 0 for binary output spikes, else the graded payload width.
        gate: the gate's geometry, for a gate.
        latency_steps: time steps this layer adds between input and output (synaptic hop or gate window).
        gate_counts: [N, T, C] int64 spike counts the gate squeezes, for a gate.
        gate_params: the ``q_gate`` node's parameters, for a fixed-point gate (a neuro-core gate's sub-network
            is counted from them).
    """

    name: str
    kind: str
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    input_spikes: np.ndarray
    output_spikes: np.ndarray
    weight: Optional[np.ndarray] = None
    stride: int = 1
    padding: int = 0
    input_payload_bits: int = 0
    output_payload_bits: int = 0
    gate: Optional[GateGeometry] = None
    latency_steps: int = 1
    gate_counts: Optional[np.ndarray] = None
    gate_params: Optional[dict] = None


@dataclass
class NetworkActivity:
    """All layers of one batch of samples, in execution order, plus the decisions.

    Attributes:
        layers: per-layer activity, input-to-output order.
        scores: [N, K] class scores the readout computed.
        labels: [N] true labels (−1 where unknown).
        steps: time steps simulated per sample (includes the added latency of window gates).
        backend: ``"emulator"`` | ``"lava-sim"`` | ``"loihi2"``.
    """

    layers: list[LayerActivity]
    scores: np.ndarray
    labels: np.ndarray
    steps: int
    backend: str
    extra: dict = field(default_factory=dict)


def as_events(values, bits: int, quantized: bool) -> np.ndarray:
    """A recorded signal in its compact event dtype: binary spikes (``bits`` 0) as uint8 0/1, graded payloads
    as int32 codes (float32 values in a float graph). ``values``: numpy or torch, integer-valued."""
    if hasattr(values, "detach"):  # a torch tensor
        import torch

        if bits == 0:
            return values.to(torch.uint8).cpu().numpy()
        return values.to(torch.int32 if quantized else torch.float32).cpu().numpy()
    a = np.asarray(values)
    if bits == 0:
        return (a != 0).astype(np.uint8)
    return a.astype(np.int32 if quantized else np.float32)


def gate_geometry(graph: g.Graph, layer: Layer, shapes: dict) -> GateGeometry:
    """The geometry of gate layer ``layer`` of ``graph``."""
    node = graph.nodes[layer.neuron]
    src = node.squeeze_from or layer.input_from
    c, h, w = shapes[src]
    placement = getattr(node, "placement", "host")
    if isinstance(node, g.QGate) and placement == "neurocore":
        w_tla, w_cla = node.params["q_tla"], node.params["q_cla"]
        knots = int(np.asarray(node.params["knot"]).size)
    else:
        params = node.params if isinstance(node, g.QGate) else {"w_tla": node.w_tla, "w_cla": node.w_cla}
        w_tla, w_cla, knots = params["w_tla"], params["w_cla"], 0
    return GateGeometry(T=int(graph.meta["T"]), C=int(c), H=int(h), W=int(w),
                        kernel_tla=int(np.asarray(w_tla).shape[-1]), kernel_cla=int(np.asarray(w_cla).shape[-1]),
                        mode=str(node.mode), squeeze_from=layer.squeeze_layer, placement=placement, knots=knots)


def layer_activities(graph: g.Graph, inputs: dict[str, np.ndarray], outputs: dict[str, np.ndarray]
                     ) -> list[LayerActivity]:
    """One :class:`LayerActivity` per layer of ``graph`` from the events a runner recorded.

    Args:
        inputs, outputs: layer name → [T, N, *shape] events (:func:`as_events`): the layer's input (the
            output of its ``input_from`` node) and its output.
    """
    shapes = infer_shapes(graph)
    layers = []
    for layer in layer_plan(graph):
        kw: dict = {}
        if layer.kind == "gate":
            node = graph.nodes[layer.neuron]
            kw["gate"] = gate_geometry(graph, layer, shapes)
            kw["output_payload_bits"] = int(getattr(node, "payload_bits", 0))
            src = outputs[layer.squeeze_layer] if layer.squeeze_layer else inputs[layer.name]
            kw["gate_counts"] = np.asarray(src).reshape(src.shape[0], src.shape[1], src.shape[2], -1) \
                .sum(axis=3, dtype=np.int64).transpose(1, 0, 2)
            if isinstance(node, g.QGate):
                kw["gate_params"] = node.params
        else:
            syn = graph.nodes[layer.synapse]
            kw["weight"] = None if layer.kind == "pool" else np.asarray(syn.weight)
            kw["stride"], kw["padding"] = int(getattr(syn, "stride", 1)), int(getattr(syn, "padding", 0))
        layers.append(LayerActivity(name=layer.name, kind=layer.kind, in_shape=tuple(shapes[layer.input_from]),
                                    out_shape=tuple(shapes[layer.neuron]), input_spikes=inputs[layer.name],
                                    output_spikes=outputs[layer.name],
                                    input_payload_bits=payload_bits(graph, layer.input_from),
                                    latency_steps=layer.latency_steps, **kw))
    return layers
