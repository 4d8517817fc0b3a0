"""Counting what a converted network did: spikes, SynOps, neuron updates, gate arithmetic, latency.

Everything here is counted from a :class:`~tcja_deploy.hardware.activity.NetworkActivity`, per sample:
each count is an int64 array [N] (one value per sample in the batch), so a caller can average over
samples and report the spread. Conventions (they follow :mod:`tcja_deploy.hardware.activity`):

- **SynOps are charged to the receiving layer**: each input event of layer L times its real fan-out
  inside L's weights. A synapse with weight 0 is not a synapse. At the edges of a convolution a
  spike reaches fewer outputs, and with a stride > 1 some pixels reach fewer (or no) outputs; the
  fan-out map below counts that exactly.
- **Binary inputs** (``input_payload_bits == 0``) count one event per spike; integer values > 1 are
  taken as that many spikes (event counts of a DVS frame). **Graded inputs** count one message per
  non-zero value, and one SynOp per synapse it reaches.
- **Neuron updates** are neurons × the layer's T steps (every compartment is updated every step,
  spiking or not: the per-inference cost in a pipelined stream; the pipeline's flush steps after a
  lone inference are not charged); an update is *active* when the neuron fires in that step.
- The **TCJA gate** is non-spiking arithmetic (MACs of TLA and CLA, their product, sigmoid lookups,
  the squeeze adds, the scaling of each spike); it has no neurons and no synapses on the cores.

The pure functions (:func:`conv_fanout_map`, :func:`dense_fanout`, :func:`gate_ops`) are what the
tests check against brute-force counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from tcja_deploy.conversion.execute import predictions
from tcja_deploy.hardware.activity import GateGeometry, LayerActivity, NetworkActivity

#: Count names every :class:`LayerCounts` carries, in report order. All are per sample, per inference.
COUNT_KEYS = (
    "input_events",          # events arriving at the layer (spikes, or graded messages)
    "spikes",                # output events of the layer (binary spikes or graded messages)
    "graded_messages",       # output events that carry a payload
    "payload_bits",          # graded_messages × output payload width
    "synops",                # SynOps: input events × their real fan-out
    "synops_graded",         # the part of ``synops`` driven by graded inputs (payload × weight)
    "neuron_updates",        # neurons × steps
    "neuron_updates_active",  # neuron-steps that fired
    "gate_adds",             # squeeze accumulations (one per squeezed spike)
    "gate_macs",             # TLA + CLA multiply-accumulates
    "gate_mults",            # TLA ⊙ CLA products + scaling of each spike by its gate
    "gate_lookups",          # sigmoid table lookups
    "gate_messages",         # graded messages inside a neuro-core gate's sub-network (its output not included)
)

#: Per-layer rates (float), derived from the counts.
RATE_KEYS = ("firing_rate",)


# ---------------------------------------------------------------------------------------------------------------
# Fan-out
# ---------------------------------------------------------------------------------------------------------------


def conv_output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """Output length of a convolution along one axis (PyTorch's floor rule)."""
    return (size + 2 * padding - kernel) // stride + 1


def conv_fanout_map(weight: np.ndarray, in_shape: tuple[int, int, int], stride: int = 1, padding: int = 0) -> np.ndarray:
    """Synapses leaving each input position of a 2-D convolution.

    ``fanout[ci, y, x]`` = number of (output channel, output pixel) pairs that input (ci, y, x) reaches
    through a non-zero weight, edges and strides included. Computed as the transposed convolution of
    an all-ones output map with the weight's non-zero mask.

    Args:
        weight: [C_out, C_in, kh, kw] synaptic weights (only their non-zero pattern matters).
        in_shape: (C_in, H, W) of the input.
        stride, padding: convolution geometry in pixels.

    Returns:
        [C_in, H, W] int64 fan-out per input position.
    """
    C_out, C_in, kh, kw = weight.shape
    c, H, W = in_shape
    if c != C_in:
        raise ValueError(f"weight has {C_in} input channels but the input has {c}")
    Ho, Wo = conv_output_size(H, kh, stride, padding), conv_output_size(W, kw, stride, padding)
    if Ho < 1 or Wo < 1:
        raise ValueError(f"kernel {kh}×{kw} does not fit a {H}×{W} input with padding {padding}")
    mask = torch.from_numpy((np.asarray(weight) != 0).astype(np.float64))
    ones = torch.ones(1, C_out, Ho, Wo, dtype=torch.float64)
    # conv_transpose2d's natural size is (Ho−1)·s − 2p + k ≤ H; output_padding (< stride) restores H.
    out_pad = (H - ((Ho - 1) * stride - 2 * padding + kh), W - ((Wo - 1) * stride - 2 * padding + kw))
    fan = F.conv_transpose2d(ones, mask, stride=stride, padding=padding, output_padding=out_pad)
    return np.rint(fan[0].numpy()).astype(np.int64)


def conv_transpose_fanout_map(weight: np.ndarray, in_shape: tuple[int, int, int], out_shape: tuple[int, int, int],
                              stride: int = 1, padding: int = 0) -> np.ndarray:
    """Synapses leaving each input position of a transposed convolution: [C_in, H, W] int64.

    The column sums of its exact Sparse matrix (:func:`tcja_deploy.conversion.transposed.transposed_matrix`):
    input (ci, h, w) reaches output (co, h·s − p + a, w·s − p + b) through every non-zero tap (a, b) whose pixel
    lies inside ``out_shape`` (C_out, H', W'); the output padding is what ``out_shape`` adds to torch's size rule.

    Args:
        weight: [C_in, C_out, k, k] (torch's ConvTranspose2d layout; only the non-zero pattern matters).
    """
    from tcja_deploy.conversion.transposed import out_size, transposed_matrix

    w = np.asarray(weight)
    k = int(w.shape[-1])
    op = int(out_shape[-1]) - out_size(int(in_shape[-1]), k, stride, padding, 0)
    m = transposed_matrix((w != 0).astype(np.int8), tuple(int(v) for v in in_shape), stride, padding, op)
    return np.asarray((m != 0).sum(axis=0), dtype=np.int64).reshape(tuple(int(v) for v in in_shape))


def dense_fanout(weight: np.ndarray) -> np.ndarray:
    """[in] synapses leaving each input of a dense layer with weights [out, in] (non-zero weights only)."""
    return (np.asarray(weight) != 0).sum(axis=0).astype(np.int64)


def pool_weight(channels: int, kernel: int) -> np.ndarray:
    """[C, C, k, k] weights of a max pool as an OR convolution: ones on the diagonal channel pairs."""
    w = np.zeros((channels, channels, kernel, kernel), dtype=np.float32)
    w[np.arange(channels), np.arange(channels)] = 1.0
    return w


def layer_weight(layer: LayerActivity) -> Optional[np.ndarray]:
    """The layer's synaptic weights; a pool without explicit weights gets its OR kernel (kernel = stride)."""
    if layer.weight is not None:
        return np.asarray(layer.weight)
    if layer.kind == "pool":
        return pool_weight(int(layer.in_shape[0]), int(layer.stride))
    return None


def fanout(layer: LayerActivity) -> Optional[np.ndarray]:
    """Fan-out per input position, shaped like ``layer.in_shape`` (flattened for dense); None without synapses."""
    w = layer_weight(layer)
    if w is None or layer.kind == "gate":
        return None
    if layer.kind == "conv_transpose":
        return conv_transpose_fanout_map(w, tuple(int(v) for v in layer.in_shape),
                                         tuple(int(v) for v in layer.out_shape), layer.stride, layer.padding)
    if w.ndim == 4:
        return conv_fanout_map(w, tuple(int(v) for v in layer.in_shape), layer.stride, layer.padding)
    if w.ndim == 2:
        return dense_fanout(w)
    raise ValueError(f"layer {layer.name!r}: weights of shape {w.shape} are neither conv nor dense")


# ---------------------------------------------------------------------------------------------------------------
# Events
# ---------------------------------------------------------------------------------------------------------------


def event_counts(x: np.ndarray, payload_bits: int) -> np.ndarray:
    """Events per element of [T, N, ...] activity: graded → 1 per non-zero value; binary → the spike count.

    Binary activity that is not integer-valued (it should not happen) is counted as one event per
    non-zero value, like graded activity.
    """
    x = np.asarray(x)
    if payload_bits > 0:
        return (x != 0).astype(np.int64)
    if np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.bool_):
        return np.abs(x.astype(np.int64))
    r = np.rint(x)
    if np.array_equal(r, x):
        return np.abs(r).astype(np.int64)
    return (x != 0).astype(np.int64)


