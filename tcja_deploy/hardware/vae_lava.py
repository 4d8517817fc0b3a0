"""The spiking VAE's fixed-point decoder and encoder on Lava's simulator, and their check against the emulator.

Either network is a chain (``conversion/vae_graph.py``) built from lava-nc's standard processes only
(docs/DESIGN.md §13):

- the input payloads come from a ``RingBuffer``, the N samples back to back (one per T steps): the decoder's
  latent spikes z [T, N, L] (binary) or the encoder's sign-split image (graded, the ``q_input``'s payload codes);
- each synapse (``q_linear``, ``q_conv_transpose2d`` or ``q_conv2d``) is one ``Sparse`` holding its integer matrix
  (:func:`tcja_deploy.conversion.transposed.transposed_matrix` for a transposed conv,
  :func:`~tcja_deploy.conversion.transposed.conv_matrix` for a conv), graded when its input is a graded payload;
- each ``q_cuba_lif`` is a ``LIFReset`` (du = i_decay − 1, as NetX writes it: Lava adds 1 back; dv = v_decay;
  bias_exp 6; reset every T steps where the first step of a sample reaches it); neurons are flat vectors in
  C-major order, the order of the Sparse matrices' rows and columns;
- each neuro-core ``q_gate`` is the sub-network of :func:`tcja_deploy.hardware.lava_gate.build_gate`.

Every LIF layer and every gate output is recorded with an ``Extractor``. Each hop delays by one Lava step and a
gate by its latency; :func:`chain_lags` knows them, so the records are cut into windows aligned exactly like
the emulator's (``execute.run_graph``) and compared value for value by :func:`compare_chain`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from tcja_deploy.conversion import graph as g
from tcja_deploy.conversion import fixed_point as Q
from tcja_deploy.conversion import neurocore_gate as NC
from tcja_deploy.conversion.execute import infer_shapes, run_graph
from tcja_deploy.conversion.vae_deploy import synapse_matrix
from tcja_deploy.conversion.vae_graph import chip_layers
from tcja_deploy.errors import UserError
from tcja_deploy.hardware.lava_runtime import import_lava_runtime


def chain_lags(graph: g.Graph) -> dict[str, int]:
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
class LavaChainRun:
    """What :func:`run_chain_lava` recorded.

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


def run_chain_lava(graph: g.Graph, x: torch.Tensor, matrices: dict | None = None) -> LavaChainRun:
    """Run a fixed-point chain ``graph`` (the decoder of :func:`tcja_deploy.conversion.vae_graph.quantize_decoder`
    or the encoder of :func:`~tcja_deploy.conversion.vae_graph.quantize_encoder`) on its input x [T, N, *input
    shape] (latent spikes z [T, N, L], or :func:`~tcja_deploy.conversion.vae_graph.encoder_input`; the ``q_input``
    node turns it into payload codes as the emulator does) with Lava's bit-accurate CPU models (``fixed_pt``);
    ``matrices``: {synapse node: csr matrix} to load into the Sparse processes (a deploy directory's
    synapses.npz), None: built from the graph."""
    import_lava_runtime()
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.extractor import Extractor, PyLoihiExtractorModel
    from lava.proc.io.source import RingBuffer
    from lava.proc.lif.process import LIFReset
    from lava.proc.sparse.process import Sparse

    from tcja_deploy.hardware import lava_gate

    if not graph.quantized:
        raise UserError("the Lava runner takes a fixed-point (q_*) graph")
    T = int(graph.meta["T"])
    names = graph.names
    in_node = graph.nodes[names[0]]
    if not isinstance(in_node, g.QInput):
        raise UserError("the graph's input must be a q_input node")
    if x.dim() != 2 + len(in_node.shape) or x.shape[0] != T or tuple(x.shape[2:]) != tuple(in_node.shape):
        raise UserError(f"inputs must be [T={T}, N, {', '.join(map(str, in_node.shape))}], got {list(x.shape)}")
    N = int(x.shape[1])
    shapes = infer_shapes(graph)
    lags = chain_lags(graph)
    chip = [n for n, node in graph.items() if node.category != "host"]
    steps = max(lags[n] for n in chip) + N * T - 1
    codes = Q.input_payload(x, in_node).numpy().astype(np.int32).reshape(T, N, -1)  # [T, N, inputs], C-major
    n_in = codes.shape[2]
    data = np.zeros((n_in, steps), dtype=np.int32)
    data[:, : N * T] = codes.transpose(2, 1, 0).reshape(n_in, N * T)  # column n·T + t
    src = RingBuffer(data=data)
    keep: list = [src]
    probes: list[tuple[str, object, tuple]] = []
    clock = None
    # flat C-major port of the current signal, its payload bits (0: binary spikes) and per-step shape
    port, bits, prev_shape = src.s_out, int(in_node.payload_bits), tuple(in_node.shape)
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
                raise UserError(f"node {name!r}: the VAE runner builds neuro-core gates only")
            if node.squeeze_from is not None:
                raise UserError(f"node {name!r}: a gate that squeezes another layer is not a VAE gate")
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
            raise UserError(f"node {name!r} ({node.kind}) has no place in the VAE runner")
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
    return LavaChainRun(outputs=outputs, lags=lags, steps=steps, seconds=seconds, processes=len(keep))


def compare_chain(graph: g.Graph, x: torch.Tensor, lava: LavaChainRun | None = None) -> dict:
    """Emulator vs Lava on every on-chip layer of a decoder or encoder graph for its input x [T, N, ...]
    (:func:`run_chain_lava`'s).

    Returns ``{"layers": {name: {"values": int, "equal": int, "identical": bool, "events": int}},
    "all_layers_identical": bool, "samples": N, "lava_steps", "lava_seconds", "processes"}``; ``events`` counts the
    emulator's nonzero outputs (so that a silent layer is visible)."""
    lava = lava or run_chain_lava(graph, x)
    _, rec = run_graph(graph, x.to(torch.float64), record=True)
    layers = {}
    for name in chip_layers(graph):
        emu = rec[name].to(torch.float64).round().to(torch.int64).numpy()
        got = lava.outputs[name]
        equal = int((emu == got).sum()) if emu.shape == got.shape else 0
        layers[name] = {"values": int(emu.size), "equal": equal, "identical": bool(emu.shape == got.shape and
                                                                                    equal == emu.size),
                        "events": int(np.count_nonzero(emu))}
    return {"layers": layers, "all_layers_identical": all(v["identical"] for v in layers.values()),
            "samples": int(x.shape[1]), "lava_steps": lava.steps, "lava_seconds": lava.seconds,
            "processes": lava.processes}
