"""Bit-exact emulator of a converted network, in torch: scores a whole test set in seconds.

It runs the fixed-point graph (``q_*`` nodes of ``graph.json``) with the integer semantics of
:mod:`tcja_deploy.conversion.fixed_point` (Lava's ``fixed_pt`` models; exact rules in docs/FORMATS.md)
and records every layer's input and output events. It has no synaptic delays: layer outputs are
aligned in time (Lava's one-step delay per hop and the gate's window latency are shifted out by
:mod:`tcja_deploy.hardware.lava_sim`). :func:`emulate` returns a
:class:`~tcja_deploy.hardware.activity.NetworkActivity`.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from tcja_deploy.conversion import graph as g
from tcja_deploy.conversion.execute import (auto_batch_size, infer_shapes, predictions, reuse_freed_memory, run_graph,
                                           scores_of_graph)
from tcja_deploy.conversion.layers import latency_steps, layer_plan, payload_bits
from tcja_deploy.hardware.activity import NetworkActivity, as_events, layer_activities


def emulate(graph: g.Graph, x: torch.Tensor, labels: Optional[np.ndarray] = None, batch_size: Optional[int] = None,
            record: bool = True, backend: str = "emulator", device: str | torch.device = "cpu") -> NetworkActivity:
    """Run ``graph`` on inputs x [T, N, C, H, W] (float values; the q_input node quantizes them).

    Args:
        graph: a fixed-point graph (``q_*`` nodes) — or a float CUBA graph (then this is the float reference).
        labels: [N] true labels, or None.
        batch_size: samples per torch batch (None: as many as fit the emulator's memory budget,
            :func:`tcja_deploy.conversion.execute.auto_batch_size`).
        record: keep every layer's input and output spikes (memory: ~1 byte per neuron-step).
        device: torch device to compute on (integer-exact on any device: float64 sums, int64 states).

    Returns:
        NetworkActivity with scores [N, K] and, if ``record``, one LayerActivity per layer.
    """
    N = x.shape[1]
    labels = np.full(N, -1) if labels is None else np.asarray(labels)
    extra = {"latency_steps": latency_steps(graph), "graph_names": graph.names}
    T = int(graph.meta["T"])
    if not record:
        scores = scores_of_graph(graph, x, batch_size, device)
        return NetworkActivity(layers=[], scores=scores, labels=labels, steps=T, backend=backend, extra=extra)
    batch_size = batch_size or auto_batch_size(graph)
    reuse_freed_memory()
    plan = layer_plan(graph)
    quantized = graph.quantized
    in_bits = {layer.name: payload_bits(graph, layer.input_from) for layer in plan}
    out_bits = {layer.name: payload_bits(graph, layer.neuron) for layer in plan}
    scores: list[np.ndarray] = []
    ins: dict[str, np.ndarray] = {}
    outs: dict[str, np.ndarray] = {}
    for start in range(0, N, batch_size):
        xb = x[:, start:start + batch_size].to(device=device, dtype=torch.float64)
        score, recorded = run_graph(graph, xb, record=True)
        scores.append(score.cpu().numpy())
        stop = start + xb.shape[1]
        for layer in plan:  # written into whole-set arrays: no per-batch lists to concatenate (2× the memory)
            _put(ins, layer.name, as_events(recorded[layer.input_from], in_bits[layer.name], quantized), N,
                 start, stop)
            _put(outs, layer.name, as_events(recorded[layer.neuron], out_bits[layer.name], quantized), N,
                 start, stop)
        del recorded
    layers = layer_activities(graph, ins, outs) if N else []
    scores = np.concatenate(scores, 0) if scores else np.zeros((0, int(graph.meta.get("num_classes", 0))))
    return NetworkActivity(layers=layers, scores=scores, labels=labels, steps=T, backend=backend, extra=extra)


def _put(store: dict[str, np.ndarray], name: str, events: np.ndarray, N: int, start: int, stop: int) -> None:
    """Write one batch's events [T, n, ...] into ``store[name]`` [T, N, ...] at samples start:stop."""
    if name not in store:
        store[name] = np.empty((events.shape[0], N, *events.shape[2:]), dtype=events.dtype)
    store[name][:, start:stop] = events


#: Memory the recorded events of one profile chunk may take by default (bytes).
RECORD_MEMORY_BUDGET = 2 << 30


def recorded_bytes_per_sample(graph: g.Graph) -> int:
    """Bytes of the events :func:`emulate` records for one sample: each layer's input and output,
    [T, *shape], 1 byte a binary event, 4 a graded payload (:func:`~tcja_deploy.hardware.activity.as_events`)."""
    shapes = infer_shapes(graph)
    T = int(graph.meta["T"])
    total = 0
    for layer in layer_plan(graph):
        for node, bits in ((layer.input_from, payload_bits(graph, layer.input_from)),
                           (layer.neuron, payload_bits(graph, layer.neuron))):
            total += T * int(np.prod(shapes[node])) * (1 if bits == 0 else 4)
    return total


def record_chunk(graph: g.Graph, cap: int = 64, budget_bytes: int = RECORD_MEMORY_BUDGET) -> int:
    """Samples per recorded chunk so that its events stay within ``budget_bytes`` (at least 1, at most ``cap``)."""
    return int(max(1, min(cap, budget_bytes // max(1, recorded_bytes_per_sample(graph)))))


def accuracy(activity: NetworkActivity) -> float:
    """Fraction of samples whose predicted class is the label (``execute.predictions``: first maximum on ties)."""
    if len(activity.labels) == 0:
        return float("nan")
    return float(np.mean(predictions(activity.scores) == activity.labels))
