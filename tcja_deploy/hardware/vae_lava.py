"""The spiking VAE's fixed-point decoder on Lava's simulator, and its check against the emulator.

The network is built from lava-nc's standard processes only (docs/DESIGN.md §13):

- the latent spikes z [T, N, L] come from a ``RingBuffer``, the N samples back to back (one per T steps);
- each synapse (``q_linear`` or ``q_conv_transpose2d``) is one ``Sparse`` holding its integer matrix
  (:func:`tcja_deploy.conversion.transposed.transposed_matrix` for a transposed conv), graded when its input is a
  gate's payload;
- each ``q_cuba_lif`` is a ``LIFReset`` (du = i_decay − 1, as NetX writes it: Lava adds 1 back; dv = v_decay;
  bias_exp 6; reset every T steps where the first step of a sample reaches it); neurons are flat vectors in
  C-major order, the order of the Sparse matrices' rows and columns;
- each neuro-core ``q_gate`` is the sub-network of :func:`tcja_deploy.hardware.lava_gate.build_gate`.

Every LIF layer and every gate output is recorded with an ``Extractor``. Each hop delays by one Lava step and a
gate by its latency; :func:`decoder_lags` knows them, so the records are cut into windows aligned exactly like
the emulator's (``execute.run_graph``) and compared value for value by :func:`compare_decoder`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from tcja_deploy.conversion import graph as g
from tcja_deploy.conversion import neurocore_gate as NC
from tcja_deploy.conversion.execute import infer_shapes, run_graph
from tcja_deploy.conversion.vae_deploy import synapse_matrix
from tcja_deploy.conversion.vae_graph import chip_layers
from tcja_deploy.errors import UserError
from tcja_deploy.hardware.lava_runtime import import_lava_runtime


def decoder_lags(graph: g.Graph) -> dict[str, int]:
    """1-based Lava step at which sample 0, step 0 leaves each node (input: 1; +1 per synapse hop; a gate adds
    :func:`neurocore_gate.latency_steps`). Reshapes take no step; the host readout is not on the chip."""
    T = int(graph.meta["T"])
    lags, lag = {}, 1
    for name, node in graph.items():
        if node.category == "synapse":
            lag += 1
        elif isinstance(node, g.QGate):
            lag += NC.latency_steps(node.mode, T, 0)
        lags[name] = lag
    return lags


def _sparse_weights(node: g.Node, in_shape: tuple, matrix=None) -> "object":
    """The synapse's integer matrix [out_neurons, in_neurons] (csr, int32) for Lava's Sparse: ``matrix`` (read
    from a deploy directory's synapses.npz) or the one its weights define
    (:func:`tcja_deploy.conversion.vae_deploy.synapse_matrix`)."""
    m = synapse_matrix(node, in_shape) if matrix is None else matrix.astype(np.int32)
    m.sort_indices()
    if m.nnz and m.data.max() <= 0 and m.data.min() < -255:
        # Lava clips one-sign inhibitory weights to [−255, 0] (lava/utils/weightutils.py clip_weights)
        raise UserError(f"{node.kind} node: all-negative weights reaching −256 do not fit Lava's inhibitory range")
    return m


@dataclass
class LavaDecoderRun:
    """What :func:`run_decoder_lava` recorded.

    Attributes:
        outputs: layer name → [T, N, *per-step shape] int64 (spikes 0/1, gate payload codes), aligned like the
            emulator's outputs.
        lags: node → Lava step of sample 0, step 0.
        steps, seconds, processes: Lava steps run, wall time, processes built.
    """

    outputs: dict[str, np.ndarray]
    lags: dict[str, int]
    steps: int
    seconds: float
    processes: int
    extra: dict = field(default_factory=dict)


def run_decoder_lava(graph: g.Graph, z: torch.Tensor, matrices: dict | None = None) -> LavaDecoderRun:
    """Run the fixed-point decoder ``graph`` (:func:`tcja_deploy.conversion.vae_graph.quantize_decoder`) on latent
    spikes z [T, N, L] with Lava's bit-accurate CPU models (``fixed_pt``); ``matrices``: {synapse node: csr
    matrix} to load into the Sparse processes (a deploy directory's synapses.npz), None: built from the graph."""
    import_lava_runtime()
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.extractor import Extractor, PyLoihiExtractorModel
    from lava.proc.io.source import RingBuffer
    from lava.proc.lif.process import LIFReset
    from lava.proc.sparse.process import Sparse

    from tcja_deploy.hardware import lava_gate

    if not graph.quantized:
        raise UserError("the Lava decoder runner takes a fixed-point (q_*) decoder graph")
    T = int(graph.meta["T"])
    if z.dim() != 3 or z.shape[0] != T:
        raise UserError(f"latents must be [T={T}, N, L], got {list(z.shape)}")
    N = int(z.shape[1])
    shapes = infer_shapes(graph)
    lags = decoder_lags(graph)
    chip = [n for n, node in graph.items() if node.category != "host"]
    steps = max(lags[n] for n in chip) + N * T - 1
    names = graph.names
    in_node = graph.nodes[names[0]]
    if not isinstance(in_node, g.QInput) or in_node.payload_bits != 0:
        raise UserError("the decoder's input must be binary latent spikes (q_input with 0 payload bits)")
    spikes = (z.to(torch.float64) > 0.5).numpy().astype(np.int32)  # [T, N, L]
    data = np.zeros((spikes.shape[2], steps), dtype=np.int32)
    data[:, : N * T] = spikes.transpose(2, 1, 0).reshape(spikes.shape[2], N * T)  # column n·T + t
    src = RingBuffer(data=data)
    keep: list = [src]
    probes: list[tuple[str, object, tuple]] = []
    clock = None
    port, bits, prev_shape = src.s_out, 0, tuple(in_node.shape)  # flat C-major port of the current signal
    neuron_ports: dict[str, tuple] = {}
    i = 1
    while i < len(names):
        name, node = names[i], graph.nodes[names[i]]
        if node.category == "synapse":
            neuron_name, neuron = names[i + 1], graph.nodes[names[i + 1]]
            if not isinstance(neuron, g.QCubaLIF):
                raise UserError(f"node {name!r} is not followed by a q_cuba_lif neuron")
            if neuron.i_decay < 1:
                raise UserError(f"node {neuron_name!r}: i_decay 0 has no Lava register value (du = i_decay − 1)")
            w = _sparse_weights(node, prev_shape, None if matrices is None else matrices[name])
            syn = Sparse(weights=w, num_message_bits=bits)
            out_shape = tuple(shapes[neuron_name])
            n_out = int(np.prod(out_shape))
            per_channel = n_out // out_shape[0]
            bias = 0 if neuron.bias_mant is None else np.repeat(np.asarray(neuron.bias_mant, np.int64), per_channel)
            lif = LIFReset(shape=(n_out,), du=int(neuron.i_decay) - 1, dv=int(neuron.v_decay), vth=int(neuron.vth_mant),
                           bias_mant=bias, bias_exp=6, reset_interval=T, reset_offset=lags[neuron_name] % T)
            port.connect(syn.s_in)
            syn.a_out.connect(lif.a_in)
            keep += [syn, lif]
            port, bits, prev_shape = lif.s_out, 0, out_shape
            neuron_ports[neuron_name] = (lif.s_out, out_shape)
            probes.append((neuron_name, lif.s_out, out_shape))
            i += 2
        elif isinstance(node, g.QGate):
            if node.placement != "neurocore":
                raise UserError(f"node {name!r}: the decoder runner builds neuro-core gates only")
            if node.squeeze_from is not None:
                raise UserError(f"node {name!r}: a gate that squeezes another layer is not a decoder gate")
            if clock is None:
                clock = lava_gate.PhaseClock(T)
                keep.append(clock.lif)
            ng = NC.NeurocoreGate.from_arrays(node.params)
            src_name = names[i - 1]
            shape = tuple(shapes[name])
            net = lava_gate.build_gate(ng, port, shape, port, shape, ls=lags[src_name], lx=lags[src_name], clock=clock)
            keep += net.processes
            if net.probes["out"][1] != lags[name]:
                raise AssertionError(f"gate {name!r} leaves at step {net.probes['out'][1]}, expected {lags[name]}")
            port, bits = net.out_port.flatten(), int(node.payload_bits)
            probes.append((name, port, shape))
            i += 1
        elif isinstance(node, (g.Unflatten, g.Flatten)):
            prev_shape = tuple(shapes[name])  # flat C-major neurons either way: nothing to build
            i += 1
        elif node.category == "host":
            break
        else:
            raise UserError(f"node {name!r} ({node.kind}) has no place in the decoder runner")
    extractors = []
    for name, p, shape in probes:
        ext = Extractor(shape=(int(np.prod(shape)),), buffer_size=steps + 1)
        p.connect(ext.in_port)
        keep.append(ext)
        extractors.append((name, ext, shape))
    cfg = Loihi2SimCfg(select_tag="fixed_pt", exception_proc_model_map={Extractor: PyLoihiExtractorModel})
    start = time.perf_counter()
    try:
        src.run(condition=RunSteps(num_steps=steps), run_cfg=cfg)
        raw = {name: np.stack([ext.receive() for _ in range(steps)]) for name, ext, _ in extractors}
    finally:
        try:
            src.stop()
        except Exception:  # never started: keep the original error
            pass
    seconds = time.perf_counter() - start
    outputs = {}
    for name, _, shape in extractors:
        first = lags[name] - 1  # row of Lava step lags[name]
        win = raw[name][first: first + N * T].astype(np.int64).reshape(N, T, *shape)
        outputs[name] = np.moveaxis(win, 0, 1)  # [T, N, ...]
    return LavaDecoderRun(outputs=outputs, lags=lags, steps=steps, seconds=seconds, processes=len(keep))


def compare_decoder(graph: g.Graph, z: torch.Tensor, lava: LavaDecoderRun | None = None) -> dict:
    """Emulator vs Lava on every on-chip decoder layer for latents z [T, N, L].

    Returns ``{"layers": {name: {"values": int, "equal": int, "identical": bool, "events": int}},
    "all_layers_identical": bool, "samples": N, "lava_steps", "lava_seconds", "processes"}``; ``events`` counts the
    emulator's nonzero outputs (so that a silent layer is visible)."""
    lava = lava or run_decoder_lava(graph, z)
    _, rec = run_graph(graph, z.to(torch.float64), record=True)
    layers = {}
    for name in chip_layers(graph):
        emu = rec[name].to(torch.float64).round().to(torch.int64).numpy()
        got = lava.outputs[name]
        equal = int((emu == got).sum()) if emu.shape == got.shape else 0
        layers[name] = {"values": int(emu.size), "equal": equal, "identical": bool(emu.shape == got.shape and
                                                                                    equal == emu.size),
                        "events": int(np.count_nonzero(emu))}
    return {"layers": layers, "all_layers_identical": all(v["identical"] for v in layers.values()),
            "samples": int(z.shape[1]), "lava_steps": lava.steps, "lava_seconds": lava.seconds,
            "processes": lava.processes}