def compact_events(x: np.ndarray, payload_bits: int) -> np.ndarray:
    """The events of :func:`event_counts` in the narrowest array that holds them, without an int64 copy.

    Graded activity → a bool mask of the non-zero values; binary activity of an unsigned or bool dtype
    (the emulator's uint8 spikes) → the array itself; anything else → :func:`event_counts`. Sum it
    with ``dtype=np.int64`` (numpy accumulates in int64 without materialising a converted copy).
    """
    x = np.asarray(x)
    if payload_bits > 0:
        return x != 0
    if x.dtype == np.bool_ or np.issubdtype(x.dtype, np.unsignedinteger):
        return x
    return event_counts(x, payload_bits)


def synops_per_sample(layer: LayerActivity, events_per_position: Optional[np.ndarray] = None,
                      fan: Optional[np.ndarray] = None) -> np.ndarray:
    """[N] SynOps of ``layer``: Σ over steps and input positions of events × fan-out.

    ``events_per_position`` ([N, positions] int64 events summed over steps) and ``fan`` (the layer's
    :func:`fanout`) may be passed when the caller already has them.
    """
    if fan is None:
        fan = fanout(layer)
    x = np.asarray(layer.input_spikes)
    N = x.shape[1]
    if fan is None:
        return np.zeros(N, dtype=np.int64)
    ev = events_per_position
    if ev is None:
        ev = compact_events(x, layer.input_payload_bits).reshape(x.shape[0], N, -1).sum(axis=0, dtype=np.int64)
    ev = ev.reshape(N, -1)
    if ev.shape[1] != fan.size:
        raise ValueError(f"layer {layer.name!r}: input has {ev.shape[1]} positions per step, weights expect {fan.size}")
    return ev @ fan.reshape(-1)


