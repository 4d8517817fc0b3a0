"""Conversion passes: each is ``Graph → Graph`` and keeps the computed function (docs/DESIGN.md §5).

Every pass appends its name to ``graph.meta["passes"]``; its test runs the graph before and after on
random spikes and compares (``tests/conversion/test_passes.py``). No pass knows about the others;
a target (:mod:`tcja_deploy.conversion.targets`) is a list of them. Exactness:

- ``drop_dropout``, ``fold_batchnorm``, ``lif_to_cuba``, ``avgpool_fold``: exact in real arithmetic
  (floating-point rounding differs in the last bits);
- ``tcja_to_gate``, ``maxpool_to_or``: exact (max of 0/1 spikes is their OR; a per-(t, c) gate ≥ 0
  commutes with max pooling);
- ``quantize_loihi2``: the one lossy pass (8-bit weights, integer thresholds, fixed-point gate); its
  loss is what ``fidelity.json`` measures.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np
import torch

from tcja_deploy.conversion import gate_math, neurocore_gate
from tcja_deploy.conversion import graph as g
from tcja_deploy.conversion.execute import cuba, infer_shapes, input_shapes, run_node
from tcja_deploy.conversion.graph import ConversionError
from tcja_deploy.conversion.loihi2 import LAVA_MAX_CONV_GROUPS, BIAS_MAX, DECAY_UNITY, STATE_MAX, VTH_MAX, WEIGHT_EXP, WEIGHT_MAX, WEIGHT_MIN
#: The largest |u| seen in calibration times this margin must fit in 24 bits (u wraps on overflow).
STATE_MARGIN = 1.25
#: Default payload of the gate's graded spikes: NetX's graded-spike convention (``spike_exp = 6``: a
#: payload of 64 is 1.0). Every payload bit costs the next layer a bit of weight range in its 24-bit state.
GATE_PAYLOAD_BITS = 6


def _is_binary_source(node: g.Node) -> bool:
    return isinstance(node, (g.LIF, g.CubaLIF, g.QCubaLIF))


# -------------------------------------------------------------------------------------- structural
def drop_dropout(graph: g.Graph) -> g.Graph:
    """Remove ``dropout`` nodes (identity at inference)."""
    return graph.replace([(n, x) for n, x in graph.items() if not isinstance(x, g.Dropout)], "drop_dropout")


def fold_batchnorm(graph: g.Graph) -> g.Graph:
    """Fold every ``batchnorm`` into the conv2d / linear before it: W' = W·γ/σ, b' = (b − μ)·γ/σ + β."""
    out: list[tuple[str, g.Node]] = []
    for name, node in graph.items():
        if not isinstance(node, g.BatchNorm):
            out.append((name, node))
            continue
        if not out or not isinstance(out[-1][1], (g.Conv2d, g.Linear, g.ConvTranspose2d)):
            prev = out[-1][1].kind if out else "nothing"
            raise ConversionError(f"node {name!r} (batchnorm) follows {prev}, not a conv2d or linear: cannot fold it")
        pname, syn = out[-1]
        scale = np.asarray(node.weight, np.float64) / np.sqrt(np.asarray(node.var, np.float64) + node.eps)
        if isinstance(syn, g.ConvTranspose2d):  # [Ci, Co, k, k]: output channels on axis 1
            w = np.asarray(syn.weight, np.float64) * scale.reshape(1, -1, 1, 1)
        else:
            w = np.asarray(syn.weight, np.float64) * scale.reshape(-1, *([1] * (syn.weight.ndim - 1)))
        b0 = np.zeros_like(scale) if syn.bias is None else np.asarray(syn.bias, np.float64)
        b = (b0 - np.asarray(node.mean, np.float64)) * scale + np.asarray(node.bias, np.float64)
        out[-1] = (pname, g.evolve(syn, weight=w, bias=b))
    return graph.replace(out, "fold_batchnorm")


def tcja_to_gate(graph: g.Graph) -> g.Graph:
    """Each ``tcja`` → a ``gate`` process node (window mode, or streaming for the causal variant).

    A TCJA on binary spikes followed by a max pool becomes pool → gate with ``squeeze_from`` = the
    spikes before the pool (max(g·x) = g·max(x) for g ≥ 0, per (t, c)): the pool then runs on binary
    spikes (an OR) and the gate sends 4× fewer graded spikes.
    """
    items = list(graph.items())
    out: list[tuple[str, g.Node]] = []
    i = 0
    while i < len(items):
        name, node = items[i]
        if not isinstance(node, g.TCJA):
            out.append((name, node))
            i += 1
            continue
        gname = name.replace("tcja", "gate") if name.startswith("tcja") else f"{name}_gate"
        mode = "streaming" if node.causal else "window"
        nxt = items[i + 1] if i + 1 < len(items) else None
        prev = out[-1] if out else None
        if nxt is not None and isinstance(nxt[1], g.MaxPool) and prev is not None and _is_binary_source(prev[1]):
            out.append(nxt)
            out.append((gname, g.Gate(node.w_tla, node.w_cla, node.causal, mode, squeeze_from=prev[0],
                                      gate_function=node.gate_function)))
            i += 2
        else:
            out.append((gname, g.Gate(node.w_tla, node.w_cla, node.causal, mode, gate_function=node.gate_function)))
            i += 1
    return graph.replace(out, "tcja_to_gate")


def lava_groups(channels: int) -> int:
    """Groups of a C-channel depthwise conv that Lava's Conv models can hold (``LAVA_MAX_CONV_GROUPS``): C itself,
    else its largest divisor below the limit (64 for 128 channels), each group diagonal across its channels."""
    return max(d for d in range(1, min(channels, LAVA_MAX_CONV_GROUPS) + 1) if channels % d == 0)


def maxpool_to_or(graph: g.Graph) -> g.Graph:
    """Max pool of binary spikes → OR: a depthwise conv of ones (stride = kernel) into a memoryless
    CUBA neuron (du = dv = 1) with threshold 1/2, i.e. below one input spike. More than
    ``LAVA_MAX_CONV_GROUPS`` channels: :func:`lava_groups` groups, the weights diagonal within each group (the same
    sums; with one group, as before, Lava's Python Conv model did C× the work of the depthwise conv, with 64
    groups for 128 channels 2×)."""
    in_shapes = input_shapes(graph)
    out: list[tuple[str, g.Node]] = []
    for name, node in graph.items():
        if not isinstance(node, g.MaxPool):
            out.append((name, node))
            continue
        prev = out[-1][1] if out else None
        if not _is_binary_source(prev):
            raise ConversionError(f"node {name!r} (maxpool) pools the output of a {prev.kind if prev else 'nothing'} "
                                  f"node; only a max pool of binary spikes (after a lif) maps to Loihi (as an OR)")
        c = in_shapes[name][0]
        k = node.kernel
        groups = lava_groups(c)
        m = c // groups  # channels per group: 1 (depthwise) up to 127 channels, else diagonal within each group
        weight = np.zeros((c, m, k, k))
        weight[np.arange(c), np.arange(c) % m] = 1.0
        out.append((name, g.Conv2d(weight, None, stride=k, padding=0, groups=groups, role="pool")))
        out.append((f"{name}.neuron", g.CubaLIF(du=1.0, dv=1.0, threshold=0.5)))
    return graph.replace(out, "maxpool_to_or")


def avgpool_fold(graph: g.Graph) -> g.Graph:
    """AvgPool(k) → folded into the next conv2d (kernel upsampled by k, /k², stride and padding ×k) or,
    through a flatten, into the next linear or readout (weights spread over each k×k block, /k²)."""
    items = list(graph.items())
    in_shapes = input_shapes(graph)
    out: list[tuple[str, g.Node]] = []
    i = 0
    while i < len(items):
        name, node = items[i]
        if not isinstance(node, g.AvgPool):
            out.append((name, node))
            i += 1
            continue
        k = node.kernel
        c, h, w = in_shapes[name]
        nxt = items[i + 1] if i + 1 < len(items) else (None, None)
        if isinstance(nxt[1], g.Conv2d):
            if h % k or w % k:
                raise ConversionError(f"node {name!r} (avgpool {k}) on a {h}×{w} map: cannot fold into the next "
                                      f"conv unless the size is a multiple of {k}")
            conv = nxt[1]
            wt = np.repeat(np.repeat(np.asarray(conv.weight, np.float64), k, axis=2), k, axis=3) / (k * k)
            out.append((nxt[0], g.evolve(conv, weight=wt, stride=conv.stride * k, padding=conv.padding * k)))
            i += 2
        elif isinstance(nxt[1], g.Flatten) and i + 2 < len(items) \
                and isinstance(items[i + 2][1], (g.Linear, g.Readout)):
            lname, lin = items[i + 2]
            hp, wp = h // k, w // k
            wl = np.asarray(lin.weight, np.float64).reshape(-1, c, hp, wp)
            full = np.zeros((wl.shape[0], c, h, w))
            full[:, :, : hp * k, : wp * k] = np.repeat(np.repeat(wl, k, axis=2), k, axis=3) / (k * k)
            out.append(nxt)
            out.append((lname, g.evolve(lin, weight=full.reshape(wl.shape[0], -1))))
            i += 3
        else:
            raise ConversionError(f"node {name!r} (avgpool) is followed by {nxt[1].kind if nxt[1] else 'nothing'}; "
                                  f"it can only be folded into a following conv2d or flatten → linear")
    return graph.replace(out, "avgpool_fold")


def lif_to_cuba(graph: g.Graph) -> g.Graph:
    """Norse LIF → Loihi CUBA (docs/DESIGN.md §3): du = 1/τ_syn, dv = 1/τ_mem, the synapse before it scaled by dv
    (Norse adds dv·i to v, Loihi adds u); a synapse bias becomes the neuron's v-bias dv·b (exact for
    τ_syn = 1, where u carries no memory)."""
    out: list[tuple[str, g.Node]] = []
    for name, node in graph.items():
        if not isinstance(node, g.LIF):
            out.append((name, node))
            continue
        prev = out[-1] if out else None
        if prev is None or not isinstance(prev[1], (g.Conv2d, g.Linear, g.ConvTranspose2d)):
            raise ConversionError(f"node {name!r} (lif) follows {prev[1].kind if prev else 'nothing'}; "
                                  f"Loihi neurons need a conv2d or linear synapse before them")
        du, dv = 1.0 / node.tau_syn, 1.0 / node.tau_mem
        if not (0 < du <= 1 and 0 < dv <= 1):
            raise ConversionError(f"node {name!r} (lif): tau_mem and tau_syn must be ≥ 1 step for Loihi, "
                                  f"got {node.tau_mem}, {node.tau_syn}")
        pname, syn = prev
        bias = None
        if syn.bias is not None and np.any(syn.bias != 0):
            if du != 1.0:
                raise ConversionError(f"node {pname!r} has a bias and {name!r} has tau_syn = {node.tau_syn} > 1: "
                                      f"Loihi has no current bias, so this is exact only for tau_syn = 1")
            bias = dv * np.asarray(syn.bias, np.float64)
        out[-1] = (pname, g.evolve(syn, weight=dv * np.asarray(syn.weight, np.float64), bias=None))
        out.append((name, g.CubaLIF(du=du, dv=dv, threshold=float(node.v_th), bias=bias)))
    return graph.replace(out, "lif_to_cuba")


# ---------------------------------------------------------------------------------------- quantize
#: Calibration streams the samples through the float graph in batches of at most this many ...
CALIBRATION_BATCH = 32
#: ... and fewer when one batch's largest node output (float32, whole window) would exceed this.
CALIBRATION_BATCH_BYTES = 128 << 20


def calibration_batch_size(graph: g.Graph, T: int, max_batch: int = CALIBRATION_BATCH,
                           budget: int = CALIBRATION_BATCH_BYTES) -> int:
    """Samples per calibration batch: ``max_batch``, or fewer so that the largest per-node output of a
    batch (float32, T steps) stays within ``budget`` bytes (at least 1)."""
    sizes = [int(np.prod(s)) for s in infer_shapes(graph).values() if len(s)]
    per_sample = max(sizes, default=1) * max(int(T), 1) * 4
    return int(max(1, min(max_batch, budget // per_sample)))


def calibrate(graph: g.Graph, x: torch.Tensor, batch_size: Optional[int] = None) -> dict:
    """Statistics ``quantize_loihi2`` sizes its scales with, from running the float ``graph`` on ``x``.

    Returns ``{"samples": int, "input_max": float, "input_integer": bool, "u_max": {cuba node name: max |u|}}``
    where u is
    the CUBA current (``u ← (1−du)·u + x``) in float units.

    Streamed: the samples run in batches (``batch_size``, default :func:`calibration_batch_size`), node
    by node, keeping only the running maxima and the outputs a later gate squeezes; peak memory is a few
    node outputs of one batch, whatever the number of samples. The maxima do not depend on the batching.
    """
    if batch_size is None:
        batch_size = calibration_batch_size(graph, x.shape[0])
    u_max = {name: 0.0 for name, node in graph.items() if isinstance(node, g.CubaLIF)}
    keep = {n.squeeze_from for n in graph.nodes.values() if getattr(n, "squeeze_from", None)}
    input_max, input_integer = float("-inf"), True
    with torch.no_grad():
        for start in range(0, x.shape[1], batch_size):
            a = x[:, start:start + batch_size].to(torch.float32)  # statistics only: float32 is plenty
            input_max = max(input_max, float(a.max()))
            input_integer = input_integer and bool(torch.equal(a, a.round()))
            outputs: dict = {}
            for name, node in graph.items():
                if isinstance(node, g.CubaLIF):
                    def track(u, name=name):
                        u_max[name] = max(u_max[name], float(u.abs().max()))

                    bias = None if node.bias is None else torch.as_tensor(np.asarray(node.bias), dtype=a.dtype)
                    a = cuba(a, node.du, node.dv, node.threshold, bias, on_current=track)
                else:
                    a = run_node(node, a, outputs)
                if name in keep:
                    outputs[name] = a
            del a, outputs
    return {"samples": int(x.shape[1]), "input_max": input_max, "input_integer": input_integer, "u_max": u_max}


def _input_quantization(shape, calibration: Optional[dict], first_layer=None, max_bits: int = 8) -> g.QInput:
    """Input payloads: binary spikes, integer counts as they are, or float values (images) at b bits with
    scale max/(2^b − 1). For floats, b ∈ [3, max_bits] maximises min(input levels, weight levels of the
    first layer): every input bit costs that layer a bit of weight range (its bias and state limits)."""
    if calibration is None:
        return g.QInput(tuple(shape), payload_bits=0, scale=1.0)
    xmax = max(float(calibration["input_max"]), 0.0)
    if calibration["input_integer"]:
        if xmax <= 1:
            return g.QInput(tuple(shape), payload_bits=0, scale=1.0)
        bits = max(1, math.ceil(math.log2(xmax + 1)))
        if bits <= max_bits:
            return g.QInput(tuple(shape), payload_bits=bits, scale=1.0)
    candidates = []
    for bits in range(max_bits, 2, -1):
        levels = (1 << bits) - 1
        scale = (xmax or 1.0) / levels
        weight_levels = levels
        if first_layer is not None:
            syn, neuron, u_max = first_layer
            weight_levels = quantize_synapse_neuron(syn, neuron, scale, float(levels), u_max)[2]["weight_levels_used"]
        candidates.append((min(levels, weight_levels), bits, scale))
    _, bits, scale = max(candidates)
    return g.QInput(tuple(shape), payload_bits=bits, scale=scale)


def quantize_synapse_neuron(syn: g.Node, neuron: g.CubaLIF, input_scale: float, input_max: float,
                            u_max: Optional[float]) -> tuple[g.Node, g.QCubaLIF, dict]:
    """8-bit weights and an integer threshold for one synapse + CUBA pair.

    ``input_scale`` is the float value of one input payload unit, ``input_max`` the largest payload.

    One scale β per layer (a LIF is invariant to scaling its weights, bias and threshold together):
    w_int = 2·round(W·s_in·β/2) ∈ [−256, 254], vth_mant = θ·β (an integer: β = vth_mant/θ),
    bias_mant = round(b·β). β is the largest value that keeps the weights in 8 bits, the threshold in
    17 bits, the bias in 13 bits and the states in 24 bits: |u| ≤ u_max·margin (u wraps on overflow)
    and, below threshold, v ≤ (1 − dv)·θ + u_max·margin + |bias| (u_max: calibration, else a bound over
    all inputs). A very negative v saturates at −2²³ (Lava clips v), which the emulator reproduces.
    """
    w = np.asarray(syn.weight, np.float64)
    theta = float(neuron.threshold)
    if theta <= 0:
        raise ConversionError(f"threshold {theta} must be > 0 for Loihi")
    limits = {"threshold": VTH_MAX / theta}
    wmax = float(np.abs(w).max()) * input_scale
    if wmax > 0:
        limits["weights"] = WEIGHT_MAX / wmax
    if neuron.bias is not None and np.abs(neuron.bias).max() > 0:
        limits["bias"] = BIAS_MAX / float(np.abs(neuron.bias).max())
    if u_max is None:  # worst case over input values in [0, input_max·input_scale]
        # per output channel (a transposed conv's [Ci, Co, k, k] has them on axis 1): all its taps, a bound
        wf = (w.swapaxes(0, 1) if isinstance(syn, g.ConvTranspose2d) else w).reshape(w.shape[1 if isinstance(
            syn, g.ConvTranspose2d) else 0], -1)
        u_max = max(np.clip(wf, 0, None).sum(1).max(), -np.clip(wf, None, 0).sum(1).min()) \
            * input_max * input_scale / neuron.du
    b_max = 0.0 if neuron.bias is None else float(np.abs(neuron.bias).max())
    state = max(u_max * STATE_MARGIN, (1 - neuron.dv) * theta + u_max * STATE_MARGIN + b_max)
    if state > 0:
        limits["state"] = STATE_MAX / ((1 << WEIGHT_EXP) * state)
    beta0 = min(limits.values())
    vth_mant = int(math.floor(theta * beta0))
    if vth_mant < 1:
        raise ConversionError(f"threshold {theta} cannot be represented (scale {beta0:g})")
    beta = vth_mant / theta
    w_int = np.clip(2 * np.round(w * input_scale * beta / 2), WEIGHT_MIN, WEIGHT_MAX).astype(np.int32)
    bias_mant = None
    if neuron.bias is not None:
        bias_mant = np.clip(np.round(np.asarray(neuron.bias) * beta), -BIAS_MAX - 1, BIAS_MAX).astype(np.int32)
    if isinstance(syn, g.ConvTranspose2d):
        qsyn = g.QConvTranspose2d(w_int, stride=syn.stride, padding=syn.padding, output_padding=syn.output_padding,
                                  scale=beta, input_scale=input_scale)
    elif isinstance(syn, g.Conv2d):
        qsyn = g.QConv2d(w_int, stride=syn.stride, padding=syn.padding, groups=syn.groups, role=syn.role,
                         scale=beta, input_scale=input_scale)
    else:
        qsyn = g.QLinear(w_int, scale=beta, input_scale=input_scale)
    qneuron = g.QCubaLIF(i_decay=int(round(neuron.du * DECAY_UNITY)), v_decay=int(round(neuron.dv * DECAY_UNITY)),
                         vth_mant=vth_mant, bias_mant=bias_mant, scale=beta)
    binding = min(limits, key=limits.get)
    return qsyn, qneuron, {"scale": beta, "limited_by": binding, "weight_levels_used": int(np.abs(w_int).max())}


def quantize_loihi2(graph: g.Graph, calibration: Optional[dict] = None, gate_payload_bits: int = GATE_PAYLOAD_BITS,
                    gate_weight_bits: int = 8, gate_placement: str = "neurocore") -> g.Graph:
    """Float CUBA graph → Loihi 2 fixed point: q_input, q_conv2d / q_linear + q_cuba_lif, q_gate; a host
    ``readout`` keeps its float weights and records the value of one input payload unit (``input_scale``).

    Args:
        calibration: from :func:`calibrate` (input range; per-layer current range). None: binary input
            and worst-case state bounds.
        gate_payload_bits, gate_weight_bits: the host gates' graded-spike payload and weight widths
            (:func:`tcja_deploy.conversion.gate_math.quantize_gate`).
        gate_placement: ``"neurocore"`` (the gate as standard Lava processes,
            :func:`tcja_deploy.conversion.neurocore_gate.quantize_neurocore`; 8-bit payload) or ``"host"``.
    """
    items = list(graph.items())
    shapes = infer_shapes(graph)
    in_shapes = input_shapes(graph)
    out: list[tuple[str, g.Node]] = []
    report = {}
    scale, bits, xmax = 1.0, 0, 1.0  # the current signal: value of one payload unit, payload bits, max payload
    i = 0
    while i < len(items):
        name, node = items[i]
        if isinstance(node, g.Input):
            first = None
            if i + 2 < len(items) and isinstance(items[i + 1][1], (g.Conv2d, g.Linear)) \
                    and isinstance(items[i + 2][1], g.CubaLIF):
                u = None if calibration is None else calibration["u_max"].get(items[i + 2][0])
                first = (items[i + 1][1], items[i + 2][1], u)
            q = _input_quantization(node.shape, calibration, first)
            out.append((name, q))
            scale, bits = q.scale, q.payload_bits
            xmax = 1.0 if bits == 0 else float((1 << bits) - 1)
            i += 1
        elif isinstance(node, (g.Conv2d, g.Linear, g.ConvTranspose2d)):
            nxt = items[i + 1] if i + 1 < len(items) else (None, None)
            if not isinstance(nxt[1], g.CubaLIF):
                raise ConversionError(f"node {name!r} ({node.kind}) is not followed by a cuba_lif neuron; "
                                      f"run lif_to_cuba first (Loihi synapses feed neurons)")
            u_max = None if calibration is None else calibration["u_max"].get(nxt[0])  # float units
            qsyn, qneu, info = quantize_synapse_neuron(node, nxt[1], scale, xmax, u_max)
            out += [(name, qsyn), (nxt[0], qneu)]
            report[name] = info
            scale, bits, xmax = 1.0, 0, 1.0
            i += 2
        elif isinstance(node, g.Gate):
            if bits != 0:
                raise ConversionError(f"node {name!r} (gate) receives graded values; the gate needs binary spikes")
            src = node.squeeze_from or items[i - 1][0]
            c, h, w = shapes[src]
            params = gate_math.GateParams(T=int(graph.meta["T"]), C=c, H=h, W=w, w_tla=node.w_tla,
                                          w_cla=node.w_cla, mode=node.mode)
            if in_shapes[name][0] != c:
                raise ConversionError(f"node {name!r} (gate): channels differ between its input and {src!r}")
            if gate_placement == "neurocore":
                try:
                    q = neurocore_gate.quantize_neurocore(params)
                except neurocore_gate.GatePlacementError as e:
                    raise ConversionError(f"node {name!r} (gate, T={params.T}, C={c}, {h}×{w}) cannot run on neuro "
                                          f"cores: {e}; use --gate host") from None
                scale = q.payload_scale
            elif gate_placement == "host":
                if node.gate_function != "sigmoid":
                    raise ConversionError(f"node {name!r} (gate) was trained with the {node.gate_function!r} gate "
                                          f"function; the host gate's table is the sigmoid: use --gate neurocore")
                q = gate_math.quantize_gate(params, weight_bits=gate_weight_bits, payload_bits=gate_payload_bits)
                scale = q.gate_scale
            else:
                raise ConversionError(f"gate placement {gate_placement!r}: choose one of {g.GATE_PLACEMENTS}")
            out.append((name, g.QGate(T=params.T, channels=c, height=h, width=w, mode=node.mode,
                                      payload_bits=q.payload_bits, payload_scale=scale,
                                      params=q.to_arrays(), squeeze_from=node.squeeze_from,
                                      placement=gate_placement)))
            bits, xmax = q.payload_bits, float(q.payload_max)
            i += 1
        elif isinstance(node, (g.Readout, g.ImageReadout)):  # host side: float weights on the payloads' float value
            out.append((name, g.evolve(node, input_scale=float(scale) * float(node.input_scale))))
            scale, bits, xmax = 1.0, 32, 1.0
            i += 1
        elif isinstance(node, (g.Flatten, g.Unflatten, g.Vote)):
            out.append((name, node))
            i += 1
        else:
            raise ConversionError(f"node {name!r} ({node.kind}) has no Loihi 2 form; the loihi2 target rewrites it "
                                  f"first (drop_dropout, fold_batchnorm, tcja_to_gate, maxpool_to_or, avgpool_fold, "
                                  f"lif_to_cuba)")
    extra = {} if calibration is None else {"calibration": calibration}
    return graph.replace(out, "quantize_loihi2", quantization=report, **extra)


def qgate_of(node: g.QGate) -> gate_math.QuantizedGate:
    """The :class:`gate_math.QuantizedGate` a ``q_gate`` node stores."""
    return gate_math.QuantizedGate.from_arrays(node.params)
