"""Run a deploy directory on Lava's simulator and record what every layer did.

The network is assembled from the deploy directory alone (``graph.json``, ``segment_<k>.net``,
``gate_<k>.npz``):

- the input payloads (``q_input``: event counts, or binary spikes) come from a ``RingBuffer`` source;
- each trunk segment is ``lava.lib.dl.netx.hdf5.Network(segment_<k>.net)`` with ``LIFReset`` neurons
  (``reset_interval = T``): samples run back to back, one per T steps, each layer resetting when the
  first step of a new sample reaches it;
- each host gate is the :class:`~tcja_deploy.hardware.lava_procs.TCJAGate` process; a gate moved past a
  max pool (``squeeze_from``) gets the per-channel spike counts of the unpooled spikes from a Lava
  ``Sparse`` (ones from each pixel to its channel), which adds the same one-step hop as the OR pool, so
  both of its inputs are aligned; a neuro-core gate is the sub-network of :mod:`lava_gate`;
- each gate's windows start where the first step of a sample reaches it: the gate process is given
  that phase (``TCJAGate(phase=...)``), so no spike is delayed to align windows;
- every layer's output is recorded with an ``Extractor`` (one array per step through a pipe).

Lava delays every synaptic hop by one step, and a window gate by T steps; the runner knows each
process's lag and shifts it out, so the returned :class:`NetworkActivity` is aligned in time exactly
like the emulator's (``emulator.emulate``) and the two can be compared spike for spike.

``select_tag="fixed_pt"`` runs a ``loihi2`` deploy directory (bit-accurate models). A ``lava-float``
deploy directory has no NetX files (NetX is fixed point); it is built from float Lava ``Dense`` /
``Conv`` / ``LIFReset`` processes and the gate's ``floating_pt`` model instead.
"""

from __future__ import annotations

import contextlib
import io
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from tcja_deploy.conversion import gate_math
from tcja_deploy.conversion import graph as g
from tcja_deploy.conversion.deploy_dir import Deploy, read_deploy
from tcja_deploy.conversion.execute import infer_shapes, input_shapes, readout, vote
from tcja_deploy.conversion.fixed_point import input_payload
from tcja_deploy.conversion.graph import host_nodes
from tcja_deploy.conversion.layers import layer_plan, payload_bits, plan_timing
from tcja_deploy.errors import UserError
from tcja_deploy.hardware.activity import NetworkActivity, as_events, layer_activities
from tcja_deploy.hardware.lava_runtime import import_lava_runtime


