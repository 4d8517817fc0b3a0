"""The TCJA gate as a Lava Process (its models: ``models.py`` beside this file).

Timing, with Lava's 1-based ``time_step`` s and the in-window step ``t = (s − 1) mod T``:

- ``mode="window"`` (reference, non-causal TCJA): inputs of steps s = wT+1 … wT+T form window w.
  At step (w+1)T, after receiving that step's input, the gate of window w is computed; the gated
  spikes of window w are sent during steps (w+1)T+1 … (w+2)T. **The input of step s leaves at step
  s + T**; steps 1 … T send zeros. Windows may follow each other back to back (input buffer and
  replay buffer are separate); run (windows + 1)·T steps to flush the last one.
- ``mode="streaming"`` (causal TCJA): the gate row of step s uses the counts of steps
  wT+1 … s of its window only, and **the input of step s leaves at the same step s** (no added
  latency; feed-forward only, the gate receives before it sends). The window phase restarts every
  T steps: run n·T steps for n back-to-back samples.

Payload: ``floating_pt`` sends ``spike · gate`` (float, gate in (0, 1)); ``fixed_pt`` sends
``spike · p`` with the integer code p ∈ [0, 2^b − 1], b = ``gate.payload_bits``, gate ≈ p·2^−b
(see :mod:`tcja_deploy.conversion.gate_math`).
"""

from __future__ import annotations

import numpy as np

from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess, LogConfig
from lava.magma.core.process.variable import Var

from tcja_deploy.conversion.gate_math import GateParams, QuantizedGate, quantize_gate


class TCJAGate(AbstractProcess):
    """TCJA attention gate on spikes, one sample per window of T steps.

    Args:
        gate: the gate; a :class:`GateParams` is quantized with ``quantize_gate`` defaults
            (``fixed_pt`` uses the integer fields, ``floating_pt`` the float weights of ``.params``).
        s_shape: per-step shape of ``s_in``, the spikes the gate is computed from: (C, H, W) pre-pool
            spikes (any shape whose first dim is C and whose other dims hold H·W pixels), or (C,) per
            channel spike counts.
        x_shape: per-step shape (C, H', W') of ``x_in``, the spikes to be gated (e.g. after an OR
            max pool: a per-(t, c) gate commutes with max pooling). None: gate ``s_in`` itself, and
            ``x_in`` stays unconnected.
        phase: Lava's steps 1 + phase, T + 1 + phase, … start a window (0 ≤ phase < T): the runner aligns
            each gate's windows with the samples reaching it, without delaying the spikes.

    Ports:
        s_in: InPort ``s_shape``: binary spikes (or counts) for the squeeze.
        x_in: InPort ``x_shape`` (``s_shape`` when x_shape is None): binary spikes to gate.
        a_out: OutPort, the gated shape: graded spikes ``spike · gate`` (float) / ``spike · p`` (fixed).

    Vars:
        counts: [T, C] spike counts of the current window, by in-window step.
        x_buf: [T, *gated shape] window mode: the spikes of the window being received.
        out_buf: [T, *gated shape] window mode: the gated window being sent.
        gate: [T, C] the last gate computed (float gate, or payload codes in fixed_pt).
    """

    def __init__(self, *, gate: GateParams | QuantizedGate, s_shape: tuple[int, ...],
                 x_shape: tuple[int, ...] | None = None, phase: int = 0, name: str | None = None,
                 log_config: LogConfig | None = None) -> None:
        qgate = gate if isinstance(gate, QuantizedGate) else quantize_gate(gate)
        p = qgate.params
        s_shape = tuple(int(d) for d in s_shape)
        gated_shape = s_shape if x_shape is None else tuple(int(d) for d in x_shape)
        super().__init__(qgate=qgate, s_shape=s_shape, x_shape=x_shape, gated_shape=gated_shape,
                         phase=int(phase) % p.T, name=name, log_config=log_config)
        # validated after AbstractProcess.__init__, whose __del__ expects its attributes
        if s_shape[0] != p.C or gated_shape[0] != p.C:
            raise ValueError(f"s_shape and x_shape must start with C = {p.C}, got {s_shape}, {gated_shape}")
        pixels = int(np.prod(s_shape[1:], dtype=np.int64))
        if len(s_shape) > 1 and pixels != p.area:
            raise ValueError(f"s_shape {s_shape} holds {pixels} pixels per channel, the gate averages over "
                             f"H·W = {p.area}")
        self.s_in = InPort(shape=s_shape)
        self.x_in = InPort(shape=gated_shape)
        self.a_out = OutPort(shape=gated_shape)
        self.counts = Var(shape=(p.T, p.C), init=0)
        self.x_buf = Var(shape=(p.T,) + gated_shape, init=0)
        self.out_buf = Var(shape=(p.T,) + gated_shape, init=0)
        self.gate = Var(shape=(p.T, p.C), init=0)

    @property
    def qgate(self) -> QuantizedGate:
        return self.proc_params["qgate"]
