"""Trunk segments of a fixed-point graph → lava-dl slayer ``cuba`` blocks → slayer's own ``export_hdf5``.

A *segment* is a maximal run of synapse + CUBA layers (and flattens) between gates: segment 0 starts
at the network input, segment k > 0 at the output of gate k − 1. Each becomes one NetX HDF5 file
``segment_<k>.net`` that ``lava.lib.dl.netx.hdf5.Network(net_config=...)`` reads unchanged:

- ``layer/0`` is an ``input`` block carrying only the per-step input ``shape`` (C, H, W) (so NetX
  infers the first conv's input shape; it creates no process for it);
- then one slayer ``cuba.Conv`` / ``cuba.Dense`` block per layer (``cuba.Flatten`` where the graph
  flattens), weights = the integer weights / 64 so slayer's 8-bit quantizer returns them exactly,
  neuron ``threshold = vth_mant / 64``, decays ``i_decay / 4096``, ``v_decay / 4096``; a v-bias is
  attached as the neuron's ``norm.bias`` so slayer writes the ``bias`` dataset NetX reads.

NetX creates processes for conv/dense only; the graded input of a segment (event counts, or the
gate's payload codes) is declared with ``Network(input_message_bits=...)`` (see ``graph.json``
``segments[k].input_payload_bits``).
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Optional

import h5py
import numpy as np
import torch
from torch import nn

from tcja_deploy.conversion import graph as g
from tcja_deploy.conversion.execute import infer_shapes, input_shapes
from tcja_deploy.conversion.graph import ConversionError
from tcja_deploy.conversion.loihi2 import DECAY_UNITY, WEIGHT_SCALE


def segments(graph: g.Graph) -> list[dict]:
    """The trunk segments of a fixed-point (or float CUBA) graph, in order; ``file`` is None for float ones.

    Each: ``{"index", "file", "input_from", "input_shape", "input_payload_bits", "nodes", "layers",
    "output_shape"}``: ``nodes`` are the graph nodes it holds, ``layers`` its synapse nodes (one NetX
    block each), ``input_from`` the node feeding it (the ``q_input`` or a ``q_gate``). Segments stop before
    a host ``readout`` (and the flattens that feed it).
    """
    shapes = infer_shapes(graph)
    segs: list[dict] = []
    current: Optional[dict] = None
    prev_name, prev_bits = None, 0
    fixed = graph.quantized
    host = set(g.host_nodes(graph))
    has_readout = any(n.category == "host" for n in graph.nodes.values())
    for name, node in graph.items():
        if name in host and node.category != "vote":
            continue  # the host readout (and the flattens feeding it) runs after the chip, on recorded spikes
        if node.category == "input":
            prev_name, prev_bits = name, getattr(node, "payload_bits", None)
        elif node.category in ("synapse", "neuron", "reshape"):
            if current is None:
                current = {"index": len(segs), "file": f"segment_{len(segs)}.net" if fixed else None,
                           "input_from": prev_name,
                           "input_shape": list(shapes[prev_name]), "input_payload_bits": prev_bits,
                           "nodes": [], "layers": []}
                segs.append(current)
            current["nodes"].append(name)
            if node.category == "synapse":
                current["layers"].append(name)
            current["output_shape"] = list(shapes[name])
            prev_name = name
        elif node.category == "gate":
            if current is None:
                raise ConversionError(f"node {name!r} (gate) does not follow a trunk segment (two gates in a row, "
                                      f"or a gate on the input): not supported")
            current, prev_name, prev_bits = None, name, getattr(node, "payload_bits", None)
        elif node.category == "vote":
            if current is None and not has_readout:
                raise ConversionError(f"node {name!r} (vote) must read the spikes of a trunk segment, not a gate")
        else:
            raise ConversionError(f"node {name!r} ({node.kind}) cannot run in a trunk segment; the target's passes "
                                  f"rewrite it first")
    for seg in segs:
        if not seg["layers"]:
            raise ConversionError(f"segment {seg['index']} holds no synaptic layer ({seg['nodes']})")
    return segs


def gates(graph: g.Graph) -> list[dict]:
    """The gates of a fixed-point graph: ``{"index", "node", "file", "squeeze_from", "s_shape", "x_shape",
    "mode", "payload_bits", "placement"}``; ``s_shape`` is what the gate squeezes, ``x_shape`` what it scales;
    ``placement`` ``"neurocore"`` | ``"host"`` (fixed point), None for a float gate."""
    shapes, ins = infer_shapes(graph), input_shapes(graph)
    out = []
    for name, node in graph.items():
        if node.category == "gate":
            names = graph.names
            src = node.squeeze_from or names[names.index(name) - 1]
            out.append({"index": len(out), "node": name, "file": f"gate_{len(out)}.npz", "squeeze_from": src,
                        "s_shape": list(shapes[src]), "x_shape": list(ins[name]), "mode": node.mode,
                        "payload_bits": getattr(node, "payload_bits", None),
                        "placement": getattr(node, "placement", None)})
    return out


class VBias(nn.Module):
    """The neuron's v-bias as a slayer ``norm``: ``bias`` holds the integer bias mantissas (what slayer's
    export writes and NetX reads); in slayer's forward (states scaled by 2⁻¹²) it adds ``bias·2⁶ / 2¹²``."""

    def __init__(self, bias_mant: np.ndarray):
        super().__init__()
        self.register_buffer("bias", torch.as_tensor(np.asarray(bias_mant), dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.bias.reshape(1, -1, *([1] * (x.dim() - 2))) / WEIGHT_SCALE


def neuron_params(neuron: g.QCubaLIF) -> dict:
    """slayer ``cuba.Neuron`` parameters for a q_cuba_lif (exactly its integers after slayer's rounding)."""
    return {"threshold": neuron.vth_mant / WEIGHT_SCALE, "current_decay": neuron.i_decay / DECAY_UNITY,
            "voltage_decay": neuron.v_decay / DECAY_UNITY, "requires_grad": False}


def slayer_blocks(graph: g.Graph, seg: dict) -> list[nn.Module]:
    """The slayer blocks of one segment (the first one an ``input`` block carrying only the input shape)."""
    # lava-dl's import prints a Prophesee toolbox notice and torch's "No CUDA runtime is found"
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        from lava.lib.dl.slayer.block import cuba

    shapes, ins = infer_shapes(graph), input_shapes(graph)
    inp = cuba.Input(neuron_params=None)
    inp.input_shape = torch.Size(seg["input_shape"])
    blocks: list[nn.Module] = [inp]
    names = seg["nodes"]
    for i, name in enumerate(names):
        node = graph.nodes[name]
        if isinstance(node, g.Flatten):
            blk = cuba.Flatten()
            blk.shape = [int(np.prod(ins[name])), 1, 1]
            blocks.append(blk)
        elif isinstance(node, (g.QConv2d, g.QLinear)):
            neuron = graph.nodes[names[i + 1]]
            w = torch.as_tensor(np.asarray(node.weight), dtype=torch.float32) / WEIGHT_SCALE
            if isinstance(node, g.QConv2d):
                co, ci_g, k, _ = node.weight.shape
                blk = cuba.Conv(neuron_params(neuron), ci_g * node.groups, co, k, stride=node.stride,
                                padding=node.padding, groups=node.groups, weight_scale=1, delay_shift=False)
                blk.synapse.weight.data = w.reshape(co, ci_g, k, k, 1)
            else:
                out_f, in_f = node.weight.shape
                blk = cuba.Dense(neuron_params(neuron), in_f, out_f, weight_scale=1, delay_shift=False)
                blk.synapse.weight.data = w.reshape(out_f, in_f, 1, 1, 1)
            blk.neuron.shape = torch.Size(shapes[names[i + 1]])
            if neuron.bias_mant is not None:
                blk.neuron.norm = VBias(neuron.bias_mant)
            blocks.append(blk)
    return blocks


def export_segment(graph: g.Graph, seg: dict, path: Path) -> None:
    """Write one segment as a NetX HDF5 file (``layer/<i>`` groups, as slayer networks export)."""
    blocks = slayer_blocks(graph, seg)
    with h5py.File(path, "w") as f:
        layer = f.create_group("layer")
        for i, blk in enumerate(blocks):
            blk.export_hdf5(layer.create_group(f"{i}"))


def check_segment_file(graph: g.Graph, seg: dict, path: Path) -> None:
    """Read ``path`` back and check its integers equal the graph's (guards against slayer rounding)."""
    with h5py.File(path, "r") as f:
        layers = f["layer"]
        j = 1
        names = seg["nodes"]
        for i, name in enumerate(names):
            node = graph.nodes[name]
            if isinstance(node, g.Flatten):
                j += 1
                continue
            if not isinstance(node, (g.QConv2d, g.QLinear)):
                continue
            blk = layers[str(j)]
            neuron = graph.nodes[names[i + 1]]
            w = blk["weight"][()]
            if not np.array_equal(w.reshape(np.asarray(node.weight).shape), np.asarray(node.weight)):
                raise ConversionError(f"{path.name}: weights of {name!r} changed in slayer's export")
            if int(blk["neuron/vThMant"][()]) != neuron.vth_mant or int(blk["neuron/iDecay"][()]) != neuron.i_decay \
                    or int(blk["neuron/vDecay"][()]) != neuron.v_decay:
                raise ConversionError(f"{path.name}: neuron parameters of {names[i + 1]!r} changed in slayer's export")
            j += 1