def synapse_count(layer: LayerActivity) -> int:
    """Synapses of the layer (non-zero connections, every output position of a conv counted)."""
    fan = fanout(layer)
    return 0 if fan is None else int(fan.sum())


# ---------------------------------------------------------------------------------------------------------------
# The TCJA gate
# ---------------------------------------------------------------------------------------------------------------


def valid_taps(length: int, kernel: int, causal: bool = False) -> int:
    """Σ over output positions of the kernel taps that land inside a length-``length`` input.

    Padding is PyTorch's ``'same'`` (extra pad of an even kernel on the right), or left-only when causal.
    Taps that read padding are not computed.
    """
    left = kernel - 1 if causal else (kernel - 1) // 2
    total = 0
    for i in range(length):
        lo, hi = max(0, left - i), min(kernel, length + left - i)
        total += max(0, hi - lo)
    return total


def gate_ops(gate: GateGeometry, squeeze_events: int | np.ndarray = 0,
             output_events: int | np.ndarray | None = None) -> dict[str, int | np.ndarray]:
    """Arithmetic of one TCJA gate for one sample.

    Args:
        gate: the gate's geometry; ``mode == "streaming"`` is the causal variant (left-only TLA padding,
            lower-triangular CLA).
        squeeze_events: spikes the squeeze sums (scalar or [N]): one add each. They are the gate's
            input, or, when the gate moved past a max pool (``squeeze_from``), the unpooled spikes.
        output_events: graded messages the gate sends (scalar or [N]): one scaling multiply each.
            Default: ``squeeze_events``.

    Returns:
        {"gate_adds", "gate_macs", "gate_mults", "gate_lookups"}:
        TLA (Conv1d C→C over T) MACs = C·C·taps(T, k_tla); CLA (Conv1d T→T over C) MACs =
        (T·T, or T(T+1)/2 causal)·taps(C, k_cla); TLA ⊙ CLA products and sigmoid lookups T·C each.
    """
    T, C = int(gate.T), int(gate.C)
    k_tla, k_cla = int(gate.kernel_tla), int(gate.kernel_cla)
    causal = gate.mode == "streaming"
    if output_events is None:
        output_events = squeeze_events
    tla = C * C * valid_taps(T, k_tla, causal)
    pairs = T * (T + 1) // 2 if causal else T * T
    cla = pairs * valid_taps(C, k_cla, False)
    return {
        "gate_adds": squeeze_events,
        "gate_macs": tla + cla,
        "gate_mults": T * C + output_events,
        "gate_lookups": T * C,
    }


