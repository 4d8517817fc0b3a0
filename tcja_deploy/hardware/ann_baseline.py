"""The equivalent ANN: the same layers run once, densely, without time steps.

Counts per inference, per layer (they depend on the architecture only, not on activity):

- conv: MACs = output neurons × C_in × kh × kw (dense: zero weights and padded taps are computed, as
  a dense accelerator does and as the usual MAC counters count them); one activation per output;
- conv_transpose (weight [C_in, C_out, k, k]): MACs = input neurons × C_out × k × k (every input pixel
  scattered through every tap, the transposed conv's dense cost as MAC counters such as fvcore count it);
  ``macs_no_padding`` the (input, output) pairs whose output pixel lies inside the map, ``macs_nonzero``
  the layer's synapses (its Sparse matrix's entries); one activation per output;
- dense: MACs = out × in; one activation per output;
- the alternative counts of the same layers (profile.json's counting conventions): ``macs_no_padding``
  (taps that read padding left out, zero weights kept), ``macs_nonzero`` (padding taps and zero weights
  left out: the layer's synapses, what SynOps count per input event), and the T-step versions
  ``macs_x_steps`` = macs × T, ``macs_nonzero_x_steps`` = macs_nonzero × T (an ANN run at every one
  of the SNN's T steps; T = the layer's steps);
- pool (max): (k² − 1) compares per output;
- gate (TCJA at T = 1, the ANN has no time axis): the same arithmetic as
  :func:`~tcja_deploy.hardware.counters.gate_ops` with T = 1 and every pixel added in the squeeze
  and every output scaled by its gate.

For the memory-access term the ANN gets the favourable assumption of an ideal accelerator: every
weight is read once per inference (``weights``), every layer input read once (``inputs``) and every
output written once (``outputs``). Energy is charged with the ``cmos`` profile, in fp32
(:func:`tcja_deploy.hardware.energy.ann_cmos_energy`), in int8
(:func:`~tcja_deploy.hardware.energy.ann_int8_energy`) and the SNN papers' way
(:func:`~tcja_deploy.hardware.energy.ann_paper_energy`).
"""

from __future__ import annotations

import dataclasses

import math

import numpy as np

from tcja_deploy.hardware.activity import LayerActivity
from tcja_deploy.hardware.counters import conv_fanout_map, conv_transpose_fanout_map, gate_ops, layer_weight

#: ANN count names, per inference.
ANN_KEYS = ("macs", "compares", "activations", "weights", "inputs", "outputs",
            "gate_adds", "gate_macs", "gate_mults", "gate_lookups",
            "macs_no_padding", "macs_nonzero", "macs_x_steps", "macs_nonzero_x_steps")


def layer_steps(layer: LayerActivity) -> int:
    """T of a layer: the steps of its input arrays ([T, N, ...])."""
    return int(np.asarray(layer.input_spikes).shape[0])


def ann_layer_counts(layer: LayerActivity) -> dict[str, int]:
    """Dense operation counts of one layer of the equivalent ANN, per inference."""
    c = dict.fromkeys(ANN_KEYS, 0)
    outputs = int(math.prod(int(v) for v in layer.out_shape))
    c["outputs"] = outputs
    c["inputs"] = int(math.prod(int(v) for v in layer.in_shape))
    if layer.kind == "gate":
        if layer.gate is None:
            raise ValueError(f"gate layer {layer.name!r} lacks its gate dimensions")
        g = dataclasses.replace(layer.gate, T=1)
        pixels = g.C * g.H * g.W  # the squeezed map (unpooled if moved)
        c.update({k: int(v) for k, v in gate_ops(g, pixels, outputs).items()})
        C, k_tla, k_cla = g.C, g.kernel_tla, g.kernel_cla
        c["weights"] = C * C * k_tla + 1 * 1 * k_cla
        c["inputs"] = pixels
        return c
    w = layer_weight(layer)
    if layer.kind == "pool":
        k = int(w.shape[-1]) if w is not None else int(layer.stride)
        c["compares"] = outputs * (k * k - 1)
        return c
    if w is None:
        return c
    c["weights"] = int(w.size)  # dense: zeros are stored and multiplied too
    if layer.kind == "conv_transpose":
        _, C_out, kh, kw = w.shape
        in_shape, out_shape = tuple(int(v) for v in layer.in_shape), tuple(int(v) for v in layer.out_shape)
        c["macs"] = int(math.prod(in_shape)) * int(C_out) * int(kh) * int(kw)
        c["macs_no_padding"] = int(conv_transpose_fanout_map(np.ones(w.shape, dtype=np.float32), in_shape, out_shape,
                                                             layer.stride, layer.padding).sum())
        c["macs_nonzero"] = int(conv_transpose_fanout_map(w, in_shape, out_shape, layer.stride, layer.padding).sum())
    elif w.ndim == 4:
        _, C_in, kh, kw = w.shape
        c["macs"] = outputs * int(C_in) * int(kh) * int(kw)
        in_shape = tuple(int(v) for v in layer.in_shape)
        # Σ fan-out of an all-ones kernel = (input, output) pairs inside the map; of the real kernel = synapses.
        c["macs_no_padding"] = int(conv_fanout_map(np.ones(w.shape, dtype=np.float32), in_shape, layer.stride,
                                                   layer.padding).sum())
        c["macs_nonzero"] = int(conv_fanout_map(w, in_shape, layer.stride, layer.padding).sum())
    elif w.ndim == 2:
        c["macs"] = int(w.shape[0]) * int(w.shape[1])
        c["macs_no_padding"] = c["macs"]
        c["macs_nonzero"] = int(np.count_nonzero(w))
    c["activations"] = outputs
    T = layer_steps(layer)
    c["macs_x_steps"] = c["macs"] * T
    c["macs_nonzero_x_steps"] = c["macs_nonzero"] * T
    return c


def ann_counts(layers: list[LayerActivity]) -> tuple[list[dict[str, int]], dict[str, int]]:
    """(per-layer counts, totals) of the equivalent ANN."""
    per = [ann_layer_counts(l) for l in layers]
    total = {k: sum(p[k] for p in per) for k in ANN_KEYS}
    return per, total
