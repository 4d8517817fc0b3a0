"""ProcessModels of :class:`TCJAGate`: ``floating_pt`` (float gate) and ``fixed_pt`` (integer gate,
bit-exact with :func:`tcja_deploy.conversion.gate_math.gate_fixed`). Absolute imports only: Lava's
compiler executes this file as a top-level module."""

from __future__ import annotations

import numpy as np

from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from tcja_deploy.conversion import gate_math
from tcja_deploy.hardware.lava_procs.process import TCJAGate


class AbstractPyTCJAGateModel(PyLoihiProcessModel):
    """Shared step logic; subclasses choose the number type and the gate function."""

    s_in = None
    x_in = None
    a_out = None
    counts = None
    x_buf = None
    out_buf = None
    gate = None

    def __init__(self, proc_params):
        super().__init__(proc_params)
        self.qgate: gate_math.QuantizedGate = proc_params["qgate"]
        self.gate_from_s = proc_params["x_shape"] is None
        self.window_phase = int(proc_params["phase"])

    def window_gate(self, counts: np.ndarray) -> np.ndarray:
        """[T, C] gate of a full window."""
        raise NotImplementedError

    def step_gate(self, history: np.ndarray, t: int) -> np.ndarray:
        """[C] streaming gate row of in-window step t."""
        raise NotImplementedError

    def run_spk(self) -> None:
        T, C = self.qgate.params.T, self.qgate.params.C
        t = (self.time_step - 1 - self.window_phase) % T
        s = self.s_in.recv()
        x = self.x_in.recv()
        if self.gate_from_s:
            x = s
        self.counts[t] = s.reshape(C, -1).sum(axis=1)
        expand = (slice(None),) + (None,) * (x.ndim - 1)
        if self.qgate.params.mode == "streaming":
            self.gate[t] = self.step_gate(self.counts[: t + 1], t)
            self.a_out.send(x * self.gate[t][expand])
            return
        self.x_buf[t] = x
        self.a_out.send(self.out_buf[t].copy())
        if t == T - 1:
            self.gate[:] = self.window_gate(self.counts)
            self.out_buf[:] = self.x_buf * self.gate[(slice(None),) + expand]


@implements(proc=TCJAGate, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyTCJAGateModelFloat(AbstractPyTCJAGateModel):
    """Float gate: graded spikes spike · gate, gate in (0, 1)."""

    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    x_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    a_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    counts: np.ndarray = LavaPyType(np.ndarray, float)
    x_buf: np.ndarray = LavaPyType(np.ndarray, float)
    out_buf: np.ndarray = LavaPyType(np.ndarray, float)
    gate: np.ndarray = LavaPyType(np.ndarray, float)

    def window_gate(self, counts):
        return gate_math.gate_float(counts, self.qgate.params)

    def step_gate(self, history, t):
        return gate_math.gate_float_step(history, t, self.qgate.params)


@implements(proc=TCJAGate, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyTCJAGateModelFixed(AbstractPyTCJAGateModel):
    """Integer gate: graded spikes spike · p, p = payload code in [0, 2^b − 1] (gate ≈ p·2^−b)."""

    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    x_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=1)
    a_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    counts: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    x_buf: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=1)
    out_buf: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    gate: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)

    def window_gate(self, counts):
        return gate_math.gate_fixed(counts, self.qgate)

    def step_gate(self, history, t):
        return gate_math.gate_fixed_step(history, t, self.qgate)