# ---------------------------------------------------------------------------------------------------------------
# Per layer, per network
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class LayerCounts:
    """Counts of one layer over a batch.

    Attributes:
        name, kind: as in the activity.
        neurons: neurons on the cores (0 for a gate).
        units: output elements per step (neurons, or gate outputs); the firing-rate denominator.
        steps: the layer's own time steps (its arrays' T).
        synapses: non-zero connections into the layer.
        counts: each of :data:`COUNT_KEYS` → int64 [N].
        firing_rate: [N] spikes / units / steps.
    """

    name: str
    kind: str
    neurons: int
    units: int
    steps: int
    synapses: int
    counts: dict[str, np.ndarray]
    firing_rate: np.ndarray
    info: dict = field(default_factory=dict)


def count_layer(layer: LayerActivity, steps_simulated: Optional[int] = None,
                squeeze_events: Optional[np.ndarray] = None) -> LayerCounts:
    """Count one layer.

    Args:
        steps_simulated: steps each neuron is updated per sample (default: the layer's T).
        squeeze_events: for a gate that squeezes another layer's output, that output's events [N].
    """
    x = np.asarray(layer.input_spikes)
    y = np.asarray(layer.output_spikes)
    T, N = y.shape[0], y.shape[1]
    units = int(np.prod(layer.out_shape))
    is_gate = layer.kind == "gate"
    neurons = 0 if is_gate else units
    steps_run = int(steps_simulated) if steps_simulated is not None else T

    fan = None if is_gate else fanout(layer)
    # Events in their compact dtype (uint8 / bool), summed with int64 accumulators: no int64 copies of
    # the [T, N, ...] arrays. Input events summed over steps per position serve the SynOps too.
    x_ev = compact_events(x, layer.input_payload_bits).reshape(x.shape[0], N, -1)
    if fan is not None:
        in_pos = x_ev.sum(axis=0, dtype=np.int64)  # [N, positions]
        in_ev = in_pos.sum(axis=1)
        synops = synops_per_sample(layer, in_pos, fan)
    else:
        in_ev = x_ev.sum(axis=(0, 2), dtype=np.int64)
        synops = synops_per_sample(layer, None, fan) if not is_gate else np.zeros(N, dtype=np.int64)
    out_ev = compact_events(y, layer.output_payload_bits).reshape(T, N, -1)
    spikes = out_ev.sum(axis=(0, 2), dtype=np.int64)
    # A neuron-step is active when it fired (count > 1 cannot happen for a neuron in one step).
    if is_gate:
        active = np.zeros(N, dtype=np.int64)
    elif out_ev.dtype == np.bool_ or out_ev.size == 0 or out_ev.max() <= 1:
        active = spikes.copy()  # 0/1 events: the active steps are the events
    else:
        active = np.count_nonzero(out_ev, axis=(0, 2)).astype(np.int64)
    graded = spikes if layer.output_payload_bits > 0 else np.zeros(N, dtype=np.int64)
    zeros = np.zeros(N, dtype=np.int64)
    counts = {
        "input_events": in_ev.astype(np.int64),
        "spikes": spikes.astype(np.int64),
        "graded_messages": graded.astype(np.int64),
        "payload_bits": (graded * int(layer.output_payload_bits)).astype(np.int64),
        "synops": synops.astype(np.int64),
        "synops_graded": synops.astype(np.int64) if layer.input_payload_bits > 0 else zeros.copy(),
        "neuron_updates": np.full(N, neurons * steps_run, dtype=np.int64),
        "neuron_updates_active": active.astype(np.int64),
        "gate_adds": zeros.copy(), "gate_macs": zeros.copy(), "gate_mults": zeros.copy(), "gate_lookups": zeros.copy(),
        "gate_messages": zeros.copy(),
    }
    synapses = 0 if fan is None else int(fan.sum())
    if is_gate:
        if not layer.gate:
            raise ValueError(f"gate layer {layer.name!r} lacks its gate dimensions")
        sq = counts["input_events"] if squeeze_events is None else np.asarray(squeeze_events, dtype=np.int64)
        if layer.gate.placement == "neurocore":
            neurons, synapses = _count_neurocore_gate(layer, counts, sq, steps_run)
        else:
            ops = gate_ops(layer.gate, sq, counts["spikes"])
            for k, v in ops.items():
                counts[k] = np.broadcast_to(np.asarray(v, dtype=np.int64), (N,)).copy()
    rate = spikes / float(max(units * T, 1))
    return LayerCounts(name=layer.name, kind=layer.kind, neurons=neurons, units=units, steps=T,
                       synapses=synapses, counts=counts, firing_rate=rate.astype(np.float64))