def import_netx():
    """``lava.lib.dl.netx.hdf5``, without the lava-dl import's chatter (a Prophesee toolbox notice, and
    torch's "No CUDA runtime is found" from slayer's JIT module)."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        from lava.lib.dl.netx import hdf5
    return hdf5


def _whc(shape) -> tuple:
    return tuple(shape[::-1]) if len(shape) == 3 else tuple(shape)


def _port_to_chw(port, shape):
    """A WHC (NetX) out port as CHW (our layout); 1-D ports unchanged."""
    return port.transpose([2, 1, 0]) if len(shape) == 3 else port


class _Builder:
    """Creates the processes, their lags (the step at which sample 0, step 0 leaves each one) and probes."""

    def __init__(self, deploy: Deploy, tag: str):
        self.deploy, self.graph, self.tag = deploy, deploy.graph, tag
        self.T = int(self.graph.meta["T"])
        self.shapes = infer_shapes(self.graph)
        self.probes: list[tuple] = []  # (layer name, extractor, port, lag, shape CHW, port is WHC)
        self.keep = []  # every process, so none is garbage collected before the run
        self.stage_probes: dict[str, tuple[str, str]] = {}  # probe name → (gate node, stage)
        self.clock = None  # the phase clock of the neuro-core gates (one per network)

    def probe(self, name: str, port, lag: int, shape: tuple, num_steps: int, whc: bool):
        """Record ``port`` every step with an ``Extractor`` (whole arrays through a pipe to this process;
        a ``Monitor``'s Var is read back one value per message, far too slow for spike maps)."""
        from lava.proc.io.extractor import Extractor

        ext = Extractor(shape=tuple(int(d) for d in port.shape), buffer_size=num_steps + 1)
        port.connect(ext.in_port)
        self.probes.append((name, ext, port, lag, tuple(shape), whc))
        self.keep.append(ext)


#: Seconds per Lava step per process on Lava's Python simulator: a prior for the estimate printed before a
#: run, measured on this project's 2-core CPU machine (2026-12-02, digits with neuro-core gates: 166 steps,
#: 91 processes, 23.2 s). The progress bar shows the measured rate once the run has started.
SECONDS_PER_PROCESS_STEP = 1.5e-3


#: Seconds per conv pair-pixel-tap on Lava's Python ``Conv`` model, which runs one scipy ``convolve2d`` per (input,
#: output) channel pair every step (``lava/proc/conv/utils.py conv_scipy``: torch is disabled inside Lava
#: processes). From a measurement on this project's 2-core CPU machine (2026-12-02, ``bench pipeline --preset
#: dvs128_gesture``): the whole deploy, 95 processes and 2.34e9 pair-pixel-taps a step, ran at 0.142 steps/s.
SECONDS_PER_CONV_WORK = 2.9e-9


def conv_work(graph: g.Graph, layers: Optional[list[str]] = None) -> int:
    """Pair-pixel-taps per Lava step of the ``Conv`` processes of ``layers`` (synapse node names; None: all): for
    each conv, output channels × input channels per group × padded input pixels × kernel taps."""
    ins = input_shapes(graph)
    work = 0
    for name, node in graph.items():
        if layers is not None and name not in layers:
            continue
        if isinstance(node, (g.Conv2d, g.QConv2d)) and np.asarray(node.weight).ndim == 4:
            co, ci_g, kh, kw = np.asarray(node.weight).shape
            _, h, w = ins[name]
            p = int(node.padding)
            work += int(co) * int(ci_g) * (int(h) + 2 * p) * (int(w) + 2 * p) * int(kh) * int(kw)
    return work


def estimate_seconds(graph: g.Graph, steps: int, processes: int, layers: Optional[list[str]] = None) -> float:
    """The prior estimate of a Lava run printed before it starts: steps × (processes × a per-process-step cost +
    conv work × a per-pair-pixel-tap cost); the progress bar shows the measured rate once it runs."""
    return float(steps * (processes * SECONDS_PER_PROCESS_STEP + conv_work(graph, layers) * SECONDS_PER_CONV_WORK))


def describe_prior() -> str:
    return (f"{SECONDS_PER_PROCESS_STEP * 1e3:.1f} ms per process-step + {SECONDS_PER_CONV_WORK * 1e9:.2f} ns per "
            f"conv pair-pixel-tap")


def sim_config(tag: str):
    """Lava's simulation run config for ``tag`` with the ``Extractor`` model the probes need."""
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.extractor import Extractor, PyLoihiExtractorModel

    return Loihi2SimCfg(select_tag=tag, exception_proc_model_map={Extractor: PyLoihiExtractorModel})


def source_data(seq: np.ndarray, lag: int, steps: int, tag: str) -> np.ndarray:
    """A ``RingBuffer``'s data for per-step arrays ``seq`` [n_steps, C, H, W] (or [n_steps, F]) that must leave the
    source at Lava steps lag, lag + 1, …: zeros before, time last, C, H, W → W, H, C (Lava's layout)."""
    data = np.zeros((steps,) + seq.shape[1:], dtype=np.int32 if tag == "fixed_pt" else np.float64)
    data[lag - 1: lag - 1 + len(seq)] = seq
    data = np.moveaxis(data, 0, -1)
    if data.ndim == 4:
        data = data.transpose(2, 1, 0, 3)
    return data


def simulate(b: _Builder, src, cfg, steps: int, N: int, T: int, max_lag: int, tag: str,
             budget_s: Optional[float] = None, progress: bool = False, desc: str = "Lava simulation") -> dict:
    """Run the network of ``b`` (started through ``src``) for ``steps`` Lava steps and read every probe.

    Chunks of steps: the first is one step (it includes Lava's compile and start-up); each later one is as many
    steps as the measured rate of the last fit in what is left of ``budget_s`` (at most T), and the run stops when
    not even one step fits. Returns ``{"recorded": {probe: [T, n, ...]}, "stages": {gate: {stage: [n·T, ...]}},
    "partial": {probe: [≤ T, ...]} (only when not even sample 0 finished), "done": steps run, "stopped": bool,
    "samples": n completed}``; records are cut at each probe's lag (the step at which sample 0, step 0 leaves it).
    """
    from lava.magma.core.run_conditions import RunSteps
    from tqdm import tqdm

    start = time.perf_counter()
    done, stopped, per_step = 0, False, None
    recorded, stages, partial = {}, {}, {}
    try:
        with tqdm(total=steps, desc=desc, unit="step", disable=not progress, leave=False) as bar:
            while done < steps:
                n_steps = 1 if per_step is None else min(T, steps - done)
                if budget_s is not None and per_step is not None:
                    left = budget_s - (time.perf_counter() - start)
                    n_steps = min(n_steps, int(left // per_step))
                    if n_steps < 1:
                        stopped = True
                        break
                t = time.perf_counter()
                src.run(condition=RunSteps(num_steps=n_steps), run_cfg=cfg)
                per_step = (time.perf_counter() - t) / n_steps
                done += n_steps
                bar.update(n_steps)
        n_done = N if not stopped else min(N, max(0, (done - max_lag + 1) // T))
        for name, ext, port, lag, shape, whc in b.probes:
            arr = np.stack([ext.receive() for _ in range(done)])  # [done, *Lava shape]
            if whc:
                arr = arr.transpose(0, 3, 2, 1)  # WHC → CHW
            arr = arr.reshape(done, *shape)
            idx = lag - 1  # row of Lava step `lag`
            if n_done == 0:  # not even sample 0 finished: keep the steps of it each layer has sent
                partial[name] = arr[idx: idx + T].astype(np.int64 if tag == "fixed_pt" else np.float64)
                continue
            win = arr[idx: idx + n_done * T].reshape(n_done, T, *shape)
            if name in b.stage_probes:  # a neuro-core gate's stage: [N·T, ...] per Lava step
                gate_name, stage = b.stage_probes[name]
                stages.setdefault(gate_name, {})[stage] = win.reshape(n_done * T, *shape).astype(np.int64)
                continue
            recorded[name] = np.moveaxis(win, 0, 1)  # [T, N, ...]
    finally:
        try:
            src.stop()
        except Exception:  # never started (a compile error): keep the original exception
            pass
    return {"recorded": recorded, "stages": stages, "partial": partial, "done": done, "stopped": stopped,
            "samples": n_done}


def run_lava(deploy_dir: Path | Deploy, x: torch.Tensor, labels: Optional[np.ndarray] = None,
             select_tag: Optional[str] = None, run_cfg=None, budget_s: Optional[float] = None,
             log: Optional[Callable[[str], None]] = None, progress: bool = False) -> NetworkActivity:
    """Run the deploy directory on Lava's simulator for the N samples of x [T, N, C, H, W].

    Args:
        select_tag: ``"fixed_pt"`` (loihi2 deploy dirs) or ``"floating_pt"`` (lava-float); None: by target.
        run_cfg: a Lava run config to use instead of ``Loihi2SimCfg(select_tag)`` (e.g. ``Loihi2HwCfg``; it
            must select a model for ``lava.proc.io.extractor.Extractor``, which records the layers).
        budget_s: stop when the next step would not fit in this many seconds (at the measured rate; the first
            step, with Lava's start-up, always runs) and keep the samples completed by then; when not even sample 0 finished, ``extra["partial"]`` holds, per probe,
            the steps of sample 0 it recorded ([≤ T, ...]) and the activity has no layers. None: all N samples.
        log: gets one line before the run (samples, steps, processes, estimated time).
        progress: show a progress bar over the Lava steps (with its measured ETA).

    Returns:
        NetworkActivity aligned with :func:`tcja_deploy.hardware.emulator.emulate` (backend ``"lava-sim"``),
        ``extra``: ``{"lava_steps", "seconds", "lags", "pad", "delay_lines", "select_tag", "graph_names",
        "latency_steps", "gate_stages", "processes", "samples_requested", "stopped_by_budget",
        "estimated_s"}``; with a budget the activity may hold fewer samples than x.
    """
    import_lava_runtime()
    from lava.proc.io.source import RingBuffer

    deploy = deploy_dir if isinstance(deploy_dir, Deploy) else read_deploy(deploy_dir)
    graph = deploy.graph
    tag = select_tag or ("floating_pt" if deploy.target == "lava-float" else "fixed_pt")
    segs, gates = deploy.segments, deploy.gates
    T = int(graph.meta["T"])
    N = x.shape[1]
    if x.shape[0] != T:
        raise UserError(f"input has {x.shape[0]} time steps, the network {T}")
    timing = plan_timing(graph, segs, gates)
    lags = timing["lags"]
    steps = max(lags.values()) + N * T - 1  # until the last layer has sent the last step of the last sample
    b = _Builder(deploy, tag)

    # ---- input
    in_node = graph.nodes[graph.names[0]]
    if isinstance(in_node, g.QInput):
        payload = input_payload(x, in_node).numpy()  # [T, N, C, H, W]
        in_bits = in_node.payload_bits
    else:
        payload = x.numpy().astype(np.float64)
        in_bits = 32
    seq = payload.transpose(1, 0, *range(2, payload.ndim)).reshape(N * T, *payload.shape[2:])  # [N·T, C, H, W]
    first = graph.nodes[segs[0]["nodes"][0]]
    if isinstance(first, g.Flatten):
        seq = seq.reshape(N * T, -1)
    src = RingBuffer(data=source_data(seq, 1 + timing["pad"], steps, tag))
    b.keep.append(src)
    prev_port = src.s_out  # in Lava layout

    seg_layers: dict[str, tuple] = {}  # neuron node name → (out port WHC, shape CHW)
    for k, seg in enumerate(segs):
        lag_in = lags[seg["layers"][0]] - 1
        seg_bits = in_bits if k == 0 else gates[k - 1]["payload_bits"]
        net_in_port, layer_ports = _segment(b, seg, k, tag, lag_in, seg_bits)
        # connect the previous output (CHW / flat) to the segment input (WHC / flat)
        if k == 0:
            prev_port.connect(net_in_port)
        elif isinstance(graph.nodes[seg["nodes"][0]], g.Flatten):
            prev_port.flatten().connect(net_in_port)
        else:
            prev_port.transpose([2, 1, 0]).connect(net_in_port)
        for (syn, neuron, port, shape) in layer_ports:
            seg_layers[neuron] = (port, shape)
            b.probe(syn, port, lags[syn], shape, steps, whc=len(shape) == 3)
        if k < len(gates):
            gate = gates[k]
            out_port, out_shape = layer_ports[-1][2], layer_ports[-1][3]
            if gate.get("placement") == "neurocore":
                prev_port = _neurocore_gate(b, graph, gate, out_port, out_shape, seg_layers, lags, steps)
            else:
                prev_port = _gate(b, graph, gate, out_port, out_shape, seg_layers, tag,
                                  timing["phases"][gate["node"]])
            b.probe(gate["node"], prev_port, lags[gate["node"]], tuple(gate["x_shape"]), steps, whc=False)

    cfg = run_cfg or sim_config(tag)
    estimate = estimate_seconds(graph, steps, len(b.keep))
    if log is not None:
        log(f"Lava simulation: {N} sample(s), {steps} steps, {len(b.keep)} processes; estimated {estimate:,.0f} s "
            f"(prior: {describe_prior()})" + ("" if budget_s is None else f", budget {budget_s:,.0f} s"))
    start = time.perf_counter()
    sim = simulate(b, src, cfg, steps, N, T, max(lags.values()), tag, budget_s=budget_s, progress=progress)
    recorded, stages, partial, done, stopped, n_done = (sim["recorded"], sim["stages"], sim["partial"], sim["done"],
                                                       sim["stopped"], sim["samples"])
    requested, N = N, n_done
    payload = payload[:, :N]
    labels = None if labels is None else np.asarray(labels)[:N]
    seconds = time.perf_counter() - start
    extra = {
        "lava_steps": done, "seconds": seconds, "lags": lags, "pad": timing["pad"],
        "delay_lines": timing["delays"], "gate_phases": timing["phases"], "select_tag": tag, "graph_names": graph.names,
        "gate_stages": stages, "processes": len(b.keep), "samples_requested": requested,
        "stopped_by_budget": stopped, "estimated_s": estimate, "partial": partial,
        "latency_steps": int(lags[[n for n in graph.names if n in lags][-1]] - lags[graph.names[0]])}
    if N == 0:  # the budget ended the run inside sample 0: no layer activity, the partial record only
        K = int(graph.meta.get("num_classes", 0))
        return NetworkActivity(layers=[], scores=np.zeros((0, K)), labels=np.zeros(0, dtype=np.int64), steps=done,
                               backend="lava-sim", extra=extra)
    return _activity(graph, recorded, payload, labels, N, tag, extra)


def _segment(b: _Builder, seg: dict, k: int, tag: str, lag_in: int, in_bits: int):
    """One trunk segment: NetX Network (fixed_pt) or float processes. Returns (input port, layer ports)."""
    graph, T = b.graph, b.T
    layer_ports = []
    syn_names = seg["layers"]
    neurons = [graph.names[graph.names.index(s) + 1] for s in syn_names]
    if tag == "fixed_pt":
        hdf5 = import_netx()

        seg_file = b.deploy.check_segment_file(seg["file"])
        net = hdf5.Network(net_config=str(seg_file), input_message_bits=int(in_bits),
                           reset_interval=T, reset_offset=lag_in % T)
        b.keep.append(net)
        if len(net.layers) != len(syn_names):
            raise UserError(f"{seg_file}: {len(net.layers)} NetX layers, "
                            f"graph.json lists {len(syn_names)}")
        for j, (s, n) in enumerate(zip(syn_names, neurons)):
            layer_ports.append((s, n, net.layers[j].out, tuple(b.shapes[n])))
        return net.inp, layer_ports
    return _float_segment(b, seg, lag_in, layer_ports, syn_names, neurons)


def _float_segment(b: _Builder, seg: dict, lag_in: int, layer_ports, syn_names, neurons):
    """A segment of a float graph as float Lava processes (Conv/Dense → LIFReset), WHC layout like NetX."""
    from lava.proc.conv.process import Conv
    from lava.proc.dense.process import Dense
    from lava.proc.lif.process import LIFReset

    graph, T = b.graph, b.T
    first_in = None
    prev_out, prev_shape = None, tuple(seg["input_shape"])
    flatten_next = False
    hop = 0
    for name in seg["nodes"]:
        node = graph.nodes[name]
        if isinstance(node, g.Flatten):
            flatten_next = True
            continue
        if isinstance(node, (g.Conv2d, g.Linear)):
            hop += 1
            neuron = graph.nodes[graph.names[graph.names.index(name) + 1]]
            out_shape = tuple(b.shapes[name])
            if isinstance(node, g.Conv2d):
                # Lava's conv is a true convolution (kernel flipped), as NetX's reader accounts for
                w = np.asarray(node.weight, np.float64)[:, :, ::-1, ::-1].transpose(0, 3, 2, 1)  # [Co, kx, ky, Ci/g]
                syn = Conv(weight=w, input_shape=_whc(prev_shape), stride=node.stride, padding=node.padding,
                           groups=node.groups, num_message_bits=24)
                shape_l = _whc(out_shape)
            else:
                syn = Dense(weights=np.asarray(node.weight, np.float64), num_message_bits=24)
                shape_l = out_shape
            bias = 0 if neuron.bias is None else np.broadcast_to(np.asarray(neuron.bias, np.float64), shape_l).copy()
            lif = LIFReset(shape=shape_l, du=neuron.du, dv=neuron.dv, vth=neuron.threshold, bias_mant=bias,
                           reset_interval=T, reset_offset=(lag_in + hop) % T)
            syn.a_out.connect(lif.a_in)
            b.keep += [syn, lif]
            if prev_out is None:
                first_in = syn.s_in
            elif flatten_next:
                prev_out.transpose([2, 1, 0]).flatten().connect(syn.s_in)
            else:
                prev_out.connect(syn.s_in)
            flatten_next = False
            prev_out, prev_shape = lif.s_out, out_shape
            layer_ports.append((name, graph.names[graph.names.index(name) + 1], lif.s_out, out_shape))
    return first_in, layer_ports


def _gate(b: _Builder, graph: g.Graph, gate: dict, x_port, x_shape, seg_layers: dict, tag: str, phase: int):
    """The gate process (and its squeeze synapse when it squeezes the unpooled spikes), its windows starting at
    the Lava steps ≡ 1 + ``phase`` (mod T); returns its out port."""
    from lava.proc.sparse.process import Sparse
    from scipy import sparse as sp

    from tcja_deploy.hardware.lava_procs import TCJAGate

    qgate = gate_math.QuantizedGate.from_arrays(b.deploy.gate_arrays(gate["file"]))
    gate_node = graph.nodes[gate["node"]]
    if gate_node.squeeze_from:
        c, h, w = gate["s_shape"]
        proc = TCJAGate(gate=qgate, s_shape=(c,), x_shape=tuple(gate["x_shape"]), phase=phase)
        s_port, s_shape = seg_layers[gate["squeeze_from"]]
        # per-channel spike counts of the (W, H, C) map: a Sparse synapse (one hop, like the OR pool it
        # parallels); a grouped Conv would do the same but Lava's Conv models hold groups in an int8
        cols = np.arange(w * h * c)
        ones = np.ones(cols.size, dtype=np.int32 if tag == "fixed_pt" else np.float64)
        squeeze = Sparse(weights=sp.csr_matrix((ones, (cols % c, cols)), shape=(c, cols.size)), num_message_bits=0)
        s_port.flatten().connect(squeeze.s_in)
        squeeze.a_out.connect(proc.s_in)
        _port_to_chw(x_port, x_shape).connect(proc.x_in)
        b.keep.append(squeeze)
    else:
        proc = TCJAGate(gate=qgate, s_shape=tuple(gate["s_shape"]), phase=phase)
        _port_to_chw(x_port, x_shape).connect(proc.s_in)
    b.keep.append(proc)
    return proc.a_out


def _neurocore_gate(b: _Builder, graph: g.Graph, gate: dict, x_port, x_shape, seg_layers: dict, lags: dict,
                    steps: int):
    """A neuro-core gate (:mod:`tcja_deploy.hardware.lava_gate`) on the squeezed and the gated spikes; every
    stage is probed. Returns the gated payloads' out port (CHW)."""
    from tcja_deploy.conversion.neurocore_gate import NeurocoreGate
    from tcja_deploy.hardware import lava_gate

    ng = NeurocoreGate.from_arrays(b.deploy.gate_arrays(gate["file"]))
    if b.clock is None:
        b.clock = lava_gate.PhaseClock(b.T)
        b.keep.append(b.clock.lif)
    s_port, s_shape = seg_layers[gate["squeeze_from"]]
    names = graph.names
    x_source = names[names.index(gate["node"]) - 1]
    net = lava_gate.build_gate(ng, _port_to_chw(s_port, s_shape), tuple(s_shape), _port_to_chw(x_port, x_shape),
                               tuple(x_shape), ls=lags[gate["squeeze_from"]], lx=lags[x_source], clock=b.clock)
    b.keep += net.processes
    for stage, (port, start, shape) in net.probes.items():
        if stage == "out":
            continue  # recorded as the gate layer's output
        probe = f"{gate['node']}.{stage}"
        b.stage_probes[probe] = (gate["node"], stage)
        b.probe(probe, port, start, shape, steps, whc=False)
    return net.out_port


def _activity(graph: g.Graph, recorded: dict, payload: np.ndarray, labels, N: int, tag: str, extra: dict):
    """The recorded layer outputs (aligned, [T, N, ...]) as a NetworkActivity, with the host readout's scores."""
    shapes = infer_shapes(graph)
    fixed = tag == "fixed_pt"
    ins, outs = {}, {}
    prev = payload
    for layer in layer_plan(graph):
        out = recorded[layer.name]
        in_shape = shapes[layer.input_from]
        in_arr = prev if prev.ndim - 2 == len(in_shape) else prev.reshape(prev.shape[:2] + (-1,))
        ins[layer.name] = as_events(in_arr, payload_bits(graph, layer.input_from), fixed)
        outs[layer.name] = as_events(out, payload_bits(graph, layer.neuron), fixed)
        prev = out
    layers = layer_activities(graph, ins, outs)
    scores = host_scores(graph, layers[-1].output_spikes)
    labels = np.full(N, -1) if labels is None else np.asarray(labels)
    return NetworkActivity(layers=layers, scores=scores, labels=labels, steps=int(extra["lava_steps"]),
                           backend="lava-sim", extra=extra)


def host_scores(graph: g.Graph, last_spikes: np.ndarray) -> np.ndarray:
    """Class scores [N, K]: the host readout (float64) and the vote on the last on-chip layer's output [T, N, ...]."""
    last = torch.as_tensor(np.asarray(last_spikes).astype(np.float64))
    for name in host_nodes(graph):  # the host readout (float64, on the recorded spikes) and the vote
        node = graph.nodes[name]
        if isinstance(node, g.Flatten):
            last = last.flatten(2)
        elif isinstance(node, g.Readout):
            last = readout(last, torch.as_tensor(np.asarray(node.weight), dtype=torch.float64),
                           None if node.bias is None else torch.as_tensor(np.asarray(node.bias), dtype=torch.float64),
                           float(node.input_scale))
    vote_node = graph.nodes[graph.names[-1]]
    return vote(last, vote_node.voters).numpy()
