"""Bit-exact emulator of a converted network, in torch: scores a whole test set in seconds.

It runs the fixed-point graph (``q_*`` nodes of ``graph.json``) with the integer semantics of Lava's
``fixed_pt`` models, which are slayer's quantized CUBA forward (DESIGN §3) plus the limits slayer
leaves out:

- synapse: ``a = Σ w·p`` over input payloads p (0/1 spikes or graded codes); a conv's sum wraps at
  24 bits (Lava ``PyConvModelFixed``), a dense sum does not;
- CUBA (Lava ``PyLifModelBitAcc``; NetX writes ``du = iDecay − 1``, Lava adds 1 back)::

      u ← wrap24( trunc((u·(4096 − i_decay)) / 4096) + (a << 6) )
      v ← clip24( trunc((v·(4096 − v_decay)) / 4096) + u + (bias << 6) )
      spike = v > vth_mant << 6;  v ← 0 where spike

  (``trunc``: rounding toward zero, slayer's ``right_shift_to_zero``);
- gate: :func:`tcja_deploy.conversion.gate_math.gate_fixed_torch` on the per-(t, c) spike counts of
  the squeezed spikes; payload = spike · code.

The emulator has no synaptic delays: layer outputs are aligned in time (Lava's one-step delay per
hop and the gate's window latency are shifted out by :mod:`tcja_deploy.hardware.lava_sim`).
:func:`emulate` returns per-layer spikes as a :class:`~tcja_deploy.hardware.activity.NetworkActivity`.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from tcja_deploy.conversion import gate_math
from tcja_deploy.conversion import graph as g
from tcja_deploy.hardware.activity import LayerActivity, NetworkActivity

STATE_BITS = 24
_MAX = 1 << (STATE_BITS - 1)


# ------------------------------------------------------------------------------- integer primitives
def trunc_shift12(x: torch.Tensor) -> torch.Tensor:
    """sign(x)·(|x| >> 12) for int64 x (rounding toward zero, as Lava and slayer's right_shift_to_zero)."""
    return torch.div(x, 4096, rounding_mode="trunc")


def wrap_current(u: torch.Tensor) -> torch.Tensor:
    """Lava's 24-bit wrap of u: values > 2²³ lose 2²⁴, values ≤ −2²³ gain 2²⁴."""
    w = torch.where(u > _MAX, u - 2 * _MAX, u)
    return torch.where(w <= -_MAX, u + 2 * _MAX, w)


def signed_clamp24(x: torch.Tensor) -> torch.Tensor:
    """Lava conv's ``signed_clamp(x, 24)``: modular wrap into [−2²³, 2²³)."""
    return torch.remainder(x + _MAX, 2 * _MAX) - _MAX


def cuba_fixed(a: torch.Tensor, i_decay: int, v_decay: int, vth_mant: int,
               bias_mant: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Integer CUBA over a window: synaptic input a [T, N, ...] (int64) → spikes [T, N, ...] (float64 0/1)."""
    u = torch.zeros_like(a[0])
    v = torch.zeros_like(a[0])
    bias = 0 if bias_mant is None else bias_mant.to(a.device).reshape(1, -1, *([1] * (a.dim() - 3))) << 6
    vth = int(vth_mant) << 6
    du, dv = 4096 - int(i_decay), 4096 - int(v_decay)
    out = torch.empty(a.shape, dtype=torch.float64, device=a.device)
    for t in range(a.shape[0]):
        u = wrap_current(trunc_shift12(u * du) + (a[t] << 6))
        v = torch.clamp(trunc_shift12(v * dv) + u + bias, -_MAX + 1, _MAX - 1)
        s = v > vth
        v = torch.where(s, torch.zeros_like(v), v)
        out[t] = s.to(torch.float64)
    return out


def _exact_dtype(weight: np.ndarray, p_max: float, device: torch.device) -> torch.dtype:
    """float32 on CPU when every partial sum Σ|w|·p stays below 2²³ (exact with a bit to spare), else
    float64 (exact below 2⁵³). GPUs always get float64: cuDNN's fast float32 algorithms (Winograd, FFT,
    TF32) are not exact on integers."""
    if device.type != "cpu":
        return torch.float64
    w = np.abs(np.asarray(weight, dtype=np.float64)).reshape(np.asarray(weight).shape[0], -1)
    return torch.float32 if float(w.sum(1).max()) * p_max < (1 << 23) else torch.float64


def qconv(p: torch.Tensor, weight: np.ndarray, stride: int, padding: int, groups: int) -> torch.Tensor:
    """Integer conv of payloads [T, N, C, H, W] (integer-valued, ≥ 0) → int64 sums wrapped at 24 bits.

    The float accumulation is exact (see :func:`_exact_dtype`).
    """
    p_max = float(p.max()) if p.numel() else 0.0
    dt = _exact_dtype(weight, p_max, p.device)
    w = torch.as_tensor(np.asarray(weight), dtype=dt, device=p.device)
    T, N = p.shape[:2]
    y = F.conv2d(p.reshape(T * N, *p.shape[2:]).to(dt), w, stride=stride, padding=padding, groups=groups)
    y = y.reshape(T, N, *y.shape[1:]).round().to(torch.int64)
    if y.numel() and int(y.abs().max()) >= _MAX:
        y = signed_clamp24(y)
    return y


def qlinear(p: torch.Tensor, weight: np.ndarray) -> torch.Tensor:
    """Integer dense sums of payloads [T, N, in] → int64 [T, N, out] (no wrap, as Lava's Dense)."""
    dt = _exact_dtype(weight, float(p.max()) if p.numel() else 0.0, p.device)
    w = torch.as_tensor(np.asarray(weight), dtype=dt, device=p.device)
    return (p.to(dt) @ w.T).round().to(torch.int64)


def input_payload(x: torch.Tensor, node: g.QInput) -> torch.Tensor:
    """Input values → payload codes: clip(round(x / scale), 0, 2^bits − 1); binary when bits = 0."""
    top = 1 if node.payload_bits == 0 else (1 << node.payload_bits) - 1
    return torch.clamp(torch.round(x.to(torch.float64) / node.scale), 0, top)


def spike_counts(s: torch.Tensor) -> torch.Tensor:
    """[T, N, C, H, W] spikes → [N, T, C] counts summed over H×W."""
    return s.sum(dim=(3, 4)).permute(1, 0, 2)


def gate_fixed(x: torch.Tensor, s: torch.Tensor, node: g.QGate) -> torch.Tensor:
    """Gated payloads [T, N, C, H', W']: binary x times the code of the gate computed from s's counts."""
    q = gate_math.QuantizedGate.from_arrays(node.params)
    codes = gate_math.gate_fixed_torch(spike_counts(s), q)  # [N, T, C] int64
    return x * codes.permute(1, 0, 2).to(torch.float64)[..., None, None]


def run_qnode(node: g.Node, x: torch.Tensor, outputs: Optional[dict] = None) -> torch.Tensor:
    """One fixed-point node. Payload tensors are integer-valued float64; synapse outputs are int64."""
    if isinstance(node, g.QInput):
        return input_payload(x, node)
    if isinstance(node, g.QConv2d):
        return qconv(x, node.weight, node.stride, node.padding, node.groups)
    if isinstance(node, g.QLinear):
        return qlinear(x, node.weight)
    if isinstance(node, g.QCubaLIF):
        bias = None if node.bias_mant is None else torch.as_tensor(np.asarray(node.bias_mant), dtype=torch.int64)
        return cuba_fixed(x, node.i_decay, node.v_decay, node.vth_mant, bias)
    if isinstance(node, g.QGate):
        s = x if node.squeeze_from is None else outputs[node.squeeze_from]
        return gate_fixed(x, s, node)
    raise ValueError(f"no semantics for node type {node.kind!r}")


# ------------------------------------------------------------------------------------------ layers
def layer_plan(graph: g.Graph) -> list[dict]:
    """The layers of a (float-CUBA or fixed-point) graph, in order: a synapse with its neuron, or a gate.

    Each entry: ``{"name", "kind", "synapse", "neuron", "input_from", "latency_steps"}``; ``input_from``
    is the node whose output feeds the layer (flattens are transparent).
    """
    names = graph.names
    plan = []
    T = int(graph.meta.get("T", 1))
    for i, (name, node) in enumerate(graph.items()):
        if isinstance(node, (g.Conv2d, g.QConv2d, g.Linear, g.QLinear)):
            kind = "pool" if getattr(node, "role", "conv") == "pool" else (
                "conv" if isinstance(node, (g.Conv2d, g.QConv2d)) else "dense")
            plan.append({"name": name, "kind": kind, "synapse": name, "neuron": names[i + 1],
                         "input_from": names[i - 1], "latency_steps": 1})
        elif isinstance(node, (g.Gate, g.QGate)):
            plan.append({"name": name, "kind": "gate", "synapse": None, "neuron": name, "input_from": names[i - 1],
                         "latency_steps": T if node.mode == "window" else 0})
    return plan


def latency_steps(graph: g.Graph) -> int:
    """Time steps from an input step to the readout of its effect on Lava: one per synaptic hop, T per
    window-mode gate."""
    return sum(layer["latency_steps"] for layer in layer_plan(graph))


def _to_numpy_spikes(t: torch.Tensor, graded: bool, quantized: bool = True) -> np.ndarray:
    """Binary spikes as uint8, graded payloads as int32 codes (float32 values in a float graph)."""
    if not graded:
        return t.to(torch.uint8).cpu().numpy()
    return t.to(torch.int32 if quantized else torch.float32).cpu().numpy()


def _pool_weight(node, channels: int) -> np.ndarray:
    """A depthwise pool kernel [C, 1, k, k] as the dense [C, C, k, k] LayerActivity documents."""
    w = np.asarray(node.weight)
    k = w.shape[-1]
    full = np.zeros((channels, channels, k, k), dtype=w.dtype)
    full[np.arange(channels), np.arange(channels)] = w[:, 0]
    return full


def emulate(graph: g.Graph, x: torch.Tensor, labels: Optional[np.ndarray] = None, batch_size: int = 64,
            record: bool = True, backend: str = "emulator", device: str | torch.device = "cpu") -> NetworkActivity:
    """Run ``graph`` on inputs x [T, N, C, H, W] (float values; the q_input node quantizes them).

    Args:
        graph: a fixed-point graph (``q_*`` nodes) — or a float CUBA graph (then this is the float reference).
        labels: [N] true labels, or None.
        batch_size: samples per torch batch.
        record: keep every layer's input and output spikes (memory: ~1 byte per neuron-step).
        device: torch device to compute on (integer-exact on any device: float64 sums, int64 states).

    Returns:
        NetworkActivity with scores [N, K] and, if ``record``, one LayerActivity per layer.
    """
    from tcja_deploy.conversion.execute import infer_shapes, run_graph

    plan = layer_plan(graph)
    shapes = infer_shapes(graph)
    quantized = any(isinstance(n, g.QInput) for n in graph.nodes.values())
    names = graph.names
    scores, recorded = [], {layer["name"]: ([], []) for layer in plan}
    N = x.shape[1]
    for start in range(0, N, batch_size):
        xb = x[:, start:start + batch_size]
        xb = xb.to(device=device, dtype=torch.float64)
        if not record:
            scores.append(run_graph(graph, xb).cpu().numpy())
            continue
        score, outs = run_graph(graph, xb, record=True)
        scores.append(score.cpu().numpy())
        for layer in plan:
            src = outs[layer["input_from"]]
            ins, outs_l = recorded[layer["name"]]
            graded_in = not _binary(graph, layer["input_from"])
            ins.append(_to_numpy_spikes(src, graded_in, quantized))
            outs_l.append(_to_numpy_spikes(outs[layer["neuron"]], layer["kind"] == "gate", quantized))
    layers = []
    if record:
        T = int(graph.meta["T"])
        for layer in plan:
            syn = graph.nodes[layer["synapse"]] if layer["synapse"] else None
            neuron = graph.nodes[layer["neuron"]]
            ins, outs_l = recorded[layer["name"]]
            in_shape = shapes[layer["input_from"]]
            kw = {}
            if layer["kind"] == "gate":
                src = neuron.squeeze_from or layer["input_from"]
                c, h, w = shapes[src]
                kw["gate"] = {"T": T, "C": c, "H": h, "W": w,
                              "kernel_tla": int(np.asarray(_gate_w(neuron, "tla")).shape[-1]),
                              "kernel_cla": int(np.asarray(_gate_w(neuron, "cla")).shape[-1]), "mode": neuron.mode,
                              "squeeze_from": src}
                kw["output_payload_bits"] = int(getattr(neuron, "payload_bits", 0)) or 0
            else:
                kw["weight"] = _pool_weight(syn, in_shape[0]) if layer["kind"] == "pool" else np.asarray(syn.weight)
                kw["stride"] = int(getattr(syn, "stride", 1))
                kw["padding"] = int(getattr(syn, "padding", 0))
            kw["input_payload_bits"] = _payload_bits(graph, layer["input_from"])
            layers.append(LayerActivity(name=layer["name"], kind=layer["kind"], in_shape=tuple(in_shape),
                                        out_shape=tuple(shapes[layer["neuron"]]), input_spikes=np.concatenate(ins, 1),
                                        output_spikes=np.concatenate(outs_l, 1), latency_steps=layer["latency_steps"],
                                        **kw))
    scores = np.concatenate(scores, 0) if scores else np.zeros((0, int(graph.meta.get("num_classes", 0))))
    labels = np.full(N, -1) if labels is None else np.asarray(labels)
    return NetworkActivity(layers=layers, scores=scores, labels=labels, steps=int(graph.meta["T"]), backend=backend,
                           extra={"latency_steps": latency_steps(graph), "graph_names": names})


def _gate_w(node, which: str):
    if isinstance(node, g.QGate):
        return node.params[f"w_{which}"]
    return getattr(node, f"w_{which}")


def _binary(graph: g.Graph, name: str) -> bool:
    return _payload_bits(graph, name) == 0


def _payload_bits(graph: g.Graph, name: str) -> int:
    """Payload bits of the signal leaving node ``name`` (through flattens): 0 = binary spikes."""
    names = graph.names
    i = names.index(name)
    while isinstance(graph.nodes[names[i]], g.Flatten):
        i -= 1
    node = graph.nodes[names[i]]
    if isinstance(node, g.QInput):
        return node.payload_bits
    if isinstance(node, g.QGate):
        return node.payload_bits
    if isinstance(node, g.Input):
        return 32  # float input
    if isinstance(node, g.Gate):
        return 32  # float gate values
    return 0


def accuracy(activity: NetworkActivity) -> float:
    """Fraction of samples whose predicted class is the label (``execute.predictions``: first maximum on ties)."""
    from tcja_deploy.conversion.execute import predictions

    if len(activity.labels) == 0:
        return float("nan")
    return float(np.mean(predictions(activity.scores) == activity.labels))