def _count_neurocore_gate(layer: LayerActivity, counts: dict, squeeze_events: np.ndarray, steps_run: int
                          ) -> tuple[int, int]:
    """A neuro-core gate's counts into ``counts`` (in place); returns (neurons, synapses)."""
    from tcja_deploy.conversion import neurocore_gate as NC

    ng = NC.NeurocoreGate.from_arrays(layer.gate_params)
    new, neurons, synapses = neurocore_gate_counts(ng, layer, counts["input_events"], counts["spikes"],
                                                   squeeze_events, steps_run)
    counts.update(new)
    return neurons, synapses


def neurocore_gate_counts(ng, layer: LayerActivity, input_events: np.ndarray, spikes: np.ndarray,
                          squeeze_events: np.ndarray, steps_run: int) -> tuple[dict[str, np.ndarray], int, int]:
    """SynOps, neuron updates and messages of the neuro-core sub-network ``ng`` on this layer's activity,
    exactly as its standard Lava processes run (:func:`tcja_deploy.conversion.neurocore_gate.events`); it does
    no host arithmetic. Returns (counts, neurons, synapses)."""
    from tcja_deploy.conversion import neurocore_gate as NC

    parts = NC.structure(ng, int(np.prod(layer.out_shape)))
    neurons = sum(p["neurons"] for p in parts.values())
    synapses = sum(p["synapses"] for p in parts.values())
    ev = NC.events(ng, layer.gate_counts, input_events, squeeze_events, int(np.prod(layer.out_shape[1:])))
    counts = {
        "synops": ev["graded"] + ev["binary"],  # the output's own SynOps are the next layer's
        "synops_graded": ev["graded"].copy(),
        "neuron_updates": np.full_like(ev["graded"], neurons * steps_run),
        "neuron_updates_active": ev["messages"] + spikes,
        "gate_messages": ev["messages"],
    }
    return counts, neurons, synapses


