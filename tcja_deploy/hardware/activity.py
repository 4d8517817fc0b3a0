"""The activity of one run of a converted network: the interface between runners and counters.

Runners (the bit-exact emulator, the Lava simulator, Loihi 2) produce a :class:`NetworkActivity`;
the counters (SynOps, neuron updates, energy) and the report consume it. SynOps are charged to the
*receiving* layer: each input spike of layer L times its fan-out inside L's weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np


@dataclass
class LayerActivity:
    """One layer of the converted network and what it did.

    Attributes:
        name: node name in graph.json (e.g. ``"seg0.conv0"``).
        kind: ``"conv"`` | ``"dense"`` | ``"pool"`` (max pool as an OR conv) | ``"gate"`` (TCJA gate).
        in_shape: per-step input shape, (C, H, W) or (F,).
        out_shape: per-step output shape.
        input_spikes: [T, N, *in_shape] input events (0/1, or graded payloads), as numpy.
        output_spikes: [T, N, *out_shape] output events of this layer's neurons.
        weight: synaptic weights: conv [C_out, C_in, kh, kw], dense [out, in], pool [C, C, k, k]
            (ones on the diagonal channel pairs); None for a gate.
        stride, padding: convolution geometry in pixels (conv and pool).
        input_payload_bits: 0 for binary input spikes, else the graded payload width.
        output_payload_bits: 0 for binary output spikes, else the graded payload width.
        gate: for a gate: {"T": int, "C": int, "kernel_tla": int, "kernel_cla": int, "H": int, "W": int,
            "mode": "window" | "streaming"}.
        latency_steps: time steps this layer adds between input and output (synaptic hop or gate window).
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
    gate: Optional[dict] = None
    latency_steps: int = 1


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