@dataclass
class NetworkCounts:
    """Counts of a whole network over a batch.

    Attributes:
        layers: per-layer counts, execution order.
        total: each of :data:`COUNT_KEYS` → [N], summed over layers (``input_events``: the network's
            input, i.e. the first layer's).
        firing_rate: [N] total spikes of neuron layers / (their neurons × steps).
        correct: [N] 1.0 / 0.0 per sample, NaN where the label is unknown.
        predictions: [N] argmax of the scores.
        labels: [N].
        latency: {"input_steps", "pipeline_steps", "window_gate_steps", "decision_steps", "steps_simulated"}.
    """

    layers: list[LayerCounts]
    total: dict[str, np.ndarray]
    firing_rate: np.ndarray
    correct: np.ndarray
    predictions: np.ndarray
    labels: np.ndarray
    latency: dict[str, int]
    samples: int


def latency(activity: NetworkActivity) -> dict[str, int]:
    """Time steps from first input to decision.

    ``input_steps`` is the input window T (the first layer's); ``pipeline_steps`` Σ of the layers'
    ``latency_steps`` (one per synaptic hop, T per window-mode gate); the decision can be taken
    ``decision_steps = input_steps + pipeline_steps`` steps after the first input arrives.
    """
    T_in = int(np.asarray(activity.layers[0].input_spikes).shape[0]) if activity.layers else 0
    pipe = int(sum(int(l.latency_steps) for l in activity.layers))
    window = int(sum(int(l.latency_steps) for l in activity.layers
                     if l.kind == "gate" and (l.gate is None or l.gate.mode == "window")))
    return {"input_steps": T_in, "pipeline_steps": pipe, "window_gate_steps": window,
            "decision_steps": T_in + pipe, "steps_simulated": int(activity.steps)}


def accuracy_flags(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(correct [N] as 1.0/0.0 with NaN for unknown labels, predictions [N]); predictions follow
    :func:`tcja_deploy.conversion.execute.predictions` (scores rounded to 1e-6, first maximum wins on ties),
    as fidelity.json does."""
    scores = np.asarray(scores)
    labels = np.asarray(labels).astype(np.int64)
    pred = predictions(scores.reshape(scores.shape[0], -1))
    correct = (pred == labels).astype(np.float64)
    correct[labels < 0] = np.nan
    return correct, pred


def count_network(activity: NetworkActivity) -> NetworkCounts:
    """Count every layer of ``activity`` and total them per sample."""
    if not activity.layers:
        raise ValueError("the activity has no layers")
    layers: list[LayerCounts] = []
    for i, l in enumerate(activity.layers):
        sq = None
        if l.kind == "gate" and l.gate is not None and l.gate.squeeze_from is not None:
            done = {lc.name: lc for lc in layers}
            if l.gate.squeeze_from not in done:
                raise ValueError(f"gate {l.name!r}: squeeze_from {l.gate.squeeze_from!r} is not an earlier layer")
            sq = done[l.gate.squeeze_from].counts["spikes"]
        layers.append(count_layer(l, squeeze_events=sq))
    N = len(layers[0].firing_rate)
    total = {k: sum((lc.counts[k] for lc in layers), np.zeros(N, dtype=np.int64)) for k in COUNT_KEYS}
    # One layer's input is the previous layer's output: the network's input events are the first layer's.
    total["input_events"] = layers[0].counts["input_events"].copy()
    neuron_layers = [lc for lc in layers if lc.neurons > 0 and lc.kind != "gate"]
    denom = float(sum(lc.units * lc.steps for lc in neuron_layers)) or 1.0
    rate = sum((lc.counts["spikes"] for lc in neuron_layers), np.zeros(N, dtype=np.int64)) / denom
    correct, pred = accuracy_flags(activity.scores, activity.labels)
    return NetworkCounts(layers=layers, total=total, firing_rate=rate.astype(np.float64), correct=correct,
                         predictions=pred, labels=np.asarray(activity.labels).astype(np.int64),
                         latency=latency(activity), samples=N)
